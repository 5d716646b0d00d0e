//! ECS document encoding: JSON (one document per line) and CSV, driven by the field table in
//! [`crate::schema`]. Encoding appends to a caller-owned buffer and allocates nothing per
//! record once the buffer has grown.

use std::io::Write as _;
use std::net::IpAddr;

use sluice_decode::event::{self, elem, Kind, SLUICE_PEN};
use sluice_decode::ie::IeType;
use sluice_decode::record::be_uint;
use sluice_decode::template::{Dialect, NO_FIELD};
use sluice_decode::{Field, Flow, Record};
use sluice_enrich::Enriched;

use crate::schema::{EcsField, Getter, ECS_FIELDS};
use crate::timefmt::write_rfc3339;

/// IE 210 paddingOctets: never part of a document.
const PADDING_IE: u16 = 210;

/// Options that change what documents contain.
#[derive(Clone, Copy, Debug, Default)]
pub struct EncodeOptions {
    /// Add `sluice.frame` (the tag the decoder carried: the pcap frame number).
    pub annotate: bool,
}

/// A field value, borrowed from the record, the flow or the enrichment.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// Unsigned number.
    U64(u64),
    /// Signed number.
    I64(i64),
    /// Static string.
    Str(&'static str),
    /// Static list of strings.
    List(&'static [&'static str]),
    /// Address.
    Ip(IpAddr),
    /// Instant, ns since the Unix epoch.
    Time(i64),
    /// Address and port.
    Socket(std::net::SocketAddr),
    /// IP protocol number, written as a string (ECS keyword).
    ProtoNumber(u8),
    /// Borrowed text (names from enrichment).
    Text(&'a str),
    /// A number written as a keyword string (interface ids).
    NumText(u64),
    /// `geo_point`: latitude, longitude.
    Geo(f64, f64),
    /// MAC address, written as ECS recommends (`00-00-5E-00-53-01`).
    Mac([u8; 6]),
}

/// Lower-case IANA keyword of an IP protocol number (the common ones; the rest are written
/// as their number).
pub fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        0 => "hopopt",
        1 => "icmp",
        2 => "igmp",
        4 => "ipv4",
        6 => "tcp",
        8 => "egp",
        9 => "igp",
        17 => "udp",
        27 => "rdp",
        41 => "ipv6",
        43 => "ipv6-route",
        44 => "ipv6-frag",
        46 => "rsvp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        59 => "ipv6-nonxt",
        60 => "ipv6-opts",
        88 => "eigrp",
        89 => "ospf",
        94 => "ipip",
        103 => "pim",
        112 => "vrrp",
        115 => "l2tp",
        132 => "sctp",
        136 => "udplite",
        137 => "mpls-in-ip",
        _ => return None,
    })
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

fn is_counters(r: &Record<'_>) -> bool {
    sluice_decode::sflow::counter_layout::is_counter_template(r.template)
}

/// The bytes of an element of an event record (Sluice enterprise or IANA), if the template
/// has it and it is not empty.
fn event_bytes<'a>(r: &Record<'a>, pen: u32, id: u16) -> Option<&'a [u8]> {
    let i = r.template.event_field(pen, id)?;
    let b = r.field(i);
    (!b.is_empty()).then_some(b)
}

/// A Sluice element of an event record as a value.
fn elem_value<'a>(r: &Record<'a>, id: u16) -> Option<Value<'a>> {
    let b = event_bytes(r, SLUICE_PEN, id)?;
    Some(match event::kind(id)? {
        Kind::Text => Value::Text(std::str::from_utf8(b).ok()?),
        Kind::Uint if b.len() <= 8 => Value::U64(be_uint(b)),
        Kind::Ip => Value::Ip(ip_of(b)?),
        Kind::Uint => return None,
    })
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::from(a));
    }
    <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
}

