//! Top-N: flows of a time range grouped by a key (source address, conversation, port, AS ...),
//! bytes, packets and flows summed per key, the N largest kept. [`top_local`] reads the local
//! store; `es::top` asks Elasticsearch/OpenSearch for the same table with aggregations.
//!
//! Both answer the same question, so their tables agree on the same flows:
//! - **bytes, packets** are what documents hold as `network.bytes` / `network.packets`: forward
//!   plus reverse counts (biflows), scaled by the sampling interval as enrichment does it (the
//!   exporter's configured override, else the record's own interval, else the exporter's
//!   sampler tables). The local store uses the interval kept with each record (format 1.1,
//!   which had the sampler tables, as documents shipped live did); records of older blocks
//!   are scaled as they are read, without the sampler tables (as `sluice dump` does);
//! - **flows** is the number of flow records (options records are not flows);
//! - **keys** ([`By`]): `src`/`dst` address, `conversation` (the ordered source, destination
//!   pair: A to B and B to A are two rows), `dport` (destination port), `proto` (IP protocol
//!   number), `as` and `country` (of either end: GeoIP, with the record's own AS as fallback
//!   for `as`; the values kept with the record when it has them, else looked up as read),
//!   `exporter` (its address, any port), `interface` (exporter address and ifIndex,
//!   input or output). IPv4-mapped IPv6 addresses count as the IPv4 address, as
//!   Elasticsearch's `ip` type does;
//! - **either-end keys** (`as`, `country`, `interface`): a flow counts once toward each
//!   distinct key among its two ends (once when both ends share it), so their percentages can
//!   add up to more than 100 %;
//! - a flow without the key (no ports for `dport`, no GeoIP answer for `country`) is in the
//!   totals but under no key;
//! - **ranking**: by the [`Order`] metric, largest first; ties by key, ascending;
//! - **interface texts**: `interface` rows carry the interface's name and description
//!   ([`IfNames`]; options data IE 82/83 or the config, as documents show them) of the most
//!   recent flow of the range that had either for that interface, on either end: latest
//!   @timestamp in milliseconds, then the greatest name, then description. Both sources pick
//!   the same flow; a rename shows once flows carry the new name. Records kept without
//!   enrichment (older blocks) have only the reader's config.
//!
//! The local scan allocates nothing per record: keys are small fixed values (`u128`
//! addresses, AS numbers, country codes in 16 bytes) in one hash map, or an array indexed by
//! the key for ports and protocols; documents are never built, and GeoIP lookups (through the enricher's cache) happen only for `as` and
//! `country`. Interface texts are copied only when a key first has them or they change. With `threads` > 1 each thread scans every n-th block of each segment
//! ([`Shard`]) into its own map, and the maps are merged at the end.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use sluice_decode::time::export_ns;
use sluice_decode::{Flow, Record};
use sluice_enrich::{CoreCache, Enricher, IfTexts, Kept};

use crate::filter::Filter;
use crate::store::{ScanStats, Shard, StoreError, StoreReader};

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

/// An interface's name and description (options data IE 82/83, or the config), as the flows
/// of an `interface` row reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfNames {
    /// `observer.ingress.interface.name` / `observer.egress.interface.name`.
    pub name: Option<Box<str>>,
    /// `observer.ingress.interface.alias` / `observer.egress.interface.alias`.
    pub description: Option<Box<str>>,
}

impl IfNames {
    /// Whether neither text is known.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.description.is_none()
    }
}

/// One row of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The key.
    pub key: Key,
    /// Its counters.
    pub counts: Counts,
    /// The interface's texts (`interface` rows; empty for other groupings, and when no flow
    /// of the key had any): those of the most recent flow that had a name or a description
    /// for it, see the module documentation.
    pub names: IfNames,
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
    /// Threads scanning the store (each takes every `threads`-th block of each segment);
    /// 0 or 1: the calling thread alone.
    pub threads: usize,
}

/// What one record contributes: up to two keys (the second only for either-end groupings).
type Keys<K> = [Option<K>; 2];

/// Where a scan sums per key: a hash map, or for keys of at most 16 bits a dense array
/// indexed by the key (one memory access per record, no hashing).
trait Table: Default + Send {
    type K: Copy + Eq;
    /// The sums of `k`, created empty.
    fn slot(&mut self, k: Self::K) -> &mut Counts;
    /// Adds `o`'s sums into this table.
    fn merge(&mut self, o: Self);
    /// Keys seen and their sums.
    fn entries(self) -> Vec<(Self::K, Counts)>;
}

