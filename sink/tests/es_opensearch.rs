//! The sink against osmem-server, an independent in-memory OpenSearch-compatible server (a Go
//! binary shipped in the `osmem-server` PyPI wheel; it reports itself as OpenSearch 3 and has
//! no ISM plugin). Install it with `pip install osmem-server`; `OSMEM_SERVER_BIN` may name the
//! binary instead. This test fails, never skips, when the server cannot be found or started.
//!
//! Checked against the real API: the index template installed and applied (types in the
//! mapping), gzip `_bulk` of a few hundred documents, a CIDR `term` query on `source.ip`, a
//! `geo_distance` query on the template's `geo_point`, and the PIT + `search_after` dump.

mod es_util;

use std::time::Duration;

use es_util::osmem::start_osmem;
use es_util::{config, doc_id, flow_json, seq_of, TempDir, T2026};
use serde_json::{json, Value};
use sluice_sink::es::{dump, Doc, EsSink, Flavor};

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("POST", Some(b)) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&b).unwrap_or_default()),
        ("POST", None) => agent.post(url).send_empty(),
        _ => panic!("{method}"),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    assert!(
        (200..300).contains(&status),
        "{method} {url}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"))
}

fn hits(v: &Value) -> Vec<u64> {
    let mut s: Vec<u64> = v["hits"]["hits"]
        .as_array()
        .map(|h| h.iter().map(|d| seq_of(&d["_source"])).collect())
        .unwrap_or_default();
    s.sort_unstable();
    s
}

#[test]
fn osmem_opensearch_real_api() {
    let os = start_osmem();
    let info = call("GET", &format!("{}/", os.url), None);
    assert_eq!(info["version"]["distribution"], "opensearch", "{info}");

    let dir = TempDir::new("osmem");
    let cfg = config(&os.url, &dir);
    let sink = EsSink::start(cfg.clone()).expect("start");
    const N: u64 = 400;
    let docs: Vec<(u64, i64, Vec<u8>)> = (0..N)
        .map(|n| {
            let ts = T2026 + n as i64 * 1_000_000;
            let mut s = String::from_utf8(flow_json(n, ts)).unwrap_or_default();
            if n % 2 == 1 {
                s = s.replacen("\"source\":{\"ip\":\"10.", "\"source\":{\"ip\":\"172.", 1);
            }
            let (lat, lon) = if n % 3 == 0 {
                (48.8566, 2.3522)
            } else {
                (35.6762, 139.6503)
            };
            s = s.replacen(
                "\"destination\":{",
                &format!(
                    "\"destination\":{{\"geo\":{{\"location\":{{\"lat\":{lat},\"lon\":{lon}}}}},"
                ),
                1,
            );
            (n, ts, s.into_bytes())
        })
        .collect();
    let batch: Vec<Doc<'_>> = docs
        .iter()
        .map(|(n, ts, j)| Doc {
            id: doc_id(7, *n),
            timestamp_ns: *ts,
            json: j,
        })
        .collect();
    sink.submit(&batch).expect("submit");
    let stats = sink.shutdown(Duration::from_secs(60));
    eprintln!("osmem: {stats:?}");
    assert_eq!(stats.flavor, Some(Flavor::OpenSearch));
    assert_eq!(stats.docs_shipped, N, "{stats:#?}");
    assert_eq!((stats.docs_failed, stats.docs_duplicate), (0, 0));
    assert_eq!(stats.template_puts, 1);
    assert!(
        stats.bytes_sent * 3 < stats.bytes_uncompressed,
        "gzip bodies"
    );
    // osmem has no ISM plugin: the policy is refused, counted, and shipping goes on.
    assert_eq!(stats.setup_errors, 1);

    let base = &os.url;
    let tmpl = call("GET", &format!("{base}/_index_template/sluice-flows"), None);
    let t = &tmpl["index_templates"][0]["index_template"];
    assert_eq!(t["index_patterns"], json!(["sluice-flows-*"]));
    assert!(t["_meta"]["sluice_hash"].is_string(), "{t}");
    call("POST", &format!("{base}/sluice-flows-*/_refresh"), None);
    let mapping = call(
        "GET",
        &format!("{base}/sluice-flows-2026.11.23/_mapping"),
        None,
    );
    let props = &mapping["sluice-flows-2026.11.23"]["mappings"]["properties"];
    assert_eq!(
        props["source"]["properties"]["ip"]["type"], "ip",
        "{mapping}"
    );
    assert_eq!(
        props["destination"]["properties"]["geo"]["properties"]["location"]["type"],
        "geo_point"
    );
    assert_eq!(props["@timestamp"]["type"], "date");

    let search = |q: Value| {
        call(
            "POST",
            &format!("{base}/sluice-flows-*/_search"),
            Some(json!({"size": 1000, "query": q})),
        )
    };
    let cidr = search(json!({"term": {"source.ip": "10.0.0.0/8"}}));
    assert_eq!(
        hits(&cidr),
        (0..N).filter(|n| n % 2 == 0).collect::<Vec<_>>(),
        "CIDR term query on an ip field"
    );
    let near_paris = search(
        json!({"geo_distance": {"distance": "100km", "destination.geo.location": {"lat": 48.86, "lon": 2.35}}}),
    );
    assert_eq!(
        hits(&near_paris),
        (0..N).filter(|n| n % 3 == 0).collect::<Vec<_>>(),
        "geo_distance on geo_point"
    );
    let all = search(json!({"match_all": {}}));
    assert_eq!(hits(&all).len() as u64, N, "each document once");

    // PIT (OpenSearch's _search/point_in_time) + search_after, pages of 64.
    let q = sluice_sink::es::DumpQuery {
        page_size: 64,
        ..sluice_sink::es::DumpQuery::range(T2026, T2026 + 3_600_000_000_000)
    };
    let back: Vec<u64> = sluice_sink::es::EsDump::open(&cfg, &q)
        .expect("pit")
        .map(|d| seq_of(&d.expect("page")))
        .collect();
    assert_eq!(
        back,
        (0..N).collect::<Vec<_>>(),
        "dump reads every document back in @timestamp order"
    );
    let part: Vec<u64> = dump(
        &cfg,
        T2026 + 100_000_000,
        T2026 + 200_000_000,
        Some(json!({"term": {"source.ip": "10.0.0.0/8"}})),
    )
    .expect("pit")
    .map(|d| seq_of(&d.expect("page")))
    .collect();
    assert_eq!(
        part,
        (100..200).filter(|n| n % 2 == 0).collect::<Vec<_>>(),
        "range plus query"
    );
}
