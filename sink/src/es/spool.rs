//! The disk spool: batches that cannot be shipped now wait here, in order, and are replayed
//! oldest first when the cluster takes them again. It survives restarts. One thread owns it
//! (`sink.rs`, `spool_loop`); nothing here locks.
//!
//! # Format
//!
//! `DIR/es-<id as 16 hex digits>.spool` segment files, replayed in id order. A segment is a
//! sequence of frames, all integers little-endian:
//!
//! ```text
//! magic "SLES" | payload_len u32 | raw_len u32 | docs u32 | crc32 u32 (of the payload)
//! payload: one zstd frame of the batch's NDJSON body (action and source line pairs)
//! ```
//!
//! Appends go to the last segment until it reaches `spool_segment_bytes`. A batch a worker
//! gives back (it kept failing, or the sink is stopping) goes into a new segment *before* the
//! first one (id one less), so it is replayed before newer data. A segment is deleted when
//! every frame in it was handed out and settled (shipped, dead-lettered or spooled again).
//! When the files pass `spool_max_bytes` the oldest segment is deleted and its unsent
//! documents are counted (`docs_spool_dropped`). At start, segments left by an earlier run are
//! read (a torn last frame ends a segment) and replayed first; documents delivered before the
//! crash come back as 409 and count as shipped, so a replay never duplicates.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::batch::Batch;
use super::error::EsError;
use super::metrics::{log_limited, Counters};

const MAGIC: &[u8; 4] = b"SLES";
const HEADER: usize = 20;
/// zstd level: spooling happens while the cluster is slow, so it must stay cheap.
const ZSTD_LEVEL: i32 = 1;
/// First id of a fresh spool: leaves room below for segments put at the head.
const FIRST_ID: u64 = 1 << 40;
/// Refuse frames claiming more than this (a corrupt length).
const MAX_FRAME: u32 = 1 << 30;

#[derive(Debug, Clone, Copy)]
struct Frame {
    offset: u64,
    len: u32,
    raw_len: u32,
    docs: u32,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
    unread: VecDeque<Frame>,
    unread_docs: u64,
    /// Frames handed out and not yet settled.
    outstanding: usize,
    /// No more appends.
    sealed: bool,
}

/// The spool directory and its in-memory index.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    next_id: u64,
    total_bytes: u64,
    counters: Arc<Counters>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("es-{id:016x}.spool"))
}

fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("es-")?.strip_suffix(".spool")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