impl<K: Copy + Eq + Hash + Send> Table for FxHashMap<K, Counts> {
    type K = K;

    #[inline]
    fn slot(&mut self, k: K) -> &mut Counts {
        self.entry(k).or_default()
    }

    fn merge(&mut self, o: Self) {
        // The smaller map goes into the larger.
        let small = if o.len() > self.len() {
            std::mem::replace(self, o)
        } else {
            o
        };
        for (k, c) in small {
            self.entry(k).or_default().merge(&c);
        }
    }

    fn entries(self) -> Vec<(K, Counts)> {
        self.into_iter().collect()
    }
}

/// Keys small enough to index an array.
trait SmallKey: Copy + Eq + Send + Into<usize> + TryFrom<usize> {
    /// Distinct values.
    const SPAN: usize;
}

impl SmallKey for u8 {
    const SPAN: usize = 1 << 8;
}

impl SmallKey for u16 {
    const SPAN: usize = 1 << 16;
}

/// Sums indexed by a small key; allocated at the first record.
struct Dense<K> {
    sums: Vec<Counts>,
    _key: std::marker::PhantomData<K>,
}

impl<K> Default for Dense<K> {
    fn default() -> Self {
        Dense {
            sums: Vec::new(),
            _key: std::marker::PhantomData,
        }
    }
}

impl<K: SmallKey> Table for Dense<K> {
    type K = K;

    #[inline]
    fn slot(&mut self, k: K) -> &mut Counts {
        if self.sums.is_empty() {
            self.sums = vec![Counts::default(); K::SPAN];
        }
        let i: usize = k.into();
        // `i` < SPAN by the key's type; the fallback keeps a bug from becoming a panic.
        let last = self.sums.len() - 1;
        &mut self.sums[i.min(last)]
    }

    fn merge(&mut self, o: Self) {
        if self.sums.is_empty() {
            self.sums = o.sums;
            return;
        }
        for (a, b) in self.sums.iter_mut().zip(&o.sums) {
            a.merge(b);
        }
    }

    fn entries(self) -> Vec<(K, Counts)> {
        self.sums
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.flows > 0)
            .filter_map(|(i, c)| K::try_from(i).ok().map(|k| (k, c)))
            .collect()
    }
}

/// What a grouping collects per key beside the sums, from the records it counts.
trait Notes: Default + Send {
    /// Takes note of one counted record; by default nothing.
    #[inline]
    fn note(
        &mut self,
        _r: &Record<'_>,
        _flow: &Flow,
        _kept: Option<&Kept<'_>>,
        _enricher: &Enricher,
        _cache: &mut CoreCache,
    ) {
    }

    /// Adds `o`'s notes (of another shard) into these.
    fn merge(&mut self, o: Self);
}

/// Nothing beside the sums (every grouping but `interface`).
impl Notes for () {
    fn merge(&mut self, _: ()) {}
}

/// An interface's texts and the time of the flow that reported them.
#[derive(Debug)]
struct Seen {
    /// @timestamp in milliseconds.
    ms: i64,
    names: IfNames,
}

impl Seen {
    /// What decides which texts win: the later flow, then the greater name, then the greater
    /// description.
    fn order(&self) -> (i64, Option<&str>, Option<&str>) {
        (
            self.ms,
            self.names.name.as_deref(),
            self.names.description.as_deref(),
        )
    }
}

/// The texts of each interface key (exporter address, ifIndex) of the `interface` grouping:
/// those of the flow with the latest @timestamp that had a name or a description for it,
/// in milliseconds (what Elasticsearch keeps of @timestamp, so that both sources pick the
/// same flow); on equal times the greatest name, then description. A total order, so the
/// scan order and the number of shards do not change the answer. Records of blocks without
/// enrichment columns have the config's texts only, as `sluice dump` shows them.
///
/// Costs a hash lookup per end only for flows with texts (most exporters send none); texts
/// are copied when a key first has them or when they change (an interface renamed).
#[derive(Debug, Default)]
struct IfNotes(FxHashMap<(u128, u32), Seen>);

impl IfNotes {
    fn offer(&mut self, key: (u128, u32), ms: i64, t: IfTexts<'_>) {
        fn set(slot: &mut Option<Box<str>>, v: Option<&str>) {
            if slot.as_deref() != v {
                *slot = v.map(Box::from);
            }
        }
        match self.0.entry(key) {
            Entry::Occupied(mut o) => {
                let s = o.get_mut();
                if (ms, t.name, t.description) > s.order() {
                    s.ms = ms;
                    set(&mut s.names.name, t.name);
                    set(&mut s.names.description, t.description);
                }
            }
            Entry::Vacant(v) => {
                v.insert(Seen {
                    ms,
                    names: IfNames {
                        name: t.name.map(Box::from),
                        description: t.description.map(Box::from),
                    },
                });
            }
        }
    }

