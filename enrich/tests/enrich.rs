//! `Enricher::enrich` on hand-built records and on real captures (`../shared/captures`).

mod common;

use std::net::IpAddr;

use common::*;
use sluice_decode::InterfaceInfo;
use sluice_decode::ScopeTables;
use sluice_enrich::{
    community_id, EnrichConfig, Enriched, Enricher, ExporterConfig, InterfaceConfig, Locality,
    SamplingSource, Side,
};

fn config() -> EnrichConfig {
    EnrichConfig {
        geoip_city: Some(geoip("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geoip("GeoLite2-ASN-Test.mmdb")),
        exporters: vec![ExporterConfig {
            address: ip("192.0.2.1"),
            name: Some("edge1".into()),
            sampling_interval: None,
            interfaces: vec![InterfaceConfig {
                index: 1,
                name: Some("ge-0/0/1".into()),
                description: Some("uplink".into()),
            }],
        }],
        ..EnrichConfig::default()
    }
}

fn tables() -> ScopeTables {
    let mut t = ScopeTables::default();
    t.samplers.insert(7, 100);
    t.samplers.insert(u64::MAX, 50);
    t.interfaces.insert(
        1,
        InterfaceInfo {
            name: Some("learned-1".into()),
            description: None,
        },
    );
    t.interfaces.insert(
        2,
        InterfaceInfo {
            name: Some("eth2".into()),
            description: Some("lan".into()),
        },
    );
    t
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, extra: &[Val]) -> Vec<Val> {
    let (s, d) = if ip(src).is_ipv4() { (8, 12) } else { (27, 28) };
    let mut vals = vec![
        v(s, addr(src)),
        v(d, addr(dst)),
        v(7, u16v(sport)),
        v(11, u16v(dport)),
        v(4, u8v(6)),
        v(6, u8v(0x12)),
        v(1, u64v(1000)),
        v(2, u64v(10)),
    ];
    vals.extend(extra.iter().cloned());
    vals
}

fn run(e: &Enricher, rec: &Owned, t: Option<&ScopeTables>) -> Enriched {
    let mut c = e.cache();
    let mut out = Enriched::default();
    let r = rec.record();
    e.enrich(&mut c, &r, &r.flow(), t, &mut out);
    out
}

#[test]
fn full_ipv4_record() {
    let e = Enricher::new(&config()).expect("enricher");
    let rec = ipfix(
        // A dual-stack socket reports an IPv4 exporter as IPv4-mapped IPv6.
        "[::ffff:192.0.2.1]:2055",
        &tcp(
            "89.160.20.115",
            "192.168.1.10",
            443,
            51000,
            &[
                v(10, u32v(1)),
                v(14, u32v(2)),
                v(48, u8v(7)),
                v(225, addr("0.0.0.0")),
                v(226, addr("10.1.1.1")),
                v(228, u16v(8443)),
            ],
        ),
    );
    let t = tables();
    let out = run(&e, &rec, Some(&t));
    assert_eq!(out.exporter_name.get(), Some("edge1"));

    assert_eq!(out.source.ip, Some(ip("89.160.20.115")));
    assert_eq!(out.source.port, Some(443));
    assert_eq!(out.source.locality, Some(Locality::Public));
    let g = out.source_geo().expect("source geo");
    assert_eq!(g.country_iso_code.as_deref(), Some("SE"));
    assert_eq!(g.city_name.as_deref(), Some("Linköping"));
    assert_eq!(out.source.as_number, Some(29518));
    assert_eq!(
        out.source_as().and_then(|a| a.organization.as_deref()),
        Some("Bredband2 AB")
    );
    assert_eq!(out.source.nat_ip, None, "0.0.0.0 means untranslated");
    assert_eq!(out.source.nat_port, None);

    assert_eq!(out.destination.locality, Some(Locality::Private));
    assert!(out.destination_geo().is_none());
    assert!(out.destination_as().is_none());
    assert_eq!(out.destination.as_number, None);
    assert_eq!(out.destination.nat_ip, Some(ip("10.1.1.1")));
    assert_eq!(out.destination.nat_port, Some(8443));

    assert_eq!(out.transport, Some("tcp"));
    assert_eq!(out.tcp_flags, ["SYN", "ACK"]);
    assert_eq!(out.server, Some(Side::Source));
    assert_eq!(out.server_endpoint().and_then(|s| s.port), Some(443));
    assert_eq!(out.client_endpoint().and_then(|s| s.port), Some(51000));
    assert_eq!(out.service, Some("https"));
    assert_eq!(out.direction, Some("inbound"));
    let want = community_id(
        0,
        ip("89.160.20.115"),
        ip("192.168.1.10"),
        6,
        Some((443, 51000)),
    );
    assert_eq!(out.community_id, want);
    assert!(out.community_id.is_some());

    assert_eq!(out.sampling_interval, Some(100));
    assert_eq!(out.sampling_source, Some(SamplingSource::Sampler));
    assert_eq!(out.bytes, Some(100_000));
    assert_eq!(out.packets, Some(1_000));

    assert_eq!(out.in_if.index, Some(1));
    assert_eq!(out.in_if.name.get(), Some("ge-0/0/1"), "config wins");
    assert_eq!(out.in_if.description.get(), Some("uplink"));
    assert_eq!(out.out_if.index, Some(2));
    assert_eq!(out.out_if.name.get(), Some("eth2"), "options data");
    assert_eq!(out.out_if.description.get(), Some("lan"));
}

#[test]
fn community_id_of_a_record_matches_the_spec_baseline() {
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let rec = ipfix(
        "192.0.2.9:4739",
        &tcp("128.232.110.120", "66.35.250.204", 34855, 80, &[]),
    );
    let out = run(&e, &rec, None);
    assert_eq!(
        out.community_id.map(|c| c.to_string()).as_deref(),
        Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    );
    assert_eq!(out.direction, Some("external"));
    assert_eq!(out.service, Some("http"));
    assert_eq!(out.server, Some(Side::Destination));
    assert_eq!(out.exporter_name.get(), None);

    // Seed from the config.
    let e = Enricher::new(&EnrichConfig {
        community_id_seed: 1,
        ..EnrichConfig::default()
    })
    .expect("enricher");
    let rec = ipfix(
        "192.0.2.9:4739",
        &tcp("1.2.3.4", "5.6.7.8", 1122, 3344, &[]),
    );
    assert_eq!(
        run(&e, &rec, None)
            .community_id
            .map(|c| c.to_string())
            .as_deref(),
        Some("1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=")
    );
}

#[test]
fn sampling_precedence() {
    let t = tables();
    let mut cfg = config();
    let e = Enricher::new(&cfg).expect("enricher");
    let exporter = "192.0.2.1:2055";
    let case = |e: &Enricher, extra: &[Val], t: Option<&ScopeTables>| {
        let rec = ipfix(exporter, &tcp("10.0.0.1", "10.0.0.2", 40000, 22, extra));
        let out = run(e, &rec, t);
        (
            out.sampling_interval,
            out.sampling_source,
            out.bytes,
            out.packets,
        )
    };
    // The record's own interval (IE 34) beats the tables.
    assert_eq!(
        case(&e, &[v(34, u32v(20)), v(48, u8v(7))], Some(&t)),
        (
            Some(20),
            Some(SamplingSource::Record),
            Some(20_000),
            Some(200)
        )
    );
    // Sampler id -> sampler table.
    assert_eq!(
        case(&e, &[v(48, u8v(7))], Some(&t)),
        (
            Some(100),
            Some(SamplingSource::Sampler),
            Some(100_000),
            Some(1000)
        )
    );
    // Unknown sampler id -> the scope's id-less interval.
    assert_eq!(
        case(&e, &[v(48, u8v(9))], Some(&t)),
        (
            Some(50),
            Some(SamplingSource::Scope),
            Some(50_000),
            Some(500)
        )
    );
    // An interval of 0 in the record means "none given".
    assert_eq!(
        case(&e, &[v(34, u32v(0))], Some(&t)),
        (
            Some(50),
            Some(SamplingSource::Scope),
            Some(50_000),
            Some(500)
        )
    );
    // RFC 5476 packet interval/space: 1 of every 1+9.
    assert_eq!(
        case(&e, &[v(305, u32v(1)), v(306, u32v(9))], None),
        (
            Some(10),
            Some(SamplingSource::Record),
            Some(10_000),
            Some(100)
        )
    );
    // Nothing known: raw counts.
    assert_eq!(case(&e, &[], None), (None, None, Some(1000), Some(10)));
    // The exporter's configured interval beats everything.
    cfg.exporters[0].sampling_interval = Some(3);
    let e = Enricher::new(&cfg).expect("enricher");
    assert_eq!(
        case(&e, &[v(34, u32v(20)), v(48, u8v(7))], Some(&t)),
        (Some(3), Some(SamplingSource::Config), Some(3000), Some(30))
    );
    cfg.exporters[0].sampling_interval = Some(0);
    assert_eq!(
        Enricher::new(&cfg).expect_err("zero interval").reason(),
        "config"
    );
}

#[test]
fn v5_header_sampling_and_reverse_counters() {
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    // Mode bits 01 (deterministic), interval 64.
    let rec = v5(
        "192.0.2.5:2055",
        "10.0.0.1",
        "8.8.8.8",
        53000,
        53,
        17,
        0x4000 | 64,
    );
    let out = run(&e, &rec, None);
    assert_eq!(out.sampling_interval, Some(64));
    assert_eq!(out.sampling_source, Some(SamplingSource::Record));
    assert_eq!(out.bytes, Some(1500 * 64));
    assert_eq!(out.packets, Some(640));
    assert_eq!(out.transport, Some("udp"));
    assert_eq!(out.service, Some("dns"));
    assert_eq!(out.direction, Some("outbound"));
    assert_eq!(out.tcp_flags, &[] as &[&str], "flags only for TCP");
    assert_eq!(out.in_if.index, Some(3));
    assert_eq!(out.in_if.name.get(), None);

    // Biflow responder counters (IE 232/299) are scaled too.
    let rec = ipfix(
        "192.0.2.5:4739",
        &tcp(
            "10.0.0.1",
            "10.0.0.2",
            40000,
            22,
            &[v(232, u64v(7)), v(299, u64v(3)), v(34, u16v(4))],
        ),
    );
    let out = run(&e, &rec, None);
    assert_eq!((out.rev_bytes, out.rev_packets), (Some(28), Some(12)));
}

#[test]
fn direction_from_flow_direction_and_locality() {
    let e = Enricher::new(&EnrichConfig {
        internal_networks: vec!["203.0.113.0/24".parse().expect("prefix")],
        ..EnrichConfig::default()
    })
    .expect("enricher");
    let dir = |src: &str, dst: &str, extra: &[Val]| {
        run(
            &e,
            &ipfix("192.0.2.1:1", &tcp(src, dst, 40000, 443, extra)),
            None,
        )
        .direction
    };
    assert_eq!(
        dir("10.0.0.1", "8.8.8.8", &[v(61, u8v(0))]),
        Some("ingress")
    );
    assert_eq!(dir("10.0.0.1", "8.8.8.8", &[v(61, u8v(1))]), Some("egress"));
    assert_eq!(dir("10.0.0.1", "8.8.8.8", &[]), Some("outbound"));
    assert_eq!(dir("8.8.8.8", "100.64.1.1", &[]), Some("inbound"));
    assert_eq!(dir("fd00::1", "fe80::1", &[]), Some("internal"));
    assert_eq!(dir("8.8.8.8", "1.1.1.1", &[]), Some("external"));
    assert_eq!(
        dir("8.8.8.8", "203.0.113.7", &[]),
        Some("inbound"),
        "configured internal"
    );
    assert_eq!(
        dir("10.0.0.1", "239.1.1.1", &[]),
        Some("internal"),
        "multicast follows source"
    );

    // biflowDirection overrides the port heuristic.
    let out = run(
        &e,
        &ipfix(
            "192.0.2.1:1",
            &tcp("10.0.0.1", "10.0.0.2", 443, 40000, &[v(239, u8v(1))]),
        ),
        None,
    );
    assert_eq!(out.server, Some(Side::Destination));
    assert_eq!(out.service, None, "40000 names no service");
}

#[test]
fn icmp_type_and_code() {
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let base = |extra: &[Val], dport: Option<u16>| {
        let mut vals = vec![
            v(8, addr("192.168.0.89")),
            v(12, addr("192.168.0.1")),
            v(4, u8v(1)),
        ];
        if let Some(p) = dport {
            vals.push(v(7, u16v(0)));
            vals.push(v(11, u16v(p)));
        }
        vals.extend(extra.iter().cloned());
        run(&e, &ipfix("192.0.2.1:1", &vals), None)
    };
    // The spec's baseline: echo request 192.168.0.89 -> 192.168.0.1.
    let want = Some("1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
    for out in [
        base(&[v(32, u16v(0x0800))], None),            // icmpTypeCodeIPv4
        base(&[v(176, u8v(8)), v(177, u8v(0))], None), // icmpTypeIPv4 / icmpCodeIPv4
        base(&[], Some(0x0800)),                       // type << 8 | code in the dst port
    ] {
        assert_eq!(out.icmp, Some((8, 0)));
        assert_eq!(out.community_id.map(|c| c.to_string()).as_deref(), want);
        assert_eq!(out.server, Some(Side::Destination));
        assert_eq!(out.transport, Some("icmp"));
        assert_eq!(out.service, None);
    }
    // Port unreachable.
    let out = base(&[v(32, u16v(0x0303))], None);
    assert_eq!(out.icmp, Some((3, 3)));
    assert_eq!(out.server, None);
    // No type anywhere: no community ID (ICMP needs its type/code).
    let out = base(&[], None);
    assert_eq!(out.icmp, None);
    assert_eq!(out.community_id, None);

    // ICMPv6 echo reply via IE 139.
    let out = run(
        &e,
        &ipfix(
            "192.0.2.1:1",
            &[
                v(27, addr("fe80:1011:1213:1415:1617:1819:1a1b:1c1d")),
                v(28, addr("fe80:0001:0203:0405:0607:0809:0a0b:0c0d")),
                v(4, u8v(58)),
                v(139, u16v(129 << 8)),
            ],
        ),
        None,
    );
    assert_eq!(out.transport, Some("ipv6-icmp"));
    assert_eq!(out.icmp, Some((129, 0)));
    assert_eq!(out.server, Some(Side::Source));
    assert_eq!(
        out.community_id.map(|c| c.to_string()).as_deref(),
        Some("1:0bf7hyMJUwt3fMED7z8LIfRpBeo=")
    );
}

#[test]
fn ipv6_geo_as_and_nat() {
    let e = Enricher::new(&config()).expect("enricher");
    let rec = ipfix(
        "[2001:db8::1]:4739",
        &tcp(
            "2001:218::10",
            "2003::1",
            50000,
            22,
            &[v(281, addr("2001:db8:1::5")), v(227, u16v(1024))],
        ),
    );
    let out = run(&e, &rec, None);
    assert_eq!(
        out.source_geo().and_then(|g| g.country_iso_code.as_deref()),
        Some("JP")
    );
    assert!(out.source_as().is_none());
    assert_eq!(out.destination.as_number, Some(3320));
    assert!(out.destination_geo().is_none());
    assert_eq!(out.source.nat_ip, Some(ip("2001:db8:1::5")));
    assert_eq!(out.source.nat_port, Some(1024));
    assert_eq!(out.service, Some("ssh"));
    assert_eq!(out.direction, Some("external"));
}

#[test]
fn record_as_numbers_fill_in_without_a_database() {
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let rec = ipfix(
        "192.0.2.1:1",
        &tcp(
            "8.8.8.8",
            "1.1.1.1",
            53,
            40000,
            &[v(16, u32v(15169)), v(17, u32v(0))],
        ),
    );
    let out = run(&e, &rec, None);
    assert_eq!(out.source.as_number, Some(15169));
    assert_eq!(out.destination.as_number, None, "0 means unknown");
}

#[test]
fn a_reused_output_keeps_nothing_from_the_previous_flow() {
    let e = Enricher::new(&config()).expect("enricher");
    let t = tables();
    let rich = ipfix(
        "192.0.2.1:2055",
        &tcp(
            "89.160.20.115",
            "192.168.1.10",
            443,
            51000,
            &[
                v(10, u32v(1)),
                v(14, u32v(2)),
                v(48, u8v(7)),
                v(226, addr("10.1.1.1")),
            ],
        ),
    );
    let bare = ipfix(
        "192.0.2.77:2055",
        &[
            v(8, addr("10.9.9.9")),
            v(12, addr("10.9.9.8")),
            v(4, u8v(47)),
        ],
    );
    let mut c = e.cache();
    let mut out = Enriched::default();
    let r = rich.record();
    e.enrich(&mut c, &r, &r.flow(), Some(&t), &mut out);
    assert!(out.source_geo().is_some());
    let r = bare.record();
    e.enrich(&mut c, &r, &r.flow(), None, &mut out);
    assert_eq!(out.exporter_name.get(), None);
    assert!(out.source_geo().is_none() && out.source_as().is_none());
    assert_eq!(out.source.as_number, None);
    assert_eq!(out.destination.nat_ip, None);
    assert_eq!(out.in_if.index, None);
    assert_eq!(out.in_if.name.get(), None);
    assert_eq!(out.out_if.description.get(), None);
    assert_eq!(out.sampling_interval, None);
    assert_eq!(out.bytes, None);
    assert_eq!(out.tcp_flags.len(), 0);
    assert_eq!(out.transport, Some("gre"));
    assert_eq!(out.server, None);
    assert_eq!(out.service, None);
    assert_eq!(out.direction, Some("internal"));
    assert!(
        out.community_id.is_some(),
        "port-less protocols hash addresses only"
    );
}

// ---- real captures ----

fn capture(rel: &str) -> std::path::PathBuf {
    let p = shared().join("captures").join(rel);
    assert!(p.exists(), "{} missing", p.display());
    p
}

type NatRow = (
    IpAddr,
    IpAddr,
    Option<IpAddr>,
    Option<IpAddr>,
    Option<u16>,
    Option<u16>,
);

fn nat_rows(rel: &str) -> Vec<NatRow> {
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut c = e.cache();
    let mut out = Enriched::default();
    let mut rows = Vec::new();
    each_flow(&capture(rel), |rec, t| {
        let f = rec.flow();
        e.enrich(&mut c, rec, &f, t, &mut out);
        if out.source.nat_ip.is_some() || out.destination.nat_ip.is_some() {
            rows.push((
                f.src_ip.expect("src"),
                f.dst_ip.expect("dst"),
                out.source.nat_ip,
                out.destination.nat_ip,
                out.source.nat_port,
                out.destination.nat_port,
            ));
        }
    });
    rows
}

fn p(s: &str) -> Option<u16> {
    let n: u16 = s.parse().expect("port");
    (n != 0).then_some(n)
}

/// Expected rows from `tshark -T fields -e cflow.srcaddr -e cflow.dstaddr
/// -e cflow.post_natsource_ipv4_address -e cflow.post_natdestination_ipv4_address
/// -e cflow.post_naptsource_transport_port -e cflow.post_naptdestination_transport_port`.
fn tshark_rows(cols: [&str; 6]) -> Vec<NatRow> {
    let split = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    let c: Vec<Vec<String>> = cols.iter().map(|s| split(s)).collect();
    (0..c[0].len())
        .map(|i| {
            (
                ip(&c[0][i]),
                ip(&c[1][i]),
                Some(ip(&c[2][i])),
                Some(ip(&c[3][i])),
                p(&c[4][i]),
                p(&c[5][i]),
            )
        })
        .collect()
}

#[test]
fn nat_fields_from_ipfix_style_elements() {
    let want = tshark_rows([
        "172.16.100.198,172.16.100.198,172.16.100.115,172.16.103.254,172.16.100.211,172.16.100.211,172.16.100.211,172.16.100.18,172.16.103.50",
        "10.89.87.1,51.250.50.21,74.125.131.138,10.89.87.21,10.89.87.1,10.89.87.1,216.239.38.120,149.154.167.220,200.25.20.50",
        "10.143.52.29,10.143.52.29,10.143.52.29,10.143.52.29,10.143.52.29,10.143.52.29,10.143.52.29,10.143.52.29,10.143.52.29",
        "10.89.87.1,51.250.50.21,74.125.131.138,10.89.87.21,10.89.87.1,10.89.87.1,216.239.38.120,149.154.167.220,200.25.20.50",
        "35303,52510,55942,38444,50200,53684,57563,54526,640",
        "53,443,443,53,53,53,443,443,123",
    ]);
    assert_eq!(nat_rows("netflow9/akvorado_v9_nat.pcap"), want);
}

#[test]
fn nat_fields_from_cisco_asa_nsel() {
    // Cisco ASA numbers them 40001-40004 (NF_F_XLATE_*).
    let want = tshark_rows([
        "192.168.14.1,192.168.23.22,164.164.37.11,192.168.23.20,164.164.37.11,192.168.14.11,2.2.2.11,2.2.2.11,192.168.14.1,164.164.37.11,192.168.23.22,164.164.37.11,192.168.23.20,164.164.37.11",
        "2.2.2.11,164.164.37.11,192.168.23.22,164.164.37.11,192.168.23.20,2.2.2.11,192.168.14.11,192.168.14.1,2.2.2.11,192.168.23.1,164.164.37.11,192.168.23.22,164.164.37.11,192.168.23.20",
        "192.168.14.1,192.168.23.22,164.164.37.11,192.168.23.20,164.164.37.11,192.168.14.11,2.2.2.11,2.2.2.11,192.168.14.1,164.164.37.11,192.168.23.22,164.164.37.11,192.168.23.20,164.164.37.11",
        "2.2.2.11,164.164.37.11,192.168.23.22,164.164.37.11,192.168.23.20,2.2.2.11,192.168.14.11,192.168.14.1,2.2.2.11,192.168.23.1,164.164.37.11,192.168.23.22,164.164.37.11,192.168.23.20",
        "0,17549,0,17805,0,17805,0,17805,0,0,18061,0,18061,0",
        "17549,0,17549,0,17805,0,17805,0,17805,0,0,18061,0,18061",
    ]);
    assert_eq!(nat_rows("netflow9/cisco_asa_1.pcap"), want);
}

#[test]
fn sampling_from_options_data() {
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut c = e.cache();
    let mut out = Enriched::default();
    let mut seen = Vec::new();
    each_flow(
        &capture("netflow9/akvorado_v9_multiple_sampling_rates.pcap"),
        |rec, t| {
            let f = rec.flow();
            e.enrich(&mut c, rec, &f, t, &mut out);
            assert_eq!(
                out.bytes,
                f.bytes
                    .map(|b| b * u64::from(out.sampling_interval.unwrap_or(1)))
            );
            assert_eq!(out.direction, Some("ingress"), "IE 61 = 0 in these records");
            seen.push((f.sampler_id, out.sampling_interval, out.sampling_source));
        },
    );
    let mut want = vec![(Some(2), Some(4000), Some(SamplingSource::Sampler))];
    want.extend(std::iter::repeat_n(
        (Some(1), Some(2000), Some(SamplingSource::Sampler)),
        11,
    ));
    assert_eq!(seen, want);

    let mut n = 0;
    each_flow(
        &capture("netflow9/akvorado_v9_options_template_data.pcap"),
        |rec, t| {
            let f = rec.flow();
            e.enrich(&mut c, rec, &f, t, &mut out);
            assert_eq!(out.sampling_interval, Some(30000));
            n += 1;
        },
    );
    assert!(n > 0);
}

#[test]
fn interface_descriptions_from_options_data() {
    // This capture only carries the interface table (IE 83 by ifIndex under a system scope);
    // a flow of that exporter through ifIndex 74 and 87 then gets those names.
    let path = capture("netflow9/cisco_asr9k_opttpl256_data256.pcap");
    let mut learn = sluice_decode::Decoder::new(sluice_decode::Limits::default());
    let mut exporter = None;
    let mut reader = sluice_decode::pcap::PcapReader::open(&path).expect("capture");
    reader
        .for_each_udp(|udp| {
            let dg = sluice_decode::Datagram {
                src: udp.src,
                receive_time_ns: udp.ts_nanos,
                payload: &udp.payload,
                tag: udp.frame,
            };
            let _ = learn.decode(&dg, |r| exporter = Some(*r.header));
        })
        .expect("reads");
    let h = exporter.expect("records");
    let t = learn.tables(&scope_of(&h)).expect("scope tables");
    let e = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut rec = ipfix(
        "192.0.2.1:1",
        &tcp(
            "10.0.0.1",
            "10.0.0.2",
            40000,
            22,
            &[v(10, u32v(74)), v(14, u32v(87))],
        ),
    );
    rec.header = h;
    let out = run(&e, &rec, Some(t));
    assert_eq!(out.in_if.description.get(), Some("TenGigE0_0_1_0"));
    assert_eq!(out.out_if.description.get(), Some("TenGigE0_1_0_1"));
    assert_eq!(out.in_if.name.get(), None);
}

/// Calls `f` with every flow of every capture (and its scope's tables).
fn every_capture_flow(
    mut f: impl FnMut(&std::path::Path, &sluice_decode::Record<'_>, Option<&ScopeTables>),
) {
    for dir in ["netflow5", "netflow9", "ipfix", "generated"] {
        for entry in std::fs::read_dir(shared().join("captures").join(dir)).expect("dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|x| x.to_str()) != Some("pcap") {
                continue;
            }
            each_flow(&path, |rec, t| f(&path, rec, t));
        }
    }
}

/// Every flow of every capture enriches without a panic and with consistent basics.
#[test]
fn every_capture_enriches() {
    let e = Enricher::new(&config()).expect("enricher");
    let mut c = e.cache();
    let mut out = Enriched::default();
    let mut flows = 0u64;
    every_capture_flow(|path, rec, t| {
        let f = rec.flow();
        e.enrich(&mut c, rec, &f, t, &mut out);
        flows += 1;
        assert_eq!(out.source.ip, f.src_ip);
        assert_eq!(out.destination.ip, f.dst_ip);
        if let (Some(s), Some(d), Some(p)) = (f.src_ip, f.dst_ip, f.proto) {
            if s.is_ipv4() == d.is_ipv4() && !matches!(p, 1 | 6 | 17 | 58 | 132) {
                assert!(out.community_id.is_some(), "{}", path.display());
            }
        }
        if out.source_geo().is_some() {
            assert_eq!(out.source.locality, Some(Locality::Public));
        }
    });
    assert!(flows > 1000, "{flows}");
    assert!(c.stats().hits > 0 && c.stats().misses > 0);
    assert_eq!(c.stats().lookup_errors, 0);
}

/// What a document shows of an enrichment, for comparing two of them.
fn shown(o: &Enriched) -> String {
    let geo = |g: Option<&sluice_enrich::GeoInfo>| g.map(|g| format!("{g:?}"));
    let org = |a: Option<&sluice_enrich::AsInfo>| a.and_then(|a| a.organization.clone());
    format!(
        "{:?} {:?}/{:?} {:?}/{:?} {:?} {:?} {:?}/{:?} {:?}/{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        o.exporter_name.get(),
        o.source.as_number,
        org(o.source_as()),
        o.destination.as_number,
        org(o.destination_as()),
        geo(o.source_geo()),
        geo(o.destination_geo()),
        o.sampling_interval,
        o.sampling_source,
        o.bytes,
        o.packets,
        o.in_if.index,
        o.in_if.name.get(),
        o.in_if.description.get(),
        o.out_if.index,
        o.out_if.name.get(),
        o.out_if.description.get(),
        o.source.locality,
        o.destination.locality,
        o.direction,
        o.service,
        o.transport,
        o.community_id,
        o.rev_bytes,
        o.tcp_flags,
    )
}

/// `enrich_learned` with what `Learned::from_tables` captured from the record alone (its
/// sampler id and interfaces, without `Flow`) gives what `enrich` with the tables gives, and
/// `enrich_kept` of `Enriched::kept` gives it again, without looking anything up: on every
/// capture, with databases and an exporter configured, and with options data.
#[test]
fn learned_and_kept_enrichment_match_enrich() {
    let e = Enricher::new(&config()).expect("enricher");
    let bare = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut c = e.cache();
    let mut bare_c = bare.cache();
    let (mut a, mut b, mut k, mut s) = (
        Enriched::default(),
        Enriched::default(),
        Enriched::default(),
        Enriched::default(),
    );
    let (mut flows, mut learned_some, mut geo) = (0u64, 0u64, 0u64);
    every_capture_flow(|path, rec, t| {
        let f = rec.flow();
        e.enrich(&mut c, rec, &f, t, &mut a);
        let l = sluice_enrich::Learned::from_tables(t, rec.sampler_id(), rec.in_if(), rec.out_if());
        learned_some += u64::from(l != sluice_enrich::Learned::default());
        e.enrich_learned(&mut c, rec, &f, &l, &mut b);
        assert_eq!(shown(&a), shown(&b), "{}", path.display());
        // Kept values come back through an enricher with no databases and no config.
        bare.enrich_kept(&mut bare_c, rec, &f, &a.kept(), &mut k);
        assert_eq!(shown(&a), shown(&k), "{}", path.display());
        // The store-only enrichment keeps the same values, so what a reader rebuilds from
        // them is the whole enrichment again.
        e.enrich_learned_for_store(&mut c, rec, &f, &l, &mut s);
        assert!(
            s.community_id.is_none() && s.service.is_none() && s.direction.is_none(),
            "store-only enrichment computed derived fields"
        );
        bare.enrich_kept(&mut bare_c, rec, &f, &s.kept(), &mut k);
        assert_eq!(shown(&a), shown(&k), "store-only, {}", path.display());
        geo += u64::from(k.source_geo().is_some() || k.destination_geo().is_some());
        flows += 1;
    });
    assert!(
        flows > 1000 && learned_some > 10 && geo > 0,
        "{flows} {learned_some} {geo}"
    );
}

/// The exporter's configured interface names and sampling still win over learned ones.
#[test]
fn config_wins_over_learned_values() {
    let mut cfg = config();
    cfg.exporters[0].sampling_interval = Some(10);
    let e = Enricher::new(&cfg).expect("enricher");
    let rec = ipfix(
        "192.0.2.1:2055",
        &tcp(
            "10.0.0.1",
            "10.0.0.2",
            40000,
            22,
            &[v(10, u32v(1)), v(14, u32v(2))],
        ),
    );
    let t = tables();
    let r = rec.record();
    let l = sluice_enrich::Learned::from_tables(Some(&t), Some(7), r.in_if(), r.out_if());
    assert_eq!(l.sampling, Some((100, SamplingSource::Sampler)));
    let mut c = e.cache();
    let mut out = Enriched::default();
    e.enrich_learned(&mut c, &r, &r.flow(), &l, &mut out);
    assert_eq!(out.sampling_interval, Some(10));
    assert_eq!(out.sampling_source, Some(SamplingSource::Config));
    assert_eq!(out.in_if.name.get(), Some("ge-0/0/1"), "configured");
    assert_eq!(out.out_if.name.get(), Some("eth2"), "learned");
    assert_eq!(out.out_if.description.get(), Some("lan"));
}

/// Keeping a record's enrichment adds to the record only when a database is loaded, its
/// exporter has settings, or its options data gave it something.
#[test]
fn adds_to_record_only_with_databases_settings_or_learned_values() {
    use sluice_enrich::Learned;
    let none = Learned::default();
    let (configured, other) = (ip("192.0.2.1"), ip("198.51.100.7"));

    let bare = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut c = bare.cache();
    assert!(!bare.may_add_to_records(&mut c));
    assert!(!bare.adds_to_record(&mut c, other, &none));
    let t = tables();
    let learned = Learned::from_tables(Some(&t), Some(7), Some(1), None);
    assert!(learned != none, "the tables give the record something");
    assert!(bare.adds_to_record(&mut c, other, &learned));

    let settings = Enricher::new(&EnrichConfig {
        geoip_city: None,
        geoip_asn: None,
        ..config()
    })
    .expect("enricher");
    let mut c = settings.cache();
    assert!(settings.may_add_to_records(&mut c));
    assert!(settings.adds_to_record(&mut c, configured, &none));
    assert!(!settings.adds_to_record(&mut c, other, &none));

    let dbs = Enricher::new(&config()).expect("enricher");
    let mut c = dbs.cache();
    assert!(dbs.may_add_to_records(&mut c));
    assert!(dbs.adds_to_record(&mut c, other, &none));
}
