//! Address locality: what kind of address a flow endpoint has (RFC 1918 private, CGNAT, ULA,
//! loopback, ...), and which addresses count as "internal" for `network.direction`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Kind of address. [`Locality::as_str`] gives the label used in documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locality {
    /// Globally routable unicast: what GeoIP and AS lookups are done for.
    Public,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT): 100.64/10.
    Cgnat,
    /// 127/8, ::1.
    Loopback,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// RFC 4193 unique local addresses: fc00::/7.
    Ula,
    /// 0.0.0.0/8 ("this network", RFC 1122), ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// RFC 5737 (192.0.2/24, 198.51.100/24, 203.0.113/24), RFC 3849 (2001:db8::/32), RFC 9637
    /// (3fff::/20).
    Documentation,
    /// Other special-purpose space that is never routed: 240/4, 192.0.0/24, 198.18/15
    /// (benchmarking), 100::/64 (discard-only), fec0::/10 (deprecated site-local).
    Reserved,
}

impl Locality {
    /// The label: `public`, `private`, `cgnat`, `loopback`, `link_local`, `multicast`, `ula`,
    /// `unspecified`, `broadcast`, `documentation`, `reserved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Locality::Public => "public",
            Locality::Private => "private",
            Locality::Cgnat => "cgnat",
            Locality::Loopback => "loopback",
            Locality::LinkLocal => "link_local",
            Locality::Multicast => "multicast",
            Locality::Ula => "ula",
            Locality::Unspecified => "unspecified",
            Locality::Broadcast => "broadcast",
            Locality::Documentation => "documentation",
            Locality::Reserved => "reserved",
        }
    }

    /// Whether an address of this kind is inside the site for `network.direction`: private,
    /// CGNAT, ULA, loopback and link-local space.
    pub const fn is_internal(self) -> bool {
        matches!(
            self,
            Locality::Private
                | Locality::Cgnat
                | Locality::Ula
                | Locality::Loopback
                | Locality::LinkLocal
        )
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an address. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a dual-stack
/// socket reports IPv4 peers) are classified as the IPv4 address they carry.
#[inline]
pub fn locality(ip: IpAddr) -> Locality {
    match ip {
        IpAddr::V4(a) => locality_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => locality_v4(v4),
            None => locality_v6(a),
        },
    }
}

#[inline]
fn locality_v4(a: Ipv4Addr) -> Locality {
    let o = a.octets();
    match o {
        [0, ..] => Locality::Unspecified,
        [10, ..] => Locality::Private,
        [100, b, ..] if b & 0xc0 == 64 => Locality::Cgnat,
        [127, ..] => Locality::Loopback,
        [169, 254, ..] => Locality::LinkLocal,
        [172, b, ..] if b & 0xf0 == 16 => Locality::Private,
        [192, 0, 0, _] => Locality::Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Locality::Documentation,
        [192, 168, ..] => Locality::Private,
        [198, b, ..] if b & 0xfe == 18 => Locality::Reserved,
        [255, 255, 255, 255] => Locality::Broadcast,
        [a, ..] if a & 0xf0 == 224 => Locality::Multicast,
        [a, ..] if a & 0xf0 == 240 => Locality::Reserved,
        _ => Locality::Public,
    }
}

#[inline]
fn locality_v6(a: Ipv6Addr) -> Locality {
    let s = a.segments();
    if a.is_unspecified() {
        Locality::Unspecified
    } else if a.is_loopback() {
        Locality::Loopback
    } else if s[0] & 0xff00 == 0xff00 {
        Locality::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        Locality::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 {
        Locality::Ula
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] & 0xfff0 == 0x3ff0 {
        Locality::Documentation
    } else if s[0] & 0xffc0 == 0xfec0 || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) {
        Locality::Reserved
    } else {
        Locality::Public
    }
}

