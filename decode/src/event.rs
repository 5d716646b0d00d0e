//! Log events (firewall syslog lines, AWS VPC Flow Log records) as records.
//!
//! Like sFlow samples (`crate::sflow`), a parsed log line becomes one [`Record`] in a fixed
//! layout built by Sluice, so the batch, the local store, the Elasticsearch sink, `dump`,
//! `--where` and enrichment handle it like a flow record. The layout is [`LAYOUT`]: IANA
//! elements for what flows also have (addresses, ports, protocol, TCP flags, byte and packet
//! counts (a biflow's responder side as responderOctets/responderPackets), start and end, ICMP type and code, MAC addresses, NAT addresses and ports, flow
//! direction), so the flow view ([`Record::flow`]) and enrichment read them through the
//! template's slots as for NetFlow; and Sluice enterprise elements ([`SLUICE_PEN`], ids in
//! [`elem`]) for the rest: the action, the rule, the original line, the observer, the syslog
//! header, vendor fields and the parse-failure tag. Documents show every element of an event
//! under its ECS name (`sluice_sink::schema`), never under `netflow.*`.
//!
//! Every field of the layout is variable-length (RFC 7011 §7 encoding): an element the event
//! does not have is an empty field (one length byte), which readers treat as absent. There is
//! one template per dialect ([`template`]); its id and field list are stored with the records,
//! so a later layout (more elements) still reads older data, the ECS getters going by element
//! id rather than position.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use crate::ie::{IeDef, IeType};
use crate::record::{ExportHeader, Record};
use crate::template::{Dialect, FieldSpec, Template, VARLEN};

/// Private enterprise number of Sluice's own elements. Sluice has no registered PEN; this is
/// 32473, the number IANA reserves for documentation and examples (RFC 5612), so it can never
/// collide with a real vendor's elements. The elements only ever appear in Sluice's own
/// event layouts, never on the wire.
pub const SLUICE_PEN: u32 = 32473;

/// Template id of the syslog layout.
pub const SYSLOG_TEMPLATE_ID: u16 = 0x5301;
/// Template id of the VPC Flow Logs layout.
pub const VPC_TEMPLATE_ID: u16 = 0x5601;

/// Longest value of one field (the variable-length encoding's limit); longer text is cut.
pub const MAX_FIELD: usize = 65_535;

