//! Minimal classic-libpcap reader for the differential tests: yields the UDP datagrams
//! of a capture with their 1-based frame numbers (as tshark numbers frames).
//!
//! Deliberately independent of the product's own capture reader. Supports classic pcap
//! (both byte orders, micro- and nanosecond magic), link types Ethernet (with 802.1Q /
//! 802.1ad tags), Linux cooked (SLL), BSD loopback and raw IP; IPv4 (options skipped)
//! and IPv6 (hop-by-hop / routing / destination-options headers skipped). IP fragments
//! are not reassembled: fragmented datagrams are skipped (tshark would reassemble them;
//! none of the shared captures has any). The UDP payload is cut to the UDP length field,
//! so Ethernet padding never leaks into it.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// One UDP datagram from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    /// 1-based index of the pcap record (tshark's `frame.number`).
    pub frame: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

const LINKTYPE_NULL: u32 = 0;
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LOOP: u32 = 108;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads every UDP datagram of a classic pcap file, in file order.
///
/// Errors only for problems with the file as a whole (unreadable, not classic pcap,
/// record header or data cut short); packets that are not IP/UDP are skipped.
pub fn read_udp_datagrams(path: &Path) -> Result<Vec<UdpDatagram>, String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_pcap(&data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Same as [`read_udp_datagrams`] on an in-memory capture.
pub fn parse_pcap(data: &[u8]) -> Result<Vec<UdpDatagram>, String> {
    let hdr = data
        .get(..24)
        .ok_or_else(|| format!("file too short for a pcap header ({} bytes)", data.len()))?;
    let magic = [hdr[0], hdr[1], hdr[2], hdr[3]];
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        [0x0a, 0x0d, 0x0d, 0x0a] => return Err("pcapng is not supported".into()),
        other => return Err(format!("not a classic pcap file (magic {other:02x?})")),
    };
    let u32_at = |b: &[u8], at: usize| -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = u32_at(hdr, 20) & 0x0fff_ffff;

    let mut out = Vec::new();
    let mut off = 24usize;
    let mut frame = 0u64;
    while off < data.len() {
        frame += 1;
        let rec = data
            .get(off..off + 16)
            .ok_or_else(|| format!("frame {frame}: record header cut short at offset {off}"))?;
        let incl = u32_at(rec, 8) as usize;
        let start = off + 16;
        let pkt = data.get(start..start + incl).ok_or_else(|| {
            format!(
                "frame {frame}: record data cut short ({incl} bytes announced at offset {start})"
            )
        })?;
        off = start + incl;
        if let Some((src, dst, payload)) = link_to_udp(linktype, pkt) {
            out.push(UdpDatagram {
                frame,
                src,
                dst,
                payload: payload.to_vec(),
            });
        }
    }
    Ok(out)
}

fn link_to_udp(linktype: u32, pkt: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut ethertype = be16(pkt, 12)?;
            let mut at = 14;
            while ethertype == 0x8100 || ethertype == 0x88a8 || ethertype == 0x9100 {
                ethertype = be16(pkt, at + 2)?;
                at += 4;
            }
            ether_to_udp(ethertype, pkt.get(at..)?)
        }
        LINKTYPE_LINUX_SLL => ether_to_udp(be16(pkt, 14)?, pkt.get(16..)?),
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            // 4-byte address family in the capturing host's byte order
            let fam = pkt.get(..4)?;
            let af = if fam[0] == 0 && fam[1] == 0 {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]])
            };
            let ip = pkt.get(4..)?;
            match af {
                2 => ipv4_to_udp(ip),
                10 | 24 | 28 | 30 => ipv6_to_udp(ip),
                _ => None,
            }
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 | 12 | 14 => match pkt.first()? >> 4 {
            4 => ipv4_to_udp(pkt),
            6 => ipv6_to_udp(pkt),
            _ => None,
        },
        _ => None,
    }
}

fn ether_to_udp(ethertype: u16, ip: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    match ethertype {
        0x0800 => ipv4_to_udp(ip),
        0x86dd => ipv6_to_udp(ip),
        _ => None,
    }
}

fn ipv4_to_udp(ip: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let vihl = *ip.first()?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    if ihl < 20 || total < ihl {
        return None;
    }
    let frag = be16(ip, 6)?;
    if frag & 0x3fff != 0 {
        return None; // MF set or non-zero offset: fragment, not reassembled
    }
    if *ip.get(9)? != 17 {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(*ip.get(16)?, ip[17], ip[18], ip[19]);
    // total length bounds the datagram (drops Ethernet padding)
    let body = ip.get(ihl..total.min(ip.len()))?;
    udp(IpAddr::V4(src), IpAddr::V4(dst), body)
}

fn ipv6_to_udp(ip: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    if ip.first()? >> 4 != 6 {
        return None;
    }
    let plen = usize::from(be16(ip, 4)?);
    let mut next = *ip.get(6)?;
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(ip.get(8..24)?);
    d.copy_from_slice(ip.get(24..40)?);
    let end = (40 + plen).min(ip.len());
    let mut at = 40usize;
    loop {
        match next {
            17 => break,
            0 | 43 | 60 => {
                next = *ip.get(at)?;
                at += (usize::from(*ip.get(at + 1)?) + 1) * 8;
            }
            _ => return None, // fragment (44), ESP, no next header, ...
        }
    }
    let body = ip.get(at..end)?;
    udp(
        IpAddr::V6(Ipv6Addr::from(s)),
        IpAddr::V6(Ipv6Addr::from(d)),
        body,
    )
}

fn udp(src: IpAddr, dst: IpAddr, seg: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let sport = be16(seg, 0)?;
    let dport = be16(seg, 2)?;
    let ulen = usize::from(be16(seg, 4)?);
    if ulen < 8 {
        return None;
    }
    // a datagram cut short by the snap length is skipped rather than decoded partially
    let payload = seg.get(8..ulen)?;
    Some((
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
        payload,
    ))
}
