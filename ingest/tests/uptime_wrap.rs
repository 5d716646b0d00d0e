//! Absolute times on the uptime-wrap captures: the probes were fed a pcap older than their own
//! start, so FIRST/LAST_SWITCHED are "negative" sysUptime values wrapped modulo 2^32. tshark
//! prints raw uptimes, so the oracle is the input traffic itself: each flow's start and end
//! must match the first and last packet of that 5-tuple in `generated/input/traffic_public.pcap`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/generated")
}

type Key = (String, String, u16, u16, u8);

/// (first, last) packet time in ns for each 5-tuple of the input traffic, read with tshark.
fn input_times() -> HashMap<Key, (i64, i64)> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(shared().join("input/traffic_public.pcap"))
        .args([
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.srcport",
            "-e",
            "udp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.dstport",
            "-e",
            "ip.proto",
            "-e",
            "ipv6.nxt",
        ])
        .output()
        .expect("tshark runs (apt-get install tshark)");
    assert!(out.status.success(), "tshark failed");
    let mut m: HashMap<Key, (i64, i64)> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 11 {
            continue;
        }
        let t: f64 = c[0].parse().expect("epoch");
        let ns = (t * 1e9).round() as i64;
        let pick = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_string()
            } else {
                a.to_string()
            }
        };
        let port = |a: &str, b: &str| pick(a, b).parse::<u16>().unwrap_or(0);
        // ICMP has no ports; the probes put type/code into the destination port, so compare
        // ICMP flows on addresses only.
        let proto: u8 = pick(c[9], c[10])
            .split(',')
            .next_back()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let key = (
            pick(c[1], c[2]),
            pick(c[3], c[4]),
            port(c[5], c[6]),
            port(c[7], c[8]),
            proto,
        );
        let e = m.entry(key).or_insert((ns, ns));
        e.0 = e.0.min(ns);
        e.1 = e.1.max(ns);
    }
    m
}

fn decode(file: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("decode")
        .arg(shared().join(file))
        .output()
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn ns(v: &serde_json::Value) -> i64 {
    let s = v.as_str().expect("time string");
    sluice_sink::timefmt::parse_rfc3339(s).unwrap_or_else(|| panic!("bad time {s}"))
}

fn check(file: &str, tolerance_ms: i64) {
    let input = input_times();
    let docs = decode(file);
    assert!(docs.len() >= 30, "{file}: {} records", docs.len());
    let mut checked = 0;
    for d in &docs {
        let proto = d["network"]["iana_number"]
            .as_str()
            .and_then(|p| p.parse::<u8>().ok())
            .expect("protocol");
        let src = d["source"]["ip"].as_str().expect("src").to_string();
        let dst = d["destination"]["ip"].as_str().expect("dst").to_string();
        let (sp, dp) = if proto == 1 || proto == 58 {
            (0, 0)
        } else {
            (
                d["source"]["port"].as_u64().expect("sport") as u16,
                d["destination"]["port"].as_u64().expect("dport") as u16,
            )
        };
        let key = (src, dst, sp, dp, proto);
        let Some(&(first, last)) = input.get(&key) else {
            panic!("{file}: flow {key:?} is not in the input traffic");
        };
        let start = ns(&d["event"]["start"]);
        let end = ns(&d["event"]["end"]);
        let tol = tolerance_ms * 1_000_000;
        assert!(
            (start - first).abs() <= tol && (end - last).abs() <= tol,
            "{file}: {key:?} start {} end {} vs input first {first} last {last} (diff {} / {} ms)",
            start,
            end,
            (start - first) / 1_000_000,
            (end - last) / 1_000_000
        );
        checked += 1;
    }
    assert_eq!(checked, docs.len());
}

#[test]
fn pmacct_v5_uptime_wrap_times_match_input() {
    check("pmacctd_nfprobe_v5_uptime_wrap.pcap", 50);
}

#[test]
fn softflowd_v9_uptime_wrap_times_match_input() {
    // v9 export time has whole seconds only, so allow one second.
    check("softflowd_v9_uptime_wrap.pcap", 1000);
}
