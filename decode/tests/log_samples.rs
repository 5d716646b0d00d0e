//! Every sample line in ../shared/logs parses to the fields the line says (values read off
//! the lines by hand, not captured from the parser), and lines nobody can parse are kept.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use sluice_decode::event::{elem, Event, Val, SLUICE_PEN};
use sluice_decode::syslog::{parse_line, SyslogDecoder, Vendor};
use sluice_decode::time::parse_rfc3339;
use sluice_decode::vpc::VpcDecoder;

/// 2026-11-23T12:00:00Z: "now" for the year of RFC 3164 timestamps.
const NOW: i64 = 1_795_435_200 * 1_000_000_000;

fn logs() -> PathBuf {
    match std::env::var_os("SLUICE_LOGS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/logs"),
    }
}

fn lines(name: &str) -> Vec<String> {
    let p = logs().join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("address"))
}

fn t(s: &str) -> Option<i64> {
    Some(parse_rfc3339(s).expect("time"))
}

fn ms(s: &str) -> Option<i64> {
    t(s).map(|ns| ns / 1_000_000)
}

fn text(e: &Event<'_>, id: u16) -> Option<String> {
    match e.get(id) {
        Val::Text(s) => Some(s.to_string()),
        Val::None => None,
        v => panic!("element {id} is not text: {v:?}"),
    }
}

