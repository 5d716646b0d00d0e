//! `sluice`: the flow collector binary.
//!
//! Subcommands: `run` (the collector), `dump` (stored flows for a time range), `decode` (a
//! capture file, or a syslog or VPC Flow Logs file, to documents, offline, through the same
//! decoders the live collector uses), `ingest vpc` (VPC Flow Logs files into the store),
//! `config` (defaults and checks) and `fields` (the document field list).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use sluice_ingest::{config, decode_cmd, dump_cmd, logs_cmd, run, top_cmd, Format};
use sluice_sink::top::{By, Order};

/// Sluice: a NetFlow v5/v9, IPFIX collector that ships ECS documents.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the collector: UDP 2055 and 4739 on [::], flows kept in ./sluice-data, metrics and
    /// /healthz on 127.0.0.1:9155 (the embedded defaults; `--config FILE` changes any of it).
    Run {
        /// TOML file overriding the embedded defaults (see `sluice config default`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print stored flows for a time range.
    Dump {
        #[command(flatten)]
        range: dump_cmd::Range,
        /// Filter, e.g. "src ip 10.0.0.0/8 and dst port 443 and not proto udp".
        #[arg(long = "where")]
        filter: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
        /// Config file whose store.data_dir to read (default: the embedded ./sluice-data).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where to read: the local store, or Elasticsearch/OpenSearch (point in time +
        /// search_after).
        #[arg(long, value_enum, default_value_t = dump_cmd::Source::Local)]
        source: dump_cmd::Source,
        /// Elasticsearch URL for --source es (default: the config's elasticsearch.urls).
        #[arg(long)]
        es: Option<String>,
    },
    /// The N largest talkers, conversations, ports, protocols, ASes, countries, exporters or
    /// interfaces of a time range, by bytes, packets or flows.
    Top {
        /// What to group flows by: src, dst, conversation (source and destination), dport,
        /// proto, as, country (either end's), exporter, interface (exporter and ifIndex, in
        /// or out; shown with the interface's name and description when flows had them).
        #[arg(long, default_value = "src", value_parser = str::parse::<By>)]
        by: By,
        /// What to rank by: bytes, packets (network.bytes/packets: sampling-scaled, both
        /// directions of biflows) or flows.
        #[arg(long, default_value = "bytes", value_parser = str::parse::<Order>)]
        order: Order,
        /// Rows to print.
        #[arg(short = 'n', long = "limit", default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        range: dump_cmd::Range,
        /// Filter, as for dump.
        #[arg(long = "where")]
        filter: Option<String>,
        /// Where to read: the local store, or Elasticsearch/OpenSearch aggregations.
        #[arg(long, value_enum, default_value_t = dump_cmd::Source::Local)]
        source: dump_cmd::Source,
        /// Elasticsearch URL for --source es (default: the config's elasticsearch.urls).
        #[arg(long)]
        es: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = top_cmd::TopFormat::Table)]
        format: top_cmd::TopFormat,
        /// Config file (store.data_dir, [enrich], [elasticsearch]).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Threads scanning the local store (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// How two-field keys are aggregated in Elasticsearch (multi_terms, or composite
        /// pages on servers without it).
        #[arg(long, value_enum, default_value_t = top_cmd::PairsArg::Auto, hide = true)]
        es_aggregation: top_cmd::PairsArg,
    },
    /// Configuration: print the defaults or check a file.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Decode every UDP payload of a pcap/pcapng capture and print one document per flow
    /// record; with --syslog or --vpc, a log file instead (one message or record per line).
    /// Errors are counted by reason on stderr; exit status 1 if anything failed to decode.
    Decode {
        /// Capture file (classic pcap or pcapng), or the log file (plain or gzip; `-` for
        /// standard input) with --syslog / --vpc.
        file: PathBuf,
        /// The file holds syslog messages, one per line (firewall logs: netfilter/EdgeOS,
        /// Cisco ASA, PAN-OS).
        #[arg(long, conflicts_with_all = ["vpc", "annotate", "include_options"])]
        syslog: bool,
        /// The file holds AWS VPC Flow Logs records (S3 delivery or CloudWatch Logs export).
        #[arg(long, conflicts_with_all = ["annotate", "include_options"])]
        vpc: bool,
        /// VPC Flow Logs format for files without a header line: the field names, or the
        /// flow log's `${...}` LogFormat string. Default: the version 2 default format.
        #[arg(long, requires = "vpc")]
        vpc_format: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
        /// Add `sluice.frame`, the capture frame number that carried each record.
        #[arg(long)]
        annotate: bool,
        /// Also print options records (sampler, interface and exporter tables).
        #[arg(long)]
        include_options: bool,
        /// Config file whose [enrich] section applies (GeoIP databases, exporter names).
        #[arg(long)]
        config: Option<PathBuf>,
        /// GeoIP city/country database (overrides the config).
        #[arg(long)]
        geoip_city: Option<PathBuf>,
        /// GeoIP ASN database (overrides the config).
        #[arg(long)]
        geoip_asn: Option<PathBuf>,
        /// Print the exporter's raw records without enrichment (no geo, names, scaling).
        #[arg(long)]
        raw: bool,
    },
    /// Read log files into the local store (and Elasticsearch when configured), as the
    /// collector stores flows.
    Ingest {
        #[command(subcommand)]
        cmd: IngestCmd,
    },
    /// Print the document field table.
    Fields {
        /// As the Markdown of docs/fields.md.
        #[arg(long)]
        markdown: bool,
        /// As the Elasticsearch/OpenSearch index template of ops/elasticsearch/.
        #[arg(long, conflicts_with = "markdown")]
        index_template: bool,
    },
}

