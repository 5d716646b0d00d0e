//! Top-N: flows of a time range grouped by a key (source address, conversation, port, AS ...),
//! bytes, packets and flows summed per key, the N largest kept. [`top_local`] reads the local
//! store; `es::top` asks Elasticsearch/OpenSearch for the same table with aggregations.
//!
//! Both answer the same question, so their tables agree on the same flows:
//! - **bytes, packets** are what documents hold as `network.bytes` / `network.packets`: forward
//!   plus reverse counts (biflows), scaled by the sampling interval as enrichment does it (the
//!   exporter's configured override, else the record's own interval). The local store applies
//!   enrichment as it reads, without the exporters' sampler tables (as `sluice dump` does);
//!   documents shipped live had them;
//! - **flows** is the number of flow records (options records are not flows);
//! - **keys** ([`By`]): `src`/`dst` address, `conversation` (the ordered source, destination
//!   pair: A to B and B to A are two rows), `dport` (destination port), `proto` (IP protocol
//!   number), `as` and `country` (of either end: GeoIP, with the record's own AS as fallback
//!   for `as`), `exporter` (its address, any port), `interface` (exporter address and ifIndex,
//!   input or output). IPv4-mapped IPv6 addresses count as the IPv4 address, as
//!   Elasticsearch's `ip` type does;
//! - **either-end keys** (`as`, `country`, `interface`): a flow counts once toward each
//!   distinct key among its two ends (once when both ends share it), so their percentages can
//!   add up to more than 100 %;
//! - a flow without the key (no ports for `dport`, no GeoIP answer for `country`) is in the
//!   totals but under no key;
//! - **ranking**: by the [`Order`] metric, largest first; ties by key, ascending.
//!
//! The local scan allocates nothing per record: keys are small fixed values (`u128`
//! addresses, ports, AS numbers, interned country codes) in one hash map, documents are never
//! built, and GeoIP lookups (through the enricher's cache) happen only for `as` and `country`.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use sluice_decode::{Flow, Record};
use sluice_enrich::{CoreCache, Enricher};

use crate::filter::Filter;
use crate::store::{ScanStats, StoreError, StoreReader};

/// What flows are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum By {
    /// Source address.
    Src,
    /// Destination address.
    Dst,
    /// Source and destination address, in that order.
    Conversation,
    /// Destination port.
    Dport,
    /// IP protocol number.
    Proto,
    /// AS number of either end.
    As,
    /// Country (ISO code) of either end.
    Country,
    /// Exporter address.
    Exporter,
    /// Exporter address and interface index, input or output.
    Interface,
}

impl By {
    /// Every grouping, in the order the command line lists them.
    pub const ALL: [By; 9] = [
        By::Src,
        By::Dst,
        By::Conversation,
        By::Dport,
        By::Proto,
        By::As,
        By::Country,
        By::Exporter,
        By::Interface,
    ];

    /// The command-line name.
    pub const fn as_str(self) -> &'static str {
        match self {
            By::Src => "src",
            By::Dst => "dst",
            By::Conversation => "conversation",
            By::Dport => "dport",
            By::Proto => "proto",
            By::As => "as",
            By::Country => "country",
            By::Exporter => "exporter",
            By::Interface => "interface",
        }
    }

    /// Whether a flow counts toward the key of each of its ends.
    pub const fn either_end(self) -> bool {
        matches!(self, By::As | By::Country | By::Interface)
    }
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for By {
    type Err = String;

    fn from_str(s: &str) -> Result<By, String> {
        By::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = By::ALL.iter().map(|b| b.as_str()).collect();
                format!("unknown grouping {s:?}: one of {}", names.join(", "))
            })
    }
}

/// Which metric ranks the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// `network.bytes`.
    Bytes,
    /// `network.packets`.
    Packets,
    /// Flow records.
    Flows,
}

impl Order {
    /// Every order.
    pub const ALL: [Order; 3] = [Order::Bytes, Order::Packets, Order::Flows];

    /// The command-line name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Order::Bytes => "bytes",
            Order::Packets => "packets",
            Order::Flows => "flows",
        }
    }
}

