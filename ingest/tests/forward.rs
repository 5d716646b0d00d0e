//! Forwarding on loopback: a collector with three `[[forward]]` targets (UDP sockets this test
//! owns) receives datagrams from an IPv4 and an IPv6 exporter on both listeners; every
//! datagram must reach each target that takes its listener, byte for byte, and nothing else.
//!
//! Source addresses: when this process has CAP_NET_RAW (root: here and in CI) the datagrams
//! of an exporter of the target's family must arrive from the exporter's own address and
//! port; datagrams of the other family, and everything for the target with
//! `preserve_source = false`, from Sluice's address. Without CAP_NET_RAW every datagram must
//! come from Sluice's address, and the metrics must say so. Either way the expectations are
//! asserted, never skipped.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::collector::{Collector, Options, TempDir};

/// Whether this process holds CAP_NET_RAW in its effective set (the collector it starts
/// inherits the same).
fn cap_net_raw() -> bool {
    const CAP_NET_RAW: u32 = 13;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff line");
    eff & (1 << CAP_NET_RAW) != 0
}

/// Receives until `want` datagrams came or 10 s passed, then a little longer to catch extras.
fn receive(s: &UdpSocket, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut quiet_until = None;
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => got.push((from, buf[..n].to_vec())),
            Err(_) => {
                if got.len() >= want {
                    // Everything expected is here: wait a moment for anything extra.
                    let q = *quiet_until.get_or_insert(Instant::now() + Duration::from_millis(300));
                    if Instant::now() > q {
                        break;
                    }
                } else if Instant::now() > deadline {
                    break;
                }
            }
        }
    }
    got
}

