//! [`StoreWriter`]: buffers records per partition, seals blocks, appends them to segments.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_decode::time::{end_ns, export_ns};
use sluice_decode::Record;

use super::ages::{RecordAges, AGE_SAMPLE_EVERY};
use super::block::BlockBuilder;
use super::error::StoreError;
use super::format::{partition_name, segment_name, write_segment_header, SEGMENT_HEADER_LEN};
use super::retention::{self, list_segments, Inventory, RetentionStats};
use super::{StoreConfig, StoreStats};

/// Partitions with a block being filled (and a segment open) at once. Records normally go to
/// the current partition and, around the turn of the hour, the previous one; exporters with
/// skewed clocks add a few. Beyond this the least recently used one is sealed and closed, so
/// a flood of scattered timestamps costs small blocks, not unbounded memory or descriptors.
const MAX_OPEN_PARTITIONS: usize = 16;

/// A block is also sealed once its record bytes reach this, whatever its record count: long
/// variable-length records (IPFIX strings, lists) must not make blocks of hundreds of MiB,
/// which readers would have to hold in memory whole.
const MAX_BLOCK_DATA: usize = 16 << 20;

/// Attempts at finding a free segment name when another process created the one we picked.
const NAME_ATTEMPTS: u64 = 64;

#[derive(Debug)]
struct OpenSegment {
    file: File,
    seq: u64,
    /// Bytes of complete blocks written (the file's length unless a write failed).
    len: u64,
}

#[derive(Debug)]
struct OpenPartition {
    /// Partition number: start time / partition length.
    index: i64,
    name: String,
    start_secs: i64,
    builder: BlockBuilder,
    /// Flow ends of the buffered records sampled for their age (one in `AGE_SAMPLE_EVERY`),
    /// when record ages are tracked.
    ends: Vec<i64>,
    segment: Option<OpenSegment>,
    /// LRU clock value of the last append.
    used: u64,
    /// Appended to since the previous retention run.
    busy: bool,
}

/// Appends records to the store. One writer per store directory.
pub struct StoreWriter {
    cfg: StoreConfig,
    partition_ns: i64,
    outlier_ns: i64,
    open: Vec<OpenPartition>,
    /// Index in `open` of the partition of the previous append: the usual next one.
    last: usize,
    clock: u64,
    compressor: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    packed: Vec<u8>,
    frame: Vec<u8>,
    inventory: Inventory,
    /// Directories whose new entries must be fsynced by the next `sync`.
    dirty_dirs: BTreeSet<PathBuf>,
    records_written: u64,
    blocks_written: u64,
    records_dropped: u64,
    /// Records written since the last successful `flush`.
    written_since_flush: u64,
    /// Where the ages of written records go ([`StoreWriter::track_ages`]).
    ages: Option<Arc<Mutex<RecordAges>>>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("dir", &self.cfg.dir)
            .field("open", &self.open)
            .field("stats", &self.stats())
            .finish()
    }
}

fn now_wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn secs_to_ns(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000)
}

impl StoreWriter {
    /// Opens (creating) the store directory. Existing segments are listed, never read or
    /// modified: a torn tail left by a crash stays in its segment and new blocks go to new
    /// segments.
    pub fn open(cfg: StoreConfig) -> Result<StoreWriter, StoreError> {
        if cfg.partition_secs == 0 || cfg.partition_secs > 366 * 86_400 {
            return Err(StoreError::Config("partition_secs must be 1..=31622400"));
        }
        if cfg.block_records == 0 || cfg.block_records > 1 << 24 {
            return Err(StoreError::Config("block_records must be 1..=16777216"));
        }
        if cfg.segment_bytes < 4096 {
            return Err(StoreError::Config("segment_bytes must be at least 4096"));
        }
        if !zstd::compression_level_range().contains(&cfg.zstd_level) {
            return Err(StoreError::Config("zstd_level out of zstd's range"));
        }
        fs::create_dir_all(&cfg.dir)?;
        let inventory = Inventory::scan(&cfg.dir)?;
        let compressor =
            zstd::bulk::Compressor::new(cfg.zstd_level).map_err(StoreError::Compression)?;
        let mut dirty_dirs = BTreeSet::new();
        dirty_dirs.insert(cfg.dir.clone());
        Ok(StoreWriter {
            partition_ns: secs_to_ns(cfg.partition_secs),
            outlier_ns: secs_to_ns(cfg.outlier_secs),
            cfg,
            open: Vec::new(),
            last: 0,
            clock: 0,
            compressor,
            raw: Vec::new(),
            packed: Vec::new(),
            frame: Vec::new(),
            inventory,
            dirty_dirs,
            records_written: 0,
            blocks_written: 0,
            records_dropped: 0,
            written_since_flush: 0,
            ages: None,
        })
    }