    /// The texts of `key`, empty when no flow had any.
    fn take(&mut self, key: (u128, u32)) -> IfNames {
        self.0.remove(&key).map(|s| s.names).unwrap_or_default()
    }
}

impl Notes for IfNotes {
    fn note(
        &mut self,
        r: &Record<'_>,
        flow: &Flow,
        kept: Option<&Kept<'_>>,
        enricher: &Enricher,
        cache: &mut CoreCache,
    ) {
        let exporter = r.header.exporter.ip();
        let texts = match kept {
            Some(k) => [k.in_if, k.out_if],
            None => enricher.interfaces(cache, exporter, flow),
        };
        let has = |t: &IfTexts<'_>| t.name.is_some() || t.description.is_some();
        if !texts.iter().any(has) {
            return;
        }
        let e = ip_bits(exporter);
        let ms = export_ns(r).div_euclid(1_000_000);
        for (index, t) in [flow.in_if, flow.out_if].into_iter().zip(texts) {
            if let Some(i) = index.filter(|_| has(&t)) {
                self.offer((e, i), ms, t);
            }
        }
    }

    fn merge(&mut self, o: Self) {
        for (k, s) in o.0 {
            match self.0.entry(k) {
                Entry::Occupied(mut cur) => {
                    if s.order() > cur.get().order() {
                        cur.insert(s);
                    }
                }
                Entry::Vacant(v) => {
                    v.insert(s);
                }
            }
        }
    }
}

/// Sums counters per key over one shard of the store. `keys` gives a record's keys; `N`
/// takes notes of the records counted.
fn aggregate_shard<T, N, F>(
    reader: &StoreReader,
    q: &LocalQuery<'_>,
    shard: Shard,
    enricher: &Enricher,
    keys: &F,
) -> Result<Partial<T, N>, StoreError>
where
    T: Table,
    N: Notes,
    F: Fn(&Record<'_>, &Flow, Option<&Kept<'_>>, &mut CoreCache) -> Keys<T::K>,
{
    let mut table = T::default();
    let mut notes = N::default();
    let mut total = Counts::default();
    let mut cache = enricher.cache();
    let stats = reader.scan_shard_kept(shard, q.from_ns, q.to_ns, |r, kept| {
        if r.template.options {
            return;
        }
        let flow = r.flow();
        if let Some(f) = q.filter {
            if !f.matches(&flow, r.header.exporter) {
                return;
            }
        }
        let sampling = match kept {
            Some(k) => k.sampling,
            None => enricher.sampling(&mut cache, r.header.exporter.ip(), &flow, None),
        };
        let k = sampling.map_or(1, |s| u64::from(s.0));
        let bytes = scaled(flow.bytes, flow.rev_bytes, k);
        let packets = scaled(flow.packets, flow.rev_packets, k);
        total.add(bytes, packets);
        let [a, b] = keys(r, &flow, kept, &mut cache);
        if let Some(a) = a {
            table.slot(a).add(bytes, packets);
        }
        if let Some(b) = b {
            if a != Some(b) {
                table.slot(b).add(bytes, packets);
            }
        }
        notes.note(r, &flow, kept, enricher, &mut cache);
    })?;
    Ok(Partial {
        table,
        notes,
        total,
        stats,
    })
}

/// Per-key sums (and notes) of a scan, or of one shard of it.
struct Partial<T, N> {
    table: T,
    notes: N,
    total: Counts,
    stats: ScanStats,
}

impl Counts {
    fn merge(&mut self, o: &Counts) {
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.packets = self.packets.saturating_add(o.packets);
        self.flows += o.flows;
    }
}

/// What a scan found: the keys seen with their sums, the total, the scan's counters and the
/// notes taken.
type Sums<K, N> = (Vec<(K, Counts)>, Counts, ScanStats, N);

