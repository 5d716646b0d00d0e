//! The local store: the collector's embedded default sink. It keeps decoded records exactly
//! (export header, template definition, record bytes, systemInitTimeMilliseconds) so that
//! reading them back through [`crate::ecs::encode_json`] gives the documents `sluice decode`
//! gives, byte for byte (the header `tag` is not kept and reads back as 0). Since format 1.1
//! it can also keep each record's enrichment as it was when the record arrived
//! ([`StoreWriter::append_enriched`], [`StoreReader::scan_kept`]).
//!
//! [`StoreWriter`] appends records, [`StoreReader`] scans a time range, also while a writer
//! appends (in this process or another one).
//!
//! # FORMAT (version 1, revision 1.1)
//!
//! ```text
//! <dir>/                          StoreConfig::dir
//!   2026-11-23T14/                one directory per partition (UTC start of the partition;
//!                                 `YYYY-MM-DDTHHMMSS` when partitions are not whole hours)
//!     seg-00000001.sls            segments, read in sequence order
//!     seg-00000002.sls
//! ```
//!
//! A record goes to the partition of its @timestamp (`sluice_decode::time::export_ns`), unless
//! that is further than `outlier_secs` from the writer's clock: then it goes to the partition
//! of "now", keeping its own timestamp, so a broken exporter clock cannot create partitions in
//! 2016 or 2099. Partition names therefore only order the data; block time ranges (below) are
//! what a scan prunes by, which is how outliers are still found.
//!
//! Segment file, all integers little-endian except inside template definitions:
//!
//! ```text
//! segment header (24 bytes):
//!   magic "SLUICEST" | version u16 = 1 | header_len u16 = 24 | flags u32 = 0 | created_ns i64
//! then blocks until the end of the file:
//!   magic "SLBK" | header_len u16 | flags u16 (bit 0: payload is one zstd frame)
//!   payload_len u32 (on disk) | raw_len u32 (uncompressed) | payload_crc u32 (crc32 of the
//!   on-disk payload) | records u32 | min_ts i64 | max_ts i64 (ns, @timestamp of its records)
//!   ncols u16 | reserved u16
//!   ncols x (column id u16 | encoding u8 | flags u8 (bit 0: required) | len u32)
//!   header_crc u32 (crc32 of every header byte before it)
//!   payload: the columns, back to back in directory order, compressed as one zstd frame
//! ```
//!
//! Columns of v1 (ids in `format::col`): META (table sizes); TEMPLATES (the block's template
//! table: each distinct template once, as `Template::write_definition`); the header table, one
//! column per `ExportHeader` field (export time and sequence delta-coded, receive time as an
//! offset from export time); per record: header index (delta), template index, length,
//! systemInitTimeMilliseconds; R_DATA, the record bytes grouped by template and, for
//! fixed-length templates, laid out field by field. There is no separate timestamp column: a
//! record's @timestamp is a function of its header entry. Spans are not stored; the reader
//! recomputes them (`Template::fixed_spans` or `record::spans_of`).
//!
//! Columns added in 1.1 (all optional, so a 1.0 reader skips them and reads the block as
//! before): the enrichment kept with each record, written when the writer is given it
//! ([`StoreWriter::append_enriched`]; the collector's `[store] enrich`). Three per-block
//! dictionaries and five per-record columns of references into them (1-based varints, 0 =
//! none); ids and exact layouts in `format::col`:
//!
//! ```text
//! K_STRINGS  30  every distinct string of the block once (names, descriptions, geo texts,
//!                AS organizations): count, then length-prefixed UTF-8
//! K_GEO      31  distinct geo tuples: 7 string references (continent code and name, country
//!                ISO code and name, region ISO code and name, city), optional lat/lon f64
//! K_AS       32  distinct (AS number, organization reference) pairs
//! R_K_EXPORTER 33  0 = nothing kept for this record (see below), else 1 + the exporter
//!                name's reference     R_K_GEO 34  source geo, destination geo
//! R_K_AS     35  source AS, destination AS
//! R_K_SAMPLING 36  interval applied (0 = none) and its source (config, record, sampler, scope)
//! R_K_IFACE  37  input name, input description, output name, output description
//! ```
//!
//! What follows from the record itself (locality, protocol and service names, TCP flags,
//! community ID, direction, counts scaled by the kept sampling interval) is not stored: a
//! reader computes it ([`sluice_enrich::Enricher::enrich_kept`]). A block has all eight
//! columns or none; blocks without them (written by 1.0 code, or with enrichment off) give
//! no kept values, and `sluice dump` enriches their records as it reads them, as before.
//! So do records marked "nothing kept" in a block that has the columns: the collector marks
//! a record so when keeping its enrichment would add nothing to what the record itself says
//! (no GeoIP database loaded, no settings for its exporter in the config, no options data
//! about it), which saves the store thread the enrichment of such records.
//!
//! # Version rules and migration
//!
//! - Adding data is a minor change and keeps version 1 (the enrichment columns made 1.1,
//!   [`FORMAT_MINOR`]): a new column gets a new id; a new encoding of existing data gets a
//!   new encoding number. Minor revisions are not written in the segment header: a 1.0
//!   segment and a 1.1 segment differ only in the columns their blocks list, and the 1.0
//!   blocks under `sink/tests/fixtures/store-v1.0/` are read by the tests.
//!   A reader skips columns it does not know and treats missing ones as absent (defaults: no
//!   uptime, sequence 0, ...); a writer marks a column *required* when a reader that does not
//!   know it cannot read the block correctly, and such a reader then skips the block and
//!   counts it (`ScanStats::blocks_unsupported`) instead of misreading it.
//! - The segment or block framing changing is a major change: version 2. A v2 reader keeps the
//!   v1 framing code and picks it by the segment header's version, so it reads v1 and v2
//!   segments side by side; a v1 reader skips v2 segments (`segments_unsupported`). Header
//!   lengths are stored so that fields appended to either header are skipped by older code.
//! - Segments are immutable once written: the writer only appends whole blocks to the segment
//!   it opened and never reopens one. Migrating old data is therefore either read-both (the
//!   default: old segments age out through retention) or rewrite-on-compaction (a compactor
//!   reads v1 segments, writes v2 segments, then deletes the v1 files).
//!
//! # Crash safety
//!
//! A block (with the segment header, for a segment's first block) is written with one
//! `write(2)` of the whole framed block on a file opened `O_APPEND`; once it returns, other
//! processes read it, whatever happens to the writer afterwards. A crash during that write
//! leaves a torn tail: a short header, a header whose checksum fails, or a payload running
//! past the end of the file. Readers stop at it quietly and count it. [`StoreWriter::open`]
//! never looks inside existing segments and never appends to one: it starts new segments, so
//! a torn tail stays where it is, read up to its last complete block. On a failed write
//! (disk full) the writer truncates the segment back to its last complete block, or abandons
//! the segment if that fails too; that block's records are dropped and counted
//! (`StoreStats::records_dropped`). [`StoreWriter::sync`] makes written blocks durable against
//! power loss (fdatasync of the open segments and of new directory entries).
//!
//! # Retention
//!
//! [`StoreWriter::enforce_retention`] first closes the segments of past partitions that are
//! done with (see its doc), then removes whole partitions that ended more than `max_age_secs`
//! ago, then the oldest segments (partition order, then sequence) until the store fits in
//! `max_bytes`. A segment open for writing is never removed. Only directory listings and file
//! sizes are read.
//!
//! # Costs and limits
//!
//! - A scan reads every block header of every segment (a seek and a small read each) and
//!   decompresses only the blocks whose time range overlaps; partitions are not pruned by
//!   name, since outliers live in the partition of the time they arrived. A per-segment index
//!   written when a segment is closed would make wide stores cheaper to scan; not done yet.
//! - An outlier widens the time range of its block, which then matches more scans.
//! - Every `flush` seals the partial blocks, so flushing often at a low record rate makes
//!   small blocks that compress less well; compaction (merging small blocks of closed
//!   segments) is the remedy, and is not done yet.
//! - One writer per directory (nothing locks it; two writers would not clobber each other's
//!   segments, `create_new` sees to that, but their retention runs would race).

