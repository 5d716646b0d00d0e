//! Information elements: the names and abstract types of NetFlow v9 field types and IPFIX
//! information elements (IANA registry, RFC 7012, plus the vendor elements we know).
//!
//! Names follow the IANA registry converted to snake_case, the way Elastic's Filebeat netflow
//! input names them (`octetDeltaCount` -> `octet_delta_count`), so that dashboards built for
//! Filebeat read our documents. The table is only consulted when a template is compiled, never
//! per record.

use crate::ie_table;

/// Private enterprise number of RFC 5103 reverse information elements.
pub const REVERSE_PEN: u32 = 29305;

/// IPFIX abstract data types (RFC 7012 §3.1, RFC 6313 for the list types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IeType {
    Unsigned8,
    Unsigned16,
    Unsigned32,
    Unsigned64,
    Signed8,
    Signed16,
    Signed32,
    Signed64,
    Float32,
    Float64,
    Boolean,
    MacAddress,
    OctetArray,
    String,
    DateTimeSeconds,
    DateTimeMilliseconds,
    DateTimeMicroseconds,
    DateTimeNanoseconds,
    Ipv4Address,
    Ipv6Address,
    BasicList,
    SubTemplateList,
    SubTemplateMultiList,
}

/// One known information element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IeDef {
    /// Private enterprise number; 0 for IANA elements.
    pub pen: u32,
    /// Element id without the enterprise bit.
    pub id: u16,
    /// snake_case name used under `netflow.` in documents.
    pub name: &'static str,
    /// Abstract data type.
    pub ty: IeType,
}

/// Looks up an IPFIX element by enterprise number and id. Reverse elements (PEN 29305) are
/// not in the table: callers look up the forward element and prefix `reverse_`.
pub fn lookup(pen: u32, id: u16) -> Option<&'static IeDef> {
    if pen == 0 {
        ie_table::IANA
            .binary_search_by_key(&id, |d| d.id)
            .ok()
            .map(|i| &ie_table::IANA[i])
    } else {
        ie_table::ENTERPRISE
            .binary_search_by(|d| (d.pen, d.id).cmp(&(pen, id)))
            .ok()
            .map(|i| &ie_table::ENTERPRISE[i])
    }
}

/// Looks up a NetFlow v9 field type. v9 ids below 32768 share the IANA registry (RFC 3954 §8,
/// RFC 7012 §4); a few vendor v9 ids (Cisco NSEL and others) have their own entries.
pub fn lookup_v9(id: u16) -> Option<&'static IeDef> {
    ie_table::V9_ONLY
        .binary_search_by_key(&id, |d| d.id)
        .ok()
        .map(|i| &ie_table::V9_ONLY[i])
        .or_else(|| lookup(0, id))
}

/// Every known element: IANA, enterprise-specific and v9-only ones.
pub fn all() -> impl Iterator<Item = &'static IeDef> {
    ie_table::IANA
        .iter()
        .chain(ie_table::ENTERPRISE.iter())
        .chain(ie_table::V9_ONLY.iter())
}
