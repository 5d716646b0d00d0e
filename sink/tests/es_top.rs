//! `top --source es --by interface` against osmem-server (see `es_opensearch.rs`), with the
//! generated index template: rows carry the texts of the most recent flow that had a name
//! or description for the interface, on either end, as the local store picks them (a
//! renamed interface shows its new name, a later flow without texts changes nothing, equal
//! times go to the greater name); interfaces nobody named stay unnamed. Fails, never skips,
//! without osmem-server.

mod es_util;

use std::time::Duration;

use es_util::osmem::start_osmem;
use es_util::{config, doc_id, TempDir, T2026};
use serde_json::{json, Value};
use sluice_sink::es::{top, Doc, EsSink, EsTopQuery, PairStrategy};
use sluice_sink::top::{By, IfNames, Key, Order};

const MS: i64 = 1_000_000;

/// One end of a flow: ifIndex, name, description.
type End = (u32, Option<&'static str>, Option<&'static str>);

fn interface((id, name, alias): End) -> Value {
    let mut v = json!({"id": id.to_string()});
    if let Some(n) = name {
        v["name"] = json!(n);
    }
    if let Some(a) = alias {
        v["alias"] = json!(a);
    }
    json!({ "interface": v })
}

/// A flow document of exporter 198.51.100.1 at `ts`, `bytes` from `input` to `output`.
fn flow(ts: i64, bytes: u64, input: End, output: End) -> Vec<u8> {
    let mut stamp = Vec::new();
    sluice_sink::timefmt::write_rfc3339(&mut stamp, ts);
    let doc = json!({
        "@timestamp": String::from_utf8_lossy(&stamp),
        "network": {"bytes": bytes, "packets": 1},
        "observer": {
            "ip": "198.51.100.1",
            "ingress": interface(input),
            "egress": interface(output),
        },
    });
    serde_json::to_vec(&doc).expect("json")
}

#[test]
fn es_interface_rows_carry_the_latest_texts() {
    let os = start_osmem();
    let dir = TempDir::new("es-top");
    let template: Value =
        serde_json::from_str(&sluice_sink::schema::index_template()).expect("template");
    let cfg = sluice_sink::es::EsConfig {
        template: Some(template),
        ..config(&os.url, &dir)
    };
    let docs = [
        // 1 is named, then renamed (seen on the egress end); a later flow without texts.
        flow(
            T2026,
            1000,
            (1, Some("ge-0/0/1"), Some("uplink")),
            (3, None, None),
        ),
        flow(
            T2026 + MS,
            900,
            (3, None, None),
            (1, Some("ge-0/0/1.new"), None),
        ),
        flow(T2026 + 2 * MS, 800, (1, None, None), (3, None, None)),
        // Two names in the same millisecond: the greater one.
        flow(T2026 + 3 * MS, 700, (4, Some("aa"), None), (3, None, None)),
        flow(T2026 + 3 * MS, 600, (4, Some("zz"), None), (3, None, None)),
        // A description only.
        flow(
            T2026 + 4 * MS,
            500,
            (5, None, Some("lab, rack 2")),
            (3, None, None),
        ),
    ];
    let sink = EsSink::start(cfg.clone()).expect("start");
    let batch: Vec<Doc<'_>> = docs
        .iter()
        .enumerate()
        .map(|(n, json)| Doc {
            id: doc_id(11, n as u64),
            timestamp_ns: T2026,
            json,
        })
        .collect();
    sink.submit(&batch).expect("submit");
    let stats = sink.shutdown(Duration::from_secs(60));
    assert_eq!(stats.docs_shipped, docs.len() as u64, "{stats:#?}");

    let q = EsTopQuery {
        from_ns: T2026 - 60_000 * MS,
        to_ns: T2026 + 60_000 * MS,
        query: None,
        by: By::Interface,
        order: Order::Bytes,
        n: 10,
        pairs: PairStrategy::Auto,
    };
    let names = |name: Option<&str>, description: Option<&str>| IfNames {
        name: name.map(Box::from),
        description: description.map(Box::from),
    };
    let want = [
        (3, IfNames::default()),
        (1, names(Some("ge-0/0/1.new"), None)),
        (4, names(Some("zz"), None)),
        (5, names(None, Some("lab, rack 2"))),
    ];
    // Documents become searchable after a refresh.
    let mut got = Vec::new();
    for _ in 0..50 {
        got = top(&cfg, &q).expect("top").rows;
        if got.len() == want.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got: Vec<(Key, IfNames)> = got.into_iter().map(|r| (r.key, r.names)).collect();
    let want: Vec<(Key, IfNames)> = want
        .into_iter()
        .map(|(i, n)| (Key::Interface("198.51.100.1".parse().expect("ip"), i), n))
        .collect();
    assert_eq!(got, want);
}
