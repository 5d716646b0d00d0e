//! The Elasticsearch / OpenSearch sink: flow documents to `_bulk`, and back out with
//! [`dump`].
//!
//! Place in the pipeline: after ECS encoding, beside (not instead of) the local store. The
//! caller gives each document a deterministic 16-byte id ([`Doc::id`]); the sink sends it as
//! `_id` (32 hex digits) with a `create` action, so a resent document is refused with 409 and
//! counted as delivered: retries, replays and restarts never duplicate.
//!
//! Guarantees and how they are kept:
//!
//! - **`submit` never blocks on the network.** Documents go into an open batch under a short
//!   lock; sealed batches (by `batch_docs`, `batch_bytes` or `flush_interval`) go to a bounded
//!   memory queue, or to the disk spool when the queue is full or the spool already holds data.
//!   Only when both are full are documents dropped, and counted (`docs_dropped`).
//! - **Nothing accepted is lost while the cluster is slow or down.** `max_in_flight` workers
//!   send gzip-compressed `_bulk` requests and retry with jittered exponential backoff on
//!   connection errors, 429 and 5xx; meanwhile batches pile up in memory and then in the
//!   spool (zstd-compressed segment files, bounded by `spool_max_bytes`: the oldest segment
//!   goes first, counted in `docs_spool_dropped`), and are replayed oldest first on recovery.
//!   `spool.rs` describes the file format.
//! - **A 200 answer is read item by item.** Items answered 429 or 5xx are resent alone;
//!   items refused for good (400 mapping errors, ...) go to the dead-letter file (NDJSON: the
//!   error and the document, see `deadletter.rs`) and are counted; 409 counts as delivered.
//! - **Setup is idempotent and in the background.** `GET /` tells Elasticsearch from
//!   OpenSearch (`version.distribution`); the index template (`PUT _index_template/NAME`) and
//!   the retention policy (ILM on Elasticsearch, ISM on OpenSearch) are written only when the
//!   installed ones differ (a hash in `_meta`/the description). An unreachable cluster at start
//!   is not an error: setup retries, documents wait.
//! - **Credentials are never logged**: [`Auth`]'s `Debug` is redacted, URLs with user info
//!   are refused, and error messages never include headers.
//!
//! Indices are daily, `sluice-flows-YYYY.MM.DD` from each document's @timestamp in UTC
//! (`EsConfig::index`), or one data stream (`EsConfig::data_stream`).

mod batch;
mod bulk;
mod client;
mod config;
mod deadletter;
mod dump;
mod error;
mod gzip;
mod metrics;
mod query;
mod retry;
mod setup;
mod sink;
mod spool;
mod top;

pub use batch::id_hex;
pub use config::{Auth, EsConfig, ENV_API_KEY, ENV_PASSWORD, ENV_USERNAME};
pub use dump::{dump, DumpQuery, EsDump};
pub use error::{is_retryable_status, EsError, Full, Side};
pub use gzip::{gzip, isal_available, GzipLibrary};
pub use metrics::{EsStats, Flavor, LatencyHistogram, LATENCY_BOUNDS};
pub use query::to_query;
pub use sink::EsSink;
pub use top::{top, EsTopQuery, PairStrategy, COMPOSITE_MAX_BUCKETS};

/// One document to index.
#[derive(Clone, Copy, Debug)]
pub struct Doc<'a> {
    /// Deterministic per record (the same record always gets the same id), so that a resend
    /// is recognised: it becomes the `_id`, in hex.
    pub id: [u8; 16],
    /// The document's @timestamp, ns since the Unix epoch: picks the daily index.
    pub timestamp_ns: i64,
    /// The document, one JSON object (line breaks inside are turned into spaces).
    pub json: &'a [u8],
}
