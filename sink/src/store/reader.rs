//! [`StoreReader`]: time-range scans over partitions, segments and blocks.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sluice_decode::record::spans_of;
use sluice_decode::time::export_ns;
use sluice_decode::Record;
use sluice_enrich::Kept;

use super::block::{decode_block_into, DecodedBlock};
use super::error::StoreError;
use super::format::{
    block_header_len, parse_block_header, parse_segment_header, segment_name, BLOCK_FIXED_LEN,
    BLOCK_ZSTD, SEGMENT_HEADER_LEN,
};
use super::retention::{list_partitions, list_segments};

/// Read buffer: large enough that skipping a pruned block's payload usually stays inside it
/// (a seek, not a read), small enough to not matter per scan.
const READ_BUFFER: usize = 64 << 10;

/// What one scan saw. Corrupt and torn data is counted here, never returned as an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Partition directories visited.
    pub partitions: u64,
    /// Segment files opened.
    pub segments: u64,
    /// Blocks decompressed and decoded.
    pub blocks_read: u64,
    /// Blocks skipped by their time range without reading their payload.
    pub blocks_pruned: u64,
    /// Blocks skipped because their payload fails its checksum or does not decode.
    pub blocks_corrupt: u64,
    /// Blocks skipped because they need a column or compression this reader does not know.
    pub blocks_unsupported: u64,
    /// Segments that ended in a torn or in-progress block (short header, bad header checksum,
    /// payload past the end of the file): the scan of that segment stopped there.
    pub torn_tails: u64,
    /// Bytes after the last complete block of those segments.
    pub torn_bytes: u64,
    /// Segments skipped whole: bad segment header.
    pub segments_corrupt: u64,
    /// Segments skipped whole: written by a newer format version.
    pub segments_unsupported: u64,
    /// Segments listed but removed (by retention) before they could be opened.
    pub segments_vanished: u64,
    /// Records handed to the callback.
    pub records: u64,
    /// Records in range whose bytes do not fit their template (never written by a correct
    /// writer; counted rather than handed out).
    pub records_skipped: u64,
}

impl ScanStats {
    /// Adds every counter of `o` (merging the stats of shards).
    pub fn add(&mut self, o: &ScanStats) {
        self.partitions += o.partitions;
        self.segments += o.segments;
        self.blocks_read += o.blocks_read;
        self.blocks_pruned += o.blocks_pruned;
        self.blocks_corrupt += o.blocks_corrupt;
        self.blocks_unsupported += o.blocks_unsupported;
        self.torn_tails += o.torn_tails;
        self.torn_bytes += o.torn_bytes;
        self.segments_corrupt += o.segments_corrupt;
        self.segments_unsupported += o.segments_unsupported;
        self.segments_vanished += o.segments_vanished;
        self.records += o.records;
        self.records_skipped += o.records_skipped;
    }
}

