//! Wire formats of the synthetic exporters: NetFlow v5, NetFlow v9 (RFC 3954), IPFIX
//! (RFC 7011) and sFlow v5, written into a caller's buffer.
//!
//! Templates (v9 and IPFIX), one per address family:
//!
//! | | v9 (ids 256 IPv4, 257 IPv6) | IPFIX (ids 256, 257) |
//! |---|---|---|
//! | addresses | 8/12/15 or 27/28/62 | same |
//! | ports, protocol, flags, TOS, masks | 7, 11, 4, 6, 5, 9/13 or 29/30 | same |
//! | interfaces, AS | 10, 14 (4 bytes), 16, 17 (4 bytes) | same |
//! | counters | 2, 1 (8 bytes) | same |
//! | times | 152/153 flowStart/EndMilliseconds | 156/157 flowStart/EndNanoseconds |
//! | sampler | 48 FLOW_SAMPLER_ID (1 byte) | 302 selectorId (2 bytes), 136 flowEndReason |
//!
//! The flow end is the send time: that is what the collector's record-age histogram measures
//! against. v9 carries absolute milliseconds (IE 152/153, as nProbe and Cisco NX-OS send
//! them) because a v9 header states its export time in whole seconds only; v5 has only
//! sysUptime-relative First/Last, which the header's nanoseconds make exact.
//!
//! Options, as routers send them (Cisco IOS's flow exporter option tables):
//! - v9 sampler table: options template 258, scope System (4 bytes), fields 48 samplerId,
//!   49 samplerMode (2 = random), 50 samplerRandomInterval; one record.
//! - v9 interface table: options template 259, scope System, fields 10 ingressInterface,
//!   82 interfaceName (32 bytes), 83 interfaceDescription (64 bytes), NUL-padded.
//! - IPFIX selector table: options template 258, scope 302 selectorId, fields 304
//!   selectorAlgorithm (1 = systematic count-based), 305 samplingPacketInterval (1), 306
//!   samplingPacketSpace (N - 1): one packet in N.
//! - IPFIX interface table: options template 259, scope 10 ingressInterface, fields 82 and 83
//!   as variable-length strings.
//!
//! sFlow v5: flow samples (format 1) with one raw packet header record (Ethernet, IPv4 or
//! IPv6, TCP/UDP/ICMP headers; frame length = the flow's mean packet size) and counter
//! samples (format 2) with generic interface counters (record 1), one per interface.

use std::net::IpAddr;

use super::model::{Flow, ICMP, ICMPV6, TCP, UDP};

/// Payload budget of a datagram: below a 1500-byte MTU with IPv6 and UDP headers.
pub const DATAGRAM_BUDGET: usize = 1400;

pub const V5_HEADER: usize = 24;
pub const V5_RECORD: usize = 48;
/// NetFlow v5's maximum records per datagram.
pub const V5_MAX_RECORDS: usize = 30;
pub const V9_HEADER: usize = 20;
pub const IPFIX_HEADER: usize = 16;
pub const SFLOW_HEADER: usize = 28;

/// Template and options template ids.
pub const TPL_V4: u16 = 256;
pub const TPL_V6: u16 = 257;
pub const TPL_SAMPLER: u16 = 258;
pub const TPL_IFACE: u16 = 259;

/// Sampler / selector id the flows reference.
pub const SAMPLER_ID: u8 = 1;

/// v9 interface name and description lengths (fixed, NUL-padded).
pub const V9_IFNAME_LEN: usize = 32;
pub const V9_IFDESC_LEN: usize = 64;
/// Longest IPFIX interface record: ifindex, two length-prefixed strings of at most 15 and 40.
pub const IPFIX_IFACE_MAX: usize = 4 + 1 + 15 + 1 + 40;
pub const V9_IFACE_RECORD: usize = 4 + 4 + V9_IFNAME_LEN + V9_IFDESC_LEN;

/// A template field: (IE, length).
type Field = (u16, u16);

/// Which encoding of the flow times a template uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Times {
    Millis,
    Nanos,
}

