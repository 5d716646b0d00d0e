//! Client/server orientation and `network.direction`.
//!
//! # Which end is the server
//!
//! A NetFlow record says where packets went, not who opened the connection, so the server is
//! guessed, in this order:
//!
//! 1. **biflowDirection** (IE 239, RFC 5103 §5.2), when the exporter knows: 1 (initiator)
//!    makes the source the client, 2 (reverseInitiator) the destination.
//! 2. **ICMP/ICMPv6** request and reply types: the receiver of an echo, timestamp,
//!    information, address-mask, node-information or home-agent-discovery request is the
//!    server, the sender of the reply is. Other ICMP types have no server.
//! 3. **Ports** (TCP, UDP, SCTP, both ports non-zero): each port is ranked 2 if it names a
//!    service in [`crate::names::service_name`]'s table, 1 if it is otherwise below 1024 (an
//!    IANA system port), 0 otherwise; the higher rank is the server's (so an NFS client
//!    bound to a privileged source port still sees 2049 as the server). Equal ranks: the
//!    lower port is the server's (ephemeral ports are high). Equal ports: unknown.
//! 4. Otherwise unknown.
//!
//! # `network.direction`
//!
//! If the record carries flowDirection (IE 61), it is `ingress` (0) or `egress` (1), as the
//! exporter saw the packets cross its interface. Otherwise the direction comes from the
//! endpoints' locality: an address is internal if it is private, CGNAT, ULA, loopback or
//! link-local space, or in the configured internal networks. Internal to internal is
//! `internal`, internal to public `outbound`, public to internal `inbound`, public to public
//! `external`. A multicast or broadcast destination stays on the source's side (`internal`
//! from an internal source, `external` otherwise). Without both addresses there is no
//! direction.

use crate::names::{self, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The record's source address and port.
    Source,
    /// The record's destination address and port.
    Destination,
}

/// ICMP request types: the receiver is the server.
fn icmp_request(proto: u8, t: u8) -> bool {
    match proto {
        PROTO_ICMP => matches!(t, 8 | 13 | 15 | 17),
        _ => matches!(t, 128 | 139 | 144),
    }
}

/// ICMP reply types: the sender is the server.
fn icmp_reply(proto: u8, t: u8) -> bool {
    match proto {
        PROTO_ICMP => matches!(t, 0 | 14 | 16 | 18),
        _ => matches!(t, 129 | 140 | 145),
    }
}

fn rank(proto: u8, port: u16) -> u8 {
    if names::service_name(proto, port).is_some() {
        2
    } else if port < 1024 {
        1
    } else {
        0
    }
}

/// Which end is the server (see the module documentation for the rules).
pub fn server_side(
    proto: Option<u8>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    icmp: Option<(u8, u8)>,
    biflow_direction: Option<u64>,
) -> Option<Side> {
    match biflow_direction {
        Some(1) => return Some(Side::Destination),
        Some(2) => return Some(Side::Source),
        _ => {}
    }
    let proto = proto?;
    match proto {
        PROTO_ICMP | PROTO_ICMPV6 => {
            let (t, _) = icmp?;
            if icmp_request(proto, t) {
                Some(Side::Destination)
            } else if icmp_reply(proto, t) {
                Some(Side::Source)
            } else {
                None
            }
        }
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => {
            let (s, d) = (src_port?, dst_port?);
            if s == 0 || d == 0 || s == d {
                return None;
            }
            let (rs, rd) = (rank(proto, s), rank(proto, d));
            if rs != rd {
                Some(if rs > rd {
                    Side::Source
                } else {
                    Side::Destination
                })
            } else if s < d {
                Some(Side::Source)
            } else {
                Some(Side::Destination)
            }
        }
        _ => None,
    }
}

/// Where an address sits for the direction table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zone {
    Internal,
    External,
    /// Multicast or broadcast: goes with the other end.
    Group,
}