/// Reads a store directory. Holds nothing open between scans.
#[derive(Clone, Debug)]
pub struct StoreReader {
    dir: PathBuf,
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Per-scan scratch buffers, reused from block to block.
struct Scratch {
    payload: Vec<u8>,
    raw: Vec<u8>,
    spans: Vec<(u32, u32)>,
    /// The block being emitted.
    block: DecodedBlock,
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl StoreReader {
    /// A reader of the store at `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<StoreReader, StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                "store directory not found",
            )));
        }
        Ok(StoreReader {
            dir: dir.to_path_buf(),
        })
    }

    /// Calls `f` for every stored record whose @timestamp
    /// (`sluice_decode::time::export_ns`) is in `[from_ns, to_ns)`: partitions in time order,
    /// segments in sequence order, records in write order within a segment. Works while a
    /// writer appends: only complete, checksummed blocks are read; a torn or in-progress tail
    /// ends that segment quietly and is counted. Only I/O errors other than a file vanishing
    /// are returned.
    pub fn scan<F: FnMut(&Record<'_>)>(
        &self,
        from_ns: i64,
        to_ns: i64,
        f: F,
    ) -> Result<ScanStats, StoreError> {
        self.scan_shard(Shard::ALL, from_ns, to_ns, f)
    }

    /// [`StoreReader::scan`] that also hands each record the enrichment kept with it: `Some`
    /// for records of blocks with enrichment columns (format 1.1), `None` for blocks written
    /// before them or with enrichment off.
    pub fn scan_kept<F: FnMut(&Record<'_>, Option<&Kept<'_>>)>(
        &self,
        from_ns: i64,
        to_ns: i64,
        f: F,
    ) -> Result<ScanStats, StoreError> {
        self.scan_shard_kept(Shard::ALL, from_ns, to_ns, f)
    }

    /// [`StoreReader::scan`] of one shard: of every segment, only the blocks whose position
    /// in the segment is `shard.index` modulo `shard.count`. Scanning each of `count` shards
    /// (on as many threads) visits every block once, in about equal parts. Segment-level
    /// counts (partitions, segments, torn tails, bad segment headers) are made by shard 0
    /// only, so the shards' stats add up to one scan's.
    pub fn scan_shard<F: FnMut(&Record<'_>)>(
        &self,
        shard: Shard,
        from_ns: i64,
        to_ns: i64,
        mut f: F,
    ) -> Result<ScanStats, StoreError> {
        self.scan_inner(shard, from_ns, to_ns, false, &mut |r, _| f(r))
    }

    /// [`StoreReader::scan_shard`] with the kept enrichment (see [`StoreReader::scan_kept`]).
    pub fn scan_shard_kept<F: FnMut(&Record<'_>, Option<&Kept<'_>>)>(
        &self,
        shard: Shard,
        from_ns: i64,
        to_ns: i64,
        mut f: F,
    ) -> Result<ScanStats, StoreError> {
        self.scan_inner(shard, from_ns, to_ns, true, &mut f)
    }

    fn scan_inner<F: FnMut(&Record<'_>, Option<&Kept<'_>>)>(
        &self,
        shard: Shard,
        from_ns: i64,
        to_ns: i64,
        read_kept: bool,
        f: &mut F,
    ) -> Result<ScanStats, StoreError> {
        let mut st = ScanStats::default();
        let shard = Shard {
            count: shard.count.max(1),
            index: shard.index % shard.count.max(1),
        };
        if from_ns >= to_ns {
            return Ok(st);
        }
        let mut scratch = Scratch {
            payload: Vec::new(),
            raw: Vec::new(),
            spans: Vec::new(),
            block: DecodedBlock {
                read_kept,
                ..DecodedBlock::default()
            },
            decompressor: zstd::bulk::Decompressor::new().map_err(StoreError::Compression)?,
        };
        // Segment-level counts go to a throw-away copy on shards other than 0.
        let mut seg_st = ScanStats::default();
        for (name, _) in list_partitions(&self.dir)? {
            st.partitions += 1;
            let pdir = self.dir.join(&name);
            for (seq, _) in list_segments(&pdir)? {
                let path = pdir.join(segment_name(seq));
                let segment_stats = if shard.index == 0 {
                    &mut st
                } else {
                    &mut seg_st
                };
                let mut ctx = ScanCtx {
                    from_ns,
                    to_ns,
                    shard,
                    seg: segment_stats,
                    scratch: &mut scratch,
                };
                let mut blocks = ScanStats::default();
                scan_segment(&path, &mut ctx, f, &mut blocks)?;
                add_block_stats(&mut st, &blocks);
            }
        }
        if shard.index != 0 {
            st.partitions = 0;
        }
        Ok(st)
    }
}

/// Which blocks a scan reads: of each segment, those at positions `index` modulo `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, below `count`.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl Shard {
    /// Every block.
    pub const ALL: Shard = Shard { index: 0, count: 1 };
}

