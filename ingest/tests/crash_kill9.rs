//! `sluice run` killed with SIGKILL while it writes, 20 times, under a steady load of replayed
//! NetFlow v9 and IPFIX: every restart must come up, and every record a run reported as
//! flushed (`sluice_store_records_total`, counted only after write(2) of its block returned)
//! must read back with `sluice dump` at the end, torn segment tails or not.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::collector::{http_get, metric_value, Collector, Options, TempDir};

/// Kills under load.
const KILLS: usize = 20;
/// Datagrams per second the sender aims at: enough that the store writes a block every flush
/// interval, little enough that two cores are not swamped by a debug-build collector.
const RATE: f64 = 2000.0;

/// A small xorshift generator: the run lengths need no more, and the seed is printed so that a
/// failing sequence can be replayed with `SLUICE_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A capture's datagrams with the number of flow records `sluice decode` finds in each.
fn datagrams(pcap: &Path) -> Vec<(Vec<u8>, u64)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("decode")
        .arg("--annotate")
        .arg(pcap)
        .output()
        .expect("run sluice decode");
    assert!(out.status.success(), "decode {}", pcap.display());
    let mut per_frame = std::collections::HashMap::<u64, u64>::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let d: serde_json::Value = serde_json::from_str(line).expect("json");
        let frame = d["sluice"]["frame"].as_u64().expect("sluice.frame");
        *per_frame.entry(frame).or_default() += 1;
    }
    common::pcap::read_udp_datagrams(pcap)
        .expect("read capture")
        .into_iter()
        .map(|d| {
            let n = per_frame.get(&d.frame).copied().unwrap_or(0);
            (d.payload, n)
        })
        .collect()
}

/// Replays both captures in a loop, each from its own socket (one exporter each), at about
/// [`RATE`] datagrams a second, until told to stop; returns (datagrams, flow records) sent.
fn sender(stop: Arc<AtomicBool>, ipfix_port: u16, netflow_port: u16) -> JoinHandle<(u64, u64)> {
    let caps = common::captures_dir();
    let streams = [
        (
            datagrams(&caps.join("generated/pmacctd_nfprobe_ipfix.pcap")),
            ipfix_port,
        ),
        (
            datagrams(&caps.join("netflow9/cisco_asa_1.pcap")),
            netflow_port,
        ),
    ];
    std::thread::spawn(move || {
        let socks: Vec<UdpSocket> = streams
            .iter()
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind sender"))
            .collect();
        let start = Instant::now();
        let (mut sent, mut records) = (0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            for ((dgs, port), sock) in streams.iter().zip(&socks) {
                for (payload, n) in dgs {
                    // While the collector is down the datagrams go nowhere; that is the load.
                    if sock.send_to(payload, ("127.0.0.1", *port)).is_ok() {
                        sent += 1;
                        records += n;
                    }
                    while sent as f64 > RATE * start.elapsed().as_secs_f64() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        (sent, records)
    })
}

/// One `/metrics` scrape, or None if the collector did not answer.
fn scrape(c: &Collector) -> Option<String> {
    match http_get(c.metrics, "/metrics") {
        Some((200, body)) => Some(body),
        _ => None,
    }
}

#[test]
fn kill9_under_load_loses_no_flushed_record() {
    let t0 = Instant::now();
    let seed = std::env::var("SLUICE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash_kill9: seed {seed} (SLUICE_TEST_SEED)");
    let mut rng = Rng(seed);

    let dir = TempDir::new("kill9");
    let opts = Options::default();
    let mut c = Collector::start(&dir.0, &opts);
    let stop = Arc::new(AtomicBool::new(false));
    let load = sender(Arc::clone(&stop), c.ipfix_port, c.netflow_port);

    let mut flushed = Vec::with_capacity(KILLS);
    for i in 0..KILLS {
        if i > 0 {
            // Panics if start-up fails or /healthz never answers.
            c.spawn();
        }
        let run_for = Duration::from_millis(200 + rng.below(601));
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < run_for {
            if let Some(body) = scrape(&c) {
                last = Some(body);
            }
            std::thread::sleep(
                Duration::from_millis(40).min(run_for.saturating_sub(started.elapsed())),
            );
        }
        if let Some(body) = scrape(&c) {
            last = Some(body);
        }
        c.kill9();
        let n = last.map_or(0.0, |b| metric_value(&b, "sluice_store_records_total"));
        flushed.push(n as u64);
    }

    // A last, clean run, still under load for long enough that the receive threads publish
    // their counters (about once a second), then without load until everything is flushed.
    c.spawn();
    std::thread::sleep(Duration::from_millis(1500));
    let body = scrape(&c).expect("scrape the last run");
    assert!(
        metric_value(&body, "sluice_receive_packets_total") > 0.0,
        "the last run received nothing"
    );
    assert_eq!(
        metric_value(&body, "sluice_decode_errors_total"),
        0.0,
        "decode errors in the last run: {body}"
    );
    assert_eq!(
        metric_value(&body, "sluice_store_errors_total"),
        0.0,
        "{body}"
    );
    stop.store(true, Ordering::Relaxed);
    let (sent, records_sent) = load.join().expect("sender thread");
    // Held batches reach the store within BATCH_MAX_AGE (200 ms) and are flushed at stop.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.stop(), Some(0), "clean stop: {}", c.log_text());
    let log = c.log_text();
    let stopped: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split_once("stopped; ")?.1.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(stopped.len(), 1, "one clean stop in the log:\n{log}");
    flushed.push(stopped[0]);
    assert!(
        !log.contains("ignoring saved templates"),
        "the saved template file was damaged by a kill:\n{log}"
    );

    let reported: u64 = flushed.iter().sum();
    let (stored, stderr) = c.dump_count();
    // `sluice dump` does not show what its scan skipped: ask the store itself. A kill can
    // leave a torn tail (a block cut short, read up to its last complete block); it must
    // never leave a block that fails its checksum or a segment with a bad header.
    let reader = sluice_sink::store::StoreReader::open(&c.data_dir.join("flows")).expect("store");
    let mut flows = 0usize;
    let st = reader
        .scan(i64::MIN, i64::MAX, |r| {
            flows += usize::from(!r.template.options)
        })
        .expect("scan the store");
    eprintln!(
        "crash_kill9: {KILLS} kills; sent {sent} datagrams / {records_sent} records; \
         reported flushed per run {flushed:?} = {reported}; read back {stored}; dump stderr {:?}; \
         {st:?}; {:.1} s",
        stderr.trim(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        (st.blocks_corrupt, st.segments_corrupt, st.records_skipped),
        (0, 0, 0),
        "damaged store: {st:?}"
    );
    assert_eq!(
        flows, stored,
        "sluice dump and the store's own scan disagree"
    );
    assert!(reported > 0, "no run reported a flush");
    assert!(
        stored as u64 >= reported,
        "records reported flushed but not read back: {reported} reported, {stored} stored"
    );
    assert!(
        stored as u64 <= records_sent,
        "more records stored ({stored}) than sent ({records_sent})"
    );
}
