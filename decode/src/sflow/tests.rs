//! Hand-built datagrams: every sample and record type, QinQ, IPv6 extension headers, and
//! truncation of everything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::layout::{self, Fam, Key, L4Kind, KEYS};
use super::*;
use crate::record::Flow;
use crate::template::Template;

// ---- builders -------------------------------------------------------------------------

#[derive(Default, Clone)]
struct B(Vec<u8>);

impl B {
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// XDR variable-length opaque: length, bytes, padding.
    fn opaque(mut self, b: &[u8]) -> Self {
        self = self.u32(b.len() as u32).bytes(b);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }
    fn addr(self, a: IpAddr) -> Self {
        match a {
            IpAddr::V4(v) => self.u32(1).bytes(&v.octets()),
            IpAddr::V6(v) => self.u32(2).bytes(&v.octets()),
        }
    }
    /// A list of (format, data) structures: count, then format + opaque each.
    fn list(mut self, items: &[(u32, Vec<u8>)]) -> Self {
        self = self.u32(items.len() as u32);
        for (f, d) in items {
            self = self.u32(*f).opaque(d);
        }
        self
    }
}

const AGENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn datagram(agent: IpAddr, seq: u32, uptime: u32, samples: &[(u32, Vec<u8>)]) -> Vec<u8> {
    B::default()
        .u32(5)
        .addr(agent)
        .u32(7) // sub-agent
        .u32(seq)
        .u32(uptime)
        .list(samples)
        .0
}

/// Compact flow sample: seq, source (type 0, index), rate 512, pool, drops, input, output.
fn flow_sample(seq: u32, index: u32, input: u32, output: u32, recs: &[(u32, Vec<u8>)]) -> Vec<u8> {
    B::default()
        .u32(seq)
        .u32(index)
        .u32(512)
        .u32(seq * 512)
        .u32(0)
        .u32(input)
        .u32(output)
        .list(recs)
        .0
}

fn sampled_header(proto: u32, frame_len: u32, hdr: &[u8]) -> (u32, Vec<u8>) {
    (
        1,
        B::default().u32(proto).u32(frame_len).u32(4).opaque(hdr).0,
    )
}

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&DST_MAC);
    v.extend_from_slice(&SRC_MAC);
    for (tpid, vid) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&(0x2000 | vid).to_be_bytes()); // PCP 1
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x45, 0x28];
    v.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8]) -> Vec<u8> {
    // Traffic class 0xb8 (EF), flow label 0x12345.
    let mut v = vec![0x6b, 0x81, 0x23, 0x45];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 64]);
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    v.extend_from_slice(payload);
    v
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    v
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 8, 0, 0]);
    v
}

fn ext_switch(src_vlan: u32, dst_vlan: u32) -> (u32, Vec<u8>) {
    (
        1001,
        B::default().u32(src_vlan).u32(0).u32(dst_vlan).u32(0).0,
    )
}

fn ext_router(nh: IpAddr, sm: u32, dm: u32) -> (u32, Vec<u8>) {
    (1002, B::default().addr(nh).u32(sm).u32(dm).0)
}

fn ext_gateway(nh: IpAddr, asn: u32, src: u32, peer: u32, path: &[&[u32]]) -> (u32, Vec<u8>) {
    let mut b = B::default()
        .addr(nh)
        .u32(asn)
        .u32(src)
        .u32(peer)
        .u32(path.len() as u32);
    for seg in path {
        b = b.u32(2).u32(seg.len() as u32);
        for a in *seg {
            b = b.u32(*a);
        }
    }
    // Two communities, local preference.
    (
        1003,
        b.u32(2)
            .u32(65000 << 16 | 1)
            .u32(65000 << 16 | 2)
            .u32(100)
            .0,
    )
}

// ---- running the decoder ---------------------------------------------------------------

/// One decoded record, owned.
#[derive(Clone, Debug)]
struct Rec {
    header: ExportHeader,
    template: Template,
    data: Vec<u8>,
}

impl Rec {
    fn record(&self) -> Record<'_> {
        Record {
            header: &self.header,
            template: &self.template,
            data: &self.data,
            spans: &self.template.fixed_spans,
            system_init_ms: None,
        }
    }
    fn flow(&self) -> Flow {
        self.record().flow()
    }
    /// Bytes of element `id`, if the layout has it.
    fn ie(&self, id: u16) -> Option<Vec<u8>> {
        let r = self.record();
        let i = self.template.fields.iter().position(|f| f.spec.id == id)?;
        Some(r.field(i).to_vec())
    }
    fn uint(&self, id: u16) -> Option<u64> {
        self.ie(id).map(|b| crate::record::be_uint(&b))
    }
}

fn src() -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], 50000))
}

fn run(d: &mut SflowDecoder, p: &[u8]) -> (Result<(), DecodeError>, Vec<Rec>, Vec<CounterSample>) {
    let mut recs = Vec::new();
    let mut ctrs = Vec::new();
    let dg = Datagram {
        src: src(),
        receive_time_ns: 1_700_000_000_000_000_000,
        payload: p,
        tag: 42,
    };
    let r = d.decode(
        &dg,
        |r| {
            assert_eq!(
                r.template.fixed_len,
                Some(r.data.len()),
                "layout and data agree"
            );
            recs.push(Rec {
                header: *r.header,
                template: r.template.clone(),
                data: r.data.to_vec(),
            })
        },
        |c| ctrs.push(*c),
    );
    (r, recs, ctrs)
}

