//! On-disk framing: segment header, block header with its column directory, varints, and the
//! names of partition directories and segment files. The layout is described in the FORMAT
//! section of [`super`]; this file is its single implementation.

use super::error::StoreError;
use crate::timefmt::{parse_rfc3339, write_rfc3339};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SLUICEST";
/// Format version this code writes, and the newest it reads (the segment header's version).
pub const FORMAT_VERSION: u16 = 1;
/// Minor revision of [`FORMAT_VERSION`] this code writes: 1.1 adds the optional enrichment
/// columns. Minor revisions only add optional columns, so they are not written anywhere: a
/// block has the columns or not, and every 1.x reader reads every 1.x block.
pub const FORMAT_MINOR: u16 = 1;
/// Length of the v1 segment header. A later version may write a longer header; its length is
/// stored in the header so that older framing code can still find the first block.
pub const SEGMENT_HEADER_LEN: usize = 24;

/// First bytes of every block.
pub const BLOCK_MAGIC: [u8; 4] = *b"SLBK";
/// Fixed part of a block header, before the column directory.
pub const BLOCK_FIXED_LEN: usize = 44;
/// One column directory entry: id u16, encoding u8, flags u8, byte length u32.
pub const DIR_ENTRY_LEN: usize = 8;
/// Block flag: the payload is one zstd frame (otherwise stored raw).
pub const BLOCK_ZSTD: u16 = 1;
/// Column flag: a reader that does not know this (column id, encoding) must skip the whole
/// block rather than the column, because the column changes the meaning of the others.
pub const COL_REQUIRED: u8 = 1;

/// Upper bound on a block's uncompressed payload a reader accepts. The writer seals blocks
/// far below it (see `MAX_BLOCK_DATA`); the bound keeps a corrupt-but-checksummed length or a
/// hostile file from making the reader allocate gigabytes.
pub const MAX_RAW_LEN: u32 = 256 << 20;
/// Most columns a block may list; 1.0 writes 15, 1.1 with enrichment 23.
pub const MAX_COLUMNS: u16 = 256;

/// Suffix of segment files; other files in a partition directory are ignored.
pub const SEGMENT_SUFFIX: &str = ".sls";
/// Prefix of segment files.
pub const SEGMENT_PREFIX: &str = "seg-";

/// Column ids of format v1. Ids are never reused for another meaning; a new encoding of the
/// same data gets a new encoding number under the same id.
pub mod col {
    /// Counts: varint header-table entries, varint template-table entries.
    pub const META: u16 = 1;
    /// Template table: `Template::write_definition` of each entry, back to back.
    pub const TEMPLATES: u16 = 2;
    /// Header table, one value per entry: version (varint).
    pub const H_VERSION: u16 = 10;
    /// Exporter: family u8 (4|6), address, port u16 BE; v6 adds flowinfo u32, scope id u32.
    pub const H_EXPORTER: u16 = 11;
    /// Source id / observation domain (varint).
    pub const H_SOURCE_ID: u16 = 12;
    /// Export time ns, zigzag delta from the previous entry (first from 0).
    pub const H_EXPORT_TIME: u16 = 13;
    /// sysUptime ms: 0 = none, otherwise value + 1 (varint).
    pub const H_UPTIME: u16 = 14;
    /// Sequence: zigzag of the wrapping 32-bit difference from the previous entry.
    pub const H_SEQUENCE: u16 = 15;
    /// Receive time ns, zigzag of (receive - export), wrapping.
    pub const H_RECEIVE_TIME: u16 = 16;
    /// v5 sampling interval field (varint).
    pub const H_SAMPLING: u16 = 17;
    /// Per record: header-table index, zigzag delta from the previous record's.
    pub const R_HEADER: u16 = 20;
    /// Per record: template-table index (varint).
    pub const R_TEMPLATE: u16 = 21;
    /// Per record: length of its bytes (varint).
    pub const R_LENGTH: u16 = 22;
    /// Per record: systemInitTimeMilliseconds: 0 = none, 1 = same as the previous record's
    /// value, 2 followed by the zigzag varint of a new value.
    pub const R_SYSINIT: u16 = 23;
    /// Record bytes grouped by template (see `block.rs`).
    pub const R_DATA: u16 = 24;

