//! Sluice side: one `sluice decode` JSON document -> [`NormRecord`].
//!
//! Only the `netflow.*` elements are read (named like Elastic Filebeat's netflow input:
//! IANA IPFIX names in snake_case; NetFlow v5 records use the same names), never the
//! ECS copies (`source.ip`, `network.bytes`, ...), so both sides of a comparison look
//! at the same information element:
//!
//! | key             | IE  | `netflow.` element                |
//! |-----------------|-----|-----------------------------------|
//! | `bytes`         | 1   | `octet_delta_count`               |
//! | `packets`       | 2   | `packet_delta_count`              |
//! | `proto`         | 4   | `protocol_identifier`             |
//! | `tcp_flags`     | 6   | `tcp_control_bits`                |
//! | `src_port`      | 7   | `source_transport_port`           |
//! | `src_addr`      | 8   | `source_ipv4_address`             |
//! | `src_mask`      | 9   | `source_ipv4_prefix_length`       |
//! | `in_if`         | 10  | `ingress_interface`               |
//! | `dst_port`      | 11  | `destination_transport_port`      |
//! | `dst_addr`      | 12  | `destination_ipv4_address`        |
//! | `dst_mask`      | 13  | `destination_ipv4_prefix_length`  |
//! | `out_if`        | 14  | `egress_interface`                |
//! | `next_hop`      | 15  | `ip_next_hop_ipv4_address`        |
//! | `src_as`        | 16  | `bgp_source_as_number`            |
//! | `dst_as`        | 17  | `bgp_destination_as_number`       |
//! | `src_addr`      | 27  | `source_ipv6_address`             |
//! | `dst_addr`      | 28  | `destination_ipv6_address`        |
//! | `src_mask`      | 29  | `source_ipv6_prefix_length`       |
//! | `dst_mask`      | 30  | `destination_ipv6_prefix_length`  |
//! | `next_hop`      | 62  | `ip_next_hop_ipv6_address`        |
//! | `bytes_total`   | 85  | `octet_total_count`               |
//! | `packets_total` | 86  | `packet_total_count`              |
//!
//! A value may be a JSON number or string (hex `0x..` accepted); if an element occurs
//! several times in a record and Sluice emits a JSON array, its items are taken in
//! order, and IPv4/IPv6 elements of one key are joined as described in `norm.rs`.
//! Reverse elements (`reverse_*`) and everything else are ignored.

use super::norm::{target_for_ie, NormBuilder, NormRecord};
use serde_json::Value;
use std::collections::BTreeMap;

/// (IE, Filebeat-style `netflow.` element name) for every mapped element.
pub const IE_NAMES: [(u16, &str); 22] = [
    (1, "octet_delta_count"),
    (2, "packet_delta_count"),
    (4, "protocol_identifier"),
    (6, "tcp_control_bits"),
    (7, "source_transport_port"),
    (8, "source_ipv4_address"),
    (9, "source_ipv4_prefix_length"),
    (10, "ingress_interface"),
    (11, "destination_transport_port"),
    (12, "destination_ipv4_address"),
    (13, "destination_ipv4_prefix_length"),
    (14, "egress_interface"),
    (15, "ip_next_hop_ipv4_address"),
    (16, "bgp_source_as_number"),
    (17, "bgp_destination_as_number"),
    (27, "source_ipv6_address"),
    (28, "destination_ipv6_address"),
    (29, "source_ipv6_prefix_length"),
    (30, "destination_ipv6_prefix_length"),
    (62, "ip_next_hop_ipv6_address"),
    (85, "octet_total_count"),
    (86, "packet_total_count"),
];

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Normalise one Sluice document (its `netflow` object) to a [`NormRecord`].
pub fn norm_from_doc(doc: &Value) -> NormRecord {
    let mut b = NormBuilder::new();
    let Some(nf) = doc.get("netflow").and_then(Value::as_object) else {
        return b.finish();
    };
    for (ie, name) in IE_NAMES {
        let (Some(target), Some(v)) = (target_for_ie(ie), nf.get(name)) else {
            continue;
        };
        match v {
            Value::Array(items) => {
                for item in items {
                    b.push_str(target, &scalar_text(item));
                }
            }
            other => b.push_str(target, &scalar_text(other)),
        }
    }
    b.finish()
}

/// `sluice.frame` of a document (set by `sluice decode --annotate`).
pub fn doc_frame(doc: &Value) -> Option<u64> {
    let f = doc.pointer("/sluice/frame")?;
    f.as_u64().or_else(|| f.as_str()?.trim().parse().ok())
}

/// Group normalised documents by `sluice.frame`, keeping document order within a frame.
///
/// Panics (with the offending document) if one has no `sluice.frame`: decode with
/// `--annotate`.
pub fn records_by_frame<'a>(
    docs: impl IntoIterator<Item = &'a Value>,
) -> BTreeMap<u64, Vec<NormRecord>> {
    let mut out: BTreeMap<u64, Vec<NormRecord>> = BTreeMap::new();
    for doc in docs {
        let frame = doc_frame(doc).unwrap_or_else(|| {
            panic!("sluice document without sluice.frame (was --annotate given?): {doc}")
        });
        out.entry(frame).or_default().push(norm_from_doc(doc));
    }
    out
}

/// Parse newline-delimited JSON (one document per non-empty line).
///
/// Panics naming the line that is not JSON.
pub fn parse_ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("sluice output line {} is not JSON ({e}): {l}", i + 1))
        })
        .collect()
}
