//! The enrichment columns of a block (format 1.1): per-block dictionaries (strings, geo
//! tuples, AS tuples) and per-record references into them. See the FORMAT section of
//! [`super`] for the layout; [`KeptBuilder`] writes them, [`decode_kept`] reads them back.

use std::hash::Hasher;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};
use sluice_enrich::{
    AsInfo, Enriched, GeoInfo, GeoPoint, GeoTables, IfTexts, Kept, KeptEnd, SamplingSource,
};

use super::error::StoreError;
use super::format::{col, put_varint, Cursor};

/// The per-record columns, all present when a block has enrichment.
pub const RECORD_COLUMNS: [u16; 5] = [
    col::R_K_EXPORTER,
    col::R_K_GEO,
    col::R_K_AS,
    col::R_K_SAMPLING,
    col::R_K_IFACE,
];

/// Dictionary columns.
pub const TABLE_COLUMNS: [u16; 3] = [col::K_STRINGS, col::K_GEO, col::K_AS];

fn sampling_code(s: SamplingSource) -> u8 {
    match s {
        SamplingSource::Config => 1,
        SamplingSource::Record => 2,
        SamplingSource::Sampler => 3,
        SamplingSource::Scope => 4,
    }
}

fn sampling_of_code(c: u8) -> Option<SamplingSource> {
    Some(match c {
        1 => SamplingSource::Config,
        2 => SamplingSource::Record,
        3 => SamplingSource::Sampler,
        4 => SamplingSource::Scope,
        _ => return None,
    })
}

/// One record's references (1-based into the block's tables; 0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeptSlot {
    /// Whether the record's enrichment was kept at all (see [`KeptBuilder::push`]).
    kept: bool,
    exporter: u32,
    geo: [u32; 2],
    asn: [u32; 2],
    sampling: u32,
    sampling_source: u8,
    /// In name, in description, out name, out description.
    ifs: [u32; 4],
}

/// A geo tuple: string references of continent code, continent name, country ISO code,
/// country name, region ISO code, region name, city; location as f64 bits.
type GeoKey = ([u32; 7], Option<(u64, u64)>);

/// Distinct strings (of a block; of a collector batch), without a heap allocation per
/// string: their bytes back to back, and a hash index; [`StringTable::clear`] keeps the
/// memory, so in steady state interning allocates nothing. References are 1-based, 0 is
/// "none".
#[derive(Debug, Default)]
pub struct StringTable {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    /// Hash of a string -> its reference. On a hash collision the newer string is stored
    /// again unindexed: a duplicate costs a few bytes, never a wrong answer.
    index: FxHashMap<u64, u32>,
}

impl StringTable {
    /// The string of reference `r` (`None` for 0 or a reference it did not give).
    pub fn get(&self, r: u32) -> Option<&str> {
        let i = (r as usize).checked_sub(1)?;
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        std::str::from_utf8(self.bytes.get(start..end)?).ok()
    }

    /// The reference of `s` (0 for `None`), adding it if it is new.
    pub fn intern(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return 0 };
        let mut h = FxHasher::default();
        h.write(s.as_bytes());
        let h = h.finish();
        if let Some(&r) = self.index.get(&h) {
            if self.get(r) == Some(s) {
                return r;
            }
        }
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len() as u32);
        let r = self.ends.len() as u32;
        self.index.entry(h).or_insert(r);
        r
    }

    /// Interns `s` unless it is the string `memo` refers to (consecutive records usually
    /// repeat their exporter's and interfaces' names: a compare instead of a hash).
    pub fn intern_memo(&mut self, memo: &mut u32, s: Option<&str>) -> u32 {
        if s.is_none() {
            return 0;
        }
        if *memo == 0 || self.get(*memo) != s {
            *memo = self.intern(s);
        }
        *memo
    }

    /// References of an input and an output interface's texts (name, description each),
    /// through [`StringTable::intern_memo`] with one memo per text.
    pub fn intern_interfaces(
        &mut self,
        memo: &mut [u32; 4],
        in_if: IfTexts<'_>,
        out_if: IfTexts<'_>,
    ) -> [u32; 4] {
        let texts = [
            in_if.name,
            in_if.description,
            out_if.name,
            out_if.description,
        ];
        let mut refs = [0; 4];
        for (i, t) in texts.into_iter().enumerate() {
            refs[i] = self.intern_memo(&mut memo[i], t);
        }
        refs
    }

    /// Forgets every string, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.index.clear();
    }
}

