//! sluice-loadgen: replay captures or send synthetic flows against a collector as many
//! exporters; soak a collector.
//!
//! ```text
//! sluice-loadgen replay FILE.pcap --to HOST:PORT [--rate PPS|max] [--exporters N]
//!                [--duration D | --loops N] [--json] [--metrics URL] [--plot FILE.svg]
//! sluice-loadgen synth --proto v5|v9|ipfix|sflow --to HOST:PORT [--rate PPS|max]
//!                [--exporters N] [--duration D | --count N] [model options] [--metrics URL]
//!                [--json] [--pcap-out FILE] [--plot FILE.svg]
//! sluice-loadgen soak [--duration D] [--rate PPS] [--proto P] [--sluice PATH] [--plot FILE]
//! ```

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use sluice_loadgen::latency::{Ages, Latency};
use sluice_loadgen::metrics::{wait_settled, MetricsUrl, Snapshot};
use sluice_loadgen::pcap_out::PcapWriter;
use sluice_loadgen::plot::{self, PlotInfo};
use sluice_loadgen::replay::replay_with;
use sluice_loadgen::send::{send, wall_clock, Hooks, LiveCounters, SendConfig, SendStats};
use sluice_loadgen::soak::{self, Collector, SoakData, Thresholds};
use sluice_loadgen::synth::model::{parse_mix, ModelConfig};
use sluice_loadgen::synth::{Proto, Synth, SynthConfig};
use sluice_loadgen::timeline::{Point, Sampler};
use sluice_loadgen::{parse_duration, Capture, Progress, Rate, ReplayConfig, Stop};

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
    /// Send synthetic flows (NetFlow v5/v9, IPFIX, sFlow) as N exporters.
    Synth(SynthArgs),
    /// Start a collector, hold a steady synthetic load, and fail on loss, errors or memory
    /// growth.
    #[command(long_about = SOAK_ABOUT)]
    Soak(SoakArgs),
}

const SOAK_ABOUT: &str = "Start a collector (`sluice run` on loopback, temporary data directory), hold a \
steady synthetic load well under its capacity, sample its /metrics and RSS (/proc/PID/status) every \
second, stop it with SIGTERM, and exit non-zero on: any loss (flow records sent vs stored, options \
records sent vs decoded, sluice_exporter_missing, kernel drops, pipeline drops); any error counter \
that moved (decode, store, receive errors, truncated or denied datagrams, exporter restarts, templates \
evicted or expired); RSS that keeps growing (least-squares slope of RSS over the samples after \
--warmup above --max-rss-growth, 4 MiB/min by default, and still above it over the last half of \
those samples, so that a bounded step is not taken for a leak); a collector that died or did not stop cleanly; a load that \
was not held (under 95 % of the datagrams due).";

/// Where and how fast the exporters send, and what is reported.
#[derive(clap::Args, Debug)]
struct SendArgs {
    /// Collector address, HOST:PORT (the only address anything is sent to).
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Datagrams per second over all exporters, or "max".
    #[arg(long, default_value = "max", value_name = "PPS|max")]
    rate: Rate,
    /// Simulated exporters: one socket (source port) and one set of source ids each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    exporters: u32,
    /// Datagrams per sendmmsg call.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Collector's Prometheus endpoint (http://HOST:PORT/metrics): scraped before and after
    /// to report what was received, decoded and stored (and, for synth, the latency).
    #[arg(long, value_name = "URL")]
    metrics: Option<String>,
    /// Draw sent and stored rates, loss and the collector's RSS over time into this SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// The collector's process id, to sample its RSS for --plot (same machine only).
    #[arg(long, value_name = "PID")]
    collector_pid: Option<u32>,
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture file (pcap or pcapng).
    file: PathBuf,
    #[command(flatten)]
    send: SendArgs,
    /// Run for this long, looping the capture (30s, 2m, 1h30m).
    #[arg(long, value_parser = parse_duration, conflicts_with = "loops")]
    duration: Option<Duration>,
    /// Send the capture this many times per exporter (default 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    loops: Option<u64>,
}

