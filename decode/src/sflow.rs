//! sFlow version 5 decoding (sflow.org, "sFlow Version 5", July 2004, with the sFlow Drops
//! extension's discarded-packet sample).
//!
//! Place in the pipeline: beside [`crate::Decoder`]. The receive loop (or `sluice decode`)
//! hands each UDP payload that starts with version 5 as a 32-bit word ([`is_sflow_v5`]) to its
//! core's [`SflowDecoder`], which calls back once per flow sample with a [`Record`] and once
//! per counter sample with a [`CounterSample`].
//!
//! A flow sample becomes one record of IPFIX elements in a fixed layout chosen by what the
//! sample has (see `layout`), template dialect [`Dialect::Sflow`](crate::Dialect::Sflow), so
//! the flow view, the document encoder, batches and the store treat it like any v5/v9/IPFIX
//! record. Values are as sampled: `octetDeltaCount` is the sampled frame's length,
//! `packetDeltaCount` is 1 and `samplingInterval` the sampling rate; scaling by the rate is
//! enrichment's job, as for sampled NetFlow. The export header carries: version 5, the UDP
//! source as exporter, the sub-agent id as source id, the receive time as export time (an sFlow
//! datagram has no wall clock), the agent's uptime and the datagram sequence number. The
//! agent address is in the record (exporterIPv4Address / exporterIPv6Address) and the data
//! source in observationPointId (type << 32 | index).
//!
//! What is decoded: the datagram header; flow samples (format 1), expanded flow samples
//! (format 3) and discarded-packet samples (format 5); the flow records sampled header
//! (format 1, through Ethernet, 802.1Q/QinQ, LLC/SNAP, MPLS, IPv4, IPv6 extension headers,
//! TCP, UDP, SCTP, ICMP, ICMPv6), sampled Ethernet (2), sampled IPv4 (3) and IPv6 (4),
//! extended switch (1001), router (1002) and gateway (1003); counter samples (formats 2 and 4)
//! with generic interface (1) and Ethernet (2) counters. Other sample and record formats are
//! skipped by their length and counted ([`SflowStats`]).
//!
//! Loss: datagram sequence numbers per agent and sub-agent, sample sequence numbers per data
//! source (flow, counter and discard samples separately), both with [`SeqTracker`], so late
//! datagrams fill their gap. An agent whose uptime or datagram sequence goes back is taken to
//! have restarted and its sequence state is reset.
//!
//! Invariants: no input panics (every read is checked, every length is validated before use,
//! every loop is bounded by the bytes it consumes); every rejected datagram, sample or record
//! is counted by reason in [`SflowStats::errors`]; the per-agent state is bounded by
//! [`SflowLimits`].

mod counters;
mod layout;
mod packet;
mod xdr;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use rustc_hash::FxHashMap;

pub use counters::layout as counter_layout;
pub use counters::{CounterSample, EthernetCounters, InterfaceCounters};

use crate::decoder::Datagram;
use crate::error::DecodeError;
use crate::exporter::{uptime_restarted, SeqEvent, SeqTracker, REORDER_WINDOW_PACKETS};
use crate::record::{ExportHeader, Record};
use crate::template::Template;
use layout::{Facts, Fam, Gateway};
use packet::L4;
use xdr::Xdr;

/// The sFlow collector port registered with IANA.
pub const SFLOW_PORT: u16 = 6343;

/// Whether a UDP payload is an sFlow v5 datagram: its first 32-bit word is 5. (A NetFlow v5
/// datagram starts with the 16-bit version 5 followed by a non-zero count, so the two never
/// look alike.)
pub fn is_sflow_v5(payload: &[u8]) -> bool {
    payload.get(..4) == Some(&[0, 0, 0, 5][..])
}

/// Bounds on what an agent (or anyone who can send UDP) can make the decoder keep.
#[derive(Clone, Copy, Debug)]
pub struct SflowLimits {
    /// Agents (agent address x sub-agent) whose sequence numbers are tracked; datagrams from
    /// further agents are decoded but not tracked, and counted.
    pub max_agents: usize,
    /// Data sources tracked per agent (x3: flow, counter and discard samples).
    pub max_sources_per_agent: usize,
}

