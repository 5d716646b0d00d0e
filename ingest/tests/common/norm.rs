//! Canonical, decoder-independent form of one flow record.
//!
//! Every decoder under comparison (Sluice, tshark, netflow_parser) is reduced to a
//! [`NormRecord`]: a map from a small set of canonical keys to canonical strings.
//! A key is only set from one specific IPFIX / NetFlow v9 information element (IE),
//! never from a "similar" one, so that two decoders are always compared on the same
//! element of the same record:
//!
//! | key             | IE (IANA name)                       | NetFlow v5 field |
//! |-----------------|--------------------------------------|------------------|
//! | `src_addr`      | 8 sourceIPv4Address, then 27 sourceIPv6Address | srcaddr |
//! | `dst_addr`      | 12 destinationIPv4Address, then 28 destinationIPv6Address | dstaddr |
//! | `src_port`      | 7 sourceTransportPort                | srcport          |
//! | `dst_port`      | 11 destinationTransportPort          | dstport          |
//! | `proto`         | 4 protocolIdentifier                 | prot             |
//! | `bytes`         | 1 octetDeltaCount                    | dOctets          |
//! | `packets`       | 2 packetDeltaCount                   | dPkts            |
//! | `bytes_total`   | 85 octetTotalCount                   | -                |
//! | `packets_total` | 86 packetTotalCount                  | -                |
//! | `tcp_flags`     | 6 tcpControlBits                     | tcp_flags        |
//! | `in_if`         | 10 ingressInterface                  | input            |
//! | `out_if`        | 14 egressInterface                   | output           |
//! | `next_hop`      | 15 ipNextHopIPv4Address, then 62 ipNextHopIPv6Address | nexthop |
//! | `src_as`        | 16 bgpSourceAsNumber                 | src_as           |
//! | `dst_as`        | 17 bgpDestinationAsNumber            | dst_as           |
//! | `src_mask`      | 9 sourceIPv4PrefixLength, then 29 sourceIPv6PrefixLength | src_mask |
//! | `dst_mask`      | 13 destinationIPv4PrefixLength, then 30 destinationIPv6PrefixLength | dst_mask |
//!
//! Deliberately NOT folded into these keys: IE 85/86 (total counts) are kept apart from
//! IE 1/2 (delta counts) as `bytes_total`/`packets_total`; IE 23/24 (post/"OUT_BYTES"),
//! IE 180-183 (udp/tcp-specific ports) and IE 18/63 (BGP next hop) are not mapped at all;
//! reverse-direction elements (RFC 5103, PEN 29305) and every other enterprise element
//! are ignored. Only forward, IANA (PEN 0) elements count.
//!
//! Values: addresses in `std::net::IpAddr` `Display` form, everything else as an
//! unsigned decimal integer. A value that cannot be read as such (e.g. an address
//! element with a non-standard length) is kept as `0x` + lowercase hex of its bytes or
//! as the decoder's raw text, so that it shows up in a comparison instead of vanishing.
//!
//! Repeated elements: when a record carries several of the elements feeding one key
//! (a template that lists IE 7 twice, as Cisco IOS XR SRv6 templates do for inner and
//! outer headers, or both IE 8 and IE 27), the value is all of them joined with `,`:
//! first every value of the lower "slot" (IPv4 element) in record order, then the
//! IPv6 element's values in record order. Sluice documents must be normalised the same
//! way (see `sluice_doc.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Canonical key names, in the order used when printing a record.
pub const KEYS: [&str; 17] = [
    "src_addr",
    "dst_addr",
    "src_port",
    "dst_port",
    "proto",
    "bytes",
    "packets",
    "bytes_total",
    "packets_total",
    "tcp_flags",
    "in_if",
    "out_if",
    "next_hop",
    "src_as",
    "dst_as",
    "src_mask",
    "dst_mask",
];

/// How a canonical value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// An IPv4 or IPv6 address.
    Addr,
    /// An unsigned integer.
    Num,
}

/// Where one IANA information element goes: canonical key, slot (0 = the IPv4 or only
/// element, 1 = the IPv6 element of the same key) and value kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub key: &'static str,
    pub slot: u8,
    pub kind: ValueKind,
}