fn one(p: &[u8]) -> Rec {
    let mut d = SflowDecoder::default();
    let (r, recs, _) = run(&mut d, p);
    assert_eq!(r, Ok(()));
    assert_eq!(d.stats().error_total(), 0, "{:?}", d.stats().errors);
    assert_eq!(recs.len(), 1);
    recs.into_iter().next().expect("one record")
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

// ---- tests ---------------------------------------------------------------------------

#[test]
fn ethernet_ipv4_tcp_with_switch_router_gateway() {
    let hdr = eth(
        &[],
        0x0800,
        &ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            6,
            0x4000,
            &tcp(443, 51000, 0x18),
        ),
    );
    let s = flow_sample(
        100,
        3,
        3,
        9,
        &[
            ext_switch(10, 20),
            sampled_header(1, 1518, &hdr),
            ext_router(v4([10, 0, 0, 254]), 24, 16),
            ext_gateway(
                v4([10, 9, 9, 9]),
                65000,
                64500,
                64501,
                &[&[64600, 64700], &[64800]],
            ),
        ],
    );
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    let f = r.flow();
    assert_eq!(f.src_ip, Some(v4([10, 0, 0, 1])));
    assert_eq!(f.dst_ip, Some(v4([10, 0, 0, 2])));
    assert_eq!(
        (f.src_port, f.dst_port, f.proto),
        (Some(443), Some(51000), Some(6))
    );
    assert_eq!(f.tcp_flags, Some(0x18));
    assert_eq!((f.bytes, f.packets), (Some(1518), Some(1)));
    assert_eq!(f.sampling_interval, Some(512));
    assert_eq!((f.in_if, f.out_if), (Some(3), Some(9)));
    assert_eq!(f.next_hop, Some(v4([10, 0, 0, 254])));
    assert_eq!((f.src_mask, f.dst_mask), (Some(24), Some(16)));
    assert_eq!((f.src_as, f.dst_as), (Some(64500), Some(64800)));
    assert_eq!(r.uint(128), Some(64600), "next adjacent AS");
    assert_eq!(r.uint(129), Some(64501), "previous adjacent AS");
    assert_eq!(r.ie(18), Some(vec![10, 9, 9, 9]), "BGP next hop");
    assert_eq!(r.uint(5), Some(0x28), "TOS");
    assert_eq!((r.uint(58), r.uint(59)), (Some(10), Some(20)));
    assert_eq!(r.ie(56), Some(SRC_MAC.to_vec()));
    assert_eq!(r.ie(80), Some(DST_MAC.to_vec()));
    assert_eq!(r.uint(256), Some(0x0800));
    assert_eq!(r.ie(130), Some(vec![192, 0, 2, 1]), "agent address");
    assert_eq!(r.uint(138), Some(3), "data source");
    assert_eq!(r.ie(89), None, "forwarded normally: no status");
    assert_eq!(r.ie(243), None);
    // Times: no flow times in sFlow; the receive time stands for both ends.
    assert_eq!(f.start_ns, 1_700_000_000_000_000_000);
    assert_eq!(r.header.version, 5);
    assert_eq!(r.header.source_id, 7);
    assert_eq!(r.header.sequence, 1);
    assert_eq!(r.header.sys_uptime_ms, Some(1000));
    assert_eq!(r.header.exporter, src());
    assert_eq!(r.header.tag, 42);
    assert_eq!(r.template.dialect, crate::Dialect::Sflow);
}

#[test]
fn qinq_ipv6_udp_takes_vlans_from_the_tags() {
    let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let b = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    let hdr = eth(
        &[(0x88a8, 100), (0x8100, 200)],
        0x86dd,
        &ipv6(a, b, 17, &udp(53, 40000)),
    );
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 200, &hdr)]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    let f = r.flow();
    assert_eq!(
        (f.src_ip, f.dst_ip),
        (Some(IpAddr::V6(a)), Some(IpAddr::V6(b)))
    );
    assert_eq!(
        (f.src_port, f.dst_port, f.proto),
        (Some(53), Some(40000), Some(17))
    );
    assert_eq!(f.tcp_flags, None, "UDP has no flags element");
    assert_eq!(r.uint(58), Some(100), "outer tag is the VLAN");
    assert_eq!(r.ie(59), None, "no egress VLAN known");
    assert_eq!((r.uint(243), r.uint(245)), (Some(100), Some(200)));
    assert_eq!(r.uint(256), Some(0x86dd));
    assert_eq!(r.uint(5), Some(0xb8), "traffic class");
}

