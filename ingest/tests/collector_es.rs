//! The collector ships enriched documents to Elasticsearch: an in-test server that speaks the
//! `_bulk` API as Elasticsearch 8 does (the sink's own test server, shared through a path
//! module) receives each record exactly once, gzip-compressed, with the index template
//! installed, also when the server refuses a bulk request with 429 first. Documents carry
//! what the exporter's options data told (interface names, the sampler table's interval),
//! which only the receiving core's decoder knows and the store thread's enrichment gets
//! through the batch.

mod common;

#[path = "../../sink/tests/es_util/mod.rs"]
mod es_util;

use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};

#[test]
fn collector_ships_each_record_once_to_elasticsearch() {
    let es = es_util::FakeEs::start();
    // The first bulk request is refused as a whole: the sink must retry it.
    es.push_faults([es_util::Fault::Reject429]);
    let dir = TempDir::new("es");
    let geo = common::captures_dir().join("../geoip");
    let opts = Options {
        // Elasticsearch only: the local store is off.
        store_extra: "enabled = false".into(),
        extra: format!(
            "[elasticsearch]\nenabled = true\nurls = [\"{}\"]\nflush_interval = \"200ms\"\n\n[enrich]\ngeoip_city = \"{}\"\ngeoip_asn = \"{}\"\n",
            es.url(),
            geo.join("GeoLite2-City-Test.mmdb").display(),
            geo.join("GeoLite2-ASN-Test.mmdb").display()
        ),
        ..Options::default()
    };
    let mut c = Collector::start(&dir.0, &opts);
    let caps = common::captures_dir();
    replay(
        &caps.join("generated/pmacctd_nfprobe_v9.pcap"),
        c.netflow_port,
    );
    replay(&caps.join("generated/softflowd_ipfix.pcap"), c.ipfix_port);
    let learned = common::ipfix::send(c.ipfix_port);
    let want = 46 + 46 + learned;
    assert_eq!(
        es.wait_count(want, Duration::from_secs(20)),
        want,
        "{}",
        c.log_text()
    );
    assert!(wait_until(Duration::from_secs(5), || c
        .metric("sluice_es_documents_total{outcome=\"shipped\"}")
        >= want as f64));
    assert!(
        c.metric("sluice_es_bulk_request_errors_total") >= 1.0,
        "the 429 was retried"
    );
    assert_eq!(c.stop(), Some(0));
    let inner = es.inner();
    assert!(
        inner.creates.values().all(|&n| n == 1),
        "each _id created once"
    );
    assert_eq!(inner.docs.len(), want);
    assert!(inner.gzip_requests >= 1 && inner.gzip_requests == inner.bulk_requests);
    assert!(inner.template_puts >= 1, "index template installed");
    // Documents are enriched ECS: the generated captures use addresses the test databases know.
    let se = inner
        .docs
        .values()
        .find(|d| d.source["source"]["ip"] == "89.160.20.115")
        .expect("a flow from 89.160.20.115");
    assert_eq!(se.source["source"]["geo"]["country_iso_code"], "SE");
    assert_eq!(se.source["source"]["as"]["number"], 29518);
    assert!(se.index.starts_with("sluice-flows-"), "{}", se.index);
    // Options-learned values: interface texts and the sampler table's interval.
    let learned_docs: Vec<_> = inner
        .docs
        .values()
        .filter(|d| d.source["observer"]["ingress"]["interface"]["name"].is_string())
        .collect();
    assert_eq!(learned_docs.len(), learned);
    for d in learned_docs {
        let s = &d.source;
        let want_alias = match s["observer"]["ingress"]["interface"]["name"].as_str() {
            Some("xe-0/0/1") => "transit: AS64500",
            Some("xe-0/0/2") => "peering IX",
            other => {
                assert_eq!(other, Some("ae0.100"));
                "customers"
            }
        };
        assert_eq!(s["observer"]["ingress"]["interface"]["alias"], want_alias);
        assert!(s["observer"]["egress"]["interface"]["name"].is_string());
        assert_eq!(
            s["network"]["sampling_interval"],
            u64::from(common::ipfix::SAMPLING)
        );
        let bytes = s["network"]["bytes"].as_u64().expect("bytes");
        assert!(bytes >= 1000 * 100 && bytes % 100 == 0, "{bytes}");
    }
    drop(inner);
    // Read back with `sluice dump --source es` (point in time + search_after).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dump", "--source", "es", "--es", &es.url()])
        .args([
            "--from",
            "1971-01-01T00:00:00Z",
            "--to",
            "2200-01-01T00:00:00Z",
        ])
        .output()
        .expect("dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(n, want);
}
