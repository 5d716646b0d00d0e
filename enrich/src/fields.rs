//! Elements that the decoder's slots do not cover but enrichment reads: NAT (NSEL / IPFIX
//! post-NAT addresses and ports), flowDirection, biflowDirection and the ICMP type/code
//! elements. Located once per compiled template (the per-core cache keys them by the
//! template's uid) by scanning its fields.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sluice_decode::record::be_uint;
use sluice_decode::{Record, Template};

/// No such field.
pub(crate) const NONE: u16 = u16::MAX;

/// Field indexes (or [`NONE`]) of the elements below, for one template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtraFields {
    /// postNATSourceIPv4Address (225, or NSEL's 40001).
    pub nat_src_v4: u16,
    /// postNATDestinationIPv4Address (226, or 40002).
    pub nat_dst_v4: u16,
    /// postNAPTSourceTransportPort (227, or 40003).
    pub nat_src_port: u16,
    /// postNAPTDestinationTransportPort (228, or 40004).
    pub nat_dst_port: u16,
    /// postNATSourceIPv6Address (281).
    pub nat_src_v6: u16,
    /// postNATDestinationIPv6Address (282).
    pub nat_dst_v6: u16,
    /// flowDirection (61): 0 ingress, 1 egress.
    pub flow_direction: u16,
    /// biflowDirection (239, RFC 5103): 1 initiator, 2 reverse initiator.
    pub biflow_direction: u16,
    /// icmpTypeCodeIPv4 (32): type << 8 | code.
    pub icmp_type_code_v4: u16,
    /// icmpTypeCodeIPv6 (139).
    pub icmp_type_code_v6: u16,
    /// icmpTypeIPv4 (176).
    pub icmp_type_v4: u16,
    /// icmpCodeIPv4 (177).
    pub icmp_code_v4: u16,
    /// icmpTypeIPv6 (178).
    pub icmp_type_v6: u16,
    /// icmpCodeIPv6 (179).
    pub icmp_code_v6: u16,
}

impl ExtraFields {
    pub(crate) const EMPTY: ExtraFields = ExtraFields {
        nat_src_v4: NONE,
        nat_dst_v4: NONE,
        nat_src_port: NONE,
        nat_dst_port: NONE,
        nat_src_v6: NONE,
        nat_dst_v6: NONE,
        flow_direction: NONE,
        biflow_direction: NONE,
        icmp_type_code_v4: NONE,
        icmp_type_code_v6: NONE,
        icmp_type_v4: NONE,
        icmp_code_v4: NONE,
        icmp_type_v6: NONE,
        icmp_code_v6: NONE,
    };

    /// Scans a template's fields. IANA elements only (enterprise 0, which is also every v9
    /// field: Cisco NSEL numbers its NAT fields 225-228/281/282 like IPFIX); scope fields and
    /// zero-length fields are skipped; the first occurrence wins.
    pub(crate) fn of(t: &Template) -> ExtraFields {
        let mut x = ExtraFields::EMPTY;
        for (i, f) in t.fields.iter().enumerate() {
            if f.spec.pen != 0 || f.scope || f.spec.len == 0 || i >= usize::from(NONE) {
                continue;
            }
            let slot = match f.spec.id {
                // Older Cisco ASA NSEL sends NF_F_XLATE_* as 40001-40004 (v9 only: in IPFIX
                // such an id would carry the enterprise bit).
                225 | 40001 => &mut x.nat_src_v4,
                226 | 40002 => &mut x.nat_dst_v4,
                227 | 40003 => &mut x.nat_src_port,
                228 | 40004 => &mut x.nat_dst_port,
                281 => &mut x.nat_src_v6,
                282 => &mut x.nat_dst_v6,
                61 => &mut x.flow_direction,
                239 => &mut x.biflow_direction,
                32 => &mut x.icmp_type_code_v4,
                139 => &mut x.icmp_type_code_v6,
                176 => &mut x.icmp_type_v4,
                177 => &mut x.icmp_code_v4,
                178 => &mut x.icmp_type_v6,
                179 => &mut x.icmp_code_v6,
                _ => continue,
            };
            if *slot == NONE {
                *slot = i as u16;
            }
        }
        x
    }
}

/// Unsigned value of field `i`.
#[inline]
pub(crate) fn uint(rec: &Record<'_>, i: u16) -> Option<u64> {
    if i == NONE {
        return None;
    }
    let b = rec.field(usize::from(i));
    (!b.is_empty()).then(|| be_uint(b))
}

/// Address in field `v4` (4 bytes) or else `v6` (16 bytes). An unspecified address (NSEL sends
/// 0.0.0.0 when nothing was translated) counts as absent.
#[inline]
pub(crate) fn ip(rec: &Record<'_>, v4: u16, v6: u16) -> Option<IpAddr> {
    if v4 != NONE {
        if let Ok(a) = <[u8; 4]>::try_from(rec.field(usize::from(v4))) {
            let a = Ipv4Addr::from(a);
            if !a.is_unspecified() {
                return Some(IpAddr::V4(a));
            }
        }
    }
    if v6 != NONE {
        if let Ok(a) = <[u8; 16]>::try_from(rec.field(usize::from(v6))) {
            let a = Ipv6Addr::from(a);
            if !a.is_unspecified() {
                return Some(IpAddr::V6(a));
            }
        }
    }
    None
}