#[test]
fn extended_switch_wins_over_tags_and_rejects_non_vlans() {
    let hdr = eth(
        &[(0x8100, 300)],
        0x0800,
        &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 0, &udp(1, 2)),
    );
    let s = flow_sample(
        1,
        1,
        1,
        2,
        &[ext_switch(u32::MAX, 100), sampled_header(1, 100, &hdr)],
    );
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    // Source VLAN 0xffffffff is not a VLAN: the header's tag stands in.
    assert_eq!((r.uint(58), r.uint(59)), (Some(300), Some(100)));
    assert_eq!(r.ie(243), None, "one tag is not QinQ");
    let s = flow_sample(1, 1, 1, 2, &[ext_switch(0, 0)]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    assert_eq!((r.ie(58), r.ie(59)), (None, None), "0 means unknown");
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let a = Ipv6Addr::LOCALHOST;
    let b = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9);
    // Hop-by-hop (8) -> routing (24) -> fragment, offset 0 (8) -> AH (16) -> dest opts (8) -> TCP.
    let mut chain = vec![43, 0, 0, 0, 0, 0, 0, 0];
    chain.extend_from_slice(&[44, 2, 0, 1]);
    chain.extend_from_slice(&[0; 20]);
    chain.extend_from_slice(&[51, 0, 0x00, 0x01, 0, 0, 0, 7]);
    chain.extend_from_slice(&[60, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    chain.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
    chain.extend_from_slice(&tcp(22, 60000, 0x02));
    let hdr = eth(&[], 0x86dd, &ipv6(a, b, 0, &chain));
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 400, &hdr)]);
    let f = one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow();
    assert_eq!(
        (f.proto, f.src_port, f.dst_port, f.tcp_flags),
        (Some(6), Some(22), Some(60000), Some(2))
    );

    // A later fragment has no transport header.
    let mut frag = vec![17, 0, 0x05, 0x01, 0, 0, 0, 9];
    frag.extend_from_slice(&udp(1, 2));
    let hdr = eth(&[], 0x86dd, &ipv6(a, b, 44, &frag));
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 400, &hdr)]);
    let f = one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow();
    assert_eq!((f.proto, f.src_port), (Some(17), None));

    // ESP ends the walk; the chain cut short reports the header it stopped at.
    let hdr = eth(&[], 0x86dd, &ipv6(a, b, 50, &[0; 16]));
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 400, &hdr)]);
    let f = one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow();
    assert_eq!((f.proto, f.src_port), (Some(50), None));
    let hdr = eth(&[], 0x86dd, &ipv6(a, b, 0, &[60, 0]));
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 400, &hdr)]);
    let f = one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow();
    assert_eq!((f.proto, f.src_port), (Some(60), None));
}

#[test]
fn icmp_type_and_code() {
    let hdr = ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 0, &[3, 13, 0, 0, 0, 0, 0, 0]);
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(11, 84, &hdr)]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    assert_eq!(r.uint(32), Some(3 * 256 + 13));
    assert_eq!((r.flow().src_port, r.flow().proto), (None, Some(1)));
    assert_eq!(r.ie(56), None, "an IPv4 header has no MACs");

    let a = Ipv6Addr::LOCALHOST;
    let hdr = ipv6(a, a, 58, &[128, 0, 0, 0, 0, 1, 0, 1]);
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(12, 104, &hdr)]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    assert_eq!(r.uint(139), Some(128 * 256));
    assert_eq!(r.ie(32), None);
}

#[test]
fn mpls_and_snap_headers() {
    // Two labels, bottom of stack on the second, then IPv4/UDP.
    let mut m = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
    m.extend_from_slice(&ipv4([9, 9, 9, 9], [8, 8, 8, 8], 17, 0, &udp(5000, 6000)));
    let hdr = eth(&[], 0x8847, &m);
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 100, &hdr)]);
    let f = one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow();
    assert_eq!((f.src_ip, f.dst_port), (Some(v4([9, 9, 9, 9])), Some(6000)));

    // 802.3 length + LLC/SNAP carrying IPv4.
    let ip = ipv4([7, 7, 7, 7], [6, 6, 6, 6], 6, 0, &tcp(1, 2, 0x10));
    let mut snap = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
    snap.extend_from_slice(&ip);
    let hdr = eth(&[], snap.len() as u16, &snap);
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 100, &hdr)]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    assert_eq!(r.flow().src_ip, Some(v4([7, 7, 7, 7])));
    assert_eq!(r.uint(256), Some(0x0800));

    // A non-IP frame (ARP) still gives a record with its MACs.
    let hdr = eth(&[], 0x0806, &[0; 28]);
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 64, &hdr)]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    assert_eq!(
        (r.flow().src_ip, r.uint(256), r.flow().bytes),
        (None, Some(0x0806), Some(64))
    );
}

