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

use crate::schema::{Getter, ECS_FIELDS};
use crate::timefmt::{write_rfc3339, Rfc3339Cache};

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
#[inline]
pub fn value_of<'a>(
    g: Getter,
    r: &Record<'a>,
    f: &Flow,
    e: Option<&'a Enriched>,
) -> Option<Value<'a>> {
    value_of_inline(g, r, f, e)
}

/// [`value_of`], inlined where the getter is a constant (the document walk), so that only
/// its arm is compiled there.
#[inline(always)]
fn value_of_inline<'a>(
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

/// Builds the JSON between two fields of a document: closes the objects the next field is
/// not in, opens the ones it is in, writes the comma and its key. Documents are emitted in an
/// order where each object's members are contiguous (the field table's order, then the
/// elements under `netflow`, then `sluice`). Used once, to fill [`Plan`].
struct Nest {
    open: Vec<&'static str>,
    /// No member written yet in the innermost open object.
    first: bool,
}

impl Nest {
    /// Positions the writer for a new member of the object `parents` (commas, braces).
    fn member(&mut self, out: &mut Vec<u8>, parents: &[&'static str]) {
        let common = self
            .open
            .iter()
            .zip(parents)
            .take_while(|(a, b)| a == b)
            .count();
        while self.open.len() > common {
            out.push(b'}');
            self.open.pop();
            self.first = false;
        }
        for p in &parents[common..] {
            if !self.first {
                out.push(b',');
            }
            write_name(out, p);
            out.extend_from_slice(b":{");
            self.open.push(p);
            self.first = true;
        }
        if !self.first {
            out.push(b',');
        }
        self.first = false;
    }

    fn key(&mut self, out: &mut Vec<u8>, parents: &[&'static str], leaf: &str) {
        self.member(out, parents);
        write_name(out, leaf);
        out.push(b':');
    }

    fn finish(self, out: &mut Vec<u8>) {
        for _ in &self.open {
            out.push(b'}');
        }
        out.push(b'}');
    }
}

/// Splits a static dotted path into its parents and its leaf.
fn split(path: &'static str) -> (Vec<&'static str>, &'static str) {
    let mut parents: Vec<&'static str> = path.split('.').collect();
    let leaf = parents.pop().unwrap_or(path);
    (parents, leaf)
}

/// Precomputed JSON between any two places of a document, so that writing a field is one
/// copy of its prefix (closing braces, comma, opened objects, key) and its value, whatever
/// fields before it were absent. Places: the document's start, after each field of
/// [`ECS_FIELDS`], after an element under `netflow`, after `sluice.frame`. Targets: each field
/// of the table, an element (the prefix ends before its key, which comes from the template),
/// `sluice.frame`, the document's end. Built from the field table once per process.
struct Plan {
    offsets: Vec<u32>,
    bytes: Vec<u8>,
}

/// Number of ECS fields: places `1..=ECS` are "after field `place - 1`".
fn ecs_count() -> usize {
    ECS_FIELDS.len()
}

const START: usize = 0;

/// Place after ECS field `j`.
#[inline]
fn after(j: usize) -> usize {
    j + 1
}

/// Place after an element / target "an element".
#[inline]
fn element() -> usize {
    ecs_count() + 1
}

/// Place after `sluice.frame` / target `sluice.frame`.
#[inline]
fn frame() -> usize {
    ecs_count() + 2
}

/// Target "end of the document".
#[inline]
fn end() -> usize {
    ecs_count() + 3
}

impl Plan {
    fn get() -> &'static Plan {
        use std::sync::OnceLock;
        static P: OnceLock<Plan> = OnceLock::new();
        P.get_or_init(Plan::build)
    }

    fn build() -> Plan {
        let paths: Vec<(Vec<&'static str>, &'static str)> =
            ECS_FIELDS.iter().map(|f| split(f.path)).collect();
        let places = ecs_count() + 3;
        let targets = ecs_count() + 4;
        let mut offsets = Vec::with_capacity(places * targets + 1);
        let mut bytes = Vec::new();
        offsets.push(0);
        for place in 0..places {
            for target in 0..targets {
                let mut w = match place {
                    START => Nest {
                        open: Vec::new(),
                        first: true,
                    },
                    p if p == element() => Nest {
                        open: vec!["netflow"],
                        first: false,
                    },
                    p if p == frame() => Nest {
                        open: vec!["sluice"],
                        first: false,
                    },
                    p => Nest {
                        open: paths[p - 1].0.clone(),
                        first: false,
                    },
                };
                match target {
                    t if t == element() => w.member(&mut bytes, &["netflow"]),
                    t if t == frame() => w.key(&mut bytes, &["sluice"], "frame"),
                    t if t == end() => w.finish(&mut bytes),
                    0 => {}
                    t => {
                        let (parents, leaf) = &paths[t - 1];
                        w.key(&mut bytes, parents, leaf);
                    }
                }
                offsets.push(bytes.len() as u32);
            }
        }
        // Room for `put`'s fixed-size reads past the last step.
        bytes.extend_from_slice(&[0; SHORT]);
        Plan { offsets, bytes }
    }

    /// The JSON from `place` to `target` (target `1 + j` is ECS field `j`).
    #[cfg(test)]
    fn step(&self, place: usize, target: usize) -> &[u8] {
        let i = place * (ecs_count() + 4) + target;
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Appends the JSON from `place` to `target`. Most steps are a few bytes: they are copied
    /// as a fixed `SHORT` bytes (the plan is padded for that) and the excess cut off.
    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>, place: usize, target: usize) {
        let i = place * (ecs_count() + 4) + target;
        let (from, to) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        match self
            .bytes
            .get(from..from + SHORT)
            .map(<&[u8; SHORT]>::try_from)
        {
            Some(Ok(chunk)) if to - from <= SHORT => {
                let len = out.len();
                out.extend_from_slice(chunk);
                out.truncate(len + (to - from));
            }
            _ => out.extend_from_slice(&self.bytes[from..to]),
        }
    }
}

/// Steps up to this long are copied with a fixed-size copy.
const SHORT: usize = 32;

/// A key: field names are the table's and the element table's (letters, digits, `_`, `-`,
/// `@`), never needing escapes.
fn write_name(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// An address, written without the formatting machinery.
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => write_ipv4(out, v4.octets()),
        IpAddr::V6(v6) => write_ipv6(out, v6),
    }
}

