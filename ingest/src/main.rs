//! `sluice`: the flow collector binary.
//!
//! Subcommands: `decode` (a capture file to documents, offline, through the same decoder the
//! live collector uses) and `fields` (the document field list). The live collector (`run`),
//! `dump` and `config` arrive with the live-collector work.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod decode_cmd;

/// Sluice: a NetFlow v5/v9, IPFIX collector that ships ECS documents.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// One JSON document per line.
    Ndjson,
    /// Comma-separated values with a header line (core columns only).
    Csv,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Decode every UDP payload of a pcap/pcapng capture and print one document per flow
    /// record. Errors are counted by reason on stderr; exit status 1 if anything failed to
    /// decode.
    Decode {
        /// Capture file (classic pcap or pcapng).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
        /// Add `sluice.frame`, the capture frame number that carried each record.
        #[arg(long)]
        annotate: bool,
        /// Also print options records (sampler, interface and exporter tables).
        #[arg(long)]
        include_options: bool,
    },
    /// Print the document field table.
    Fields {
        /// As the Markdown of docs/fields.md.
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Decode {
            file,
            format,
            annotate,
            include_options,
        } => decode_cmd::run(&file, format, annotate, include_options)
            .with_context(|| format!("decoding {}", file.display())),
        Cmd::Fields { markdown } => {
            let mut out = io::stdout().lock();
            if markdown {
                out.write_all(sluice_sink::schema::fields_markdown().as_bytes())?;
            } else {
                for r in sluice_sink::schema::all_fields() {
                    writeln!(out, "{}\t{}", r.path, r.es.as_str())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
