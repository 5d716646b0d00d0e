//! sFlow samples as records of IPFIX elements.
//!
//! A flow sample becomes one record in a fixed layout, like NetFlow v5's
//! ([`crate::template::v5_template`]), so that the flow view, the document encoder, the batch
//! and the store handle sFlow without knowing about it. What a sample carries varies (an L2
//! switch sends no routing data, a non-IP frame has no addresses, a discarded packet has a
//! reason), and a fixed layout would have to show what is missing as zeros: a source AS 0 or a
//! next hop 0.0.0.0 that the agent never sent. So the layout is chosen per sample from the
//! groups of elements it has ([`Key`]): one static template per combination, compiled on first
//! use and shared by all decoders of the process. Every combination is a fixed-length
//! template, so a record's spans are its template's `fixed_spans` wherever it is rebuilt.
//!
//! The elements, in record order, by group (a group is in a record only if the sample had
//! it):
//!
//! - agent (datagram header): exporterIPv4Address (IE 130) or exporterIPv6Address (131);
//! - always (the sample): observationPointId (138, 8 bytes: data source type << 32 | index),
//!   ingressInterface (10, 4), egressInterface (14, 4), octetDeltaCount (1, 8: the frame
//!   length), packetDeltaCount (2, 8: 1), samplingInterval (34, 4: the rate; 0 for discards);
//! - status (an output that is not an ifIndex, a discard sample): forwardingStatus (89, 1);
//! - L2 (sampled header, sampled Ethernet): sourceMacAddress (56), destinationMacAddress (80),
//!   ethernetType (256, 2);
//! - VLAN (extended switch, else the header's outer tag), each on its own: vlanId (58, 2),
//!   postVlanId (59, 2);
//! - QinQ (the header's two outer tags): dot1qVlanId (243, 2), dot1qCustomerVlanId (245, 2);
//! - IP (sampled header, sampled IPv4/IPv6): source/destinationIPv4Address (8, 12) or
//!   source/destinationIPv6Address (27, 28), protocolIdentifier (4, 1), ipClassOfService (5, 1);
//! - L4 (the same): sourceTransportPort (7, 2) and destinationTransportPort (11, 2), with
//!   tcpControlBits (6, 2) for TCP; or icmpTypeCodeIPv4 (32, 2) / icmpTypeCodeIPv6 (139, 2);
//! - router (extended router): ipNextHopIPv4Address (15) or ipNextHopIPv6Address (62), source
//!   and destination prefix lengths (9/13 or 29/30, 1);
//! - gateway (extended gateway): bgpNextHopIPv4Address (18) or bgpNextHopIPv6Address (63),
//!   bgpSourceAsNumber (16, 4), bgpDestinationAsNumber (17, 4), bgpNextAdjacentAsNumber
//!   (128, 4), bgpPrevAdjacentAsNumber (129, 4).
//!
//! One function ([`walk`]) lists the elements of a layout with their values; compiling a
//! layout and writing a record both go through it, so the two cannot disagree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use super::packet::{Mac, L4};
use crate::template::{Dialect, FieldSpec, Template};

/// Address family of a group of elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Fam {
    /// The group is absent.
    #[default]
    None,
    V4,
    V6,
}

impl Fam {
    fn of(a: IpAddr) -> Fam {
        match a {
            IpAddr::V4(_) => Fam::V4,
            IpAddr::V6(_) => Fam::V6,
        }
    }

    fn n(self) -> usize {
        self as usize
    }
}

/// Which transport elements a record has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum L4Kind {
    #[default]
    None,
    Ports,
    Tcp,
    Icmp,
}

/// The groups of elements one record carries; selects its template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Key {
    /// Agent address (exporterIPv4Address / exporterIPv6Address).
    pub agent: Fam,
    /// Sampled packet's addresses, protocol and class of service.
    pub family: Fam,
    pub l4: L4Kind,
    /// Ethernet addresses and type.
    pub l2: bool,
    /// vlanId (ingress VLAN).
    pub vlan_in: bool,
    /// postVlanId (egress VLAN).
    pub vlan_out: bool,
    /// dot1qVlanId / dot1qCustomerVlanId of a double-tagged frame.
    pub qinq: bool,
    /// Extended router data: next hop and prefix lengths.
    pub router: Fam,
    /// Extended gateway data: BGP next hop and AS numbers.
    pub gateway: Fam,
    /// forwardingStatus.
    pub fwd: bool,
}

/// Number of distinct keys.
pub(super) const KEYS: usize = 3 * 3 * 4 * 2 * 2 * 2 * 2 * 3 * 3 * 2;
/// First template id of the layouts (ids are `BASE_ID + Key::index`), clear of the v5 layout's
/// 0 and in the range data templates use.
pub(super) const BASE_ID: u16 = 256;

