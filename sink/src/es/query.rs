//! `--where` expressions ([`Filter`]) as Elasticsearch query DSL, for `sluice top --source es`
//! and `sluice dump --source es`.
//!
//! Each primitive becomes a query on the document field holding what the local filter
//! compares, so both sources select the same flows:
//!
//! | primitive | query |
//! |---|---|
//! | `[src\|dst] ip/net/host A[/L]` | `term` on `source.ip` / `destination.ip` with the CIDR (the `ip` type takes prefixes; IPv4-mapped addresses are IPv4 there too) |
//! | `[src\|dst] port N[-M]` | `term` / `range` on `source.port` / `destination.port` |
//! | `proto P` | `term` on `network.iana_number` (a keyword: `"6"`) |
//! | `exporter A[/L]` | `term` on `observer.ip` |
//! | `[in\|out] if N` | `term` on `observer.ingress.interface.id` / `observer.egress.interface.id` |
//! | `[src\|dst] as N` | `term` on `netflow.bgp_source_as_number` / `netflow.bgp_destination_as_number`: the record's own AS (IE 16/17), which is what the filter compares, not the GeoIP `source.as.number` |
//! | `bytes`/`packets CMP N` | `range` on the exporter's raw counter, with the decoder's precedence among the alternatives (`octet_delta_count`, else `octet_total_count`, else `post_octet_delta_count`, else `initiator_octets`) |
//! | `any` | `match_all` |
//! | `not`, `and`, `or` | `bool` `must_not`, `filter`, `should` (`minimum_should_match: 1`) |
//!
//! "Either side" primitives are a `should` over both fields. A document without the field
//! never matches a primitive on it, and `must_not` matches it: the local semantics.
//!
//! Every primitive of the language has a translation today; [`to_query`] still returns a
//! `Result` so that a primitive added later without one is an error, never a silently wider
//! query.

use serde_json::{json, Value};

use crate::filter::{Cmp, Counter, Filter, Net, Node, Side};

/// Raw counter fields in the decoder's order of precedence (`Slot::Bytes` and
/// `Slot::Packets` in sluice-decode).
const BYTES_FIELDS: [&str; 4] = [
    "netflow.octet_delta_count",
    "netflow.octet_total_count",
    "netflow.post_octet_delta_count",
    "netflow.initiator_octets",
];
const PACKETS_FIELDS: [&str; 4] = [
    "netflow.packet_delta_count",
    "netflow.packet_total_count",
    "netflow.post_packet_delta_count",
    "netflow.initiator_packets",
];

/// The query DSL of a parsed `--where` expression.
pub fn to_query(f: &Filter) -> Result<Value, String> {
    node(f.root())
}

fn cidr(n: Net) -> String {
    match n {
        Net::V4 { addr, mask } => {
            format!("{}/{}", std::net::Ipv4Addr::from(addr), mask.count_ones())
        }
        Net::V6 { addr, mask } => {
            format!("{}/{}", std::net::Ipv6Addr::from(addr), mask.count_ones())
        }
    }
}

fn term(field: &str, v: Value) -> Value {
    json!({"term": {field: v}})
}

fn any_of(qs: Vec<Value>) -> Value {
    json!({"bool": {"should": qs, "minimum_should_match": 1}})
}

/// `q(field)` on the field of `side`, or on either.
fn sided(side: Side, src: &str, dst: &str, q: impl Fn(&str) -> Value) -> Value {
    match side {
        Side::Src => q(src),
        Side::Dst => q(dst),
        Side::Either => any_of(vec![q(src), q(dst)]),
    }
}

fn node(n: &Node) -> Result<Value, String> {
    Ok(match n {
        Node::Any => json!({"match_all": {}}),
        Node::Ip(side, net) => {
            let c = cidr(*net);
            sided(*side, "source.ip", "destination.ip", |f| term(f, json!(c)))
        }
        Node::Port(side, lo, hi) => {
            let (lo, hi) = (*lo, *hi);
            sided(*side, "source.port", "destination.port", |f| {
                if lo == hi {
                    term(f, json!(lo))
                } else {
                    json!({"range": {f: {"gte": lo, "lte": hi}}})
                }
            })
        }
        Node::Proto(p) => term("network.iana_number", json!(p.to_string())),
        Node::Exporter(net) => term("observer.ip", json!(cidr(*net))),
        Node::If(side, i) => sided(
            *side,
            "observer.ingress.interface.id",
            "observer.egress.interface.id",
            |f| term(f, json!(i.to_string())),
        ),
        Node::As(side, a) => sided(
            *side,
            "netflow.bgp_source_as_number",
            "netflow.bgp_destination_as_number",
            |f| term(f, json!(a)),
        ),
        Node::Count(counter, cmp, v) => {
            let fields = match counter {
                Counter::Bytes => &BYTES_FIELDS,
                Counter::Packets => &PACKETS_FIELDS,
            };
            counter_query(fields, *cmp, *v)
        }
        Node::Not(inner) => json!({"bool": {"must_not": [node(inner)?]}}),
        Node::And(xs) => {
            let qs = xs.iter().map(node).collect::<Result<Vec<_>, _>>()?;
            json!({"bool": {"filter": qs}})
        }
        Node::Or(xs) => any_of(xs.iter().map(node).collect::<Result<Vec<_>, _>>()?),
    })
}