/// One template field: (IE, length).
const fn fields(v6: bool, times: Times) -> [(u16, u16); 20] {
    let (src, dst, nh, sm, dm, al) = if v6 {
        (27, 28, 62, 29, 30, 16)
    } else {
        (8, 12, 15, 9, 13, 4)
    };
    let (start, end) = match times {
        Times::Millis => (152, 153),
        Times::Nanos => (156, 157),
    };
    let (sampler, reason) = match times {
        Times::Millis => ((48, 1), (0, 0)),
        Times::Nanos => ((302, 2), (136, 1)),
    };
    [
        (src, al),
        (dst, al),
        (nh, al),
        (7, 2),
        (11, 2),
        (4, 1),
        (6, 1),
        (5, 1),
        (sm, 1),
        (dm, 1),
        (10, 4),
        (14, 4),
        (16, 4),
        (17, 4),
        (2, 8),
        (1, 8),
        (start, 8),
        (end, 8),
        sampler,
        reason,
    ]
}

fn template(v6: bool, ipfix: bool) -> Vec<(u16, u16)> {
    let t = if ipfix { Times::Nanos } else { Times::Millis };
    fields(v6, t)
        .into_iter()
        .filter(|&(ie, _)| ie != 0)
        .collect()
}

/// Bytes of one flow record of the template for (`v6`, `ipfix`).
pub fn record_len(v6: bool, ipfix: bool) -> usize {
    template(v6, ipfix)
        .iter()
        .map(|&(_, l)| usize::from(l))
        .sum()
}

fn ip_bytes(a: IpAddr, out: &mut Vec<u8>) {
    match a {
        IpAddr::V4(v) => out.extend_from_slice(&v.octets()),
        IpAddr::V6(v) => out.extend_from_slice(&v.octets()),
    }
}

fn put16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_OFFSET: u64 = 2_208_988_800;

/// ns since the Unix epoch as an NTP timestamp (RFC 7011 §6.1.10).
pub fn ntp(ns: i64) -> u64 {
    let ns = ns.max(0) as u64;
    let secs = ns / 1_000_000_000 + NTP_OFFSET;
    let frac = ((ns % 1_000_000_000) << 32) / 1_000_000_000;
    secs << 32 | frac
}

/// The send time: ms since the Unix epoch and its sub-second ns.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub ms: i64,
    pub subsec_ns: u32,
}

impl Clock {
    pub fn ns(&self) -> i64 {
        self.ms.div_euclid(1000) * 1_000_000_000 + i64::from(self.subsec_ns)
    }