fn write_ipv4(out: &mut Vec<u8>, o: [u8; 4]) {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, b) in o.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if b >= 100 {
            buf[n] = b'0' + b / 100;
            n += 1;
        }
        if b >= 10 {
            buf[n] = b'0' + b / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + b % 10;
        n += 1;
    }
    out.extend_from_slice(&buf[..n]);
}

/// The text `std` gives for an IPv6 address (RFC 5952: lower-case hex, leading zeros dropped,
/// the first longest run of two or more zero groups as `::`; IPv4-mapped as `::ffff:a.b.c.d`).
fn write_ipv6(out: &mut Vec<u8>, a: std::net::Ipv6Addr) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if let Some(v4) = a.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        write_ipv4(out, v4.octets());
        return;
    }
    let seg = a.segments();
    // The first longest run of zero groups.
    let (mut best, mut best_len, mut cur, mut cur_len) = (0usize, 0usize, 0usize, 0usize);
    for (i, &s) in seg.iter().enumerate() {
        if s == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
    }
    let mut buf = [0u8; 39];
    let mut n = 0;
    let group = |buf: &mut [u8; 39], n: &mut usize, s: u16| {
        let mut started = false;
        for shift in [12u16, 8, 4, 0] {
            let d = (s >> shift) & 15;
            if d != 0 || started || shift == 0 {
                buf[*n] = HEX[usize::from(d)];
                *n += 1;
                started = true;
            }
        }
    };
    let mut i = 0;
    while i < 8 {
        if best_len > 1 && i == best {
            buf[n] = b':';
            buf[n + 1] = b':';
            n += 2;
            i += best_len;
            continue;
        }
        if i > 0 && !(best_len > 1 && i == best + best_len) {
            buf[n] = b':';
            n += 1;
        }
        group(&mut buf, &mut n, seg[i]);
        i += 1;
    }
    out.extend_from_slice(&buf[..n]);
}

