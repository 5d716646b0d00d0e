//! What the store holds on disk (partitions, segments, sizes) and the removal of old data by
//! age and by size. Only file metadata is read here, never segment contents.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::format::{parse_partition_name, parse_segment_name};

/// What one [`super::StoreWriter::enforce_retention`] run removed and left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Partition directories removed.
    pub partitions_removed: u64,
    /// Segment files removed.
    pub segments_removed: u64,
    /// Bytes of the removed segments.
    pub bytes_removed: u64,
    /// Bytes of segments left.
    pub bytes_kept: u64,
    /// Segments that retention wanted gone but that are still open for writing.
    pub open_segments_kept: u64,
}

/// One partition directory.
#[derive(Clone, Debug, Default)]
pub struct PartitionFiles {
    /// Start of the partition (seconds since the epoch), from its name.
    pub start_secs: i64,
    /// Segment sequence -> file size.
    pub segments: BTreeMap<u64, u64>,
}

/// Partition directory name -> its segments. Names sort in time order.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// The partitions.
    pub partitions: BTreeMap<String, PartitionFiles>,
}

/// Partition directories of `dir` sorted by start time: (name, start seconds).
pub fn list_partitions(dir: &Path) -> Result<Vec<(String, i64)>, StoreError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(start) = parse_partition_name(&name) else {
            continue;
        };
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push((name, start));
        }
    }
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Ok(out)
}

/// Segment files of a partition directory in sequence order: (sequence, size). A directory
/// removed meanwhile (retention in another process) is empty, not an error.
pub fn list_segments(partition: &Path) -> Result<Vec<(u64, u64)>, StoreError> {
    let rd = match fs::read_dir(partition) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let Some(seq) = e.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        match e.metadata() {
            Ok(m) if m.is_file() => out.push((seq, m.len())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Inventory {
    /// Reads the directory tree of a store.
    pub fn scan(dir: &Path) -> Result<Inventory, StoreError> {
        let mut inv = Inventory::default();
        for (name, start_secs) in list_partitions(dir)? {
            let segments = list_segments(&dir.join(&name))?.into_iter().collect();
            inv.partitions.insert(
                name,
                PartitionFiles {
                    start_secs,
                    segments,
                },
            );
        }
        Ok(inv)
    }

    /// Total segment bytes.
    pub fn bytes(&self) -> u64 {
        self.partitions
            .values()
            .flat_map(|p| p.segments.values())
            .sum()
    }

    /// Number of segment files.
    pub fn segments(&self) -> u64 {
        self.partitions
            .values()
            .map(|p| p.segments.len() as u64)
            .sum()
    }

    /// Size of one segment, 0 if unknown.
    pub fn bytes_of(&self, partition: &str, seq: u64) -> u64 {
        self.partitions
            .get(partition)
            .and_then(|p| p.segments.get(&seq))
            .copied()
            .unwrap_or(0)
    }

    /// Records the size of a segment this process writes.
    pub fn set_segment(&mut self, partition: &str, start_secs: i64, seq: u64, bytes: u64) {
        let p = self
            .partitions
            .entry(partition.to_string())
            .or_insert_with(|| PartitionFiles {
                start_secs,
                segments: BTreeMap::new(),
            });
        p.segments.insert(seq, bytes);
    }

    /// Forgets a segment that was removed.
    pub fn remove_segment(&mut self, partition: &str, seq: u64) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.segments.remove(&seq);
        }
    }
}

/// Removes whole partitions that ended at or before `now - max_age`, then the oldest
/// segments until the store is no larger than `max_bytes`. Segments in `open` (partition,
/// sequence) are never removed. The inventory is rescanned first so that sizes are those on
/// disk, and updated as files go.
pub fn enforce(
    dir: &Path,
    inv: &mut Inventory,
    open: &BTreeSet<(String, u64)>,
    partition_secs: u64,
    max_age_secs: Option<u64>,
    max_bytes: Option<u64>,
    now_ns: i64,
) -> Result<RetentionStats, StoreError> {
    *inv = Inventory::scan(dir)?;
    let mut st = RetentionStats::default();
    // Open segments retention would have removed, counted once even if both rules want them.
    let mut kept: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut doomed: Vec<(String, u64)> = Vec::new();
    if let Some(max_age) = max_age_secs {
        let now_secs = now_ns.div_euclid(1_000_000_000);
        let cutoff = now_secs.saturating_sub(i64::try_from(max_age).unwrap_or(i64::MAX));
        let len = i64::try_from(partition_secs).unwrap_or(i64::MAX);
        for (name, p) in &inv.partitions {
            // The partition ends at start + length; every record in it under the outlier rule
            // is stamped before that, except outliers, which carry their own (broken) clocks.
            if p.start_secs.saturating_add(len) <= cutoff {
                doomed.extend(p.segments.keys().map(|&s| (name.clone(), s)));
            }
        }
    }
    for (name, seq) in doomed {
        if !remove(dir, inv, open, &name, seq, &mut st)? {
            kept.insert((name, seq));
        }
    }
    if let Some(max) = max_bytes {
        // Oldest first: partitions in name (time) order, segments in sequence order.
        let order: Vec<(String, u64)> = inv
            .partitions
            .iter()
            .flat_map(|(n, p)| p.segments.keys().map(move |&s| (n.clone(), s)))
            .collect();
        let mut total = inv.bytes();
        for (name, seq) in order {
            if total <= max {
                break;
            }
            let before = inv.bytes_of(&name, seq);
            if remove(dir, inv, open, &name, seq, &mut st)? {
                total = total.saturating_sub(before);
            } else {
                kept.insert((name, seq));
            }
        }
    }
    // Partition directories left empty go too (unless a writer has one open: it may hold a
    // block that is about to be written there).
    let open_names: BTreeSet<&str> = open.iter().map(|(n, _)| n.as_str()).collect();
    let empty: Vec<String> = inv
        .partitions
        .iter()
        .filter(|(n, p)| p.segments.is_empty() && !open_names.contains(n.as_str()))
        .map(|(n, _)| n.clone())
        .collect();
    for name in empty {
        // remove_dir fails on a directory that still holds other files (kept on purpose: they
        // are not ours) or was removed by someone else; both are fine.
        if fs::remove_dir(dir.join(&name)).is_ok() {
            st.partitions_removed += 1;
        }
        inv.partitions.remove(&name);
    }
    st.open_segments_kept = kept.len() as u64;
    st.bytes_kept = inv.bytes();
    Ok(st)
}

/// Removes one segment unless it is open; returns whether it is gone.
fn remove(
    dir: &Path,
    inv: &mut Inventory,
    open: &BTreeSet<(String, u64)>,
    name: &str,
    seq: u64,
    st: &mut RetentionStats,
) -> Result<bool, StoreError> {
    if open.contains(&(name.to_string(), seq)) {
        return Ok(false);
    }
    let bytes = inv.bytes_of(name, seq);
    let path: PathBuf = dir.join(name).join(super::format::segment_name(seq));
    match fs::remove_file(&path) {
        Ok(()) => {
            st.segments_removed += 1;
            st.bytes_removed += bytes;
        }
        // Removed by someone else meanwhile: the goal is reached all the same.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    inv.remove_segment(name, seq);
    Ok(true)
}