    /// From now on, records the age of every record written (its write time minus its flow
    /// end) into `ages` (see [`RecordAges`]).
    pub fn track_ages(&mut self, ages: Arc<Mutex<RecordAges>>) {
        self.ages = Some(ages);
    }

    /// The configuration in use.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Buffers one record; seals and writes its partition's block when the block is full.
    /// `now_ns` is the writer's clock, used for the outlier rule (see [`StoreConfig`]).
    /// The record's enrichment is not kept (see [`StoreWriter::append_enriched`]).
    pub fn append(&mut self, rec: &Record<'_>, now_ns: i64) -> Result<(), StoreError> {
        self.append_enriched(rec, None, now_ns)
    }

    /// [`StoreWriter::append`], keeping the record's enrichment (`Some`) in the block's
    /// enrichment columns: exporter name, geolocation and AS of both ends, sampling applied
    /// and its source, interface names and descriptions (format 1.1; see the FORMAT section
    /// of [`super`]).
    pub fn append_enriched(
        &mut self,
        rec: &Record<'_>,
        enriched: Option<&sluice_enrich::Enriched>,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        let ts = export_ns(rec);
        let placed = if ts.abs_diff(now_ns) > self.outlier_ns.unsigned_abs() {
            now_ns
        } else {
            ts
        };
        // Consecutive records nearly always share a partition: the previous one's span is
        // checked first, which spares a 64-bit division per record.
        let pns = self.partition_ns;
        let index = match self.open.get(self.last) {
            Some(p)
                if p.index
                    .checked_mul(pns)
                    .is_some_and(|from| placed >= from && placed < from.saturating_add(pns)) =>
            {
                p.index
            }
            _ => placed.div_euclid(pns),
        };
        let slot = match self.partition(index) {
            Ok(slot) => slot,
            Err(e) => {
                self.records_dropped += 1;
                return Err(e);
            }
        };
        let p = &mut self.open[slot];
        if let Err(e) = p.builder.push(rec, ts, enriched) {
            self.records_dropped += 1;
            return Err(e);
        }
        if self.ages.is_some() && (p.builder.len() - 1).is_multiple_of(AGE_SAMPLE_EVERY) {
            p.ends.push(end_ns(rec));
        }
        if p.builder.len() >= self.cfg.block_records || p.builder.data_bytes() >= MAX_BLOCK_DATA {
            self.write_block(slot)?;
        }
        Ok(())
    }