/// Sluice element ids (enterprise [`SLUICE_PEN`]). Their ECS names are in the sink's field
/// table.
#[allow(missing_docs)]
pub mod elem {
    pub const ACTION: u16 = 1;
    pub const ORIGINAL: u16 = 2;
    pub const REASON: u16 = 3;
    pub const CODE: u16 = 4;
    pub const SEVERITY: u16 = 5;
    pub const DATASET: u16 = 6;
    pub const RULE_NAME: u16 = 10;
    pub const RULE_ID: u16 = 11;
    pub const OBSERVER_VENDOR: u16 = 20;
    pub const OBSERVER_PRODUCT: u16 = 21;
    pub const OBSERVER_TYPE: u16 = 22;
    pub const OBSERVER_HOSTNAME: u16 = 23;
    pub const OBSERVER_SERIAL: u16 = 24;
    pub const INGRESS_INTERFACE: u16 = 25;
    pub const EGRESS_INTERFACE: u16 = 26;
    pub const INGRESS_ZONE: u16 = 27;
    pub const EGRESS_ZONE: u16 = 28;
    pub const SYSLOG_PRIORITY: u16 = 30;
    pub const SYSLOG_FACILITY: u16 = 31;
    pub const SYSLOG_SEVERITY: u16 = 32;
    pub const SYSLOG_HOSTNAME: u16 = 33;
    pub const SYSLOG_APPNAME: u16 = 34;
    pub const SYSLOG_PROCID: u16 = 35;
    pub const SYSLOG_MSGID: u16 = 36;
    pub const SYSLOG_VERSION: u16 = 37;
    pub const APPLICATION: u16 = 40;
    pub const SOURCE_USER: u16 = 41;
    pub const DESTINATION_USER: u16 = 42;
    pub const PARSE_FAILURE: u16 = 50;
    pub const ASA_CONNECTION_ID: u16 = 60;
    pub const PANOS_TYPE: u16 = 70;
    pub const PANOS_SUBTYPE: u16 = 71;
    pub const PANOS_SESSION_ID: u16 = 72;
    pub const PANOS_THREAT_NAME: u16 = 73;
    pub const PANOS_THREAT_ID: u16 = 74;
    pub const PANOS_CATEGORY: u16 = 75;
    pub const PANOS_SEVERITY: u16 = 76;
    pub const PANOS_DIRECTION: u16 = 77;
    pub const PANOS_MISC: u16 = 78;
    pub const VPC_VERSION: u16 = 90;
    pub const VPC_ACCOUNT_ID: u16 = 91;
    pub const VPC_INTERFACE_ID: u16 = 92;
    pub const VPC_INSTANCE_ID: u16 = 93;
    pub const VPC_VPC_ID: u16 = 94;
    pub const VPC_SUBNET_ID: u16 = 95;
    pub const VPC_TYPE: u16 = 96;
    pub const VPC_PKT_SRCADDR: u16 = 97;
    pub const VPC_PKT_DSTADDR: u16 = 98;
    pub const VPC_REGION: u16 = 99;
    pub const VPC_AZ_ID: u16 = 100;
    pub const VPC_SUBLOCATION_TYPE: u16 = 101;
    pub const VPC_SUBLOCATION_ID: u16 = 102;
    pub const VPC_PKT_SRC_SERVICE: u16 = 103;
    pub const VPC_PKT_DST_SERVICE: u16 = 104;
    pub const VPC_FLOW_DIRECTION: u16 = 105;
    pub const VPC_TRAFFIC_PATH: u16 = 106;
    pub const VPC_ACTION: u16 = 107;
    pub const VPC_LOG_STATUS: u16 = 108;
    /// One more than the largest id (the size of [`super::Event`]'s value table).
    pub const COUNT: usize = 109;
}

// The template's event index has 128 slots for Sluice elements.
const _: () = assert!(elem::COUNT <= 128);

/// How a Sluice element's bytes read: text (UTF-8), an unsigned big-endian number, or an
/// address (4 or 16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// Unsigned integer, big-endian, 1 to 8 bytes.
    Uint,
    /// IPv4 (4 bytes) or IPv6 (16 bytes) address.
    Ip,
}

macro_rules! d {
    ($id:ident, $name:literal, $ty:ident) => {
        IeDef {
            pen: SLUICE_PEN,
            id: elem::$id,
            name: $name,
            ty: IeType::$ty,
        }
    };
}