    // Format 1.1: enrichment kept per record (see `kept.rs`), all optional. References are
    // 1-based indices into the block's tables, 0 = none.
    /// String table: varint count, then per string varint length and UTF-8 bytes.
    pub const K_STRINGS: u16 = 30;
    /// Geo table: varint count, then per entry 7 varint string references (continent code,
    /// continent name, country ISO code, country name, region ISO code, region name, city)
    /// and a location byte (0 none, 1 followed by latitude and longitude as f64 LE).
    pub const K_GEO: u16 = 31;
    /// AS table: varint count, then per entry varint AS number, varint organization reference.
    pub const K_AS: u16 = 32;
    /// Per record: 0 when nothing was kept for the record, else 1 + its exporter name's
    /// string reference.
    pub const R_K_EXPORTER: u16 = 33;
    /// Per record: source geo, destination geo (geo references).
    pub const R_K_GEO: u16 = 34;
    /// Per record: source AS, destination AS (AS references).
    pub const R_K_AS: u16 = 35;
    /// Per record: sampling interval applied (varint, 0 = none), then if not 0 its source
    /// (u8: 1 config, 2 record, 3 sampler table, 4 scope).
    pub const R_K_SAMPLING: u16 = 36;
    /// Per record: input interface name, input description, output name, output description
    /// (string references).
    pub const R_K_IFACE: u16 = 37;
}

/// Encoding number of every v1 column.
pub const ENC_V1: u8 = 1;

/// Appends an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag maps small negative and positive numbers to small unsigned ones.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A bounds-checked cursor over a column's bytes. Every read returns `Corrupt` on running out
/// or on an over-long varint, never panics.
#[derive(Debug)]
pub struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or(&[])
    }

    /// Reads a LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .b
                .get(self.pos)
                .ok_or(StoreError::Corrupt("column ends inside a varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(StoreError::Corrupt("varint overflows 64 bits"));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StoreError::Corrupt("varint longer than 10 bytes"))
    }

    /// Reads a varint that must fit in u32.
    pub fn varint_u32(&mut self) -> Result<u32, StoreError> {
        u32::try_from(self.varint()?).map_err(|_| StoreError::Corrupt("value above 32 bits"))
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(StoreError::Corrupt("length overflow"))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or(StoreError::Corrupt("column shorter than its contents"))?;
        self.pos = end;
        Ok(s)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    /// Advances past `n` bytes already consumed elsewhere (after a parse of `rest()`).
    pub fn skip(&mut self, n: usize) -> Result<(), StoreError> {
        self.take(n).map(|_| ())
    }
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_le(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

/// Writes a v1 segment header.
pub fn write_segment_header(out: &mut Vec<u8>, created_ns: i64) {
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(SEGMENT_HEADER_LEN as u16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags: none defined in v1
    out.extend_from_slice(&created_ns.to_le_bytes());
}

/// Checks a segment header (at least [`SEGMENT_HEADER_LEN`] bytes) and returns the offset of
/// its first block.
pub fn parse_segment_header(b: &[u8]) -> Result<u64, StoreError> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(StoreError::Corrupt("segment shorter than its header"));
    }
    if b[..8] != SEGMENT_MAGIC {
        return Err(StoreError::Corrupt("segment magic"));
    }
    let version = u16_le(b, 8);
    if version == 0 || version > FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion(version));
    }
    let header_len = usize::from(u16_le(b, 10));
    if header_len < SEGMENT_HEADER_LEN {
        return Err(StoreError::Corrupt("segment header length"));
    }
    Ok(header_len as u64)
}

/// One column directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnEntry {
    /// Column id (see [`col`]).
    pub id: u16,
    /// Encoding of the column's bytes.
    pub encoding: u8,
    /// [`COL_REQUIRED`] or 0.
    pub flags: u8,
    /// Bytes of the column in the uncompressed payload.
    pub len: u32,
}

/// A parsed block header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Header bytes, directory and header checksum included.
    pub header_len: u32,
    /// Block flags ([`BLOCK_ZSTD`]).
    pub flags: u16,
    /// Payload bytes on disk.
    pub payload_len: u32,
    /// Payload bytes once decompressed.
    pub raw_len: u32,
    /// crc32 of the on-disk payload.
    pub payload_crc: u32,
    /// Records in the block.
    pub records: u32,
    /// Smallest @timestamp (ns) of the block's records.
    pub min_ts: i64,
    /// Largest @timestamp (ns).
    pub max_ts: i64,
    /// Columns in payload order.
    pub columns: Vec<ColumnEntry>,
}