/// `event.type` of a log event by its action.
fn event_type(r: &Record<'_>) -> &'static [&'static str] {
    match event_bytes(r, SLUICE_PEN, elem::ACTION) {
        Some(b"allow") => &["connection", "allowed"],
        Some(a)
            if [&b"deny"[..], b"drop", b"reject"].contains(&a)
                || a.starts_with(b"reset")
                || a.starts_with(b"block")
                || a.starts_with(b"drop") =>
        {
            &["connection", "denied"]
        }
        _ => &["connection"],
    }
}

/// The value of an ECS field for a record, if it has one. With enrichment, counters are the
/// sampling-scaled estimates and the enrichment-only fields are filled.
pub fn value_of<'a>(
    g: Getter,
    r: &Record<'a>,
    f: &Flow,
    e: Option<&'a Enriched>,
) -> Option<Value<'a>> {
    let h = r.header;
    let is_event = r.template.dialect.is_event();
    let biflow = f.rev_bytes.is_some() || f.rev_packets.is_some();
    // Scaled counters when enriched, raw ones otherwise.
    let (bytes, packets, rev_bytes, rev_packets) = match e {
        Some(e) => (e.bytes, e.packets, e.rev_bytes, e.rev_packets),
        None => (f.bytes, f.packets, f.rev_bytes, f.rev_packets),
    };
    let text = |t: Option<&'a str>| t.map(Value::Text);
    let arc = |t: &'a Option<std::sync::Arc<str>>| t.as_deref().map(Value::Text);
    Some(match g {
        Getter::Timestamp => Value::Time(sluice_decode::time::export_ns(r)),
        // sFlow counter samples describe an interface, not traffic: ECS metric events.
        Getter::EventKind if is_counters(r) => Value::Str("metric"),
        Getter::EventKind => Value::Str("event"),
        Getter::EventCategory => Value::List(&["network"]),
        Getter::EventType if is_counters(r) => Value::List(&["info"]),
        Getter::EventType if is_event => Value::List(event_type(r)),
        Getter::EventType => Value::List(&["connection"]),
        Getter::EventAction if is_counters(r) => Value::Str("sflow_counters"),
        Getter::EventAction if is_event => elem_value(r, elem::ACTION)?,
        Getter::EventAction => Value::Str(if r.template.options {
            "netflow_options"
        } else {
            "netflow_flow"
        }),
        Getter::EventStart => Value::Time(f.start_ns),
        Getter::EventEnd => Value::Time(f.end_ns),
        Getter::EventDuration => Value::I64(f.end_ns.saturating_sub(f.start_ns).max(0)),
        Getter::SourceIp => Value::Ip(f.src_ip?),
        Getter::SourcePort => Value::U64(u64::from(f.src_port?)),
        Getter::SourceBytes if biflow => Value::U64(bytes?),
        Getter::SourcePackets if biflow => Value::U64(packets?),
        Getter::DestinationIp => Value::Ip(f.dst_ip?),
        Getter::DestinationPort => Value::U64(u64::from(f.dst_port?)),
        Getter::DestinationBytes => Value::U64(rev_bytes?),
        Getter::DestinationPackets => Value::U64(rev_packets?),
        Getter::SourceBytes | Getter::SourcePackets => return None,
        Getter::NetworkType => Value::Str(match f.src_ip.or(f.dst_ip)? {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        }),
        Getter::NetworkIanaNumber => Value::ProtoNumber(f.proto?),
        Getter::NetworkTransport => Value::Str(proto_name(f.proto?)?),
        Getter::NetworkBytes => Value::U64(sum(bytes, rev_bytes)?),
        Getter::NetworkPackets => Value::U64(sum(packets, rev_packets)?),
        Getter::SourceLocality => Value::Str(e?.source.locality?.as_str()),
        Getter::DestinationLocality => Value::Str(e?.destination.locality?.as_str()),
        // Without enrichment a log event still shows the translations its line gave.
        Getter::SourceNatIp if is_event && e.is_none() => Value::Ip(ip_of(
            event_bytes(r, 0, 225).or_else(|| event_bytes(r, 0, 281))?,
        )?),
        Getter::DestinationNatIp if is_event && e.is_none() => Value::Ip(ip_of(
            event_bytes(r, 0, 226).or_else(|| event_bytes(r, 0, 282))?,
        )?),
        Getter::SourceNatPort if is_event && e.is_none() => {
            Value::U64(be_uint(event_bytes(r, 0, 227)?))
        }
        Getter::DestinationNatPort if is_event && e.is_none() => {
            Value::U64(be_uint(event_bytes(r, 0, 228)?))
        }
        Getter::SourceNatIp => Value::Ip(e?.source.nat_ip?),
        Getter::DestinationNatIp => Value::Ip(e?.destination.nat_ip?),
        Getter::SourceNatPort => Value::U64(u64::from(e?.source.nat_port?)),
        Getter::DestinationNatPort => Value::U64(u64::from(e?.destination.nat_port?)),
        Getter::SourceAsNumber => Value::U64(u64::from(e?.source.as_number?)),
        Getter::DestinationAsNumber => Value::U64(u64::from(e?.destination.as_number?)),
        Getter::SourceAsOrg => arc(&e?.source_as()?.organization)?,
        Getter::DestinationAsOrg => arc(&e?.destination_as()?.organization)?,
        Getter::SourceContinent => arc(&e?.source_geo()?.continent_name)?,
        Getter::DestinationContinent => arc(&e?.destination_geo()?.continent_name)?,
        Getter::SourceCountryIso => arc(&e?.source_geo()?.country_iso_code)?,
        Getter::DestinationCountryIso => arc(&e?.destination_geo()?.country_iso_code)?,
        Getter::SourceCountryName => arc(&e?.source_geo()?.country_name)?,
        Getter::DestinationCountryName => arc(&e?.destination_geo()?.country_name)?,
        Getter::SourceCity => arc(&e?.source_geo()?.city_name)?,
        Getter::DestinationCity => arc(&e?.destination_geo()?.city_name)?,
        Getter::SourceLocation => {
            let l = e?.source_geo()?.location?;
            Value::Geo(l.lat, l.lon)
        }
        Getter::DestinationLocation => {
            let l = e?.destination_geo()?.location?;
            Value::Geo(l.lat, l.lon)
        }
        Getter::NetworkProtocol => Value::Str(e?.service?),
        Getter::NetworkDirection => Value::Str(e?.direction?),
        Getter::NetworkCommunityId => text(e?.community_id.as_ref().map(|c| c.as_str()))?,
        Getter::NetworkTcpFlags => {
            let flags = e?.tcp_flags;
            if flags.is_empty() {
                return None;
            }
            Value::List(flags)
        }
        Getter::NetworkSamplingInterval => Value::U64(u64::from(e?.sampling_interval?)),
        Getter::ObserverName => text(e?.exporter_name.get())?,
        Getter::IngressIfId => Value::NumText(u64::from(e?.in_if.index?)),
        Getter::IngressIfName if is_event => elem_value(r, elem::INGRESS_INTERFACE)?,
        Getter::EgressIfName if is_event => elem_value(r, elem::EGRESS_INTERFACE)?,
        Getter::IngressIfName => text(e?.in_if.name.get())?,
        Getter::IngressIfAlias => text(e?.in_if.description.get())?,
        Getter::EgressIfId => Value::NumText(u64::from(e?.out_if.index?)),
        Getter::EgressIfName => text(e?.out_if.name.get())?,
        Getter::EgressIfAlias => text(e?.out_if.description.get())?,
        // Records read from files (VPC Flow Logs) have no exporter.
        Getter::ObserverIp | Getter::ExporterAddress
            if is_event && h.exporter.ip().is_unspecified() =>
        {
            return None
        }
        Getter::ObserverIp => Value::Ip(h.exporter.ip()),
        Getter::ExporterAddress => Value::Socket(h.exporter),
        // A log event has no export header beyond its sender.
        Getter::ExporterVersion
        | Getter::ExporterSourceId
        | Getter::ExporterUptime
        | Getter::ExporterTimestamp
        | Getter::NetflowType
            if is_event =>
        {
            return None
        }
        Getter::ExporterVersion => Value::U64(u64::from(h.version)),
        Getter::ExporterProtocol => Value::Str(match r.template.dialect {
            Dialect::V5 | Dialect::V9 => "netflow",
            Dialect::Ipfix => "ipfix",
            Dialect::Sflow => "sflow",
            Dialect::Syslog => "syslog",
            Dialect::VpcFlow => "vpcflow",
        }),
        Getter::ExporterSourceId => Value::U64(u64::from(h.source_id)),
        Getter::ExporterUptime => Value::U64(u64::from(h.sys_uptime_ms?)),
        Getter::ExporterTimestamp => {
            if h.export_time_ns <= 0 {
                return None;
            }
            Value::Time(h.export_time_ns)
        }
        Getter::NetflowType => Value::Str(if r.template.options {
            "netflow_options"
        } else {
            "netflow_flow"
        }),
        Getter::Elem(id) => elem_value(r, id)?,
        Getter::SourceMac => Value::Mac(event_bytes(r, 0, 56)?.try_into().ok()?),
        Getter::DestinationMac => Value::Mac(event_bytes(r, 0, 80)?.try_into().ok()?),
        Getter::IcmpType => Value::U64(be_uint(
            event_bytes(r, 0, 176).or_else(|| event_bytes(r, 0, 178))?,
        )),
        Getter::IcmpCode => Value::U64(be_uint(
            event_bytes(r, 0, 177).or_else(|| event_bytes(r, 0, 179))?,
        )),
        Getter::CloudProvider if r.template.dialect == Dialect::VpcFlow => Value::Str("aws"),
        Getter::CloudProvider => return None,
        Getter::Tags => {
            event_bytes(r, SLUICE_PEN, elem::PARSE_FAILURE)?;
            Value::List(&["sluice_parse_failure"])
        }
    })
}

