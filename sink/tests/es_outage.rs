//! Zero loss across a cluster outage: the stand-in refuses connections for `OUTAGE` while
//! documents keep coming; everything arrives after recovery, once, in order, through the
//! disk spool. And the spool survives a restart of the sink.

mod es_util;

use std::time::{Duration, Instant};

use es_util::{
    config, doc_id, flow_json, seq_of, small_json, submit_range, submit_range_with, FakeEs,
    TempDir, T2026,
};
use sluice_sink::es::{id_hex, Doc, EsSink};

/// How long the cluster is down (the issue asks for 60 s; the whole test then takes about
/// 70 s). `SLUICE_ES_OUTAGE_SECS` shortens it for a quick local run.
fn outage() -> Duration {
    let secs = std::env::var("SLUICE_ES_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Documents a second, submitted in calls of 50.
const RATE: u64 = 1000;

/// The stored documents' `sluice.seq`, in the order the server indexed them.
fn arrival_seqs(es: &FakeEs) -> Vec<u64> {
    let g = es.inner();
    g.arrival
        .iter()
        .map(|id| seq_of(&g.docs[id].source))
        .collect()
}

#[test]
fn outage_under_steady_traffic_loses_nothing_and_replays_in_order() {
    let outage = outage();
    let es = FakeEs::start();
    let dir = TempDir::new("outage");
    let mut cfg = config(&es.url(), &dir);
    // One request at a time makes the arrival order exactly the submission order.
    cfg.max_in_flight = 1;
    cfg.queue_batches = 2;
    cfg.batch_docs = 1000;
    // Batches of about 300 documents at this rate: fewer, larger requests to replay.
    cfg.flush_interval = Duration::from_millis(300);
    cfg.retry_max_delay = Duration::from_millis(500);
    let spool_dir = cfg.spool_dir.clone();
    let sink = EsSink::start(cfg).expect("start");

    let start = Instant::now();
    let (before, after) = (Duration::from_secs(3), Duration::from_secs(3));
    let total_time = before + outage + after;
    let mut n = 0u64;
    let mut worst_submit = Duration::ZERO;
    let mut max_spool_docs = 0;
    let mut down = false;
    let mut was_down = false;
    while start.elapsed() < total_time {
        let t = start.elapsed();
        if !down && !was_down && t >= before {
            es.set_down(true);
            down = true;
            was_down = true;
        }
        if down && t >= before + outage {
            es.set_down(false);
            down = false;
        }
        // Steady traffic: catch up to RATE documents a second.
        let due = (t.as_secs_f64() * RATE as f64) as u64;
        while n + 50 <= due {
            let s = Instant::now();
            submit_range_with(&sink, 4, n..n + 50, T2026, 50, small_json);
            worst_submit = worst_submit.max(s.elapsed());
            n += 50;
        }
        max_spool_docs = max_spool_docs.max(sink.stats().spool_docs);
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = sink.shutdown(Duration::from_secs(60));
    let seqs = arrival_seqs(&es);
    eprintln!(
        "outage {outage:?}, whole test {:?}: {n} documents, {} spooled (at most {max_spool_docs} waiting), worst submit {worst_submit:?}, {} bulk requests",
        start.elapsed(),
        stats.docs_spooled,
        stats.bulk_requests
    );

    assert!(
        n >= RATE * total_time.as_secs() - 100,
        "traffic kept flowing: {n}"
    );
    assert_eq!(stats.docs_submitted, n);
    assert_eq!(
        (
            stats.docs_dropped,
            stats.docs_spool_dropped,
            stats.docs_failed
        ),
        (0, 0, 0),
        "{stats:#?}"
    );
    assert_eq!(stats.docs_shipped, n, "{stats:#?}");
    assert_eq!(seqs.len() as u64, n, "every document arrived");
    {
        let g = es.inner();
        assert!(g.creates.values().all(|c| *c == 1), "exactly once");
    }
    let out_of_order = seqs.windows(2).filter(|w| w[0] >= w[1]).count();
    assert_eq!(out_of_order, 0, "arrival follows submission order");
    // The outage's documents went through the spool, which is empty again.
    assert!(
        stats.docs_spooled as f64 > RATE as f64 * outage.as_secs_f64() * 0.8,
        "{stats:#?}"
    );
    assert!(max_spool_docs > 0);
    assert_eq!(
        (stats.spool_docs, stats.spool_segments, stats.spool_bytes),
        (0, 0, 0)
    );
    let left = std::fs::read_dir(&spool_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "spool files removed once delivered");
    // submit never waited on the network.
    assert!(
        worst_submit < Duration::from_millis(200),
        "worst submit {worst_submit:?}"
    );
}

#[test]
fn spool_survives_a_restart() {
    let es = FakeEs::start();
    es.set_down(true);
    let dir = TempDir::new("restart");
    let mut cfg = config(&es.url(), &dir);
    cfg.max_in_flight = 1;
    cfg.batch_docs = 100;
    // Down from the start: setup cannot finish, documents queue and spill.
    let sink = EsSink::start(cfg.clone()).expect("start with the cluster down");
    // Paced (500 documents every 5 ms): a burst of 30 batches at once can outrun this
    // config's 4-batch queue and the spool's 16-batch intake, and is rightly dropped.
    for from in (0..3000).step_by(500) {
        submit_range(&sink, 5, from..from + 500, T2026, 100);
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = sink.shutdown(Duration::from_millis(500));
    assert_eq!(stats.docs_shipped, 0);
    assert_eq!(stats.docs_dropped, 0);
    assert!(!stats.setup_done);
    let files = std::fs::read_dir(&cfg.spool_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(files > 0, "spool segments on disk");

    es.set_down(false);
    let sink = EsSink::start(cfg).expect("restart");
    assert_eq!(
        sink.stats().spool_docs,
        3000,
        "the spool holds every document"
    );
    // New documents after the restart queue behind the spooled ones.
    let late: Vec<(u64, Vec<u8>)> = (3000..3100).map(|n| (n, flow_json(n, T2026))).collect();
    let docs: Vec<Doc<'_>> = late
        .iter()
        .map(|(n, j)| Doc {
            id: doc_id(5, *n),
            timestamp_ns: T2026,
            json: j,
        })
        .collect();
    sink.submit(&docs).expect("submit");
    assert_eq!(es.wait_count(3100, Duration::from_secs(30)), 3100);
    let stats = sink.shutdown(Duration::from_secs(10));
    assert_eq!(stats.docs_shipped, 3100, "{stats:#?}");
    let g = es.inner();
    assert!((0..3100).all(|i| g.creates.get(&id_hex(&doc_id(5, i))) == Some(&1)));
    drop(g);
    let seqs = arrival_seqs(&es);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "spooled documents replayed in order, then the new ones"
    );
}
