//! `sluice top --source es`: the top-N table of [`crate::top`] from Elasticsearch/OpenSearch
//! aggregations, in two requests.
//!
//! 1. **Candidates.** One search (`size: 0`) over the time range and the `--where` query with
//!    the totals (`sum` of `network.bytes` and `network.packets`, `track_total_hits` for the
//!    flow count) and, per side of the key, a bucket aggregation ordered by the ranking
//!    metric (`sum` sub-aggregation, or `_count` for flows): `terms` for one field,
//!    `multi_terms` for two (conversations; exporter and interface). Either-end keys (`as`,
//!    `country`, `interface`) have two such aggregations, one per end. Each asks for more
//!    buckets than N (`3N + 20`, `5N + 50` for either-end keys), so that keys just outside
//!    one shard's or one end's top still become candidates.
//! 2. **Exact counts.** One `filters` aggregation with a filter per candidate (for
//!    either-end keys: "this key on either end", so a flow whose ends share it counts once)
//!    and the same sums. These numbers are exact whatever the shard count; the candidates are
//!    ranked on them and the first N kept.
//!
//! 3. **Interface texts** (`interface` only). One more search: per end (ingress, egress), a
//!    `filters` aggregation with a filter per row ("this exporter and ifIndex on this end,
//!    with a name or a description") and a `top_hits` (size 1, `_source` limited to the two
//!    texts) sorted by @timestamp, name and description, descending: the same flow the local
//!    store picks (see [`crate::top`]), the later of the two ends. `filters`, `top_hits` and
//!    `_source` filtering are in every Elasticsearch and OpenSearch version `top` supports; a
//!    server that refuses the request (HTTP 400) gets rows without texts, not an error.
//!
//! **Fallback.** `multi_terms` needs Elasticsearch 7.12 or OpenSearch 2.1. When the server
//! refuses it (HTTP 400 naming `multi_terms`), the two-field sides are read with a
//! `composite` aggregation instead, paged to the end (every pair, exact, slower on many
//! pairs; refused past [`COMPOSITE_MAX_BUCKETS`]), and phase 2 runs on the best of them.
//! [`PairStrategy`] forces either path.
//!
//! Limits: sums come back as doubles, exact up to 2^53 bytes per key. A key outside every
//! side's candidate list cannot be ranked; with the margins above that needs a key that is
//! small on each end yet large on both together, or strongly skewed shards.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::client::Client;
use super::config::EsConfig;
use super::dump::{range_query, search};
use super::error::EsError;
use crate::top::{rank, By, Counts, IfNames, Key, Order, Row, Top};

/// Composite pages are read until this many buckets, then the query is refused as too wide.
pub const COMPOSITE_MAX_BUCKETS: usize = 1_000_000;

/// How two-field keys are aggregated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PairStrategy {
    /// `multi_terms`, falling back to `composite` if the server does not know it.
    #[default]
    Auto,
    /// `multi_terms` only.
    MultiTerms,
    /// `composite` only.
    Composite,
}

/// A top-N query for Elasticsearch.
#[derive(Clone, Debug)]
pub struct EsTopQuery {
    /// Start of the @timestamp range, ns since the epoch, inclusive.
    pub from_ns: i64,
    /// End, exclusive.
    pub to_ns: i64,
    /// The `--where` expression as query DSL (`es::to_query`).
    pub query: Option<Value>,
    /// Grouping.
    pub by: By,
    /// Ranking.
    pub order: Order,
    /// Rows to keep.
    pub n: usize,
    /// Two-field aggregation.
    pub pairs: PairStrategy,
}

/// One side of a key: the document fields it is read from.
#[derive(Clone, Copy, Debug)]
enum Side {
    One(&'static str),
    Two(&'static str, &'static str),
}

fn sides(by: By) -> &'static [Side] {
    use Side::{One, Two};
    match by {
        By::Src => &[One("source.ip")],
        By::Dst => &[One("destination.ip")],
        By::Conversation => &[Two("source.ip", "destination.ip")],
        By::Dport => &[One("destination.port")],
        By::Proto => &[One("network.iana_number")],
        By::As => &[One("source.as.number"), One("destination.as.number")],
        By::Country => &[
            One("source.geo.country_iso_code"),
            One("destination.geo.country_iso_code"),
        ],
        By::Exporter => &[One("observer.ip")],
        By::Interface => &[
            Two("observer.ip", "observer.ingress.interface.id"),
            Two("observer.ip", "observer.egress.interface.id"),
        ],
    }
}

