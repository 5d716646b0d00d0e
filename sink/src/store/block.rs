//! One block: records buffered column by column ([`BlockBuilder`]), sealed into a framed,
//! compressed block, and decoded back ([`decode_block_into`]).
//!
//! Why columns: records of one datagram share their export header and usually their template,
//! so both become small tables referenced by index; and record bytes are regrouped field by
//! field for fixed-length templates, which puts addresses next to addresses and counters next
//! to counters: zstd then finds far longer matches than in row order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use rustc_hash::FxHashMap;
use sluice_decode::{Dialect, ExportHeader, FieldSpec, Record, Template};
use sluice_enrich::Enriched;

use super::error::StoreError;
use super::format::{
    col, put_varint, unzigzag, zigzag, BlockHeader, ColumnEntry, Cursor, BLOCK_ZSTD, COL_REQUIRED,
    ENC_V1,
};
use super::kept::{decode_kept, KeptBlock, KeptBuilder, RECORD_COLUMNS, TABLE_COLUMNS};

/// R_DATA group layout: records of the template back to back, in record order.
const LAYOUT_ROWS: u8 = 0;
/// R_DATA group layout: field after field, each field's bytes for every record of the group.
const LAYOUT_FIELDS: u8 = 1;

/// The header fields the store keeps (all but `tag`), hashable for interning.
type HeaderKey = (u16, SocketAddr, u32, i64, Option<u32>, u32, i64, u16);

fn header_key(h: &ExportHeader) -> HeaderKey {
    (
        h.version,
        h.exporter,
        h.source_id,
        h.export_time_ns,
        h.sys_uptime_ms,
        h.sequence,
        h.receive_time_ns,
        h.sampling_interval,
    )
}

/// Whether two headers have the same [`HeaderKey`], compared in place (cheapest first).
fn same_header(a: &ExportHeader, b: &ExportHeader) -> bool {
    a.sequence == b.sequence
        && a.export_time_ns == b.export_time_ns
        && a.receive_time_ns == b.receive_time_ns
        && a.source_id == b.source_id
        && a.version == b.version
        && a.sampling_interval == b.sampling_interval
        && a.sys_uptime_ms == b.sys_uptime_ms
        && a.exporter == b.exporter
}

/// What selects candidates in the template table; the field specs then decide.
type TemplateShape = (u16, Dialect, bool, u16, usize);

fn shape(t: &Template) -> TemplateShape {
    (t.id, t.dialect, t.options, t.scope_count, t.fields.len())
}

struct TemplateEntry {
    shape: TemplateShape,
    specs: Box<[FieldSpec]>,
    fixed_len: Option<usize>,
}

/// Records of one future block, kept column by column.
#[derive(Default)]
pub struct BlockBuilder {
    headers: Vec<HeaderKey>,
    // Fx: keys come from our own exporters' headers and the map is cleared per block; SipHash
    // was a tenth of the append cost.
    header_ix: FxHashMap<HeaderKey, u32>,
    templates: Vec<TemplateEntry>,
    template_ix: FxHashMap<TemplateShape, Vec<u32>>,
    /// Table entry of each compiled template seen in this block, by its process-wide `uid`
    /// (one compilation, one definition): spares comparing the field specs per record.
    template_uid: FxHashMap<u64, u32>,
    /// The last record's template: its `uid` and entry.
    last_uid: Option<(u64, u32)>,
    /// The last record's header and its entry.
    last_header: Option<(ExportHeader, u32)>,
    template_defs: Vec<u8>,
    rec_header: Vec<u32>,
    rec_template: Vec<u32>,
    rec_len: Vec<u32>,
    /// (record, system init time) of the records that have one, in record order: most have
    /// none, and a per-record `Option<i64>` cost a 16-byte copy per record.
    rec_sysinit: Vec<(u32, i64)>,
    data: Vec<u8>,
    kept: KeptBuilder,
    min_ts: i64,
    max_ts: i64,
}

impl std::fmt::Debug for BlockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuilder")
            .field("records", &self.rec_len.len())
            .field("headers", &self.headers.len())
            .field("templates", &self.templates.len())
            .field("data_bytes", &self.data.len())
            .finish()
    }
}

impl BlockBuilder {
    /// Records buffered.
    pub fn len(&self) -> usize {
        self.rec_len.len()
    }

    /// Nothing buffered.
    pub fn is_empty(&self) -> bool {
        self.rec_len.is_empty()
    }

    /// Record bytes buffered (the bulk of a block's size).
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// Buffers one record stamped `ts` (its @timestamp), with its enrichment if it is to be
    /// kept.
    pub fn push(
        &mut self,
        rec: &Record<'_>,
        ts: i64,
        enriched: Option<&Enriched>,
    ) -> Result<(), StoreError> {
        let len = u32::try_from(rec.data.len())
            .map_err(|_| StoreError::Corrupt("record longer than 4 GiB"))?;
        let h = self.intern_header(rec.header);
        let t = self.intern_template(rec.template);
        if self.rec_len.is_empty() {
            self.min_ts = ts;
            self.max_ts = ts;
        } else {
            self.min_ts = self.min_ts.min(ts);
            self.max_ts = self.max_ts.max(ts);
        }
        self.rec_header.push(h);
        self.rec_template.push(t);
        self.rec_len.push(len);
        if let Some(v) = rec.system_init_ms {
            self.rec_sysinit.push((self.rec_len.len() as u32 - 1, v));
        }
        self.data.extend_from_slice(rec.data);
        self.kept.push(enriched);
        Ok(())
    }

