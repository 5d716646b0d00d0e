//! sluice-loadgen: replay captures against a collector as many exporters.
//!
//! ```text
//! sluice-loadgen replay FILE.pcap --to HOST:PORT [--rate PPS|max] [--exporters N]
//!                [--duration D | --loops N] [--json] [--metrics URL]
//! ```

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use sluice_loadgen::metrics::{wait_settled, MetricsUrl, Snapshot};
use sluice_loadgen::{parse_duration, replay, Capture, Progress, Rate, ReplayConfig, Stop};

#[derive(Parser, Debug)]
#[command(
    name = "sluice-loadgen",
    version,
    about = "Load generator for flow collectors"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay the NetFlow v5/v9 and IPFIX datagrams of a capture as N exporters.
    Replay(ReplayArgs),
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture file (pcap or pcapng).
    file: PathBuf,
    /// Collector address, HOST:PORT (the only address anything is sent to).
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Datagrams per second over all exporters, or "max".
    #[arg(long, default_value = "max", value_name = "PPS|max")]
    rate: Rate,
    /// Simulated exporters: one socket (source port) and one set of source ids each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    exporters: u32,
    /// Run for this long, looping the capture (30s, 2m, 1h30m).
    #[arg(long, value_parser = parse_duration, conflicts_with = "loops")]
    duration: Option<Duration>,
    /// Send the capture this many times per exporter (default 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    loops: Option<u64>,
    /// Datagrams per sendmmsg call.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Collector's Prometheus endpoint (http://HOST:PORT/metrics): scraped before and after
    /// to report what was received, decoded and stored.
    #[arg(long, value_name = "URL")]
    metrics: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Replay(a) => run_replay(a),
    };
    if let Err(e) = result {
        eprintln!("sluice-loadgen: {e:#}");
        std::process::exit(1);
    }
}

fn resolve(to: &str) -> Result<SocketAddr> {
    to.to_socket_addrs()
        .with_context(|| format!("--to {to:?}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--to {to:?} resolves to no address"))
}

fn run_replay(a: ReplayArgs) -> Result<()> {
    let to = resolve(&a.to)?;
    let metrics = a.metrics.as_deref().map(MetricsUrl::parse).transpose()?;
    let cap = Capture::open(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let stop = match (a.duration, a.loops) {
        (Some(d), _) => Stop::Duration(d),
        (None, n) => Stop::Loops(n.unwrap_or(1)),
    };
    if stop == Stop::Duration(Duration::ZERO) {
        bail!("--duration must be more than zero");
    }
    let cfg = ReplayConfig {
        to,
        rate: a.rate,
        exporters: a.exporters as usize,
        stop,
        batch: usize::from(a.batch),
    };
    eprintln!(
        "{}: {} datagrams per loop ({} flow records), {} stream(s), {} template datagram(s){}; \
         replaying to {to} as {} exporter(s), rate {}",
        a.file.display(),
        cap.body.len(),
        cap.loop_flow_records(),
        cap.streams.len(),
        cap.preamble.len(),
        if cap.preamble_each_loop {
            " resent every loop (templates change mid-capture)"
        } else {
            ""
        },
        cfg.exporters,
        cfg.rate,
    );
    let before = match &metrics {
        Some(u) => Some(Snapshot::scrape(u).context("scraping --metrics before the run")?),
        None => None,
    };
    let tty = std::io::stderr().is_terminal();
    let stats = replay(&cap, &cfg, |p: &Progress| {
        let line = format!(
            "{:>6.1}s  {} packets ({:.0} pps)  {} records ({:.0} rec/s)",
            p.elapsed.as_secs_f64(),
            p.packets,
            p.pps,
            p.flow_records,
            p.records_per_sec
        );
        if tty {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    })
    .context("sending")?;
    if tty && stats.elapsed >= Duration::from_secs(1) {
        eprintln!();
    }
    let after = match (&metrics, &before) {
        (Some(u), Some(b)) => {
            eprintln!("waiting for the collector's store to settle...");
            Some(
                wait_settled(
                    u,
                    b,
                    stats.flow_records,
                    Duration::from_secs(2),
                    Duration::from_secs(10),
                )
                .context("scraping --metrics after the run")?,
            )
        }
        _ => None,
    };
    let collector = before.zip(after).map(|(b, a)| a.delta(&b));
    let loss = collector.and_then(|c| {
        let stored = c.stored_records?;
        (stats.flow_records > 0).then(|| 100.0 * (1.0 - stored / stats.flow_records as f64))
    });
    if a.json {
        let mut v = json!({
            "file": a.file.display().to_string(),
            "to": to.to_string(),
            "exporters": cfg.exporters,
            "exporter_ports": stats.exporter_addrs.iter().map(|s| s.port()).collect::<Vec<_>>(),
            "streams": cap.streams.len(),
            "rate_target_pps": match cfg.rate { Rate::Max => None, Rate::Pps(p) => Some(p) },
            "loops": stats.loops,
            "packets": stats.packets,
            "records": stats.flow_records,
            "options_records": stats.options_records,
            "bytes": stats.bytes,
            "duration_secs": stats.elapsed.as_secs_f64(),
            "pps": stats.pps(),
            "records_per_sec": stats.records_per_sec(),
            "send_errors": stats.send_errors,
        });
        if let Some(c) = collector {
            v["collector"] = json!({
                "received_packets": c.received_packets,
                "decoded_records": c.decoded_flow_records,
                "stored_records": c.stored_records,
                "kernel_drops": c.kernel_drops,
                "pipeline_drops": c.pipeline_drops,
                "loss_percent": loss,
            });
        }
        println!("{v}");
    } else {
        println!(
            "sent {} packets, {} records ({} options records), {} bytes in {:.3} s \
             from {} exporter(s), {} full loop(s)",
            stats.packets,
            stats.flow_records,
            stats.options_records,
            stats.bytes,
            stats.elapsed.as_secs_f64(),
            cfg.exporters,
            stats.loops
        );
        println!(
            "rate: {:.0} packets/s, {:.0} records/s{}",
            stats.pps(),
            stats.records_per_sec(),
            match cfg.rate {
                Rate::Max => String::new(),
                Rate::Pps(p) => format!(
                    " (target {p} packets/s, {:+.2}%)",
                    100.0 * (stats.pps() / p - 1.0)
                ),
            }
        );
        if stats.send_errors > 0 {
            println!(
                "send errors (retried): {} (refused or cut-short sends: is anything listening \
                 at {to}?)",
                stats.send_errors
            );
        }
        if let Some(c) = collector {
            let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
            println!(
                "collector: received {} packets, decoded {} records, stored {} records, \
                 kernel drops {}, pipeline drops {} records, loss {}",
                f(c.received_packets),
                f(c.decoded_flow_records),
                f(c.stored_records),
                f(c.kernel_drops),
                f(c.pipeline_drops),
                loss.map_or("n/a".to_string(), |l| format!("{l:.2}%"))
            );
        }
    }
    Ok(())
}