/// Every Sluice element, by id. Addresses are typed `ipv6Address` but hold 4 bytes for IPv4
/// ([`kind`] says how to read them).
pub static ELEMENTS: &[IeDef] = &[
    d!(ACTION, "event_action", String),
    d!(ORIGINAL, "event_original", String),
    d!(REASON, "event_reason", String),
    d!(CODE, "event_code", String),
    d!(SEVERITY, "event_severity", Unsigned8),
    d!(DATASET, "event_dataset", String),
    d!(RULE_NAME, "rule_name", String),
    d!(RULE_ID, "rule_id", String),
    d!(OBSERVER_VENDOR, "observer_vendor", String),
    d!(OBSERVER_PRODUCT, "observer_product", String),
    d!(OBSERVER_TYPE, "observer_type", String),
    d!(OBSERVER_HOSTNAME, "observer_hostname", String),
    d!(OBSERVER_SERIAL, "observer_serial_number", String),
    d!(INGRESS_INTERFACE, "observer_ingress_interface_name", String),
    d!(EGRESS_INTERFACE, "observer_egress_interface_name", String),
    d!(INGRESS_ZONE, "observer_ingress_zone", String),
    d!(EGRESS_ZONE, "observer_egress_zone", String),
    d!(SYSLOG_PRIORITY, "syslog_priority", Unsigned16),
    d!(SYSLOG_FACILITY, "syslog_facility", Unsigned8),
    d!(SYSLOG_SEVERITY, "syslog_severity", Unsigned8),
    d!(SYSLOG_HOSTNAME, "syslog_hostname", String),
    d!(SYSLOG_APPNAME, "syslog_appname", String),
    d!(SYSLOG_PROCID, "syslog_procid", String),
    d!(SYSLOG_MSGID, "syslog_msgid", String),
    d!(SYSLOG_VERSION, "syslog_version", Unsigned8),
    d!(APPLICATION, "network_application", String),
    d!(SOURCE_USER, "source_user_name", String),
    d!(DESTINATION_USER, "destination_user_name", String),
    d!(PARSE_FAILURE, "parse_failure", String),
    d!(ASA_CONNECTION_ID, "asa_connection_id", Unsigned64),
    d!(PANOS_TYPE, "panos_type", String),
    d!(PANOS_SUBTYPE, "panos_subtype", String),
    d!(PANOS_SESSION_ID, "panos_session_id", Unsigned64),
    d!(PANOS_THREAT_NAME, "panos_threat_name", String),
    d!(PANOS_THREAT_ID, "panos_threat_id", Unsigned64),
    d!(PANOS_CATEGORY, "panos_category", String),
    d!(PANOS_SEVERITY, "panos_severity", String),
    d!(PANOS_DIRECTION, "panos_direction", String),
    d!(PANOS_MISC, "panos_misc", String),
    d!(VPC_VERSION, "vpc_version", Unsigned8),
    d!(VPC_ACCOUNT_ID, "vpc_account_id", String),
    d!(VPC_INTERFACE_ID, "vpc_interface_id", String),
    d!(VPC_INSTANCE_ID, "vpc_instance_id", String),
    d!(VPC_VPC_ID, "vpc_vpc_id", String),
    d!(VPC_SUBNET_ID, "vpc_subnet_id", String),
    d!(VPC_TYPE, "vpc_type", String),
    d!(VPC_PKT_SRCADDR, "vpc_pkt_srcaddr", Ipv6Address),
    d!(VPC_PKT_DSTADDR, "vpc_pkt_dstaddr", Ipv6Address),
    d!(VPC_REGION, "vpc_region", String),
    d!(VPC_AZ_ID, "vpc_az_id", String),
    d!(VPC_SUBLOCATION_TYPE, "vpc_sublocation_type", String),
    d!(VPC_SUBLOCATION_ID, "vpc_sublocation_id", String),
    d!(VPC_PKT_SRC_SERVICE, "vpc_pkt_src_aws_service", String),
    d!(VPC_PKT_DST_SERVICE, "vpc_pkt_dst_aws_service", String),
    d!(VPC_FLOW_DIRECTION, "vpc_flow_direction", String),
    d!(VPC_TRAFFIC_PATH, "vpc_traffic_path", Unsigned8),
    d!(VPC_ACTION, "vpc_action", String),
    d!(VPC_LOG_STATUS, "vpc_log_status", String),
];

/// A Sluice element's definition.
pub fn lookup(id: u16) -> Option<&'static IeDef> {
    ELEMENTS
        .binary_search_by_key(&id, |d| d.id)
        .ok()
        .map(|i| &ELEMENTS[i])
}

/// How a Sluice element's bytes read.
pub fn kind(id: u16) -> Option<Kind> {
    lookup(id).map(|d| match d.ty {
        IeType::String => Kind::Text,
        IeType::Ipv6Address => Kind::Ip,
        _ => Kind::Uint,
    })
}

