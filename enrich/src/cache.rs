//! The per-core address cache: 2-way set-associative, keyed by the address as a `u128`
//! (IPv4 as IPv4-mapped IPv6), holding the GeoIP and AS record indexes found for it.
//!
//! A set is two entries in one 64-byte cache line, kept in LRU order (a hit in the second way
//! swaps the two; a miss moves the first to the second and fills the first). Entries carry the
//! cache's epoch, bumped when the databases are swapped, so a reload invalidates everything
//! without touching the table. Only the owning core touches it: no locks, no atomics; the
//! counters are plain integers read with [`CoreCache::stats`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::fields::ExtraFields;
use crate::geoip::GeoTables;

/// "Not found" in a cached record index.
pub(crate) const NO_RECORD: u32 = u32::MAX;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Set {
    key: [u128; 2],
    geo: [u32; 2],
    asn: [u32; 2],
    /// Epoch the entry was filled in; 0 = empty.
    epoch: [u32; 2],
    _pad: [u32; 2],
}

const EMPTY_SET: Set = Set {
    key: [0; 2],
    geo: [NO_RECORD; 2],
    asn: [NO_RECORD; 2],
    epoch: [0; 2],
    _pad: [0; 2],
};

/// Counters of one core's cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that walked the databases.
    pub misses: u64,
    /// Database lookups that failed (a record the reader could not follow); the address is
    /// cached as "not found".
    pub lookup_errors: u64,
    /// Database swaps this cache has followed.
    pub reloads: u64,
}

impl CacheStats {
    /// hits / (hits + misses), or 0 before any lookup.
    pub fn hit_ratio(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

/// Template uid -> extra field indexes, direct-mapped.
const TEMPLATE_SLOTS: usize = 64;

/// One core's enrichment state: the address cache, the per-template field indexes and the
/// database snapshot they refer to. Made by [`crate::Enricher::cache`]; not shared.
pub struct CoreCache {
    sets: Box<[Set]>,
    set_bits: u32,
    epoch: u32,
    pub(crate) owner: u64,
    pub(crate) generation: u64,
    pub(crate) tables: Arc<GeoTables>,
    stats: CacheStats,
    templates: Box<[(u64, ExtraFields); TEMPLATE_SLOTS]>,
    /// Last exporter looked up: (address, index in the enricher's exporter list).
    pub(crate) exporter_memo: Option<(IpAddr, Option<u32>)>,
}

impl std::fmt::Debug for CoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreCache")
            .field("entries", &(self.sets.len() * 2))
            .field("stats", &self.stats)
            .finish()
    }
}

