//! The sFlow decoder on every sFlow capture: expected sample counts (the captures README
//! table), values read off tshark's decoding of the same datagrams, sequence accounting, and
//! every truncation of every datagram decoded without a panic and counted.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use sluice_decode::pcap::PcapReader;
use sluice_decode::record::be_uint;
use sluice_decode::sflow::{is_sflow_v5, CounterSample, SflowDecoder};
use sluice_decode::{Datagram, Flow, Record, Template};

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

/// Every sFlow capture with its flow and counter sample counts (captures/README.md).
const EXPECTED: &[(&str, usize, usize)] = &[
    ("sflow/pmacct_sfprobe_encap-vxlan.pcap", 1, 0),
    ("sflow/pmacct_sfprobe_icmpv4.pcap", 1, 0),
    ("sflow/pmacct_sfprobe_icmpv6.pcap", 1, 0),
    ("sflow/switch_172.16.0.3_1140.pcap", 5, 0),
    ("sflow/switch_172.16.0.3_discard-interface.pcap", 1, 0),
    ("sflow/switch_172.16.0.3_local-interface.pcap", 1, 0),
    ("sflow/switch_172.16.0.3_multiple-interfaces.pcap", 1, 0),
    ("generated/pmacctd_sfprobe_sflow5.pcap", 615, 1),
];

/// A decoded flow record, owned.
struct Rec {
    flow: Flow,
    template: Template,
    data: Vec<u8>,
    frame: u64,
}

impl Rec {
    fn ie(&self, id: u16) -> Option<&[u8]> {
        let i = self.template.fields.iter().position(|f| f.spec.id == id)?;
        let (o, l) = self.template.fixed_spans[i];
        self.data.get(o as usize..(o + l) as usize)
    }
    fn uint(&self, id: u16) -> Option<u64> {
        self.ie(id).map(be_uint)
    }
}

type Dgram = (u64, SocketAddr, i64, Vec<u8>);

fn datagrams(rel: &str) -> Vec<Dgram> {
    let path = captures_dir().join(rel);
    let mut r = PcapReader::open(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut v = Vec::new();
    r.for_each_udp(|u| v.push((u.frame, u.src, u.ts_nanos, u.payload.to_vec())))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(!v.is_empty(), "{rel}: no datagrams");
    v
}

fn decode(d: &mut SflowDecoder, dgs: &[Dgram]) -> (Vec<Rec>, Vec<CounterSample>) {
    let mut recs = Vec::new();
    let mut ctrs = Vec::new();
    for (frame, src, ts, p) in dgs {
        assert!(is_sflow_v5(p), "frame {frame} is not sFlow v5");
        let dg = Datagram {
            src: *src,
            receive_time_ns: *ts,
            payload: p,
            tag: *frame,
        };
        let r = d.decode(
            &dg,
            |r: &Record<'_>| {
                assert_eq!(r.spans, &r.template.fixed_spans[..]);
                recs.push(Rec {
                    flow: r.flow(),
                    template: r.template.clone(),
                    data: r.data.to_vec(),
                    frame: r.header.tag,
                })
            },
            |c| ctrs.push(*c),
        );
        assert_eq!(r, Ok(()), "frame {frame}");
    }
    (recs, ctrs)
}

fn decode_file(rel: &str) -> (SflowDecoder, Vec<Rec>, Vec<CounterSample>) {
    let mut d = SflowDecoder::default();
    let (recs, ctrs) = decode(&mut d, &datagrams(rel));
    (d, recs, ctrs)
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("address literal"))
}

