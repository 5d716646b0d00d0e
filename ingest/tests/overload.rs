//! Overload: the collector throttled by a CPU quota (a cgroup: v1 `cpu.cfs_quota_us` or v2
//! `cpu.max`) while a sender drives twice the rate it can take, then falls back.
//!
//! 1. Calibration: a short blast measures the datagrams a second the throttled collector
//!    decodes and stores (its capacity C; loss starts above it).
//! 2. Overload: 2 × C for `SLUICE_OVERLOAD_SECS` (60 s unless set). RSS, sampled every
//!    second, must stay within [`RSS_GROWTH_BOUND`] of where it started; the excess must show
//!    up as counted drops (the socket's kernel drop counter, or the pipeline's own).
//! 3. Recovery: the load falls to a third of C; every datagram of that phase is received
//!    and every record stored, with no new drop of any kind.
//!
//! Throughout, nothing goes missing uncounted: datagrams sent = received + kernel drops
//! (+ drops in the loopback device's backlog, read from /proc/net/softnet_stat), and records
//! decoded = stored + dropped by the pipeline. The test prints its figures (BENCHMARKS.md
//! keeps them).

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::collector::{wait_until, Collector, Options, TempDir};

/// Records per NetFlow v5 datagram the sender builds (the v5 maximum).
const RECORDS: u16 = 30;
/// CPU quota of the collector: a quarter of one core.
const QUOTA_US: u64 = 25_000;
const PERIOD_US: u64 = 100_000;
/// RSS the collector may gain during the overload phase. Its buffers are bounded (receive
/// batches per worker, the channel to the store, the store's open blocks), so growth beyond
/// this means something queues without a limit.
const RSS_GROWTH_BOUND: u64 = 64 << 20;

/// A cgroup with a CPU quota, removed on drop (its processes moved back to the root first).
struct CpuQuota {
    dir: PathBuf,
    procs_root: PathBuf,
}

impl CpuQuota {
    fn new(name: &str) -> CpuQuota {
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let v2 = PathBuf::from("/sys/fs/cgroup");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir).expect("create a v1 cpu cgroup (root needed)");
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string()).expect("period");
            std::fs::write(dir.join("cpu.cfs_quota_us"), QUOTA_US.to_string()).expect("quota");
            CpuQuota {
                dir,
                procs_root: v1.join("cgroup.procs"),
            }
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu"))
        {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            let dir = v2.join(name);
            std::fs::create_dir_all(&dir).expect("create a v2 cgroup (root needed)");
            std::fs::write(dir.join("cpu.max"), format!("{QUOTA_US} {PERIOD_US}"))
                .expect("cpu.max");
            CpuQuota {
                dir,
                procs_root: v2.join("cgroup.procs"),
            }
        } else {
            panic!(
                "no cgroup CPU controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max) to throttle with"
            );
        }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .expect("move the collector into the cgroup");
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        if let Ok(p) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in p.split_whitespace() {
                let _ = std::fs::write(&self.procs_root, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A NetFlow v5 datagram of [`RECORDS`] records with sequence `seq` (flows before it).
fn v5_datagram(seq: u32, boot: Instant) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let uptime = boot.elapsed().as_millis() as u32 + 1000;
    let mut b = Vec::with_capacity(24 + 48 * usize::from(RECORDS));
    b.extend_from_slice(&5u16.to_be_bytes());
    b.extend_from_slice(&RECORDS.to_be_bytes());
    b.extend_from_slice(&uptime.to_be_bytes());
    b.extend_from_slice(&(now.as_secs() as u32).to_be_bytes());
    b.extend_from_slice(&now.subsec_nanos().to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]); // engine type and id, sampling
    for i in 0..u32::from(RECORDS) {
        let n = seq.wrapping_add(i);
        b.extend_from_slice(&(0x0a00_0000 | (n & 0xffff)).to_be_bytes()); // src 10.0.x.y
        b.extend_from_slice(&(0xc633_6400 | (n % 200)).to_be_bytes()); // dst 198.51.100.z
        b.extend_from_slice(&[0; 4]); // next hop
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&2u16.to_be_bytes());
        b.extend_from_slice(&(1 + n % 50).to_be_bytes()); // packets
        b.extend_from_slice(&(64 + n % 9000).to_be_bytes()); // bytes
        b.extend_from_slice(&uptime.saturating_sub(500).to_be_bytes());
        b.extend_from_slice(&uptime.to_be_bytes());
        b.extend_from_slice(&(1024 + (n % 50_000) as u16).to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b.extend_from_slice(&[0, 0x18, 6, 0]); // pad, flags, TCP, tos
        b.extend_from_slice(&[0; 4]); // AS numbers
        b.extend_from_slice(&[24, 24, 0, 0]);
    }
    b
}