/// Enrichment of the records of one future block.
#[derive(Default)]
pub struct KeptBuilder {
    /// Whether any record of the block came with enrichment (else no column is written).
    on: bool,
    strings: StringTable,
    geos: Vec<GeoKey>,
    geo_index: FxHashMap<GeoKey, u32>,
    ases: Vec<(u32, u32)>,
    as_index: FxHashMap<(u32, u32), u32>,
    /// The database snapshot the pointer memos below are valid for (held, so that the
    /// addresses cannot be reused while they are keys).
    memo_tables: Option<Arc<GeoTables>>,
    /// Address of a database geo record -> geo reference.
    geo_memo: FxHashMap<usize, u32>,
    /// (address of a database AS record or 0, AS number) -> AS reference.
    as_memo: FxHashMap<(usize, u32), u32>,
    /// Last reference of the exporter name.
    exporter_memo: u32,
    /// Last references of the four interface texts.
    if_memo: [u32; 4],
    recs: Vec<KeptSlot>,
}

impl std::fmt::Debug for KeptBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptBuilder")
            .field("on", &self.on)
            .field("strings", &self.strings.ends.len())
            .field("geos", &self.geos.len())
            .field("ases", &self.ases.len())
            .finish()
    }
}

impl KeptBuilder {
    /// Whether the block gets enrichment columns.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Adds one record's enrichment. `None`: not kept for this record (the writer had
    /// nothing to add to what the record says, or enrichment is off); it reads back as not
    /// kept, and a reader enriches it as it reads it, as records of blocks without the
    /// columns.
    pub fn push(&mut self, e: Option<&Enriched>) {
        let Some(e) = e else {
            self.recs.push(KeptSlot::default());
            return;
        };
        self.on = true;
        let db = e.databases();
        if let Some(t) = db {
            if !self.memo_tables.as_ref().is_some_and(|m| Arc::ptr_eq(m, t)) {
                self.memo_tables = Some(t.clone());
                self.geo_memo.clear();
                self.as_memo.clear();
            }
        }
        let k = e.kept();
        let by_address = db.is_some();
        let mut slot = KeptSlot {
            kept: true,
            exporter: self
                .strings
                .intern_memo(&mut self.exporter_memo, k.exporter_name),
            ..KeptSlot::default()
        };
        for (i, end) in [k.source, k.destination].iter().enumerate() {
            slot.geo[i] = self.geo(end.geo, by_address);
            slot.asn[i] = self.asn(end, e, i, by_address);
        }
        if let Some((n, s)) = k.sampling {
            slot.sampling = n;
            slot.sampling_source = sampling_code(s);
        }
        slot.ifs = self
            .strings
            .intern_interfaces(&mut self.if_memo, k.in_if, k.out_if);
        self.recs.push(slot);
    }

    fn geo(&mut self, g: Option<&GeoInfo>, by_address: bool) -> u32 {
        let Some(g) = g else { return 0 };
        let addr = g as *const GeoInfo as usize;
        if by_address {
            if let Some(&r) = self.geo_memo.get(&addr) {
                return r;
            }
        }
        let s = &mut self.strings;
        let mut t = |v: &Option<Arc<str>>| s.intern(v.as_deref());
        let key: GeoKey = (
            [
                t(&g.continent_code),
                t(&g.continent_name),
                t(&g.country_iso_code),
                t(&g.country_name),
                t(&g.region_iso_code),
                t(&g.region_name),
                t(&g.city_name),
            ],
            g.location.map(|p| (p.lat.to_bits(), p.lon.to_bits())),
        );
        let r = match self.geo_index.get(&key) {
            Some(&r) => r,
            None => {
                self.geos.push(key);
                let r = self.geos.len() as u32;
                self.geo_index.insert(key, r);
                r
            }
        };
        if by_address {
            self.geo_memo.insert(addr, r);
        }
        r
    }

    fn asn(&mut self, end: &KeptEnd<'_>, e: &Enriched, side: usize, by_address: bool) -> u32 {
        let Some(number) = end.as_number else {
            return 0;
        };
        let rec = if side == 0 {
            e.source_as()
        } else {
            e.destination_as()
        };
        let key = (rec.map_or(0, |a| a as *const AsInfo as usize), number);
        if by_address {
            if let Some(&r) = self.as_memo.get(&key) {
                return r;
            }
        }
        let org = self.strings.intern(end.as_organization.map(|o| o.as_ref()));
        let r = match self.as_index.get(&(number, org)) {
            Some(&r) => r,
            None => {
                self.ases.push((number, org));
                let r = self.ases.len() as u32;
                self.as_index.insert((number, org), r);
                r
            }
        };
        if by_address {
            self.as_memo.insert(key, r);
        }
        r
    }