impl Key {
    /// Mixed-radix index in `0..KEYS`.
    pub(super) fn index(self) -> usize {
        let mut i = self.agent.n();
        i = i * 3 + self.family.n();
        i = i * 4 + self.l4 as usize;
        i = i * 2 + usize::from(self.l2);
        i = i * 2 + usize::from(self.vlan_in);
        i = i * 2 + usize::from(self.vlan_out);
        i = i * 2 + usize::from(self.qinq);
        i = i * 3 + self.router.n();
        i = i * 3 + self.gateway.n();
        i * 2 + usize::from(self.fwd)
    }
}

/// Extended gateway data as it goes into the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gateway {
    pub next_hop: IpAddr,
    pub src_as: u32,
    pub dst_as: u32,
    /// First AS of the destination path (bgpNextAdjacentAsNumber).
    pub next_as: u32,
    /// Source peer AS (bgpPrevAdjacentAsNumber).
    pub peer_as: u32,
}

/// Everything one flow sample told, before it is laid out.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Facts {
    pub agent: Option<IpAddr>,
    /// sFlow data source: type << 32 | index (observationPointId).
    pub source: u64,
    pub in_if: u32,
    pub out_if: u32,
    pub bytes: u64,
    pub packets: u64,
    pub sampling: u32,
    pub fwd: Option<u8>,
    pub mac: Option<Mac>,
    pub vlan_in: Option<u16>,
    pub vlan_out: Option<u16>,
    /// Outer and inner VLAN of a double-tagged frame.
    pub qinq: Option<(u16, u16)>,
    /// Source and destination; the same family.
    pub addrs: Option<(IpAddr, IpAddr)>,
    pub proto: u8,
    pub tos: u8,
    pub l4: L4,
    /// Next hop, source and destination prefix lengths.
    pub router: Option<(IpAddr, u8, u8)>,
    pub gateway: Option<Gateway>,
}

impl Facts {
    pub(super) fn key(&self) -> Key {
        let family = match self.addrs {
            Some((s, d)) if Fam::of(s) == Fam::of(d) => Fam::of(s),
            _ => Fam::None,
        };
        let l4 = if family == Fam::None {
            L4Kind::None
        } else {
            match self.l4 {
                L4::None => L4Kind::None,
                L4::Ports { .. } => L4Kind::Ports,
                L4::Tcp { .. } => L4Kind::Tcp,
                L4::Icmp { .. } => L4Kind::Icmp,
            }
        };
        Key {
            agent: self.agent.map_or(Fam::None, Fam::of),
            family,
            l4,
            l2: self.mac.is_some(),
            vlan_in: self.vlan_in.is_some(),
            vlan_out: self.vlan_out.is_some(),
            qinq: self.qinq.is_some(),
            router: self.router.map_or(Fam::None, |r| Fam::of(r.0)),
            gateway: self.gateway.map_or(Fam::None, |g| Fam::of(g.next_hop)),
            fwd: self.fwd.is_some(),
        }
    }
}

/// An address as 4 or 16 bytes as the family says (zeros if the address is of the other
/// family, which `Facts::key` never lets happen).
fn addr_bytes(fam: Fam, a: Option<IpAddr>, buf: &mut [u8; 16]) -> &[u8] {
    match (fam, a) {
        (Fam::V4, Some(IpAddr::V4(v))) => buf[..4].copy_from_slice(&v.octets()),
        (Fam::V6, Some(IpAddr::V6(v))) => buf.copy_from_slice(&v.octets()),
        _ => *buf = [0; 16],
    }
    match fam {
        Fam::V6 => &buf[..],
        _ => &buf[..4],
    }
}

