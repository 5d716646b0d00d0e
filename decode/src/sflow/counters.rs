//! Counter samples (sFlow v5 `counters_sample`, format 2, and `counters_sample_expanded`,
//! format 4): interface counters polled by the agent. They describe interfaces, not traffic,
//! so they are handed to their own callback as plain structs rather than as flow records.
//!
//! sFlow v5 §"Counter Data Types": a counter the agent does not have is sent as its maximum
//! value (`u32::MAX` / `u64::MAX`); values are passed on as sent.

use std::net::{IpAddr, SocketAddr};

use super::xdr::Xdr;
use crate::error::DecodeError;

/// Generic interface counters (counter record format 1, RFC 2233 ifTable/ifXTable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct InterfaceCounters {
    pub if_index: u32,
    pub if_type: u32,
    /// Bits per second.
    pub if_speed: u64,
    /// From the MAU MIB: 0 unknown, 1 full duplex, 2 half duplex, 3 in, 4 out.
    pub if_direction: u32,
    /// Bit 0 ifAdminStatus, bit 1 ifOperStatus (1 = up); see [`Self::admin_up`].
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast_pkts: u32,
    pub in_multicast_pkts: u32,
    pub in_broadcast_pkts: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast_pkts: u32,
    pub out_multicast_pkts: u32,
    pub out_broadcast_pkts: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous_mode: u32,
}

impl InterfaceCounters {
    /// Encoded length: 15 x 4 bytes + 3 x 8 bytes.
    pub const LEN: usize = 88;

    /// ifAdminStatus is up.
    pub fn admin_up(&self) -> bool {
        self.if_status & 1 != 0
    }

    /// ifOperStatus is up.
    pub fn oper_up(&self) -> bool {
        self.if_status & 2 != 0
    }

    fn read(x: &mut Xdr<'_>) -> Option<Self> {
        Some(InterfaceCounters {
            if_index: x.u32()?,
            if_type: x.u32()?,
            if_speed: x.u64()?,
            if_direction: x.u32()?,
            if_status: x.u32()?,
            in_octets: x.u64()?,
            in_ucast_pkts: x.u32()?,
            in_multicast_pkts: x.u32()?,
            in_broadcast_pkts: x.u32()?,
            in_discards: x.u32()?,
            in_errors: x.u32()?,
            in_unknown_protos: x.u32()?,
            out_octets: x.u64()?,
            out_ucast_pkts: x.u32()?,
            out_multicast_pkts: x.u32()?,
            out_broadcast_pkts: x.u32()?,
            out_discards: x.u32()?,
            out_errors: x.u32()?,
            promiscuous_mode: x.u32()?,
        })
    }
}

/// Ethernet interface counters (counter record format 2, RFC 2358 dot3StatsTable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct EthernetCounters {
    pub alignment_errors: u32,
    pub fcs_errors: u32,
    pub single_collision_frames: u32,
    pub multiple_collision_frames: u32,
    pub sqe_test_errors: u32,
    pub deferred_transmissions: u32,
    pub late_collisions: u32,
    pub excessive_collisions: u32,
    pub internal_mac_transmit_errors: u32,
    pub carrier_sense_errors: u32,
    pub frame_too_longs: u32,
    pub internal_mac_receive_errors: u32,
    pub symbol_errors: u32,
}

impl EthernetCounters {
    /// Encoded length: 13 x 4 bytes.
    pub const LEN: usize = 52;

    fn read(x: &mut Xdr<'_>) -> Option<Self> {
        Some(EthernetCounters {
            alignment_errors: x.u32()?,
            fcs_errors: x.u32()?,
            single_collision_frames: x.u32()?,
            multiple_collision_frames: x.u32()?,
            sqe_test_errors: x.u32()?,
            deferred_transmissions: x.u32()?,
            late_collisions: x.u32()?,
            excessive_collisions: x.u32()?,
            internal_mac_transmit_errors: x.u32()?,
            carrier_sense_errors: x.u32()?,
            frame_too_longs: x.u32()?,
            internal_mac_receive_errors: x.u32()?,
            symbol_errors: x.u32()?,
        })
    }
}