fn num(e: &Event<'_>, id: u16) -> Option<u64> {
    e.get_uint(id)
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn parse(line: &str) -> (Event<'_>, Vendor, Option<&'static str>) {
    let mut e = Event::default();
    let (v, f) = parse_line(line, NOW, &mut e);
    (e, v, f)
}

#[test]
fn edgerouter_iptables() {
    let l = lines("edgerouter-iptables.log");
    assert_eq!(l.len(), 5);

    let (e, v, f) = parse(&l[0]);
    assert_eq!((v, f), (Vendor::Netfilter, None));
    assert_eq!(e.time_ns, t("2026-11-22T09:15:01Z"));
    assert_eq!(num(&e, elem::SYSLOG_PRIORITY), Some(4));
    assert_eq!(num(&e, elem::SYSLOG_FACILITY), Some(0));
    assert_eq!(num(&e, elem::SYSLOG_SEVERITY), Some(4));
    assert_eq!(text(&e, elem::SYSLOG_HOSTNAME), s("er-x"));
    assert_eq!(text(&e, elem::OBSERVER_HOSTNAME), s("er-x"));
    assert_eq!(text(&e, elem::SYSLOG_APPNAME), s("kernel"));
    assert_eq!(text(&e, elem::OBSERVER_VENDOR), s("Ubiquiti"));
    assert_eq!(text(&e, elem::RULE_NAME), s("WAN_IN"));
    assert_eq!(text(&e, elem::RULE_ID), s("default"));
    assert_eq!(text(&e, elem::ACTION), s("drop"));
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("eth0"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("switch0"));
    assert_eq!(e.dst_mac, Some([0x78, 0x8a, 0x20, 0x11, 0x22, 0x33]));
    assert_eq!(e.src_mac, Some([0x00, 0x00, 0x5e, 0x00, 0x01, 0x01]));
    assert_eq!(e.src, ip("198.18.7.21"));
    assert_eq!(e.dst, ip("192.168.10.5"));
    assert_eq!(e.bytes, Some(44));
    assert_eq!(e.packets, Some(1));
    assert_eq!(e.proto, Some(6));
    assert_eq!(e.src_port, Some(50123));
    assert_eq!(e.dst_port, Some(8080));
    assert_eq!(e.tcp_flags, Some(0x02), "SYN");
    assert_eq!(text(&e, elem::ORIGINAL).as_deref(), Some(l[0].as_str()));

    let (e, _, f) = parse(&l[1]);
    assert_eq!(f, None);
    assert_eq!(text(&e, elem::RULE_NAME), s("WAN_LOCAL"));
    assert_eq!(text(&e, elem::RULE_ID), s("20"));
    assert_eq!(text(&e, elem::ACTION), s("drop"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), None, "OUT= is empty");
    assert_eq!((e.src, e.dst), (ip("198.18.9.3"), ip("198.19.0.2")));
    assert_eq!((e.src_port, e.dst_port), (Some(443), Some(22)));
    assert_eq!(e.tcp_flags, Some(0x04), "RST");
    assert_eq!(e.bytes, Some(40));

    let (e, _, f) = parse(&l[2]);
    assert_eq!(f, None);
    assert_eq!(num(&e, elem::SYSLOG_SEVERITY), Some(6));
    assert_eq!(text(&e, elem::RULE_NAME), s("LAN_IN"));
    assert_eq!(text(&e, elem::RULE_ID), s("30"));
    assert_eq!(text(&e, elem::ACTION), s("allow"));
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("switch0"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("eth0"));
    assert_eq!((e.src, e.dst), (ip("192.168.10.33"), ip("198.18.1.53")));
    assert_eq!(e.proto, Some(17));
    assert_eq!((e.src_port, e.dst_port), (Some(51999), Some(53)));
    assert_eq!(e.bytes, Some(61), "IP length, not the UDP LEN=41");
    assert_eq!(e.tcp_flags, None);
    assert_eq!(e.time_ns, t("2026-11-22T09:16:12Z"));

    let (e, _, f) = parse(&l[3]);
    assert_eq!(f, None);
    assert_eq!(text(&e, elem::RULE_ID), s("10"));
    assert_eq!(e.proto, Some(1));
    assert_eq!(e.icmp, Some((8, 0)));
    assert_eq!((e.src_port, e.dst_port), (None, None));
    assert_eq!((e.src, e.dst), (ip("198.18.3.200"), ip("192.168.10.9")));
    assert_eq!(e.bytes, Some(84));

    let (e, _, f) = parse(&l[4]);
    assert_eq!(f, None);
    assert_eq!(text(&e, elem::RULE_NAME), s("WAN6_IN"));
    assert_eq!(text(&e, elem::RULE_ID), s("default"));
    assert_eq!(e.src, ip("2001:db8::99"));
    assert_eq!(e.dst, ip("2001:db8:10::5"));
    assert_eq!((e.src_port, e.dst_port), (Some(41000), Some(3389)));
    assert_eq!(e.bytes, Some(80));
    assert_eq!(e.tcp_flags, Some(0x02));
    assert_eq!(e.time_ns, t("2026-11-22T09:17:02Z"));
}

#[test]
fn cisco_asa() {
    let l = lines("cisco-asa.log");
    assert_eq!(l.len(), 8);
    for line in &l {
        let (e, v, f) = parse(line);
        assert_eq!((v, f), (Vendor::Asa, None), "{line}");
        assert_eq!(text(&e, elem::OBSERVER_VENDOR), s("Cisco"));
        assert_eq!(text(&e, elem::OBSERVER_PRODUCT), s("ASA"));
        assert_eq!(
            text(&e, elem::SYSLOG_HOSTNAME),
            None,
            "these lines carry no host"
        );
    }

    // Teardown TCP: the inside host with the high port is the client.
    let (e, _, _) = parse(&l[0]);
    assert_eq!(e.time_ns, t("2026-11-22T09:20:01Z"));
    assert_eq!(num(&e, elem::SYSLOG_PRIORITY), Some(166));
    assert_eq!(num(&e, elem::SYSLOG_FACILITY), Some(20));
    assert_eq!(num(&e, elem::SYSLOG_SEVERITY), Some(6));
    assert_eq!(text(&e, elem::CODE), s("302014"));
    assert_eq!(num(&e, elem::SEVERITY), Some(6));
    assert_eq!(text(&e, elem::ACTION), s("allow"));
    assert_eq!(num(&e, elem::ASA_CONNECTION_ID), Some(88231));
    assert_eq!((e.src, e.src_port), (ip("10.20.0.14"), Some(60211)));
    assert_eq!((e.dst, e.dst_port), (ip("198.18.20.5"), Some(443)));
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("inside"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("outside"));
    assert_eq!(e.proto, Some(6));
    assert_eq!(e.bytes, Some(18211));
    assert_eq!(text(&e, elem::REASON), s("TCP FINs"));
    assert_eq!(e.end_ms, ms("2026-11-22T09:20:01Z"));
    assert_eq!(e.start_ms, ms("2026-11-22T09:19:30Z"), "31 s before");

    let (e, _, _) = parse(&l[1]);
    assert_eq!(text(&e, elem::CODE), s("302016"));
    assert_eq!(e.proto, Some(17));
    assert_eq!((e.src, e.src_port), (ip("10.20.0.15"), Some(61001)));
    assert_eq!((e.dst, e.dst_port), (ip("198.18.1.53"), Some(53)));
    assert_eq!(e.bytes, Some(188));
    assert_eq!(text(&e, elem::REASON), None);
    assert_eq!(e.start_ms, e.end_ms, "duration 0:00:00");

    // ICMP built inbound: faddr is the source, laddr the destination, gaddr its mapping.
    for (i, code) in [(2, "302020"), (3, "302021")] {
        let (e, _, _) = parse(&l[i]);
        assert_eq!(text(&e, elem::CODE), s(code));
        assert_eq!(text(&e, elem::ACTION), s("allow"));
        assert_eq!(e.proto, Some(1));
        assert_eq!(e.src, ip("198.18.4.4"));
        assert_eq!(e.dst, ip("10.20.0.10"));
        assert_eq!(e.nat_dst, ip("198.19.0.10"));
        assert_eq!(e.icmp, Some((8, 0)));
    }

    let (e, _, _) = parse(&l[4]);
    assert_eq!(text(&e, elem::CODE), s("106007"));
    assert_eq!(num(&e, elem::SEVERITY), Some(2));
    assert_eq!(num(&e, elem::SYSLOG_SEVERITY), Some(3));
    assert_eq!(text(&e, elem::ACTION), s("deny"));
    assert_eq!(e.proto, Some(17));
    assert_eq!((e.src, e.src_port), (ip("198.18.6.6"), Some(5353)));
    assert_eq!((e.dst, e.dst_port), (ip("10.20.0.20"), Some(53)));
    assert_eq!(text(&e, elem::REASON), s("DNS Query"));

    let (e, _, _) = parse(&l[5]);
    assert_eq!(text(&e, elem::CODE), s("106014"));
    assert_eq!(text(&e, elem::ACTION), s("deny"));
    assert_eq!(e.proto, Some(1));
    assert_eq!((e.src, e.dst), (ip("198.18.8.8"), ip("10.20.0.21")));
    assert_eq!(e.icmp, Some((8, 0)));
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("outside"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("inside"));

    let (e, _, _) = parse(&l[6]);
    assert_eq!(text(&e, elem::CODE), s("106015"));
    assert_eq!(text(&e, elem::ACTION), s("deny"));
    assert_eq!((e.src, e.src_port), (ip("198.18.2.2"), Some(443)));
    assert_eq!((e.dst, e.dst_port), (ip("10.20.0.22"), Some(51515)));
    assert_eq!(e.tcp_flags, Some(0x04), "RST");
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("outside"));

    let (e, _, _) = parse(&l[7]);
    assert_eq!(text(&e, elem::CODE), s("106023"));
    assert_eq!(num(&e, elem::SEVERITY), Some(4));
    assert_eq!(text(&e, elem::ACTION), s("deny"));
    assert_eq!(text(&e, elem::RULE_NAME), s("DMZ_OUT"));
    assert_eq!(e.proto, Some(17));
    assert_eq!((e.src, e.src_port), (ip("172.16.5.5"), Some(123)));
    assert_eq!((e.dst, e.dst_port), (ip("198.18.0.123"), Some(123)));
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("dmz"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("outside"));
}