/// Multiset of payloads by sender: sender -> sorted payloads.
fn by_sender(v: &[(SocketAddr, Vec<u8>)]) -> BTreeMap<SocketAddr, Vec<Vec<u8>>> {
    let mut m: BTreeMap<SocketAddr, Vec<Vec<u8>>> = BTreeMap::new();
    for (a, p) in v {
        m.entry(*a).or_default().push(p.clone());
    }
    for p in m.values_mut() {
        p.sort();
    }
    m
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn forwards_every_datagram_unchanged_with_the_exporters_address_when_allowed() {
    let raw = cap_net_raw();
    let t4 = UdpSocket::bind("127.0.0.1:0").expect("target v4");
    let t6 = UdpSocket::bind("[::1]:0").expect("target v6");
    let tp = UdpSocket::bind("127.0.0.1:0").expect("target plain");
    for s in [&t4, &t6, &tp] {
        socket2::SockRef::from(s)
            .set_recv_buffer_size(8 << 20)
            .expect("rcvbuf");
    }
    let dir = TempDir::new("forward");
    let opts = Options {
        extra: format!(
            "[[forward]]\nname = \"v4\"\naddress = \"{}\"\n\n\
             [[forward]]\nname = \"v6\"\naddress = \"{}\"\nlisteners = [\"netflow\"]\n\n\
             [[forward]]\nname = \"plain\"\naddress = \"{}\"\npreserve_source = false\n",
            t4.local_addr().expect("addr"),
            t6.local_addr().expect("addr"),
            tp.local_addr().expect("addr"),
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);

    // Real export datagrams, and some that are not flow data at all (forwarding comes before
    // decoding), among them one of 9,000 bytes.
    let caps = common::captures_dir();
    let mut payloads: Vec<Vec<u8>> =
        common::pcap::read_udp_datagrams(&caps.join("generated/pmacctd_nfprobe_v9.pcap"))
            .expect("capture")
            .into_iter()
            .map(|d| d.payload)
            .collect();
    for i in 0..20u32 {
        let len = if i == 7 {
            9000
        } else {
            1 + (i as usize * 37) % 300
        };
        let mut p: Vec<u8> = (0..len).map(|j| (j as u32 * 31 + i) as u8).collect();
        p[..4.min(len)].copy_from_slice(&i.to_be_bytes()[..4.min(len)]);
        payloads.push(p);
    }
    let e4 = UdpSocket::bind("127.0.0.1:0").expect("exporter v4");
    let e6 = UdpSocket::bind("[::1]:0").expect("exporter v6");
    let a4 = e4.local_addr().expect("addr");
    let a6 = e6.local_addr().expect("addr");
    // The IPv4 exporter sends every payload to both listeners, tagged by a leading byte so
    // the copies differ; the IPv6 exporter to the netflow listener only.
    let tagged = |tag: u8| -> Vec<Vec<u8>> {
        payloads
            .iter()
            .map(|p| {
                let mut v = vec![tag];
                v.extend_from_slice(p);
                v
            })
            .collect()
    };
    let (v4_netflow, v4_ipfix, v6_netflow) = (tagged(1), tagged(2), tagged(3));
    for p in &v4_netflow {
        e4.send_to(p, ("127.0.0.1", c.netflow_port)).expect("send");
    }
    for p in &v4_ipfix {
        e4.send_to(p, ("127.0.0.1", c.ipfix_port)).expect("send");
    }
    for p in &v6_netflow {
        e6.send_to(p, ("::1", c.netflow_port)).expect("send");
    }
    let n = payloads.len();

    // Target v4 (both listeners, preserve_source on).
    let got = by_sender(&receive(&t4, 3 * n));
    let from_v4 = sorted([v4_netflow.clone(), v4_ipfix.clone()].concat());
    let all = sorted([v4_netflow.clone(), v4_ipfix.clone(), v6_netflow.clone()].concat());
    if raw {
        assert_eq!(
            got.get(&a4),
            Some(&from_v4),
            "v4: the IPv4 exporter's datagrams from its own address"
        );
        // The IPv6 exporter cannot be an IPv4 source: Sluice's address, one sender.
        let others: Vec<_> = got.iter().filter(|(a, _)| **a != a4).collect();
        assert_eq!(others.len(), 1, "v4: one other sender: {:?}", got.keys());
        assert_eq!(others[0].1, &sorted(v6_netflow.clone()));
    } else {
        assert!(
            !got.contains_key(&a4),
            "v4: no raw socket, so not the exporter's address"
        );
        assert_eq!(got.len(), 1, "v4: one sender, Sluice: {:?}", got.keys());
        assert_eq!(got.values().next(), Some(&all));
    }

    // Target v6 (netflow listener only).
    let got = by_sender(&receive(&t6, 2 * n));
    if raw {
        assert_eq!(
            got.get(&a6),
            Some(&sorted(v6_netflow.clone())),
            "v6: the IPv6 exporter's own address"
        );
        let others: Vec<_> = got.iter().filter(|(a, _)| **a != a6).collect();
        assert_eq!(others.len(), 1, "v6: one other sender: {:?}", got.keys());
        assert_eq!(
            others[0].1,
            &sorted(v4_netflow.clone()),
            "v6: nothing from the ipfix listener"
        );
    } else {
        assert_eq!(got.len(), 1, "v6: one sender, Sluice: {:?}", got.keys());
        assert!(!got.contains_key(&a6));
        assert_eq!(
            got.values().next(),
            Some(&sorted([v4_netflow.clone(), v6_netflow.clone()].concat()))
        );
    }

    // Target plain (preserve_source = false): everything, from Sluice's address.
    let got = by_sender(&receive(&tp, 3 * n));
    assert_eq!(got.len(), 1, "plain: one sender, Sluice: {:?}", got.keys());
    let (sluice_addr, p) = got.iter().next().expect("a sender");
    assert!(*sluice_addr != a4 && *sluice_addr != a6);
    assert_eq!(p, &all);

    // The metrics say the same.
    let m = |name: &str| c.metric(name);
    let preserved = if raw { 1.0 } else { 0.0 };
    assert_eq!(
        m("sluice_forward_source_preserved{target=\"v4\"}"),
        preserved
    );
    assert_eq!(
        m("sluice_forward_source_preserved{target=\"v6\"}"),
        preserved
    );
    assert_eq!(m("sluice_forward_source_preserved{target=\"plain\"}"), 0.0);
    let sent = |t: &str, s: &str| {
        m(&format!(
            "sluice_forward_datagrams_total{{source=\"{s}\",target=\"{t}\"}}"
        ))
    };
    let n = n as f64;
    if raw {
        assert_eq!(sent("v4", "exporter"), 2.0 * n);
        assert_eq!(sent("v4", "sluice"), n);
        assert_eq!(sent("v6", "exporter"), n);
        assert_eq!(sent("v6", "sluice"), n);
    } else {
        assert_eq!(sent("v4", "exporter"), 0.0);
        assert_eq!(sent("v4", "sluice"), 3.0 * n);
        assert_eq!(sent("v6", "sluice"), 2.0 * n);
    }
    assert_eq!(sent("plain", "sluice"), 3.0 * n);
    assert_eq!(m("sluice_forward_dropped_total"), 0.0);
    let log = c.log_text();
    if raw {
        assert!(
            log.contains("forward v4 (") && log.contains("keep the exporter's source address"),
            "{log}"
        );
        assert!(log.contains("other address family"), "{log}");
    } else {
        assert!(
            log.contains("cannot keep the exporters' source addresses"),
            "{log}"
        );
    }
    assert!(
        log.contains("forward plain (") && log.contains("preserve_source is off"),
        "{log}"
    );
}