/// Sends v5 datagrams at `rate` a second (updated live) until stopped; counts what it sent.
struct Sender {
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Sender {
    fn start(port: u16) -> Sender {
        let rate = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st) = (Arc::clone(&rate), Arc::clone(&sent), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
            let boot = Instant::now();
            let mut seq = 0u32;
            // Pacing: a credit that grows with the rate and elapsed time.
            let mut credit = 0.0f64;
            let mut last = Instant::now();
            while !st.load(Ordering::Relaxed) {
                let now = Instant::now();
                credit += r.load(Ordering::Relaxed) as f64 * (now - last).as_secs_f64();
                last = now;
                credit = credit.min(2000.0);
                while credit >= 1.0 {
                    let d = v5_datagram(seq, boot);
                    if sock.send_to(&d, ("127.0.0.1", port)).is_ok() {
                        seq = seq.wrapping_add(u32::from(RECORDS));
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                    credit -= 1.0;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        Sender {
            rate,
            sent,
            stop,
            handle: Some(handle),
        }
    }

    fn set_rate(&self, r: u64) {
        self.rate.store(r, Ordering::Relaxed);
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Datagrams dropped in the network stack's per-CPU backlog (second column of
/// /proc/net/softnet_stat, hex), summed over CPUs.
fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

struct Counters {
    received: f64,
    kernel: f64,
    pipeline: f64,
    decoded: f64,
    stored: f64,
}

fn counters(c: &Collector) -> Counters {
    Counters {
        received: c.metric("sluice_receive_packets_total"),
        kernel: c.metric("sluice_receive_kernel_drops_total"),
        pipeline: c.metric("sluice_pipeline_dropped_records_total"),
        decoded: c.metric("sluice_decode_records_total{kind=\"flow\"}"),
        stored: c.metric("sluice_store_records_total"),
    }
}

/// Waits until the collector's counters stop moving (its queues drained).
fn settle(c: &Collector) -> Counters {
    let mut prev = (-1.0, -1.0);
    assert!(
        wait_until(Duration::from_secs(30), || {
            let k = counters(c);
            let now = (k.received + k.kernel, k.stored + k.pipeline);
            let same = now == prev && k.decoded == k.stored + k.pipeline;
            prev = now;
            std::thread::sleep(Duration::from_millis(1200));
            same
        }),
        "the collector did not settle: {}",
        c.log_text()
    );
    counters(c)
}

#[test]
fn twice_capacity_under_a_cpu_quota_is_counted_bounded_and_recovered_from() {
    let secs: u64 = std::env::var("SLUICE_OVERLOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = TempDir::new("overload");
    let opts = Options {
        workers: 1,
        // A modest buffer, as on a box nobody tuned: the kernel drops soon under overload.
        recv_buffer: "1MiB".into(),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let pid = c.child.as_ref().expect("running").id();
    let quota = CpuQuota::new(&format!("sluice-overload-{}", std::process::id()));
    quota.add(pid);
    let softnet0 = softnet_drops();
    let sender = Sender::start(c.netflow_port);

    // 1. Calibration: far more than a quarter core can take, for 4 s.
    let k0 = counters(&c);
    let t0 = Instant::now();
    sender.set_rate(200_000);
    std::thread::sleep(Duration::from_secs(4));
    sender.set_rate(0);
    let k1 = settle(&c);
    // What it kept, not what it read: the receive threads read faster than the store
    // writes under the quota, and loss starts where the slowest stage is full.
    let capacity =
        (k1.stored - k0.stored) / f64::from(RECORDS) / t0.elapsed().as_secs_f64().min(4.5);
    assert!(
        k1.kernel > k0.kernel || k1.pipeline > k0.pipeline,
        "the calibration blast did not overload the throttled collector (took {capacity:.0}/s)"
    );
    let capacity = capacity.max(100.0);

    // 2. Overload: twice the capacity.
    let rss0 = rss_bytes(pid);
    let mut rss_max = rss0;
    let sent_before = sender.sent();
    sender.set_rate((2.0 * capacity) as u64);
    let t_over = Instant::now();
    while t_over.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        rss_max = rss_max.max(rss_bytes(pid));
    }
    sender.set_rate(0);
    let over_elapsed = t_over.elapsed().as_secs_f64();
    let sent_over = sender.sent() - sent_before;
    let k2 = settle(&c);
    let kernel_over = k2.kernel - k1.kernel;
    let pipeline_over = k2.pipeline - k1.pipeline;
    let received_over = k2.received - k1.received;
    eprintln!(
        "overload: quota {QUOTA_US}/{PERIOD_US} µs; capacity {capacity:.0} datagrams/s \
         ({:.0} records/s); drove {:.0}/s for {over_elapsed:.0} s: sent {sent_over}, \
         received {received_over}, kernel drops {kernel_over}, pipeline record drops \
         {pipeline_over}; RSS {} MiB -> max {} MiB",
        capacity * f64::from(RECORDS),
        sent_over as f64 / over_elapsed,
        rss0 >> 20,
        rss_max >> 20
    );
    assert!(
        kernel_over + pipeline_over > 0.0,
        "twice the capacity dropped nothing"
    );
    assert!(
        rss_max.saturating_sub(rss0) < RSS_GROWTH_BOUND,
        "RSS grew by {} MiB under overload (bound {} MiB)",
        (rss_max - rss0) >> 20,
        RSS_GROWTH_BOUND >> 20
    );

    // 3. Recovery: a third of the capacity, a fixed number of datagrams.
    let n = ((capacity / 3.0) * 5.0).max(200.0) as u64;
    let sent_before = sender.sent();
    sender.set_rate((capacity / 3.0) as u64);
    assert!(
        wait_until(Duration::from_secs(60), || sender.sent() >= sent_before + n),
        "the sender stalled"
    );
    sender.set_rate(0);
    let sent_rec = sender.sent() - sent_before;
    let k3 = settle(&c);
    eprintln!(
        "recovery: sent {sent_rec} at {:.0}/s: received {}, kernel drops {}, pipeline drops {}, stored {} records",
        capacity / 3.0,
        k3.received - k2.received,
        k3.kernel - k2.kernel,
        k3.pipeline - k2.pipeline,
        k3.stored - k2.stored
    );
    assert_eq!(k3.kernel, k2.kernel, "kernel drops after the load fell");
    assert_eq!(
        k3.pipeline, k2.pipeline,
        "pipeline drops after the load fell"
    );
    assert_eq!(k3.received - k2.received, sent_rec as f64, "datagrams lost");
    assert_eq!(
        k3.stored - k2.stored,
        (sent_rec * u64::from(RECORDS)) as f64,
        "records not stored"
    );

    // Accounting over the whole run: nothing vanished uncounted.
    let sent = sender.sent() as f64;
    let softnet = (softnet_drops() - softnet0) as f64;
    assert_eq!(
        k3.received + k3.kernel + softnet,
        sent,
        "datagrams sent = received + kernel drops + backlog drops"
    );
    assert_eq!(
        k3.decoded,
        k3.stored + k3.pipeline,
        "records decoded = stored + dropped"
    );
    assert_eq!(
        c.metric("sluice_decode_errors_total"),
        0.0,
        "{}",
        c.log_text()
    );
    drop(sender);
    drop(quota);
}