    fn intern_header(&mut self, h: &ExportHeader) -> u32 {
        // Records of one datagram arrive together: the previous record's header is the usual
        // hit. It is compared field by field where it lies; building its key on the stack
        // first and reading it back cost a store-forwarding stall per record.
        if let Some((last, i)) = &self.last_header {
            if same_header(last, h) {
                return *i;
            }
        }
        let key = header_key(h);
        let i = match self.header_ix.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.headers.len() as u32;
                self.headers.push(key);
                self.header_ix.insert(key, i);
                i
            }
        };
        self.last_header = Some((*h, i));
        i
    }

    fn intern_template(&mut self, t: &Template) -> u32 {
        if let Some((uid, i)) = self.last_uid {
            if uid == t.uid {
                return i;
            }
        }
        let i = match self.template_uid.get(&t.uid) {
            Some(&i) => i,
            None => {
                let i = self.intern_template_by_specs(t);
                self.template_uid.insert(t.uid, i);
                i
            }
        };
        self.last_uid = Some((t.uid, i));
        i
    }

    fn intern_template_by_specs(&mut self, t: &Template) -> u32 {
        let matches =
            |e: &TemplateEntry| e.shape == shape(t) && e.specs.iter().copied().eq(t.specs());
        let candidates = self.template_ix.entry(shape(t)).or_default();
        for &i in candidates.iter() {
            if self.templates.get(i as usize).is_some_and(matches) {
                return i;
            }
        }
        let i = self.templates.len() as u32;
        candidates.push(i);
        t.write_definition(&mut self.template_defs);
        self.templates.push(TemplateEntry {
            shape: shape(t),
            specs: t.specs().collect(),
            fixed_len: t.fixed_len,
        });
        i
    }

    fn clear(&mut self) {
        self.headers.clear();
        self.header_ix.clear();
        self.templates.clear();
        self.template_ix.clear();
        self.template_uid.clear();
        self.last_uid = None;
        self.last_header = None;
        self.template_defs.clear();
        self.rec_header.clear();
        self.rec_template.clear();
        self.rec_len.clear();
        self.rec_sysinit.clear();
        self.data.clear();
        self.kept.clear();
    }

    /// Encodes the buffered records as a framed block appended to `frame`, and empties the
    /// builder. `raw` and `packed` are scratch buffers kept by the caller across blocks.
    /// Returns the number of records in the block.
    pub fn seal(
        &mut self,
        compressor: &mut zstd::bulk::Compressor<'static>,
        raw: &mut Vec<u8>,
        packed: &mut Vec<u8>,
        frame: &mut Vec<u8>,
    ) -> Result<u32, StoreError> {
        let records = self.rec_len.len() as u32;
        raw.clear();
        let mut columns = Vec::with_capacity(32);
        let mut column =
            |raw: &mut Vec<u8>, id: u16, required: bool, fill: &dyn Fn(&mut Vec<u8>)| {
                let start = raw.len();
                fill(raw);
                columns.push(ColumnEntry {
                    id,
                    encoding: ENC_V1,
                    flags: if required { COL_REQUIRED } else { 0 },
                    len: (raw.len() - start) as u32,
                });
            };
        let hs = &self.headers;
        column(raw, col::META, true, &|o| {
            put_varint(o, hs.len() as u64);
            put_varint(o, self.templates.len() as u64);
        });
        column(raw, col::TEMPLATES, true, &|o| {
            o.extend_from_slice(&self.template_defs)
        });
        column(raw, col::H_VERSION, false, &|o| {
            hs.iter().for_each(|h| put_varint(o, u64::from(h.0)))
        });
        column(raw, col::H_EXPORTER, false, &|o| {
            hs.iter().for_each(|h| put_exporter(o, &h.1))
        });
        column(raw, col::H_SOURCE_ID, false, &|o| {
            hs.iter().for_each(|h| put_varint(o, u64::from(h.2)))
        });
        column(raw, col::H_EXPORT_TIME, true, &|o| {
            let mut prev = 0i64;
            for h in hs {
                put_varint(o, zigzag(h.3.wrapping_sub(prev)));
                prev = h.3;
            }
        });
        column(raw, col::H_UPTIME, false, &|o| {
            hs.iter()
                .for_each(|h| put_varint(o, h.4.map_or(0, |v| u64::from(v) + 1)))
        });
        column(raw, col::H_SEQUENCE, false, &|o| {
            let mut prev = 0u32;
            for h in hs {
                put_varint(o, zigzag(i64::from(h.5.wrapping_sub(prev) as i32)));
                prev = h.5;
            }
        });
        column(raw, col::H_RECEIVE_TIME, false, &|o| {
            hs.iter()
                .for_each(|h| put_varint(o, zigzag(h.6.wrapping_sub(h.3))))
        });
        column(raw, col::H_SAMPLING, false, &|o| {
            hs.iter().for_each(|h| put_varint(o, u64::from(h.7)))
        });
        column(raw, col::R_HEADER, true, &|o| {
            let mut prev = 0i64;
            for &i in &self.rec_header {
                put_varint(o, zigzag(i64::from(i) - prev));
                prev = i64::from(i);
            }
        });
        column(raw, col::R_TEMPLATE, true, &|o| {
            self.rec_template
                .iter()
                .for_each(|&i| put_varint(o, u64::from(i)))
        });
        column(raw, col::R_LENGTH, true, &|o| {
            self.rec_len
                .iter()
                .for_each(|&l| put_varint(o, u64::from(l)))
        });
        column(raw, col::R_SYSINIT, false, &|o| {
            let mut prev: Option<i64> = None;
            let mut sparse = self.rec_sysinit.iter().peekable();
            for r in 0..self.rec_len.len() as u32 {
                let s = sparse.next_if(|&&(at, _)| at == r).map(|&(_, v)| v);
                match s {
                    None => put_varint(o, 0),
                    Some(v) if prev == Some(v) => put_varint(o, 1),
                    Some(v) => {
                        put_varint(o, 2);
                        put_varint(o, zigzag(v));
                    }
                }
                if s.is_some() {
                    prev = s;
                }
            }
        });
        column(raw, col::R_DATA, true, &|o| self.write_data(o));
        if self.kept.is_on() {
            for id in TABLE_COLUMNS.into_iter().chain(RECORD_COLUMNS) {
                column(raw, id, false, &|o| self.kept.write_column(id, o));
            }
        }

        let raw_len = u32::try_from(raw.len())
            .map_err(|_| StoreError::Corrupt("block payload above 4 GiB"))?;
        packed.clear();
        packed.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        compressor
            .compress_to_buffer(raw.as_slice(), packed)
            .map_err(StoreError::Compression)?;
        let h = BlockHeader {
            header_len: 0,
            flags: BLOCK_ZSTD,
            payload_len: 0,
            raw_len,
            payload_crc: 0,
            records,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            columns,
        };
        super::format::write_block(frame, &h, packed);
        self.clear();
        Ok(records)
    }

    /// R_DATA: one group per template-table entry, in table order; each group is a layout
    /// byte, then for [`LAYOUT_FIELDS`] the field widths (varint count, varints), then the
    /// bytes. Field order is used only when every record of the template has the template's
    /// fixed length, so the widths describe them all.
    fn write_data(&self, o: &mut Vec<u8>) {
        let mut offsets = Vec::with_capacity(self.rec_len.len());
        let mut at = 0usize;
        for &l in &self.rec_len {
            offsets.push(at);
            at += l as usize;
        }
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); self.templates.len()];
        for (r, &t) in self.rec_template.iter().enumerate() {
            if let Some(m) = members.get_mut(t as usize) {
                m.push(r as u32);
            }
        }
        for (t, recs) in self.templates.iter().zip(&members) {
            let fixed = t.fixed_len.filter(|&l| {
                l > 0
                    && !t.specs.is_empty()
                    && recs.iter().all(|&r| self.rec_len[r as usize] as usize == l)
            });
            if fixed.is_some() {
                o.push(LAYOUT_FIELDS);
                put_varint(o, t.specs.len() as u64);
                t.specs.iter().for_each(|s| put_varint(o, u64::from(s.len)));
                let starts: Vec<usize> = recs.iter().map(|&r| offsets[r as usize]).collect();
                let widths: Vec<usize> = t.specs.iter().map(|s| usize::from(s.len)).collect();
                gather_fields(o, &self.data, &starts, &widths);
            } else {
                o.push(LAYOUT_ROWS);
                for &r in recs {
                    let (s, l) = (offsets[r as usize], self.rec_len[r as usize] as usize);
                    o.extend_from_slice(&self.data[s..s + l]);
                }
            }
        }
    }
}