impl FromStr for Order {
    type Err = String;

    fn from_str(s: &str) -> Result<Order, String> {
        Order::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown order {s:?}: one of bytes, packets, flows"))
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Summed counters of a key (or of everything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Bytes (`network.bytes`).
    pub bytes: u64,
    /// Packets (`network.packets`).
    pub packets: u64,
    /// Flow records.
    pub flows: u64,
}

impl Counts {
    #[inline]
    fn add(&mut self, bytes: u64, packets: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.packets = self.packets.saturating_add(packets);
        self.flows += 1;
    }

    /// The metric `order` ranks by.
    #[inline]
    pub fn get(&self, order: Order) -> u64 {
        match order {
            Order::Bytes => self.bytes,
            Order::Packets => self.packets,
            Order::Flows => self.flows,
        }
    }
}

/// One key of a table. Ordered (for ties) by variant, then value; addresses IPv4 before IPv6.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// An address (`src`, `dst`, `exporter`).
    Ip(IpAddr),
    /// Source and destination (`conversation`).
    Pair(IpAddr, IpAddr),
    /// A port (`dport`).
    Port(u16),
    /// An IP protocol number (`proto`).
    Proto(u8),
    /// An AS number (`as`).
    As(u32),
    /// A country ISO code (`country`).
    Country(Box<str>),
    /// Exporter address and interface index (`interface`).
    Interface(IpAddr, u32),
}

/// One row of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The key.
    pub key: Key,
    /// Its counters.
    pub counts: Counts,
}

/// A top-N table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Top {
    /// Grouping.
    pub by: By,
    /// Ranking metric.
    pub order: Order,
    /// At most N rows, ranked.
    pub rows: Vec<Row>,
    /// Every matching flow of the range, with or without a key.
    pub total: Counts,
    /// Distinct keys seen, when known exactly (the local store).
    pub distinct: Option<u64>,
}