/// Sub-aggregations: the sums, named `b` and `p`.
fn sums() -> Value {
    json!({
        "b": {"sum": {"field": "network.bytes"}},
        "p": {"sum": {"field": "network.packets"}},
    })
}

/// Sub-aggregations phase 1 needs: the sum it ranks by (none for flows, ranked by
/// `_count`).
fn ranking_sum(order: Order) -> Value {
    match order {
        Order::Bytes => json!({"b": {"sum": {"field": "network.bytes"}}}),
        Order::Packets => json!({"p": {"sum": {"field": "network.packets"}}}),
        Order::Flows => json!({}),
    }
}

/// The bucket order for the ranking metric.
fn bucket_order(order: Order) -> Value {
    match order {
        Order::Bytes => json!({"b": "desc"}),
        Order::Packets => json!({"p": "desc"}),
        Order::Flows => json!({"_count": "desc"}),
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ip(v: &Value) -> Option<IpAddr> {
    v.as_str()?.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// The [`Key`] of a bucket of `by`, from its field values (one or two).
fn key_of(by: By, vals: &[Value]) -> Option<Key> {
    let first = vals.first()?;
    Some(match by {
        By::Src | By::Dst | By::Exporter => Key::Ip(ip(first)?),
        By::Conversation => Key::Pair(ip(first)?, ip(vals.get(1)?)?),
        By::Dport => Key::Port(u16::try_from(number(first)?).ok()?),
        By::Proto => Key::Proto(u8::try_from(number(first)?).ok()?),
        By::As => Key::As(u32::try_from(number(first)?).ok()?),
        By::Country => Key::Country(text(first)?.into()),
        By::Interface => Key::Interface(ip(first)?, u32::try_from(number(vals.get(1)?)?).ok()?),
    })
}

fn term(field: &str, v: Value) -> Value {
    json!({"term": {field: v}})
}

/// The filter selecting the flows of one key (either end for either-end keys).
fn key_filter(key: &Key) -> Value {
    let either = |a: &str, b: &str, v: Value| json!({"bool": {"should": [term(a, v.clone()), term(b, v)], "minimum_should_match": 1}});
    match key {
        // `Ip` keys belong to src, dst or exporter: the caller passes the field.
        Key::Ip(_) => Value::Null,
        Key::Pair(s, d) => json!({"bool": {"filter": [
            term("source.ip", json!(s.to_string())),
            term("destination.ip", json!(d.to_string())),
        ]}}),
        Key::Port(p) => term("destination.port", json!(p)),
        Key::Proto(p) => term("network.iana_number", json!(p.to_string())),
        Key::As(a) => either("source.as.number", "destination.as.number", json!(a)),
        Key::Country(c) => either(
            "source.geo.country_iso_code",
            "destination.geo.country_iso_code",
            json!(c),
        ),
        Key::Interface(e, i) => json!({"bool": {"filter": [
            term("observer.ip", json!(e.to_string())),
            either(
                "observer.ingress.interface.id",
                "observer.egress.interface.id",
                json!(i.to_string()),
            ),
        ]}}),
    }
}

fn filter_for(by: By, key: &Key) -> Value {
    match (by, key) {
        (By::Src, Key::Ip(a)) => term("source.ip", json!(a.to_string())),
        (By::Dst, Key::Ip(a)) => term("destination.ip", json!(a.to_string())),
        (_, Key::Ip(a)) => term("observer.ip", json!(a.to_string())),
        (_, k) => key_filter(k),
    }
}

fn parse(mut body: Vec<u8>, what: &str) -> Result<Value, EsError> {
    simd_json::serde::from_slice(&mut body)
        .map_err(|e| EsError::Protocol(format!("{what} answer: {e}")))
}

fn is_unknown_multi_terms(e: &EsError) -> bool {
    matches!(e, EsError::Http { status: 400, reason } if reason.contains("multi_terms"))
}

/// Candidates per side.
fn candidates_per_side(by: By, n: usize) -> usize {
    if by.either_end() {
        n.saturating_mul(5).saturating_add(50)
    } else {
        n.saturating_mul(3).saturating_add(20)
    }
}

struct Runner<'a> {
    client: Client,
    path: String,
    q: &'a EsTopQuery,
    query: Value,
}

impl Runner<'_> {
    fn search(&self, req: &Value, what: &str) -> Result<Value, EsError> {
        parse(search(&self.client, &self.path, req)?, what)
    }

    /// Phase 3: the texts of `interface` rows; left empty when the server refuses the
    /// request.
    fn names(&self, rows: &mut [Row]) -> Result<(), EsError> {
        match self.search(&names_request(rows, &self.query), "top_hits aggregation") {
            Ok(v) => {
                apply_names(rows, &v);
                Ok(())
            }
            Err(EsError::Http {
                status: 400,
                reason,
            }) => {
                // The ranking stands; say why the names are missing rather than hide it.
                eprintln!(
                    "sluice top: the server refused the interface-name search ({reason}); \
                     rows are shown without names"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Phase 1: totals and candidates; `composite` decides how two-field sides are read.
    fn candidates(&self, composite: bool) -> Result<(Counts, BTreeSet<Key>), EsError> {
        let q = self.q;
        let size = candidates_per_side(q.by, q.n);
        let mut aggs = Map::new();
        aggs.insert("tb".into(), json!({"sum": {"field": "network.bytes"}}));
        aggs.insert("tp".into(), json!({"sum": {"field": "network.packets"}}));
        for (i, side) in sides(q.by).iter().enumerate() {
            let agg = match *side {
                Side::One(f) => json!({
                    "terms": {"field": f, "size": size, "shard_size": size.saturating_mul(2),
                              "order": bucket_order(q.order)},
                    "aggs": ranking_sum(q.order),
                }),
                Side::Two(a, b) if !composite => json!({
                    "multi_terms": {"terms": [{"field": a}, {"field": b}], "size": size,
                                    "shard_size": size.saturating_mul(2),
                                    "order": bucket_order(q.order)},
                    "aggs": ranking_sum(q.order),
                }),
                Side::Two(..) => continue,
            };
            aggs.insert(format!("s{i}"), agg);
        }
        let req = json!({
            "size": 0,
            "track_total_hits": true,
            "query": self.query,
            "aggs": aggs,
        });
        let v = self.search(&req, "aggregation")?;
        let a = &v["aggregations"];
        let total = Counts {
            bytes: number(&a["tb"]["value"]).unwrap_or(0),
            packets: number(&a["tp"]["value"]).unwrap_or(0),
            flows: number(&v["hits"]["total"]["value"])
                .or_else(|| number(&v["hits"]["total"]))
                .unwrap_or(0),
        };
        let mut keys = BTreeSet::new();
        for (i, side) in sides(q.by).iter().enumerate() {
            match *side {
                Side::One(_) => {
                    for b in buckets(&a[format!("s{i}")]) {
                        keys.extend(key_of(q.by, std::slice::from_ref(&b["key"])));
                    }
                }
                Side::Two(..) if !composite => {
                    for b in buckets(&a[format!("s{i}")]) {
                        let vals = b["key"].as_array().map_or(&[][..], Vec::as_slice);
                        keys.extend(key_of(q.by, vals));
                    }
                }
                Side::Two(f1, f2) => keys.extend(self.composite(f1, f2, size)?),
            }
        }
        Ok((total, keys))
    }

    /// Every pair of `f1`, `f2` through `composite` pages; the `size` best by the ranking
    /// metric.
    fn composite(&self, f1: &str, f2: &str, size: usize) -> Result<Vec<Key>, EsError> {
        let q = self.q;
        let mut all: Vec<Row> = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut comp = json!({
                "size": 1000,
                "sources": [{"a": {"terms": {"field": f1}}}, {"b": {"terms": {"field": f2}}}],
            });
            if let Some(k) = &after {
                comp["after"] = k.clone();
            }
            let req = json!({
                "size": 0,
                "track_total_hits": false,
                "query": self.query,
                "aggs": {"c": {"composite": comp, "aggs": ranking_sum(q.order)}},
            });
            let v = self.search(&req, "composite aggregation")?;
            let c = &v["aggregations"]["c"];
            let page = buckets(c);
            for b in &page {
                let vals = [b["key"]["a"].clone(), b["key"]["b"].clone()];
                if let Some(key) = key_of(q.by, &vals) {
                    all.push(Row {
                        key,
                        counts: bucket_counts(b),
                        names: IfNames::default(),
                    });
                }
            }
            if all.len() > COMPOSITE_MAX_BUCKETS {
                return Err(EsError::Protocol(format!(
                    "more than {COMPOSITE_MAX_BUCKETS} distinct ({f1}, {f2}) pairs: narrow the \
                     range or add --where (this server has no multi_terms aggregation)"
                )));
            }
            match c.get("after_key") {
                Some(k) if !page.is_empty() && !k.is_null() => after = Some(k.clone()),
                _ => break,
            }
        }
        Ok(rank(all, q.order, size)
            .into_iter()
            .map(|r| r.key)
            .collect())
    }

    /// Phase 2: exact counts of each candidate.
    fn exact(&self, keys: &BTreeSet<Key>) -> Result<Vec<Row>, EsError> {
        let q = self.q;
        let keys: Vec<&Key> = keys.iter().collect();
        let filters: Map<String, Value> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i.to_string(), filter_for(q.by, k)))
            .collect();
        let req = json!({
            "size": 0,
            "track_total_hits": false,
            "query": self.query,
            "aggs": {"k": {"filters": {"filters": filters}, "aggs": sums()}},
        });
        let v = self.search(&req, "filters aggregation")?;
        let found = &v["aggregations"]["k"]["buckets"];
        let mut rows = Vec::with_capacity(keys.len());
        for (i, key) in keys.into_iter().enumerate() {
            let b = &found[i.to_string()];
            if b.is_null() {
                return Err(EsError::Protocol(format!(
                    "filters aggregation answer lacks bucket {i}"
                )));
            }
            let counts = bucket_counts(b);
            if counts.flows > 0 {
                rows.push(Row {
                    key: key.clone(),
                    counts,
                    names: IfNames::default(),
                });
            }
        }
        Ok(rows)
    }
}

/// The two ends of an interface: aggregation name, document field prefix.
const IF_ENDS: [(&str, &str); 2] = [
    ("in", "observer.ingress.interface"),
    ("out", "observer.egress.interface"),
];

/// Phase 3: the request for the texts of `rows` (`interface` rows).
fn names_request(rows: &[Row], query: &Value) -> Value {
    let mut aggs = Map::new();
    for (end, prefix) in IF_ENDS {
        let (name, alias) = (format!("{prefix}.name"), format!("{prefix}.alias"));
        let filters: Map<String, Value> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r.key {
                Key::Interface(e, index) => Some((
                    i.to_string(),
                    json!({"bool": {
                        "filter": [
                            term("observer.ip", json!(e.to_string())),
                            term(&format!("{prefix}.id"), json!(index.to_string())),
                        ],
                        "should": [{"exists": {"field": name}}, {"exists": {"field": alias}}],
                        "minimum_should_match": 1,
                    }}),
                )),
                _ => None,
            })
            .collect();
        // Missing texts sort last, and an index without the field mapped sorts as if it
        // were missing instead of failing.
        let text_order = json!({"order": "desc", "missing": "_last", "unmapped_type": "keyword"});
        aggs.insert(
            end.into(),
            json!({
                "filters": {"filters": filters},
                "aggs": {"h": {"top_hits": {
                    "size": 1,
                    "sort": [
                        {"@timestamp": {"order": "desc"}},
                        {name.as_str(): text_order},
                        {alias.as_str(): text_order},
                    ],
                    "_source": {"includes": [name, alias]},
                }}},
            }),
        );
    }
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": query,
        "aggs": aggs,
    })
}