    /// Index in `open` of partition `index`, opening it (and closing the least recently used
    /// one if too many are open).
    fn partition(&mut self, index: i64) -> Result<usize, StoreError> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(p) = self.open.get_mut(self.last) {
            if p.index == index {
                p.used = clock;
                p.busy = true;
                return Ok(self.last);
            }
        }
        if let Some(i) = self.open.iter().position(|p| p.index == index) {
            self.open[i].used = clock;
            self.open[i].busy = true;
            self.last = i;
            return Ok(i);
        }
        if self.open.len() >= MAX_OPEN_PARTITIONS {
            let lru = self
                .open
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.used)
                .map_or(0, |(i, _)| i);
            self.close_partition(lru)?;
        }
        let start_secs = index.saturating_mul(self.partition_ns / 1_000_000_000);
        self.open.push(OpenPartition {
            index,
            name: partition_name(start_secs, self.cfg.partition_secs),
            start_secs,
            builder: BlockBuilder::default(),
            ends: Vec::new(),
            segment: None,
            used: clock,
            busy: true,
        });
        self.last = self.open.len() - 1;
        Ok(self.last)
    }

    /// Writes a partition's partial block and forgets the partition (closing its segment).
    fn close_partition(&mut self, slot: usize) -> Result<(), StoreError> {
        let r = self.write_block(slot);
        self.open.swap_remove(slot);
        self.last = 0;
        r.map(|_| ())
    }

    /// Seals the partition's buffered records into one block and appends it to the
    /// partition's segment (opening or rolling segments as needed). Returns the records
    /// written. On failure the block's records are dropped and counted, and the segment is
    /// cut back to its last complete block. With [`StoreWriter::track_ages`], the ages of
    /// the records written are recorded once the write has returned.
    fn write_block(&mut self, slot: usize) -> Result<u64, StoreError> {
        let r = self.write_block_inner(slot);
        let p = &mut self.open[slot];
        if let (Ok(n), Some(ages)) = (&r, &self.ages) {
            if *n > 0 {
                let now = now_wall_ns();
                let mut a = match ages.lock() {
                    Ok(a) => a,
                    Err(poisoned) => poisoned.into_inner(),
                };
                a.record_sampled(now, &p.ends, AGE_SAMPLE_EVERY, *n);
            }
        }
        p.ends.clear();
        r
    }

    fn write_block_inner(&mut self, slot: usize) -> Result<u64, StoreError> {
        let p = &mut self.open[slot];
        if p.builder.is_empty() {
            return Ok(0);
        }
        let n = p.builder.len() as u64;
        self.frame.clear();
        if let Err(e) = p.builder.seal(
            &mut self.compressor,
            &mut self.raw,
            &mut self.packed,
            &mut self.frame,
        ) {
            p.builder = BlockBuilder::default();
            self.records_dropped += n;
            return Err(e);
        }
        // Roll: a segment that would pass the size limit is closed, unless it is still empty
        // (a single block larger than the limit gets a segment of its own).
        if let Some(seg) = &p.segment {
            let body = seg.len.saturating_sub(SEGMENT_HEADER_LEN as u64);
            if body > 0 && seg.len + self.frame.len() as u64 > self.cfg.segment_bytes {
                p.segment = None;
            }
        }
        if p.segment.is_none() {
            match open_segment(&self.cfg.dir, &p.name) {
                Ok((seg, new_dir)) => {
                    let mut head = Vec::with_capacity(SEGMENT_HEADER_LEN);
                    write_segment_header(&mut head, now_wall_ns());
                    // Header and first block go out in the same write: a segment file is
                    // never left holding only a header.
                    self.frame.splice(0..0, head);
                    let part_dir = self.cfg.dir.join(&p.name);
                    if new_dir {
                        self.dirty_dirs.insert(self.cfg.dir.clone());
                    }
                    self.dirty_dirs.insert(part_dir);
                    self.inventory
                        .set_segment(&p.name, p.start_secs, seg.seq, 0);
                    p.segment = Some(seg);
                }
                Err(e) => {
                    self.records_dropped += n;
                    return Err(e);
                }
            }
        }
        let Some(seg) = p.segment.as_mut() else {
            return Err(StoreError::Corrupt("segment vanished"));
        };
        // One write(2) of the whole framed block (write_all only loops on a short write,
        // which regular files do not do short of a full disk or a signal).
        match seg.file.write_all(&self.frame) {
            Ok(()) => {
                seg.len += self.frame.len() as u64;
                self.inventory
                    .set_segment(&p.name, p.start_secs, seg.seq, seg.len);
                self.records_written += n;
                self.written_since_flush += n;
                self.blocks_written += 1;
                Ok(n)
            }
            Err(e) => {
                self.records_dropped += n;
                // Cut the partial block off so that later blocks are not written after
                // garbage; if even that fails, abandon the segment (readers stop at the tear).
                let cut = if seg.len == 0 {
                    let path = self.cfg.dir.join(&p.name).join(segment_name(seg.seq));
                    fs::remove_file(path).map(|_| false)
                } else {
                    seg.file.set_len(seg.len).map(|_| true)
                };
                match cut {
                    Ok(true) => {}
                    Ok(false) => {
                        self.inventory.remove_segment(&p.name, seg.seq);
                        p.segment = None;
                    }
                    Err(_) => p.segment = None,
                }
                Err(e.into())
            }
        }
    }

    /// Writes every buffered record (compressing partial blocks) with write(2). Returns how
    /// many records became durable against a process crash since the previous `flush`: those
    /// of the partial blocks written now and of the full blocks `append` wrote meanwhile, so
    /// that the results of all flushes add up to `stats().records_written`. Once it returns,
    /// a [`super::StoreReader`] in another process reads them even if this process is then
    /// killed. Partitions keep going on the first error; the first error is returned.
    pub fn flush(&mut self) -> Result<u64, StoreError> {
        let mut first_err = None;
        for slot in 0..self.open.len() {
            if let Err(e) = self.write_block(slot) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(std::mem::take(&mut self.written_since_flush))
    }

    /// fsyncs the open segments and the directories that got new entries, so that what was
    /// written survives power loss. Buffered records are not written: `flush` first.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        for p in &self.open {
            if let Some(seg) = &p.segment {
                seg.file.sync_data()?;
            }
        }
        while let Some(d) = self.dirty_dirs.pop_first() {
            if let Err(e) = sync_dir(&d) {
                self.dirty_dirs.insert(d);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Flushes, syncs and closes every segment.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.sync()?;
        self.open.clear();
        Ok(())
    }

    /// Changes the retention limits (configuration reload); the next
    /// [`StoreWriter::enforce_retention`] applies them.
    pub fn set_retention(&mut self, max_age_secs: Option<u64>, max_bytes: Option<u64>) {
        self.cfg.max_age_secs = max_age_secs;
        self.cfg.max_bytes = max_bytes;
    }

    /// Closes the segments of past partitions that are done with, then removes data by age
    /// and by size. Segments open for writing are never removed.
    ///
    /// A past partition (one that ended before `now_ns`) is closed, its partial block written
    /// first, when it can no longer receive records (it ended more than `outlier_secs` ago:
    /// a record stamped in it now is an outlier and goes to the current partition), when it
    /// got no record since the previous run, or when the age limit removes it anyway. So old
    /// partitions do not stay open, out of retention's reach, for the whole outlier window;
    /// the current partition stays open however quiet it is, so that a slow trickle of
    /// records does not make a segment per run.
    pub fn enforce_retention(&mut self, now_ns: i64) -> Result<RetentionStats, StoreError> {
        let age_cutoff = self
            .cfg
            .max_age_secs
            .map(|a| now_ns.saturating_sub(secs_to_ns(a)));
        let mut first_err = None;
        let mut slot = 0;
        while slot < self.open.len() {
            let p = &mut self.open[slot];
            let end = p.index.saturating_add(1).saturating_mul(self.partition_ns);
            let past = end <= now_ns;
            let unreachable = end.saturating_add(self.outlier_ns) < now_ns;
            let expired = age_cutoff.is_some_and(|c| end <= c);
            let idle = !std::mem::replace(&mut p.busy, false);
            if past && (unreachable || idle || expired) {
                if let Err(e) = self.close_partition(slot) {
                    first_err.get_or_insert(e);
                }
            } else {
                slot += 1;
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let open: BTreeSet<(String, u64)> = self
            .open
            .iter()
            .filter_map(|p| p.segment.as_ref().map(|s| (p.name.clone(), s.seq)))
            .collect();
        retention::enforce(
            &self.cfg.dir,
            &mut self.inventory,
            &open,
            self.cfg.partition_secs,
            self.cfg.max_age_secs,
            self.cfg.max_bytes,
            now_ns,
        )
    }

    /// Counters and store size.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            records_written: self.records_written,
            blocks_written: self.blocks_written,
            records_buffered: self.open.iter().map(|p| p.builder.len() as u64).sum(),
            records_dropped: self.records_dropped,
            bytes_on_disk: self.inventory.bytes(),
            segments: self.inventory.segments(),
            partitions: self.inventory.partitions.len() as u64,
            open_segments: self.open.iter().filter(|p| p.segment.is_some()).count() as u64,
        }
    }
}

impl Drop for StoreWriter {
    /// Best effort: buffered records are written (not synced). A caller that needs to know
    /// the outcome calls [`StoreWriter::close`].
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Creates the next segment file of a partition (and the partition directory). Returns the
/// segment and whether the directory was created.
fn open_segment(dir: &Path, partition: &str) -> Result<(OpenSegment, bool), StoreError> {
    let pdir = dir.join(partition);
    let new_dir = match fs::create_dir(&pdir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The store directory itself was removed from under us: recreate it.
            fs::create_dir_all(&pdir)?;
            true
        }
        Err(e) => return Err(e.into()),
    };
    let mut seq = list_segments(&pdir)?
        .last()
        .map_or(1, |&(s, _)| s.saturating_add(1));
    for _ in 0..NAME_ATTEMPTS {
        let path = pdir.join(segment_name(seq));
        // create_new: never reopen (and append after the torn tail of) an existing segment.
        match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(file) => return Ok((OpenSegment { file, seq, len: 0 }, new_dir)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => seq = seq.saturating_add(1),
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Io(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free segment name",
    )))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // On Unix a directory is fsynced through a read-only handle; elsewhere this is not
    // possible nor needed (NTFS journals directory entries).
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}