/// `counter CMP v` where the counter is the first of `fields` the document has.
fn counter_query(fields: &[&str], cmp: Cmp, v: u64) -> Value {
    let range = |f: &str| match cmp {
        Cmp::Eq => term(f, json!(v)),
        Cmp::Gt => json!({"range": {f: {"gt": v}}}),
        Cmp::Ge => json!({"range": {f: {"gte": v}}}),
        Cmp::Lt => json!({"range": {f: {"lt": v}}}),
        Cmp::Le => json!({"range": {f: {"lte": v}}}),
    };
    let alternatives = (0..fields.len())
        .map(|i| {
            let absent: Vec<Value> = fields[..i]
                .iter()
                .map(|f| json!({"exists": {"field": f}}))
                .collect();
            if absent.is_empty() {
                range(fields[i])
            } else {
                json!({"bool": {"filter": [range(fields[i])], "must_not": absent}})
            }
        })
        .collect();
    any_of(alternatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(expr: &str) -> Value {
        to_query(&Filter::parse(expr).expect("parses")).expect("translates")
    }

    #[test]
    fn primitives() {
        assert_eq!(
            q("src net 10.1.2.3/8"),
            json!({"term": {"source.ip": "10.0.0.0/8"}})
        );
        assert_eq!(
            q("dst ip ::ffff:192.0.2.1"),
            json!({"term": {"destination.ip": "192.0.2.1/32"}})
        );
        assert_eq!(
            q("port 1024-2048"),
            json!({"bool": {"should": [
                {"range": {"source.port": {"gte": 1024, "lte": 2048}}},
                {"range": {"destination.port": {"gte": 1024, "lte": 2048}}}
            ], "minimum_should_match": 1}})
        );
        assert_eq!(q("udp"), json!({"term": {"network.iana_number": "17"}}));
        assert_eq!(
            q("out if 3"),
            json!({"term": {"observer.egress.interface.id": "3"}})
        );
        assert_eq!(
            q("src as 64512"),
            json!({"term": {"netflow.bgp_source_as_number": 64512}})
        );
        assert_eq!(
            q("exporter 2001:db8::/32"),
            json!({"term": {"observer.ip": "2001:db8::/32"}})
        );
    }

    #[test]
    fn boolean_structure() {
        assert_eq!(
            q("not tcp and (any or dst port 53)"),
            json!({"bool": {"filter": [
                {"bool": {"must_not": [{"term": {"network.iana_number": "6"}}]}},
                {"bool": {"should": [
                    {"match_all": {}},
                    {"term": {"destination.port": 53}}
                ], "minimum_should_match": 1}}
            ]}})
        );
    }

    #[test]
    fn counters_follow_the_decoder_precedence() {
        let v = q("bytes > 1k");
        let alts = v["bool"]["should"].as_array().expect("should");
        assert_eq!(alts.len(), 4);
        assert_eq!(
            alts[0],
            json!({"range": {"netflow.octet_delta_count": {"gt": 1000}}})
        );
        assert_eq!(
            alts[3]["bool"]["must_not"].as_array().map(Vec::len),
            Some(3)
        );
    }

    #[test]
    fn field_names_exist_in_the_schema() {
        let known: Vec<String> = crate::schema::all_fields()
            .into_iter()
            .map(|r| r.path)
            .collect();
        for f in BYTES_FIELDS.iter().chain(&PACKETS_FIELDS).chain(&[
            "netflow.bgp_source_as_number",
            "netflow.bgp_destination_as_number",
            "observer.ingress.interface.id",
            "observer.egress.interface.id",
            "observer.ip",
            "network.iana_number",
        ]) {
            assert!(known.iter().any(|k| k == f), "{f} is not a document field");
        }
    }
}