/// A field of a `_source`, as nested objects or as one dotted key.
fn source_field<'a>(src: &'a Value, path: &str) -> &'a Value {
    match src.get(path) {
        Some(v) => v,
        None => path.split('.').fold(src, |v, k| &v[k]),
    }
}

/// Phase 3: gives each row the texts of the later of its two ends' answers.
fn apply_names(rows: &mut [Row], answer: &Value) {
    let aggs = &answer["aggregations"];
    for (i, r) in rows.iter_mut().enumerate() {
        let mut best: Option<(i64, IfNames)> = None;
        for (end, prefix) in IF_ENDS {
            let hit = &aggs[end]["buckets"][i.to_string()]["h"]["hits"]["hits"][0];
            let Some(ms) = hit["sort"][0].as_i64() else {
                continue;
            };
            let text = |field: &str| {
                source_field(&hit["_source"], &format!("{prefix}.{field}"))
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(Box::from)
            };
            let found = IfNames {
                name: text("name"),
                description: text("alias"),
            };
            if !found.is_empty()
                && best.as_ref().is_none_or(|(t, b)| {
                    (ms, &found.name, &found.description) > (*t, &b.name, &b.description)
                })
            {
                best = Some((ms, found));
            }
        }
        r.names = best.map(|b| b.1).unwrap_or_default();
    }
}