#[test]
fn sampled_ethernet_ipv4_ipv6_records() {
    let eth_rec = (
        2,
        B::default()
            .u32(1000)
            .bytes(&SRC_MAC)
            .bytes(&[0, 0])
            .bytes(&DST_MAC)
            .bytes(&[0, 0])
            .u32(0x0800)
            .0,
    );
    let ip4 = (
        3,
        B::default()
            .u32(982)
            .u32(6)
            .bytes(&[10, 1, 1, 1])
            .bytes(&[10, 2, 2, 2])
            .u32(1234)
            .u32(80)
            .u32(0x12)
            .u32(0x20)
            .0,
    );
    let s = flow_sample(1, 1, 1, 2, &[eth_rec.clone(), ip4.clone()]);
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    let f = r.flow();
    assert_eq!(f.bytes, Some(1000), "the Ethernet length is the frame's");
    assert_eq!(
        (f.src_ip, f.dst_ip),
        (Some(v4([10, 1, 1, 1])), Some(v4([10, 2, 2, 2])))
    );
    assert_eq!(
        (f.src_port, f.dst_port, f.tcp_flags),
        (Some(1234), Some(80), Some(0x12))
    );
    assert_eq!(
        r.ie(56),
        Some(SRC_MAC.to_vec()),
        "XDR pads each MAC to 8 bytes"
    );
    assert_eq!(r.ie(80), Some(DST_MAC.to_vec()));
    assert_eq!(r.uint(5), Some(0x20));

    let s = flow_sample(1, 1, 1, 2, &[ip4]);
    assert_eq!(
        one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow().bytes,
        Some(982)
    );

    let a = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    let ip6 = (
        4,
        B::default()
            .u32(1500)
            .u32(17)
            .bytes(&a.octets())
            .bytes(&Ipv6Addr::LOCALHOST.octets())
            .u32(4000)
            .u32(443)
            .u32(0)
            .u32(0)
            .0,
    );
    let s = flow_sample(1, 1, 1, 2, &[ip6]);
    let f = one(&datagram(AGENT, 1, 1000, &[(1, s)])).flow();
    assert_eq!(
        (f.src_ip, f.dst_port, f.proto),
        (Some(IpAddr::V6(a)), Some(443), Some(17))
    );
}

#[test]
fn expanded_flow_sample_and_interface_formats() {
    let hdr = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 0, &udp(1, 2));
    let expanded = |out_fmt: u32, out_val: u32| {
        B::default()
            .u32(9) // seq
            .u32(0) // source type
            .u32(0x0100_0000) // index beyond 24 bits
            .u32(2048)
            .u32(1)
            .u32(0)
            .u32(0)
            .u32(0x0200_0000) // input ifIndex
            .u32(out_fmt)
            .u32(out_val)
            .list(&[sampled_header(11, 60, &hdr)])
            .0
    };
    let r = one(&datagram(AGENT, 1, 1000, &[(3, expanded(0, 0x0300_0000))]));
    let f = r.flow();
    assert_eq!(
        (f.in_if, f.out_if, f.sampling_interval),
        (Some(0x0200_0000), Some(0x0300_0000), Some(2048))
    );
    assert_eq!(r.uint(138), Some(0x0100_0000));
    assert_eq!(r.ie(89), None);
    // The device itself: 0xFFFFFFFF in the expanded form.
    let r = one(&datagram(AGENT, 1, 1000, &[(3, expanded(0, u32::MAX))]));
    assert_eq!((r.flow().out_if, r.uint(89)), (Some(0), Some(0xc3)));
    // Discarded (format 1, ACL) and multiple destinations (format 2).
    let r = one(&datagram(AGENT, 1, 1000, &[(3, expanded(1, 258))]));
    assert_eq!((r.flow().out_if, r.uint(89)), (Some(0), Some(0x81)));
    let r = one(&datagram(AGENT, 1, 1000, &[(3, expanded(2, 7))]));
    assert_eq!((r.flow().out_if, r.uint(89)), (Some(0), Some(0x40)));

    // Compact: the device itself is 0x3FFFFFFF, on input as on output.
    let s = flow_sample(
        1,
        1,
        0x3fff_ffff,
        0x3fff_ffff,
        &[sampled_header(11, 60, &hdr)],
    );
    let r = one(&datagram(AGENT, 1, 1000, &[(1, s)]));
    assert_eq!(
        (r.flow().in_if, r.flow().out_if, r.uint(89)),
        (Some(0), Some(0), Some(0xc3))
    );
    // Compact discard, TTL exceeded; unknown reasons are "dropped, unknown".
    let s = flow_sample(1, 1, 5, 0x4000_0101, &[sampled_header(11, 60, &hdr)]);
    assert_eq!(
        one(&datagram(AGENT, 1, 1000, &[(1, s)])).uint(89),
        Some(0x89)
    );
    let s = flow_sample(1, 1, 5, 0x4000_0fff, &[sampled_header(11, 60, &hdr)]);
    assert_eq!(
        one(&datagram(AGENT, 1, 1000, &[(1, s)])).uint(89),
        Some(0x80)
    );
}

#[test]
fn discarded_packet_sample() {
    let hdr = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 6, 0, &tcp(1000, 25, 0x02));
    let s = B::default()
        .u32(77)
        .u32(0)
        .u32(12)
        .u32(3) // drops
        .u32(12) // input
        .u32(0) // output
        .u32(269) // blackhole route
        .list(&[sampled_header(11, 60, &hdr)])
        .0;
    let mut d = SflowDecoder::default();
    let (r, recs, _) = run(&mut d, &datagram(AGENT, 1, 1000, &[(5, s)]));
    assert_eq!(r, Ok(()));
    assert_eq!(d.stats().discard_samples, 1);
    let rec = &recs[0];
    assert_eq!(rec.uint(89), Some(0x83), "dropped, unroutable");
    assert_eq!(rec.flow().in_if, Some(12));
    assert_eq!(
        rec.flow().sampling_interval,
        Some(0),
        "0: not sampled (enrichment reads 0 as none)"
    );
    assert_eq!(rec.flow().dst_port, Some(25));
}