/// Writes nested JSON objects from dotted paths, emitted in an order where each object's
/// members are contiguous.
struct Nest<'o> {
    out: &'o mut Vec<u8>,
    open: [&'static str; 4],
    depth: usize,
    first: bool,
}

impl<'o> Nest<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Nest {
            out,
            open: [""; 4],
            depth: 0,
            first: true,
        }
    }

    /// Positions the writer for `leaf` inside the objects `parents` and writes the key.
    fn key(&mut self, parents: &[&'static str], leaf: &str) {
        let common = self
            .open
            .iter()
            .take(self.depth)
            .zip(parents)
            .take_while(|(a, b)| a == b)
            .count();
        while self.depth > common {
            self.out.push(b'}');
            self.depth -= 1;
            self.first = false;
        }
        for p in &parents[common..] {
            if !self.first {
                self.out.push(b',');
            }
            write_name(self.out, p);
            self.out.extend_from_slice(b":{");
            if self.depth < self.open.len() {
                self.open[self.depth] = p;
            }
            self.depth += 1;
            self.first = true;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_name(self.out, leaf);
        self.out.push(b':');
    }

    fn finish(self) {
        for _ in 0..self.depth {
            self.out.push(b'}');
        }
        self.out.push(b'}');
    }
}

/// Splits a static dotted path into at most 3 parents and a leaf.
fn split(path: &'static str) -> ([&'static str; 3], usize, &'static str) {
    let mut parents = [""; 3];
    let mut n = 0;
    let mut rest = path;
    while let Some((head, tail)) = rest.split_once('.') {
        if n == parents.len() {
            break;
        }
        parents[n] = head;
        n += 1;
        rest = tail;
    }
    (parents, n, rest)
}