impl Spool {
    /// Opens (creating) the spool directory and indexes the segments an earlier run left.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
        counters: Arc<Counters>,
    ) -> Result<Spool, EsError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| EsError::io(format!("creating spool {}", dir.display()), e))?;
        let mut ids = Vec::new();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| EsError::io(format!("reading spool {}", dir.display()), e))?;
        for entry in rd.flatten() {
            if let Some(id) = entry.file_name().to_str().and_then(parse_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            segments: VecDeque::new(),
            next_id: ids.last().map_or(FIRST_ID, |l| l + 1),
            total_bytes: 0,
            counters,
        };
        for id in ids {
            let path = seg_path(dir, id);
            let seg = match Self::index_segment(id, &path) {
                Ok(s) => s,
                Err(e) => {
                    log_limited(
                        "spool_open",
                        format_args!("skipping spool segment {}: {e}", path.display()),
                    );
                    continue;
                }
            };
            if seg.unread.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            spool.total_bytes += seg.bytes;
            spool.segments.push_back(seg);
        }
        spool.publish();
        Ok(spool)
    }

    /// Reads the frame headers of a segment (and checks each payload's crc).
    fn index_segment(id: u64, path: &Path) -> Result<Segment, EsError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| EsError::io(format!("opening {}", path.display()), e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| EsError::io(format!("reading {}", path.display()), e))?;
        let mut unread = VecDeque::new();
        let mut pos = 0usize;
        let mut docs_total = 0u64;
        while let Some((frame, next)) = parse_frame(&data, pos) {
            docs_total += u64::from(frame.docs);
            unread.push_back(frame);
            pos = next;
        }
        if pos < data.len() {
            log_limited(
                "spool_torn",
                format_args!(
                    "spool segment {}: {} torn bytes at the end ignored",
                    path.display(),
                    data.len() - pos
                ),
            );
        }
        Ok(Segment {
            id,
            path: path.to_owned(),
            file,
            bytes: data.len() as u64,
            unread,
            unread_docs: docs_total,
            outstanding: 0,
            sealed: true,
        })
    }

    /// Appends a batch after everything spooled (new data).
    pub fn append(&mut self, batch: &Batch) -> Result<(), EsError> {
        let frame = encode_frame(batch)?;
        let need_new = match self.segments.back() {
            Some(s) => s.sealed,
            None => true,
        };
        if need_new {
            let id = self.next_id;
            self.next_id += 1;
            let seg = self.create_segment(id)?;
            self.segments.push_back(seg);
        }
        let Some(seg) = self.segments.back_mut() else {
            return Ok(());
        };
        let added = write_frame(seg, &frame, batch.len())?;
        if seg.bytes >= self.segment_bytes {
            seg.sealed = true;
        }
        self.total_bytes += added;
        self.counters
            .docs_spooled
            .fetch_add(batch.len() as u64, Relaxed);
        self.enforce_limit();
        self.publish();
        Ok(())
    }

    /// Puts a batch before everything spooled (it is older than what is there).
    pub fn prepend(&mut self, batch: &Batch) -> Result<(), EsError> {
        let frame = encode_frame(batch)?;
        let id = match self.segments.front() {
            Some(s) => s.id.saturating_sub(1),
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        };
        let mut seg = self.create_segment(id)?;
        let added = write_frame(&mut seg, &frame, batch.len())?;
        seg.sealed = true;
        self.segments.push_front(seg);
        self.total_bytes += added;
        self.counters
            .docs_spooled
            .fetch_add(batch.len() as u64, Relaxed);
        self.enforce_limit();
        self.publish();
        Ok(())
    }

    fn create_segment(&self, id: u64) -> Result<Segment, EsError> {
        let path = seg_path(&self.dir, id);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| EsError::io(format!("creating {}", path.display()), e))?;
        Ok(Segment {
            id,
            path,
            file,
            bytes: 0,
            unread: VecDeque::new(),
            unread_docs: 0,
            outstanding: 0,
            sealed: false,
        })
    }

    /// Deletes the oldest segments while the spool is over its size limit.
    fn enforce_limit(&mut self) {
        while self.total_bytes > self.max_bytes {
            let Some(seg) = self.segments.pop_front() else {
                break;
            };
            self.total_bytes -= seg.bytes;
            self.counters
                .docs_spool_dropped
                .fetch_add(seg.unread_docs, Relaxed);
            log_limited(
                "spool_full",
                format_args!(
                    "spool over {} bytes: dropped its oldest segment ({} documents not sent)",
                    self.max_bytes, seg.unread_docs
                ),
            );
            let _ = std::fs::remove_file(&seg.path);
        }
    }

    /// Whether a frame waits to be handed out.
    pub fn has_unread(&self) -> bool {
        self.segments.iter().any(|s| !s.unread.is_empty())
    }

    /// The oldest frame not handed out yet, as a batch whose `origin` is its segment.
    /// Corrupt frames are skipped and counted as spool drops.
    pub fn next_batch(&mut self) -> Option<Batch> {
        loop {
            let seg = self.segments.iter_mut().find(|s| !s.unread.is_empty())?;
            let frame = seg.unread.pop_front()?;
            seg.unread_docs -= u64::from(frame.docs);
            let read = read_frame(&seg.file, frame);
            match read {
                Ok(mut batch) => {
                    seg.outstanding += 1;
                    batch.origin = Some(seg.id);
                    self.publish();
                    return Some(batch);
                }
                Err(e) => {
                    self.counters
                        .docs_spool_dropped
                        .fetch_add(u64::from(frame.docs), Relaxed);
                    log_limited(
                        "spool_corrupt",
                        format_args!("spool {}: {e}; frame skipped", seg.path.display()),
                    );
                    let id = seg.id;
                    self.settle_if_done(id);
                }
            }
        }
    }

    /// A batch handed out from segment `id` is settled.
    pub fn ack(&mut self, id: u64) {
        if let Some(seg) = self.segments.iter_mut().find(|s| s.id == id) {
            seg.outstanding = seg.outstanding.saturating_sub(1);
        }
        self.settle_if_done(id);
        self.publish();
    }

    fn settle_if_done(&mut self, id: u64) {
        let Some(pos) = self.segments.iter().position(|s| s.id == id) else {
            return;
        };
        let seg = &self.segments[pos];
        if seg.unread.is_empty() && seg.outstanding == 0 {
            if let Some(seg) = self.segments.remove(pos) {
                self.total_bytes -= seg.bytes;
                if let Err(e) = std::fs::remove_file(&seg.path) {
                    log_limited(
                        "spool_remove",
                        format_args!("removing {}: {e}", seg.path.display()),
                    );
                }
            }
        }
    }

    /// Flushes file data to disk (at shutdown).
    pub fn sync(&self) {
        for s in &self.segments {
            let _ = s.file.sync_data();
        }
    }

    /// Updates the gauges; `spool_docs` counts only frames not read yet.
    pub fn publish(&self) {
        self.counters.spool_bytes.store(self.total_bytes, Relaxed);
        self.counters
            .spool_segments
            .store(self.segments.len() as u64, Relaxed);
        self.counters
            .spool_docs
            .store(self.segments.iter().map(|s| s.unread_docs).sum(), Relaxed);
    }
}