/// The synthetic traffic.
#[derive(clap::Args, Debug)]
struct ModelArgs {
    /// Export protocol.
    #[arg(long, default_value = "ipfix", value_name = "v5|v9|ipfix|sflow")]
    proto: Proto,
    /// Seed of the flow generators (one sequence per exporter).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Client addresses per address family (10.0.0.0/8, 2001:db8:c1::/48).
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Server addresses per address family (172.16.0.0/12, 2001:db8:5e::/48).
    #[arg(long, default_value_t = 1_000)]
    servers: u32,
    /// Zipf exponent of the heavy talkers (0: uniform).
    #[arg(long, default_value_t = 1.1)]
    zipf: f64,
    /// Share of IPv6 flows, 0..1 (default 0.2; 0 for v5, which carries IPv4 only).
    #[arg(long)]
    ipv6: Option<f64>,
    /// Distinct server ports per protocol.
    #[arg(long, default_value_t = 64)]
    ports: u32,
    /// Protocol mix, NAME=WEIGHT,... (tcp, udp, icmp, gre, esp, sctp or a number).
    #[arg(long, default_value = "tcp=80,udp=17,icmp=3")]
    protocols: String,
    /// Interfaces per exporter (named in options data: v9/IPFIX).
    #[arg(long, default_value_t = 8)]
    interfaces: u32,
    /// Sampling: one packet in N (options data, the v5 header, or each sFlow sample).
    #[arg(long, default_value_t = 100)]
    sampling: u32,
    /// At most this many flow records (sFlow: samples) per datagram (default: fill 1400
    /// bytes; v5: 30).
    #[arg(long)]
    records_per_datagram: Option<usize>,
    /// Resend templates and options data (sFlow: counter samples) every N datagrams...
    #[arg(long, default_value_t = 4096)]
    refresh_every: u32,
    /// ... or this often, whichever comes first.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    refresh_interval: Duration,
}

impl ModelArgs {
    fn config(&self, exporters: usize, count: Option<u64>) -> Result<SynthConfig> {
        let mix = parse_mix(&self.protocols).map_err(anyhow::Error::msg)?;
        let ipv6 = self
            .ipv6
            .unwrap_or(if self.proto == Proto::V5 { 0.0 } else { 0.2 });
        Ok(SynthConfig {
            proto: self.proto,
            exporters,
            model: ModelConfig {
                clients: self.clients,
                servers: self.servers,
                zipf: self.zipf,
                ipv6,
                ports: self.ports,
                mix,
                interfaces: self.interfaces,
            },
            seed: self.seed,
            sampling: self.sampling,
            max_records: self.records_per_datagram,
            refresh_every: self.refresh_every,
            refresh_interval_ms: self.refresh_interval.as_millis().min(i64::MAX as u128) as i64,
            count,
        })
    }
}