impl Default for SflowLimits {
    fn default() -> Self {
        SflowLimits {
            max_agents: 16_384,
            max_sources_per_agent: 4_096,
        }
    }
}

/// An sFlow datagram stream: agent address and sub-agent id (sFlow v5 §"sample_datagram_v5":
/// the sequence number counts the datagrams of one sub-agent). The UDP source address stands
/// in for an agent address of type "unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentKey {
    /// Agent address.
    pub agent: IpAddr,
    /// Sub-agent id.
    pub sub_agent_id: u32,
}

/// Per-agent figures for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// Datagrams the sequence numbers say were sent and never arrived.
    pub missing_datagrams: u64,
    /// Datagrams received.
    pub received_datagrams: u64,
    /// Samples (flow, counter and discard) missing by their per-source sequence numbers.
    pub missing_samples: u64,
    /// Samples received from tracked sources.
    pub received_samples: u64,
    /// Times the agent was seen to restart.
    pub restarts: u64,
    /// Data sources tracked.
    pub sources: usize,
}

/// Counters of one decoder. `errors` counts by [`DecodeError::reason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SflowStats {
    /// Datagrams seen.
    pub datagrams: u64,
    /// Flow samples (compact and expanded) decoded.
    pub flow_samples: u64,
    /// Discarded-packet samples decoded.
    pub discard_samples: u64,
    /// Counter samples (compact and expanded) decoded.
    pub counter_samples: u64,
    /// Records emitted (one per flow or discard sample).
    pub flow_records: u64,
    /// Samples of a format not decoded (other enterprises, unknown formats), skipped.
    pub skipped_samples: u64,
    /// Flow records of a format not decoded, skipped.
    pub skipped_flow_records: u64,
    /// Counter records of a format not decoded, skipped.
    pub skipped_counter_records: u64,
    /// Sampled headers of a `header_protocol` not decoded (token ring, FDDI, PPP, ...): the
    /// sample is emitted without packet fields.
    pub undecoded_headers: u64,
    /// Agent restarts detected (uptime or datagram sequence went back).
    pub agent_restarts: u64,
    /// Data sources whose sample sequence went back (the agent reset that source).
    pub source_resets: u64,
    /// Datagrams and samples whose sequence was not tracked because a limit was reached.
    pub untracked: u64,
    /// Errors by reason.
    pub errors: FxHashMap<&'static str, u64>,
}

impl SflowStats {
    fn error(&mut self, e: DecodeError) {
        *self.errors.entry(e.reason()).or_default() += 1;
    }

    /// Sum of all error counts.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Which sequence a sample counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Stream {
    Flow,
    Counter,
    Discard,
}

/// Flow sample encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// flow_sample (format 1).
    Compact,
    /// flow_sample_expanded (format 3).
    Expanded,
    /// discarded_packet (format 5, sFlow Drops).
    Discard,
}

#[derive(Default)]
struct Agent {
    datagrams: SeqTracker,
    last_uptime: Option<u32>,
    last_sequence: Option<u32>,
    last_seen_ns: i64,
    restarts: u64,
    sources: FxHashMap<(Stream, u32, u32), SeqTracker>,
}

/// The datagram-wide context of a sample.
struct Ctx {
    header: ExportHeader,
    agent: Option<IpAddr>,
    key: AgentKey,
}

/// What the flow records of one sample said beyond [`Facts`].
#[derive(Default)]
struct Seen {
    /// Rank of the source `Facts::bytes` came from: 3 sampled header, 2 sampled Ethernet,
    /// 1 sampled IPv4/IPv6 (the IP length lacks the frame overhead).
    bytes_rank: u8,
    header: bool,
    /// VLAN tags of the sampled header, outermost first, and how many there were.
    tags: ([u16; 2], u8),
}