#[test]
fn every_capture_has_its_sample_counts_and_no_errors() {
    // The table must cover every sFlow capture there is.
    let mut found: Vec<String> = std::fs::read_dir(captures_dir().join("sflow"))
        .expect("captures/sflow")
        .flatten()
        .map(|e| format!("sflow/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".pcap"))
        .collect();
    found.push("generated/pmacctd_sfprobe_sflow5.pcap".into());
    found.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|e| e.0.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "every sFlow capture has an expected count");

    for &(rel, flows, counters) in EXPECTED {
        let (d, recs, ctrs) = decode_file(rel);
        let st = d.stats();
        assert_eq!((recs.len(), ctrs.len()), (flows, counters), "{rel}");
        assert_eq!(st.error_total(), 0, "{rel}: {:?}", st.errors);
        assert_eq!(st.flow_samples as usize, flows, "{rel}");
        assert_eq!(st.counter_samples as usize, counters, "{rel}");
        assert_eq!(st.skipped_samples + st.skipped_flow_records, 0, "{rel}");
        for r in &recs {
            assert_eq!(r.flow.packets, Some(1), "{rel}");
            assert!(r.flow.bytes.is_some_and(|b| b > 0), "{rel}");
            assert!(r.flow.src_ip.is_some() && r.flow.proto.is_some(), "{rel}");
        }
    }
}

#[test]
fn switch_1140_values_match_tshark() {
    let (_, recs, _) = decode_file("sflow/switch_172.16.0.3_1140.pcap");
    // tshark: input 27,49001,27,28,27; output 28,25,28,49001,28; frame length
    // 1518,439,1518,64,1518.
    let got: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r.flow.in_if,
                r.flow.out_if,
                r.flow.bytes,
                r.flow.sampling_interval,
            )
        })
        .collect();
    let want: Vec<_> = [
        (27, 28, 1518),
        (49001, 25, 439),
        (27, 28, 1518),
        (28, 49001, 64),
        (27, 28, 1518),
    ]
    .iter()
    .map(|&(i, o, b)| (Some(i), Some(o), Some(b), Some(1024)))
    .collect();
    assert_eq!(got, want);
    let r = &recs[0];
    assert_eq!(r.flow.src_ip, ip("2a0c:8880:2:0:185:21:130:38"));
    assert_eq!(r.flow.dst_ip, ip("2a0c:8880:2:0:185:21:130:39"));
    assert_eq!(
        (r.flow.src_port, r.flow.dst_port, r.flow.proto),
        (Some(46026), Some(22), Some(6))
    );
    assert_eq!(r.flow.tcp_flags, Some(0x010));
    assert_eq!((r.uint(58), r.uint(59)), (Some(100), Some(100)));
    assert_eq!(r.ie(130), Some(&[172, 16, 0, 3][..]), "agent address");
    assert_eq!(r.uint(138), Some(28), "data source index");
    assert_eq!(r.uint(5), Some(0x08), "traffic class");
    assert_eq!(r.ie(56), Some(&[0x24, 0x6e, 0x96, 0x90, 0x7a, 0x50][..]));

    // The routed sample: extended router and gateway.
    let r = &recs[1];
    assert_eq!(
        (r.flow.src_ip, r.flow.dst_ip),
        (ip("104.26.8.24"), ip("45.90.161.46"))
    );
    assert_eq!((r.flow.src_port, r.flow.dst_port), (Some(443), Some(56876)));
    assert_eq!(r.flow.tcp_flags, Some(0x018));
    assert_eq!(r.flow.next_hop, ip("45.90.161.46"));
    assert_eq!((r.flow.src_mask, r.flow.dst_mask), (Some(20), Some(27)));
    // AS Router 39421, AS Source 13335, AS Peer 203698, empty destination path: the
    // destination is in the router's AS.
    assert_eq!((r.flow.src_as, r.flow.dst_as), (Some(13335), Some(39421)));
    assert_eq!(r.uint(129), Some(203698));
    assert_eq!(
        r.ie(18),
        Some(&[0, 0, 0, 0][..]),
        "gateway next hop as sent"
    );
    // Incoming VLAN 4294967295 is no VLAN; outgoing 100.
    assert_eq!((r.uint(58), r.uint(59)), (None, Some(100)));
    assert!(recs.iter().all(|r| r.frame == 1));
}

#[test]
fn interface_formats_become_forwarding_status() {
    // Same sample as the first of 1140 with the output interface rewritten.
    let (_, recs, _) = decode_file("sflow/switch_172.16.0.3_discard-interface.pcap");
    // 0x40000001: discarded, host unreachable -> dropped, adjacency (RFC 7270 132).
    assert_eq!(
        (recs[0].flow.out_if, recs[0].uint(89)),
        (Some(0), Some(132))
    );
    let (_, recs, _) = decode_file("sflow/switch_172.16.0.3_local-interface.pcap");
    // 0x3fffffff: for the device itself -> consumed, for us (195).
    assert_eq!(
        (recs[0].flow.out_if, recs[0].uint(89)),
        (Some(0), Some(195))
    );
    let (_, recs, _) = decode_file("sflow/switch_172.16.0.3_multiple-interfaces.pcap");
    // 0x80000007: sent to 7 interfaces -> forwarded (64).
    assert_eq!((recs[0].flow.out_if, recs[0].uint(89)), (Some(0), Some(64)));
    assert_eq!(recs[0].flow.in_if, Some(27));
}

