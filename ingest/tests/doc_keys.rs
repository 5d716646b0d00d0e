//! Every key of every document decoded from the shared captures and log samples is in the
//! field table (the one that drives docs/fields.md and the index template), or matches one of
//! the documented dynamic patterns. And every ECS field of the table shows up in some
//! document.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

fn flatten(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        // A geo_point is one field written as {"lat": .., "lon": ..}.
        Value::Object(m) if prefix.ends_with(".geo.location") => {
            assert!(
                m.contains_key("lat") && m.contains_key("lon"),
                "{prefix}: {v}"
            );
            out.insert(prefix.to_string());
        }
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn document_keys_are_in_the_field_table() {
    let table: BTreeSet<String> = sluice_sink::schema::all_fields()
        .into_iter()
        .map(|r| r.path)
        .collect();
    let mut seen = BTreeSet::new();
    // Enrichment on, with the MaxMind test databases (the generated captures use addresses
    // they know) and a name for the exporter of the generated captures.
    let dir = common::collector::TempDir::new("dockeys");
    let geo = common::captures_dir().join("../geoip");
    let cfg = dir.0.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[enrich]\ngeoip_city = \"{}\"\ngeoip_asn = \"{}\"\n\n[[enrich.exporter]]\naddress = \"127.0.0.1\"\nname = \"lab-probe\"\ninterfaces = [{{ index = 2, name = \"eth0\", description = \"uplink\" }}, {{ index = 0, name = \"local\", description = \"host\" }}]\n",
            geo.join("GeoLite2-City-Test.mmdb").display(),
            geo.join("GeoLite2-ASN-Test.mmdb").display()
        ),
    )
    .expect("config");
    for f in common::flow_captures(&common::captures_dir()) {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("decode")
            .arg("--include-options")
            .arg("--config")
            .arg(&cfg)
            .arg(&f)
            .output()
            .expect("run sluice");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: Value = serde_json::from_str(line).expect("json");
            flatten("", &v, &mut seen);
        }
    }
    // Log events: the shared samples and this crate's own lines (tests/data), which between
    // them produce every event field.
    let logs = common::captures_dir().join("../logs");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (flag, f) in [
        ("--syslog", logs.join("edgerouter-iptables.log")),
        ("--syslog", logs.join("cisco-asa.log")),
        ("--syslog", logs.join("panos.log")),
        ("--syslog", data.join("syslog-extra.log")),
        ("--vpc", logs.join("vpc-flow-logs-v2.log")),
        ("--vpc", logs.join("vpc-flow-logs-custom.log")),
        ("--vpc", data.join("vpc-v5.log")),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("decode")
            .arg(flag)
            .arg("--config")
            .arg(&cfg)
            .arg(&f)
            .output()
            .expect("run sluice");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.is_empty(), "{}: no documents", f.display());
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("json");
            flatten("", &v, &mut seen);
        }
    }
    let dynamic = |k: &str| k.starts_with("netflow.enterprise_") || k.starts_with("netflow.scope_");
    let unknown: Vec<&String> = seen
        .iter()
        .filter(|k| !table.contains(*k) && !dynamic(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "keys missing from the field table: {unknown:?}"
    );
    let unused: Vec<&str> = sluice_sink::schema::ECS_FIELDS
        .iter()
        .map(|f| f.path)
        .filter(|p| !seen.contains(*p))
        .collect();
    assert!(
        unused.is_empty(),
        "ECS fields no capture produces: {unused:?}"
    );
    assert!(seen.len() > 150, "only {} distinct keys", seen.len());
}