#[derive(clap::Args, Debug)]
struct SynthArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    send: SendArgs,
    /// Run for this long (default 10s).
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Send this many flow records (sFlow: flow samples) over all exporters, then stop.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Also write every datagram sent to this pcap file (for tshark or `sluice decode`).
    #[arg(long, value_name = "FILE")]
    pcap_out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct SoakArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// How long to hold the load.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    duration: Duration,
    /// Datagrams per second over all exporters: well under the collector's capacity.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Simulated exporters.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=65536))]
    exporters: u32,
    /// Seconds at the start left out of the RSS fit.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    warmup: Duration,
    /// Largest RSS growth allowed after the warm-up, MiB per minute (least-squares slope).
    #[arg(long, default_value_t = soak::DEFAULT_MAX_RSS_GROWTH_MIB)]
    max_rss_growth: f64,
    /// The sluice binary (default: $SLUICE_BIN, else `sluice` beside this executable).
    #[arg(long, value_name = "PATH")]
    sluice: Option<PathBuf>,
    /// The collector's receive threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Directory for the collector's config, log and data (default: a temporary one, removed
    /// after a passing run).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Draw the run into this SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Replay(a) => run_replay(a),
        Cmd::Synth(a) => run_synth(a),
        Cmd::Soak(a) => run_soak(a),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("sluice-loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

fn resolve(to: &str) -> Result<SocketAddr> {
    to.to_socket_addrs()
        .with_context(|| format!("--to {to:?}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--to {to:?} resolves to no address"))
}

/// The progress line: rewritten in place on a terminal, else one line every `every` seconds.
fn progress_line(tty: bool, every: u64) -> impl FnMut(&Progress) {
    move |p: &Progress| {
        if !tty && !p.elapsed.as_secs().is_multiple_of(every.max(1)) {
            return;
        }
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
    }
}

/// What the collector said about a run.
struct CollectorReport {
    delta: Snapshot,
    latency: Option<Latency>,
    /// Why there is no latency, if there is none.
    latency_note: Option<String>,
}

/// Before a run: the counters and (if asked) the record ages.
fn scrape_before(url: &MetricsUrl, ages: bool) -> Result<(Snapshot, Option<Ages>, Option<String>)> {
    let snap = Snapshot::scrape(url).context("scraping --metrics before the run")?;
    if !ages {
        return Ok((snap, None, None));
    }
    match Ages::fetch(url) {
        Ok(a) => Ok((snap, Some(a), None)),
        Err(e) => Ok((
            snap,
            None,
            Some(format!(
                "no latency: the collector has no record-age distribution at {} ({e})",
                sluice_loadgen::latency::RECORD_AGE_PATH
            )),
        )),
    }
}

/// After a run: waits for the store to settle, then reads counters and ages.
fn scrape_after(
    url: &MetricsUrl,
    before: &Snapshot,
    ages_before: Option<&Ages>,
    note: Option<String>,
    expected: u64,
) -> Result<CollectorReport> {
    eprintln!("waiting for the collector's store to settle...");
    let after = wait_settled(
        url,
        before,
        expected,
        Duration::from_secs(3),
        Duration::from_secs(15),
    )
    .context("scraping --metrics after the run")?;
    let (latency, latency_note) = match ages_before {
        Some(b) => match Ages::fetch(url) {
            Ok(a) => match a.since(b).latency() {
                Some(l) => (Some(l), None),
                None => (None, Some("no latency: no record was stored".into())),
            },
            Err(e) => (None, Some(format!("no latency: {e}"))),
        },
        None => (None, note),
    };
    Ok(CollectorReport {
        delta: after.delta(before),
        latency,
        latency_note,
    })
}

/// Records the collector should store for what was sent: the flow records, and for sFlow
/// also the counter samples (stored as documents of their own).
fn stored_due(stats: &SendStats, sflow: bool) -> u64 {
    if sflow {
        stats.flow_records + stats.options_records
    } else {
        stats.flow_records
    }
}

fn loss_percent(sent: u64, stored: Option<f64>) -> Option<f64> {
    let stored = stored?;
    (sent > 0).then(|| 100.0 * (1.0 - stored / sent as f64))
}

fn latency_json(l: &Latency) -> Value {
    json!({
        "records": l.count,
        "p50_ms": l.p50_ms,
        "p99_ms": l.p99_ms,
        "p99_9_ms": l.p999_ms,
        "max_ms": l.max_ms,
    })
}

fn collector_json(c: &CollectorReport, sent: u64, sflow: bool) -> Value {
    let d = &c.delta;
    let decoded = if sflow {
        d.decoded_sflow_samples
    } else {
        d.decoded_flow_records
    };
    let options = if sflow {
        d.decoded_sflow_counters
    } else {
        d.decoded_options_records
    };
    let mut v = json!({
        "received_packets": d.received_packets,
        "decoded_records": decoded,
        "decoded_options_records": options,
        "stored_records": d.stored_records,
        "kernel_drops": d.kernel_drops,
        "pipeline_drops": d.pipeline_drops,
        "exporter_missing": d.exporter_missing,
        "decode_errors": d.decode_errors,
        "loss_percent": loss_percent(sent, d.stored_records),
    });
    if let Some(l) = &c.latency {
        v["latency"] = latency_json(l);
    }
    if let Some(n) = &c.latency_note {
        v["latency_note"] = json!(n);
    }
    v
}

fn print_sent(stats: &SendStats, exporters: usize, rate: Rate, to: SocketAddr) {
    println!(
        "sent {} packets, {} records ({} options records), {} bytes in {:.3} s from {} exporter(s){}",
        stats.packets,
        stats.flow_records,
        stats.options_records,
        stats.bytes,
        stats.elapsed.as_secs_f64(),
        exporters,
        if stats.loops > 0 {
            format!(", {} full loop(s)", stats.loops)
        } else {
            String::new()
        }
    );
    println!(
        "rate: {:.0} packets/s, {:.0} records/s{}",
        stats.pps(),
        stats.records_per_sec(),
        match rate {
            Rate::Max => String::new(),
            Rate::Pps(p) => format!(
                " (target {p} packets/s, {:+.2}%)",
                100.0 * (stats.pps() / p - 1.0)
            ),
        }
    );
    if stats.send_errors > 0 {
        println!(
            "send errors (retried): {} (refused or cut-short sends: is anything listening at \
             {to}?)",
            stats.send_errors
        );
    }
}

fn print_collector(c: &CollectorReport, sent: u64, sflow: bool) {
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    let d = &c.delta;
    let (decoded, options) = if sflow {
        (d.decoded_sflow_samples, d.decoded_sflow_counters)
    } else {
        (d.decoded_flow_records, d.decoded_options_records)
    };
    println!(
        "collector: received {} packets, decoded {} records and {} options records, stored {} \
         records, kernel drops {}, pipeline drops {} records, exporter missing {}, decode \
         errors {}, loss {}",
        f(d.received_packets),
        f(decoded),
        f(options),
        f(d.stored_records),
        f(d.kernel_drops),
        f(d.pipeline_drops),
        f(d.exporter_missing),
        f(d.decode_errors),
        loss_percent(sent, d.stored_records).map_or("n/a".to_string(), |l| format!("{l:.2}%"))
    );
    if let Some(l) = &c.latency {
        println!(
            "latency (flow end = send time -> durable in the store), {} records: p50 {:.1} ms, \
             p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
            l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
    if let Some(n) = &c.latency_note {
        println!("{n}");
    }
}

fn write_plot(path: &Path, points: &[Point], info: &PlotInfo) -> Result<()> {
    soak::write_file(path, &plot::svg(points, info))
        .with_context(|| format!("writing --plot {}", path.display()))?;
    eprintln!("plot: {}", path.display());
    Ok(())
}

fn run_replay(a: ReplayArgs) -> Result<bool> {
    let s = &a.send;
    let to = resolve(&s.to)?;
    let metrics = s.metrics.as_deref().map(MetricsUrl::parse).transpose()?;
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
        rate: s.rate,
        exporters: s.exporters as usize,
        stop,
        batch: usize::from(s.batch),
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
        Some(u) => Some(scrape_before(u, false)?.0),
        None => None,
    };
    let live = Arc::new(LiveCounters::default());
    let sampler = s
        .plot
        .as_ref()
        .map(|_| Sampler::start(Arc::clone(&live), metrics.clone(), before, s.collector_pid));
    let tty = std::io::stderr().is_terminal();
    let mut progress = progress_line(tty, 1);
    let mut hooks = Hooks {
        progress: Some(&mut progress),
        live: Some(&live),
        ..Hooks::default()
    };
    let stats = replay_with(&cap, &cfg, &mut hooks).context("sending")?;
    if tty && stats.elapsed >= Duration::from_secs(1) {
        eprintln!();
    }
    let collector = match (&metrics, &before) {
        (Some(u), Some(b)) => Some(scrape_after(u, b, None, None, stats.flow_records)?),
        _ => None,
    };
    if let (Some(path), Some(sm)) = (&s.plot, sampler) {
        let points = sm.finish();
        let info = PlotInfo {
            title: format!("sluice-loadgen replay {}", a.file.display()),
            subtitle: format!(
                "{} exporter(s) to {to}, rate {}, {} records sent",
                cfg.exporters, cfg.rate, stats.flow_records
            ),
            ..PlotInfo::default()
        };
        write_plot(path, &points, &info)?;
    }
    if s.json {
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
        if let Some(c) = &collector {
            v["collector"] = collector_json(c, stats.flow_records, false);
        }
        println!("{v}");
    } else {
        print_sent(&stats, cfg.exporters, cfg.rate, to);
        if let Some(c) = &collector {
            print_collector(c, stats.flow_records, false);
        }
    }
    Ok(true)
}

fn run_synth(a: SynthArgs) -> Result<bool> {
    let s = &a.send;
    let to = resolve(&s.to)?;
    let metrics = s.metrics.as_deref().map(MetricsUrl::parse).transpose()?;
    let cfg = a.model.config(s.exporters as usize, a.count)?;
    let duration = match (a.duration, a.count) {
        (_, Some(_)) => None,
        (Some(d), None) if d.is_zero() => bail!("--duration must be more than zero"),
        (Some(d), None) => Some(d),
        (None, None) => Some(Duration::from_secs(10)),
    };
    let mut synth = Synth::new(cfg.clone(), wall_clock().0).map_err(anyhow::Error::msg)?;
    eprintln!(
        "synth: {} as {} exporter(s) to {to}, rate {}, {}; {} clients and {} servers per \
         family (Zipf {}), {:.0} % IPv6, {} ports, mix {}, {} interfaces, sampling 1:{}",
        cfg.proto,
        cfg.exporters,
        s.rate,
        match (duration, cfg.count) {
            (Some(d), _) => format!("for {d:?}"),
            (None, Some(n)) => format!("{n} records"),
            _ => String::new(),
        },
        cfg.model.clients,
        cfg.model.servers,
        cfg.model.zipf,
        cfg.model.ipv6 * 100.0,
        cfg.model.ports,
        a.model.protocols,
        cfg.model.interfaces,
        cfg.sampling
    );
    let (before, ages_before, note) = match &metrics {
        Some(u) => {
            let (b, ab, n) = scrape_before(u, true)?;
            (Some(b), ab, n)
        }
        None => (None, None, None),
    };
    let mut pcap = a
        .pcap_out
        .as_ref()
        .map(|p| PcapWriter::create(p, to).with_context(|| format!("--pcap-out {}", p.display())))
        .transpose()?;
    let pcap_error: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let mut write_pcap = |from: SocketAddr, ns: i64, payload: &[u8]| {
        if let Some(w) = pcap.as_mut() {
            if let Err(e) = w.write(from, ns, payload) {
                if let Ok(mut g) = pcap_error.lock() {
                    g.get_or_insert(e);
                }
            }
        }
    };
    let live = Arc::new(LiveCounters::default());
    let sampler = s
        .plot
        .as_ref()
        .map(|_| Sampler::start(Arc::clone(&live), metrics.clone(), before, s.collector_pid));
    let tty = std::io::stderr().is_terminal();
    let mut progress = progress_line(tty, 1);
    let send_cfg = SendConfig {
        to,
        rate: s.rate,
        duration,
        batch: usize::from(s.batch),
    };
    let mut hooks = Hooks {
        progress: Some(&mut progress),
        live: Some(&live),
        sent: a
            .pcap_out
            .as_ref()
            .map(|_| &mut write_pcap as &mut sluice_loadgen::send::SentHook<'_>),
        stop: None,
    };
    let stats = send(&mut synth, &send_cfg, &mut hooks).context("sending")?;
    if tty && stats.elapsed >= Duration::from_secs(1) {
        eprintln!();
    }
    if let Some(e) = pcap_error.lock().ok().and_then(|mut g| g.take()) {
        bail!("writing --pcap-out: {e}");
    }
    if let Some(w) = pcap.take() {
        let frames = w.frames;
        w.finish().context("writing --pcap-out")?;
        eprintln!("pcap: {frames} datagrams written");
    }
    let collector = match (&metrics, &before) {
        (Some(u), Some(b)) => Some(scrape_after(
            u,
            b,
            ages_before.as_ref(),
            note,
            stats.flow_records,
        )?),
        _ => None,
    };
    let sflow = cfg.proto == Proto::Sflow;
    if let (Some(path), Some(sm)) = (&s.plot, sampler) {
        let points = sm.finish();
        let mut sub = format!(
            "{} exporter(s) to {to}, rate {}, {} records sent",
            cfg.exporters, s.rate, stats.flow_records
        );
        if let Some(l) = collector.as_ref().and_then(|c| c.latency) {
            sub.push_str(&format!(
                "; latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            ));
        }
        let info = PlotInfo {
            title: format!("sluice-loadgen synth --proto {}", cfg.proto),
            subtitle: sub,
            ..PlotInfo::default()
        };
        write_plot(path, &points, &info)?;
    }
    if s.json {
        let mut v = json!({
            "proto": cfg.proto.to_string(),
            "to": to.to_string(),
            "exporters": cfg.exporters,
            "exporter_ports": stats.exporter_addrs.iter().map(|s| s.port()).collect::<Vec<_>>(),
            "rate_target_pps": match s.rate { Rate::Max => None, Rate::Pps(p) => Some(p) },
            "packets": stats.packets,
            "records": stats.flow_records,
            "options_records": stats.options_records,
            "bytes": stats.bytes,
            "duration_secs": stats.elapsed.as_secs_f64(),
            "pps": stats.pps(),
            "records_per_sec": stats.records_per_sec(),
            "send_errors": stats.send_errors,
        });
        if let Some(c) = &collector {
            v["collector"] = collector_json(c, stored_due(&stats, sflow), sflow);
        }
        println!("{v}");
    } else {
        print_sent(&stats, cfg.exporters, s.rate, to);
        if let Some(c) = &collector {
            print_collector(c, stored_due(&stats, sflow), sflow);
        }
    }
    Ok(true)
}

fn run_soak(a: SoakArgs) -> Result<bool> {
    if a.duration <= a.warmup + Duration::from_secs(20) {
        bail!("--duration must exceed --warmup by at least 20 s (the RSS fit needs 20 samples)");
    }
    if !(a.rate.is_finite() && a.rate > 0.0) {
        bail!("--rate must be a positive number of datagrams per second");
    }
    if !(a.max_rss_growth.is_finite() && a.max_rss_growth >= 0.0) {
        bail!("--max-rss-growth must be a non-negative number of MiB per minute");
    }
    let bin = a.sluice.clone().unwrap_or_else(soak::default_sluice_bin);
    if !bin.exists() {
        bail!(
            "no sluice binary at {} (build it with `cargo build --bin sluice`, or give --sluice \
             PATH / SLUICE_BIN)",
            bin.display()
        );
    }
    let cfg = a.model.config(a.exporters as usize, None)?;
    let mut synth = Synth::new(cfg.clone(), wall_clock().0).map_err(anyhow::Error::msg)?;
    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "sluice-soak-{}-{}",
                std::process::id(),
                wall_clock().0
            )),
            true,
        ),
    };
    let mut collector =
        Collector::start(&bin, &dir, cfg.proto, a.workers).map_err(anyhow::Error::msg)?;
    eprintln!(
        "soak: {} (pid {}) listening on {}, data in {}; {} {} exporter(s) at {} datagrams/s for \
         {:?} (warm-up {:?}, RSS growth limit {} MiB/min)",
        bin.display(),
        collector.pid,
        collector.listen,
        dir.display(),
        cfg.exporters,
        cfg.proto,
        a.rate,
        a.duration,
        a.warmup,
        a.max_rss_growth
    );
    let url = collector.metrics.clone();
    let (before, ages_before, note) = scrape_before(&url, true)?;
    let live = Arc::new(LiveCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = Sampler::start(
        Arc::clone(&live),
        Some(url.clone()),
        Some(before),
        Some(collector.pid),
    );
    let send_cfg = SendConfig {
        to: collector.listen,
        rate: Rate::Pps(a.rate),
        duration: Some(a.duration),
        batch: 32,
    };
    let started = Instant::now();
    let sender = {
        let (live, stop) = (Arc::clone(&live), Arc::clone(&stop));
        let tty = std::io::stderr().is_terminal();
        std::thread::spawn(move || {
            let mut progress = progress_line(tty, 10);
            let mut hooks = Hooks {
                progress: Some(&mut progress),
                live: Some(&live),
                stop: Some(&stop),
                sent: None,
            };
            let r = send(&mut synth, &send_cfg, &mut hooks);
            if tty {
                eprintln!();
            }
            r
        })
    };
    // Watch the collector while the load runs.
    let mut problem = None;
    while !sender.is_finished() {
        if let Some(p) = collector.exited() {
            problem = Some(format!("{p} during the run"));
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = match sender.join() {
        Ok(r) => r.context("sending")?,
        Err(_) => bail!("the sender thread panicked"),
    };
    let sent_for = started.elapsed().min(a.duration);
    let report = if problem.is_none() {
        Some(scrape_after(
            &url,
            &before,
            ages_before.as_ref(),
            note,
            stats.flow_records,
        )?)
    } else {
        None
    };
    let points = sampler.finish();
    match collector.stop(Duration::from_secs(30)) {
        Ok(st) if st.success() => {}
        Ok(st) => {
            problem.get_or_insert(format!("exited with {st} on SIGTERM"));
        }
        Err(e) => {
            problem.get_or_insert(e);
        }
    }
    let data = SoakData {
        proto: cfg.proto,
        packets_due: a.rate * sent_for.as_secs_f64(),
        packets_sent: stats.packets,
        flows_sent: stats.flow_records,
        options_sent: stats.options_records,
        collector: report.as_ref().map(|r| r.delta).unwrap_or_default(),
        points,
        process_problem: problem,
    };
    let th = Thresholds {
        warmup_secs: a.warmup.as_secs_f64(),
        max_rss_growth: a.max_rss_growth * 1024.0 * 1024.0,
        ..Thresholds::default()
    };
    let verdict = soak::judge(&data, &th);
    let rss: Vec<u64> = data.points.iter().filter_map(|p| p.rss).collect();
    let mib = |b: u64| b as f64 / 1048576.0;
    let (rss_first, rss_max, rss_last) = (
        rss.first().copied().map(mib),
        rss.iter().max().copied().map(mib),
        rss.last().copied().map(mib),
    );
    let latency = report.as_ref().and_then(|r| r.latency);
    if let Some(path) = &a.plot {
        let mut sub = format!(
            "{} {} exporter(s), {} datagrams/s, {} flow records; {}",
            cfg.exporters,
            cfg.proto,
            a.rate,
            stats.flow_records,
            if verdict.passed() {
                "PASSED".to_string()
            } else {
                format!("FAILED: {}", verdict.failures.join("; "))
            }
        );
        if let Some(l) = latency {
            sub.push_str(&format!(
                "; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            ));
        }
        let info = PlotInfo {
            title: format!("sluice-loadgen soak, {:?}", a.duration),
            subtitle: sub,
            rss_fit: verdict.rss_fit,
            warmup: Some(th.warmup_secs),
        };
        write_plot(path, &data.points, &info)?;
    }
    if a.json {
        let mut v = json!({
            "passed": verdict.passed(),
            "failures": verdict.failures,
            "proto": cfg.proto.to_string(),
            "exporters": cfg.exporters,
            "rate_pps": a.rate,
            "duration_secs": sent_for.as_secs_f64(),
            "packets": stats.packets,
            "records": stats.flow_records,
            "options_records": stats.options_records,
            "rss_mib": {"first": rss_first, "max": rss_max, "last": rss_last,
                        "slope_mib_per_min": verdict.rss_mib_per_min(),
                        "last_half_slope_mib_per_min":
                            verdict.rss_late_slope.map(|s| s * 60.0 / 1048576.0),
                        "samples_fitted": verdict.rss_samples,
                        "limit_mib_per_min": a.max_rss_growth},
        });
        if let Some(r) = &report {
            v["collector"] = collector_json(
                r,
                stored_due(&stats, cfg.proto == Proto::Sflow),
                cfg.proto == Proto::Sflow,
            );
        }
        println!("{v}");
    } else {
        print_sent(&stats, cfg.exporters, Rate::Pps(a.rate), collector.listen);
        if let Some(r) = &report {
            print_collector(
                r,
                stored_due(&stats, cfg.proto == Proto::Sflow),
                cfg.proto == Proto::Sflow,
            );
        }
        println!(
            "RSS: {} MiB at start, {} MiB peak, {} MiB at the end; after the {:.0} s warm-up {} \
             ({} over its last half; limit {} MiB/min, {} samples)",
            rss_first.map_or("n/a".into(), |v| format!("{v:.1}")),
            rss_max.map_or("n/a".into(), |v| format!("{v:.1}")),
            rss_last.map_or("n/a".into(), |v| format!("{v:.1}")),
            th.warmup_secs,
            verdict
                .rss_mib_per_min()
                .map_or("no fit".into(), |s| format!("{s:+.3} MiB/min")),
            verdict.rss_late_slope.map_or("no fit".into(), |s| format!(
                "{:+.3} MiB/min",
                s * 60.0 / 1048576.0
            )),
            a.max_rss_growth,
            verdict.rss_samples
        );
    }
    if verdict.passed() {
        println!("SOAK PASSED");
        if temporary {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(true)
    } else {
        for f in &verdict.failures {
            println!("SOAK FAILED: {f}");
        }
        eprintln!(
            "collector log ({}):\n{}",
            collector.log.display(),
            collector.log_tail()
        );
        eprintln!("soak directory kept: {}", dir.display());
        Ok(false)
    }
}