impl BlockHeader {
    /// Whole framed block length.
    pub fn total_len(&self) -> u64 {
        u64::from(self.header_len) + u64::from(self.payload_len)
    }
}

/// Appends a framed block: header, directory, header crc, payload.
pub fn write_block(out: &mut Vec<u8>, h: &BlockHeader, payload: &[u8]) {
    let start = out.len();
    let header_len = BLOCK_FIXED_LEN + DIR_ENTRY_LEN * h.columns.len() + 4;
    out.extend_from_slice(&BLOCK_MAGIC);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(&h.flags.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.raw_len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&h.records.to_le_bytes());
    out.extend_from_slice(&h.min_ts.to_le_bytes());
    out.extend_from_slice(&h.max_ts.to_le_bytes());
    out.extend_from_slice(&(h.columns.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    for c in &h.columns {
        out.extend_from_slice(&c.id.to_le_bytes());
        out.push(c.encoding);
        out.push(c.flags);
        out.extend_from_slice(&c.len.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Header length announced by the fixed part of a block header (at least
/// [`BLOCK_FIXED_LEN`] bytes), after checking the magic. The caller reads that many bytes and
/// hands them to [`parse_block_header`].
pub fn block_header_len(fixed: &[u8]) -> Result<usize, StoreError> {
    if fixed.len() < BLOCK_FIXED_LEN || fixed[..4] != BLOCK_MAGIC {
        return Err(StoreError::Corrupt("block magic"));
    }
    let header_len = usize::from(u16_le(fixed, 4));
    let ncols = usize::from(u16_le(fixed, 40));
    if ncols > usize::from(MAX_COLUMNS) || header_len < BLOCK_FIXED_LEN + DIR_ENTRY_LEN * ncols + 4
    {
        return Err(StoreError::Corrupt("block header length"));
    }
    Ok(header_len)
}

/// Parses and checks a whole block header (`b.len()` = its header length).
pub fn parse_block_header(b: &[u8]) -> Result<BlockHeader, StoreError> {
    let header_len = block_header_len(b)?;
    if b.len() != header_len {
        return Err(StoreError::Corrupt("block header length"));
    }
    let crc_at = header_len - 4;
    if crc32fast::hash(&b[..crc_at]) != u32_le(b, crc_at) {
        return Err(StoreError::Corrupt("block header checksum"));
    }
    let ncols = usize::from(u16_le(b, 40));
    let mut columns = Vec::with_capacity(ncols);
    let mut sum = 0u64;
    for i in 0..ncols {
        let at = BLOCK_FIXED_LEN + DIR_ENTRY_LEN * i;
        let c = ColumnEntry {
            id: u16_le(b, at),
            encoding: b[at + 2],
            flags: b[at + 3],
            len: u32_le(b, at + 4),
        };
        sum += u64::from(c.len);
        columns.push(c);
    }
    let h = BlockHeader {
        header_len: header_len as u32,
        flags: u16_le(b, 6),
        payload_len: u32_le(b, 8),
        raw_len: u32_le(b, 12),
        payload_crc: u32_le(b, 16),
        records: u32_le(b, 20),
        min_ts: i64_le(b, 24),
        max_ts: i64_le(b, 32),
        columns,
    };
    if sum != u64::from(h.raw_len) {
        return Err(StoreError::Corrupt(
            "column lengths do not add up to the payload",
        ));
    }
    if h.raw_len > MAX_RAW_LEN || h.payload_len > MAX_RAW_LEN.saturating_add(MAX_RAW_LEN / 8) {
        return Err(StoreError::Corrupt("block payload too large"));
    }
    if h.min_ts > h.max_ts {
        return Err(StoreError::Corrupt("block time range"));
    }
    Ok(h)
}

/// Name of the partition that starts at `start_secs` (a multiple of the partition length):
/// `2026-11-23T14` when partitions are whole hours, `2026-11-23T140500` otherwise. Both sort
/// lexicographically in time order, also mixed, which is what the reader relies on.
pub fn partition_name(start_secs: i64, partition_secs: u64) -> String {
    let mut b = Vec::with_capacity(24);
    write_rfc3339(&mut b, start_secs.saturating_mul(1_000_000_000));
    // write_rfc3339 writes `YYYY-MM-DDTHH:MM:SS.sssZ`, ASCII only.
    let s = String::from_utf8_lossy(&b);
    if partition_secs.checked_rem(3600) == Some(0) {
        s.get(..13).unwrap_or_default().to_string()
    } else {
        s.get(..19).unwrap_or_default().replace(':', "")
    }
}

/// Start (seconds since the epoch) of a partition directory name, or `None` for a name that
/// is not a partition.
pub fn parse_partition_name(name: &str) -> Option<i64> {
    let b = name.as_bytes();
    let iso = match b.len() {
        13 => format!("{name}:00:00Z"),
        17 => {
            let (hm, s) = (name.get(..15)?, name.get(15..)?);
            let (h, m) = (hm.get(..13)?, hm.get(13..)?);
            format!("{h}:{m}:{s}Z")
        }
        _ => return None,
    };
    let ns = parse_rfc3339(&iso)?;
    Some(ns.div_euclid(1_000_000_000))
}

/// File name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:08}{SEGMENT_SUFFIX}")
}

/// Sequence number of a segment file name, or `None` for other files.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_garbage() {
        let values = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let mut b = Vec::new();
        for v in values {
            put_varint(&mut b, v);
        }
        let mut c = Cursor::new(&b);
        for v in values {
            assert_eq!(c.varint().ok(), Some(v));
        }
        assert!(c.varint().is_err());
        assert!(Cursor::new(&[0xff; 11]).varint().is_err());
        assert!(
            Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .varint()
                .is_err()
        );
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -123_456_789] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn partition_names_round_trip_and_sort() {
        let t = 1_795_442_400; // 2026-11-23T14:00:00Z
        assert_eq!(partition_name(t, 3600), "2026-11-23T14");
        assert_eq!(parse_partition_name("2026-11-23T14"), Some(t));
        assert_eq!(partition_name(t + 300, 300), "2026-11-23T140500");
        assert_eq!(parse_partition_name("2026-11-23T140500"), Some(t + 300));
        assert!(partition_name(t, 3600) < partition_name(t + 300, 300));
        assert!(partition_name(t + 300, 300) < partition_name(t + 3600, 3600));
        for bad in [
            "",
            "x",
            "2026-11-23T1",
            "2026-13-23T14",
            "2026-11-23T14:00",
            "seg-1",
        ] {
            assert_eq!(parse_partition_name(bad), None, "{bad}");
        }
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("seg-.sls"), None);
        assert_eq!(parse_segment_name("seg-12.tmp"), None);
    }

    #[test]
    fn block_header_round_trip_and_checks() {
        let h = BlockHeader {
            header_len: 0,
            flags: BLOCK_ZSTD,
            payload_len: 0,
            raw_len: 7,
            payload_crc: 0,
            records: 3,
            min_ts: -5,
            max_ts: 9,
            columns: vec![
                ColumnEntry {
                    id: 1,
                    encoding: 1,
                    flags: COL_REQUIRED,
                    len: 3,
                },
                ColumnEntry {
                    id: 900,
                    encoding: 7,
                    flags: 0,
                    len: 4,
                },
            ],
        };
        let mut b = Vec::new();
        write_block(&mut b, &h, b"payload");
        let hl = block_header_len(&b[..BLOCK_FIXED_LEN]).expect("len");
        let back = parse_block_header(&b[..hl]).expect("parses");
        assert_eq!(back.columns, h.columns);
        assert_eq!(back.payload_len, 7);
        assert_eq!(back.payload_crc, crc32fast::hash(b"payload"));
        assert_eq!((back.min_ts, back.max_ts, back.records), (-5, 9, 3));
        for i in 0..hl {
            let mut bad = b[..hl].to_vec();
            bad[i] ^= 0x40;
            let r = block_header_len(&bad).and_then(|l| {
                if l == hl {
                    parse_block_header(&bad)
                } else {
                    Err(StoreError::Corrupt("len changed"))
                }
            });
            assert!(r.is_err(), "flipped byte {i} accepted");
        }
    }
}
