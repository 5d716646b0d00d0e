//! `sluice dump --where` against a brute-force filter over the same stored records: for each
//! expression, the documents dump selects are exactly those a plain predicate over the full
//! dump selects.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};
use serde_json::Value;

fn ip(d: &Value, side: &str) -> Option<IpAddr> {
    d[side]["ip"].as_str()?.parse().ok()
}

fn port(d: &Value, side: &str) -> Option<u64> {
    d[side]["port"].as_u64()
}

fn proto(d: &Value) -> Option<u64> {
    d["network"]["iana_number"].as_str()?.parse().ok()
}

fn in_net(a: Option<IpAddr>, net: &str) -> bool {
    let (base, len) = net.split_once('/').unwrap_or((net, "128"));
    let (Some(a), Ok(base), Ok(len)) = (a, base.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (a, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = len.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = len.min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

type Pred = fn(&Value) -> bool;

const CASES: &[(&str, Pred)] = &[
    ("src ip 89.160.20.115", |d| {
        ip(d, "source") == "89.160.20.115".parse().ok()
    }),
    ("dst net 216.160.83.0/24", |d| {
        in_net(ip(d, "destination"), "216.160.83.0/24")
    }),
    ("port 53", |d| {
        port(d, "source") == Some(53) || port(d, "destination") == Some(53)
    }),
    ("proto tcp and dst port 80", |d| {
        proto(d) == Some(6) && port(d, "destination") == Some(80)
    }),
    ("not proto udp", |d| proto(d) != Some(17)),
    ("src port 1024-65535 or proto icmp", |d| {
        port(d, "source").is_some_and(|p| p >= 1024) || proto(d) == Some(1)
    }),
    ("ip 2001:218::/32", |d| {
        in_net(ip(d, "source"), "2001:218::/32") || in_net(ip(d, "destination"), "2001:218::/32")
    }),
    ("(proto tcp or proto udp) and not port 443", |d| {
        matches!(proto(d), Some(6) | Some(17))
            && port(d, "source") != Some(443)
            && port(d, "destination") != Some(443)
    }),
    ("exporter 127.0.0.1 and src net 10.0.0.0/8", |d| {
        d["observer"]["ip"] == "127.0.0.1" && in_net(ip(d, "source"), "10.0.0.0/8")
    }),
    ("exporter ::1", |d| d["observer"]["ip"] == "::1"),
];

#[test]
fn where_matches_a_brute_force_filter() {
    let dir = TempDir::new("dumpfilter");
    let c = Collector::start(&dir.0, &Options::default());
    let caps = common::captures_dir();
    let mut expected = 0;
    for (f, n, ipfix) in [
        ("generated/pmacctd_nfprobe_v9.pcap", 46, false),
        ("generated/softflowd_ipfix.pcap", 46, true),
        ("netflow9/ubiquiti_edgerouter_mpls.pcap", 16, false),
        ("generated/softflowd_v5.pcap", 30, false),
    ] {
        replay(
            &caps.join(f),
            if ipfix { c.ipfix_port } else { c.netflow_port },
        );
        expected += n;
    }
    assert!(wait_until(Duration::from_secs(10), || c
        .metric("sluice_store_records_total")
        >= expected as f64));
    let all = c.dump_all(None);
    assert_eq!(all.len(), expected);
    let key = |d: &Value| d.to_string();
    for (expr, pred) in CASES {
        let mut want: Vec<String> = all.iter().filter(|d| pred(d)).map(key).collect();
        let mut got: Vec<String> = c.dump_all(Some(expr)).iter().map(key).collect();
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{expr}: count");
        assert_eq!(got, want, "{expr}");
    }
    // The cases are not all trivially empty or full.
    let selective = CASES
        .iter()
        .filter(|(_, p)| {
            let n = all.iter().filter(|d| p(d)).count();
            n > 0 && n < all.len()
        })
        .count();
    assert!(
        selective >= 7,
        "only {selective} expressions select a proper subset"
    );
}
