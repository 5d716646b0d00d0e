//! `sluice-loadgen soak`: a collector under steady synthetic load, judged.
//!
//! [`Collector`] starts `sluice run` on loopback (free ports, a temporary data directory)
//! and stops it with SIGTERM. While synthetic exporters send at a fixed rate, a sampler reads
//! the collector's `/metrics` and its RSS every second ([`crate::timeline`]). [`judge`] then
//! fails the run on:
//! - loss: flow records sent vs stored, options records (sFlow: counter samples) sent vs
//!   decoded, any `sluice_exporter_missing`, kernel drops, pipeline drops;
//! - an error counter that moved: decode errors, store errors, receive errors (including
//!   truncated and denied datagrams), exporter restarts, templates evicted or expired;
//! - memory that keeps growing: the least-squares slope of RSS over the samples after the
//!   warm-up above `max_rss_growth` (bytes per minute), and still above it over the last half
//!   of those samples. The second fit tells a leak (it grows to the end) from a bounded step
//!   (a burst made the collector keep a few more batches, then RSS stays flat), which lifts
//!   a single fit over the whole window just as much;
//! - a collector that died, or did not exit cleanly on SIGTERM;
//! - a load that was not held (fewer than 95 % of the datagrams due at the target rate), since
//!   a soak that did not send proves nothing;
//! - the record-age histogram missing records (its count must equal the records stored).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::metrics::{MetricsUrl, Snapshot};
use crate::plot::Fit;
use crate::synth::Proto;
use crate::timeline::Point;

/// Fitted line y = intercept + slope * x by least squares; `None` with fewer than two
/// distinct x.
pub fn least_squares(pts: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// Limits a soak is judged by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Seconds at the start left out of the RSS fit.
    pub warmup_secs: f64,
    /// Largest RSS slope allowed after the warm-up, bytes per minute.
    pub max_rss_growth: f64,
    /// RSS samples needed after the warm-up for a fit.
    pub min_rss_samples: usize,
}

/// Default `--max-rss-growth`: 4 MiB per minute.
pub const DEFAULT_MAX_RSS_GROWTH_MIB: f64 = 4.0;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warmup_secs: 30.0,
            max_rss_growth: DEFAULT_MAX_RSS_GROWTH_MIB * 1024.0 * 1024.0,
            min_rss_samples: 20,
        }
    }
}

/// Everything a soak observed.
#[derive(Clone, Debug)]
pub struct SoakData {
    pub proto: Proto,
    /// Datagrams due at the target rate over the sending time, and sent.
    pub packets_due: f64,
    pub packets_sent: u64,
    pub flows_sent: u64,
    pub options_sent: u64,
    /// The collector's counters since before the run, after it settled.
    pub collector: Snapshot,
    pub points: Vec<Point>,
    /// `None`: ran and stopped cleanly; else what went wrong with the process.
    pub process_problem: Option<String>,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Empty when the soak passed.
    pub failures: Vec<String>,
    /// RSS fit after the warm-up (bytes over seconds).
    pub rss_fit: Option<Fit>,
    /// RSS slope over the last half of those samples, bytes per second.
    pub rss_late_slope: Option<f64>,
    pub rss_samples: usize,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// RSS growth, MiB per minute.
    pub fn rss_mib_per_min(&self) -> Option<f64> {
        self.rss_fit.map(|f| f.slope * 60.0 / (1024.0 * 1024.0))
    }
}

