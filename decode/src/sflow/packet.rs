//! Sampled packet headers: the first bytes of a frame as the agent saw it (sFlow v5
//! `sampled_header`, flow record format 1), decoded through Ethernet, 802.1Q/QinQ tags,
//! LLC/SNAP, MPLS, IPv4, IPv6 with its extension headers, and the first transport header.
//!
//! The header is cut wherever the agent's snap length ended (128 bytes by default), so a
//! short header is the normal case, not an error: whatever fits is reported and the rest is
//! left unknown. Every read is checked; every loop has a fixed bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `header_protocol` values (sFlow v5 §"Packet Header Data") this module decodes.
pub(super) const PROTO_ETHERNET: u32 = 1;
pub(super) const PROTO_IPV4: u32 = 11;
pub(super) const PROTO_IPV6: u32 = 12;
pub(super) const PROTO_MPLS: u32 = 13;

/// 802.1Q tag protocol identifiers: C-tag, S-tag (802.1ad), and the pre-standard QinQ TPIDs
/// some switches still send.
const TPIDS: [u16; 4] = [0x8100, 0x88a8, 0x9100, 0x9200];
/// Tags followed before giving up (QinQ is two; more is unusual but legal).
const MAX_TAGS: usize = 8;
/// MPLS labels followed before giving up.
const MAX_LABELS: usize = 16;
/// IPv6 extension headers followed before giving up (RFC 8200 §4.1 recommends each appear at
/// most once or twice; ten covers every legal chain).
const MAX_EXT_HEADERS: usize = 10;

/// What a transport header said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum L4 {
    /// Not a transport we decode, a later fragment, or cut before its first bytes.
    #[default]
    None,
    /// UDP, SCTP, DCCP, UDP-Lite, or TCP cut before its flags.
    Ports { src: u16, dst: u16 },
    /// TCP with its control bits (RFC 7125: the 12 low bits of the 16-bit word at offset 12,
    /// i.e. without the data offset).
    Tcp { src: u16, dst: u16, flags: u16 },
    /// ICMP or ICMPv6: type * 256 + code (IANA icmpTypeCodeIPv4/IPv6).
    Icmp { type_code: u16 },
}

/// The IP layer of a sampled packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 protocol, or IPv6's last next-header value reached (the transport when the chain
    /// fits in the header).
    pub proto: u8,
    /// IPv4 TOS byte or IPv6 traffic class.
    pub tos: u8,
    pub l4: L4,
}

/// Ethernet addresses and type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Mac {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    /// EtherType after any VLAN tags and SNAP header (0 for 802.3 frames without SNAP).
    pub ethertype: u16,
}

/// Everything decoded from one sampled header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Packet {
    pub mac: Option<Mac>,
    /// VLAN ids of the 802.1Q tags, outermost first (at most two kept).
    pub vlans: [u16; 2],
    /// Number of tags seen (may exceed the two kept).
    pub tags: u8,
    pub ip: Option<Ip>,
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

#[inline]
fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decodes a sampled header of the given `header_protocol`. Unknown protocols give an empty
/// [`Packet`].
pub(super) fn parse(protocol: u32, b: &[u8]) -> Packet {
    let mut p = Packet::default();
    match protocol {
        PROTO_ETHERNET => ethernet(b, &mut p),
        PROTO_IPV4 => p.ip = ipv4(b),
        PROTO_IPV6 => p.ip = ipv6(b),
        PROTO_MPLS => p.ip = mpls(b),
        _ => {}
    }
    p
}

fn ethernet(b: &[u8], p: &mut Packet) {
    let (Some(dst), Some(src), Some(mut ty)) = (arr::<6>(b, 0), arr::<6>(b, 6), u16_at(b, 12))
    else {
        return;
    };
    let mut at = 14;
    for _ in 0..MAX_TAGS {
        if !TPIDS.contains(&ty) {
            break;
        }
        // Tag: TCI (PCP, DEI, 12-bit VID), then the next type.
        let (Some(tci), Some(next)) = (u16_at(b, at), u16_at(b, at + 2)) else {
            break;
        };
        if let Some(slot) = p.vlans.get_mut(usize::from(p.tags)) {
            *slot = tci & 0x0fff;
        }
        p.tags = p.tags.saturating_add(1);
        ty = next;
        at += 4;
    }
    if ty <= 1500 {
        // IEEE 802.3 length field: an LLC header follows. Only SNAP (AA AA 03, OUI, type)
        // carries an EtherType.
        ty = match (b.get(at..at + 3), u16_at(b, at + 6)) {
            (Some([0xaa, 0xaa, 0x03]), Some(t)) => {
                at += 8;
                t
            }
            _ => 0,
        };
    }
    p.mac = Some(Mac {
        src,
        dst,
        ethertype: ty,
    });
    let rest = b.get(at..).unwrap_or(&[]);
    p.ip = match ty {
        0x0800 => ipv4(rest),
        0x86dd => ipv6(rest),
        0x8847 | 0x8848 => mpls(rest),
        _ => None,
    };
}