pub mod ages;
mod block;
mod error;
mod format;
mod kept;
mod reader;
mod retention;
mod writer;

use std::path::PathBuf;

pub use ages::{RecordAges, AGE_SAMPLE_EVERY};
pub use error::StoreError;
pub use format::{FORMAT_MINOR, FORMAT_VERSION};
pub use kept::StringTable;
pub use reader::{ScanStats, Shard, StoreReader};
pub use retention::RetentionStats;
pub use writer::StoreWriter;

/// How the local store lays out and keeps data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Directory of the store (one subdirectory per partition), e.g. `./sluice-data/flows`.
    pub dir: PathBuf,
    /// Length of a time partition in seconds; one directory each, named by its UTC start
    /// (`2026-11-23T14` for the default hour).
    pub partition_secs: u64,
    /// Partitions that ended longer than this ago are removed by
    /// [`StoreWriter::enforce_retention`]; `None` keeps them.
    pub max_age_secs: Option<u64>,
    /// Oldest segments are removed until the store is no larger than this; `None` = no limit.
    pub max_bytes: Option<u64>,
    /// Records per block: a block is sealed (compressed and written) when it has this many.
    /// Larger blocks compress better; [`StoreWriter::flush`] seals partial blocks.
    pub block_records: usize,
    /// zstd level of block payloads.
    pub zstd_level: i32,
    /// A record whose @timestamp is further than this from the writer's clock goes to the
    /// partition of "now" (keeping its timestamp) rather than creating a partition of its own.
    pub outlier_secs: u64,
    /// A segment file is closed and the next one started once it would grow past this size.
    pub segment_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("./sluice-data/flows"),
            partition_secs: 3600,
            max_age_secs: None,
            max_bytes: None,
            block_records: 8192,
            zstd_level: 3,
            outlier_secs: 86_400,
            segment_bytes: 64 << 20,
        }
    }
}

/// What a writer has done, and how large the store is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records written to segment files (readable by other processes) since open.
    pub records_written: u64,
    /// Blocks written since open.
    pub blocks_written: u64,
    /// Records appended but not written yet (in partial blocks).
    pub records_buffered: u64,
    /// Records lost because their block could not be compressed or written.
    pub records_dropped: u64,
    /// Bytes of all segment files of the store (as of open, the last retention run, and this
    /// writer's writes since).
    pub bytes_on_disk: u64,
    /// Segment files in the store.
    pub segments: u64,
    /// Partition directories in the store.
    pub partitions: u64,
    /// Segments this writer has open.
    pub open_segments: u64,
}
