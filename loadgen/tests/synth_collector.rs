//! `sluice-loadgen synth` end to end, loopback only:
//! - against a real `sluice run` (the built `sluice` binary beside this crate's binary, or
//!   `SLUICE_BIN`): every record decoded and stored, options decoded, no sequence gap
//!   (`sluice_exporter_missing` 0 for every exporter or sFlow agent), no error, a latency for
//!   every stored record, everything readable with `sluice dump`, and the options tables
//!   applied to what was sent (`sluice decode` of `--pcap-out`: interface names, sampling);
//! - against tshark: a `--pcap-out` capture of what was sent, decoded by Wireshark's
//!   dissector, holds exactly the flows the model generates from the same seed, flow ends at
//!   the send time, and the options data (interface names, sampling) as generated.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_loadgen::metrics::parse_text;
use sluice_loadgen::soak::Collector;
use sluice_loadgen::synth::encode::interface_names;
use sluice_loadgen::synth::model::ModelConfig;
use sluice_loadgen::synth::{exporter_quota, exporter_rng, Model, Proto};

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice-loadgen"))
}

/// The collector binary: `SLUICE_BIN`, or `sluice` beside `sluice-loadgen` (the workspace
/// build puts both in the same directory).
fn sluice_bin() -> PathBuf {
    let p = std::env::var_os("SLUICE_BIN").map_or_else(
        || Path::new(env!("CARGO_BIN_EXE_sluice-loadgen")).with_file_name("sluice"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "no sluice binary at {}: run the workspace tests (cargo test --workspace) or `cargo \
         build --bin sluice` first, or set SLUICE_BIN",
        p.display()
    );
    p
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "sluice-loadgen-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run sluice-loadgen");
    assert!(
        out.status.success(),
        "sluice-loadgen failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn synth_into_collector(proto: Proto) {
    let dir = TempDir::new(&format!("synth-{proto}"));
    let mut c = Collector::start(&sluice_bin(), &dir.0.join("c"), proto, 2).expect("collector");
    let url = format!("http://{}:{}/metrics", c.metrics.host, c.metrics.port);
    let count = 12_000u64;
    let v = run_json(
        loadgen()
            .args(["synth", "--proto", &proto.to_string(), "--to"])
            .arg(c.listen.to_string())
            .args(["--rate", "4000", "--exporters", "3", "--count"])
            .arg(count.to_string())
            .args(["--interfaces", "12", "--sampling", "64", "--seed", "11"])
            .args(["--metrics", &url, "--json", "--pcap-out"])
            .arg(dir.0.join("sent.pcap")),
    );
    assert_eq!(v["records"], count, "{v}");
    let col = &v["collector"];
    let options = v["options_records"].as_f64().expect("options sent");
    assert_eq!(
        col["decoded_records"], count as f64,
        "{proto}: decoded: {v}"
    );
    // sFlow counter samples (the synth's "options records") are stored as documents too.
    let stored_due = if proto == Proto::Sflow {
        count as f64 + options
    } else {
        count as f64
    };
    assert_eq!(col["stored_records"], stored_due, "{proto}: stored: {v}");
    assert_eq!(
        col["decoded_options_records"], options,
        "{proto}: options: {v}"
    );
    if proto != Proto::V5 {
        assert!(options > 0.0, "{proto}: options data sent");
    }
    for k in [
        "kernel_drops",
        "pipeline_drops",
        "exporter_missing",
        "decode_errors",
    ] {
        assert_eq!(col[k], 0.0, "{proto}: {k}: {v}");
    }
    assert_eq!(
        col["received_packets"].as_f64(),
        v["packets"].as_f64(),
        "{proto}: {v}"
    );
    let lat = &col["latency"];
    assert_eq!(
        lat["records"].as_f64(),
        Some(stored_due),
        "{proto}: every stored record timed: {v}"
    );
    let (p50, max) = (
        lat["p50_ms"].as_f64().expect("p50"),
        lat["max_ms"].as_f64().expect("max"),
    );
    // Batches wait at most 200 ms, the store flushes every second: a few seconds at most.
    assert!(p50 > 0.0 && p50 <= max && max < 5_000.0, "{proto}: {lat}");
    // One loss gauge per exporter (NetFlow/IPFIX), two per sFlow agent (datagrams and
    // samples), all zero.
    let page = c.metrics.fetch(Duration::from_secs(5)).expect("scrape");
    let gauges: Vec<_> = parse_text(&page)
        .into_iter()
        .filter(|s| s.name == "sluice_exporter_missing")
        .collect();
    let per_exporter = if proto == Proto::Sflow { 2 } else { 1 };
    assert_eq!(gauges.len(), 3 * per_exporter, "{proto}: {gauges:?}");
    assert!(gauges.iter().all(|g| g.value == 0.0), "{gauges:?}");
    assert!(page.contains("sluice_store_record_age_seconds_bucket{le=\"1\"}"));
    let st = c.stop(Duration::from_secs(20)).expect("stops");
    assert!(st.success(), "{st}");
    // Everything stored reads back.
    let docs = sluice_docs(
        &["dump", "--data-dir"],
        &dir.0.join("c").join("data"),
        &[
            "--from",
            "1971-01-01T00:00:00Z",
            "--to",
            "2200-01-01T00:00:00Z",
        ],
    );
    assert_eq!(
        docs.len() as f64,
        stored_due,
        "{proto}: documents in the store"
    );
    // What was sent, through `sluice decode`: the options tables (sampler, interface names)
    // apply to every flow. (The local store does not keep options tables yet, so `dump`
    // cannot show them.)
    let (docs, counter_docs): (Vec<Value>, Vec<Value>) =
        sluice_docs(&["decode"], &dir.0.join("sent.pcap"), &[])
            .into_iter()
            .partition(|d| d["event"]["kind"] == "event");
    assert_eq!(
        counter_docs.len() as f64,
        if proto == Proto::Sflow { options } else { 0.0 },
        "{proto}: sFlow counter samples are metric documents"
    );
    assert_eq!(
        docs.len() as u64,
        count,
        "{proto}: documents decoded from --pcap-out"
    );
    for d in docs.iter().step_by(37) {
        assert_eq!(d["network"]["sampling_interval"], 64, "{proto}: {d}");
        if proto == Proto::V9 || proto == Proto::Ipfix {
            let ifx: u32 = d["observer"]["ingress"]["interface"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("ingress interface");
            let name = d["observer"]["ingress"]["interface"]["name"].as_str();
            assert_eq!(name, Some(format!("xe-0/0/{}", ifx - 1).as_str()), "{d}");
        }
    }
}

/// `sluice ARGS PATH REST` as JSON documents (its exit status must be 0).
fn sluice_docs(args: &[&str], path: &Path, rest: &[&str]) -> Vec<Value> {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg(path)
        .args(rest)
        .output()
        .expect("run sluice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON document"))
        .collect()
}

#[test]
fn ipfix_into_sluice() {
    synth_into_collector(Proto::Ipfix);
}

#[test]
fn v9_into_sluice() {
    synth_into_collector(Proto::V9);
}

#[test]
fn v5_into_sluice() {
    synth_into_collector(Proto::V5);
}

#[test]
fn sflow_into_sluice() {
    synth_into_collector(Proto::Sflow);
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// "Nov 23, 2026 18:06:32.264000000 UTC" as ns since the Unix epoch.
fn parse_tshark_time(s: &str) -> i64 {
    let parts: Vec<&str> = s.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "time {s:?}");
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|&x| x == parts[0]).expect("month") as i64 + 1;
    let d: i64 = parts[1].trim_end_matches(',').parse().expect("day");
    let y: i64 = parts[2].parse().expect("year");
    let (hms, frac) = parts[3].split_once('.').expect("fraction");
    let hms: Vec<i64> = hms.split(':').map(|x| x.parse().expect("hms")).collect();
    // Days from civil (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ns: i64 = format!("{frac:0<9}")[..9].parse().expect("ns");
    ((days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1_000_000_000) + ns
}

type Key = (IpAddr, IpAddr, u16, u16, u8, u64, u64, u32, u32);

/// Runs synth into a UDP sink with `--pcap-out`, decodes the capture with tshark and compares
/// every flow with the model's.
fn tshark_check(proto: Proto) {
    if !tshark_available() {
        panic!("tshark is needed (apt-get install tshark; .ci/run installs it)");
    }
    let dir = TempDir::new(&format!("tshark-{proto}"));
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let to = sink.local_addr().expect("addr");
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0u64;
        let mut idle = 0;
        while idle < 15 {
            match sink.recv(&mut buf) {
                Ok(_) => {
                    n += 1;
                    idle = 0;
                }
                Err(_) => idle += 1,
            }
        }
        n
    });
    let pcap = dir.0.join("out.pcap");
    let count = 3_000u64;
    let ipv6 = if proto == Proto::V5 { "0" } else { "0.3" };
    let v = run_json(
        loadgen()
            .args(["synth", "--proto", &proto.to_string(), "--to"])
            .arg(to.to_string())
            .args(["--rate", "3000", "--exporters", "2", "--count"])
            .arg(count.to_string())
            .args([
                "--seed",
                "77",
                "--ipv6",
                ipv6,
                "--interfaces",
                "6",
                "--sampling",
                "32",
            ])
            .arg("--pcap-out")
            .arg(&pcap)
            .arg("--json"),
    );
    let packets = v["packets"].as_u64().expect("packets");
    assert_eq!(
        drain.join().expect("sink"),
        packets,
        "all datagrams arrived"
    );
    let ports: Vec<u64> = v["exporter_ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| p.as_u64().expect("port"))
        .collect();
    let fields = [
        "frame.time_epoch",
        "udp.srcport",
        "cflow.srcaddr",
        "cflow.srcaddrv6",
        "cflow.dstaddr",
        "cflow.dstaddrv6",
        "cflow.srcport",
        "cflow.dstport",
        "cflow.protocol",
        "cflow.octets",
        "cflow.packets",
        "cflow.inputint",
        "cflow.outputint",
        "cflow.abstimeend",
        "cflow.if_name",
        "cflow.sampling_packet_space",
        "cflow.sampler_random_interval",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", &format!("udp.port=={},cflow", to.port())])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut got: BTreeMap<usize, Vec<Key>> = BTreeMap::new();
    let mut names: HashMap<usize, Vec<String>> = HashMap::new();
    let mut samplers = Vec::new();
    let mut frames = 0u64;
    let mut timed = 0u64;
    for line in text.lines() {
        frames += 1;
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| {
                if c.is_empty() {
                    Vec::new()
                } else {
                    c.split('|').collect()
                }
            })
            .collect();
        assert_eq!(cols.len(), fields.len(), "{line}");
        let col = |name: &str| &cols[fields.iter().position(|&f| f == name).expect("field")];
        let frame_ns = (col("frame.time_epoch")[0].parse::<f64>().expect("time") * 1e9) as i64;
        let port: u64 = col("udp.srcport")[0].parse().expect("port");
        let e = ports
            .iter()
            .position(|&p| p == port)
            .expect("an exporter's port");
        names
            .entry(e)
            .or_default()
            .extend(col("cflow.if_name").iter().map(|s| s.to_string()));
        samplers.extend(
            col("cflow.sampling_packet_space")
                .iter()
                .map(|s| s.to_string()),
        );
        samplers.extend(
            col("cflow.sampler_random_interval")
                .iter()
                .map(|s| s.to_string()),
        );
        let sports = col("cflow.srcport");
        if sports.is_empty() {
            continue;
        }
        // v4 records come first (their set precedes the IPv6 set), then v6.
        let src: Vec<&str> = col("cflow.srcaddr")
            .iter()
            .chain(col("cflow.srcaddrv6"))
            .copied()
            .collect();
        let dst: Vec<&str> = col("cflow.dstaddr")
            .iter()
            .chain(col("cflow.dstaddrv6"))
            .copied()
            .collect();
        assert_eq!(src.len(), sports.len(), "{line}");
        for i in 0..sports.len() {
            let n = |name: &str| -> u64 { col(name)[i].parse().expect(name) };
            got.entry(e).or_default().push((
                src[i].parse().expect("src"),
                dst[i].parse().expect("dst"),
                n("cflow.srcport") as u16,
                n("cflow.dstport") as u16,
                n("cflow.protocol") as u8,
                n("cflow.octets"),
                n("cflow.packets"),
                n("cflow.inputint") as u32,
                n("cflow.outputint") as u32,
            ));
            if proto != Proto::V5 {
                let end = parse_tshark_time(col("cflow.abstimeend")[i]);
                // Stamped just before sendmmsg, captured just after it returned.
                assert!(
                    end <= frame_ns + 1_000_000 && frame_ns - end < 50_000_000,
                    "{proto}: flow end {end} vs frame time {frame_ns}"
                );
                timed += 1;
            }
        }
    }
    assert_eq!(frames, packets);
    let model = Model::new(ModelConfig {
        ipv6: ipv6.parse().expect("share"),
        interfaces: 6,
        ..ModelConfig::default()
    })
    .expect("model");
    let mut total = 0;
    for (e, mut g) in got {
        let mut rng = exporter_rng(77, e);
        let mut want: Vec<Key> = (0..exporter_quota(count, 2, e))
            .map(|_| {
                let f = model.flow(&mut rng);
                let (b, p) = if proto == Proto::V5 {
                    (f.bytes.min(u32::MAX.into()), f.packets.min(u32::MAX.into()))
                } else {
                    (f.bytes, f.packets)
                };
                (
                    f.src, f.dst, f.src_port, f.dst_port, f.proto, b, p, f.in_if, f.out_if,
                )
            })
            .collect();
        want.sort();
        g.sort();
        total += g.len();
        assert_eq!(
            g, want,
            "{proto}: exporter {e}: tshark's flows vs the model's"
        );
    }
    assert_eq!(total as u64, count);
    if proto != Proto::V5 {
        assert_eq!(timed, count);
        for e in 0..2 {
            let mut n = names.remove(&e).expect("interface names");
            n.sort();
            n.dedup();
            let mut want: Vec<String> = (1..=6).map(|i| interface_names(e, i).0).collect();
            want.sort();
            assert_eq!(n, want, "{proto}: exporter {e}'s interface table");
        }
        let expect = if proto == Proto::Ipfix { "31" } else { "32" };
        assert!(
            !samplers.is_empty() && samplers.iter().all(|s| s == expect),
            "{samplers:?}"
        );
    }
}

#[test]
fn tshark_reads_ipfix() {
    tshark_check(Proto::Ipfix);
}

#[test]
fn tshark_reads_v9() {
    tshark_check(Proto::V9);
}

#[test]
fn tshark_reads_v5() {
    tshark_check(Proto::V5);
}