    /// Empties the builder for the next block (keeping its memory and the pointer memos'
    /// snapshot, whose references are cleared with the tables they point into).
    pub fn clear(&mut self) {
        self.on = false;
        self.strings.clear();
        self.geos.clear();
        self.geo_index.clear();
        self.ases.clear();
        self.as_index.clear();
        self.geo_memo.clear();
        self.as_memo.clear();
        self.exporter_memo = 0;
        self.if_memo = [0; 4];
        self.recs.clear();
    }

    /// Writes column `id` (one of [`TABLE_COLUMNS`] or [`RECORD_COLUMNS`]).
    pub fn write_column(&self, id: u16, o: &mut Vec<u8>) {
        match id {
            col::K_STRINGS => {
                put_varint(o, self.strings.ends.len() as u64);
                let mut start = 0usize;
                for &end in &self.strings.ends {
                    let b = &self.strings.bytes[start..end as usize];
                    put_varint(o, b.len() as u64);
                    o.extend_from_slice(b);
                    start = end as usize;
                }
            }
            col::K_GEO => {
                put_varint(o, self.geos.len() as u64);
                for (refs, loc) in &self.geos {
                    refs.iter().for_each(|&r| put_varint(o, u64::from(r)));
                    match loc {
                        None => o.push(0),
                        Some((lat, lon)) => {
                            o.push(1);
                            o.extend_from_slice(&lat.to_le_bytes());
                            o.extend_from_slice(&lon.to_le_bytes());
                        }
                    }
                }
            }
            col::K_AS => {
                put_varint(o, self.ases.len() as u64);
                for &(n, org) in &self.ases {
                    put_varint(o, u64::from(n));
                    put_varint(o, u64::from(org));
                }
            }
            // 0: not kept; else 1 + the exporter name's reference.
            col::R_K_EXPORTER => self
                .recs
                .iter()
                .for_each(|s| put_varint(o, if s.kept { u64::from(s.exporter) + 1 } else { 0 })),
            col::R_K_GEO => self.recs.iter().for_each(|s| {
                s.geo.iter().for_each(|&r| put_varint(o, u64::from(r)));
            }),
            col::R_K_AS => self.recs.iter().for_each(|s| {
                s.asn.iter().for_each(|&r| put_varint(o, u64::from(r)));
            }),
            col::R_K_SAMPLING => self.recs.iter().for_each(|s| {
                put_varint(o, u64::from(s.sampling));
                if s.sampling != 0 {
                    o.push(s.sampling_source);
                }
            }),
            col::R_K_IFACE => self.recs.iter().for_each(|s| {
                s.ifs.iter().for_each(|&r| put_varint(o, u64::from(r)));
            }),
            _ => {}
        }
    }
}

/// The enrichment of a decoded block.
#[derive(Debug, Default)]
pub struct KeptBlock {
    strings: Vec<Arc<str>>,
    geos: Vec<GeoInfo>,
    ases: Vec<(u32, Option<Arc<str>>)>,
    recs: Vec<KeptSlot>,
}

impl KeptBlock {
    fn string(&self, r: u32) -> Option<&str> {
        self.strings.get((r as usize).checked_sub(1)?).map(|s| &**s)
    }

    /// The kept values of record `i` of the block; `None` when none were kept for it.
    pub fn get(&self, i: usize) -> Option<Kept<'_>> {
        let s = self.recs.get(i).filter(|s| s.kept)?;
        let end = |side: usize| {
            let g = (s.geo[side] as usize).checked_sub(1);
            let a = (s.asn[side] as usize).checked_sub(1);
            let a = a.and_then(|a| self.ases.get(a));
            KeptEnd {
                geo: g.and_then(|g| self.geos.get(g)),
                as_number: a.map(|a| a.0),
                as_organization: a.and_then(|a| a.1.as_ref()),
            }
        };
        let texts = |n: u32, d: u32| IfTexts {
            name: self.string(n),
            description: self.string(d),
        };
        Some(Kept {
            exporter_name: self.string(s.exporter),
            source: end(0),
            destination: end(1),
            sampling: sampling_of_code(s.sampling_source)
                .filter(|_| s.sampling != 0)
                .map(|src| (s.sampling, src)),
            in_if: texts(s.ifs[0], s.ifs[1]),
            out_if: texts(s.ifs[2], s.ifs[3]),
        })
    }
}

/// A reference read from a column: at most `n` (the size of its table).
fn reference(c: &mut Cursor<'_>, n: usize) -> Result<u32, StoreError> {
    let r = c.varint_u32()?;
    if r as usize > n {
        return Err(StoreError::Corrupt("enrichment reference beyond its table"));
    }
    Ok(r)
}

