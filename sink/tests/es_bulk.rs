//! The Elasticsearch sink against the in-test Elasticsearch 8 stand-in (`es_util`): exactly
//! once per document in steady state and under every injected fault, daily indices, the
//! template and policy installed once, and the dead-letter file for refused documents.

mod es_util;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use es_util::{config, doc_id, flow_json, submit_range, FakeEs, Fault, TempDir, SEC, T2026};
use serde_json::Value;
use sluice_sink::es::{id_hex, Doc, EsSink, Flavor};

/// Every stored id was created exactly once, and ids 0..n of `salt` are all there.
fn assert_exactly_once(es: &FakeEs, salt: u64, n: u64) {
    let g = es.inner();
    let extra: Vec<_> = g.creates.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        extra.is_empty(),
        "ids created more than once: {:?}",
        &extra[..extra.len().min(5)]
    );
    let missing: Vec<u64> = (0..n)
        .filter(|i| !g.docs.contains_key(&id_hex(&doc_id(salt, *i))))
        .collect();
    assert!(
        missing.is_empty(),
        "{} documents missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn steady_state_exactly_once_daily_indices_template_once() {
    let es = FakeEs::start();
    let dir = TempDir::new("steady");
    let cfg = config(&es.url(), &dir);
    let sink = EsSink::start(cfg.clone()).expect("start");
    // 20 000 documents a millisecond apart, 10 s before UTC midnight: two daily indices.
    // Steady: 1000 documents every 5 ms (200 k/s). Submitted in one burst, the 40 batches
    // can outrun this config's 4-batch queue and the spool's intake, and are rightly dropped
    // (an optimised build did, two runs in three).
    let t0 = T2026 + 10 * 3600 * SEC - 10 * SEC;
    for from in (0..20_000).step_by(1000) {
        submit_range(&sink, 1, from..from + 1000, t0, 250);
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = sink.shutdown(Duration::from_secs(30));

    assert_exactly_once(&es, 1, 20_000);
    assert_eq!(es.count(), 20_000);
    assert_eq!(stats.docs_submitted, 20_000);
    assert_eq!(stats.docs_shipped, 20_000, "{stats:#?}");
    assert_eq!(
        (stats.docs_duplicate, stats.docs_failed, stats.docs_dropped),
        (0, 0, 0)
    );
    assert_eq!(stats.flavor, Some(Flavor::Elasticsearch));
    assert!(
        stats.bulk_requests >= 40,
        "500-document batches: {}",
        stats.bulk_requests
    );
    assert_eq!(stats.bulk_latency.count, stats.bulk_requests);
    assert!(
        stats.bytes_sent * 3 < stats.bytes_uncompressed,
        "gzip: {} of {}",
        stats.bytes_sent,
        stats.bytes_uncompressed
    );
    {
        let g = es.inner();
        assert_eq!(
            g.gzip_requests, g.bulk_requests,
            "every bulk body gzip-compressed"
        );
        let indices: BTreeSet<&str> = g.docs.values().map(|d| d.index.as_str()).collect();
        assert_eq!(
            indices.into_iter().collect::<Vec<_>>(),
            vec!["sluice-flows-2026.11.23", "sluice-flows-2026.11.24"]
        );
        for d in g.docs.values() {
            let day = if d.ts_ms < (t0 + 10 * SEC) / 1_000_000 {
                "23"
            } else {
                "24"
            };
            assert!(d.index.ends_with(day), "{} at {}", d.index, d.ts_ms);
        }
        assert_eq!((g.template_puts, g.ilm_puts), (1, 1));
        let t = &g.templates["sluice-flows"];
        assert_eq!(t["index_patterns"], serde_json::json!(["sluice-flows-*"]));
        assert_eq!(
            t["template"]["settings"]["index.lifecycle.name"],
            "sluice-flows"
        );
        assert_eq!(
            t["template"]["mappings"]["properties"]["source"]["properties"]["ip"]["type"],
            "ip"
        );
        assert_eq!(g.ilm["sluice-flows"]["phases"]["delete"]["min_age"], "7d");
    }
    assert_eq!(stats.template_puts, 1);

    // A restart finds the same template and policy and writes neither.
    let sink = EsSink::start(cfg).expect("restart");
    for _ in 0..500 {
        if sink.stats().setup_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let again = sink.shutdown(Duration::from_secs(5));
    assert!(again.setup_done);
    assert_eq!(again.template_puts, 0);
    let g = es.inner();
    assert_eq!(
        (g.template_puts, g.ilm_puts),
        (1, 1),
        "template and policy installed once"
    );
}

#[test]
fn every_fault_still_delivers_exactly_once() {
    let es = FakeEs::start();
    let dir = TempDir::new("faults");
    let mut cfg = config(&es.url(), &dir);
    cfg.max_in_flight = 2;
    cfg.request_timeout = Duration::from_secs(1);
    es.push_faults([
        Fault::Reject429,
        Fault::Reject429,
        Fault::Unavailable503,
        Fault::ResetAfterIndexing,
        Fault::ResetBeforeIndexing,
        Fault::Item429Every(3),
        Fault::Item503Every(4),
        Fault::Item429Every(2),
        Fault::Slow(Duration::from_millis(1500)), // past request_timeout: indexed, unanswered
        Fault::Slow(Duration::from_millis(300)),
    ]);
    let sink = EsSink::start(cfg).expect("start");
    submit_range(&sink, 2, 0..6000, T2026, 100);
    let stats = sink.shutdown(Duration::from_secs(60));

    assert_exactly_once(&es, 2, 6000);
    assert_eq!(stats.docs_shipped, 6000, "{stats:#?}");
    assert_eq!((stats.docs_failed, stats.docs_dropped), (0, 0));
    let g = es.inner();
    assert!(g.faults.is_empty(), "every fault was hit");
    // Documents indexed by an unanswered request came back as 409, counted as delivered.
    assert!(g.conflicts > 0);
    // The server counts a 409 per attempt; the sink one per document (answers lost to a
    // timeout or a reset are not seen by it).
    assert!(stats.docs_duplicate > 0 && stats.docs_duplicate <= g.conflicts);
    eprintln!(
        "{stats:#?} server conflicts {} bulk requests {}",
        g.conflicts, g.bulk_requests
    );
    assert!(
        stats.docs_retried > 0 && stats.bulk_request_errors >= 5,
        "{stats:#?}"
    );
}

#[test]
fn documents_encoded_in_place_keep_the_byte_cap_and_arrive_once() {
    let es = FakeEs::start();
    let dir = TempDir::new("in-place");
    let mut cfg = config(&es.url(), &dir);
    // About 25 documents of ~800 bytes per batch: the document that crosses the cap opens
    // the next batch, and delivered batches' buffers are reused.
    cfg.batch_docs = 10_000;
    cfg.batch_bytes = 20_000;
    let sink = EsSink::start(cfg).expect("start");
    let n = 2_000u64;
    let mut total = 0u64;
    for i in 0..n {
        let ts = T2026 + i as i64 * 1_000_000;
        let json = flow_json(i, ts);
        total += json.len() as u64;
        sink.push_with(&doc_id(5, i), ts, |buf| buf.extend_from_slice(&json))
            .expect("pushed");
        if i % 50 == 49 {
            // Paced so that the queues never fill (they would drop, by design): at most two
            // batches' worth in flight, which a loaded machine (the whole suite in parallel,
            // a debug build) also keeps up with.
            es.wait_count(i as usize + 1 - 50, Duration::from_secs(10));
        }
    }
    let stats = sink.shutdown(Duration::from_secs(30));
    assert_exactly_once(&es, 5, n);
    assert_eq!(es.count(), n as usize);
    assert_eq!(
        (stats.docs_submitted, stats.docs_shipped),
        (n, n),
        "{stats:#?}"
    );
    // Each request carries at most 20,000 bytes: at least total / 20,000 requests.
    assert!(
        stats.bulk_requests >= (stats.bytes_uncompressed / 20_000).max(total / 20_000),
        "{stats:#?}"
    );
    assert!(
        stats.bytes_uncompressed / stats.bulk_requests <= 20_000,
        "{stats:#?}"
    );
    let g = es.inner();
    for i in [0, 1, n / 2, n - 1] {
        let d = &g.docs[&id_hex(&doc_id(5, i))];
        let sent: Value =
            serde_json::from_slice(&flow_json(i, T2026 + i as i64 * 1_000_000)).expect("json");
        assert_eq!(d.source, sent, "document {i} as encoded");
    }
}

#[test]
fn refused_documents_go_to_the_dead_letter_file() {
    let es = FakeEs::start();
    let dir = TempDir::new("dead");
    let cfg = config(&es.url(), &dir);
    let dead_path = cfg.dead_letter.clone();
    let sink = EsSink::start(cfg).expect("start");
    let mut bad = HashMap::new();
    let docs: Vec<(u64, Vec<u8>)> = (0..1000u64)
        .map(|n| {
            let mut j = flow_json(n, T2026);
            if n % 100 == 7 {
                // A value the `ip` mapping refuses: a 400 item inside an HTTP 200.
                let s = String::from_utf8(j).unwrap_or_default().replacen(
                    "\"ip\":\"10.",
                    "\"ip\":\"not-an-ip.",
                    1,
                );
                j = s.into_bytes();
                bad.insert(id_hex(&doc_id(3, n)), j.clone());
            }
            (n, j)
        })
        .collect();
    let batch: Vec<Doc<'_>> = docs
        .iter()
        .map(|(n, j)| Doc {
            id: doc_id(3, *n),
            timestamp_ns: T2026,
            json: j,
        })
        .collect();
    sink.submit(&batch).expect("submit");
    let stats = sink.shutdown(Duration::from_secs(30));

    assert_eq!(es.count(), 990);
    assert_eq!(
        (
            stats.docs_shipped,
            stats.docs_failed,
            stats.docs_dead_lettered
        ),
        (990, 10, 10),
        "{stats:#?}"
    );
    let text = std::fs::read_to_string(&dead_path).expect("dead-letter file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    assert_eq!(lines.len(), 10);
    for l in &lines {
        let id = l["_id"].as_str().expect("_id");
        let sent: Value = serde_json::from_slice(&bad[id]).expect("json");
        assert_eq!(l["document"], sent, "the document as sent");
        assert_eq!(l["status"], 400);
        assert_eq!(l["_index"], "sluice-flows-2026.11.23");
        assert_eq!(l["error"]["type"], "document_parsing_exception");
        let reason = l["error"]["reason"].as_str().unwrap_or("");
        assert!(reason.contains("[source.ip] of type [ip]"), "{reason}");
        assert!(
            sluice_sink::timefmt::parse_rfc3339(l["@timestamp"].as_str().unwrap_or("")).is_some()
        );
    }
    // Nothing refused was retried.
    assert_eq!(stats.docs_retried, 0);
}

#[test]
fn data_stream_and_credentials() {
    let es = FakeEs::start();
    let dir = TempDir::new("stream");
    let mut cfg = config(&es.url(), &dir);
    cfg.data_stream = Some("logs-sluice.flows-default".to_owned());
    cfg.auth = sluice_sink::es::Auth::Basic {
        user: "sluice".into(),
        password: "hunter2-secret".into(),
    };
    assert!(
        !format!("{cfg:?}").contains("hunter2"),
        "Debug never shows the password"
    );
    let sink = EsSink::start(cfg).expect("start");
    submit_range(&sink, 8, 0..300, T2026, 100);
    let stats = sink.shutdown(Duration::from_secs(30));
    assert_eq!(stats.docs_shipped, 300);
    let g = es.inner();
    assert!(
        g.docs
            .values()
            .all(|d| d.index == "logs-sluice.flows-default"),
        "create into the data stream"
    );
    let t = &g.templates["sluice-flows"];
    assert_eq!(
        t["index_patterns"],
        serde_json::json!(["logs-sluice.flows-default"])
    );
    assert_eq!(t["data_stream"], serde_json::json!({}));
    assert_eq!(
        g.ilm["sluice-flows"]["phases"]["hot"]["actions"]["rollover"]["max_age"],
        "1d"
    );
    // base64("sluice:hunter2-secret"), on every request.
    assert_eq!(g.auth.len(), g.requests.len());
    assert!(g
        .auth
        .iter()
        .all(|a| a == "Basic c2x1aWNlOmh1bnRlcjItc2VjcmV0"));
}
