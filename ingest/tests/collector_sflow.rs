//! sFlow v5 end to end: pmacct's sfprobe capture replayed to an sFlow listener of `sluice run`
//! is stored sample by sample and dumped as flow documents; its counter samples become
//! metric documents and interface gauges.

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
    let all = c.dump_all(None);
    // 615 flow samples and the probe's one counter sample, a document of its own (its
    // values as tshark reads them: ifIndex 2, 64679 input octets, 106 input packets, 100
    // Mbit/s).
    assert_eq!(all.len(), 616);
    let (docs, counters): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|d| d["event"]["kind"] == "event");
    assert_eq!(docs.len(), 615);
    assert_eq!(counters.len(), 1);
    let k = &counters[0];
    assert_eq!(k["event"]["kind"], "metric", "{k}");
    assert_eq!(k["event"]["action"], "sflow_counters", "{k}");
    assert_eq!(k["netflow"]["sflow_if_index"], 2, "{k}");
    assert_eq!(k["netflow"]["sflow_if_in_octets"], 64679, "{k}");
    assert_eq!(k["netflow"]["sflow_if_in_ucast_pkts"], 106, "{k}");
    assert_eq!(k["netflow"]["sflow_if_speed"], 100_000_000u64, "{k}");
    assert_eq!(k["netflow"]["exporter_ipv4_address"], "192.0.2.1", "{k}");
    assert!(
        k["source"]["ip"].is_null(),
        "a counter sample has no traffic: {k}"
    );
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

/// tshark's reading of a capture: one row per datagram (agent, sub-agent, sequence) and the
/// generic interface counters of every counter sample.
fn tshark_rows(cap: &std::path::Path, fields: &[&str], filter: &str) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(cap)
        .args(["-d", "udp.port==6343,sflow", "-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(out.status.success(), "tshark failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Counter samples become per-interface gauges (values checked against tshark's decoding),
/// and datagram sequence numbers give loss per agent and sub-agent: the capture is sent with
/// every fifth datagram left out, and the gauge counts exactly those.
#[test]
fn sflow_counters_and_per_agent_loss_are_metrics() {
    let cap = common::captures_dir().join("generated/pmacctd_sfprobe_sflow5.pcap");
    let counters = tshark_rows(
        &cap,
        &[
            "sflow_245.agent",
            "sflow_245.sub_agent_id",
            "sflow_245.ifindex",
            "sflow_245.ifinoct",
            "sflow_245.ifinpkt",
            "sflow_245.ifspeed",
        ],
        "sflow_245.ifinoct",
    );
    assert_eq!(counters.len(), 1, "the capture's one counter sample");
    let row = &counters[0];
    let datagrams = tshark_rows(
        &cap,
        &[
            "sflow_245.agent",
            "sflow_245.sub_agent_id",
            "sflow_245.sequence_number",
        ],
        "sflow",
    );

    let dir = TempDir::new("sflow-metrics");
    let port = free_udp_port();
    let opts = Options {
        workers: 1,
        extra: format!(
            "[[listener]]\nname = \"sflow\"\naddress = \"[::]:{port}\"\nprotocol = \"sflow\"\n"
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let dgs = common::pcap::read_udp_datagrams(&cap).expect("read capture");
    assert_eq!(dgs.len(), datagrams.len());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut left_out = 0;
    for (i, d) in dgs.iter().enumerate() {
        // Keep the first (it has the counter sample) and the last (loss is seen only when a
        // later datagram arrives).
        if i % 5 == 4 && i + 1 < dgs.len() {
            left_out += 1;
            continue;
        }
        sock.send_to(&d.payload, ("127.0.0.1", port)).expect("send");
    }
    // (Label names in the exposition are sorted.)
    // The capture is one agent, one sub-agent, sequence numbers without gaps (so every gap
    // the collector sees is one we made).
    let (agent, sub) = (datagrams[0][0].clone(), datagrams[0][1].clone());
    assert!(datagrams.iter().all(|r| r[0] == agent && r[1] == sub));
    let seqs: Vec<u64> = datagrams
        .iter()
        .map(|r| r[2].parse().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    let missing = format!(
        "sluice_exporter_missing{{domain=\"{sub}\",exporter=\"{agent}\",unit=\"datagrams\",version=\"sflow5\"}}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || c.metric(&missing)
            == f64::from(left_out)),
        "missing datagrams: {} (left out {left_out})\n{}",
        c.metric(&missing),
        common::collector::http_get(c.metrics, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("sflow"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let samples_missing = c.metric(&format!(
        "sluice_exporter_missing{{domain=\"{sub}\",exporter=\"{agent}\",unit=\"samples\",version=\"sflow5\"}}"
    ));
    assert!(
        samples_missing > 0.0,
        "the samples of the left-out datagrams"
    );

    let gauge = |counter: &str| {
        c.metric(&format!(
            "sluice_sflow_interface_counter{{agent=\"{}\",counter=\"{counter}\",ifindex=\"{}\",sub_agent=\"{}\"}}",
            row[0], row[2], row[1]
        ))
    };
    let num = |s: &str| s.parse::<f64>().expect("number");
    assert_eq!(gauge("in_octets"), num(&row[3]));
    // tshark's "Input Packets" is unicast; the capture has no multicast or broadcast.
    assert_eq!(gauge("in_packets"), num(&row[4]));
    assert_eq!(gauge("speed_bps"), num(&row[5]));
    assert_eq!(gauge("oper_up"), 1.0);
}