/// Sums counters per key over the range, on `q.threads` threads (one scan shard each), and
/// merges their tables and notes.
fn aggregate<T, N, F>(
    reader: &StoreReader,
    q: &LocalQuery<'_>,
    enricher: &Enricher,
    keys: F,
) -> Result<Sums<T::K, N>, StoreError>
where
    T: Table,
    N: Notes,
    F: Fn(&Record<'_>, &Flow, Option<&Kept<'_>>, &mut CoreCache) -> Keys<T::K> + Sync,
{
    let count = q.threads.max(1);
    let parts: Vec<Result<Partial<T, N>, StoreError>> = if count == 1 {
        vec![aggregate_shard(reader, q, Shard::ALL, enricher, &keys)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|index| {
                    let keys = &keys;
                    s.spawn(move || {
                        aggregate_shard(reader, q, Shard { index, count }, enricher, keys)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut table = T::default();
    let mut notes = N::default();
    let mut total = Counts::default();
    let mut stats = ScanStats::default();
    for part in parts {
        let part = part?;
        table.merge(part.table);
        notes.merge(part.notes);
        total.merge(&part.total);
        stats.add(&part.stats);
    }
    Ok((table.entries(), total, stats, notes))
}

/// The `n` largest of `all` as ranked rows. Only keys at or above the n-th largest metric
/// are converted to [`Key`]s, so millions of addresses cost one partial selection.
fn finish<K: Copy>(
    mut all: Vec<(K, Counts)>,
    order: Order,
    n: usize,
    to_key: impl Fn(K) -> Key,
) -> Vec<Row> {
    if n == 0 {
        return Vec::new();
    }
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
            names: IfNames::default(),
        })
        .collect();
    rank(rows, order, n)
}

/// A country code as a fixed-size key: up to 15 bytes and the length. ISO 3166 codes (what
/// GeoIP databases hold) have 2 letters; a longer value is cut at 15 bytes.
type CountryKey = ([u8; 15], u8);

fn country_key(code: &str) -> CountryKey {
    let b = code.as_bytes();
    let n = b.len().min(15);
    let mut k = [0u8; 15];
    k[..n].copy_from_slice(&b[..n]);
    (k, n as u8)
}

fn country_of(k: CountryKey) -> Box<str> {
    String::from_utf8_lossy(&k.0[..usize::from(k.1)]).into()
}

/// Top-N over the local store: one scan of `[q.from_ns, q.to_ns)`. Corrupt or unreadable
/// blocks are counted in the returned [`ScanStats`], as `sluice dump` reports them.
pub fn top_local(
    reader: &StoreReader,
    q: &LocalQuery<'_>,
    enricher: &Enricher,
) -> Result<(Top, ScanStats), StoreError> {
    /// Ranks a grouping's entries: (rows, total, distinct keys, scan counters).
    fn rows<K: Copy, N>(
        (all, total, stats, _): Sums<K, N>,
        q: &LocalQuery<'_>,
        to_key: impl Fn(K) -> Key,
    ) -> (Vec<Row>, Counts, u64, ScanStats) {
        let distinct = all.len() as u64;
        (finish(all, q.order, q.n, to_key), total, distinct, stats)
    }
    type Map<K> = FxHashMap<K, Counts>;
    let (rows, total, distinct, stats) = match q.by {
        By::Src | By::Dst | By::Exporter => {
            let by = q.by;
            let sums = aggregate::<Map<u128>, (), _>(reader, q, enricher, |r, f, _, _| {
                let ip = match by {
                    By::Src => f.src_ip,
                    By::Dst => f.dst_ip,
                    _ => Some(r.header.exporter.ip()),
                };
                [ip.map(ip_bits), None]
            })?;
            rows(sums, q, |k| Key::Ip(ip_of(k)))
        }
        By::Conversation => {
            let sums = aggregate::<Map<(u128, u128)>, (), _>(reader, q, enricher, |_, f, _, _| {
                let pair = f.src_ip.zip(f.dst_ip);
                [pair.map(|(s, d)| (ip_bits(s), ip_bits(d))), None]
            })?;
            rows(sums, q, |(s, d)| Key::Pair(ip_of(s), ip_of(d)))
        }
        By::Dport => {
            let sums = aggregate::<Dense<u16>, (), _>(reader, q, enricher, |_, f, _, _| {
                [f.dst_port, None]
            })?;
            rows(sums, q, Key::Port)
        }
        By::Proto => {
            let sums =
                aggregate::<Dense<u8>, (), _>(reader, q, enricher, |_, f, _, _| [f.proto, None])?;
            rows(sums, q, Key::Proto)
        }
        By::As => {
            let sums =
                aggregate::<Map<u32>, (), _>(
                    reader,
                    q,
                    enricher,
                    |_, f, kept, cache| match kept {
                        Some(k) => [k.source.as_number, k.destination.as_number],
                        None => enricher.ends(cache, f).map(|e| e.as_number),
                    },
                )?;
            rows(sums, q, Key::As)
        }
        By::Country => {
            let sums =
                aggregate::<Map<CountryKey>, (), _>(reader, q, enricher, |_, f, kept, cache| {
                    let country = |g: Option<&sluice_enrich::GeoInfo>| {
                        g.and_then(|g| g.country_iso_code.as_deref())
                            .map(country_key)
                    };
                    match kept {
                        Some(k) => [country(k.source.geo), country(k.destination.geo)],
                        None => enricher.ends(cache, f).map(|e| country(e.geo)),
                    }
                })?;
            rows(sums, q, |k| Key::Country(country_of(k)))
        }
        By::Interface => {
            let mut sums =
                aggregate::<Map<(u128, u32)>, IfNotes, _>(reader, q, enricher, |r, f, _, _| {
                    let e = ip_bits(r.header.exporter.ip());
                    [f.in_if.map(|i| (e, i)), f.out_if.map(|i| (e, i))]
                })?;
            let mut notes = std::mem::take(&mut sums.3);
            let (mut rows, total, distinct, stats) =
                rows(sums, q, |(e, i)| Key::Interface(ip_of(e), i));
            for r in &mut rows {
                if let Key::Interface(e, i) = r.key {
                    r.names = notes.take((ip_bits(e), i));
                }
            }
            (rows, total, distinct, stats)
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
            names: IfNames::default(),
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
        let m: Vec<(u16, Counts)> = [(9u16, 5u64), (7, 5), (8, 5), (1, 9), (2, 1)]
            .into_iter()
            .map(|(p, b)| {
                let c = Counts {
                    bytes: b,
                    packets: 0,
                    flows: 1,
                };
                (p, c)
            })
            .collect();
        let r = finish(m, Order::Bytes, 3, Key::Port);
        let keys: Vec<Key> = r.into_iter().map(|r| r.key).collect();
        assert_eq!(keys, vec![Key::Port(1), Key::Port(7), Key::Port(8)]);
    }

    #[test]
    fn tables_merge() {
        let mut a: Dense<u16> = Dense::default();
        let mut b: Dense<u16> = Dense::default();
        a.slot(443).add(10, 1);
        b.slot(443).add(5, 1);
        b.slot(65535).add(1, 1);
        a.merge(b);
        let e = a.entries();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, 443);
        assert_eq!((e[0].1.bytes, e[0].1.flows), (15, 2));
        assert_eq!(e[1].0, 65535);
        let mut h: FxHashMap<u32, Counts> = FxHashMap::default();
        let mut g: FxHashMap<u32, Counts> = FxHashMap::default();
        h.slot(1).add(1, 1);
        g.slot(1).add(2, 2);
        g.slot(2).add(3, 3);
        h.merge(g);
        let mut e = h.entries();
        e.sort_by_key(|x| x.0);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].1.bytes, e[0].1.packets, e[0].1.flows), (3, 3, 2));
        assert_eq!(
            country_of(country_key("SE")),
            Box::<str>::from("SE"),
            "country keys round-trip"
        );
    }

    #[test]
    fn interface_texts_of_the_latest_flow_win_in_any_order() {
        let t = |name: Option<&'static str>, description: Option<&'static str>| IfTexts {
            name,
            description,
        };
        let offers = [
            (1, 7, t(Some("old"), Some("d"))),
            (1, 9, t(Some("new"), None)),
            // Same millisecond: the greater name wins.
            (1, 9, t(Some("zz"), None)),
            (1, 9, t(Some("aa"), Some("x"))),
            (2, 3, t(None, Some("only a description"))),
        ];
        let want = |n: &mut IfNotes| {
            let a = n.take((5, 1));
            assert_eq!(a.name.as_deref(), Some("zz"));
            assert_eq!(a.description, None);
            let b = n.take((5, 2));
            assert_eq!(b.name, None);
            assert_eq!(b.description.as_deref(), Some("only a description"));
            assert!(n.take((5, 3)).is_empty(), "never offered: no texts");
        };
        let mut forward = IfNotes::default();
        offers
            .iter()
            .for_each(|&(i, ms, x)| forward.offer((5, i), ms, x));
        want(&mut forward);
        let mut backward = IfNotes::default();
        offers
            .iter()
            .rev()
            .for_each(|&(i, ms, x)| backward.offer((5, i), ms, x));
        want(&mut backward);
        // Split over two shards, merged either way round.
        for first_half in [true, false] {
            let (mut a, mut b) = (IfNotes::default(), IfNotes::default());
            for (n, &(i, ms, x)) in offers.iter().enumerate() {
                let into = if (n < 2) == first_half {
                    &mut a
                } else {
                    &mut b
                };
                into.offer((5, i), ms, x);
            }
            a.merge(b);
            want(&mut a);
        }
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