/// One counter sample with its datagram's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterSample {
    /// UDP source of the datagram.
    pub exporter: SocketAddr,
    /// Agent address from the datagram header (`None`: address type "unknown").
    pub agent: Option<IpAddr>,
    pub sub_agent_id: u32,
    /// Agent uptime from the datagram header, ms.
    pub uptime_ms: u32,
    /// When the datagram was received, ns since the Unix epoch.
    pub receive_time_ns: i64,
    /// The caller's tag of the datagram (pcap frame number in `sluice decode`).
    pub tag: u64,
    /// Counter sample sequence number (per data source).
    pub sequence: u32,
    /// sFlowDataSource type: 0 ifIndex, 1 smonVlanDataSource, 2 entPhysicalEntry.
    pub source_type: u32,
    /// sFlowDataSource index.
    pub source_index: u32,
    /// Generic interface counters, if the sample had them.
    pub interface: Option<InterfaceCounters>,
    /// Ethernet counters, if the sample had them.
    pub ethernet: Option<EthernetCounters>,
    /// Counter records of other formats (skipped).
    pub other_records: u32,
}

/// What [`read_records`] found besides the counters.
pub(super) struct RecordCounts {
    pub skipped: u32,
    pub errors: u32,
}

/// Reads the `counter_record` list of a counter sample into `s`. Returns how many records were
/// skipped and how many were malformed (their structure is counted, the rest still decodes);
/// an error if the list itself does not fit in the sample.
pub(super) fn read_records(
    x: &mut Xdr<'_>,
    s: &mut CounterSample,
) -> Result<RecordCounts, DecodeError> {
    const T: DecodeError = DecodeError::Truncated("sflow counter record");
    let n = x.u32().ok_or(T)?;
    let mut counts = RecordCounts {
        skipped: 0,
        errors: 0,
    };
    // Each record takes at least 8 bytes, so the loop ends with the sample whatever `n` says.
    for _ in 0..n {
        let format = x.u32().ok_or(T)?;
        let data = x.opaque().ok_or(T)?;
        let mut r = Xdr::new(data);
        match format {
            1 => match InterfaceCounters::read(&mut r) {
                Some(c) => s.interface = Some(c),
                None => counts.errors += 1,
            },
            2 => match EthernetCounters::read(&mut r) {
                Some(c) => s.ethernet = Some(c),
                None => counts.errors += 1,
            },
            _ => {
                s.other_records = s.other_records.saturating_add(1);
                counts.skipped += 1;
            }
        }
    }
    Ok(counts)
}

/// Counter samples as records, for the store and the document sinks (the metrics take the
/// struct). One fixed layout per combination of what the sample had, like the flow layouts:
///
/// - agent (if its address type is known): exporterIPv4Address (130) or exporterIPv6Address
///   (131);
/// - always: observationPointId (138, 8 bytes: data source type << 32 | index) and the
///   sample's sequence number (InMon PEN 4300, element 33);
/// - generic interface counters: PEN 4300 elements 1-19, the record's fields in order;
/// - Ethernet counters: PEN 4300 elements 20-32.
///
/// Template ids are [`COUNTER_BASE_ID`] + the layout index; the encoder knows a counter
/// record by [`is_counter_template`].
pub mod layout {
    use std::net::IpAddr;
    use std::sync::OnceLock;

    use super::CounterSample;
    use crate::template::{Dialect, FieldSpec, Template};

    /// InMon's private enterprise number, under which Sluice names the counter fields.
    pub const PEN: u32 = 4300;
    /// First template id of the counter layouts (clear of the flow layouts' ids).
    pub const COUNTER_BASE_ID: u16 = 0xf000;
    const LAYOUTS: usize = 3 * 2 * 2;
    /// Longest record: IPv6 agent, both counter structures.
    pub const MAX_LEN: usize = 16 + 8 + 4 + 88 + 52;