/// Lists the elements of layout `k`, in record order, with their values taken from `f`:
/// `out(element id, value)`, where the value's length is the element's length in the layout.
#[inline(always)]
pub(super) fn walk(k: Key, f: &Facts, out: &mut impl FnMut(u16, &[u8])) {
    let mut a = [0u8; 16];
    match k.agent {
        Fam::None => {}
        Fam::V4 => out(130, addr_bytes(Fam::V4, f.agent, &mut a)),
        Fam::V6 => out(131, addr_bytes(Fam::V6, f.agent, &mut a)),
    }
    out(138, &f.source.to_be_bytes());
    out(10, &f.in_if.to_be_bytes());
    out(14, &f.out_if.to_be_bytes());
    out(1, &f.bytes.to_be_bytes());
    out(2, &f.packets.to_be_bytes());
    out(34, &f.sampling.to_be_bytes());
    if k.fwd {
        out(89, &[f.fwd.unwrap_or(0)]);
    }
    if k.l2 {
        let m = f.mac.unwrap_or_default();
        out(56, &m.src);
        out(80, &m.dst);
        out(256, &m.ethertype.to_be_bytes());
    }
    if k.vlan_in {
        out(58, &f.vlan_in.unwrap_or(0).to_be_bytes());
    }
    if k.vlan_out {
        out(59, &f.vlan_out.unwrap_or(0).to_be_bytes());
    }
    if k.qinq {
        let (outer, inner) = f.qinq.unwrap_or((0, 0));
        out(243, &outer.to_be_bytes());
        out(245, &inner.to_be_bytes());
    }
    let (src, dst) = match f.addrs {
        Some((s, d)) => (Some(s), Some(d)),
        None => (None, None),
    };
    match k.family {
        Fam::None => {}
        Fam::V4 => {
            out(8, addr_bytes(Fam::V4, src, &mut a));
            out(12, addr_bytes(Fam::V4, dst, &mut a));
        }
        Fam::V6 => {
            out(27, addr_bytes(Fam::V6, src, &mut a));
            out(28, addr_bytes(Fam::V6, dst, &mut a));
        }
    }
    if k.family != Fam::None {
        out(4, &[f.proto]);
        out(5, &[f.tos]);
        let (sp, dp, flags, tc) = match f.l4 {
            L4::None => (0, 0, 0, 0),
            L4::Ports { src, dst } => (src, dst, 0, 0),
            L4::Tcp { src, dst, flags } => (src, dst, flags, 0),
            L4::Icmp { type_code } => (0, 0, 0, type_code),
        };
        match k.l4 {
            L4Kind::None => {}
            L4Kind::Ports | L4Kind::Tcp => {
                out(7, &sp.to_be_bytes());
                out(11, &dp.to_be_bytes());
                if k.l4 == L4Kind::Tcp {
                    out(6, &flags.to_be_bytes());
                }
            }
            L4Kind::Icmp => out(
                if k.family == Fam::V6 { 139 } else { 32 },
                &tc.to_be_bytes(),
            ),
        }
    }
    if k.router != Fam::None {
        let (nh, sm, dm) = match f.router {
            Some((nh, s, d)) => (Some(nh), s, d),
            None => (None, 0, 0),
        };
        out(
            if k.router == Fam::V6 { 62 } else { 15 },
            addr_bytes(k.router, nh, &mut a),
        );
        // Prefix lengths belong to the sampled packet's family; without addresses, to the
        // next hop's.
        let v6 = match k.family {
            Fam::None => k.router == Fam::V6,
            fam => fam == Fam::V6,
        };
        out(if v6 { 29 } else { 9 }, &[sm]);
        out(if v6 { 30 } else { 13 }, &[dm]);
    }
    if k.gateway != Fam::None {
        let g = f.gateway;
        let nh = g.map(|g| g.next_hop);
        out(
            if k.gateway == Fam::V6 { 63 } else { 18 },
            addr_bytes(k.gateway, nh, &mut a),
        );
        out(16, &g.map_or(0, |g| g.src_as).to_be_bytes());
        out(17, &g.map_or(0, |g| g.dst_as).to_be_bytes());
        out(128, &g.map_or(0, |g| g.next_as).to_be_bytes());
        out(129, &g.map_or(0, |g| g.peer_as).to_be_bytes());
    }
}

/// Longest record of any layout (an IPv6 agent, IPv6 addresses, every group).
pub(super) const MAX_RECORD: usize = 192;
const _: () = assert!(MAX_RECORD >= super::counters::layout::MAX_LEN);

/// Writes the record of `f` into `buf` and returns its length and template.
pub(super) fn write(f: &Facts, buf: &mut [u8; MAX_RECORD]) -> (usize, &'static Template) {
    let k = f.key();
    let mut n = 0;
    walk(k, f, &mut |_, v| {
        // Every layout fits (checked for all of them by a test); a value that would not is
        // dropped rather than written past the end.
        if let Some(dst) = buf.get_mut(n..n + v.len()) {
            dst.copy_from_slice(v);
            n += v.len();
        }
    });
    (n, template(k))
}

/// The template of layout `k`, compiled on first use.
pub(super) fn template(k: Key) -> &'static Template {
    static LAYOUTS: [OnceLock<Box<Template>>; KEYS] = [const { OnceLock::new() }; KEYS];
    let i = k.index();
    // `index` is below KEYS by construction; the fallback only keeps this panic-free.
    let cell = LAYOUTS.get(i).unwrap_or(&LAYOUTS[0]);
    cell.get_or_init(|| {
        let mut specs = Vec::with_capacity(40);
        walk(k, &Facts::default(), &mut |id, v| {
            specs.push(FieldSpec {
                id,
                pen: 0,
                len: v.len() as u16,
            })
        });
        match Template::compile(BASE_ID + i as u16, Dialect::Sflow, false, 0, &specs) {
            Ok(t) => Box::new(t),
            Err(e) => unreachable!("static sFlow layout compiles: {e}"),
        }
    })
}

/// The address of an unknown next hop in the family of `like`.
pub(super) fn unspecified(like: Fam) -> IpAddr {
    match like {
        Fam::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}