fn if_counters(index: u32) -> (u32, Vec<u8>) {
    let mut b = B::default()
        .u32(index)
        .u32(6)
        .u32(0)
        .u32(1_000_000_000)
        .u32(1)
        .u32(3);
    b = b
        .u32(0)
        .u32(123_456)
        .u32(10)
        .u32(2)
        .u32(1)
        .u32(0)
        .u32(0)
        .u32(0);
    b = b
        .u32(1)
        .u32(0)
        .u32(20)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(u32::MAX);
    (1, b.0)
}

fn eth_counters() -> (u32, Vec<u8>) {
    let mut b = B::default();
    for i in 0..13 {
        b = b.u32(i);
    }
    (2, b.0)
}

#[test]
fn counter_samples_compact_and_expanded() {
    let compact = B::default()
        .u32(5)
        .u32(0x0000_0004)
        .list(&[if_counters(4), eth_counters(), (1005, vec![0; 8])])
        .0;
    let expanded = B::default()
        .u32(6)
        .u32(0)
        .u32(0x0500_0000)
        .list(&[if_counters(0x0500_0000)])
        .0;
    let mut d = SflowDecoder::default();
    let (r, recs, ctrs) = run(
        &mut d,
        &datagram(AGENT, 1, 1000, &[(2, compact), (4, expanded)]),
    );
    assert_eq!(r, Ok(()));
    assert!(recs.is_empty(), "counters are not flow records");
    assert_eq!(ctrs.len(), 2);
    let c = &ctrs[0];
    assert_eq!((c.sequence, c.source_type, c.source_index), (5, 0, 4));
    let i = c.interface.expect("generic counters");
    assert_eq!((i.if_index, i.if_type, i.if_speed), (4, 6, 1_000_000_000));
    assert!(i.admin_up() && i.oper_up());
    assert_eq!(
        (i.in_octets, i.in_ucast_pkts, i.out_octets),
        (123_456, 10, 1 << 32)
    );
    assert_eq!(i.promiscuous_mode, u32::MAX);
    let e = c.ethernet.expect("ethernet counters");
    assert_eq!((e.alignment_errors, e.symbol_errors), (0, 12));
    assert_eq!(c.other_records, 1);
    assert_eq!(
        (c.agent, c.sub_agent_id, c.uptime_ms, c.tag),
        (Some(AGENT), 7, 1000, 42)
    );
    assert_eq!(ctrs[1].source_index, 0x0500_0000);
    assert_eq!(ctrs[1].interface.map(|i| i.if_index), Some(0x0500_0000));
    assert_eq!(d.stats().counter_samples, 2);
    assert_eq!(d.stats().skipped_counter_records, 1);
}

#[test]
fn counter_samples_as_records_carry_every_counter() {
    let compact = B::default()
        .u32(5)
        .u32(0x0000_0004)
        .list(&[if_counters(4), eth_counters()])
        .0;
    let only_eth = B::default()
        .u32(9)
        .u32(0x0000_0007)
        .list(&[eth_counters()])
        .0;
    let mut d = SflowDecoder::default();
    d.set_counter_records(true);
    let (r, recs, ctrs) = run(
        &mut d,
        &datagram(AGENT, 1, 1000, &[(2, compact), (2, only_eth)]),
    );
    assert_eq!(r, Ok(()));
    assert_eq!(ctrs.len(), 2, "the struct callback still gets them");
    assert_eq!(recs.len(), 2);
    assert_eq!(
        d.stats().flow_records,
        0,
        "counter records are not flow records"
    );
    let by = |rec: &Rec, id: u16| -> Option<u64> {
        let i = rec
            .template
            .fields
            .iter()
            .position(|f| f.spec.pen == counter_layout::PEN && f.spec.id == id)?;
        Some(crate::record::be_uint(rec.record().field(i)))
    };
    let (full, eth) = (&recs[0], &recs[1]);
    for rec in &recs {
        assert!(counter_layout::is_counter_template(&rec.template));
        assert_eq!(rec.uint(130), Some(0xc000_0201), "agent 192.0.2.1");
    }
    assert_eq!(full.uint(138), Some(4), "data source: ifIndex 4");
    assert_eq!(by(full, 33), Some(5), "sample sequence");
    let i = ctrs[0].interface.expect("generic");
    for (id, want) in [
        (1, u64::from(i.if_index)),
        (3, i.if_speed),
        (5, u64::from(i.if_status)),
        (6, i.in_octets),
        (7, u64::from(i.in_ucast_pkts)),
        (13, i.out_octets),
        (19, u64::from(i.promiscuous_mode)),
    ] {
        assert_eq!(by(full, id), Some(want), "element {id}");
    }
    let e = ctrs[0].ethernet.expect("ethernet");
    assert_eq!(by(full, 20), Some(u64::from(e.alignment_errors)));
    assert_eq!(by(full, 32), Some(u64::from(e.symbol_errors)));
    assert_eq!(by(eth, 1), None, "no generic counters in the second sample");
    assert_eq!(by(eth, 32), Some(12));
    assert_ne!(full.template.id, eth.template.id);
    assert!(!counter_layout::is_counter_template(
        &one(&datagram(
            AGENT,
            2,
            1000,
            &[(
                1,
                flow_sample(
                    1,
                    1,
                    1,
                    2,
                    &[sampled_header(
                        1,
                        60,
                        &ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 0, &udp(1, 2))
                    )]
                )
            )]
        ))
        .template
    ));
}