/// `network.direction` (see the module documentation).
pub(crate) fn network_direction(
    flow_direction: Option<u64>,
    src: Option<Zone>,
    dst: Option<Zone>,
) -> Option<&'static str> {
    match flow_direction {
        Some(0) => return Some("ingress"),
        Some(1) => return Some("egress"),
        _ => {}
    }
    let (s, d) = (src?, dst?);
    let d = if d == Zone::Group { s } else { d };
    let s = if s == Zone::Group { d } else { s };
    Some(match (s, d) {
        (Zone::Internal, Zone::Internal) => "internal",
        (Zone::Internal, _) => "outbound",
        (_, Zone::Internal) => "inbound",
        _ => "external",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let tcp = Some(PROTO_TCP);
        let udp = Some(PROTO_UDP);
        // Client 51000 -> server 443.
        assert_eq!(
            server_side(tcp, Some(51000), Some(443), None, None),
            Some(Side::Destination)
        );
        assert_eq!(
            server_side(tcp, Some(443), Some(51000), None, None),
            Some(Side::Source)
        );
        // Named service above 1024 vs ephemeral.
        assert_eq!(
            server_side(tcp, Some(40000), Some(5432), None, None),
            Some(Side::Destination)
        );
        // NFS client on a privileged source port: the named service wins.
        assert_eq!(
            server_side(tcp, Some(1000), Some(2049), None, None),
            Some(Side::Destination)
        );
        // Both named: the lower port.
        assert_eq!(
            server_side(udp, Some(123), Some(53), None, None),
            Some(Side::Destination)
        );
        // Neither: the lower port.
        assert_eq!(
            server_side(udp, Some(40000), Some(50000), None, None),
            Some(Side::Source)
        );
        assert_eq!(server_side(udp, Some(123), Some(123), None, None), None);
        assert_eq!(server_side(tcp, Some(0), Some(80), None, None), None);
        assert_eq!(server_side(tcp, None, Some(80), None, None), None);
        assert_eq!(server_side(Some(47), Some(1), Some(2), None, None), None);
        assert_eq!(server_side(None, Some(1), Some(2), None, None), None);
    }

    #[test]
    fn biflow_and_icmp() {
        assert_eq!(
            server_side(Some(PROTO_TCP), Some(443), Some(51000), None, Some(1)),
            Some(Side::Destination),
            "biflowDirection initiator overrides ports"
        );
        assert_eq!(
            server_side(Some(PROTO_TCP), Some(51000), Some(443), None, Some(2)),
            Some(Side::Source)
        );
        let icmp = Some(PROTO_ICMP);
        assert_eq!(
            server_side(icmp, None, None, Some((8, 0)), None),
            Some(Side::Destination)
        );
        assert_eq!(
            server_side(icmp, None, None, Some((0, 0)), None),
            Some(Side::Source)
        );
        assert_eq!(server_side(icmp, None, None, Some((3, 3)), None), None);
        assert_eq!(
            server_side(Some(PROTO_ICMPV6), None, None, Some((128, 0)), None),
            Some(Side::Destination)
        );
        assert_eq!(
            server_side(Some(PROTO_ICMPV6), None, None, Some((129, 0)), None),
            Some(Side::Source)
        );
    }

    #[test]
    fn directions() {
        use Zone::*;
        assert_eq!(
            network_direction(Some(0), Some(Internal), Some(External)),
            Some("ingress")
        );
        assert_eq!(network_direction(Some(1), None, None), Some("egress"));
        assert_eq!(
            network_direction(None, Some(Internal), Some(External)),
            Some("outbound")
        );
        assert_eq!(
            network_direction(None, Some(External), Some(Internal)),
            Some("inbound")
        );
        assert_eq!(
            network_direction(None, Some(Internal), Some(Internal)),
            Some("internal")
        );
        assert_eq!(
            network_direction(None, Some(External), Some(External)),
            Some("external")
        );
        assert_eq!(
            network_direction(None, Some(Internal), Some(Group)),
            Some("internal")
        );
        assert_eq!(
            network_direction(None, Some(External), Some(Group)),
            Some("external")
        );
        assert_eq!(network_direction(Some(7), Some(Internal), None), None);
    }
}
