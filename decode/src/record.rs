//! Decoded records: a borrowed view of one record's bytes with its template and export header,
//! and [`Flow`], the core fields read through the template's slots.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::template::{Slot, Template, VARLEN};
use crate::time;

/// Most fields one record may have; templates above it are rejected (see `Limits`).
pub const MAX_FIELDS: usize = 1024;

/// What the export header (and the receiving socket) tell about a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportHeader {
    /// 5, 9 or 10.
    pub version: u16,
    /// Exporter address and source port.
    pub exporter: SocketAddr,
    /// v9 source id, IPFIX observation domain id, v5 engine type << 8 | engine id.
    pub source_id: u32,
    /// Export time from the header, ns since the Unix epoch.
    pub export_time_ns: i64,
    /// v5/v9 sysUptime in ms.
    pub sys_uptime_ms: Option<u32>,
    /// Header sequence number (v5: flows, v9: packets, IPFIX: data records).
    pub sequence: u32,
    /// When the datagram was received (capture time for pcaps), ns since the Unix epoch.
    pub receive_time_ns: i64,
    /// v5 sampling interval from the header (0 = none).
    pub sampling_interval: u16,
    /// Opaque value the caller attached to the datagram (the pcap frame number in
    /// `sluice decode`); held records keep the tag of the datagram that carried them.
    pub tag: u64,
}

/// One data or options record: its bytes, where its fields start, and its context.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The export header of the datagram the record came in.
    pub header: &'a ExportHeader,
    /// The template that describes it.
    pub template: &'a Template,
    /// The record's bytes.
    pub data: &'a [u8],
    /// (offset, length) of every field, in template order.
    pub spans: &'a [(u32, u32)],
    /// systemInitTimeMilliseconds learned from options data of this scope, if any (IPFIX
    /// uptime-relative times need it).
    pub system_init_ms: Option<i64>,
}

/// Reads an unsigned big-endian integer of 1 to 8 bytes; reduced-size encoding (RFC 7011 §6.2)
/// means a 64-bit counter may arrive in 4 bytes. Longer slices read their last 8 bytes.
#[inline]
pub fn be_uint(b: &[u8]) -> u64 {
    let b = if b.len() > 8 { &b[b.len() - 8..] } else { b };
    let mut v = 0u64;
    for &x in b {
        v = (v << 8) | u64::from(x);
    }
    v
}

/// Computes the (offset, length) of each field of one record starting at `data[0]`. Returns
/// the record length, or `None` if the record does not fit in `data`.
pub fn spans_of(template: &Template, data: &[u8], out: &mut Vec<(u32, u32)>) -> Option<usize> {
    out.clear();
    let mut pos = 0usize;
    for f in template.fields.iter() {
        let len = if f.spec.len == VARLEN {
            // RFC 7011 §7: one length byte, or 255 followed by a two-byte length.
            let first = *data.get(pos)?;
            if first < 255 {
                pos += 1;
                usize::from(first)
            } else {
                let hi = *data.get(pos + 1)?;
                let lo = *data.get(pos + 2)?;
                pos += 3;
                usize::from(u16::from_be_bytes([hi, lo]))
            }
        } else {
            usize::from(f.spec.len)
        };
        let end = pos.checked_add(len)?;
        if end > data.len() {
            return None;
        }
        out.push((pos as u32, len as u32));
        pos = end;
    }
    Some(pos)
}

/// The core of a flow record, read through the template's slots. Absolute times are
/// resolved here; missing ones fall back to the export time (see [`time`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub proto: Option<u8>,
    pub tcp_flags: Option<u16>,
    /// Forward octets (octetDeltaCount, or the first of its alternatives the record has).
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    /// Reverse octets of a biflow (RFC 5103) or responder octets (NSEL).
    pub rev_bytes: Option<u64>,
    pub rev_packets: Option<u64>,
    pub in_if: Option<u32>,
    pub out_if: Option<u32>,
    pub next_hop: Option<IpAddr>,
    pub src_as: Option<u32>,
    pub dst_as: Option<u32>,
    pub src_mask: Option<u8>,
    pub dst_mask: Option<u8>,
    /// Flow start, ns since the Unix epoch.
    pub start_ns: i64,
    /// Flow end, ns since the Unix epoch.
    pub end_ns: i64,
    /// Whether start/end came from the record (false: export time used).
    pub times_from_record: bool,
    /// Sampling interval carried by the record itself (IE 34/50/305+306), or the v5 header's.
    pub sampling_interval: Option<u32>,
    /// Sampler id (IE 48/302) that selects a sampler-table entry, if any.
    pub sampler_id: Option<u64>,
}