/// MPLS label stack (RFC 3032): 4 bytes per label, bottom of stack in bit 8 of the third
/// byte. The payload's type is not in the stack; the IP version nibble tells.
fn mpls(b: &[u8]) -> Option<Ip> {
    let mut at = 0;
    for _ in 0..MAX_LABELS {
        let bos = b.get(at + 2)? & 0x01 != 0;
        at += 4;
        if bos {
            let rest = b.get(at..)?;
            return match rest.first()? >> 4 {
                4 => ipv4(rest),
                6 => ipv6(rest),
                _ => None,
            };
        }
    }
    None
}

fn ipv4(b: &[u8]) -> Option<Ip> {
    let first = *b.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let src = Ipv4Addr::from(arr::<4>(b, 12)?);
    let dst = Ipv4Addr::from(arr::<4>(b, 16)?);
    let proto = b[9];
    // Only the first fragment carries the transport header.
    let offset = u16_at(b, 6)? & 0x1fff;
    let l4 = if offset == 0 {
        transport(proto, b.get(ihl..).unwrap_or(&[]), false)
    } else {
        L4::None
    };
    Some(Ip {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        proto,
        tos: b[1],
        l4,
    })
}

fn ipv6(b: &[u8]) -> Option<Ip> {
    let fixed: [u8; 40] = arr(b, 0)?;
    if fixed[0] >> 4 != 6 {
        return None;
    }
    let tos = (fixed[0] << 4) | (fixed[1] >> 4);
    let src = Ipv6Addr::from(arr::<16>(&fixed, 8)?);
    let dst = Ipv6Addr::from(arr::<16>(&fixed, 24)?);
    let mut nh = fixed[6];
    let mut at = 40usize;
    let mut first_fragment = true;
    let mut complete = false;
    for _ in 0..MAX_EXT_HEADERS {
        // RFC 8200 §4: extension headers a transport header may follow. ESP (50) encrypts
        // what follows, and 59 means nothing follows: both end the walk.
        let len = match nh {
            // Hop-by-hop, routing, destination options; mobility (RFC 6275), HIP (RFC 7401),
            // shim6 (RFC 5533): length in 8-octet units, not counting the first 8.
            0 | 43 | 60 | 135 | 139 | 140 => b.get(at + 1).map(|&l| (usize::from(l) + 1) * 8),
            // Fragment (§4.5): fixed 8 bytes; a non-zero offset means no transport header.
            44 => {
                let off = u16_at(b, at + 2).map(|v| v >> 3);
                match off {
                    Some(o) => {
                        first_fragment &= o == 0;
                        Some(8)
                    }
                    None => None,
                }
            }
            // Authentication header (RFC 4302 §2.2): length in 4-octet units minus 2.
            51 => b.get(at + 1).map(|&l| (usize::from(l) + 2) * 4),
            _ => {
                complete = true;
                break;
            }
        };
        let (Some(len), Some(&next)) = (len, b.get(at)) else {
            break;
        };
        nh = next;
        at += len;
    }
    let l4 = if complete && first_fragment {
        transport(nh, b.get(at..).unwrap_or(&[]), true)
    } else {
        L4::None
    };
    Some(Ip {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        proto: nh,
        tos,
        l4,
    })
}

fn transport(proto: u8, b: &[u8], v6: bool) -> L4 {
    let ports = || Some((u16_at(b, 0)?, u16_at(b, 2)?));
    match proto {
        6 => match (ports(), u16_at(b, 12)) {
            (Some((src, dst)), Some(w)) => L4::Tcp {
                src,
                dst,
                flags: w & 0x0fff,
            },
            (Some((src, dst)), None) => L4::Ports { src, dst },
            _ => L4::None,
        },
        // UDP, DCCP, SCTP, UDP-Lite: the ports lead the header.
        17 | 33 | 132 | 136 => ports().map_or(L4::None, |(src, dst)| L4::Ports { src, dst }),
        1 if !v6 => u16_at(b, 0).map_or(L4::None, |type_code| L4::Icmp { type_code }),
        58 if v6 => u16_at(b, 0).map_or(L4::None, |type_code| L4::Icmp { type_code }),
        _ => L4::None,
    }
}