/// Appends the fields of fixed-length records column by column: for each field width `w` of
/// `widths` in turn, the `w` bytes of that field of every record (starting at each of
/// `starts` in `src`). Records shorter than the widths' sum are not allowed; if one would
/// reach past `src`, the bounds-checked copy is used for all.
fn gather_fields(o: &mut Vec<u8>, src: &[u8], starts: &[usize], widths: &[usize]) {
    let width: usize = widths.iter().sum();
    let fits = starts
        .iter()
        .max()
        .and_then(|&m| m.checked_add(width))
        .is_some_and(|end| end <= src.len());
    let n = starts.len();
    let at = o.len();
    o.resize(at + width * n, 0);
    let out = &mut o[at..];
    // Field f's column starts at n * (its offset in the record). Records are taken CHUNK at a
    // time, every field of a chunk before the next chunk, so the chunk's records are read
    // from L1 by every field pass.
    const CHUNK: usize = 128;
    for (c, chunk) in starts.chunks(CHUNK).enumerate() {
        let first = c * CHUNK;
        let mut fo = 0usize;
        for &w in widths {
            let col = n * fo + first * w;
            let dst = &mut out[col..col + chunk.len() * w];
            if fits {
                // SAFETY: every start plus `width`, which is at least `fo + w`, is within
                // `src`.
                unsafe { gather(dst, src, chunk, fo, w) };
            } else {
                for (d, &s) in dst.chunks_exact_mut(w.max(1)).zip(chunk) {
                    if let Some(v) = src.get(s + fo..s + fo + w) {
                        d.copy_from_slice(v);
                    }
                }
            }
            fo += w;
        }
    }
}

/// Copies the `w` bytes at `start + fo` of `src`, for each start, to consecutive places of
/// `dst` (`w * starts.len()` bytes). Flow fields are nearly always 1, 2, 4, 8 or 16 bytes
/// wide: for those each copy has a constant length and compiles to a move instead of a call
/// to memcpy per field and record.
///
/// This is the store's hottest loop (a bounds and an overflow check per field and record were
/// a third of its time), so the reads of the usual widths are not checked.
///
/// # Safety
/// `start + fo + w <= src.len()` for every start (checked once by [`gather_fields`]).
unsafe fn gather(dst: &mut [u8], src: &[u8], starts: &[usize], fo: usize, w: usize) {
    /// # Safety
    /// As [`gather`], with `w` = `W`.
    unsafe fn fixed<const W: usize>(dst: &mut [u8], src: &[u8], starts: &[usize], fo: usize) {
        let base = src.as_ptr();
        for (d, &s) in dst.chunks_exact_mut(W).zip(starts) {
            // SAFETY: `s + fo + W <= src.len()` (the caller's promise), so the W bytes read
            // lie inside `src`; `d` is a W-byte chunk of `dst`, which cannot overlap `src`
            // (one is borrowed mutably, the other shared).
            unsafe { std::ptr::copy_nonoverlapping(base.add(s + fo), d.as_mut_ptr(), W) };
        }
    }
    // SAFETY (each arm): the caller's promise, passed on with W = w.
    match w {
        0 => {}
        1 => unsafe { fixed::<1>(dst, src, starts, fo) },
        2 => unsafe { fixed::<2>(dst, src, starts, fo) },
        4 => unsafe { fixed::<4>(dst, src, starts, fo) },
        8 => unsafe { fixed::<8>(dst, src, starts, fo) },
        16 => unsafe { fixed::<16>(dst, src, starts, fo) },
        _ => {
            for (d, &s) in dst.chunks_exact_mut(w).zip(starts) {
                d.copy_from_slice(&src[s + fo..s + fo + w]);
            }
        }
    }
}