/// An address prefix such as `10.0.0.0/8` or `2001:db8::/32` (extra internal networks for
/// `network.direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// Network address (bits past `len` are ignored).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Whether `ip` is inside the prefix (an IPv4 prefix also matches IPv4-mapped IPv6).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let len = u32::from(self.len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let len = u32::from(self.len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// `ADDR/LEN`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("bad prefix {s:?}: length must be 0..={max}"))?,
            None => max,
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> &'static str {
        locality(s.parse().expect("address")).as_str()
    }

    #[test]
    fn ipv4() {
        assert_eq!(l("10.1.2.3"), "private");
        assert_eq!(l("172.16.0.1"), "private");
        assert_eq!(l("172.31.255.255"), "private");
        assert_eq!(l("172.32.0.1"), "public");
        assert_eq!(l("172.15.0.1"), "public");
        assert_eq!(l("192.168.1.10"), "private");
        assert_eq!(l("100.64.0.1"), "cgnat");
        assert_eq!(l("100.127.255.255"), "cgnat");
        assert_eq!(l("100.128.0.1"), "public");
        assert_eq!(l("100.63.255.255"), "public");
        assert_eq!(l("127.0.0.1"), "loopback");
        assert_eq!(l("169.254.1.1"), "link_local");
        assert_eq!(l("224.0.0.5"), "multicast");
        assert_eq!(l("239.255.255.250"), "multicast");
        assert_eq!(l("255.255.255.255"), "broadcast");
        assert_eq!(l("240.0.0.1"), "reserved");
        assert_eq!(l("0.0.0.0"), "unspecified");
        assert_eq!(l("192.0.2.1"), "documentation");
        assert_eq!(l("198.51.100.7"), "documentation");
        assert_eq!(l("203.0.113.9"), "documentation");
        assert_eq!(l("198.18.0.1"), "reserved");
        assert_eq!(l("198.19.255.1"), "reserved");
        assert_eq!(l("198.20.0.1"), "public");
        assert_eq!(l("89.160.20.115"), "public");
        assert_eq!(l("8.8.8.8"), "public");
    }

    #[test]
    fn ipv6() {
        assert_eq!(l("::"), "unspecified");
        assert_eq!(l("::1"), "loopback");
        assert_eq!(l("fe80::1"), "link_local");
        assert_eq!(l("febf::1"), "link_local");
        assert_eq!(l("fc00::1"), "ula");
        assert_eq!(l("fd12:3456::1"), "ula");
        assert_eq!(l("ff02::1"), "multicast");
        assert_eq!(l("2001:db8::1"), "documentation");
        assert_eq!(l("3fff::1"), "documentation");
        assert_eq!(l("fec0::1"), "reserved");
        assert_eq!(l("100::1"), "reserved");
        assert_eq!(l("2001:218::10"), "public");
        assert_eq!(l("::ffff:10.0.0.1"), "private");
        assert_eq!(l("::ffff:8.8.8.8"), "public");
    }

    #[test]
    fn prefixes() {
        let p: Prefix = "10.0.0.0/8".parse().expect("prefix");
        assert!(p.contains("10.200.0.1".parse().expect("ip")));
        assert!(p.contains("::ffff:10.200.0.1".parse().expect("ip")));
        assert!(!p.contains("11.0.0.1".parse().expect("ip")));
        let p: Prefix = "2001:db8:1::/48".parse().expect("prefix");
        assert!(p.contains("2001:db8:1:ffff::1".parse().expect("ip")));
        assert!(!p.contains("2001:db8:2::1".parse().expect("ip")));
        let p: Prefix = "0.0.0.0/0".parse().expect("prefix");
        assert!(p.contains("1.2.3.4".parse().expect("ip")));
        assert!(!p.contains("::1".parse().expect("ip")));
        let h: Prefix = "192.0.2.1".parse().expect("host");
        assert_eq!(h.len, 32);
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nope/8".parse::<Prefix>().is_err());
        assert_eq!(p.to_string(), "0.0.0.0/0");
    }
}