/// A key: field names are the table's and the element table's (letters, digits, `_`, `-`,
/// `@`), never needing escapes.
fn write_name(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// An address without the formatting machinery for IPv4 (the common case).
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            for (i, b) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(*b));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// JSON string with escaping.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Names and values almost never need escaping: copy them whole when they do not.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{:04x}", b);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn write_value_json(out: &mut Vec<u8>, v: &Value) {
    match *v {
        Value::U64(n) => write_u64(out, n),
        Value::I64(n) => write_i64(out, n),
        Value::Str(s) => write_str(out, s),
        Value::List(l) => {
            out.push(b'[');
            for (i, s) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, s);
            }
            out.push(b']');
        }
        Value::Ip(ip) => {
            out.push(b'"');
            write_ip(out, ip);
            out.push(b'"');
        }
        Value::Time(ns) => {
            out.push(b'"');
            write_rfc3339(out, ns);
            out.push(b'"');
        }
        Value::Socket(sa) => {
            let _ = write!(out, "\"{sa}\"");
        }
        Value::ProtoNumber(p) => {
            out.push(b'"');
            write_u64(out, u64::from(p));
            out.push(b'"');
        }
        Value::NumText(n) => {
            out.push(b'"');
            write_u64(out, n);
            out.push(b'"');
        }
        Value::Text(t) => write_str(out, t),
        Value::Mac(m) => {
            out.push(b'"');
            write_mac(out, &m);
            out.push(b'"');
        }
        Value::Geo(lat, lon) => {
            out.extend_from_slice(b"{\"lat\":");
            write_float(out, lat);
            out.extend_from_slice(b",\"lon\":");
            write_float(out, lon);
            out.push(b'}');
        }
    }
}