/// One element value of an [`Event`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Val<'a> {
    /// Not set.
    #[default]
    None,
    /// Text.
    Text(&'a str),
    /// Unsigned number.
    Uint(u64),
    /// Address.
    Ip(IpAddr),
}

/// Where a field of the layout takes its value from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Of {
    SrcV4,
    SrcV6,
    DstV4,
    DstV6,
    SrcPort,
    DstPort,
    Proto,
    TcpFlags,
    Bytes,
    Packets,
    ResponderBytes,
    ResponderPackets,
    StartMs,
    EndMs,
    IcmpTypeV4,
    IcmpCodeV4,
    IcmpTypeV6,
    IcmpCodeV6,
    SrcMac,
    DstMac,
    NatSrcV4,
    NatDstV4,
    NatSrcV6,
    NatDstV6,
    NatSrcPort,
    NatDstPort,
    FlowDirection,
}

/// The layout: (enterprise, element id, value source), in record order. IANA elements first
/// (the slots the flow view reads), then every Sluice element.
const IANA_LAYOUT: &[(u16, Of)] = &[
    (8, Of::SrcV4),
    (27, Of::SrcV6),
    (12, Of::DstV4),
    (28, Of::DstV6),
    (7, Of::SrcPort),
    (11, Of::DstPort),
    (4, Of::Proto),
    (6, Of::TcpFlags),
    (1, Of::Bytes),
    (2, Of::Packets),
    (232, Of::ResponderBytes),
    (299, Of::ResponderPackets),
    (152, Of::StartMs),
    (153, Of::EndMs),
    (176, Of::IcmpTypeV4),
    (177, Of::IcmpCodeV4),
    (178, Of::IcmpTypeV6),
    (179, Of::IcmpCodeV6),
    (56, Of::SrcMac),
    (80, Of::DstMac),
    (225, Of::NatSrcV4),
    (226, Of::NatDstV4),
    (281, Of::NatSrcV6),
    (282, Of::NatDstV6),
    (227, Of::NatSrcPort),
    (228, Of::NatDstPort),
    (61, Of::FlowDirection),
];

/// The field list of the layout (enterprise, id) in record order.
pub fn layout() -> impl Iterator<Item = (u32, u16)> {
    IANA_LAYOUT
        .iter()
        .map(|&(id, _)| (0u32, id))
        .chain(ELEMENTS.iter().map(|d| (SLUICE_PEN, d.id)))
}

/// The template of a dialect's events ([`Dialect::Syslog`] or [`Dialect::VpcFlow`]), compiled
/// on first use and shared by the whole process.
pub fn template(dialect: Dialect) -> &'static Template {
    static SYSLOG: OnceLock<Template> = OnceLock::new();
    static VPC: OnceLock<Template> = OnceLock::new();
    let (cell, id) = match dialect {
        Dialect::VpcFlow => (&VPC, VPC_TEMPLATE_ID),
        _ => (&SYSLOG, SYSLOG_TEMPLATE_ID),
    };
    let dialect = if dialect == Dialect::VpcFlow {
        Dialect::VpcFlow
    } else {
        Dialect::Syslog
    };
    cell.get_or_init(|| {
        let specs: Vec<FieldSpec> = layout()
            .map(|(pen, id)| FieldSpec {
                id,
                pen,
                len: VARLEN,
            })
            .collect();
        match Template::compile(id, dialect, false, 0, &specs) {
            Ok(t) => t,
            Err(e) => unreachable!("static event layout compiles: {e}"),
        }
    })
}