#[test]
fn unknown_formats_are_skipped_and_counted() {
    let hdr = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 0, &udp(1, 2));
    let s = flow_sample(
        1,
        1,
        1,
        2,
        &[
            (1006, vec![0; 12]),
            ((9 << 12) | 1, vec![1, 2, 3]),
            sampled_header(11, 60, &hdr),
        ],
    );
    let mut d = SflowDecoder::default();
    let p = datagram(
        AGENT,
        1,
        1000,
        &[((4413 << 12) | 1, vec![0; 20]), (1, s), (77, vec![])],
    );
    let (r, recs, _) = run(&mut d, &p);
    assert_eq!(r, Ok(()));
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].flow().dst_port,
        Some(2),
        "records after unknown ones still decode"
    );
    assert_eq!(d.stats().skipped_samples, 2);
    assert_eq!(d.stats().skipped_flow_records, 2);
    assert_eq!(d.stats().error_total(), 0);

    // A header protocol we do not decode (FDDI): the sample is kept, without packet fields.
    let s = flow_sample(1, 1, 1, 2, &[sampled_header(4, 60, &[0; 40])]);
    let (_, recs, _) = run(&mut d, &datagram(AGENT, 2, 1000, &[(1, s)]));
    assert_eq!(
        (recs[0].flow().src_ip, recs[0].flow().bytes),
        (None, Some(60))
    );
    assert_eq!(d.stats().undecoded_headers, 1);
}

#[test]
fn bad_headers_are_errors() {
    let mut d = SflowDecoder::default();
    let (r, _, _) = run(&mut d, &[0, 0, 0, 4, 0, 0, 0, 1]);
    assert_eq!(r, Err(DecodeError::UnsupportedVersion(4)));
    let (r, _, _) = run(&mut d, &B::default().u32(5).u32(3).u32(0).0);
    assert_eq!(r, Err(DecodeError::InvalidLength("sflow agent address")));
    let (r, _, _) = run(&mut d, &[0, 0, 0]);
    assert!(matches!(r, Err(DecodeError::Truncated(_))));
    assert_eq!(d.stats().error_total(), 3);
    assert_eq!(d.stats().errors.get("unsupported_version"), Some(&1));

    // An agent of unknown address type is tracked by its UDP source; no exporter element.
    let s = flow_sample(1, 1, 1, 2, &[]);
    let p = B::default()
        .u32(5)
        .u32(0)
        .u32(0)
        .u32(1)
        .u32(1)
        .list(&[(1, s)])
        .0;
    let (r, recs, _) = run(&mut d, &p);
    assert_eq!(r, Ok(()));
    assert_eq!((recs[0].ie(130), recs[0].ie(131)), (None, None));
    assert!(d.agents().any(|(k, _)| k.agent == src().ip()));

    // IPv6 agent.
    let s = flow_sample(1, 1, 1, 2, &[]);
    let a6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53));
    let (_, recs, _) = run(&mut d, &datagram(a6, 1, 1, &[(1, s)]));
    assert_eq!(
        recs[0].ie(131),
        Some(match a6 {
            IpAddr::V6(v) => v.octets().to_vec(),
            IpAddr::V4(_) => unreachable!(),
        })
    );
}