/// The inverse of [`gather`]: consecutive `w`-byte values of `src` go to `start + fo` of
/// `dst`, for each start. The caller has checked that every destination lies inside `dst`.
fn scatter(src: &[u8], dst: &mut [u8], starts: &[usize], fo: usize, w: usize) {
    fn fixed<const W: usize>(src: &[u8], dst: &mut [u8], starts: &[usize], fo: usize) {
        for (v, &s) in src.chunks_exact(W).zip(starts) {
            dst[s + fo..s + fo + W].copy_from_slice(v);
        }
    }
    match w {
        0 => {}
        1 => fixed::<1>(src, dst, starts, fo),
        2 => fixed::<2>(src, dst, starts, fo),
        4 => fixed::<4>(src, dst, starts, fo),
        8 => fixed::<8>(src, dst, starts, fo),
        16 => fixed::<16>(src, dst, starts, fo),
        _ => {
            for (v, &s) in src.chunks_exact(w).zip(starts) {
                dst[s + fo..s + fo + w].copy_from_slice(v);
            }
        }
    }
}

fn put_exporter(o: &mut Vec<u8>, a: &SocketAddr) {
    match a {
        SocketAddr::V4(a) => {
            o.push(4);
            o.extend_from_slice(&a.ip().octets());
            o.extend_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            o.push(6);
            o.extend_from_slice(&a.ip().octets());
            o.extend_from_slice(&a.port().to_be_bytes());
            o.extend_from_slice(&a.flowinfo().to_be_bytes());
            o.extend_from_slice(&a.scope_id().to_be_bytes());
        }
    }
}

fn get_exporter(c: &mut Cursor<'_>) -> Result<SocketAddr, StoreError> {
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    match c.u8()? {
        4 => {
            let b = c.take(6)?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, be16(&b[4..]))))
        }
        6 => {
            let b = c.take(26)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[..16]);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                be16(&b[16..]),
                be32(&b[18..]),
                be32(&b[22..]),
            )))
        }
        _ => Err(StoreError::Corrupt("exporter address family")),
    }
}

/// Where one record of a decoded block lives.
#[derive(Clone, Copy, Debug)]
pub struct RecordSlot {
    /// Index in [`DecodedBlock::headers`].
    pub header: u32,
    /// Index in [`DecodedBlock::templates`].
    pub template: u32,
    /// Offset of its bytes in [`DecodedBlock::rows`].
    pub offset: u32,
    /// Length of its bytes.
    pub len: u32,
    /// systemInitTimeMilliseconds.
    pub system_init_ms: Option<i64>,
}

/// A block decoded back to header table, template table and records in write order.
#[derive(Debug, Default)]
pub struct DecodedBlock {
    /// Header table (`tag` is 0: it is not stored).
    pub headers: Vec<ExportHeader>,
    /// Compiled template table.
    pub templates: Vec<Template>,
    /// Records in write order.
    pub records: Vec<RecordSlot>,
    /// Record bytes, back in row order.
    pub rows: Vec<u8>,
    /// Set by the caller: decode the enrichment columns too.
    pub read_kept: bool,
    /// Whether `kept` holds this block's enrichment (it has the columns and `read_kept`).
    pub has_kept: bool,
    /// Enrichment of the records, by record index.
    pub kept: KeptBlock,
}

/// Columns of the payload by id; unknown optional ones are left out.
struct Columns<'a> {
    found: Vec<(u16, &'a [u8])>,
}

impl<'a> Columns<'a> {
    fn split(h: &BlockHeader, raw: &'a [u8]) -> Result<Self, StoreError> {
        const KNOWN: &[u16] = &[
            col::META,
            col::TEMPLATES,
            col::H_VERSION,
            col::H_EXPORTER,
            col::H_SOURCE_ID,
            col::H_EXPORT_TIME,
            col::H_UPTIME,
            col::H_SEQUENCE,
            col::H_RECEIVE_TIME,
            col::H_SAMPLING,
            col::R_HEADER,
            col::R_TEMPLATE,
            col::R_LENGTH,
            col::R_SYSINIT,
            col::R_DATA,
            col::K_STRINGS,
            col::K_GEO,
            col::K_AS,
            col::R_K_EXPORTER,
            col::R_K_GEO,
            col::R_K_AS,
            col::R_K_SAMPLING,
            col::R_K_IFACE,
        ];
        let mut found = Vec::with_capacity(h.columns.len());
        let mut at = 0usize;
        for c in &h.columns {
            let end = at + c.len as usize;
            let bytes = raw
                .get(at..end)
                .ok_or(StoreError::Corrupt("column beyond the payload"))?;
            at = end;
            let known = KNOWN.contains(&c.id) && c.encoding == ENC_V1;
            if known {
                if found.iter().any(|(id, _)| *id == c.id) {
                    return Err(StoreError::Corrupt("column listed twice"));
                }
                found.push((c.id, bytes));
            } else if c.flags & COL_REQUIRED != 0 {
                // A newer writer says the block cannot be understood without this column.
                return Err(StoreError::UnsupportedColumn(c.id));
            }
            // Otherwise: an optional column from a newer writer (enrichment, say); skipped.
        }
        Ok(Columns { found })
    }

    fn get(&self, id: u16) -> Option<&'a [u8]> {
        self.found.iter().find(|(i, _)| *i == id).map(|(_, b)| *b)
    }

    fn need(&self, id: u16) -> Result<&'a [u8], StoreError> {
        self.get(id).ok_or(StoreError::UnsupportedColumn(id))
    }
}

