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