const fn t(key: &'static str, slot: u8, kind: ValueKind) -> Option<Target> {
    Some(Target { key, slot, kind })
}

/// The mapping table (IANA IE number, PEN 0, forward direction) -> canonical key.
pub fn target_for_ie(ie: u16) -> Option<Target> {
    use ValueKind::{Addr, Num};
    match ie {
        1 => t("bytes", 0, Num),
        2 => t("packets", 0, Num),
        4 => t("proto", 0, Num),
        6 => t("tcp_flags", 0, Num),
        7 => t("src_port", 0, Num),
        8 => t("src_addr", 0, Addr),
        9 => t("src_mask", 0, Num),
        10 => t("in_if", 0, Num),
        11 => t("dst_port", 0, Num),
        12 => t("dst_addr", 0, Addr),
        13 => t("dst_mask", 0, Num),
        14 => t("out_if", 0, Num),
        15 => t("next_hop", 0, Addr),
        16 => t("src_as", 0, Num),
        17 => t("dst_as", 0, Num),
        27 => t("src_addr", 1, Addr),
        28 => t("dst_addr", 1, Addr),
        29 => t("src_mask", 1, Num),
        30 => t("dst_mask", 1, Num),
        62 => t("next_hop", 1, Addr),
        85 => t("bytes_total", 0, Num),
        86 => t("packets_total", 0, Num),
        _ => None,
    }
}

/// All IEs of [`target_for_ie`], for callers that walk names instead of numbers.
pub const MAPPED_IES: [u16; 22] = [
    1, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 27, 28, 29, 30, 62, 85, 86,
];

/// Canonical text of an address given as text; `None` if it is not an address.
pub fn canon_addr_str(s: &str) -> Option<String> {
    s.trim().parse::<IpAddr>().ok().map(|a| a.to_string())
}

/// Canonical text of an unsigned integer given as decimal or `0x` hex text.
pub fn canon_num_str(s: &str) -> Option<String> {
    let s = s.trim();
    let v = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u128::from_str_radix(hex, 16).ok()?
    } else {
        s.parse::<u128>().ok()?
    };
    Some(v.to_string())
}

/// Canonical text for `s` of the given kind; falls back to the trimmed raw text.
pub fn canon_str(kind: ValueKind, s: &str) -> String {
    let c = match kind {
        ValueKind::Addr => canon_addr_str(s),
        ValueKind::Num => canon_num_str(s),
    };
    c.unwrap_or_else(|| s.trim().to_string())
}

/// `0x` + lowercase hex, for raw bytes that have no better canonical form.
pub fn hex_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// One flow record in canonical form: canonical key -> canonical value.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct NormRecord(pub BTreeMap<&'static str, String>);

impl NormRecord {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for NormRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut first = true;
        // print in KEYS order, then anything unexpected
        let known = KEYS.iter();
        let unknown = self.0.keys().filter(|k| !KEYS.contains(k));
        for k in known.chain(unknown) {
            if let Some(v) = self.0.get(k) {
                if !first {
                    f.write_str(" ")?;
                }
                first = false;
                write!(f, "{k}={v}")?;
            }
        }
        f.write_str("}")
    }
}

/// Collects element values of one record (in record order) and produces the
/// [`NormRecord`], joining repeated elements as described in the module docs.
#[derive(Debug, Default)]
pub struct NormBuilder {
    vals: BTreeMap<&'static str, Vec<(u8, String)>>,
}

impl NormBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a value that is already canonical.
    pub fn push(&mut self, target: Target, value: String) {
        self.vals
            .entry(target.key)
            .or_default()
            .push((target.slot, value));
    }

    /// Add a value given as decoder text; canonicalised according to `target.kind`.
    pub fn push_str(&mut self, target: Target, raw: &str) {
        self.push(target, canon_str(target.kind, raw));
    }

    pub fn finish(self) -> NormRecord {
        let mut out = BTreeMap::new();
        for (k, mut v) in self.vals {
            // stable: keeps record order within a slot
            v.sort_by_key(|(slot, _)| *slot);
            let joined = v.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(",");
            out.insert(k, joined);
        }
        NormRecord(out)
    }
}