impl<'a> Record<'a> {
    /// Bytes of field `i`.
    #[inline]
    pub fn field(&self, i: usize) -> &'a [u8] {
        match self.spans.get(i) {
            Some(&(o, l)) => self
                .data
                .get(o as usize..(o as usize + l as usize))
                .unwrap_or(&[]),
            None => &[],
        }
    }

    /// Bytes of the field in `slot`, if the template has it.
    #[inline]
    pub fn slot(&self, slot: Slot) -> Option<&'a [u8]> {
        self.template.slot(slot).map(|i| self.field(i))
    }

    #[inline]
    fn uint(&self, slot: Slot) -> Option<u64> {
        self.slot(slot).filter(|b| !b.is_empty()).map(be_uint)
    }

    fn ip(&self, v4: Slot, v6: Slot) -> Option<IpAddr> {
        if let Some(b) = self.slot(v4) {
            if let Ok(a) = <[u8; 4]>::try_from(b) {
                return Some(IpAddr::V4(Ipv4Addr::from(a)));
            }
        }
        if let Some(b) = self.slot(v6) {
            if let Ok(a) = <[u8; 16]>::try_from(b) {
                return Some(IpAddr::V6(Ipv6Addr::from(a)));
            }
        }
        None
    }

    /// Reads the core flow fields.
    pub fn flow(&self) -> Flow {
        let (start_ns, end_ns, from_record) = time::resolve(self);
        let sampling = self
            .uint(Slot::SamplingInterval)
            .or_else(|| self.uint(Slot::SamplerRandomInterval))
            .or_else(|| {
                // RFC 5476: packet interval P selected out of every P+S packets.
                let p = self.uint(Slot::SamplingPacketInterval)?;
                let s = self.uint(Slot::SamplingPacketSpace).unwrap_or(0);
                (p > 0).then(|| p.saturating_add(s) / p)
            })
            .or_else(|| {
                // v5: two mode bits, 14 interval bits.
                let iv = self.header.sampling_interval & 0x3fff;
                (self.header.version == 5 && iv > 0).then_some(u64::from(iv))
            })
            .map(|v| v.min(u64::from(u32::MAX)) as u32);
        Flow {
            src_ip: self.ip(Slot::SrcV4, Slot::SrcV6),
            dst_ip: self.ip(Slot::DstV4, Slot::DstV6),
            src_port: self.uint(Slot::SrcPort).map(|v| v as u16),
            dst_port: self.uint(Slot::DstPort).map(|v| v as u16),
            proto: self.uint(Slot::Proto).map(|v| v as u8),
            tcp_flags: self.uint(Slot::TcpFlags).map(|v| v as u16),
            bytes: self.uint(Slot::Bytes),
            packets: self.uint(Slot::Packets),
            rev_bytes: self.uint(Slot::RevBytes),
            rev_packets: self.uint(Slot::RevPackets),
            in_if: self.in_if(),
            out_if: self.out_if(),
            next_hop: self.ip(Slot::NextHopV4, Slot::NextHopV6),
            src_as: self.uint(Slot::SrcAs).map(|v| v as u32),
            dst_as: self.uint(Slot::DstAs).map(|v| v as u32),
            src_mask: self
                .uint(Slot::SrcMaskV4)
                .or_else(|| self.uint(Slot::SrcMaskV6))
                .map(|v| v as u8),
            dst_mask: self
                .uint(Slot::DstMaskV4)
                .or_else(|| self.uint(Slot::DstMaskV6))
                .map(|v| v as u8),
            start_ns,
            end_ns,
            times_from_record: from_record,
            sampling_interval: sampling,
            sampler_id: self.sampler_id(),
        }
    }

    /// Input interface (IE 10): [`Flow::in_if`] without reading the rest of the flow.
    #[inline]
    pub fn in_if(&self) -> Option<u32> {
        self.uint(Slot::InIf).map(|v| v as u32)
    }

    /// Output interface (IE 14): [`Flow::out_if`].
    #[inline]
    pub fn out_if(&self) -> Option<u32> {
        self.uint(Slot::OutIf).map(|v| v as u32)
    }

    /// Sampler id (IE 48/302): [`Flow::sampler_id`].
    #[inline]
    pub fn sampler_id(&self) -> Option<u64> {
        self.uint(Slot::SamplerId)
            .or_else(|| self.uint(Slot::SelectorId))
    }
}
