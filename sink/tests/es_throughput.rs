//! Client-side cost of the sink: documents encoded into `_bulk` NDJSON, gzip-compressed and
//! sent to the in-test stand-in, per CPU-second of the sink's own threads (the submitting
//! thread and the `es-*` threads; the stand-in's CPU is not counted). A measurement, not a
//! check: run it in release mode,
//!
//! ```sh
//! cargo test --release -p sluice-sink --test es_throughput -- --ignored --nocapture
//! ```

mod es_util;

use std::time::{Duration, Instant};

use es_util::{config, doc_id, flow_json, thread_cpu_seconds, FakeEs, TempDir, T2026};
use sluice_sink::es::{Doc, EsSink};

fn run(level: u32, n: u64) {
    let es = FakeEs::start();
    let dir = TempDir::new("throughput");
    let mut cfg = config(&es.url(), &dir);
    cfg.gzip_level = level;
    cfg.batch_docs = 5000;
    cfg.batch_bytes = 5 << 20;
    cfg.max_in_flight = 2;
    cfg.queue_batches = 64;
    cfg.request_timeout = Duration::from_secs(60);
    let docs: Vec<(u64, i64, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                i,
                T2026 + i as i64 * 1000,
                flow_json(i, T2026 + i as i64 * 1000),
            )
        })
        .collect();
    let bytes: usize = docs.iter().map(|d| d.2.len()).sum();
    let sink = EsSink::start(cfg).expect("start");
    let cpu0 = thread_cpu_seconds("es-");
    let t = Instant::now();
    for part in docs.chunks(1000) {
        let b: Vec<Doc<'_>> = part
            .iter()
            .map(|(i, ts, j)| Doc {
                id: doc_id(9, *i),
                timestamp_ns: *ts,
                json: j,
            })
            .collect();
        sink.submit(&b).expect("submit");
    }
    sink.flush();
    es.wait_count(n as usize, Duration::from_secs(300));
    let cpu = thread_cpu_seconds("es-") - cpu0;
    let wall = t.elapsed();
    let stats = sink.shutdown(Duration::from_secs(10));
    assert_eq!(stats.docs_shipped, n);
    println!(
        "gzip level {level}: {n} docs ({:.0} B each) in {wall:.2?} wall, sink CPU {cpu:.2} s: {:.0} docs per CPU-second; body {} -> {} bytes ({:.1}x)",
        bytes as f64 / n as f64,
        n as f64 / cpu.max(0.01),
        stats.bytes_uncompressed,
        stats.bytes_sent,
        stats.bytes_uncompressed as f64 / stats.bytes_sent.max(1) as f64
    );
}

#[test]
#[ignore = "a measurement: run in release mode with --ignored --nocapture"]
fn encode_gzip_docs_per_cpu_second() {
    for level in [1, 6, 0] {
        run(level, 200_000);
    }
}