/// Reads `n` values from an optional per-entry column, or `default` for each when absent.
fn optional<T: Copy>(
    bytes: Option<&[u8]>,
    n: usize,
    default: T,
    mut read: impl FnMut(&mut Cursor<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(n);
    match bytes {
        Some(b) => {
            let mut c = Cursor::new(b);
            for _ in 0..n {
                out.push(read(&mut c)?);
            }
        }
        None => out.resize(n, default),
    }
    Ok(out)
}

/// Decodes an uncompressed, checksummed payload into a new [`DecodedBlock`] (tests; scans
/// use [`decode_block_into`]).
#[cfg(test)]
pub fn decode_block(h: &BlockHeader, raw: &[u8]) -> Result<DecodedBlock, StoreError> {
    let mut out = DecodedBlock::default();
    decode_block_into(h, raw, &mut out)?;
    Ok(out)
}

/// Decodes an uncompressed, checksummed payload into `out`, reusing its buffers (a scan
/// decodes block after block into one, so the large record and row tables are not
/// allocated, and on Linux mapped and unmapped, for every block). Every inconsistency is
/// `Corrupt` (or `UnsupportedColumn`); nothing here panics or allocates more than the
/// payload justifies. After an error `out` holds a partial block: do not use it.
pub fn decode_block_into(
    h: &BlockHeader,
    raw: &[u8],
    out: &mut DecodedBlock,
) -> Result<(), StoreError> {
    let cols = Columns::split(h, raw)?;
    let mut meta = Cursor::new(cols.need(col::META)?);
    let n_headers = meta.varint()?;
    let n_templates = meta.varint()?;
    let n_records = u64::from(h.records);
    // Each header costs at least one byte of H_EXPORT_TIME, each record one byte of
    // R_TEMPLATE, each template eight bytes of TEMPLATES: counts above that are lies, and
    // checking them first bounds every allocation below by the payload size.
    let bound = |n: u64, bytes: usize| n <= bytes as u64;
    if !bound(n_headers, cols.need(col::H_EXPORT_TIME)?.len())
        || !bound(n_records, cols.need(col::R_TEMPLATE)?.len())
        || !bound(
            n_templates.saturating_mul(8),
            cols.need(col::TEMPLATES)?.len(),
        )
    {
        return Err(StoreError::Corrupt("table counts above the column sizes"));
    }
    let (n_headers, n_templates, n_records) =
        (n_headers as usize, n_templates as usize, n_records as usize);

    let templates = &mut out.templates;
    templates.clear();
    templates.reserve(n_templates);
    let mut tc = Cursor::new(cols.need(col::TEMPLATES)?);
    for _ in 0..n_templates {
        // The decoder never compiles templates above MAX_FIELDS fields (its Limits); a
        // definition claiming more is not ours, and compiling 65535 fields is slow.
        let rest = tc.rest();
        let fields = rest
            .get(6..8)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        if fields > sluice_decode::record::MAX_FIELDS {
            return Err(StoreError::Corrupt("template with too many fields"));
        }
        let (t, used) = Template::read_definition(tc.rest())
            .map_err(|_| StoreError::Corrupt("template definition"))?;
        tc.skip(used)?;
        templates.push(t);
    }

    out.headers = decode_headers(&cols, n_headers)?;

    let mut rh = Cursor::new(cols.need(col::R_HEADER)?);
    let mut rt = Cursor::new(cols.need(col::R_TEMPLATE)?);
    let mut rl = Cursor::new(cols.need(col::R_LENGTH)?);
    let sysinit = cols.get(col::R_SYSINIT);
    let mut rs = sysinit.map(Cursor::new);
    let records = &mut out.records;
    records.clear();
    records.reserve(n_records);
    let mut prev_header = 0i64;
    let mut prev_init: Option<i64> = None;
    let mut total = 0u64;
    for _ in 0..n_records {
        let hi = prev_header.wrapping_add(unzigzag(rh.varint()?));
        prev_header = hi;
        let header = u32::try_from(hi)
            .ok()
            .filter(|&i| (i as usize) < n_headers)
            .ok_or(StoreError::Corrupt("record header index"))?;
        let template = rt.varint_u32()?;
        if template as usize >= n_templates {
            return Err(StoreError::Corrupt("record template index"));
        }
        let len = rl.varint_u32()?;
        let system_init_ms = match rs.as_mut() {
            None => None,
            Some(c) => match c.varint()? {
                0 => None,
                1 => Some(prev_init.ok_or(StoreError::Corrupt("sysinit repeat without value"))?),
                2 => Some(unzigzag(c.varint()?)),
                _ => return Err(StoreError::Corrupt("sysinit tag")),
            },
        };
        if system_init_ms.is_some() {
            prev_init = system_init_ms;
        }
        let offset =
            u32::try_from(total).map_err(|_| StoreError::Corrupt("block data above 4 GiB"))?;
        total += u64::from(len);
        records.push(RecordSlot {
            header,
            template,
            offset,
            len,
            system_init_ms,
        });
    }
    let data = cols.need(col::R_DATA)?;
    if total > data.len() as u64 {
        return Err(StoreError::Corrupt("record lengths above the data column"));
    }
    ungroup(data, records, n_templates, total as usize, &mut out.rows)?;
    out.has_kept = out.read_kept && decode_kept(|id| cols.get(id), n_records, &mut out.kept)?;
    Ok(())
}

fn decode_headers(cols: &Columns<'_>, n: usize) -> Result<Vec<ExportHeader>, StoreError> {
    let mut prev_export = 0i64;
    let export = optional(Some(cols.need(col::H_EXPORT_TIME)?), n, 0, |c| {
        prev_export = prev_export.wrapping_add(unzigzag(c.varint()?));
        Ok(prev_export)
    })?;
    let version = optional(cols.get(col::H_VERSION), n, 0u16, |c| {
        u16::try_from(c.varint()?).map_err(|_| StoreError::Corrupt("header version"))
    })?;
    let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let exporter = optional(cols.get(col::H_EXPORTER), n, unspecified, get_exporter)?;
    let source_id = optional(cols.get(col::H_SOURCE_ID), n, 0u32, |c| c.varint_u32())?;
    let uptime = optional(cols.get(col::H_UPTIME), n, None, |c| match c.varint()? {
        0 => Ok(None),
        v => u32::try_from(v - 1)
            .map(Some)
            .map_err(|_| StoreError::Corrupt("header uptime")),
    })?;
    let mut prev_seq = 0u32;
    let sequence = optional(cols.get(col::H_SEQUENCE), n, 0u32, |c| {
        let d = i32::try_from(unzigzag(c.varint()?))
            .map_err(|_| StoreError::Corrupt("header sequence"))?;
        prev_seq = prev_seq.wrapping_add(d as u32);
        Ok(prev_seq)
    })?;
    let receive_delta = optional(cols.get(col::H_RECEIVE_TIME), n, None, |c| {
        Ok(Some(unzigzag(c.varint()?)))
    })?;
    let sampling = optional(cols.get(col::H_SAMPLING), n, 0u16, |c| {
        u16::try_from(c.varint()?).map_err(|_| StoreError::Corrupt("header sampling"))
    })?;
    Ok((0..n)
        .map(|i| ExportHeader {
            version: version[i],
            exporter: exporter[i],
            source_id: source_id[i],
            export_time_ns: export[i],
            sys_uptime_ms: uptime[i],
            sequence: sequence[i],
            // Absent column: the receive time is unknown, 0 as for a header without one.
            receive_time_ns: receive_delta[i].map_or(0, |d| export[i].wrapping_add(d)),
            sampling_interval: sampling[i],
            tag: 0,
        })
        .collect())
}

/// Undoes the R_DATA grouping: puts every record's bytes in record order into `rows`.
fn ungroup(
    data: &[u8],
    records: &[RecordSlot],
    n_templates: usize,
    total: usize,
    rows: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); n_templates];
    for (i, r) in records.iter().enumerate() {
        members[r.template as usize].push(i as u32);
    }
    rows.clear();
    rows.resize(total, 0);
    let mut c = Cursor::new(data);
    for recs in &members {
        if recs.is_empty() {
            // The writer lists only templates that records use; tolerate unused entries as
            // long as they carry no group.
            continue;
        }
        match c.u8()? {
            LAYOUT_ROWS => {
                for &r in recs {
                    let r = records[r as usize];
                    let src = c.take(r.len as usize)?;
                    let at = r.offset as usize;
                    rows[at..at + src.len()].copy_from_slice(src);
                }
            }
            LAYOUT_FIELDS => {
                let n = c.varint()?;
                if n > c.rest().len() as u64 {
                    return Err(StoreError::Corrupt("field count"));
                }
                let mut widths = Vec::with_capacity(n as usize);
                let mut sum = 0u64;
                for _ in 0..n {
                    let w = c.varint_u32()?;
                    sum += u64::from(w);
                    widths.push(w as usize);
                }
                if recs
                    .iter()
                    .any(|&r| u64::from(records[r as usize].len) != sum)
                {
                    return Err(StoreError::Corrupt(
                        "field widths do not match record lengths",
                    ));
                }
                // Every record lies inside `rows` (offsets are prefix sums of the lengths,
                // whose total sized it) and its fields inside the record (widths add up to
                // its length): the scatter cannot go out of bounds.
                let starts: Vec<usize> = recs
                    .iter()
                    .map(|&r| records[r as usize].offset as usize)
                    .collect();
                let mut fo = 0usize;
                for w in widths {
                    let src = c.take(w.saturating_mul(recs.len()))?;
                    scatter(src, rows, &starts, fo, w);
                    fo += w;
                }
            }
            _ => return Err(StoreError::Corrupt("data layout")),
        }
    }
    if !c.rest().is_empty() {
        return Err(StoreError::Corrupt("bytes after the last data group"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::{block_header_len, parse_block_header};
    use sluice_decode::template::{v5_template, VARLEN};

    fn header(v6: bool, export: i64, seq: u32) -> ExportHeader {
        let exporter = if v6 {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 4739, 7, 3))
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), 2055)
        };
        ExportHeader {
            version: if v6 { 10 } else { 9 },
            exporter,
            source_id: 42,
            export_time_ns: export,
            sys_uptime_ms: (!v6).then_some(u32::MAX - seq),
            sequence: seq.wrapping_mul(0x9e37_79b9),
            receive_time_ns: export - 3,
            sampling_interval: if v6 { 0 } else { 0x4005 },
            tag: 99,
        }
    }

    fn templates() -> Vec<Template> {
        let f = |id, len| FieldSpec { id, pen: 0, len };
        vec![
            v5_template().clone(),
            Template::compile(
                300,
                Dialect::Ipfix,
                false,
                0,
                &[f(8, 4), f(82, VARLEN), f(2, 8)],
            )
            .expect("varlen template"),
            Template::compile(301, Dialect::Ipfix, true, 1, &[f(144, 4), f(160, 8)])
                .expect("options template"),
        ]
    }

    struct Original {
        header: ExportHeader,
        template: usize,
        data: Vec<u8>,
        sysinit: Option<i64>,
    }

    fn originals() -> Vec<Original> {
        let mut out = Vec::new();
        for i in 0..40u32 {
            let t = (i % 3) as usize;
            let data = match t {
                0 => (0..48).map(|k| (k as u32 * 7 + i) as u8).collect(),
                1 => {
                    let name = "x".repeat((i as usize * 13) % 300);
                    let mut d = vec![10, 0, 0, i as u8];
                    if name.len() < 255 {
                        d.push(name.len() as u8);
                    } else {
                        d.push(255);
                        d.extend_from_slice(&(name.len() as u16).to_be_bytes());
                    }
                    d.extend_from_slice(name.as_bytes());
                    d.extend_from_slice(&u64::from(i).to_be_bytes());
                    d
                }
                _ => (0..12).map(|k| k as u8 ^ i as u8).collect(),
            };
            out.push(Original {
                header: header(
                    i % 5 == 0,
                    1_700_000_000_000_000_000 + i64::from(i / 4),
                    i / 4,
                ),
                template: t,
                data,
                sysinit: match i % 4 {
                    0 => None,
                    1 | 2 => Some(1_600_000_000_000),
                    _ => Some(-5 - i64::from(i)),
                },
            });
        }
        out
    }

    /// Seals the originals; returns the block header and uncompressed payload.
    fn sealed() -> (BlockHeader, Vec<u8>) {
        let ts = templates();
        let mut b = BlockBuilder::default();
        for o in originals() {
            let t = &ts[o.template];
            let mut spans = Vec::new();
            sluice_decode::record::spans_of(t, &o.data, &mut spans).expect("fits");
            let rec = Record {
                header: &o.header,
                template: t,
                data: &o.data,
                spans: &spans,
                system_init_ms: o.sysinit,
            };
            b.push(&rec, o.header.export_time_ns, None).expect("push");
        }
        let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
        let (mut raw, mut packed, mut frame) = (Vec::new(), Vec::new(), Vec::new());
        assert_eq!(
            b.seal(&mut c, &mut raw, &mut packed, &mut frame).ok(),
            Some(40)
        );
        assert!(b.is_empty());
        let hl = block_header_len(&frame).expect("header len");
        let h = parse_block_header(&frame[..hl]).expect("header");
        let back = zstd::bulk::decompress(&frame[hl..], h.raw_len as usize).expect("zstd");
        assert_eq!(back, raw);
        (h, raw)
    }

    fn check_same(d: &DecodedBlock) {
        let ts = templates();
        let orig = originals();
        assert_eq!(d.records.len(), orig.len());
        for (o, r) in orig.iter().zip(&d.records) {
            let mut h = o.header;
            h.tag = 0;
            assert_eq!(d.headers[r.header as usize], h);
            assert_eq!(d.templates[r.template as usize], ts[o.template]);
            let at = r.offset as usize;
            assert_eq!(&d.rows[at..at + r.len as usize], &o.data[..]);
            assert_eq!(r.system_init_ms, o.sysinit);
        }
    }

    fn columns(h: &BlockHeader, raw: &[u8]) -> Vec<(ColumnEntry, Vec<u8>)> {
        let mut at = 0;
        h.columns
            .iter()
            .map(|c| {
                let b = raw[at..at + c.len as usize].to_vec();
                at += c.len as usize;
                (*c, b)
            })
            .collect()
    }

    fn rebuild(h: &BlockHeader, cols: &[(ColumnEntry, Vec<u8>)]) -> (BlockHeader, Vec<u8>) {
        let mut h = h.clone();
        let mut raw = Vec::new();
        h.columns.clear();
        for (c, b) in cols {
            h.columns.push(ColumnEntry {
                len: b.len() as u32,
                ..*c
            });
            raw.extend_from_slice(b);
        }
        h.raw_len = raw.len() as u32;
        (h, raw)
    }

    #[test]
    fn templates_intern_by_definition_across_compilations() {
        // Records alternate between a template, a second compilation of the same definition
        // (a refresh: another uid) and a different definition with the same id and length.
        let f = |id, len| FieldSpec { id, pen: 0, len };
        let a = Template::compile(400, Dialect::Ipfix, false, 0, &[f(8, 4), f(12, 4)])
            .expect("template");
        let a2 = Template::compile(400, Dialect::Ipfix, false, 0, &[f(8, 4), f(12, 4)])
            .expect("template");
        let b = Template::compile(400, Dialect::Ipfix, false, 0, &[f(12, 4), f(8, 4)])
            .expect("template");
        assert_ne!(a.uid, a2.uid);
        let h = header(false, 1_700_000_000_000_000_000, 1);
        let mut bb = BlockBuilder::default();
        let order = [&a, &a, &a2, &b, &a, &b, &a2, &a2];
        for (i, t) in order.iter().enumerate() {
            let data: Vec<u8> = (0..8).map(|k| (k + 8 * i) as u8).collect();
            let spans = [(0, 4), (4, 4)];
            let rec = Record {
                header: &h,
                template: t,
                data: &data,
                spans: &spans,
                system_init_ms: None,
            };
            bb.push(&rec, h.export_time_ns, None).expect("push");
        }
        assert_eq!(bb.templates.len(), 2, "a and its refresh share one entry");
        assert_eq!(bb.rec_template, [0, 0, 0, 1, 0, 1, 0, 0]);
        let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
        let (mut raw, mut packed, mut frame) = (Vec::new(), Vec::new(), Vec::new());
        bb.seal(&mut c, &mut raw, &mut packed, &mut frame)
            .expect("seal");
        // After sealing, the uid memory is gone with the block: the next block starts afresh.
        assert!(bb.template_uid.is_empty() && bb.last_uid.is_none());
        let hl = block_header_len(&frame).expect("header len");
        let bh = parse_block_header(&frame[..hl]).expect("header");
        let d = decode_block(&bh, &raw).expect("decodes");
        for (i, (r, t)) in d.records.iter().zip(order).enumerate() {
            assert_eq!(d.templates[r.template as usize], *t, "record {i}");
            let at = r.offset as usize;
            let want: Vec<u8> = (0..8).map(|k| (k + 8 * i) as u8).collect();
            assert_eq!(&d.rows[at..at + 8], &want[..], "record {i}");
        }
    }

    #[test]
    fn same_header_is_equality_of_the_kept_fields() {
        let a = header(false, 1_700_000_000_000_000_000, 9);
        let changes: [&dyn Fn(&mut ExportHeader); 8] = [
            &|h| h.version = 10,
            &|h| h.exporter.set_port(h.exporter.port() + 1),
            &|h| h.source_id += 1,
            &|h| h.export_time_ns += 1,
            &|h| h.sys_uptime_ms = Some(h.sys_uptime_ms.map_or(1, |u| u + 1)),
            &|h| h.sequence += 1,
            &|h| h.receive_time_ns += 1,
            &|h| h.sampling_interval += 1,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut b = a;
            change(&mut b);
            assert_ne!(header_key(&a), header_key(&b), "field {i}");
            assert!(!same_header(&a, &b), "field {i}");
        }
        let mut b = a;
        b.tag += 1;
        assert!(same_header(&a, &b), "the tag is not kept");
        assert_eq!(header_key(&a), header_key(&b));
    }

    #[test]
    fn fixed_records_round_trip_across_gather_chunks() {
        // Two fixed-length templates with every gather width (1, 2, 3, 4, 8, 16 and a zero
        // width), interleaved unevenly over several gather chunks, and one variable-length
        // record in between: each record must come back whole, in order.
        let f = |id, len| FieldSpec { id, pen: 0, len };
        let wide = Template::compile(
            410,
            Dialect::Ipfix,
            false,
            0,
            &[
                f(4, 1),
                f(7, 2),
                f(56, 6),
                f(8, 4),
                f(1, 8),
                f(27, 16),
                f(210, 0),
                f(90, 3),
            ],
        )
        .expect("template");
        let narrow =
            Template::compile(411, Dialect::Ipfix, false, 0, &[f(8, 4), f(12, 4)]).expect("t");
        let var = Template::compile(412, Dialect::Ipfix, false, 0, &[f(82, VARLEN)])
            .expect("varlen template");
        let h = header(false, 1_700_000_000_000_000_000, 7);
        let mut recs: Vec<(&Template, Vec<u8>)> = Vec::new();
        for i in 0..1000u32 {
            let t = if i == 500 {
                &var
            } else if i % 7 == 3 || i % 11 == 0 {
                &narrow
            } else {
                &wide
            };
            let len = if std::ptr::eq(t, &var) {
                6
            } else {
                t.fixed_len.expect("fixed")
            };
            let mut data: Vec<u8> = (0..len).map(|k| (k as u32 * 31 + i * 7) as u8).collect();
            if std::ptr::eq(t, &var) {
                data[0] = 5;
            }
            recs.push((t, data));
        }
        let mut b = BlockBuilder::default();
        for (t, data) in &recs {
            let mut spans = Vec::new();
            sluice_decode::record::spans_of(t, data, &mut spans).expect("fits");
            let rec = Record {
                header: &h,
                template: t,
                data,
                spans: &spans,
                system_init_ms: None,
            };
            b.push(&rec, h.export_time_ns, None).expect("push");
        }
        let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
        let (mut raw, mut packed, mut frame) = (Vec::new(), Vec::new(), Vec::new());
        assert_eq!(
            b.seal(&mut c, &mut raw, &mut packed, &mut frame).ok(),
            Some(1000)
        );
        let hl = block_header_len(&frame).expect("header len");
        let bh = parse_block_header(&frame[..hl]).expect("header");
        let d = decode_block(&bh, &raw).expect("decodes");
        assert_eq!(d.records.len(), recs.len());
        for ((t, data), r) in recs.iter().zip(&d.records) {
            assert_eq!(&d.templates[r.template as usize], *t);
            let at = r.offset as usize;
            assert_eq!(&d.rows[at..at + r.len as usize], &data[..]);
        }
    }

    #[test]
    fn records_round_trip_with_interned_tables() {
        let (h, raw) = sealed();
        let d = decode_block(&h, &raw).expect("decodes");
        check_same(&d);
        // 40 records over 18 distinct headers (10 export times, 8 of them also from the v6
        // exporter) and 3 templates.
        assert_eq!((d.headers.len(), d.templates.len()), (18, 3));
        assert_eq!(h.min_ts, 1_700_000_000_000_000_000);
        assert_eq!(h.max_ts, 1_700_000_000_000_000_009);
    }

    #[test]
    fn unknown_columns_are_skipped_unless_required() {
        let (h, raw) = sealed();
        let mut cols = columns(&h, &raw);
        let extra = ColumnEntry {
            id: 900,
            encoding: 1,
            flags: 0,
            len: 0,
        };
        cols.insert(3, (extra, b"geo/as data of a later version".to_vec()));
        let (h2, raw2) = rebuild(&h, &cols);
        check_same(&decode_block(&h2, &raw2).expect("optional column skipped"));

        cols[3].0.flags = COL_REQUIRED;
        let (h3, raw3) = rebuild(&h, &cols);
        assert!(matches!(
            decode_block(&h3, &raw3),
            Err(StoreError::UnsupportedColumn(900))
        ));
    }

    #[test]
    fn missing_optional_columns_read_as_absent() {
        let (h, raw) = sealed();
        let cols: Vec<_> = columns(&h, &raw)
            .into_iter()
            .filter(|(c, _)| c.id != col::R_SYSINIT && c.id != col::H_UPTIME)
            .collect();
        let (h2, raw2) = rebuild(&h, &cols);
        let d = decode_block(&h2, &raw2).expect("decodes");
        assert!(d.records.iter().all(|r| r.system_init_ms.is_none()));
        assert!(d.headers.iter().all(|h| h.sys_uptime_ms.is_none()));

        // A known column in an unknown encoding counts as missing too.
        let mut cols = columns(&h, &raw);
        for (c, _) in cols.iter_mut() {
            if c.id == col::R_SYSINIT {
                c.encoding = 2;
            }
        }
        let (h3, raw3) = rebuild(&h, &cols);
        let d = decode_block(&h3, &raw3).expect("decodes");
        assert!(d.records.iter().all(|r| r.system_init_ms.is_none()));

        // Without the record bytes there is nothing to read.
        let cols: Vec<_> = columns(&h, &raw)
            .into_iter()
            .filter(|(c, _)| c.id != col::R_DATA)
            .collect();
        let (h4, raw4) = rebuild(&h, &cols);
        assert!(matches!(
            decode_block(&h4, &raw4),
            Err(StoreError::UnsupportedColumn(_))
        ));
    }

    #[test]
    fn damaged_payloads_error_without_panicking() {
        // Checksums normally keep damage away from the decoder; this drives it directly.
        let (h, raw) = sealed();
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut b = raw.clone();
            for _ in 0..=next() % 3 {
                let i = (next() % b.len() as u64) as usize;
                b[i] = next() as u8;
            }
            let _ = decode_block(&h, &b);
        }
        for cut in 0..raw.len() {
            let mut h2 = h.clone();
            h2.raw_len = cut as u32;
            assert!(decode_block(&h2, &raw[..cut]).is_err());
        }
        let mut h2 = h.clone();
        h2.records += 1;
        assert!(decode_block(&h2, &raw).is_err());
    }
}