/// One scan's settings and segment-level counters, passed down to each segment.
struct ScanCtx<'a> {
    from_ns: i64,
    to_ns: i64,
    shard: Shard,
    /// Where segment-level events are counted.
    seg: &'a mut ScanStats,
    scratch: &'a mut Scratch,
}

/// Adds the block- and record-level counters of `b` to `st`.
fn add_block_stats(st: &mut ScanStats, b: &ScanStats) {
    st.blocks_read += b.blocks_read;
    st.blocks_pruned += b.blocks_pruned;
    st.blocks_corrupt += b.blocks_corrupt;
    st.blocks_unsupported += b.blocks_unsupported;
    st.records += b.records;
    st.records_skipped += b.records_skipped;
}

/// Scans one segment: segment-level events are counted in `c.seg`, block- and record-level
/// ones in `st`.
fn scan_segment<F: FnMut(&Record<'_>, Option<&Kept<'_>>)>(
    path: &Path,
    c: &mut ScanCtx<'_>,
    f: &mut F,
    st: &mut ScanStats,
) -> Result<(), StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            c.seg.segments_vanished += 1;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(READ_BUFFER, file);
    c.seg.segments += 1;

    let mut head = [0u8; SEGMENT_HEADER_LEN];
    let got = read_full(&mut r, &mut head)?;
    if got == 0 {
        // Created, first write not done yet: nothing to read.
        return Ok(());
    }
    if got < SEGMENT_HEADER_LEN {
        c.seg.torn_tails += 1;
        c.seg.torn_bytes += got as u64;
        return Ok(());
    }
    let mut pos = match parse_segment_header(&head) {
        Ok(first_block) => first_block,
        Err(StoreError::UnsupportedVersion(_)) => {
            c.seg.segments_unsupported += 1;
            return Ok(());
        }
        Err(_) => {
            c.seg.segments_corrupt += 1;
            return Ok(());
        }
    };
    if pos > SEGMENT_HEADER_LEN as u64 {
        // A longer header from a later revision: its extra fields are skipped.
        r.seek_relative((pos - SEGMENT_HEADER_LEN as u64) as i64)?;
    }

    let mut hbuf = Vec::with_capacity(256);
    // Position of the block in the segment, for sharding.
    let mut ordinal = 0usize;
    loop {
        let torn = |st: &mut ScanStats, pos: u64, len: u64| {
            st.torn_tails += 1;
            st.torn_bytes += len.saturating_sub(pos);
        };
        hbuf.resize(BLOCK_FIXED_LEN, 0);
        let got = read_full(&mut r, &mut hbuf)?;
        if got == 0 {
            return Ok(());
        }
        if got < BLOCK_FIXED_LEN {
            torn(c.seg, pos, pos + got as u64);
            return Ok(());
        }
        let Ok(header_len) = block_header_len(&hbuf) else {
            torn(c.seg, pos, file_len.max(pos + got as u64));
            return Ok(());
        };
        hbuf.resize(header_len, 0);
        let got = read_full(&mut r, &mut hbuf[BLOCK_FIXED_LEN..])?;
        if got < header_len - BLOCK_FIXED_LEN {
            torn(c.seg, pos, pos + (BLOCK_FIXED_LEN + got) as u64);
            return Ok(());
        }
        let Ok(h) = parse_block_header(&hbuf) else {
            // The header checksum failed, so its lengths cannot be trusted: nothing after it
            // can be found. A crash mid-write or garbage appended looks like this.
            torn(c.seg, pos, file_len.max(pos + header_len as u64));
            return Ok(());
        };
        let end = pos + h.total_len();
        if end > file_len {
            // The writer may have appended since we looked at the length.
            file_len = r.get_ref().metadata()?.len();
            if end > file_len {
                torn(c.seg, pos, file_len);
                return Ok(());
            }
        }
        let payload_len = h.payload_len as usize;
        let mine = ordinal % c.shard.count == c.shard.index;
        ordinal += 1;
        if !mine || h.records == 0 || h.max_ts < c.from_ns || h.min_ts >= c.to_ns {
            if mine {
                st.blocks_pruned += 1;
            }
            r.seek_relative(i64::from(h.payload_len))?;
            pos = end;
            continue;
        }
        let s = &mut *c.scratch;
        s.payload.resize(payload_len, 0);
        let got = read_full(&mut r, &mut s.payload)?;
        if got < payload_len {
            // The file was cut between our length check and the read.
            torn(c.seg, pos, pos + (header_len + got) as u64);
            return Ok(());
        }
        pos = end;
        if crc32fast::hash(&s.payload) != h.payload_crc {
            // The header is intact (its own checksum held), so its length is right and the
            // next block can still be found: skip just this one.
            st.blocks_corrupt += 1;
            continue;
        }
        match read_block(&h, s) {
            Ok(()) => {}
            Err(StoreError::UnsupportedColumn(_)) => {
                st.blocks_unsupported += 1;
                continue;
            }
            Err(_) => {
                st.blocks_corrupt += 1;
                continue;
            }
        };
        st.blocks_read += 1;
        emit(&s.block, c.from_ns, c.to_ns, f, st, &mut s.spans);
    }
}