/// One parsed log line or record. Text borrows from the line. `Event::default()` is empty;
/// [`Event::clear`] empties one for reuse.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    /// When it happened (the log's own time), ns since the Unix epoch; `None` uses the receive
    /// time.
    pub time_ns: Option<i64>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub proto: Option<u8>,
    pub tcp_flags: Option<u16>,
    /// Bytes: from the initiator when `responder_bytes` is set (a biflow, RFC 5103 terms),
    /// else of the whole connection or packet.
    pub bytes: Option<u64>,
    /// Packets, likewise.
    pub packets: Option<u64>,
    /// Bytes and packets from the responder.
    pub responder_bytes: Option<u64>,
    pub responder_packets: Option<u64>,
    /// Session start and end, ms since the Unix epoch.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// ICMP type and code (of the address family of `src`).
    pub icmp: Option<(u8, u8)>,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    /// Mapped (translated) addresses and ports.
    pub nat_src: Option<IpAddr>,
    pub nat_dst: Option<IpAddr>,
    pub nat_src_port: Option<u16>,
    pub nat_dst_port: Option<u16>,
    /// flowDirection (IE 61): 0 ingress, 1 egress.
    pub flow_direction: Option<u8>,
    /// Sluice elements by id.
    pub elems: [Val<'a>; elem::COUNT],
}

impl Default for Event<'_> {
    fn default() -> Self {
        Event {
            time_ns: None,
            src: None,
            dst: None,
            src_port: None,
            dst_port: None,
            proto: None,
            tcp_flags: None,
            bytes: None,
            packets: None,
            responder_bytes: None,
            responder_packets: None,
            start_ms: None,
            end_ms: None,
            icmp: None,
            src_mac: None,
            dst_mac: None,
            nat_src: None,
            nat_dst: None,
            nat_src_port: None,
            nat_dst_port: None,
            flow_direction: None,
            elems: [Val::None; elem::COUNT],
        }
    }
}

impl<'a> Event<'a> {
    /// Sets a text element; empty text leaves it unset.
    pub fn text(&mut self, id: u16, v: &'a str) {
        if let Some(slot) = self.elems.get_mut(usize::from(id)) {
            *slot = if v.is_empty() {
                Val::None
            } else {
                Val::Text(v)
            };
        }
    }

    /// Sets a text element if `v` is `Some` and not empty.
    pub fn text_opt(&mut self, id: u16, v: Option<&'a str>) {
        if let Some(v) = v {
            self.text(id, v);
        }
    }

    /// Sets a numeric element.
    pub fn uint(&mut self, id: u16, v: u64) {
        if let Some(slot) = self.elems.get_mut(usize::from(id)) {
            *slot = Val::Uint(v);
        }
    }

    /// Sets an address element.
    pub fn ip(&mut self, id: u16, v: IpAddr) {
        if let Some(slot) = self.elems.get_mut(usize::from(id)) {
            *slot = Val::Ip(v);
        }
    }

    /// A Sluice element's value.
    pub fn get(&self, id: u16) -> Val<'a> {
        self.elems.get(usize::from(id)).copied().unwrap_or_default()
    }

    /// The text of a Sluice element, if it is text.
    pub fn get_text(&self, id: u16) -> Option<&'a str> {
        match self.get(id) {
            Val::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The number of a Sluice element, if it is a number.
    pub fn get_uint(&self, id: u16) -> Option<u64> {
        match self.get(id) {
            Val::Uint(v) => Some(v),
            _ => None,
        }
    }

    /// Marks the event as not (fully) parsed: `reason` becomes the parse-failure tag.
    pub fn fail(&mut self, reason: &'static str) {
        self.text(elem::PARSE_FAILURE, reason);
    }

    /// The parse-failure reason, if any.
    pub fn failure(&self) -> Option<&'a str> {
        self.get_text(elem::PARSE_FAILURE)
    }

    /// Empties the event for reuse.
    pub fn clear(&mut self) {
        *self = Event::default();
    }
}

fn v4(a: Option<IpAddr>) -> Option<[u8; 4]> {
    match a {
        Some(IpAddr::V4(v)) => Some(v.octets()),
        _ => None,
    }
}

fn v6(a: Option<IpAddr>) -> Option<[u8; 16]> {
    match a {
        Some(IpAddr::V6(v)) => Some(v.octets()),
        _ => None,
    }
}