#[test]
fn panos_traffic_and_threat() {
    let l = lines("panos.log");
    assert_eq!(l.len(), 2);

    let (e, v, f) = parse(&l[0]);
    assert_eq!((v, f), (Vendor::Panos, None));
    assert_eq!(text(&e, elem::SYSLOG_HOSTNAME), s("fw01"));
    assert_eq!(text(&e, elem::OBSERVER_HOSTNAME), s("fw01"));
    assert_eq!(text(&e, elem::OBSERVER_SERIAL), s("001801000123"));
    assert_eq!(text(&e, elem::PANOS_TYPE), s("TRAFFIC"));
    assert_eq!(text(&e, elem::PANOS_SUBTYPE), s("end"));
    assert_eq!(e.time_ns, t("2026-11-22T09:30:00Z"));
    assert_eq!((e.src, e.src_port), (ip("10.30.0.7"), Some(52311)));
    assert_eq!((e.dst, e.dst_port), (ip("198.18.50.5"), Some(80)));
    assert_eq!(
        (e.nat_src, e.nat_src_port),
        (ip("198.19.0.30"), Some(30001))
    );
    assert_eq!(e.nat_dst, None, "destination not translated");
    assert_eq!(text(&e, elem::RULE_NAME), s("outbound-web"));
    assert_eq!(text(&e, elem::APPLICATION), s("web-browsing"));
    assert_eq!(text(&e, elem::INGRESS_ZONE), s("inside"));
    assert_eq!(text(&e, elem::EGRESS_ZONE), s("outside"));
    assert_eq!(text(&e, elem::INGRESS_INTERFACE), s("ethernet1/2"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("ethernet1/1"));
    assert_eq!(num(&e, elem::PANOS_SESSION_ID), Some(71234));
    assert_eq!(e.proto, Some(6));
    assert_eq!(text(&e, elem::ACTION), s("allow"));
    assert_eq!((e.bytes, e.responder_bytes), (Some(1200), Some(7920)));
    assert_eq!((e.packets, e.responder_packets), (Some(9), Some(9)));
    assert_eq!(e.start_ms, ms("2026-11-22T09:29:51Z"));
    assert_eq!(e.end_ms, ms("2026-11-22T09:29:59Z"), "8 s elapsed");
    assert_eq!(
        text(&e, elem::PANOS_CATEGORY),
        s("computer-and-internet-info")
    );
    assert_eq!(text(&e, elem::REASON), s("tcp-fin"));

    let (e, v, f) = parse(&l[1]);
    assert_eq!((v, f), (Vendor::Panos, None));
    assert_eq!(text(&e, elem::PANOS_TYPE), s("THREAT"));
    assert_eq!(text(&e, elem::PANOS_SUBTYPE), s("vulnerability"));
    assert_eq!((e.src, e.src_port), (ip("198.18.66.6"), Some(40404)));
    assert_eq!((e.dst, e.dst_port), (ip("10.30.0.80"), Some(80)));
    assert_eq!((e.nat_src, e.nat_dst), (None, None), "0.0.0.0: no NAT");
    assert_eq!(text(&e, elem::RULE_NAME), s("inbound-dmz"));
    assert_eq!(text(&e, elem::INGRESS_ZONE), s("outside"));
    assert_eq!(text(&e, elem::EGRESS_ZONE), s("dmz"));
    assert_eq!(text(&e, elem::EGRESS_INTERFACE), s("ethernet1/3"));
    assert_eq!(text(&e, elem::ACTION), s("reset-both"));
    assert_eq!(text(&e, elem::PANOS_MISC), s("/index.php"));
    assert_eq!(
        text(&e, elem::PANOS_THREAT_NAME),
        s("HTTP SQL Injection Attempt")
    );
    assert_eq!(num(&e, elem::PANOS_THREAT_ID), Some(38195));
    assert_eq!(text(&e, elem::PANOS_SEVERITY), s("high"));
    assert_eq!(text(&e, elem::PANOS_DIRECTION), s("client-to-server"));
    assert_eq!(num(&e, elem::PANOS_SESSION_ID), Some(71240));
    assert_eq!(text(&e, elem::OBSERVER_HOSTNAME), s("fw01"));
    assert_eq!(e.bytes, None);
}

#[test]
fn unparseable_lines_are_kept_with_a_reason() {
    let src = SocketAddr::from(([192, 0, 2, 1], 514));
    let mut d = SyslogDecoder::new();
    let inputs: [&[u8]; 5] = [
        b"<13>Nov 22 09:15:01 host some application said hello\n",
        b"\xff\xfe not text at all \x00\x01",
        b"<166>Nov 22 2026 09:20:01: %ASA-6-302014: Teardown TCP connection for nothing",
        b"   \r\n",
        b"<4>Nov 22 09:15:01 er-x kernel: [WAN_IN-10-D]IN=eth0 OUT= SRC=198.18.1.1 PROTO=TCP",
    ];
    let mut got = Vec::new();
    for m in inputs {
        d.decode(m, src, NOW, |r| {
            let at = |id| {
                r.template
                    .event_field(SLUICE_PEN, id)
                    .map(|i| String::from_utf8_lossy(r.field(i)).into_owned())
                    .unwrap_or_default()
            };
            got.push((at(elem::PARSE_FAILURE), at(elem::ORIGINAL)));
        });
    }
    assert_eq!(got.len(), 4, "only the blank message is skipped");
    assert_eq!(got[0].0, "unrecognized_format");
    assert_eq!(
        got[0].1,
        "<13>Nov 22 09:15:01 host some application said hello"
    );
    assert_eq!(got[1].0, "unrecognized_format");
    assert!(got[1].1.contains("not text at all"));
    assert_eq!(got[2].0, "asa_bad_message");
    assert_eq!(got[3].0, "netfilter_missing_address");
    let st = d.stats();
    assert_eq!(st.empty, 1);
    assert_eq!(st.invalid_utf8, 1);
    assert_eq!(st.total(), 4);
    assert_eq!(st.failure_total(), 4);
    assert_eq!(st.failures[&(Vendor::Unknown, "unrecognized_format")], 2);
    assert_eq!(st.failures[&(Vendor::Asa, "asa_bad_message")], 1);
}

#[test]
fn vpc_samples() {
    let src = SocketAddr::from(([0, 0, 0, 0], 0));
    let field = |r: &sluice_decode::Record<'_>, id| {
        r.template
            .event_field(SLUICE_PEN, id)
            .map(|i| String::from_utf8_lossy(r.field(i)).into_owned())
            .unwrap_or_default()
    };

    let mut d = VpcDecoder::new();
    let mut got = Vec::new();
    for l in lines("vpc-flow-logs-v2.log") {
        d.line(l.as_bytes(), src, NOW, |r| {
            let f = r.flow();
            got.push((
                f.src_ip,
                f.dst_ip,
                f.src_port,
                f.dst_port,
                f.proto,
                f.packets,
                f.bytes,
                f.start_ns,
                f.end_ns,
                field(r, elem::ACTION),
                field(r, elem::VPC_ACCOUNT_ID),
                field(r, elem::VPC_INTERFACE_ID),
            ));
        });
    }
    let s = |x: &str| x.to_string();
    let secs = |v: i64| v * 1_000_000_000;
    assert_eq!(
        got,
        vec![
            (
                ip("10.40.1.10"),
                ip("10.40.2.20"),
                Some(44321),
                Some(5432),
                Some(6),
                Some(12),
                Some(3021),
                secs(1_763_800_000),
                secs(1_763_800_060),
                s("allow"),
                s("210987654321"),
                s("eni-0f1e2d3c4b5a69788"),
            ),
            (
                ip("198.18.77.7"),
                ip("10.40.1.10"),
                Some(61000),
                Some(22),
                Some(6),
                Some(1),
                Some(40),
                secs(1_763_800_000),
                secs(1_763_800_060),
                s("deny"),
                s("210987654321"),
                s("eni-0f1e2d3c4b5a69788"),
            ),
        ]
    );
    assert_eq!(d.stats().nodata, 1);
    assert_eq!(d.stats().failure_total(), 0);

    let mut d = VpcDecoder::new();
    let mut n = 0;
    for l in lines("vpc-flow-logs-custom.log") {
        d.line(l.as_bytes(), src, NOW, |r| {
            n += 1;
            let f = r.flow();
            assert_eq!(field(r, elem::VPC_VERSION).as_bytes(), &[3]);
            assert_eq!(field(r, elem::VPC_ACCOUNT_ID), "210987654321");
            assert_eq!(field(r, elem::VPC_INTERFACE_ID), "eni-0a0b0c0d0e0f10111");
            assert_eq!((f.src_ip, f.dst_ip), (ip("10.40.3.3"), ip("10.40.4.4")));
            assert_eq!((f.src_port, f.dst_port), (Some(8080), Some(39000)));
            assert_eq!(
                (f.proto, f.packets, f.bytes),
                (Some(6), Some(22), Some(15022))
            );
            assert_eq!(f.tcp_flags, Some(3));
            assert_eq!(
                (f.start_ns, f.end_ns),
                (secs(1_763_800_100), secs(1_763_800_160))
            );
            assert_eq!(field(r, elem::ACTION), "allow");
            assert_eq!(field(r, elem::VPC_VPC_ID), "vpc-0f0e0d0c");
            assert_eq!(field(r, elem::VPC_SUBNET_ID), "subnet-0a0a0a0a");
            assert_eq!(field(r, elem::VPC_INSTANCE_ID), "i-0aa0bb0cc0dd0ee0f");
            assert_eq!(field(r, elem::VPC_TYPE), "IPv4");
            let pkt_dst = r
                .template
                .event_field(SLUICE_PEN, elem::VPC_PKT_DSTADDR)
                .map(|i| r.field(i).to_vec());
            assert_eq!(pkt_dst, Some(vec![198, 18, 99, 9]));
        });
    }
    assert_eq!(n, 1);
    assert_eq!(d.stats().headers, 1);
    assert_eq!(d.stats().failure_total(), 0);
}