/// Judges a soak (see the module doc).
pub fn judge(d: &SoakData, th: &Thresholds) -> Verdict {
    let mut fail = Vec::new();
    let c = &d.collector;
    if let Some(p) = &d.process_problem {
        fail.push(format!("collector process: {p}"));
    }
    if (d.packets_sent as f64) < 0.95 * d.packets_due {
        fail.push(format!(
            "load not held: {} datagrams sent of {:.0} due at the target rate",
            d.packets_sent, d.packets_due
        ));
    }
    let mut need = |name: &str, v: Option<f64>| -> f64 {
        match v {
            Some(v) => v,
            None => {
                fail.push(format!("{name} not found on the collector's /metrics"));
                f64::NAN
            }
        }
    };
    let stored = need("sluice_store_records_total", c.stored_records);
    let (decoded, options) = if d.proto == Proto::Sflow {
        (
            need("decoded sFlow samples", c.decoded_sflow_samples),
            need("decoded sFlow counter samples", c.decoded_sflow_counters),
        )
    } else {
        (
            need("decoded flow records", c.decoded_flow_records),
            need("decoded options records", c.decoded_options_records),
        )
    };
    let missing = need("sluice_exporter_missing", c.exporter_missing);
    let kernel = need("sluice_receive_kernel_drops_total", c.kernel_drops);
    let pipeline = need("sluice_pipeline_dropped_records_total", c.pipeline_drops);
    let errors = [
        (
            "decode errors (sluice_decode_errors_total)",
            c.decode_errors,
        ),
        ("store errors (sluice_store_errors_total)", c.store_errors),
        (
            "receive errors, truncated or denied datagrams",
            c.receive_errors,
        ),
        (
            "exporter restarts (sluice_decode_exporter_restarts_total)",
            c.exporter_restarts,
        ),
        ("templates evicted or expired", c.templates_lost),
    ]
    .map(|(n, v)| (n, need(n, v)));
    let sent = d.flows_sent as f64;
    // sFlow counter samples are stored as documents of their own.
    let stored_due = if d.proto == Proto::Sflow {
        sent + options
    } else {
        sent
    };
    if stored != stored_due {
        fail.push(format!(
            "loss: {} flow records sent, {} stored ({:+})",
            d.flows_sent,
            stored,
            stored - stored_due
        ));
    }
    if decoded != sent {
        fail.push(format!(
            "decode: {} flow records sent, {} decoded",
            d.flows_sent, decoded
        ));
    }
    if options != d.options_sent as f64 {
        fail.push(format!(
            "options: {} options records (sFlow: counter samples) sent, {} decoded",
            d.options_sent, options
        ));
    }
    for (name, v) in [
        (
            "sequence numbers: records/datagrams missing (sluice_exporter_missing)",
            missing,
        ),
        ("kernel drops", kernel),
        ("pipeline drops", pipeline),
    ] {
        if v != 0.0 {
            fail.push(format!("loss: {name} = {v}"));
        }
    }
    for (name, v) in errors {
        if v != 0.0 {
            fail.push(format!("error counter moved: {name} +{v}"));
        }
    }
    if let Some(ages) = c.record_ages {
        if ages != stored {
            fail.push(format!(
                "record-age histogram counted {ages} records, the store {stored}"
            ));
        }
    }
    let rss: Vec<(f64, f64)> = d
        .points
        .iter()
        .filter(|p| p.t >= th.warmup_secs)
        .filter_map(|p| Some((p.t, p.rss? as f64)))
        .collect();
    let fit = least_squares(&rss).map(|(slope, intercept)| Fit {
        from_t: th.warmup_secs,
        slope,
        intercept,
    });
    let late = rss
        .first()
        .zip(rss.last())
        .map(|(a, b)| (a.0 + b.0) / 2.0)
        .and_then(|mid| {
            let tail: Vec<(f64, f64)> = rss.iter().copied().filter(|p| p.0 >= mid).collect();
            least_squares(&tail).map(|(slope, _)| slope)
        });
    if rss.len() < th.min_rss_samples {
        fail.push(format!(
            "RSS: {} samples after the {:.0} s warm-up, {} needed to judge growth (run longer)",
            rss.len(),
            th.warmup_secs,
            th.min_rss_samples
        ));
    } else if let (Some(f), Some(late)) = (fit, late) {
        let (per_min, late_per_min) = (f.slope * 60.0, late * 60.0);
        if per_min > th.max_rss_growth && late_per_min > th.max_rss_growth {
            fail.push(format!(
                "RSS keeps growing: {:+.3} MiB/min after the warm-up, {:+.3} MiB/min over its \
                 last half (limit {:.3} MiB/min)",
                per_min / 1048576.0,
                late_per_min / 1048576.0,
                th.max_rss_growth / 1048576.0
            ));
        }
    }
    Verdict {
        failures: fail,
        rss_fit: fit,
        rss_late_slope: late,
        rss_samples: rss.len(),
    }
}

/// A free port on loopback (bound, then released).
fn free_port(udp: bool) -> std::io::Result<u16> {
    Ok(if udp {
        UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
    } else {
        TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    })
}

/// The `sluice` binary: `SLUICE_BIN`, else beside this executable.
pub fn default_sluice_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("sluice")))
        .unwrap_or_else(|| PathBuf::from("sluice"))
}