/// Appends one variable-length field (RFC 7011 §7): a length byte, or 255 and a two-byte
/// length; values longer than [`MAX_FIELD`] are cut (text at a character boundary).
fn put(out: &mut Vec<u8>, spans: &mut Vec<(u32, u32)>, v: &[u8]) {
    let v = &v[..v.len().min(MAX_FIELD)];
    if v.len() < 255 {
        out.push(v.len() as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    }
    spans.push((out.len() as u32, v.len() as u32));
    out.extend_from_slice(v);
}

/// Text cut to at most [`MAX_FIELD`] bytes at a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_FIELD {
        return s;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Builds records from events into buffers it reuses.
#[derive(Debug, Default)]
pub struct EventWriter {
    data: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl EventWriter {
    /// Lays `e` out and calls `f` with the record, whose header is `header` (its export time
    /// should be the event's time; see the syslog and VPC decoders).
    pub fn emit<F: FnMut(&Record<'_>)>(
        &mut self,
        dialect: Dialect,
        header: &ExportHeader,
        e: &Event<'_>,
        f: &mut F,
    ) {
        let t = template(dialect);
        self.data.clear();
        self.spans.clear();
        let (d, s) = (&mut self.data, &mut self.spans);
        for &(_, src) in IANA_LAYOUT {
            let u16b = |v: Option<u16>| v.map(u16::to_be_bytes);
            match src {
                Of::SrcV4 => put(d, s, v4(e.src).as_ref().map_or(&[][..], |a| &a[..])),
                Of::SrcV6 => put(d, s, v6(e.src).as_ref().map_or(&[][..], |a| &a[..])),
                Of::DstV4 => put(d, s, v4(e.dst).as_ref().map_or(&[][..], |a| &a[..])),
                Of::DstV6 => put(d, s, v6(e.dst).as_ref().map_or(&[][..], |a| &a[..])),
                Of::NatSrcV4 => put(d, s, v4(e.nat_src).as_ref().map_or(&[][..], |a| &a[..])),
                Of::NatDstV4 => put(d, s, v4(e.nat_dst).as_ref().map_or(&[][..], |a| &a[..])),
                Of::NatSrcV6 => put(d, s, v6(e.nat_src).as_ref().map_or(&[][..], |a| &a[..])),
                Of::NatDstV6 => put(d, s, v6(e.nat_dst).as_ref().map_or(&[][..], |a| &a[..])),
                Of::SrcPort => put(d, s, u16b(e.src_port).as_ref().map_or(&[][..], |a| a)),
                Of::DstPort => put(d, s, u16b(e.dst_port).as_ref().map_or(&[][..], |a| a)),
                Of::NatSrcPort => put(d, s, u16b(e.nat_src_port).as_ref().map_or(&[][..], |a| a)),
                Of::NatDstPort => put(d, s, u16b(e.nat_dst_port).as_ref().map_or(&[][..], |a| a)),
                Of::TcpFlags => put(d, s, u16b(e.tcp_flags).as_ref().map_or(&[][..], |a| a)),
                Of::Proto => put(d, s, e.proto.as_slice()),
                Of::FlowDirection => put(d, s, e.flow_direction.as_slice()),
                Of::Bytes => put_u64(d, s, e.bytes),
                Of::Packets => put_u64(d, s, e.packets),
                Of::ResponderBytes => put_u64(d, s, e.responder_bytes),
                Of::ResponderPackets => put_u64(d, s, e.responder_packets),
                Of::StartMs => put_u64(d, s, e.start_ms.and_then(|v| u64::try_from(v).ok())),
                Of::EndMs => put_u64(d, s, e.end_ms.and_then(|v| u64::try_from(v).ok())),
                Of::IcmpTypeV4 | Of::IcmpCodeV4 | Of::IcmpTypeV6 | Of::IcmpCodeV6 => {
                    let is_v6 = matches!(e.src.or(e.dst), Some(IpAddr::V6(_)));
                    let want_v6 = matches!(src, Of::IcmpTypeV6 | Of::IcmpCodeV6);
                    let v = e.icmp.filter(|_| is_v6 == want_v6).map(|(t, c)| {
                        if matches!(src, Of::IcmpTypeV4 | Of::IcmpTypeV6) {
                            t
                        } else {
                            c
                        }
                    });
                    put(d, s, v.as_slice());
                }
                Of::SrcMac => put(d, s, e.src_mac.as_ref().map_or(&[][..], |m| &m[..])),
                Of::DstMac => put(d, s, e.dst_mac.as_ref().map_or(&[][..], |m| &m[..])),
            }
        }
        for def in ELEMENTS {
            match e.get(def.id) {
                Val::None => put(d, s, &[]),
                Val::Text(t) => put(d, s, clip(t).as_bytes()),
                Val::Uint(v) => put(d, s, &v.to_be_bytes()[minimal(v)..]),
                Val::Ip(IpAddr::V4(a)) => put(d, s, &a.octets()),
                Val::Ip(IpAddr::V6(a)) => put(d, s, &a.octets()),
            }
        }
        f(&Record {
            header,
            template: t,
            data: &self.data,
            spans: &self.spans,
            system_init_ms: None,
        });
    }
}

/// Index of the first byte of `v`'s shortest big-endian form (at least one byte).
fn minimal(v: u64) -> usize {
    (v.leading_zeros() as usize / 8).min(7)
}

fn put_u64(out: &mut Vec<u8>, spans: &mut Vec<(u32, u32)>, v: Option<u64>) {
    match v {
        Some(v) => put(out, spans, &v.to_be_bytes()[minimal(v)..]),
        None => put(out, spans, &[]),
    }
}

/// The tcpControlBits bit of a flag as firewalls write it (`SYN`, `ACK`, ...); 0 for any
/// other word.
pub fn tcp_flag_bit(word: &str) -> u16 {
    match word {
        "FIN" => 0x01,
        "SYN" => 0x02,
        "RST" => 0x04,
        "PSH" => 0x08,
        "ACK" => 0x10,
        "URG" => 0x20,
        "ECE" => 0x40,
        "CWR" => 0x80,
        _ => 0,
    }
}

/// The export header of a log event: version 0, `source` as exporter, the event's `time_ns`
/// as export time, `sequence` numbering the events of a decoder (part of document ids).
pub fn event_header(
    source: SocketAddr,
    time_ns: i64,
    sequence: u32,
    receive_ns: i64,
) -> ExportHeader {
    ExportHeader {
        version: 0,
        exporter: source,
        source_id: 0,
        export_time_ns: time_ns,
        sys_uptime_ms: None,
        sequence,
        receive_time_ns: receive_ns,
        sampling_interval: 0,
        tag: 0,
    }
}

/// IANA protocol number of a protocol name as firewalls write it (`TCP`, `udp`, `icmp`,
/// `ICMPv6`, `ipv6-icmp`, `esp`, `gre`, `sctp`, ...), or a decimal number.
pub fn proto_number(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    let l = name.as_bytes();
    let eq = |s: &str| l.eq_ignore_ascii_case(s.as_bytes());
    Some(if eq("tcp") {
        6
    } else if eq("udp") {
        17
    } else if eq("icmp") {
        1
    } else if eq("icmpv6") || eq("ipv6-icmp") || eq("icmp6") {
        58
    } else if eq("igmp") {
        2
    } else if eq("gre") {
        47
    } else if eq("esp") {
        50
    } else if eq("ah") {
        51
    } else if eq("sctp") {
        132
    } else if eq("udplite") {
        136
    } else if eq("ospf") || eq("ospfigp") {
        89
    } else if eq("pim") {
        103
    } else if eq("vrrp") {
        112
    } else if eq("ipv6") || eq("ipv6-in-ipv4") {
        41
    } else if eq("ipip") || eq("ipinip") || eq("ipv4") {
        4
    } else if eq("eigrp") {
        88
    } else if eq("l2tp") {
        115
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_table_is_sorted_and_fits() {
        assert!(ELEMENTS.windows(2).all(|w| w[0].id < w[1].id));
        assert!(ELEMENTS.iter().all(|d| usize::from(d.id) < elem::COUNT));
    }

    #[test]
    fn an_event_round_trips_through_its_record() {
        let mut e = Event {
            src: Some("2001:db8::1".parse().expect("ip")),
            dst: Some("2001:db8::2".parse().expect("ip")),
            src_port: Some(40000),
            dst_port: Some(443),
            proto: Some(6),
            bytes: Some(300),
            packets: Some(1),
            icmp: Some((128, 0)),
            ..Event::default()
        };
        let long = "x".repeat(300);
        e.text(elem::ACTION, "deny");
        e.text(elem::ORIGINAL, &long);
        e.uint(elem::ASA_CONNECTION_ID, 0x1_0000_0001);
        let header = ExportHeader {
            version: 0,
            exporter: SocketAddr::from(([127, 0, 0, 1], 514)),
            source_id: 0,
            export_time_ns: 1_000_000_000,
            sys_uptime_ms: None,
            sequence: 0,
            receive_time_ns: 2_000_000_000,
            sampling_interval: 0,
            tag: 0,
        };
        let mut w = EventWriter::default();
        let mut seen = 0;
        w.emit(Dialect::Syslog, &header, &e, &mut |r| {
            seen += 1;
            let f = r.flow();
            assert_eq!(f.src_ip, e.src);
            assert_eq!(f.dst_ip, e.dst);
            assert_eq!(f.src_port, Some(40000));
            assert_eq!(f.proto, Some(6));
            assert_eq!(f.bytes, Some(300));
            assert_eq!(f.packets, Some(1));
            // Spans as a reader recomputes them agree with the writer's.
            let mut spans = Vec::new();
            assert_eq!(
                crate::record::spans_of(r.template, r.data, &mut spans),
                Some(r.data.len())
            );
            assert_eq!(spans, r.spans);
            let t = r.template;
            let at = |id| t.event_field(SLUICE_PEN, id).map(|i| r.field(i));
            assert_eq!(at(elem::ACTION), Some(&b"deny"[..]));
            assert_eq!(at(elem::ORIGINAL).map(|b| b.len()), Some(300));
            assert_eq!(at(elem::RULE_NAME), Some(&b""[..]));
            assert_eq!(
                at(elem::ASA_CONNECTION_ID).map(crate::record::be_uint),
                Some(0x1_0000_0001)
            );
            // ICMP type goes to the IPv6 element, not the IPv4 one.
            let v6_type = t.event_field(0, 178).map(|i| r.field(i));
            let v4_type = t.event_field(0, 176).map(|i| r.field(i));
            assert_eq!(v6_type, Some(&[128u8][..]));
            assert_eq!(v4_type, Some(&[][..]));
        });
        assert_eq!(seen, 1);
        // The definition survives the store's round trip with its index.
        let mut b = Vec::new();
        template(Dialect::Syslog).write_definition(&mut b);
        let (back, _) = Template::read_definition(&b).expect("reads");
        assert_eq!(&back, template(Dialect::Syslog));
        assert_eq!(back.event_field(SLUICE_PEN, elem::ACTION), Some(27));
    }

    #[test]
    fn protocol_names() {
        assert_eq!(proto_number("TCP"), Some(6));
        assert_eq!(proto_number("icmp"), Some(1));
        assert_eq!(proto_number("ICMPv6"), Some(58));
        assert_eq!(proto_number("47"), Some(47));
        assert_eq!(proto_number("bogus"), None);
    }
}