/// A datagram with every kind of sample and record.
fn rich() -> Vec<u8> {
    let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let mut chain = vec![60, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
    chain.extend_from_slice(&tcp(80, 1234, 0x11));
    let h6 = eth(&[(0x88a8, 5), (0x8100, 6)], 0x86dd, &ipv6(a, a, 0, &chain));
    let h4 = eth(
        &[(0x8100, 7)],
        0x0800,
        &ipv4([1, 2, 3, 4], [4, 3, 2, 1], 1, 0, &[8, 0, 0, 0]),
    );
    let s1 = flow_sample(
        1,
        1,
        1,
        2,
        &[
            ext_switch(1, 2),
            sampled_header(1, 1500, &h6),
            ext_router(IpAddr::V6(a), 64, 48),
            ext_gateway(IpAddr::V6(a), 1, 2, 3, &[&[4, 5]]),
        ],
    );
    let s2 = flow_sample(
        2,
        1,
        1,
        0x4000_0102,
        &[sampled_header(1, 98, &h4), (1007, vec![0; 8])],
    );
    let c = B::default()
        .u32(1)
        .u32(1)
        .list(&[if_counters(1), eth_counters()])
        .0;
    datagram(
        AGENT,
        10,
        5000,
        &[(1, s1), (2, c), (1, s2), (9, vec![0; 4])],
    )
}

#[test]
fn every_truncation_decodes_without_panic_and_is_counted() {
    let p = rich();
    let mut d = SflowDecoder::default();
    let (r, recs, ctrs) = run(&mut d, &p);
    assert_eq!(r, Ok(()));
    assert_eq!((recs.len(), ctrs.len()), (2, 1));
    assert_eq!(recs[0].uint(243), Some(5));
    assert_eq!(recs[0].flow().src_port, Some(80));
    assert_eq!(recs[0].ie(63).map(|v| v.len()), Some(16));
    assert_eq!(recs[1].uint(32), Some(8 * 256));
    assert_eq!(d.stats().error_total(), 0);
    for cut in 0..p.len() {
        let mut d = SflowDecoder::default();
        let (r, recs, ctrs) = run(&mut d, &p[..cut]);
        // A datagram cut inside its samples loses the cut sample and everything after it.
        assert!(r.is_err(), "cut at {cut} decoded as whole");
        assert_eq!(d.stats().error_total(), 1, "cut at {cut}");
        // The last sample (12 bytes: format, length, 4 bytes) is one we skip.
        assert!(
            recs.len() + ctrs.len() < 3 || cut >= p.len() - 12,
            "cut at {cut}"
        );
    }
}

#[test]
fn every_truncation_of_every_structure_inside_a_sample() {
    // The sample framing stays consistent while one record (or the sampled header inside it)
    // is cut: the sample still decodes, the broken record is counted.
    let p = rich();
    let mut d = SflowDecoder::default();
    let (_, full, _) = run(&mut d, &p);
    let hdr = eth(
        &[(0x8100, 7)],
        0x0800,
        &ipv4([1, 2, 3, 4], [4, 3, 2, 1], 6, 0, &tcp(1, 2, 3)),
    );
    for cut in 0..=hdr.len() {
        let s = flow_sample(1, 1, 1, 2, &[sampled_header(1, 100, &hdr[..cut])]);
        let r = one(&datagram(AGENT, 1, 1, &[(1, s)]));
        let f = r.flow();
        // What is known only grows with the header.
        assert_eq!(f.bytes, Some(100));
        if cut >= 18 + 20 {
            assert_eq!(f.src_ip, Some(v4([1, 2, 3, 4])), "cut {cut}");
        }
        if cut >= 18 + 20 + 4 {
            assert_eq!(f.dst_port, Some(2), "cut {cut}");
        }
    }
    let records = [
        ext_switch(1, 2),
        ext_router(v4([1, 1, 1, 1]), 8, 8),
        ext_gateway(v4([1, 1, 1, 1]), 1, 2, 3, &[&[4, 5, 6]]),
        (
            3,
            B::default()
                .u32(1)
                .u32(6)
                .bytes(&[1; 8])
                .u32(1)
                .u32(2)
                .u32(3)
                .u32(4)
                .0,
        ),
        (2, vec![0; 24]),
        (1, B::default().u32(1).u32(64).u32(4).opaque(&[0; 20]).0),
    ];
    for (fmt, data) in records {
        for cut in 0..data.len() {
            let s = flow_sample(1, 1, 1, 2, &[(fmt, data[..cut].to_vec())]);
            let mut d = SflowDecoder::default();
            let (r, recs, _) = run(&mut d, &datagram(AGENT, 1, 1, &[(1, s)]));
            assert_eq!(r, Ok(()));
            assert_eq!(recs.len(), 1, "format {fmt} cut {cut}");
            // Cutting the gateway's trailing communities/localpref is tolerated.
            if fmt != 1003 || cut < 44 {
                assert_eq!(d.stats().error_total(), 1, "format {fmt} cut {cut}");
            }
        }
    }
    assert_eq!(full.len(), 2);
}

#[test]
fn lengths_and_counts_that_lie_are_bounded() {
    // Sample count far above what the datagram holds.
    let mut p = datagram(AGENT, 1, 1, &[]);
    let n = p.len();
    p[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut d = SflowDecoder::default();
    assert!(run(&mut d, &p).0.is_err());
    // Record count and AS path length far above the sample.
    let s = B::default()
        .u32(1)
        .u32(1)
        .u32(1)
        .u32(1)
        .u32(0)
        .u32(1)
        .u32(2)
        .u32(u32::MAX)
        .0;
    assert_eq!(run(&mut d, &datagram(AGENT, 2, 1, &[(1, s)])).0, Ok(()));
    let gw = (
        1003,
        B::default()
            .addr(AGENT)
            .u32(1)
            .u32(2)
            .u32(3)
            .u32(1)
            .u32(2)
            .u32(u32::MAX)
            .0,
    );
    let s = flow_sample(1, 1, 1, 2, &[gw]);
    assert_eq!(run(&mut d, &datagram(AGENT, 3, 1, &[(1, s)])).0, Ok(()));
    // An opaque length of 2^32 - 1.
    let p = B::default()
        .u32(5)
        .addr(AGENT)
        .u32(0)
        .u32(4)
        .u32(1)
        .u32(1)
        .u32(1)
        .u32(u32::MAX)
        .0;
    assert!(run(&mut d, &p).0.is_err());
    assert_eq!(d.stats().error_total(), 4, "{:?}", d.stats().errors);
}

#[test]
fn random_bytes_never_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = rich();
    let mut d = SflowDecoder::default();
    for _ in 0..20_000 {
        let mut p = base.clone();
        // Flip a few bytes, keeping the version so the walk goes deep.
        for _ in 0..(next() % 6 + 1) {
            let i = 4 + (next() as usize) % (p.len() - 4);
            p[i] = next() as u8;
        }
        let cut = (next() as usize) % (p.len() + 1);
        let _ = run(&mut d, &p[..cut]);
    }
    assert!(d.stats().datagrams == 20_000);
}

#[test]
fn sequence_loss_per_agent_and_per_source() {
    let mut d = SflowDecoder::default();
    let s = |seq| flow_sample(seq, 1, 1, 2, &[]);
    for (dseq, sseq) in [(1, 10), (2, 11), (4, 14), (3, 12)] {
        assert_eq!(
            run(&mut d, &datagram(AGENT, dseq, 1000 * dseq, &[(1, s(sseq))])).0,
            Ok(())
        );
    }
    let (k, st) = d.agents().next().expect("one agent");
    assert_eq!(
        k,
        AgentKey {
            agent: AGENT,
            sub_agent_id: 7
        }
    );
    assert_eq!(
        (st.received_datagrams, st.missing_datagrams),
        (4, 0),
        "late datagram filled the gap"
    );
    assert_eq!(
        (st.received_samples, st.missing_samples),
        (4, 1),
        "sample 13 never came"
    );
    // The agent reboots: uptime and sequence start over.
    assert_eq!(run(&mut d, &datagram(AGENT, 1, 50, &[(1, s(1))])).0, Ok(()));
    let st = d.agents().next().expect("one agent").1;
    assert_eq!(
        (st.restarts, st.received_datagrams, st.missing_samples),
        (1, 1, 0)
    );
    assert_eq!(d.stats().agent_restarts, 1);
    // Another sub-agent is another stream.
    let mut p = datagram(AGENT, 100, 1, &[]);
    p[12..16].copy_from_slice(&8u32.to_be_bytes());
    assert_eq!(run(&mut d, &p).0, Ok(()));
    assert_eq!(d.agents().count(), 2);
    assert_eq!(d.expire(i64::MAX, 0), 2);
}

#[test]
fn agent_limit_is_respected() {
    let mut d = SflowDecoder::new(SflowLimits {
        max_agents: 2,
        max_sources_per_agent: 1,
    });
    for i in 0..5u8 {
        let s1 = flow_sample(1, 1, 1, 2, &[]);
        let s2 = flow_sample(1, 2, 1, 2, &[]);
        let (r, recs, _) = run(
            &mut d,
            &datagram(v4([10, 0, 0, i]), 1, 1, &[(1, s1), (1, s2)]),
        );
        assert_eq!(
            (r, recs.len()),
            (Ok(()), 2),
            "untracked agents still decode"
        );
    }
    assert_eq!(d.agents().count(), 2);
    assert!(d.agents().all(|(_, s)| s.sources == 2));
    // 3 untracked agents x (datagram + 2 samples).
    assert_eq!(d.stats().untracked, 9);
}

fn all_keys() -> Vec<Key> {
    let fams = [Fam::None, Fam::V4, Fam::V6];
    let l4s = [L4Kind::None, L4Kind::Ports, L4Kind::Tcp, L4Kind::Icmp];
    let bools = [false, true];
    let mut v = Vec::new();
    for agent in fams {
        for family in fams {
            for l4 in l4s {
                for l2 in bools {
                    for vlan_in in bools {
                        for vlan_out in bools {
                            for qinq in bools {
                                for router in fams {
                                    for gateway in fams {
                                        for fwd in bools {
                                            v.push(Key {
                                                agent,
                                                family,
                                                l4,
                                                l2,
                                                vlan_in,
                                                vlan_out,
                                                qinq,
                                                router,
                                                gateway,
                                                fwd,
                                            });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

#[test]
fn every_layout_compiles_fixed_and_known() {
    let keys = all_keys();
    assert_eq!(keys.len(), KEYS);
    let mut seen = vec![false; KEYS];
    for k in keys {
        let i = k.index();
        assert!(!seen[i], "index collision");
        seen[i] = true;
        let t = layout::template(k);
        assert_eq!(usize::from(t.id), usize::from(layout::BASE_ID) + i);
        let len = t.fixed_len.expect("fixed length");
        let mut n = 0;
        layout::walk(k, &layout::Facts::default(), &mut |_, v| n += v.len());
        assert_eq!(n, len);
        assert!(len <= layout::MAX_RECORD, "{len}");
        assert!(t.fields.iter().all(|f| f.known), "every element is named");
        assert!(t.repeat.iter().all(|r| !r), "no element twice");
        // Persistence (store, template registry) rebuilds the same template.
        let mut b = Vec::new();
        t.write_definition(&mut b);
        assert_eq!(&Template::read_definition(&b).expect("reads").0, t);
    }
}
