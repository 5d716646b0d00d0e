//! Once a second during a run: what the sender has sent, what the collector says (its
//! `/metrics`, as counters since the run started) and the collector's resident memory. The
//! soak judges these points; `--plot` draws them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::{MetricsUrl, Snapshot};
use crate::send::LiveCounters;

/// One sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// Seconds since the sampler started.
    pub t: f64,
    /// Flow records sent so far.
    pub sent: u64,
    /// Options records (sFlow: counter samples) sent so far.
    pub sent_options: u64,
    /// The collector's counters since the start (`None`: no metrics URL, or the scrape
    /// failed).
    pub collector: Option<Snapshot>,
    /// The collector's resident set size, bytes (`None`: no process to read).
    pub rss: Option<u64>,
}

impl Point {
    /// Records the collector reports lost so far: sequence gaps, kernel drops and pipeline
    /// drops.
    pub fn lost(&self) -> Option<f64> {
        let c = self.collector?;
        Some(c.exporter_missing? + c.kernel_drops? + c.pipeline_drops?)
    }

    /// Records the collector has stored so far.
    pub fn stored(&self) -> Option<f64> {
        self.collector?.stored_records
    }
}

/// VmRSS of process `pid` from `/proc/PID/status`, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&s)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut it = line["VmRSS:".len()..].split_whitespace();
    let v: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") | None => Some(v * 1024),
        _ => None,
    }
}

/// Takes one point now.
pub fn sample(
    t: f64,
    live: &LiveCounters,
    metrics: Option<&MetricsUrl>,
    before: Option<&Snapshot>,
    pid: Option<u32>,
) -> Point {
    let (_, sent, sent_options) = live.read();
    let collector = metrics.and_then(|u| {
        let now = Snapshot::scrape(u).ok()?;
        Some(match before {
            Some(b) => now.delta(b),
            None => now,
        })
    });
    Point {
        t,
        sent,
        sent_options,
        collector,
        rss: pid.and_then(rss_bytes),
    }
}

/// A thread that takes a point every second until stopped.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    points: Arc<Mutex<Vec<Point>>>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(
        live: Arc<LiveCounters>,
        metrics: Option<MetricsUrl>,
        before: Option<Snapshot>,
        pid: Option<u32>,
    ) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let points = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (stop, points) = (Arc::clone(&stop), Arc::clone(&points));
            std::thread::Builder::new()
                .name("loadgen-sampler".into())
                .spawn(move || {
                    let start = Instant::now();
                    let mut k = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let due = Duration::from_secs(u64::from(k));
                        let t = start.elapsed();
                        if t < due {
                            std::thread::sleep((due - t).min(Duration::from_millis(50)));
                            continue;
                        }
                        let p = sample(
                            t.as_secs_f64(),
                            &live,
                            metrics.as_ref(),
                            before.as_ref(),
                            pid,
                        );
                        match points.lock() {
                            Ok(mut v) => v.push(p),
                            Err(e) => e.into_inner().push(p),
                        }
                        k += 1;
                    }
                })
                .ok()
        };
        Sampler {
            stop,
            points,
            handle,
        }
    }

    /// The points so far.
    pub fn points(&self) -> Vec<Point> {
        match self.points.lock() {
            Ok(v) => v.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    /// Stops the thread and returns every point.
    pub fn finish(mut self) -> Vec<Point> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.points()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss() {
        let s = "Name:\tsluice\nVmPeak:\t  100 kB\nVmRSS:\t   51200 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(s), Some(51200 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: x kB\n"), None);
        // This process has one.
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
