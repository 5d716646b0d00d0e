//! sFlow v5 end to end: pmacct's sfprobe capture replayed to an sFlow listener of `sluice run`
//! is stored sample by sample and dumped as flow documents.

mod common;

use std::time::Duration;

use common::collector::{free_udp_port, replay, wait_until, Collector, Options, TempDir};

#[test]
fn sflow_samples_are_stored_and_dumped() {
    let dir = TempDir::new("sflow");
    let port = free_udp_port();
    let opts = Options {
        extra: format!(
            "[[listener]]\nname = \"sflow\"\naddress = \"[::]:{port}\"\nprotocol = \"sflow\"\n"
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let cap = common::captures_dir().join("generated/pmacctd_sfprobe_sflow5.pcap");
    assert_eq!(replay(&cap, port), 90);
    assert!(
        wait_until(Duration::from_secs(10), || c
            .metric("sluice_store_records_total")
            >= 615.0),
        "{}",
        c.log_text()
    );
    assert!(wait_until(Duration::from_secs(5), || c
        .metric("sluice_decode_records_total{kind=\"sflow_counters\"}")
        == 1.0));
    assert_eq!(c.metric("sluice_decode_errors_total"), 0.0);
    let docs = c.dump_all(None);
    assert_eq!(docs.len(), 615);
    assert!(docs
        .iter()
        .all(|d| d["netflow"]["exporter"]["protocol"] == "sflow"));
    // pmacct's probe samples 1 in 1; every sample has addresses and a frame length.
    assert!(docs.iter().all(|d| d["source"]["ip"].is_string()
        && d["netflow"]["octet_delta_count"]
            .as_u64()
            .is_some_and(|b| b > 0)));
    let tcp_80 = docs
        .iter()
        .filter(|d| d["destination"]["port"] == 80 && d["network"]["transport"] == "tcp")
        .count();
    assert!(tcp_80 > 0, "HTTP samples from the input traffic");
}
