//! The Grafana dashboard (`ops/grafana/`) and the Prometheus alert rules (`ops/prometheus/`)
//! name only metrics a running Sluice serves: a collector is started, made to show every
//! family that appears only after its first event (kernel drops from a burst into a tiny
//! receive buffer, a decode error, an exporter's loss gauge, the Elasticsearch sink's
//! families with a cluster that does not answer), and each `sluice_*` name an expression
//! uses must be in its `/metrics`. The dashboard's structure is checked too (unique panel
//! ids, panels inside the 24-column grid, every query on the datasource variable).

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::collector::{free_tcp_port, http_get, wait_until, Collector, Options, TempDir};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `sluice_*` metric names in a PromQL expression (label values in quotes left out).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut unquoted = String::new();
    let mut quote = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None => unquoted.push(c),
        }
    }
    let bytes = unquoted.as_bytes();
    let mut i = 0;
    while let Some(pos) = unquoted[i..].find("sluice_") {
        let start = i + pos;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(unquoted[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Every PromQL expression of the Grafana dashboard, with where it is.
fn grafana_exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?}", p["title"].as_str().unwrap_or("")),
                t["expr"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push((format!("variable {}", v["name"]), q.to_owned()));
        }
    }
    out
}

/// The alert rules' expressions (`expr:` lines and the indented block under `expr: |`).
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut alert = String::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if let Some(name) = t.strip_prefix("- alert:") {
            alert = name.trim().to_owned();
        } else if let Some(e) = t.strip_prefix("expr:") {
            let e = e.trim();
            let expr = if e == "|" {
                let indent = line.len() - t.len();
                let mut block = String::new();
                while let Some(next) = lines.peek() {
                    let nt = next.trim_start();
                    if !nt.is_empty() && next.len() - nt.len() <= indent {
                        break;
                    }
                    block.push_str(nt);
                    block.push('\n');
                    lines.next();
                }
                block
            } else {
                e.to_owned()
            };
            out.push((format!("alert {alert}"), expr));
        }
    }
    out
}

/// Structural problems of a Grafana dashboard.
fn dashboard_problems(dash: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in dash["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("");
        if !ids.insert(panel["id"].as_u64().unwrap_or(0)) {
            p.push(format!("{title}: panel id used twice"));
        }
        let g = &panel["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap_or(99), g["w"].as_u64().unwrap_or(99));
        if x + w > 24 || g["h"].as_u64().unwrap_or(0) == 0 {
            p.push(format!("{title}: gridPos {g} outside the 24-column grid"));
        }
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            p.push(format!("{title}: no query"));
        }
        for t in targets {
            if t["datasource"]["uid"] != "${datasource}" {
                p.push(format!("{title}: query not on the datasource variable"));
            }
            if t["expr"].as_str().unwrap_or("").trim().is_empty() {
                p.push(format!("{title}: empty expression"));
            }
        }
    }
    p
}

/// Metric names (sample names without labels) in a text exposition.
fn served(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn unknown(exprs: &[(String, String)], served: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (what, e) in exprs {
        for m in metric_names(e) {
            if !served.contains(&m) {
                out.push(format!("{what}: {m} is not served"));
            }
        }
    }
    out
}

fn grafana() -> Value {
    let text = std::fs::read_to_string(root().join("ops/grafana/sluice-collector.json"))
        .expect("read the Grafana dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

fn rules() -> String {
    std::fs::read_to_string(root().join("ops/prometheus/sluice.rules.yml")).expect("read rules")
}

#[test]
fn dashboard_and_rules_use_only_metrics_a_running_collector_serves() {
    let dir = TempDir::new("ops-metrics");
    // Elasticsearch on a loopback port nobody listens on: the sink's families appear, and
    // nothing leaves the machine.
    let dead_es = free_tcp_port();
    let opts = Options {
        workers: 1,
        recv_buffer: "1B".into(),
        extra: format!(
            "\n[elasticsearch]\nenabled = true\nurls = [\"http://127.0.0.1:{dead_es}\"]\n"
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    // A one-record NetFlow v5 datagram, 50,000 times into a buffer of a few KiB: the kernel
    // drops most (the drop counter's series exists only from the first drop on).
    let mut v5 = vec![0, 5, 0, 1];
    v5.extend_from_slice(&[0; 20 + 48]);
    for _ in 0..50_000 {
        tx.send_to(&v5, ("127.0.0.1", c.netflow_port))
            .expect("send");
    }
    std::thread::sleep(Duration::from_millis(300));
    // The drop count reaches Sluice with the next datagram; an unknown version is a decode
    // error.
    tx.send_to(&v5, ("127.0.0.1", c.netflow_port))
        .expect("send");
    tx.send_to(&[0, 42, 0, 0, 1, 2, 3, 4], ("127.0.0.1", c.netflow_port))
        .expect("send");

    let dash = grafana();
    let mut exprs = grafana_exprs(&dash);
    let rule_list = rule_exprs(&rules());
    assert!(rule_list.len() >= 10, "rules found: {rule_list:?}");
    exprs.extend(rule_list);
    let names: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| metric_names(e)).collect();
    assert!(
        names.len() >= 25,
        "only {} metric names found: {names:?}",
        names.len()
    );

    let mut missing = Vec::new();
    let ok = wait_until(Duration::from_secs(15), || {
        let Some((200, body)) = http_get(c.metrics, "/metrics") else {
            return false;
        };
        missing = unknown(&exprs, &served(&body));
        missing.is_empty()
    });
    assert!(ok, "{}\nlog:\n{}", missing.join("\n"), c.log_text());
    let p = dashboard_problems(&dash);
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn the_checks_catch_a_wrong_name_and_a_broken_panel() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(sluice_es_bulk_latency_seconds_bucket{instance=~"$i",x="sluice_not_a_metric"}[5m])) / xsluice_no"#
        ),
        BTreeSet::from(["sluice_es_bulk_latency_seconds_bucket".to_owned()])
    );
    let served = served(
        "# TYPE sluice_up gauge\nsluice_up 1\nsluice_receive_packets_total{listener=\"a\"} 3\n",
    );
    let bad = vec![(
        "panel".to_owned(),
        "rate(sluice_receive_packet_total[1m])".to_owned(),
    )];
    assert_eq!(
        unknown(&bad, &served),
        ["panel: sluice_receive_packet_total is not served"]
    );
    let good = vec![(
        "panel".to_owned(),
        "sluice_up + rate(sluice_receive_packets_total[1m])".to_owned(),
    )];
    assert!(unknown(&good, &served).is_empty());

    let mut dash = grafana();
    dash["panels"][3]["gridPos"]["x"] = 22.into();
    dash["panels"][4]["id"] = dash["panels"][2]["id"].clone();
    dash["panels"][5]["targets"][0]["datasource"]["uid"] = "prometheus".into();
    let p = dashboard_problems(&dash);
    assert_eq!(p.len(), 3, "{p:#?}");

    let rules = rule_exprs("  - alert: A\n    expr: up == 0\n  - alert: B\n    expr: |\n      sum(x)\n        > 1\n    for: 1m\n");
    assert_eq!(
        rules,
        [
            ("alert A".to_owned(), "up == 0".to_owned()),
            ("alert B".to_owned(), "sum(x)\n> 1\n".to_owned())
        ]
    );
}