/// `00-00-5E-00-53-01`.
fn write_mac(out: &mut Vec<u8>, m: &[u8; 6]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, &x) in m.iter().enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        out.push(HEX[usize::from(x >> 4)]);
        out.push(HEX[usize::from(x & 15)]);
    }
}

fn write_hex(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &x in b {
        out.push(HEX[usize::from(x >> 4)]);
        out.push(HEX[usize::from(x & 15)]);
    }
    out.push(b'"');
}

fn sign_extend(v: u64, len: usize) -> i64 {
    if len == 0 || len >= 8 {
        return v as i64;
    }
    let shift = 64 - 8 * len as u32;
    ((v << shift) as i64) >> shift
}

/// Writes one element's value as JSON. Returns false (writing nothing) when the field has no
/// value to show (zero length, padding).
fn write_element(out: &mut Vec<u8>, field: &Field, b: &[u8]) {
    use IeType::*;
    let n = b.len();
    match field.ty {
        Unsigned8 | Unsigned16 | Unsigned32 | Unsigned64 if n <= 8 => write_u64(out, be_uint(b)),
        Signed8 | Signed16 | Signed32 | Signed64 if n <= 8 => {
            write_i64(out, sign_extend(be_uint(b), n))
        }
        Float32 if n == 4 => {
            let v = f32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            write_float(out, f64::from(v));
        }
        Float64 if n == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            write_float(out, f64::from_be_bytes(a));
        }
        Boolean if n == 1 && (b[0] == 1 || b[0] == 2) => {
            // RFC 7011 §6.1.5: 1 is true, 2 is false.
            out.extend_from_slice(if b[0] == 1 { b"true" } else { b"false" });
        }
        MacAddress if n == 6 => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(b'"');
            for (i, &x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(b':');
                }
                out.push(HEX[usize::from(x >> 4)]);
                out.push(HEX[usize::from(x & 15)]);
            }
            out.push(b'"');
        }
        String => {
            let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
            write_str(out, &std::string::String::from_utf8_lossy(&b[..end]));
        }
        Ipv4Address if n == 4 => {
            out.push(b'"');
            write_ip(
                out,
                IpAddr::V4(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            );
            out.push(b'"');
        }
        Ipv6Address if n == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            let _ = write!(out, "\"{}\"", std::net::Ipv6Addr::from(a));
        }
        DateTimeSeconds if n <= 8 => {
            time_json(out, (be_uint(b) as i64).saturating_mul(1_000_000_000))
        }
        DateTimeMilliseconds if n <= 8 => {
            time_json(out, (be_uint(b) as i64).saturating_mul(1_000_000))
        }
        DateTimeMicroseconds if n == 8 => {
            time_json(out, sluice_decode::time::ntp_to_ns(be_uint(b) & !0x7ff))
        }
        DateTimeNanoseconds if n == 8 => time_json(out, sluice_decode::time::ntp_to_ns(be_uint(b))),
        _ => write_hex(out, b),
    }
}

fn time_json(out: &mut Vec<u8>, ns: i64) {
    out.push(b'"');
    write_rfc3339(out, ns);
    out.push(b'"');
}

fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends one JSON document (no newline) for a record.
pub fn encode_json(out: &mut Vec<u8>, r: &Record<'_>, f: &Flow, opts: &EncodeOptions) {
    encode_json_enriched(out, r, f, None, opts);
}