/// Ranks rows: the metric, largest first, then the key ascending; keeps `n`.
pub fn rank(mut rows: Vec<Row>, order: Order, n: usize) -> Vec<Row> {
    rows.sort_unstable_by(|a, b| {
        b.counts
            .get(order)
            .cmp(&a.counts.get(order))
            .then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(n);
    rows
}

/// An address as 128 bits, IPv4 (and IPv4-mapped IPv6) as `::ffff:a.b.c.d`: one key per
/// address whichever way it was written.
#[inline]
pub fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of [`ip_bits`], IPv4-mapped given back as IPv4.
#[inline]
pub fn ip_of(bits: u128) -> IpAddr {
    Ipv6Addr::from(bits).to_canonical()
}

/// `network.bytes` of a flow: forward plus reverse, scaled by `k` (0 without either).
#[inline]
fn scaled(fwd: Option<u64>, rev: Option<u64>, k: u64) -> u64 {
    let f = fwd.map_or(0, |v| v.saturating_mul(k));
    let r = rev.map_or(0, |v| v.saturating_mul(k));
    f.saturating_add(r)
}

/// A local top-N query.
#[derive(Clone, Copy, Debug)]
pub struct LocalQuery<'a> {
    /// Start of the @timestamp range, ns since the epoch, inclusive.
    pub from_ns: i64,
    /// End, exclusive.
    pub to_ns: i64,
    /// Only flows matching this.
    pub filter: Option<&'a Filter>,
    /// Grouping.
    pub by: By,
    /// Ranking.
    pub order: Order,
    /// Rows to keep.
    pub n: usize,
}

/// What one record contributes: up to two keys (the second only for either-end groupings).
type Keys<K> = [Option<K>; 2];

/// Scans the store once and sums counters per key. `keys` gives a record's keys.
fn aggregate<K, F>(
    reader: &StoreReader,
    q: &LocalQuery<'_>,
    enricher: &Enricher,
    mut keys: F,
) -> Result<(FxHashMap<K, Counts>, Counts, ScanStats), StoreError>
where
    K: Copy + Eq + Hash,
    F: FnMut(&Record<'_>, &Flow, &mut CoreCache) -> Keys<K>,
{
    let mut map: FxHashMap<K, Counts> = FxHashMap::default();
    let mut total = Counts::default();
    let mut cache = enricher.cache();
    let stats = reader.scan(q.from_ns, q.to_ns, |r| {
        if r.template.options {
            return;
        }
        let flow = r.flow();
        if let Some(f) = q.filter {
            if !f.matches(&flow, r.header.exporter) {
                return;
            }
        }
        let k = enricher
            .sampling(&mut cache, r.header.exporter.ip(), &flow, None)
            .map_or(1, |s| u64::from(s.0));
        let bytes = scaled(flow.bytes, flow.rev_bytes, k);
        let packets = scaled(flow.packets, flow.rev_packets, k);
        total.add(bytes, packets);
        let [a, b] = keys(r, &flow, &mut cache);
        if let Some(a) = a {
            map.entry(a).or_default().add(bytes, packets);
        }
        if let Some(b) = b {
            if a != Some(b) {
                map.entry(b).or_default().add(bytes, packets);
            }
        }
    })?;
    Ok((map, total, stats))
}

/// The `n` largest of `map` as ranked rows. Only keys at or above the n-th largest metric are
/// converted to [`Key`]s, so a map of millions of addresses costs one partial selection.
fn finish<K: Copy>(
    map: FxHashMap<K, Counts>,
    order: Order,
    n: usize,
    to_key: impl Fn(K) -> Key,
) -> Vec<Row> {
    if n == 0 {
        return Vec::new();
    }
    let mut all: Vec<(K, Counts)> = map.into_iter().collect();
    if all.len() > n {
        all.select_nth_unstable_by(n - 1, |a, b| b.1.get(order).cmp(&a.1.get(order)));
        let threshold = all[n - 1].1.get(order);
        // Everything tied with the n-th stays a candidate: ties are broken by key below.
        all.retain(|(_, c)| c.get(order) >= threshold);
    }
    let rows = all
        .into_iter()
        .map(|(k, counts)| Row {
            key: to_key(k),
            counts,
        })
        .collect();
    rank(rows, order, n)
}

/// Country codes interned to small integers for the scan.
#[derive(Default)]
struct Countries {
    ids: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Countries {
    fn id(&mut self, code: &Arc<str>) -> u32 {
        if let Some(&id) = self.ids.get(&**code) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(code.clone());
        self.ids.insert(code.clone(), id);
        id
    }
}

/// Top-N over the local store: one scan of `[q.from_ns, q.to_ns)`. Corrupt or unreadable
/// blocks are counted in the returned [`ScanStats`], as `sluice dump` reports them.
pub fn top_local(
    reader: &StoreReader,
    q: &LocalQuery<'_>,
    enricher: &Enricher,
) -> Result<(Top, ScanStats), StoreError> {
    let (rows, total, distinct, stats) = match q.by {
        By::Src | By::Dst | By::Exporter => {
            let by = q.by;
            let (map, total, st) = aggregate(reader, q, enricher, |r, f, _| {
                let ip = match by {
                    By::Src => f.src_ip,
                    By::Dst => f.dst_ip,
                    _ => Some(r.header.exporter.ip()),
                };
                [ip.map(ip_bits), None]
            })?;
            let d = map.len() as u64;
            (
                finish(map, q.order, q.n, |k| Key::Ip(ip_of(k))),
                total,
                d,
                st,
            )
        }
        By::Conversation => {
            let (map, total, st) = aggregate(reader, q, enricher, |_, f, _| {
                [
                    f.src_ip
                        .zip(f.dst_ip)
                        .map(|(s, d)| (ip_bits(s), ip_bits(d))),
                    None,
                ]
            })?;
            let d = map.len() as u64;
            let rows = finish(map, q.order, q.n, |(s, d)| Key::Pair(ip_of(s), ip_of(d)));
            (rows, total, d, st)
        }
        By::Dport => {
            let (map, total, st) = aggregate(reader, q, enricher, |_, f, _| [f.dst_port, None])?;
            let d = map.len() as u64;
            (finish(map, q.order, q.n, Key::Port), total, d, st)
        }
        By::Proto => {
            let (map, total, st) = aggregate(reader, q, enricher, |_, f, _| [f.proto, None])?;
            let d = map.len() as u64;
            (finish(map, q.order, q.n, Key::Proto), total, d, st)
        }
        By::As => {
            let (map, total, st) = aggregate(reader, q, enricher, |_, f, cache| {
                enricher.ends(cache, f).map(|e| e.as_number)
            })?;
            let d = map.len() as u64;
            (finish(map, q.order, q.n, Key::As), total, d, st)
        }
        By::Country => {
            let mut countries = Countries::default();
            let (map, total, st) = aggregate(reader, q, enricher, |_, f, cache| {
                enricher
                    .ends(cache, f)
                    .map(|e| e.geo.and_then(|g| g.country_iso_code.as_ref()))
                    .map(|c| c.map(|c| countries.id(c)))
            })?;
            let d = map.len() as u64;
            let rows = finish(map, q.order, q.n, |id| {
                Key::Country(countries.names.get(id as usize).map_or("", |s| s).into())
            });
            (rows, total, d, st)
        }
        By::Interface => {
            let (map, total, st) = aggregate(reader, q, enricher, |r, f, _| {
                let e = ip_bits(r.header.exporter.ip());
                [f.in_if.map(|i| (e, i)), f.out_if.map(|i| (e, i))]
            })?;
            let d = map.len() as u64;
            let rows = finish(map, q.order, q.n, |(e, i)| Key::Interface(ip_of(e), i));
            (rows, total, d, st)
        }
    };
    Ok((
        Top {
            by: q.by,
            order: q.order,
            rows,
            total,
            distinct: Some(distinct),
        },
        stats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: Key, bytes: u64, packets: u64, flows: u64) -> Row {
        Row {
            key,
            counts: Counts {
                bytes,
                packets,
                flows,
            },
        }
    }

    #[test]
    fn ranking_breaks_ties_by_key() {
        let rows = vec![
            row(Key::Port(443), 10, 1, 1),
            row(Key::Port(80), 10, 2, 1),
            row(Key::Port(53), 30, 1, 5),
        ];
        let r = rank(rows.clone(), Order::Bytes, 2);
        assert_eq!(r[0].key, Key::Port(53));
        assert_eq!(r[1].key, Key::Port(80), "tie on bytes: lower port first");
        let r = rank(rows, Order::Packets, 3);
        assert_eq!(r[0].key, Key::Port(80));
        assert_eq!(r[1].key, Key::Port(53));
    }

    #[test]
    fn finish_keeps_ties_at_the_boundary_and_orders_them() {
        let mut m: FxHashMap<u16, Counts> = FxHashMap::default();
        for (p, b) in [(9u16, 5u64), (7, 5), (8, 5), (1, 9), (2, 1)] {
            m.insert(
                p,
                Counts {
                    bytes: b,
                    packets: 0,
                    flows: 1,
                },
            );
        }
        let r = finish(m, Order::Bytes, 3, Key::Port);
        let keys: Vec<Key> = r.into_iter().map(|r| r.key).collect();
        assert_eq!(keys, vec![Key::Port(1), Key::Port(7), Key::Port(8)]);
    }

    #[test]
    fn mapped_addresses_are_one_key() {
        let a: IpAddr = "10.1.2.3".parse().expect("ip");
        let b: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(ip_bits(a), ip_bits(b));
        assert_eq!(ip_of(ip_bits(b)), a);
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(ip_of(ip_bits(v6)), v6);
    }

    #[test]
    fn names_round_trip() {
        for b in By::ALL {
            assert_eq!(b.as_str().parse::<By>(), Ok(b));
        }
        for o in Order::ALL {
            assert_eq!(o.as_str().parse::<Order>(), Ok(o));
        }
        assert!("nope".parse::<By>().is_err());
        assert!("nope".parse::<Order>().is_err());
    }
}
