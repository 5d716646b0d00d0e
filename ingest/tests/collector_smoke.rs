//! The collector end to end on loopback: captures replayed to `sluice run`, read back with
//! `sluice dump`, metrics scraped.

mod common;

use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};

#[test]
fn replayed_captures_are_stored_and_dumped_like_decode() {
    let dir = TempDir::new("smoke");
    let mut c = Collector::start(&dir.0, &Options::default());
    let caps = common::captures_dir();
    let v9 = caps.join("netflow9/ubiquiti_edgerouter_mpls.pcap");
    let ipfix = caps.join("generated/softflowd_ipfix.pcap");
    replay(&v9, c.netflow_port);
    replay(&ipfix, c.ipfix_port);
    assert!(
        wait_until(Duration::from_secs(10), || c
            .metric("sluice_store_records_total")
            >= 16.0 + 46.0),
        "records not stored: {}",
        c.log_text()
    );
    // Receive threads publish their counters about once a second.
    assert!(wait_until(Duration::from_secs(5), || c
        .metric("sluice_receive_packets_total")
        == 6.0));
    assert_eq!(c.metric("sluice_decode_errors_total"), 0.0);
    let docs = c.dump_all(None);
    assert_eq!(docs.len(), 16 + 46);
    // Same documents as `sluice decode` of the same capture, apart from the exporter's
    // address (the replay socket, not the capture's).
    let decoded = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("decode")
        .arg(&v9)
        .output()
        .expect("decode");
    let mut want: Vec<serde_json::Value> = String::from_utf8_lossy(&decoded.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut got: Vec<serde_json::Value> = docs
        .into_iter()
        .filter(|d| d["netflow"]["exporter"]["version"] == 9)
        .collect();
    for d in want.iter_mut().chain(got.iter_mut()) {
        d["netflow"]["exporter"]["address"] = serde_json::Value::Null;
        d["observer"]["ip"] = serde_json::Value::Null;
    }
    let key = |v: &serde_json::Value| v.to_string();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);
    assert_eq!(c.stop(), Some(0));
    assert!(c.log_text().contains("stopped;"));
}