/// Appends one JSON document (no newline) for a record and its enrichment.
pub fn encode_json_enriched(
    out: &mut Vec<u8>,
    r: &Record<'_>,
    f: &Flow,
    e: Option<&Enriched>,
    opts: &EncodeOptions,
) {
    let mut w = Nest::new(out);
    let is_event = r.template.dialect.is_event();
    for field in ECS_FIELDS {
        if field.event_only && !is_event {
            continue;
        }
        emit_ecs(&mut w, field, r, f, e);
    }
    let t = r.template;
    // A log event's elements all have ECS names (above); none goes under `netflow.`.
    let elements = if is_event { 0 } else { t.fields.len() };
    for (i, field) in t.fields.iter().enumerate().take(elements) {
        let b = r.field(i);
        if t.repeat[i] || (field.spec.id == PADDING_IE && field.spec.pen == 0) {
            continue;
        }
        let next = t.next_same[i];
        if next == NO_FIELD {
            if !b.is_empty() {
                w.key(&["netflow"], &field.name);
                write_element(w.out, field, b);
            }
            continue;
        }
        // A repeated element: one key, an array of the non-empty values in record order.
        let mut j = i;
        let mut opened = false;
        loop {
            let v = r.field(j);
            if !v.is_empty() {
                if opened {
                    w.out.push(b',');
                } else {
                    w.key(&["netflow"], &field.name);
                    w.out.push(b'[');
                    opened = true;
                }
                write_element(w.out, &t.fields[j], v);
            }
            match t.next_same.get(j) {
                Some(&n) if n != NO_FIELD => j = usize::from(n),
                _ => break,
            }
        }
        if opened {
            w.out.push(b']');
        }
    }
    if opts.annotate {
        w.key(&["sluice"], "frame");
        write_u64(w.out, r.header.tag);
    }
    w.finish();
}

fn emit_ecs(
    w: &mut Nest<'_>,
    field: &'static EcsField,
    r: &Record<'_>,
    f: &Flow,
    e: Option<&Enriched>,
) {
    if let Some(v) = value_of(field.get, r, f, e) {
        let (parents, n, leaf) = &split_paths()[field_index(field)];
        w.key(&parents[..*n], leaf);
        write_value_json(w.out, &v);
    }
}

/// The table's dotted paths, split once.
fn split_paths() -> &'static [([&'static str; 3], usize, &'static str)] {
    use std::sync::OnceLock;
    static P: OnceLock<Vec<([&'static str; 3], usize, &'static str)>> = OnceLock::new();
    P.get_or_init(|| ECS_FIELDS.iter().map(|f| split(f.path)).collect())
}

/// Position of a field of [`ECS_FIELDS`] (the reference points into the table).
fn field_index(f: &'static EcsField) -> usize {
    let base = ECS_FIELDS.as_ptr() as usize;
    (f as *const EcsField as usize - base) / std::mem::size_of::<EcsField>()
}

/// The CSV header line (no newline).
pub fn csv_header(out: &mut Vec<u8>) {
    for (i, field) in ECS_FIELDS.iter().filter(|f| f.csv).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(field.path.as_bytes());
    }
}

/// One CSV line (no newline): the `csv` columns of the field table. Values never contain
/// commas or quotes, so no quoting is needed.
pub fn encode_csv(out: &mut Vec<u8>, r: &Record<'_>, f: &Flow, e: Option<&Enriched>) {
    for (i, field) in ECS_FIELDS.iter().filter(|f| f.csv).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match value_of(field.get, r, f, e) {
            None => {}
            Some(Value::U64(n)) => write_u64(out, n),
            Some(Value::I64(n)) => write_i64(out, n),
            Some(Value::Str(s)) => out.extend_from_slice(s.as_bytes()),
            Some(Value::List(l)) => out.extend_from_slice(l.join("|").as_bytes()),
            Some(Value::Ip(ip)) => {
                let _ = write!(out, "{ip}");
            }
            Some(Value::Time(ns)) => write_rfc3339(out, ns),
            Some(Value::Socket(sa)) => {
                let _ = write!(out, "{sa}");
            }
            Some(Value::ProtoNumber(p)) => write_u64(out, u64::from(p)),
            Some(Value::NumText(n)) => write_u64(out, n),
            // Names could hold commas: CSV carries only the core columns, none of these.
            Some(Value::Text(t)) => out.extend_from_slice(t.replace(',', " ").as_bytes()),
            Some(Value::Geo(lat, lon)) => {
                let _ = write!(out, "{lat} {lon}");
            }
            Some(Value::Mac(m)) => write_mac(out, &m),
        }
    }
}