    pub fn secs(&self) -> u32 {
        self.ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// Appends one v9 (`ipfix` false) or IPFIX flow record for `f`, ending at `now`.
pub fn flow_record(f: &Flow, ipfix: bool, now: Clock, out: &mut Vec<u8>) {
    ip_bytes(f.src, out);
    ip_bytes(f.dst, out);
    ip_bytes(f.next_hop, out);
    out.extend_from_slice(&f.src_port.to_be_bytes());
    out.extend_from_slice(&f.dst_port.to_be_bytes());
    out.extend_from_slice(&[f.proto, f.tcp_flags, f.tos, f.src_mask, f.dst_mask]);
    out.extend_from_slice(&f.in_if.to_be_bytes());
    out.extend_from_slice(&f.out_if.to_be_bytes());
    out.extend_from_slice(&f.src_as.to_be_bytes());
    out.extend_from_slice(&f.dst_as.to_be_bytes());
    out.extend_from_slice(&f.packets.to_be_bytes());
    out.extend_from_slice(&f.bytes.to_be_bytes());
    if ipfix {
        let end = now.ns();
        let start = end - i64::from(f.duration_ms) * 1_000_000;
        out.extend_from_slice(&ntp(start).to_be_bytes());
        out.extend_from_slice(&ntp(end).to_be_bytes());
        out.extend_from_slice(&u16::from(SAMPLER_ID).to_be_bytes());
        out.push(f.end_reason);
    } else {
        let end = now.ms.max(0) as u64;
        let start = end.saturating_sub(u64::from(f.duration_ms));
        out.extend_from_slice(&start.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
        out.push(SAMPLER_ID);
    }
}

/// NetFlow v5 header values.
#[derive(Clone, Copy, Debug)]
pub struct V5Header {
    pub uptime_ms: u32,
    pub now: Clock,
    pub sequence: u32,
    /// Engine type << 8 | engine id.
    pub engine: u16,
    pub sampling: u32,
}

/// A NetFlow v5 datagram of `flows` (at most 30, IPv4 only).
pub fn v5_datagram(h: &V5Header, flows: &[Flow], out: &mut Vec<u8>) {
    out.extend_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&(flows.len() as u16).to_be_bytes());
    out.extend_from_slice(&h.uptime_ms.to_be_bytes());
    out.extend_from_slice(&h.now.secs().to_be_bytes());
    out.extend_from_slice(&h.now.subsec_ns.to_be_bytes());
    out.extend_from_slice(&h.sequence.to_be_bytes());
    out.extend_from_slice(&h.engine.to_be_bytes());
    // Mode 01 (packet interval) in the top two bits, the interval in the other 14.
    let sampling = if h.sampling > 1 {
        0x4000 | (h.sampling.min(0x3fff) as u16)
    } else {
        0
    };
    out.extend_from_slice(&sampling.to_be_bytes());
    for f in flows {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(v) => v.octets(),
            IpAddr::V6(_) => [0; 4],
        };
        out.extend_from_slice(&v4(f.src));
        out.extend_from_slice(&v4(f.dst));
        out.extend_from_slice(&v4(f.next_hop));
        out.extend_from_slice(&(f.in_if.min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&(f.out_if.min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&(f.packets.min(u64::from(u32::MAX)) as u32).to_be_bytes());
        out.extend_from_slice(&(f.bytes.min(u64::from(u32::MAX)) as u32).to_be_bytes());
        // The flow ends now: Last = sysUptime at export.
        let last = h.uptime_ms;
        out.extend_from_slice(&last.wrapping_sub(f.duration_ms).to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&f.src_port.to_be_bytes());
        out.extend_from_slice(&f.dst_port.to_be_bytes());
        out.extend_from_slice(&[0, f.tcp_flags, f.proto, f.tos]);
        out.extend_from_slice(&(f.src_as.min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&(f.dst_as.min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&[f.src_mask, f.dst_mask, 0, 0]);
    }
}

/// Header of a v9 (`ipfix` false) or IPFIX message; the length (IPFIX) and count (v9) are
/// filled by [`finish_message`].
pub fn message_header(
    ipfix: bool,
    uptime_ms: u32,
    now: Clock,
    sequence: u32,
    source: u32,
    out: &mut Vec<u8>,
) {
    if ipfix {
        out.extend_from_slice(&10u16.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&now.secs().to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&source.to_be_bytes());
    } else {
        out.extend_from_slice(&9u16.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&uptime_ms.to_be_bytes());
        out.extend_from_slice(&now.secs().to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&source.to_be_bytes());
    }
}

/// Fills the v9 count (records of every kind) or the IPFIX message length of the message
/// that starts at `start`.
pub fn finish_message(ipfix: bool, start: usize, records: u16, out: &mut [u8]) {
    if ipfix {
        let len = (out.len() - start).min(0xffff) as u16;
        put16(out, start + 2, len);
    } else {
        put16(out, start + 2, records);
    }
}

/// Opens a set (flowset) with id `id`; returns where it starts.
pub fn open_set(id: u16, out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    at
}

/// Closes the set opened at `at`: v9 pads it to 32 bits (RFC 3954 §5.3), IPFIX does not.
pub fn close_set(ipfix: bool, at: usize, out: &mut Vec<u8>) {
    if !ipfix {
        while !(out.len() - at).is_multiple_of(4) {
            out.push(0);
        }
    }
    let len = (out.len() - at).min(0xffff) as u16;
    put16(out, at + 2, len);
}

/// The template set(s) of a refresh: both flow templates, then the two options templates.
/// Returns the records written (for the v9 count).
pub fn templates(ipfix: bool, out: &mut Vec<u8>) -> u16 {
    let set = open_set(if ipfix { 2 } else { 0 }, out);
    for (id, v6) in [(TPL_V4, false), (TPL_V6, true)] {
        let t = template(v6, ipfix);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(t.len() as u16).to_be_bytes());
        for (ie, len) in t {
            out.extend_from_slice(&ie.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    close_set(ipfix, set, out);
    // Options templates: (id, scope fields, other fields).
    let (sampler, iface): (Vec<Field>, Vec<Field>) = if ipfix {
        (
            vec![(302, 2), (304, 1), (305, 4), (306, 4)],
            vec![(10, 4), (82, 0xffff), (83, 0xffff)],
        )
    } else {
        (
            vec![(1, 4), (48, 1), (49, 1), (50, 4)],
            vec![
                (1, 4),
                (10, 4),
                (82, V9_IFNAME_LEN as u16),
                (83, V9_IFDESC_LEN as u16),
            ],
        )
    };
    for (id, fields) in [(TPL_SAMPLER, sampler), (TPL_IFACE, iface)] {
        let set = open_set(if ipfix { 3 } else { 1 }, out);
        out.extend_from_slice(&id.to_be_bytes());
        if ipfix {
            out.extend_from_slice(&(fields.len() as u16).to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
        } else {
            // Scope length and options length, in bytes of field definitions.
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&(((fields.len() - 1) * 4) as u16).to_be_bytes());
        }
        for (ie, len) in fields {
            out.extend_from_slice(&ie.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        close_set(ipfix, set, out);
    }
    4
}

/// The sampler (v9) or selector (IPFIX) options data record: one packet in `sampling`.
pub fn sampler_record(ipfix: bool, source: u32, sampling: u32, out: &mut Vec<u8>) {
    let set = open_set(TPL_SAMPLER, out);
    let n = sampling.max(1);
    if ipfix {
        out.extend_from_slice(&u16::from(SAMPLER_ID).to_be_bytes());
        out.push(1);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&(n - 1).to_be_bytes());
    } else {
        out.extend_from_slice(&source.to_be_bytes());
        out.push(SAMPLER_ID);
        out.push(2);
        out.extend_from_slice(&n.to_be_bytes());
    }
    close_set(ipfix, set, out);
}

/// Name and description of interface `ifindex` of exporter `e`.
pub fn interface_names(e: usize, ifindex: u32) -> (String, String) {
    (
        format!("xe-0/0/{}", ifindex - 1),
        format!("synth exporter {e} port {ifindex}"),
    )
}

/// Interface options data records for `ifindexes` of exporter `e`, in one set.
pub fn interface_records(
    ipfix: bool,
    e: usize,
    source: u32,
    ifindexes: std::ops::Range<u32>,
    out: &mut Vec<u8>,
) {
    let set = open_set(TPL_IFACE, out);
    for i in ifindexes {
        let (name, desc) = interface_names(e, i);
        if ipfix {
            out.extend_from_slice(&i.to_be_bytes());
            for s in [&name, &desc] {
                let b = &s.as_bytes()[..s.len().min(40)];
                out.push(b.len() as u8);
                out.extend_from_slice(b);
            }
        } else {
            out.extend_from_slice(&source.to_be_bytes());
            out.extend_from_slice(&i.to_be_bytes());
            for (s, len) in [(&name, V9_IFNAME_LEN), (&desc, V9_IFDESC_LEN)] {
                let b = &s.as_bytes()[..s.len().min(len - 1)];
                out.extend_from_slice(b);
                out.resize(out.len() + len - b.len(), 0);
            }
        }
    }
    close_set(ipfix, set, out);
}

/// sFlow datagram header values.
#[derive(Clone, Copy, Debug)]
pub struct SflowHeader {
    pub agent: std::net::Ipv4Addr,
    pub sub_agent: u32,
    pub sequence: u32,
    pub uptime_ms: u32,
}

/// Opens an sFlow datagram; [`sflow_finish`] writes the sample count.
pub fn sflow_header(h: &SflowHeader, out: &mut Vec<u8>) {
    out.extend_from_slice(&5u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&h.agent.octets());
    out.extend_from_slice(&h.sub_agent.to_be_bytes());
    out.extend_from_slice(&h.sequence.to_be_bytes());
    out.extend_from_slice(&h.uptime_ms.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

pub fn sflow_finish(start: usize, samples: u32, out: &mut [u8]) {
    out[start + 24..start + 28].copy_from_slice(&samples.to_be_bytes());
}

/// Bytes of the sampled header of `f` (Ethernet + IP + transport).
fn sampled_header_len(f: &Flow) -> usize {
    let l4 = match f.proto {
        TCP => 20,
        UDP | ICMP | ICMPV6 => 8,
        _ => 0,
    };
    14 + if f.v6 { 40 } else { 20 } + l4
}

/// Bytes of a flow sample of `f`.
pub fn flow_sample_len(f: &Flow) -> usize {
    8 + 32 + 8 + 16 + sampled_header_len(f).next_multiple_of(4)
}

/// The frame length of the sampled packet: the flow's mean packet size plus the FCS.
pub fn frame_len(f: &Flow) -> u32 {
    let mean = f.bytes / f.packets.max(1);
    (mean as u32).max(sampled_header_len(f) as u32 - 14) + 14 + 4
}

/// Per-source sample state of an sFlow flow sample.
#[derive(Clone, Copy, Debug)]
pub struct SampleState {
    pub sequence: u32,
    pub pool: u32,
    pub sampling: u32,
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Appends a flow sample (format 1) of `f` with one raw packet header record.
pub fn flow_sample(f: &Flow, s: &SampleState, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&s.sequence.to_be_bytes());
    out.extend_from_slice(&f.in_if.to_be_bytes()); // source id: type 0 (ifIndex) | index
    out.extend_from_slice(&s.sampling.to_be_bytes());
    out.extend_from_slice(&s.pool.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // drops
    out.extend_from_slice(&f.in_if.to_be_bytes());
    out.extend_from_slice(&f.out_if.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // one record
    let frame = frame_len(f);
    let hlen = sampled_header_len(f);
    out.extend_from_slice(&1u32.to_be_bytes()); // raw packet header
    out.extend_from_slice(&((16 + hlen.next_multiple_of(4)) as u32).to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // Ethernet
    out.extend_from_slice(&frame.to_be_bytes());
    out.extend_from_slice(&4u32.to_be_bytes()); // FCS stripped
    out.extend_from_slice(&(hlen as u32).to_be_bytes());
    let h = out.len();
    // Ethernet: locally administered MACs from the interfaces.
    out.extend_from_slice(&[0x02, 0, 0, 0, 0xee, f.out_if as u8]);
    out.extend_from_slice(&[0x02, 0, 0, 0, 0xaa, f.in_if as u8]);
    out.extend_from_slice(&(if f.v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
    let ip_len = frame - 14 - 4;
    let l4_proto = f.proto;
    if f.v6 {
        let tc = u32::from(f.tos);
        out.extend_from_slice(&(6 << 28 | tc << 20).to_be_bytes());
        out.extend_from_slice(&((ip_len - 40) as u16).to_be_bytes());
        out.push(l4_proto);
        out.push(64);
        ip_bytes(f.src, out);
        ip_bytes(f.dst, out);
    } else {
        let ip = out.len();
        out.extend_from_slice(&[0x45, f.tos]);
        out.extend_from_slice(&(ip_len as u16).to_be_bytes());
        out.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, l4_proto, 0, 0]);
        ip_bytes(f.src, out);
        ip_bytes(f.dst, out);
        let c = ip_checksum(&out[ip..ip + 20]);
        put16(out, ip + 10, c);
    }
    match f.proto {
        TCP => {
            out.extend_from_slice(&f.src_port.to_be_bytes());
            out.extend_from_slice(&f.dst_port.to_be_bytes());
            out.extend_from_slice(&s.sequence.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&[0x50, f.tcp_flags]);
            out.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        }
        UDP => {
            out.extend_from_slice(&f.src_port.to_be_bytes());
            out.extend_from_slice(&f.dst_port.to_be_bytes());
            let ulen = ip_len - if f.v6 { 40 } else { 20 };
            out.extend_from_slice(&(ulen as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        ICMP | ICMPV6 => {
            out.extend_from_slice(&f.dst_port.to_be_bytes()); // type, code
            out.extend_from_slice(&[0, 0, 0x12, 0x34, 0, 1]);
        }
        _ => {}
    }
    debug_assert_eq!(out.len() - h, hlen);
    while !(out.len() - h).is_multiple_of(4) {
        out.push(0);
    }
    let len = (out.len() - start - 8) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
}

/// Cumulative counters of one interface, for its counter samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct IfCounters {
    pub in_octets: u64,
    pub in_packets: u32,
    pub out_octets: u64,
    pub out_packets: u32,
}

/// Bytes of a counter sample with generic interface counters.
pub const COUNTER_SAMPLE_LEN: usize = 8 + 12 + 8 + 88;

/// Appends a counter sample (format 2) with generic interface counters of `ifindex`.
pub fn counter_sample(sequence: u32, ifindex: u32, c: &IfCounters, out: &mut Vec<u8>) {
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&((COUNTER_SAMPLE_LEN - 8) as u32).to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&ifindex.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // generic interface counters
    out.extend_from_slice(&88u32.to_be_bytes());
    out.extend_from_slice(&ifindex.to_be_bytes());
    out.extend_from_slice(&6u32.to_be_bytes()); // ethernetCsmacd
    out.extend_from_slice(&10_000_000_000u64.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // full duplex
    out.extend_from_slice(&3u32.to_be_bytes()); // admin and oper up
    out.extend_from_slice(&c.in_octets.to_be_bytes());
    for v in [c.in_packets, 0, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&c.out_octets.to_be_bytes());
    for v in [c.out_packets, 0, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}