fn encode_frame(batch: &Batch) -> Result<Vec<u8>, EsError> {
    let payload =
        zstd::bulk::compress(&batch.body, ZSTD_LEVEL).map_err(|e| EsError::io("spool zstd", e))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(batch.body.len() as u32).to_le_bytes());
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Writes one frame at the end of `seg`; the bytes added.
fn write_frame(seg: &mut Segment, frame: &[u8], docs: usize) -> Result<u64, EsError> {
    let offset = seg.bytes;
    if let Err(e) = seg.file.write_all(frame) {
        // A partial write leaves a torn frame; the next start ignores it, and this segment
        // takes no more appends.
        seg.sealed = true;
        return Err(EsError::io(format!("writing {}", seg.path.display()), e));
    }
    let len = (frame.len() - HEADER) as u32;
    let raw_len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]);
    seg.unread.push_back(Frame {
        offset,
        len,
        raw_len,
        docs: docs as u32,
    });
    seg.unread_docs += docs as u64;
    seg.bytes += frame.len() as u64;
    Ok(frame.len() as u64)
}

fn read_frame(file: &File, f: Frame) -> Result<Batch, EsError> {
    let mut payload = vec![0u8; f.len as usize];
    file.read_exact_at(&mut payload, f.offset + HEADER as u64)
        .map_err(|e| EsError::io("reading spool frame", e))?;
    let mut hdr = [0u8; HEADER];
    file.read_exact_at(&mut hdr, f.offset)
        .map_err(|e| EsError::io("reading spool frame", e))?;
    let crc = u32::from_le_bytes([hdr[16], hdr[17], hdr[18], hdr[19]]);
    if &hdr[..4] != MAGIC || crc32fast::hash(&payload) != crc {
        return Err(EsError::Protocol("spool frame checksum mismatch".into()));
    }
    let body = zstd::bulk::decompress(&payload, f.raw_len as usize)
        .map_err(|e| EsError::io("spool unzstd", e))?;
    let batch = Batch::from_body(body)
        .ok_or_else(|| EsError::Protocol("spool frame is not NDJSON pairs".into()))?;
    if batch.len() != f.docs as usize {
        return Err(EsError::Protocol(
            "spool frame document count mismatch".into(),
        ));
    }
    Ok(batch)
}

/// Parses the frame at `pos` of a segment's bytes: the frame and the next position, or `None`
/// at the end or at a torn/corrupt frame.
fn parse_frame(data: &[u8], pos: usize) -> Option<(Frame, usize)> {
    let h = data.get(pos..pos + HEADER)?;
    if &h[..4] != MAGIC {
        return None;
    }
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let (len, raw_len, docs, crc) = (word(4), word(8), word(12), word(16));
    if len > MAX_FRAME || raw_len > MAX_FRAME {
        return None;
    }
    let end = pos + HEADER + len as usize;
    let payload = data.get(pos + HEADER..end)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((
        Frame {
            offset: pos as u64,
            len,
            raw_len,
            docs,
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, tag: u8) -> Batch {
        let mut b = Batch::with_capacity(0, 0);
        for i in 0..n {
            let r = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(tag);
            let json = format!("{{\"tag\":{tag},\"n\":{i},\"r\":{r}}}");
            b.push_with("idx", &[tag; 16], |body| {
                body.extend_from_slice(json.as_bytes())
            });
        }
        b
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn order_prepend_ack_and_reopen() {
        let d = dir("order");
        let c = Arc::new(Counters::default());
        let mut s = Spool::open(&d, 1 << 20, 4096, c.clone()).expect("open");
        for tag in 1..=5 {
            s.append(&batch(50, tag)).expect("append");
        }
        s.prepend(&batch(2, 9)).expect("prepend");
        let first = s.next_batch().expect("first");
        assert_eq!(first.source(0)[7], b'9');
        let second = s.next_batch().expect("second");
        assert_eq!(second.source(0)[7], b'1');
        s.ack(first.origin.expect("origin"));
        drop(s);
        // The unacknowledged batch and the rest come back after a restart, in order.
        let mut s = Spool::open(&d, 1 << 20, 4096, c.clone()).expect("reopen");
        let tags: Vec<u8> = std::iter::from_fn(|| s.next_batch())
            .map(|b| b.source(0)[7] - b'0')
            .collect();
        assert_eq!(tags, vec![1, 2, 3, 4, 5]);
        assert_eq!(c.docs_spool_dropped.load(Relaxed), 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn limit_drops_oldest_and_counts() {
        let d = dir("limit");
        let c = Arc::new(Counters::default());
        let mut s = Spool::open(&d, 8192, 4096, c.clone()).expect("open");
        for tag in 1..=9 {
            s.append(&batch(200, tag)).expect("append");
        }
        assert!(c.spool_bytes.load(Relaxed) <= 8192);
        let dropped = c.docs_spool_dropped.load(Relaxed);
        assert!(dropped > 0 && dropped % 200 == 0, "{dropped}");
        let first = s.next_batch().expect("a batch survives");
        assert!(first.source(0)[7] > b'1');
        let _ = std::fs::remove_dir_all(&d);
    }
}