/// A table's entry count, checked against the bytes that must hold it (`min` per entry).
fn count(c: &mut Cursor<'_>, min: usize) -> Result<usize, StoreError> {
    let n = c.varint()?;
    if n.saturating_mul(min as u64) > c.rest().len() as u64 {
        return Err(StoreError::Corrupt("enrichment table count"));
    }
    Ok(n as usize)
}

/// Decodes the enrichment columns (`get` looks a column up by id) of a block of `n` records
/// into `out`; `Ok(false)` when the block has none (written before format 1.1, or with
/// enrichment off), which leaves `out` unspecified.
pub fn decode_kept<'a>(
    get: impl Fn(u16) -> Option<&'a [u8]>,
    n: usize,
    out: &mut KeptBlock,
) -> Result<bool, StoreError> {
    let (Some(strings), Some(geos), Some(ases)) =
        (get(col::K_STRINGS), get(col::K_GEO), get(col::K_AS))
    else {
        return Ok(false);
    };
    let recs: Vec<&[u8]> = RECORD_COLUMNS.iter().filter_map(|&id| get(id)).collect();
    let [ex, geo, asn, sampling, iface] = recs.as_slice() else {
        return Ok(false);
    };
    // Every record takes at least a byte of each per-record column.
    if [ex, geo, asn, sampling, iface].iter().any(|c| c.len() < n) {
        return Err(StoreError::Corrupt(
            "enrichment column shorter than its records",
        ));
    }

    let mut c = Cursor::new(strings);
    let ns = count(&mut c, 1)?;
    out.strings.clear();
    for _ in 0..ns {
        let len = c.varint()?;
        let b = c.take(usize::try_from(len).map_err(|_| StoreError::Corrupt("string length"))?)?;
        let s = std::str::from_utf8(b).map_err(|_| StoreError::Corrupt("string not UTF-8"))?;
        out.strings.push(Arc::from(s));
    }

    let mut c = Cursor::new(geos);
    let ng = count(&mut c, 8)?;
    out.geos.clear();
    for _ in 0..ng {
        let mut refs = [0u32; 7];
        for r in refs.iter_mut() {
            *r = reference(&mut c, ns)?;
        }
        let location = match c.u8()? {
            0 => None,
            1 => {
                let b = c.take(16)?;
                let f = |b: &[u8]| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    f64::from_le_bytes(a)
                };
                Some(GeoPoint {
                    lat: f(&b[..8]),
                    lon: f(&b[8..]),
                })
            }
            _ => return Err(StoreError::Corrupt("geo location flag")),
        };
        let s = |r: u32| (r as usize).checked_sub(1).map(|i| out.strings[i].clone());
        out.geos.push(GeoInfo {
            continent_code: s(refs[0]),
            continent_name: s(refs[1]),
            country_iso_code: s(refs[2]),
            country_name: s(refs[3]),
            region_iso_code: s(refs[4]),
            region_name: s(refs[5]),
            city_name: s(refs[6]),
            location,
        });
    }

    let mut c = Cursor::new(ases);
    let na = count(&mut c, 2)?;
    out.ases.clear();
    for _ in 0..na {
        let number = c.varint_u32()?;
        let org = reference(&mut c, ns)?;
        let org = (org as usize)
            .checked_sub(1)
            .map(|i| out.strings[i].clone());
        out.ases.push((number, org));
    }

    let (mut ex, mut geo, mut asn, mut sampling, mut iface) = (
        Cursor::new(ex),
        Cursor::new(geo),
        Cursor::new(asn),
        Cursor::new(sampling),
        Cursor::new(iface),
    );
    out.recs.clear();
    out.recs.reserve(n);
    for _ in 0..n {
        let mut s = match reference(&mut ex, ns + 1)? {
            0 => KeptSlot::default(),
            r => KeptSlot {
                kept: true,
                exporter: r - 1,
                ..KeptSlot::default()
            },
        };
        for i in 0..2 {
            s.geo[i] = reference(&mut geo, ng)?;
        }
        for i in 0..2 {
            s.asn[i] = reference(&mut asn, na)?;
        }
        s.sampling = sampling.varint_u32()?;
        if s.sampling != 0 {
            s.sampling_source = sampling.u8()?;
            if sampling_of_code(s.sampling_source).is_none() {
                return Err(StoreError::Corrupt("sampling source"));
            }
        }
        for r in s.ifs.iter_mut() {
            *r = reference(&mut iface, ns)?;
        }
        out.recs.push(s);
    }
    Ok(true)
}