#[derive(Subcommand, Debug)]
enum IngestCmd {
    /// AWS VPC Flow Logs files (plain or .gz as delivered to S3 or exported from CloudWatch
    /// Logs; `-` for standard input): default and custom formats (header lines), NODATA and
    /// SKIPDATA counted and skipped. Exit status 1 if a record did not parse (it is stored
    /// anyway, with event.original and a parse-failure tag).
    Vpc {
        /// Files to read, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Config file whose [store], [enrich] and [elasticsearch] apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Format for files without a header line: field names or the `${...}` LogFormat.
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Print the embedded defaults (a complete, commented config file).
    Default,
    /// Validate a file; errors name the bad key.
    Check {
        /// The TOML file.
        file: PathBuf,
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

/// The configuration of a command that reads flows back (`dump`, `top`): the file or the
/// defaults, with `--data-dir` and `--es` applied.
fn reader_config(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    es: Option<String>,
) -> Result<config::Config> {
    let mut cfg = match &config {
        Some(p) => config::Config::load(p)?,
        None => config::Config::defaults(),
    };
    if let Some(d) = data_dir {
        cfg.store.data_dir = d;
    }
    if let Some(u) = es {
        cfg.elasticsearch.urls = vec![u];
    }
    Ok(cfg)
}

/// The config file (or the embedded defaults), with `--data-dir` applied.
fn load_config(
    path: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> Result<config::Config> {
    reader_config(path.map(std::path::Path::to_path_buf), data_dir, None)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Run { config } => {
            let cfg = match &config {
                Some(p) => config::Config::load(p)?,
                None => config::Config::defaults(),
            };
            run::run(cfg, config)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dump {
            range,
            filter,
            format,
            config,
            data_dir,
            source,
            es,
        } => {
            let cfg = reader_config(config, data_dir, es)?;
            match source {
                dump_cmd::Source::Local => {
                    let enricher = run::enricher(&cfg.enrich)?;
                    dump_cmd::run(&cfg.store.data_dir, range, filter, format, enricher)
                }
                dump_cmd::Source::Es => dump_cmd::run_es(&cfg, range, filter, format),
            }
        }
        Cmd::Top {
            by,
            order,
            limit,
            range,
            filter,
            source,
            es,
            format,
            config,
            data_dir,
            threads,
            es_aggregation,
        } => {
            let cfg = reader_config(config, data_dir, es)?;
            let args = top_cmd::Args {
                by,
                order,
                n: limit,
                range,
                filter,
                source,
                format,
                pairs: es_aggregation,
                threads,
            };
            top_cmd::run(&cfg, args)
        }
        Cmd::Config { cmd } => match cmd {
            ConfigCmd::Default => {
                io::stdout().write_all(config::DEFAULT_TOML.as_bytes())?;
                Ok(ExitCode::SUCCESS)
            }
            ConfigCmd::Check { file } => match config::Config::load(&file) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("sluice: {e}");
                    Ok(ExitCode::FAILURE)
                }
            },
        },
        Cmd::Decode {
            file,
            syslog,
            vpc,
            vpc_format,
            format,
            annotate,
            include_options,
            config,
            geoip_city,
            geoip_asn,
            raw,
        } => {
            let enricher = if raw {
                None
            } else {
                let mut e = match &config {
                    Some(p) => config::Config::load(p)?.enrich,
                    None => config::Config::defaults().enrich,
                };
                e.geoip_city = geoip_city.or(e.geoip_city);
                e.geoip_asn = geoip_asn.or(e.geoip_asn);
                Some(run::enricher(&e)?)
            };
            if syslog {
                return logs_cmd::decode_syslog(&file, format, enricher);
            }
            if vpc {
                return logs_cmd::decode_vpc(&file, format, vpc_format.as_deref(), enricher);
            }
            decode_cmd::run(&file, format, annotate, include_options, enricher)
                .with_context(|| format!("decoding {}", file.display()))
        }
        Cmd::Ingest {
            cmd:
                IngestCmd::Vpc {
                    files,
                    config,
                    data_dir,
                    format,
                },
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            logs_cmd::ingest_vpc(&cfg, &files, format.as_deref())
        }
        Cmd::Fields {
            markdown,
            index_template,
        } => {
            let mut out = io::stdout().lock();
            if index_template {
                out.write_all(sluice_sink::schema::index_template().as_bytes())?;
            } else if markdown {
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