#[test]
fn pmacct_sfprobe_captures() {
    let (_, recs, _) = decode_file("sflow/pmacct_sfprobe_icmpv4.pcap");
    let r = &recs[0];
    assert_eq!(
        (r.flow.src_ip, r.flow.dst_ip),
        (ip("203.0.113.4"), ip("203.0.113.5"))
    );
    assert_eq!(
        (r.flow.proto, r.uint(32), r.flow.bytes),
        (Some(1), Some(8 << 8), Some(102))
    );
    // Input and output 0x3fffffff: pmacct's probe is not in the forwarding path.
    assert_eq!(
        (r.flow.in_if, r.flow.out_if, r.uint(89)),
        (Some(0), Some(0), Some(195))
    );
    assert_eq!(r.flow.sampling_interval, Some(1));
    assert_eq!(r.ie(130), Some(&[127, 0, 0, 1][..]));

    let (_, recs, _) = decode_file("sflow/pmacct_sfprobe_icmpv6.pcap");
    let r = &recs[0];
    assert_eq!(
        (r.flow.src_ip, r.flow.dst_ip),
        (ip("fe80::d05b:45ff:feee:5ecf"), ip("2001:db8::"))
    );
    assert_eq!(
        (r.flow.proto, r.uint(139), r.flow.bytes),
        (Some(58), Some(135 << 8), Some(90))
    );

    // VXLAN: the sampled packet is the outer one, as the agent forwarded it.
    let (_, recs, _) = decode_file("sflow/pmacct_sfprobe_encap-vxlan.pcap");
    let r = &recs[0];
    assert_eq!(
        (r.flow.src_ip, r.flow.dst_ip),
        (ip("192.168.108.40"), ip("192.168.15.14"))
    );
    assert_eq!(
        (r.flow.src_port, r.flow.dst_port, r.flow.proto),
        (Some(45833), Some(4789), Some(17))
    );
    assert_eq!(r.flow.bytes, Some(172));
    // extended_switch with VLANs 0: unknown, so no VLAN elements.
    assert_eq!((r.ie(58), r.ie(59)), (None, None));
}

#[test]
fn pmacctd_sfprobe_generated_capture() {
    let (d, recs, ctrs) = decode_file("generated/pmacctd_sfprobe_sflow5.pcap");
    // One agent, nothing lost: datagram sequence 1..=90 and the per-source sample sequence.
    let agents: Vec<_> = d.agents().collect();
    assert_eq!(agents.len(), 1);
    let (k, st) = agents[0];
    assert_eq!(k.agent, "192.0.2.1".parse::<IpAddr>().expect("addr"));
    assert_eq!(
        (st.received_datagrams, st.missing_datagrams, st.restarts),
        (90, 0, 0)
    );
    assert_eq!((st.received_samples, st.missing_samples), (616, 0));
    let c = &ctrs[0];
    let i = c.interface.expect("generic interface counters");
    assert_eq!((c.sequence, c.source_index), (1, 1));
    assert_eq!(
        (i.if_index, i.if_type, i.if_speed, i.if_direction),
        (2, 6, 100_000_000, 1)
    );
    assert!(i.admin_up() && i.oper_up());
    assert_eq!((i.in_octets, i.in_ucast_pkts), (64679, 106));
    assert_eq!(c.ethernet, None);
    // sampling_rate 1: bytes are the frames' lengths.
    assert!(recs.iter().all(|r| r.flow.sampling_interval == Some(1)));
    let total: u64 = recs.iter().filter_map(|r| r.flow.bytes).sum();
    assert!(total > 0);
}

/// Where the samples the header counts end (bytes after them are not read): the test's own
/// walk of the top-level framing.
fn samples_end(p: &[u8]) -> usize {
    let u = |at: usize| u32::from_be_bytes(p[at..at + 4].try_into().expect("4 bytes")) as usize;
    let mut at = if u(4) == 2 { 8 + 16 } else { 8 + 4 };
    let n = u(at + 12);
    at += 16;
    for _ in 0..n {
        at += 8 + u(at + 4).div_ceil(4) * 4;
    }
    at
}

#[test]
fn every_truncation_of_every_datagram_is_counted_never_a_panic() {
    for &(rel, _, _) in EXPECTED {
        let dgs = datagrams(rel);
        let mut d = SflowDecoder::default();
        for (frame, src, ts, p) in &dgs {
            let end = samples_end(p);
            assert!(end <= p.len(), "{rel} frame {frame}");
            // Every cut of short datagrams; every cut in the first 128 bytes and every 5th
            // after that of long ones (the generated capture has 90 datagrams of ~1.3 KB).
            let cuts = (0..p.len()).filter(|&c| p.len() < 400 || c < 128 || c % 5 == 0);
            for cut in cuts {
                let before = d.stats().error_total();
                let dg = Datagram {
                    src: *src,
                    receive_time_ns: *ts,
                    payload: &p[..cut],
                    tag: *frame,
                };
                let (mut flows, mut counters) = (0, 0);
                let r = d.decode(&dg, |_| flows += 1, |_| counters += 1);
                let after = d.stats().error_total();
                if cut < end {
                    // Cut inside a sample: an error, counted.
                    assert!(r.is_err(), "{rel} frame {frame} cut {cut}");
                    assert!(after > before, "{rel} frame {frame} cut {cut}: not counted");
                } else {
                    // Cut in the bytes after the counted samples (the switch_* captures carry
                    // some): nothing lost.
                    assert_eq!(
                        (r, after),
                        (Ok(()), before),
                        "{rel} frame {frame} cut {cut}"
                    );
                    assert!(flows + counters > 0);
                }
            }
        }
    }
}