/// A `sluice run` started for a soak.
#[derive(Debug)]
pub struct Collector {
    child: Option<Child>,
    pub pid: u32,
    /// Where the exporters send.
    pub listen: SocketAddr,
    pub metrics: MetricsUrl,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Collector {
    /// Writes a configuration into `dir` (data in `dir/data`) and starts `bin run`, with one
    /// listener for `proto` on 127.0.0.1 and the metrics endpoint on 127.0.0.1; waits until
    /// `/healthz` answers.
    pub fn start(
        bin: &Path,
        dir: &Path,
        proto: Proto,
        workers: usize,
    ) -> Result<Collector, String> {
        let io = |e: std::io::Error| e.to_string();
        std::fs::create_dir_all(dir).map_err(io)?;
        let port = free_port(true).map_err(io)?;
        let mport = free_port(false).map_err(io)?;
        let protocol = if proto == Proto::Sflow {
            "sflow"
        } else {
            "netflow"
        };
        let config = dir.join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[[listener]]\nname = \"soak\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"{protocol}\"\n\n\
                 [receive]\nworkers = {workers}\n\n\
                 [store]\ndata_dir = \"{}\"\n\n\
                 [metrics]\naddress = \"127.0.0.1:{mport}\"\n",
                dir.join("data").display()
            ),
        )
        .map_err(io)?;
        let log = dir.join("sluice.log");
        let out = std::fs::File::create(&log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let metrics = MetricsUrl::parse(&format!("http://127.0.0.1:{mport}/metrics"))
            .map_err(|e| e.to_string())?;
        let mut c = Collector {
            pid: child.id(),
            child: Some(child),
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            metrics,
            dir: dir.to_path_buf(),
            log,
        };
        let health = MetricsUrl {
            path: "/healthz".into(),
            ..c.metrics.clone()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if health.fetch(Duration::from_millis(500)).is_ok() {
                return Ok(c);
            }
            if let Some(problem) = c.exited() {
                return Err(format!(
                    "sluice run {problem} at start-up:\n{}",
                    c.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sluice run did not become healthy in 30 s:\n{}",
                    c.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `Some(how)` if the process has ended.
    pub fn exited(&mut self) -> Option<String> {
        let ch = self.child.as_mut()?;
        match ch.try_wait() {
            Ok(Some(st)) => Some(format!("exited ({st})")),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    /// The end of the collector's log.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then waits up to `grace` for a clean exit (SIGKILL after that).
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        let Some(mut ch) = self.child.take() else {
            return Err("already stopped".into());
        };
        if let Ok(Some(st)) = ch.try_wait() {
            return Ok(st);
        }
        // SAFETY: kill(2) with a pid this process spawned and has not yet waited for (so it
        // cannot have been reused) and a valid signal number.
        unsafe {
            libc::kill(ch.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            match ch.try_wait() {
                Ok(Some(st)) => return Ok(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = ch.kill();
                    let _ = ch.wait();
                    return Err(format!("did not stop within {grace:?} of SIGTERM"));
                }
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
    }
}

/// Writes `text` to `path`, creating parent directories.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    std::fs::File::create(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean_snapshot(n: f64, options: f64) -> Snapshot {
        Snapshot {
            received_packets: Some(1000.0),
            decoded_flow_records: Some(n),
            decoded_options_records: Some(options),
            decoded_sflow_samples: Some(0.0),
            decoded_sflow_counters: Some(0.0),
            stored_records: Some(n),
            kernel_drops: Some(0.0),
            pipeline_drops: Some(0.0),
            exporter_missing: Some(0.0),
            decode_errors: Some(0.0),
            store_errors: Some(0.0),
            receive_errors: Some(0.0),
            exporter_restarts: Some(0.0),
            templates_lost: Some(0.0),
            record_ages: Some(n),
        }
    }

    /// 90 one-second points with RSS from `rss(t)`.
    fn data(rss: impl Fn(f64) -> f64) -> SoakData {
        SoakData {
            proto: Proto::Ipfix,
            packets_due: 1000.0,
            packets_sent: 1000,
            flows_sent: 50_000,
            options_sent: 120,
            collector: clean_snapshot(50_000.0, 120.0),
            points: (0..90)
                .map(|i| Point {
                    t: f64::from(i),
                    rss: Some(rss(f64::from(i)) as u64),
                    ..Point::default()
                })
                .collect(),
            process_problem: None,
        }
    }

    const MIB: f64 = 1048576.0;

    #[test]
    fn fit() {
        let (s, i) = least_squares(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).expect("fit");
        assert!((s - 2.0).abs() < 1e-12 && (i - 1.0).abs() < 1e-12);
        assert_eq!(least_squares(&[(1.0, 1.0)]), None);
        assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn a_clean_flat_run_passes() {
        // 40 MiB with +-0.5 MiB of jitter and a 20 MiB climb during the warm-up.
        let d = data(|t| {
            let base = if t < 20.0 { 20.0 + t } else { 40.0 };
            (base + 0.5 * (t * 1.7).sin()) * MIB
        });
        let v = judge(&d, &Thresholds::default());
        assert!(v.passed(), "{:?}", v.failures);
        assert!(v.rss_mib_per_min().is_some_and(|s| s.abs() < 1.0));
        assert_eq!(v.rss_samples, 60);
    }

    #[test]
    fn growing_rss_fails() {
        // 5 MiB per minute after the warm-up, over the 4 MiB/min default.
        let d = data(|t| 40.0 * MIB + t * 5.0 * MIB / 60.0);
        let v = judge(&d, &Thresholds::default());
        assert_eq!(v.failures.len(), 1, "{:?}", v.failures);
        assert!(
            v.failures[0].contains("RSS keeps growing"),
            "{:?}",
            v.failures
        );
        let slope = v.rss_mib_per_min().expect("fit");
        assert!((slope - 5.0).abs() < 1e-6, "{slope}");
        // The same run judged with a 6 MiB/min limit passes.
        let lenient = Thresholds {
            max_rss_growth: 6.0 * MIB,
            ..Thresholds::default()
        };
        assert!(judge(&d, &lenient).passed());
    }

    #[test]
    fn a_step_that_settles_passes_and_one_that_keeps_climbing_fails() {
        // As seen at 170 k records/s: +16 MiB shortly after the warm-up (a burst made the
        // collector keep more batches), then flat. One fit over the window says about
        // +13 MiB/min; its last half is flat.
        let step = data(|t| if t < 40.0 { 28.0 * MIB } else { 44.0 * MIB });
        let v = judge(&step, &Thresholds::default());
        assert!(
            v.rss_mib_per_min().is_some_and(|s| s > 4.0),
            "{:?}",
            v.rss_fit
        );
        assert!(v.passed(), "{:?}", v.failures);
        // A staircase that keeps climbing to the end: a leak in steps.
        let stairs = data(|t| (40.0 + 2.0 * (t / 10.0).floor()) * MIB);
        let v = judge(&stairs, &Thresholds::default());
        assert!(!v.passed(), "{:?}", v);
        // A step late in the window cannot be told from growth: it fails (conservative).
        let late = data(|t| if t < 80.0 { 40.0 * MIB } else { 60.0 * MIB });
        assert!(!judge(&late, &Thresholds::default()).passed());
    }

    #[test]
    fn too_few_rss_samples_fail() {
        let mut d = data(|_| 40.0 * MIB);
        d.points.truncate(45);
        let v = judge(&d, &Thresholds::default());
        assert!(
            v.failures.iter().any(|f| f.contains("run longer")),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn every_loss_and_error_fails() {
        type Poke = fn(&mut SoakData);
        let cases: [(&str, Poke); 13] = [
            ("loss", |d| d.collector.stored_records = Some(49_999.0)),
            ("decode:", |d| {
                d.collector.decoded_flow_records = Some(49_000.0)
            }),
            ("options", |d| {
                d.collector.decoded_options_records = Some(119.0)
            }),
            ("sluice_exporter_missing", |d| {
                d.collector.exporter_missing = Some(1.0)
            }),
            ("kernel drops", |d| d.collector.kernel_drops = Some(3.0)),
            ("pipeline drops", |d| {
                d.collector.pipeline_drops = Some(4096.0)
            }),
            ("decode errors", |d| d.collector.decode_errors = Some(1.0)),
            ("store errors", |d| d.collector.store_errors = Some(1.0)),
            ("receive errors", |d| d.collector.receive_errors = Some(2.0)),
            ("restarts", |d| d.collector.exporter_restarts = Some(1.0)),
            ("evicted", |d| d.collector.templates_lost = Some(1.0)),
            ("collector process", |d| {
                d.process_problem = Some("exited (signal 9)".into())
            }),
            ("load not held", |d| d.packets_sent = 900),
        ];
        for (want, poke) in cases {
            let mut d = data(|_| 40.0 * MIB);
            poke(&mut d);
            let v = judge(&d, &Thresholds::default());
            assert!(!v.passed(), "{want}: passed");
            assert!(
                v.failures.iter().any(|f| f.contains(want)),
                "{want}: {:?}",
                v.failures
            );
        }
        // A counter absent from the page is a failure too, not a pass.
        let mut d = data(|_| 40.0 * MIB);
        d.collector.exporter_missing = None;
        let v = judge(&d, &Thresholds::default());
        assert!(
            v.failures.iter().any(|f| f.contains("not found")),
            "{:?}",
            v.failures
        );
        // sFlow runs compare samples and counter samples instead.
        let mut d = data(|_| 40.0 * MIB);
        d.proto = Proto::Sflow;
        assert!(!judge(&d, &Thresholds::default()).passed());
        d.collector.decoded_sflow_samples = Some(50_000.0);
        d.collector.decoded_sflow_counters = Some(120.0);
        // The 120 counter samples are stored as documents too.
        assert!(!judge(&d, &Thresholds::default()).passed());
        d.collector.stored_records = Some(50_120.0);
        d.collector.record_ages = Some(50_120.0);
        let v = judge(&d, &Thresholds::default());
        assert!(v.passed(), "{:?}", v.failures);
    }
}
