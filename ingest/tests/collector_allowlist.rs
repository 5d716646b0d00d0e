//! Per-listener exporter allowlists: datagrams from outside are counted and dropped before
//! decoding; allowed exporters are stored as usual.

mod common;

use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};

#[test]
fn exporters_outside_the_allowlist_are_counted_and_dropped() {
    let dir = TempDir::new("allow");
    let opts = Options {
        // The test sends from 127.0.0.1: the netflow listener admits only a documentation
        // range, the ipfix listener admits loopback.
        allow: (
            "\"192.0.2.0/24\", \"2001:db8::/32\"".into(),
            "\"127.0.0.0/8\"".into(),
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let caps = common::captures_dir();
    let sent_v9 = replay(
        &caps.join("generated/pmacctd_nfprobe_v9.pcap"),
        c.netflow_port,
    );
    replay(&caps.join("generated/softflowd_ipfix.pcap"), c.ipfix_port);
    assert!(
        wait_until(Duration::from_secs(10), || {
            c.metric("sluice_receive_denied_total{listener=\"netflow\"}") == sent_v9 as f64
                && c.metric("sluice_store_records_total") >= 46.0
        }),
        "{}",
        c.log_text()
    );
    assert_eq!(
        c.metric("sluice_receive_denied_total{listener=\"ipfix\"}"),
        0.0
    );
    std::thread::sleep(Duration::from_millis(500));
    let docs = c.dump_all(None);
    assert_eq!(docs.len(), 46, "only the IPFIX exporter's records");
    assert!(docs
        .iter()
        .all(|d| d["netflow"]["exporter"]["version"] == 10));
}