/// The sFlow decoder. Not shared between threads: each core owns one.
pub struct SflowDecoder {
    limits: SflowLimits,
    stats: SflowStats,
    agents: FxHashMap<AgentKey, Agent>,
    /// The record being built, reused from sample to sample.
    buf: Box<[u8; layout::MAX_RECORD]>,
    /// Counter samples also go to the record callback, as records of
    /// [`counters::layout`] (for the store and the document sinks).
    counter_records: bool,
}

impl Default for SflowDecoder {
    fn default() -> Self {
        SflowDecoder::new(SflowLimits::default())
    }
}

impl std::fmt::Debug for SflowDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SflowDecoder")
            .field("agents", &self.agents.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// A VLAN id from an 802.1Q field: 12 bits, 0 meaning none (sFlow v5: 0 for an unknown
/// value). Anything else (e.g. 0xffffffff from agents that have no VLAN) is not a VLAN.
fn vlan(v: u32) -> Option<u16> {
    (1..=4095).contains(&v).then_some(v as u16)
}

/// forwardingStatus (IANA IE 89, codes of RFC 7270) of a discarded packet from its sFlow reason
/// code: 0-255 are ICMP destination-unreachable codes (RFC 1812 §5.2.7.1), 256-262 sFlow v5's
/// own, 263 and up the sFlow Drops extension's. Status "dropped" is 0b10 in the top two bits;
/// the low bits are RFC 7270's reason where one matches, else 0 ("unknown").
fn drop_status(reason: u32) -> u8 {
    const DROPPED: u8 = 0x80;
    DROPPED
        | match reason {
            // Net unreachable, source route failed, destination network unknown, network
            // unreachable for TOS; blackhole route, non-routable packet.
            0 | 5 | 6 | 11 | 269 | 281 => 3, // Unroutable
            // Host unreachable, destination host unknown, host unreachable for TOS;
            // unresolved neighbour, blackhole ARP/neighbour.
            1 | 7 | 12 | 279 | 292 => 4, // Adjacency
            // Fragmentation needed and DF set; packet too big.
            4 | 262 => 5, // Fragmentation and DF set
            // Administratively prohibited (network, host, communication); ACL.
            9 | 10 | 13 | 258 => 1, // ACL deny
            257 => 9,               // TTL exceeded: bad TTL
            261 => 10,              // traffic shaping/rate limiting: policer
            260 => 11,              // RED: WRED
            280 | 302 => 12,        // multicast / unicast reverse path forwarding: RPF
            _ => 0,
        }
}

/// forwardingStatus "consumed, for us" (RFC 7270): the output interface says the packet was
/// for the device itself.
const CONSUMED_FOR_US: u8 = 0xc3;
/// forwardingStatus "forwarded, unknown": sent to several interfaces.
const FORWARDED: u8 = 0x40;

/// Applies a sample's input and output interfaces (sFlow v5 §"Input/output port
/// information"): format 0 is an ifIndex, `local` (0x3FFFFFFF compact, 0xFFFFFFFF expanded)
/// meaning the device itself; on output, format 1 is a discard with its reason and format 2 a
/// packet sent to several interfaces. Interfaces that are not an ifIndex are reported as 0
/// ("unknown") with the forwarding status saying why.
fn interfaces(f: &mut Facts, input: (u32, u32), output: (u32, u32), local: u32) {
    f.in_if = match input {
        (0, v) if v != local => v,
        _ => 0,
    };
    f.out_if = 0;
    match output {
        (0, v) if v == local => f.fwd = Some(CONSUMED_FOR_US),
        (0, v) => f.out_if = v,
        (1, reason) => f.fwd = Some(drop_status(reason)),
        (2, _) => f.fwd = Some(FORWARDED),
        _ => {}
    }
}

impl SflowDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: SflowLimits) -> Self {
        SflowDecoder {
            limits,
            stats: SflowStats::default(),
            agents: FxHashMap::default(),
            buf: Box::new([0; layout::MAX_RECORD]),
            counter_records: false,
        }
    }

    /// Whether counter samples are also handed to the record callback as records (see
    /// [`counters::layout`]); off by default. The counter callback gets them either way.
    pub fn set_counter_records(&mut self, on: bool) {
        self.counter_records = on;
    }

    /// Counters so far.
    pub fn stats(&self) -> &SflowStats {
        &self.stats
    }

    /// Per-agent figures (loss, restarts).
    pub fn agents(&self) -> impl Iterator<Item = (AgentKey, AgentStatus)> + '_ {
        self.agents.iter().map(|(k, a)| {
            let (mut missing, mut received) = (0, 0);
            for t in a.sources.values() {
                missing += t.missing();
                received += t.received();
            }
            (
                *k,
                AgentStatus {
                    missing_datagrams: a.datagrams.missing(),
                    received_datagrams: a.datagrams.received(),
                    missing_samples: missing,
                    received_samples: received,
                    restarts: a.restarts,
                    sources: a.sources.len(),
                },
            )
        })
    }

    /// Forgets agents not heard from for `idle_ns` as of `now_ns` (receive times), so that
    /// agents that went away free their place under [`SflowLimits::max_agents`]. Returns how
    /// many were dropped.
    pub fn expire(&mut self, now_ns: i64, idle_ns: i64) -> usize {
        let before = self.agents.len();
        self.agents
            .retain(|_, a| now_ns.saturating_sub(a.last_seen_ns) <= idle_ns);
        before - self.agents.len()
    }

    /// Decodes one datagram: `on_flow` for every flow and discarded-packet sample, `on_counters`
    /// for every counter sample. A malformed sample is counted and skipped (the samples are
    /// framed by their lengths, so the next one still decodes); an error that stops the
    /// datagram (bad header, samples running past its end) is counted and also returned.
    pub fn decode<F: FnMut(&Record<'_>), C: FnMut(&CounterSample)>(
        &mut self,
        dg: &Datagram<'_>,
        mut on_flow: F,
        mut on_counters: C,
    ) -> Result<(), DecodeError> {
        self.stats.datagrams += 1;
        let r = self.datagram(dg, &mut on_flow, &mut on_counters);
        if let Err(e) = r {
            self.stats.error(e);
        }
        r
    }

    fn datagram<F: FnMut(&Record<'_>), C: FnMut(&CounterSample)>(
        &mut self,
        dg: &Datagram<'_>,
        on_flow: &mut F,
        on_counters: &mut C,
    ) -> Result<(), DecodeError> {
        const T: DecodeError = DecodeError::Truncated("sflow header");
        let mut x = Xdr::new(dg.payload);
        let version = x.u32().ok_or(T)?;
        if version != 5 {
            return Err(DecodeError::UnsupportedVersion(
                u16::try_from(version).unwrap_or(u16::MAX),
            ));
        }
        let agent = x.address("sflow agent address")?;
        let sub_agent_id = x.u32().ok_or(T)?;
        let sequence = x.u32().ok_or(T)?;
        let uptime = x.u32().ok_or(T)?;
        let count = x.u32().ok_or(T)?;
        let ctx = Ctx {
            header: ExportHeader {
                version: 5,
                exporter: dg.src,
                source_id: sub_agent_id,
                export_time_ns: dg.receive_time_ns,
                sys_uptime_ms: Some(uptime),
                sequence,
                receive_time_ns: dg.receive_time_ns,
                sampling_interval: 0,
                tag: dg.tag,
            },
            agent,
            key: AgentKey {
                agent: agent.unwrap_or(dg.src.ip()),
                sub_agent_id,
            },
        };
        self.observe_datagram(ctx.key, sequence, uptime, dg.receive_time_ns);
        // Each sample takes at least 8 bytes, so the loop is bounded by the datagram whatever
        // the count says. Bytes after the last counted sample are ignored.
        for _ in 0..count {
            const TS: DecodeError = DecodeError::Truncated("sflow sample");
            let format = x.u32().ok_or(TS)?;
            let body = x.opaque().ok_or(TS)?;
            // data_format: enterprise in the top 20 bits, format in the low 12; 0 is sflow.org.
            let r = match format {
                1 => self.flow_sample(&ctx, Kind::Compact, body, on_flow),
                3 => self.flow_sample(&ctx, Kind::Expanded, body, on_flow),
                5 => self.flow_sample(&ctx, Kind::Discard, body, on_flow),
                2 => self.counter_sample(&ctx, false, body, on_flow, on_counters),
                4 => self.counter_sample(&ctx, true, body, on_flow, on_counters),
                _ => {
                    self.stats.skipped_samples += 1;
                    Ok(())
                }
            };
            if let Err(e) = r {
                self.stats.error(e);
            }
        }
        Ok(())
    }

    /// Sequence accounting of the datagram stream; restart detection as for NetFlow v9 (see
    /// [`uptime_restarted`]): uptime falling back, or the sequence stepping back further than
    /// any reordering.
    fn observe_datagram(&mut self, key: AgentKey, sequence: u32, uptime: u32, now_ns: i64) {
        let n = self.agents.len();
        let a = match self.agents.get_mut(&key) {
            Some(a) => a,
            None if n < self.limits.max_agents => self.agents.entry(key).or_default(),
            None => {
                self.stats.untracked += 1;
                return;
            }
        };
        let uptime_back = a.last_uptime.is_some_and(|l| uptime_restarted(l, uptime));
        let seq_back = a.last_sequence.is_some_and(|l| {
            i64::from(l.wrapping_sub(sequence) as i32) > REORDER_WINDOW_PACKETS as i64
        });
        if uptime_back || seq_back {
            a.datagrams = SeqTracker::default();
            a.sources.clear();
            a.restarts += 1;
            self.stats.agent_restarts += 1;
        }
        a.datagrams.observe(sequence, 1, REORDER_WINDOW_PACKETS);
        a.last_uptime = Some(uptime);
        a.last_sequence = Some(sequence);
        a.last_seen_ns = now_ns;
    }

    /// Sequence accounting of one data source's samples (sFlow v5: "incremented with each
    /// flow sample generated by this source_id"; counter samples count separately).
    fn observe_sample(&mut self, key: AgentKey, stream: Stream, source: (u32, u32), seq: u32) {
        let Some(a) = self.agents.get_mut(&key) else {
            self.stats.untracked += 1;
            return;
        };
        let k = (stream, source.0, source.1);
        let n = a.sources.len();
        let t = match a.sources.get_mut(&k) {
            Some(t) => t,
            None if n < self.limits.max_sources_per_agent.saturating_mul(3) => {
                a.sources.entry(k).or_default()
            }
            None => {
                self.stats.untracked += 1;
                return;
            }
        };
        if t.observe(seq, 1, REORDER_WINDOW_PACKETS) == SeqEvent::Reset {
            self.stats.source_resets += 1;
        }
    }

    fn flow_sample<F: FnMut(&Record<'_>)>(
        &mut self,
        ctx: &Ctx,
        kind: Kind,
        body: &[u8],
        on_flow: &mut F,
    ) -> Result<(), DecodeError> {
        const T: DecodeError = DecodeError::Truncated("sflow flow sample");
        let mut x = Xdr::new(body);
        let seq = x.u32().ok_or(T)?;
        // sflow_data_source: type in the top byte, index in the low three (compact); two
        // words (expanded, and the discarded-packet sample).
        let source = match kind {
            Kind::Compact => {
                let v = x.u32().ok_or(T)?;
                (v >> 24, v & 0x00ff_ffff)
            }
            Kind::Expanded | Kind::Discard => (x.u32().ok_or(T)?, x.u32().ok_or(T)?),
        };
        let mut f = Facts {
            agent: ctx.agent,
            source: u64::from(source.0) << 32 | u64::from(source.1),
            packets: 1,
            ..Facts::default()
        };
        match kind {
            Kind::Compact | Kind::Expanded => {
                f.sampling = x.u32().ok_or(T)?;
                let _sample_pool = x.u32().ok_or(T)?;
                let _drops = x.u32().ok_or(T)?;
                if kind == Kind::Compact {
                    // interface: format in the top 2 bits, value in the low 30.
                    let i = x.u32().ok_or(T)?;
                    let o = x.u32().ok_or(T)?;
                    let split = |v: u32| (v >> 30, v & 0x3fff_ffff);
                    interfaces(&mut f, split(i), split(o), 0x3fff_ffff);
                } else {
                    // interface_expanded: format and value words; the device itself is
                    // 0xFFFFFFFF here (sFlow v5 erratum: not the compact 0x3FFFFFFF).
                    let i = (x.u32().ok_or(T)?, x.u32().ok_or(T)?);
                    let o = (x.u32().ok_or(T)?, x.u32().ok_or(T)?);
                    interfaces(&mut f, i, o, u32::MAX);
                }
            }
            Kind::Discard => {
                // sFlow Drops: drops, input ifIndex, output ifIndex, reason. Discards are
                // reported one by one (rate-limited, not sampled): no sampling rate.
                let _drops = x.u32().ok_or(T)?;
                f.in_if = x.u32().ok_or(T)?;
                f.out_if = x.u32().ok_or(T)?;
                f.fwd = Some(drop_status(x.u32().ok_or(T)?));
            }
        }
        const TR: DecodeError = DecodeError::Truncated("sflow flow record");
        let n = x.u32().ok_or(TR)?;
        let mut seen = Seen::default();
        // Each record takes at least 8 bytes: bounded by the sample.
        for _ in 0..n {
            let format = x.u32().ok_or(TR)?;
            let data = x.opaque().ok_or(TR)?;
            if let Err(e) = self.flow_record(format, data, &mut f, &mut seen) {
                self.stats.error(e);
            }
        }
        // extended_switch is the authority on VLANs (sFlow v5: it "must always be reported");
        // the sampled header's tags stand in when it is absent.
        let (tags, ntags) = seen.tags;
        if f.vlan_in.is_none() && ntags > 0 {
            f.vlan_in = vlan(u32::from(tags[0]));
        }
        if ntags >= 2 {
            f.qinq = Some((tags[0], tags[1]));
        }
        let stream = match kind {
            Kind::Discard => Stream::Discard,
            _ => Stream::Flow,
        };
        self.observe_sample(ctx.key, stream, source, seq);
        match kind {
            Kind::Discard => self.stats.discard_samples += 1,
            _ => self.stats.flow_samples += 1,
        }
        let (len, t): (usize, &Template) = layout::write(&f, &mut self.buf);
        emit(&ctx.header, t, &self.buf[..], len, on_flow);
        self.stats.flow_records += 1;
        Ok(())
    }

    fn flow_record(
        &mut self,
        format: u32,
        data: &[u8],
        f: &mut Facts,
        seen: &mut Seen,
    ) -> Result<(), DecodeError> {
        let mut x = Xdr::new(data);
        match format {
            // sampled_header
            1 => {
                const T: DecodeError = DecodeError::Truncated("sflow sampled header");
                let protocol = x.u32().ok_or(T)?;
                let frame_length = x.u32().ok_or(T)?;
                let _stripped = x.u32().ok_or(T)?;
                let header = x.opaque().ok_or(T)?;
                if seen.header {
                    // One header per sample is the norm; a second one says nothing new.
                    self.stats.skipped_flow_records += 1;
                    return Ok(());
                }
                seen.header = true;
                if seen.bytes_rank < 3 {
                    f.bytes = u64::from(frame_length);
                    seen.bytes_rank = 3;
                }
                if !matches!(
                    protocol,
                    packet::PROTO_ETHERNET
                        | packet::PROTO_IPV4
                        | packet::PROTO_IPV6
                        | packet::PROTO_MPLS
                ) {
                    self.stats.undecoded_headers += 1;
                }
                let p = packet::parse(protocol, header);
                if p.mac.is_some() {
                    f.mac = p.mac;
                }
                seen.tags = (p.vlans, p.tags);
                if let Some(ip) = p.ip {
                    f.addrs = Some((ip.src, ip.dst));
                    f.proto = ip.proto;
                    f.tos = ip.tos;
                    f.l4 = ip.l4;
                }
            }
            // sampled_ethernet: length, MACs as XDR mac[6] (padded to 8), type.
            2 => {
                const T: DecodeError = DecodeError::Truncated("sflow sampled ethernet");
                let length = x.u32().ok_or(T)?;
                let src = x.fixed(6).and_then(|s| s.try_into().ok()).ok_or(T)?;
                let dst = x.fixed(6).and_then(|s| s.try_into().ok()).ok_or(T)?;
                let ty = x.u32().ok_or(T)?;
                if seen.bytes_rank < 2 {
                    f.bytes = u64::from(length);
                    seen.bytes_rank = 2;
                }
                if f.mac.is_none() {
                    f.mac = Some(packet::Mac {
                        src,
                        dst,
                        ethertype: ty as u16,
                    });
                }
            }
            // sampled_ipv4 / sampled_ipv6: length, protocol, addresses, ports, TCP flags,
            // TOS or priority.
            3 | 4 => {
                const T: DecodeError = DecodeError::Truncated("sflow sampled ip");
                let length = x.u32().ok_or(T)?;
                let proto = x.u32().ok_or(T)?;
                let (src, dst) = if format == 3 {
                    let s: [u8; 4] = x.array().ok_or(T)?;
                    let d: [u8; 4] = x.array().ok_or(T)?;
                    (IpAddr::from(s), IpAddr::from(d))
                } else {
                    let s: [u8; 16] = x.array().ok_or(T)?;
                    let d: [u8; 16] = x.array().ok_or(T)?;
                    (IpAddr::from(s), IpAddr::from(d))
                };
                let sport = x.u32().ok_or(T)?;
                let dport = x.u32().ok_or(T)?;
                let flags = x.u32().ok_or(T)?;
                let tos = x.u32().ok_or(T)?;
                if seen.bytes_rank < 1 {
                    f.bytes = u64::from(length);
                    seen.bytes_rank = 1;
                }
                // The sampled header, when there is one, is the better source.
                if f.addrs.is_none() {
                    let proto = proto as u8;
                    let (sport, dport) = (sport as u16, dport as u16);
                    f.addrs = Some((src, dst));
                    f.proto = proto;
                    f.tos = tos as u8;
                    f.l4 = match proto {
                        6 => L4::Tcp {
                            src: sport,
                            dst: dport,
                            flags: (flags & 0x0fff) as u16,
                        },
                        17 | 33 | 132 | 136 => L4::Ports {
                            src: sport,
                            dst: dport,
                        },
                        _ => L4::None,
                    };
                }
            }
            // extended_switch: src_vlan, src_priority, dst_vlan, dst_priority.
            1001 => {
                const T: DecodeError = DecodeError::Truncated("sflow extended switch");
                let src_vlan = x.u32().ok_or(T)?;
                let _src_pri = x.u32().ok_or(T)?;
                let dst_vlan = x.u32().ok_or(T)?;
                let _dst_pri = x.u32().ok_or(T)?;
                f.vlan_in = vlan(src_vlan);
                f.vlan_out = vlan(dst_vlan);
            }
            // extended_router: next hop, source and destination prefix lengths.
            1002 => {
                const W: &str = "sflow extended router";
                let nh = x.address(W)?;
                let src_mask = x.u32().ok_or(DecodeError::Truncated(W))?;
                let dst_mask = x.u32().ok_or(DecodeError::Truncated(W))?;
                let nh = nh.unwrap_or_else(|| layout::unspecified(family_of(f)));
                f.router = Some((nh, src_mask.min(128) as u8, dst_mask.min(128) as u8));
            }
            // extended_gateway: next hop, router AS, source AS, source peer AS, destination
            // AS path (segments of type and ASNs), communities, local preference.
            1003 => {
                const W: &str = "sflow extended gateway";
                const T: DecodeError = DecodeError::Truncated(W);
                let nh = x.address(W)?;
                let router_as = x.u32().ok_or(T)?;
                let src_as = x.u32().ok_or(T)?;
                let peer_as = x.u32().ok_or(T)?;
                let segments = x.u32().ok_or(T)?;
                let (mut first, mut last) = (None, None);
                // Each segment takes at least 8 bytes and each AS 4: bounded by the record.
                for _ in 0..segments {
                    let _type = x.u32().ok_or(T)?;
                    let n = x.u32().ok_or(T)?;
                    if usize::try_from(n).map_or(true, |n| n > x.remaining() / 4) {
                        return Err(T);
                    }
                    for _ in 0..n {
                        let asn = x.u32().ok_or(T)?;
                        first.get_or_insert(asn);
                        last = Some(asn);
                    }
                }
                // Communities and local preference are not kept; the record's length already
                // framed them.
                let nh = nh.unwrap_or_else(|| layout::unspecified(family_of(f)));
                f.gateway = Some(Gateway {
                    next_hop: nh,
                    src_as,
                    // The destination AS ends the path; an empty path means the destination
                    // is in the router's own AS.
                    dst_as: last.unwrap_or(router_as),
                    next_as: first.unwrap_or(0),
                    peer_as,
                });
            }
            _ => self.stats.skipped_flow_records += 1,
        }
        Ok(())
    }

    fn counter_sample<F: FnMut(&Record<'_>), C: FnMut(&CounterSample)>(
        &mut self,
        ctx: &Ctx,
        expanded: bool,
        body: &[u8],
        on_flow: &mut F,
        on_counters: &mut C,
    ) -> Result<(), DecodeError> {
        const T: DecodeError = DecodeError::Truncated("sflow counter sample");
        let mut x = Xdr::new(body);
        let sequence = x.u32().ok_or(T)?;
        let (source_type, source_index) = if expanded {
            (x.u32().ok_or(T)?, x.u32().ok_or(T)?)
        } else {
            let v = x.u32().ok_or(T)?;
            (v >> 24, v & 0x00ff_ffff)
        };
        let mut s = CounterSample {
            exporter: ctx.header.exporter,
            agent: ctx.agent,
            sub_agent_id: ctx.header.source_id,
            uptime_ms: ctx.header.sys_uptime_ms.unwrap_or(0),
            receive_time_ns: ctx.header.receive_time_ns,
            tag: ctx.header.tag,
            sequence,
            source_type,
            source_index,
            interface: None,
            ethernet: None,
            other_records: 0,
        };
        let counts = counters::read_records(&mut x, &mut s)?;
        for _ in 0..counts.errors {
            self.stats
                .error(DecodeError::Truncated("sflow counter record"));
        }
        self.stats.skipped_counter_records += u64::from(counts.skipped);
        self.observe_sample(
            ctx.key,
            Stream::Counter,
            (source_type, source_index),
            sequence,
        );
        self.stats.counter_samples += 1;
        on_counters(&s);
        if self.counter_records {
            let (len, t) = counters::layout::write(&s, &mut self.buf[..]);
            emit(&ctx.header, t, &self.buf[..], len, on_flow);
        }
        Ok(())
    }
}

/// The family an unknown next hop is shown in: the sampled packet's, else IPv4.
fn family_of(f: &Facts) -> Fam {
    match f.addrs {
        Some((IpAddr::V6(_), _)) => Fam::V6,
        _ => Fam::V4,
    }
}

/// Hands the first `len` bytes of `buf`, a record of the fixed layout `t`, to `on_record`.
fn emit<F: FnMut(&Record<'_>)>(
    header: &ExportHeader,
    t: &Template,
    buf: &[u8],
    len: usize,
    on_record: &mut F,
) {
    on_record(&Record {
        header,
        template: t,
        data: buf.get(..len).unwrap_or(&[]),
        spans: &t.fixed_spans,
        system_init_ms: None,
    });
}
