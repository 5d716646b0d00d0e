//! Community ID flow hashing, version 1 (corelight/community-id-spec).
//!
//! The hash input is, in network byte order: the 2-byte seed, the two addresses (4 or 16 bytes
//! each), the protocol number, one zero byte of padding and, for TCP, UDP, SCTP, ICMP and
//! ICMPv6 only, the two ports. The endpoints are ordered first, so both directions of a
//! connection get the same ID: the smaller address (bytewise) goes first, or the smaller port
//! when the addresses are equal. ICMP and ICMPv6 have no ports: the message type stands in for
//! the source port and, for the request/reply types that pair up (echo, timestamp, router
//! solicitation/advertisement, ...), the counterpart type for the destination port; other
//! types use the code and are "one-way", which the spec never reorders. The SHA-1 digest is
//! base64-encoded and prefixed with `1:`.

use std::fmt;
use std::net::IpAddr;

use sha1::{Digest, Sha1};

use crate::names::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

/// Length of a v1 ID: `1:` and 28 base64 characters (20 bytes of SHA-1).
pub const COMMUNITY_ID_LEN: usize = 30;

/// A Community ID, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunityId([u8; COMMUNITY_ID_LEN]);

impl CommunityId {
    /// The ID as text, e.g. `1:wCb3OG7yAFWelaUydu0D+125CLM=`.
    #[inline]
    pub fn as_str(&self) -> &str {
        debug_assert!(self.0.is_ascii());
        // SAFETY: the field is private and only `community_id` fills it, with "1:" and
        // base64 output: ASCII, so UTF-8. (Checking it on every read was 7 % of the JSON
        // encoder's time.)
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunityId({})", self.as_str())
    }
}

/// ICMP message types that pair up with another (RFC 792/950/1256): the counterpart of a
/// request is its reply and the other way round. Mirrors Zeek's `ICMP4_counterpart()`, as the
/// spec's reference implementation does.
fn icmp4_counterpart(t: u8) -> Option<u8> {
    Some(match t {
        8 => 0,   // echo -> echo reply
        0 => 8,   // echo reply -> echo
        13 => 14, // timestamp -> timestamp reply
        14 => 13,
        15 => 16, // information request -> reply
        16 => 15,
        10 => 9, // router solicitation -> advertisement
        9 => 10,
        17 => 18, // address mask request -> reply
        18 => 17,
        _ => return None,
    })
}

/// ICMPv6 counterparts (RFC 4443, 4861, 2710, 4620, 6275).
fn icmp6_counterpart(t: u8) -> Option<u8> {
    Some(match t {
        128 => 129, // echo request -> reply
        129 => 128,
        130 => 131, // MLD query -> report
        131 => 130,
        133 => 134, // router solicitation -> advertisement
        134 => 133,
        135 => 136, // neighbor solicitation -> advertisement
        136 => 135,
        139 => 140, // node information query -> reply
        140 => 139,
        144 => 145, // home agent address discovery request -> reply
        145 => 144,
        _ => return None,
    })
}

/// An address as (numeric value, byte length): comparing the values orders the addresses as
/// the spec's bytewise comparison does, without a `memcmp`.
#[inline]
fn addr_key(ip: &IpAddr) -> (u128, usize) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(*a)), 4),
        IpAddr::V6(a) => (u128::from(*a), 16),
    }
}

/// Computes the Community ID of a flow. For ICMP and ICMPv6, `src_port` and `dst_port` are the
/// message type and code. Returns `None` when a port protocol (TCP, UDP, SCTP, ICMP, ICMPv6)
/// comes without ports, or when the two addresses are of different families.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> Option<CommunityId> {
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    let port_proto = matches!(
        proto,
        PROTO_TCP | PROTO_UDP | PROTO_SCTP | PROTO_ICMP | PROTO_ICMPV6
    );
    let (sv, n) = addr_key(&src);
    let (dv, _) = addr_key(&dst);
    // The last `n` bytes of the big-endian u128 are the address bytes.
    let sb = sv.to_be_bytes();
    let db = dv.to_be_bytes();
    let (s, d) = (&sb[16 - n..], &db[16 - n..]);

    let mut input = [0u8; 2 + 16 + 16 + 2 + 4];
    input[..2].copy_from_slice(&seed.to_be_bytes());
    let mut len = 2;
    let mut put = |b: &[u8]| {
        input[len..len + b.len()].copy_from_slice(b);
        len += b.len();
    };
    if port_proto {
        let (sp, dp) = ports?;
        let (sp, dp, one_way) = match proto {
            PROTO_ICMP | PROTO_ICMPV6 => {
                let (t, code) = (sp as u8, dp as u8);
                let counterpart = if proto == PROTO_ICMP {
                    icmp4_counterpart(t)
                } else {
                    icmp6_counterpart(t)
                };
                match counterpart {
                    Some(c) => (u16::from(t), u16::from(c), false),
                    None => (u16::from(t), u16::from(code), true),
                }
            }
            _ => (sp, dp, false),
        };
        let ordered = one_way || sv < dv || (sv == dv && sp <= dp);
        let (a, b, pa, pb) = if ordered {
            (s, d, sp, dp)
        } else {
            (d, s, dp, sp)
        };
        put(a);
        put(b);
        put(&[proto, 0]);
        put(&pa.to_be_bytes());
        put(&pb.to_be_bytes());
    } else {
        let (a, b) = if sv <= dv { (s, d) } else { (d, s) };
        put(a);
        put(b);
        put(&[proto, 0]);
    }
    let digest: [u8; 20] = Sha1::digest(&input[..len]).into();
    let mut out = [0u8; COMMUNITY_ID_LEN];
    out[0] = b'1';
    out[1] = b':';
    base64_20(&digest, &mut out[2..]);
    Some(CommunityId(out))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4, with padding) of a 20-byte digest: 28 characters.
fn base64_20(src: &[u8; 20], dst: &mut [u8]) {
    let mut o = 0;
    for chunk in src.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        dst[o] = B64[usize::from(b0 >> 2)];
        dst[o + 1] = B64[usize::from((b0 & 0x03) << 4 | b1 >> 4)];
        dst[o + 2] = if chunk.len() > 1 {
            B64[usize::from((b1 & 0x0f) << 2 | b2 >> 6)]
        } else {
            b'='
        };
        dst[o + 3] = if chunk.len() > 2 {
            B64[usize::from(b2 & 0x3f)]
        } else {
            b'='
        };
        o += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_shape() {
        let mut out = [0u8; 28];
        base64_20(&[0u8; 20], &mut out);
        assert_eq!(&out, b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        base64_20(&[0xff; 20], &mut out);
        assert_eq!(&out, b"//////////////////////////8=");
        // "Many hands make light work." -> TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsu (first 20 bytes)
        let src: [u8; 20] = *b"Many hands make ligh";
        base64_20(&src, &mut out);
        assert_eq!(&out, b"TWFueSBoYW5kcyBtYWtlIGxpZ2g=");
    }

    #[test]
    fn mixed_families_and_missing_ports() {
        let v4: IpAddr = "1.2.3.4".parse().expect("ip");
        let v6: IpAddr = "::1".parse().expect("ip");
        assert!(community_id(0, v4, v6, 6, Some((1, 2))).is_none());
        assert!(community_id(0, v4, v4, 6, None).is_none());
        assert!(community_id(0, v4, v4, 46, None).is_some());
    }
}
