//! Reading back with a point in time and `search_after` from the in-test Elasticsearch 8
//! stand-in: every document once, in @timestamp order, a sub-range, and the PIT closed.

mod es_util;

use std::time::Duration;

use es_util::{config, seq_of, submit_range, FakeEs, TempDir, T2026};
use sluice_sink::es::{dump, DumpQuery, EsDump, EsSink};

#[test]
fn dump_pages_through_a_pit_in_timestamp_order() {
    let es = FakeEs::start();
    let dir = TempDir::new("dump");
    let cfg = config(&es.url(), &dir);
    let sink = EsSink::start(cfg.clone()).expect("start");
    // Submitted newest first, so that indexing order differs from @timestamp order.
    for block in (0..5u64).rev() {
        submit_range(&sink, 6, block * 500..(block + 1) * 500, T2026, 100);
        sink.flush();
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = sink.shutdown(Duration::from_secs(30));
    assert_eq!(stats.docs_shipped, 2500);

    let q = DumpQuery {
        page_size: 300,
        ..DumpQuery::range(T2026, T2026 + 10_000_000_000)
    };
    let all: Vec<u64> = EsDump::open(&cfg, &q)
        .expect("open")
        .map(|d| seq_of(&d.expect("page")))
        .collect();
    assert_eq!(
        all,
        (0..2500).collect::<Vec<_>>(),
        "every document once, by @timestamp"
    );

    // Documents are 1 ms apart: [1000 ms, 1500 ms) holds 500 of them.
    let part: Vec<u64> = dump(&cfg, T2026 + 1_000_000_000, T2026 + 1_500_000_000, None)
        .expect("open")
        .map(|d| seq_of(&d.expect("page")))
        .collect();
    assert_eq!(part, (1000..1500).collect::<Vec<_>>());

    let g = es.inner();
    assert!(g.pits.is_empty(), "PITs closed");
    assert_eq!(
        g.requests
            .iter()
            .filter(|r| r.ends_with("/_pit") && r.starts_with("POST"))
            .count(),
        2
    );
    // 2500 / 300 -> 9 pages, the last one short; 500 / 1000 -> 1.
    assert_eq!(
        g.requests
            .iter()
            .filter(|r| r.as_str() == "POST /_search")
            .count(),
        10
    );
}