/// Decompresses and decodes the block in `s.payload` into `s.block`.
fn read_block(h: &super::format::BlockHeader, s: &mut Scratch) -> Result<(), StoreError> {
    if h.flags & !BLOCK_ZSTD != 0 {
        // A compression or flag from a newer writer.
        return Err(StoreError::UnsupportedColumn(0));
    }
    if h.flags & BLOCK_ZSTD != 0 {
        s.raw.clear();
        s.raw.reserve(h.raw_len as usize);
        let n = s
            .decompressor
            .decompress_to_buffer(&s.payload, &mut s.raw)
            .map_err(|_| StoreError::Corrupt("payload does not decompress"))?;
        if n != h.raw_len as usize {
            return Err(StoreError::Corrupt(
                "payload decompresses to another length",
            ));
        }
        decode_block_into(h, &s.raw, &mut s.block)
    } else {
        if s.payload.len() != h.raw_len as usize {
            return Err(StoreError::Corrupt("raw payload length"));
        }
        decode_block_into(h, &s.payload, &mut s.block)
    }
}

fn emit<F: FnMut(&Record<'_>, Option<&Kept<'_>>)>(
    b: &DecodedBlock,
    from_ns: i64,
    to_ns: i64,
    f: &mut F,
    st: &mut ScanStats,
    spans: &mut Vec<(u32, u32)>,
) {
    for (i, slot) in b.records.iter().enumerate() {
        // Indexes were checked by decode_block; `get` keeps a bug from becoming a panic.
        let (Some(header), Some(template)) = (
            b.headers.get(slot.header as usize),
            b.templates.get(slot.template as usize),
        ) else {
            st.records_skipped += 1;
            continue;
        };
        let start = slot.offset as usize;
        let Some(data) = b.rows.get(start..start + slot.len as usize) else {
            st.records_skipped += 1;
            continue;
        };
        let mut rec = Record {
            header,
            template,
            data,
            spans: &[],
            system_init_ms: slot.system_init_ms,
        };
        let ts = export_ns(&rec);
        if ts < from_ns || ts >= to_ns {
            continue;
        }
        // Spans are not stored: the decoder made them exactly this way.
        if template.fixed_len == Some(data.len()) {
            rec.spans = &template.fixed_spans;
        } else if spans_of(template, data, spans).is_some() {
            rec.spans = spans;
        } else {
            st.records_skipped += 1;
            continue;
        }
        st.records += 1;
        let kept = if b.has_kept { b.kept.get(i) } else { None };
        f(&rec, kept.as_ref());
    }
}