/// `ip:port`, `[ip]:port` (as `std` writes a socket address).
fn write_socket(out: &mut Vec<u8>, sa: std::net::SocketAddr) {
    match sa {
        std::net::SocketAddr::V4(a) => write_ipv4(out, a.ip().octets()),
        std::net::SocketAddr::V6(a) if a.scope_id() == 0 => {
            out.push(b'[');
            write_ipv6(out, *a.ip());
            out.push(b']');
        }
        std::net::SocketAddr::V6(a) => {
            let _ = write!(out, "[{}%{}]", a.ip(), a.scope_id());
        }
    }
    out.push(b':');
    write_u64(out, u64::from(sa.port()));
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

/// Decimal digits, appended with one fixed-size copy (short copies of a variable length cost
/// a `memcpy` call each, more than the formatting). The digits are formed backwards, two at a
/// time, so their count comes out of the same loop.
#[inline]
fn write_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    // u64::MAX has 20 digits; they end at index 20, and the 20 bytes from the first digit
    // are copied whatever the count (the tail is cut off after).
    let mut buf = [0u8; 40];
    let (mut x, mut i) = (v, 20);
    while x >= 100 {
        let d = (x % 100) as usize * 2;
        x /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if x >= 10 {
        let d = x as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + x as u8;
    }
    let digits: &[u8; 20] = buf[i..i + 20].try_into().expect("20 bytes");
    let len = out.len();
    out.extend_from_slice(digits);
    out.truncate(len + (20 - i));
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// A string of Sluice's own (protocol, locality and service names, flags): never needs
/// escaping.
fn write_static(out: &mut Vec<u8>, s: &'static str) {
    debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

#[inline(always)]
fn write_value_json(out: &mut Vec<u8>, v: &Value, times: &mut Rfc3339Cache) {
    match *v {
        Value::U64(n) => write_u64(out, n),
        Value::I64(n) => write_i64(out, n),
        Value::Str(s) => write_static(out, s),
        Value::List(l) => {
            out.push(b'[');
            for (i, s) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_static(out, s);
            }
            out.push(b']');
        }
        Value::Ip(ip) => {
            out.push(b'"');
            write_ip(out, ip);
            out.push(b'"');
        }
        Value::Time(ns) => time_json(out, ns, times),
        Value::Socket(sa) => {
            out.push(b'"');
            write_socket(out, sa);
            out.push(b'"');
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
fn write_element(out: &mut Vec<u8>, field: &Field, b: &[u8], times: &mut Rfc3339Cache) {
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
            write_ipv4(out, [b[0], b[1], b[2], b[3]]);
            out.push(b'"');
        }
        Ipv6Address if n == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            out.push(b'"');
            write_ipv6(out, std::net::Ipv6Addr::from(a));
            out.push(b'"');
        }
        DateTimeSeconds if n <= 8 => time_json(
            out,
            (be_uint(b) as i64).saturating_mul(1_000_000_000),
            times,
        ),
        DateTimeMilliseconds if n <= 8 => {
            time_json(out, (be_uint(b) as i64).saturating_mul(1_000_000), times)
        }
        DateTimeMicroseconds if n == 8 => time_json(
            out,
            sluice_decode::time::ntp_to_ns(be_uint(b) & !0x7ff),
            times,
        ),
        DateTimeNanoseconds if n == 8 => {
            time_json(out, sluice_decode::time::ntp_to_ns(be_uint(b)), times)
        }
        _ => write_hex(out, b),
    }
}

fn time_json(out: &mut Vec<u8>, ns: i64, times: &mut Rfc3339Cache) {
    times.write_quoted(out, ns);
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
    encode_document(out, r, f, e, opts.annotate, 0);
}

/// Appends one lean JSON document (no newline), as the Elasticsearch sink ships them: what
/// [`encode_json_enriched`] writes, less the `netflow.*` copies of elements whose value the
/// ECS part already carries, read from that very element: the addresses (`source.ip`,
/// `destination.ip`), ports, protocol (`network.iana_number`), interface indexes (with
/// enrichment: `observer.*.interface.id`) and absolute start and end times in seconds or
/// milliseconds (`event.start`, `event.end`). Nothing is lost; every other element, the raw
/// byte and packet counters among them, stays.
pub fn encode_json_lean(out: &mut Vec<u8>, r: &Record<'_>, f: &Flow, e: Option<&Enriched>) {
    encode_document(out, r, f, e, false, ecs_copies(r, f, e));
}

/// Field indexes (below 64, bit `i` for field `i`) of the elements whose value the ECS part
/// of the document shows, read from that field: what a lean document leaves out.
fn ecs_copies(r: &Record<'_>, f: &Flow, e: Option<&Enriched>) -> u64 {
    use sluice_decode::template::Slot;
    let t = r.template;
    let mut mask = 0u64;
    let mut mark = |slot: Slot, same: &dyn Fn(&[u8]) -> bool| {
        let i = usize::from(t.slots[slot as usize]);
        // Single occurrences only: a repeated element is one array.
        if i < 64
            && t.next_same.get(i) == Some(&NO_FIELD)
            && t.repeat.get(i) == Some(&false)
            && same(r.field(i))
        {
            mask |= 1 << i;
        }
    };
    let ip = |want: Option<IpAddr>| {
        move |b: &[u8]| match want {
            Some(IpAddr::V4(a)) => b == a.octets(),
            Some(IpAddr::V6(a)) => b == a.octets(),
            None => false,
        }
    };
    let uint = |want: Option<u64>, max_len: usize| {
        move |b: &[u8]| !b.is_empty() && b.len() <= max_len && Some(be_uint(b)) == want
    };
    mark(Slot::SrcV4, &ip(f.src_ip));
    mark(Slot::SrcV6, &ip(f.src_ip));
    mark(Slot::DstV4, &ip(f.dst_ip));
    mark(Slot::DstV6, &ip(f.dst_ip));
    mark(Slot::SrcPort, &uint(f.src_port.map(u64::from), 2));
    mark(Slot::DstPort, &uint(f.dst_port.map(u64::from), 2));
    mark(Slot::Proto, &uint(f.proto.map(u64::from), 1));
    if let Some(e) = e {
        mark(Slot::InIf, &uint(e.in_if.index.map(u64::from), 4));
        mark(Slot::OutIf, &uint(e.out_if.index.map(u64::from), 4));
    }
    if f.times_from_record {
        let at = |want: i64, unit: i64| {
            move |b: &[u8]| b.len() == 8 && (be_uint(b) as i64).saturating_mul(unit) == want
        };
        mark(Slot::StartMs, &at(f.start_ns, 1_000_000));
        mark(Slot::EndMs, &at(f.end_ns, 1_000_000));
        let at4 = |want: i64| {
            move |b: &[u8]| {
                b.len() == 4 && (be_uint(b) as i64).saturating_mul(1_000_000_000) == want
            }
        };
        mark(Slot::StartSec, &at4(f.start_ns));
        mark(Slot::EndSec, &at4(f.end_ns));
    }
    mask
}

/// The ECS part of one document being written, field by field, each field's index a constant:
/// its getter's arm of [`value_of`] and the kind of value it writes are chosen when compiling,
/// instead of two jumps through tables per field and document (the walk was a quarter faster
/// in `es_encode/encode_lean` than the loop over the table it replaced).
struct Walk<'o, 't> {
    out: &'o mut Vec<u8>,
    plan: &'static Plan,
    place: usize,
    times: &'t mut Rfc3339Cache,
    is_event: bool,
}

impl Walk<'_, '_> {
    #[inline(always)]
    fn field<const J: usize>(&mut self, r: &Record<'_>, f: &Flow, e: Option<&Enriched>) {
        if J >= ECS_FIELDS.len() {
            return;
        }
        let field = &ECS_FIELDS[J];
        if field.event_only && !self.is_event {
            return;
        }
        if let Some(v) = value_of_inline(field.get, r, f, e) {
            self.plan.put(self.out, self.place, after(J));
            write_value_json(self.out, &v, self.times);
            self.place = after(J);
        }
    }
}

/// The document writer; `skip`: field indexes (bits) of elements to leave out.
fn encode_document(
    out: &mut Vec<u8>,
    r: &Record<'_>,
    f: &Flow,
    e: Option<&Enriched>,
    annotate: bool,
    skip: u64,
) {
    thread_local! {
        /// The last second written: documents of one batch mostly share their seconds.
        static TIMES: std::cell::Cell<Rfc3339Cache> = std::cell::Cell::new(Rfc3339Cache::default());
    }
    let plan = Plan::get();
    let mut times = TIMES.with(|t| t.get());
    let is_event = r.template.dialect.is_event();
    out.push(b'{');
    let mut w = Walk {
        out,
        plan,
        place: START,
        times: &mut times,
        is_event,
    };
    // One step per index of the table, each index a constant (`Walk::field` skips those
    // past the table's end). Compiling fails unless the list is 0, 1, 2... and covers the
    // whole table.
    macro_rules! walk {
        ($($j:literal)*) => {
            const LIST: &[usize] = &[$($j),*];
            const _: () = {
                let mut i = 0;
                while i < LIST.len() {
                    assert!(LIST[i] == i, "the walk! list must count up from 0");
                    i += 1;
                }
                assert!(LIST.len() >= ECS_FIELDS.len(), "extend the walk! list");
            };
            $( w.field::<$j>(r, f, e); )*
        };
    }
    walk!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
        30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89
        90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114
        115 116 117 118 119 120 121 122 123 124 125 126 127);
    let mut place = w.place;
    let out = w.out;
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
            if !b.is_empty() && (i >= 64 || skip & (1 << i) == 0) {
                plan.put(out, place, element());
                place = element();
                write_name(out, &field.name);
                out.push(b':');
                write_element(out, field, b, &mut times);
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
                    out.push(b',');
                } else {
                    plan.put(out, place, element());
                    place = element();
                    write_name(out, &field.name);
                    out.extend_from_slice(b":[");
                    opened = true;
                }
                write_element(out, &t.fields[j], v, &mut times);
            }
            match t.next_same.get(j) {
                Some(&n) if n != NO_FIELD => j = usize::from(n),
                _ => break,
            }
        }
        if opened {
            out.push(b']');
        }
    }
    if annotate {
        plan.put(out, place, frame());
        place = frame();
        write_u64(out, r.header.tag);
    }
    plan.put(out, place, end());
    TIMES.with(|t| t.set(times));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn addresses_read_as_std_writes_them() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases: Vec<u128> = vec![
            0,
            1,
            u128::MAX,
            0xffff_0a01_0203,
            0x2001_0db8 << 96,
            (0x2001_0db8 << 96) | 1,
            (0xfe80 << 112) | 0x1,
            0x0001_0000_0000_0000_0000_0001_0000_0000,
        ];
        for _ in 0..20_000 {
            let r = (u128::from(next()) << 64) | u128::from(next());
            // Knock out random groups so that zero runs of every length and place occur.
            let mask = next();
            let mut a = r;
            for g in 0..8 {
                if mask >> (g * 2) & 3 != 0 {
                    a &= !(0xffffu128 << (16 * g));
                }
            }
            cases.push(a);
            cases.push(r);
        }
        for a in cases {
            let ip = Ipv6Addr::from(a);
            assert_eq!(text(|o| write_ipv6(o, ip)), ip.to_string(), "{a:032x}");
            let v4 = std::net::Ipv4Addr::from(a as u32);
            assert_eq!(text(|o| write_ipv4(o, v4.octets())), v4.to_string());
            let port = (a >> 40) as u16;
            for sa in [
                SocketAddr::new(IpAddr::V6(ip), port),
                SocketAddr::new(IpAddr::V4(v4), port),
                SocketAddr::V6(SocketAddrV6::new(ip, port, 0, (a >> 80) as u32 & 3)),
            ] {
                assert_eq!(text(|o| write_socket(o, sa)), sa.to_string());
            }
        }
    }

    #[test]
    fn numbers_read_as_std_writes_them() {
        let mut v: Vec<u64> = vec![0, 9, 10, 99, 100, 101, u64::MAX, u64::MAX - 1];
        let mut p = 1u64;
        while let Some(q) = p.checked_mul(10) {
            v.extend([p - 1, p, p + 1, q / 2]);
            p = q;
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend([x, x >> (x % 64)]);
        }
        for n in v {
            assert_eq!(text(|o| write_u64(o, n)), n.to_string());
            let i = n as i64;
            assert_eq!(text(|o| write_i64(o, i)), i.to_string());
        }
        assert_eq!(text(|o| write_i64(o, i64::MIN)), i64::MIN.to_string());
    }

    #[test]
    fn plan_moves_between_objects() {
        let p = Plan::get();
        let at = |path: &str| {
            ECS_FIELDS
                .iter()
                .position(|f| f.path == path)
                .map(after)
                .expect("a table field")
        };
        assert_eq!(p.step(START, at("@timestamp")), br#""@timestamp":"#);
        assert_eq!(p.step(START, at("source.ip")), br#""source":{"ip":"#);
        assert_eq!(
            p.step(at("source.ip"), at("source.geo.city_name")),
            br#","geo":{"city_name":"#
        );
        assert_eq!(
            p.step(at("source.geo.city_name"), at("destination.ip")),
            br#"}},"destination":{"ip":"#
        );
        assert_eq!(p.step(at("netflow.type"), element()), b",");
        assert_eq!(p.step(at("netflow.exporter.address"), element()), b"},");
        assert_eq!(p.step(START, element()), br#""netflow":{"#);
        assert_eq!(p.step(element(), frame()), br#"},"sluice":{"frame":"#);
        assert_eq!(p.step(element(), end()), b"}}");
        assert_eq!(p.step(START, end()), b"}");
        // `put` writes what `step` holds, short steps and long ones alike, after any prefix.
        for place in 0..frame() + 1 {
            for target in 1..end() + 1 {
                let mut out = b"prefix".to_vec();
                p.put(&mut out, place, target);
                assert_eq!(&out[6..], p.step(place, target), "{place} -> {target}");
            }
        }
    }
}