#[inline]
fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl CoreCache {
    /// A cache of at least `entries` entries (rounded up to a power of two, at least 2).
    pub(crate) fn new(entries: usize, owner: u64, generation: u64, tables: Arc<GeoTables>) -> Self {
        let sets = (entries.clamp(2, 1 << 26) / 2).next_power_of_two();
        CoreCache {
            sets: vec![EMPTY_SET; sets].into_boxed_slice(),
            set_bits: sets.trailing_zeros(),
            epoch: 1,
            owner,
            generation,
            tables,
            stats: CacheStats::default(),
            templates: Box::new([(0, ExtraFields::EMPTY); TEMPLATE_SLOTS]),
            exporter_memo: None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Entries the cache holds at most.
    pub fn capacity(&self) -> usize {
        self.sets.len() * 2
    }

    /// The databases the cached indexes refer to.
    pub fn tables(&self) -> &Arc<GeoTables> {
        &self.tables
    }

    /// Switches to a new database snapshot: every cached address becomes a miss.
    pub(crate) fn adopt(&mut self, generation: u64, tables: Arc<GeoTables>) {
        self.generation = generation;
        self.tables = tables;
        self.stats.reloads += 1;
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old entries could alias the new epoch, so clear them for real.
            self.sets.fill(EMPTY_SET);
            self.epoch = 1;
        }
    }

    /// Forgets everything (used when the cache meets another enricher).
    pub(crate) fn reset(&mut self, owner: u64, generation: u64, tables: Arc<GeoTables>) {
        self.adopt(generation, tables);
        self.owner = owner;
        self.templates.fill((0, ExtraFields::EMPTY));
        self.exporter_memo = None;
    }

    /// Set index of a key.
    #[inline]
    fn index(&self, key: u128) -> usize {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
        let h = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The high bits of a multiplicative hash are the well-mixed ones.
        if self.set_bits == 0 {
            0
        } else {
            (h >> (64 - self.set_bits)) as usize
        }
    }

    /// Asks the CPU to start loading a set's cache line. A probe is one likely cache miss
    /// (the table is larger than L2), so a flow's two probes go faster when both loads are
    /// in flight at once.
    #[inline(always)]
    fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = std::ptr::from_ref(&self.sets[i]).cast::<i8>();
            // SAFETY: a prefetch is a hint that never faults or changes memory, and `p`
            // points into `self.sets` anyway.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// GeoIP and AS record indexes of `ip` ([`NO_RECORD`] when not found). `ip` should be
    /// canonical (IPv4-mapped IPv6 converted to IPv4) so both spellings share an entry.
    #[inline]
    pub(crate) fn lookup(&mut self, ip: IpAddr) -> (u32, u32) {
        let key = key_of(ip);
        let i = self.index(key);
        self.probe(ip, key, i)
    }

    /// Both ends of a flow, with both probes' loads started before either is examined.
    #[inline]
    pub(crate) fn lookup2(&mut self, a: Option<IpAddr>, b: Option<IpAddr>) -> [(u32, u32); 2] {
        let ka = a.map(|ip| {
            let k = key_of(ip);
            (ip, k, self.index(k))
        });
        let kb = b.map(|ip| {
            let k = key_of(ip);
            (ip, k, self.index(k))
        });
        if let Some((_, _, i)) = ka {
            self.prefetch(i);
        }
        if let Some((_, _, i)) = kb {
            self.prefetch(i);
        }
        let none = (NO_RECORD, NO_RECORD);
        [
            ka.map_or(none, |(ip, k, i)| self.probe(ip, k, i)),
            kb.map_or(none, |(ip, k, i)| self.probe(ip, k, i)),
        ]
    }

    #[inline]
    fn probe(&mut self, ip: IpAddr, key: u128, i: usize) -> (u32, u32) {
        let epoch = self.epoch;
        let set = &mut self.sets[i];
        if set.epoch[0] == epoch && set.key[0] == key {
            self.stats.hits += 1;
            return (set.geo[0], set.asn[0]);
        }
        if set.epoch[1] == epoch && set.key[1] == key {
            self.stats.hits += 1;
            set.key.swap(0, 1);
            set.geo.swap(0, 1);
            set.asn.swap(0, 1);
            set.epoch.swap(0, 1);
            return (set.geo[0], set.asn[0]);
        }
        self.miss(ip, key, i)
    }

    /// Walks the databases and fills the set's first way (the old first way moves down).
    #[cold]
    #[inline(never)]
    fn miss(&mut self, ip: IpAddr, key: u128, i: usize) -> (u32, u32) {
        self.stats.misses += 1;
        let (g, a, failed) = self.tables.lookup(ip);
        if failed {
            self.stats.lookup_errors += 1;
        }
        let (g, a) = (g.unwrap_or(NO_RECORD), a.unwrap_or(NO_RECORD));
        let epoch = self.epoch;
        let set = &mut self.sets[i];
        set.key[1] = set.key[0];
        set.geo[1] = set.geo[0];
        set.asn[1] = set.asn[0];
        set.epoch[1] = set.epoch[0];
        set.key[0] = key;
        set.geo[0] = g;
        set.asn[0] = a;
        set.epoch[0] = epoch;
        (g, a)
    }

    /// Extra field indexes of a template, computed on first sight of its uid.
    #[inline]
    pub(crate) fn template_fields(&mut self, t: &sluice_decode::Template) -> ExtraFields {
        let slot = &mut self.templates[(t.uid as usize) % TEMPLATE_SLOTS];
        // Uids start at 1, so 0 marks an empty slot.
        if slot.0 != t.uid {
            *slot = (t.uid, ExtraFields::of(t));
        }
        slot.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Set>(), 64);
        assert_eq!(std::mem::align_of::<Set>(), 64);
    }

    #[test]
    fn lru_two_way() {
        // One set: every address collides, so the 2-way LRU is visible.
        let mut c = CoreCache::new(2, 1, 0, Arc::new(GeoTables::default()));
        assert_eq!(c.capacity(), 2);
        let a: IpAddr = "1.1.1.1".parse().expect("ip");
        let b: IpAddr = "2.2.2.2".parse().expect("ip");
        let d: IpAddr = "2001:db8::1".parse().expect("ip");
        c.lookup(a);
        c.lookup(b);
        c.lookup(a); // hit, a becomes most recent
        assert_eq!((c.stats().hits, c.stats().misses), (1, 2));
        c.lookup(d); // evicts b
        c.lookup(a); // hit
        assert_eq!((c.stats().hits, c.stats().misses), (2, 3));
        c.lookup(b); // miss
        assert_eq!((c.stats().hits, c.stats().misses), (2, 4));
        c.adopt(1, Arc::new(GeoTables::default()));
        c.lookup(b); // a reload invalidates
        assert_eq!((c.stats().hits, c.stats().misses), (2, 5));
        c.lookup(b);
        assert_eq!(c.stats().hits, 3);
        assert!((c.stats().hit_ratio() - 3.0 / 8.0).abs() < 1e-9);
    }

    #[test]
    fn epoch_wrap_clears() {
        let mut c = CoreCache::new(8, 1, 0, Arc::new(GeoTables::default()));
        let a: IpAddr = "1.1.1.1".parse().expect("ip");
        c.lookup(a);
        c.epoch = u32::MAX;
        c.lookup(a);
        c.adopt(1, Arc::new(GeoTables::default()));
        assert_eq!(c.epoch, 1);
        let misses = c.stats().misses;
        c.lookup(a);
        assert_eq!(
            c.stats().misses,
            misses + 1,
            "no stale entry survives the wrap"
        );
    }
}