    /// Whether `t` is one of the counter layouts.
    pub fn is_counter_template(t: &Template) -> bool {
        t.dialect == Dialect::Sflow
            && (COUNTER_BASE_ID..COUNTER_BASE_ID + LAYOUTS as u16).contains(&t.id)
    }

    fn index(cs: &CounterSample) -> usize {
        let fam = match cs.agent {
            None => 0,
            Some(IpAddr::V4(_)) => 1,
            Some(IpAddr::V6(_)) => 2,
        };
        fam * 4 + usize::from(cs.interface.is_some()) * 2 + usize::from(cs.ethernet.is_some())
    }

    /// Calls `f(pen, id, value bytes)` for every element of the sample's layout, in order.
    /// Compiling a layout and writing a record both go through here.
    fn walk(cs: &CounterSample, f: &mut dyn FnMut(u32, u16, &[u8])) {
        match cs.agent {
            Some(IpAddr::V4(a)) => f(0, 130, &a.octets()),
            Some(IpAddr::V6(a)) => f(0, 131, &a.octets()),
            None => {}
        }
        let point = (u64::from(cs.source_type) << 32) | u64::from(cs.source_index);
        f(0, 138, &point.to_be_bytes());
        f(PEN, 33, &cs.sequence.to_be_bytes());
        if let Some(i) = &cs.interface {
            let w32 = [
                i.if_index,
                i.if_type,
                0,
                i.if_direction,
                i.if_status,
                0,
                i.in_ucast_pkts,
                i.in_multicast_pkts,
                i.in_broadcast_pkts,
                i.in_discards,
                i.in_errors,
                i.in_unknown_protos,
                0,
                i.out_ucast_pkts,
                i.out_multicast_pkts,
                i.out_broadcast_pkts,
                i.out_discards,
                i.out_errors,
                i.promiscuous_mode,
            ];
            for (n, v) in w32.iter().enumerate() {
                let id = n as u16 + 1;
                match id {
                    3 => f(PEN, id, &i.if_speed.to_be_bytes()),
                    6 => f(PEN, id, &i.in_octets.to_be_bytes()),
                    13 => f(PEN, id, &i.out_octets.to_be_bytes()),
                    _ => f(PEN, id, &v.to_be_bytes()),
                }
            }
        }
        if let Some(e) = &cs.ethernet {
            let w = [
                e.alignment_errors,
                e.fcs_errors,
                e.single_collision_frames,
                e.multiple_collision_frames,
                e.sqe_test_errors,
                e.deferred_transmissions,
                e.late_collisions,
                e.excessive_collisions,
                e.internal_mac_transmit_errors,
                e.carrier_sense_errors,
                e.frame_too_longs,
                e.internal_mac_receive_errors,
                e.symbol_errors,
            ];
            for (n, v) in w.iter().enumerate() {
                f(PEN, n as u16 + 20, &v.to_be_bytes());
            }
        }
    }

    fn template(cs: &CounterSample) -> &'static Template {
        static CELLS: [OnceLock<Box<Template>>; LAYOUTS] = [const { OnceLock::new() }; LAYOUTS];
        let i = index(cs);
        let cell = CELLS.get(i).unwrap_or(&CELLS[0]);
        cell.get_or_init(|| {
            let mut specs = Vec::with_capacity(40);
            walk(cs, &mut |pen, id, v| {
                specs.push(FieldSpec {
                    id,
                    pen,
                    len: v.len() as u16,
                })
            });
            match Template::compile(COUNTER_BASE_ID + i as u16, Dialect::Sflow, false, 0, &specs) {
                Ok(t) => Box::new(t),
                Err(e) => unreachable!("static sFlow counter layout compiles: {e}"),
            }
        })
    }

    /// Writes the sample's record into `buf` (at least [`MAX_LEN`] bytes); returns its
    /// length and template.
    pub fn write(cs: &CounterSample, buf: &mut [u8]) -> (usize, &'static Template) {
        let mut n = 0;
        walk(cs, &mut |_, _, v| {
            if let Some(dst) = buf.get_mut(n..n + v.len()) {
                dst.copy_from_slice(v);
                n += v.len();
            }
        });
        (n, template(cs))
    }
}