fn buckets(agg: &Value) -> Vec<Value> {
    agg["buckets"].as_array().cloned().unwrap_or_default()
}

fn bucket_counts(b: &Value) -> Counts {
    Counts {
        bytes: number(&b["b"]["value"]).unwrap_or(0),
        packets: number(&b["p"]["value"]).unwrap_or(0),
        flows: number(&b["doc_count"]).unwrap_or(0),
    }
}

/// The top-N table of `q` from the cluster's configured index pattern (or data stream).
pub fn top(cfg: &EsConfig, q: &EsTopQuery) -> Result<Top, EsError> {
    cfg.validate()?;
    let r = Runner {
        client: Client::new(cfg)?,
        path: format!("/{}/_search", cfg.read_pattern()),
        q,
        query: range_query(q.from_ns, q.to_ns, q.query.as_ref()),
    };
    let has_pairs = sides(q.by).iter().any(|s| matches!(s, Side::Two(..)));
    let (total, keys) = match q.pairs {
        PairStrategy::Composite => r.candidates(has_pairs)?,
        PairStrategy::MultiTerms => r.candidates(false)?,
        PairStrategy::Auto => match r.candidates(false) {
            Err(e) if has_pairs && is_unknown_multi_terms(&e) => r.candidates(true)?,
            other => other?,
        },
    };
    let mut rows = if q.n == 0 || keys.is_empty() {
        Vec::new()
    } else {
        rank(r.exact(&keys)?, q.order, q.n)
    };
    if q.by == By::Interface && !rows.is_empty() {
        r.names(&mut rows)?;
    }
    Ok(Top {
        by: q.by,
        order: q.order,
        rows,
        total,
        distinct: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_bucket_values() {
        let k = key_of(
            By::Conversation,
            &[json!("10.0.0.1"), json!("::ffff:8.8.8.8")],
        );
        assert_eq!(
            k,
            Some(Key::Pair(
                "10.0.0.1".parse().expect("ip"),
                "8.8.8.8".parse().expect("ip")
            ))
        );
        assert_eq!(key_of(By::Proto, &[json!("17")]), Some(Key::Proto(17)));
        assert_eq!(key_of(By::Dport, &[json!(443)]), Some(Key::Port(443)));
        assert_eq!(key_of(By::Dport, &[json!(70000)]), None);
        assert_eq!(key_of(By::As, &[json!(15169.0)]), Some(Key::As(15169)));
        assert_eq!(
            key_of(By::Interface, &[json!("192.0.2.1"), json!("3")]),
            Some(Key::Interface("192.0.2.1".parse().expect("ip"), 3))
        );
    }

    #[test]
    fn either_end_filters_count_a_flow_once() {
        let f = filter_for(By::As, &Key::As(64500));
        assert_eq!(f["bool"]["minimum_should_match"], 1);
        assert_eq!(f["bool"]["should"].as_array().map(Vec::len), Some(2));
        let f = filter_for(By::Exporter, &Key::Ip("::1".parse().expect("ip")));
        assert_eq!(f, json!({"term": {"observer.ip": "::1"}}));
    }

    fn iface_row(index: u32) -> Row {
        Row {
            key: Key::Interface("192.0.2.1".parse().expect("ip"), index),
            counts: Counts::default(),
            names: IfNames::default(),
        }
    }

    #[test]
    fn interface_texts_come_from_the_later_end() {
        let mut rows = vec![iface_row(7), iface_row(8), iface_row(9)];
        let req = names_request(&rows, &json!({"match_all": {}}));
        let f = &req["aggs"]["out"]["filters"]["filters"]["0"]["bool"];
        assert_eq!(
            f["filter"][1],
            json!({"term": {"observer.egress.interface.id": "7"}})
        );
        assert_eq!(f["minimum_should_match"], 1);
        let h = &req["aggs"]["in"]["aggs"]["h"]["top_hits"];
        assert_eq!(h["size"], 1);
        assert_eq!(h["sort"][0], json!({"@timestamp": {"order": "desc"}}));
        let hit = |ms: i64, src: Value| json!({"h": {"hits": {"hits": [{"sort": [ms], "_source": src}]}}});
        let none = json!({"h": {"hits": {"hits": []}}});
        let answer = json!({"aggregations": {
            "in": {"buckets": {
                "0": hit(5, json!({"observer": {"ingress": {"interface": {"name": "old", "alias": "a"}}}})),
                "1": none,
                "2": hit(9, json!({"observer.ingress.interface.alias": "lab"})),
            }},
            "out": {"buckets": {
                "0": hit(6, json!({"observer": {"egress": {"interface": {"name": "new"}}}})),
                "1": none,
                "2": hit(9, json!({"observer": {"egress": {"interface": {"alias": "jab"}}}})),
            }},
        }});
        apply_names(&mut rows, &answer);
        assert_eq!(rows[0].names.name.as_deref(), Some("new"));
        assert_eq!(
            rows[0].names.description, None,
            "the later end's texts, both"
        );
        assert!(rows[1].names.is_empty());
        // Same millisecond: the greater description (neither has a name).
        assert_eq!(rows[2].names.name, None);
        assert_eq!(rows[2].names.description.as_deref(), Some("lab"));
    }
}
