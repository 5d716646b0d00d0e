//! The JSON encoder writes the ECS part of a document as an unrolled walk over the field table
//! (`sink/src/ecs.rs`, `Walk`). Checked here against the table itself: for every record of the
//! real captures, enriched with the MaxMind test databases, each field of the table is in the
//! document exactly when `value_of` (the per-field reading that CSV, filters and `top` use)
//! has a value for it, with that value, and the document has no other ECS field. The same for
//! every event of the shared firewall syslog samples, whose documents have the log-only
//! fields as well.

mod store_util;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_json::{json, Value as Json};
use sluice_decode::syslog::SyslogDecoder;
use sluice_decode::Record;
use sluice_enrich::Enriched;
use sluice_sink::ecs::{encode_json_enriched, value_of, EncodeOptions, Value};
use sluice_sink::schema::ECS_FIELDS;
use store_util::{capture_files, captures, decode_capture, geoip_enricher};

/// What a value reads as once the document is parsed, written here without the encoder's
/// writers.
fn expected(v: &Value<'_>) -> Json {
    let stamp = |ns: i64| {
        let mut s = Vec::new();
        sluice_sink::timefmt::write_rfc3339(&mut s, ns);
        Json::String(String::from_utf8(s).expect("ASCII"))
    };
    match *v {
        Value::U64(n) => json!(n),
        Value::I64(n) => json!(n),
        Value::Str(s) => json!(s),
        Value::List(l) => json!(l),
        Value::Ip(ip) => json!(ip.to_string()),
        Value::Time(ns) => stamp(ns),
        Value::Socket(sa) => json!(sa.to_string()),
        Value::ProtoNumber(p) => json!(p.to_string()),
        Value::NumText(n) => json!(n.to_string()),
        Value::Text(t) => json!(t),
        Value::Geo(lat, lon) => json!({ "lat": lat, "lon": lon }),
        Value::Mac(m) => json!(m
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join("-")),
    }
}

fn at<'j>(doc: &'j Json, path: &str) -> Option<&'j Json> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

/// Dotted paths of the document's leaves (a geo point is one leaf).
fn leaves(prefix: &str, v: &Json, out: &mut BTreeSet<String>) {
    match v {
        Json::Object(m) if !prefix.ends_with(".location") => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn every_field_is_written_exactly_as_value_of_reads_it() {
    let enricher = geoip_enricher();
    let mut cache = enricher.cache();
    let table: BTreeSet<&str> = ECS_FIELDS.iter().map(|f| f.path).collect();
    let (mut records, mut fields_written) = (0usize, BTreeSet::new());
    let mut check = |r: &Record<'_>, source: &str| {
        let flow = r.flow();
        let mut e = Enriched::default();
        enricher.enrich(&mut cache, r, &flow, None, &mut e);
        let mut out = Vec::new();
        encode_json_enriched(&mut out, r, &flow, Some(&e), &EncodeOptions::default());
        let doc: Json = serde_json::from_slice(&out)
            .unwrap_or_else(|err| panic!("{source}: {err}: {}", String::from_utf8_lossy(&out)));
        let mut want = BTreeSet::new();
        for field in ECS_FIELDS {
            // Flow documents carry the log-only fields' elements under `netflow.*`.
            let v = value_of(field.get, r, &flow, Some(&e))
                .filter(|_| !field.event_only || r.template.dialect.is_event());
            match v {
                Some(v) => {
                    assert_eq!(
                        at(&doc, field.path),
                        Some(&expected(&v)),
                        "{source}: {}: {doc}",
                        field.path
                    );
                    want.insert(field.path.to_owned());
                    fields_written.insert(field.path);
                }
                None => assert!(
                    at(&doc, field.path).is_none(),
                    "{source}: {} written without a value: {doc}",
                    field.path
                ),
            }
        }
        // Every leaf outside `netflow.` is a table field, and so are the table's own
        // `netflow.exporter.*` and `netflow.type`; the other `netflow.*` are elements.
        let mut got = BTreeSet::new();
        leaves("", &doc, &mut got);
        got.retain(|p| !p.starts_with("netflow.") || table.contains(p.as_str()));
        assert_eq!(got, want, "{source}: ECS fields");
        records += 1;
    };
    for path in capture_files(&["netflow5", "netflow9", "ipfix", "generated"]) {
        decode_capture(&path, |r, _| check(r, &path.display().to_string()));
    }
    // Log events walk the log-only fields too.
    let mut syslog = SyslogDecoder::new();
    let from = SocketAddr::from(([192, 0, 2, 1], 514));
    for name in ["edgerouter-iptables.log", "cisco-asa.log", "panos.log"] {
        let path = captures().join("../logs").join(name);
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            syslog.decode(line, from, 0, |r| check(r, name));
        }
    }
    // Thousands of records, and the walk's fields in all their kinds: a broken capture path
    // must not pass for a working encoder.
    assert!(records > 1000, "{records} records");
    for path in [
        "@timestamp",
        "event.duration",
        "source.ip",
        "network.iana_number",
        "network.community_id",
        "source.geo.location",
        "source.as.organization.name",
        "netflow.exporter.address",
        "observer.ingress.interface.id",
        "event.original",
        "event.dataset",
        "source.nat.ip",
    ] {
        assert!(fields_written.contains(path), "{path} never written");
    }
}
