//! Counters of the sink, shared by the submitting threads, the workers and the spool thread,
//! and the snapshot [`EsStats`] the collector exports. Counts are per batch or per bulk reply,
//! never per document on a hot loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the bulk latency histogram buckets; a last bucket holds the rest.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bulk request latency, Prometheus-style: `counts[i]` requests took at most
/// `LATENCY_BOUNDS[i]` and more than the bound before (not cumulative); the last entry counts
/// the slower ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Per bucket, `LATENCY_BOUNDS.len() + 1` entries.
    pub counts: Vec<u64>,
    /// Sum of all latencies, seconds.
    pub sum_seconds: f64,
    /// Number of requests.
    pub count: u64,
}

impl LatencyHistogram {
    /// The latency below which `q` (0..=1) of the requests fall, as a bucket bound (the last,
    /// open bucket reports `f64::INFINITY`). `None` with no requests.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// Which cluster the sink talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch (7.x answers too; 8 is what is tested).
    Elasticsearch,
    /// OpenSearch (`version.distribution == "opensearch"`).
    OpenSearch,
}

/// A snapshot of the sink's counters (all totals since start unless noted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EsStats {
    /// Documents handed to `submit`.
    pub docs_submitted: u64,
    /// Documents the cluster confirmed (created, or already there: see `docs_duplicate`).
    pub docs_shipped: u64,
    /// Of `docs_shipped`, those answered 409 (already indexed by an earlier attempt).
    pub docs_duplicate: u64,
    /// Document sends repeated (whole-request retries count every document of the request).
    pub docs_retried: u64,
    /// Documents the cluster rejected for good (mapping errors and the like).
    pub docs_failed: u64,
    /// Of `docs_failed`, those written to the dead-letter file.
    pub docs_dead_lettered: u64,
    /// Documents dropped by `submit` (memory queue and spool intake full).
    pub docs_dropped: u64,
    /// Documents lost when the spool reached its size limit and its oldest segment went.
    pub docs_spool_dropped: u64,
    /// Documents written to the spool (including re-spooled ones).
    pub docs_spooled: u64,
    /// Bulk requests sent (attempts, including retries).
    pub bulk_requests: u64,
    /// Bulk requests that failed as a whole (transport error or error status).
    pub bulk_request_errors: u64,
    /// Bulk requests in flight now (gauge).
    pub requests_in_flight: u64,
    /// Bytes of spool files on disk now (gauge).
    pub spool_bytes: u64,
    /// Spool segment files now (gauge).
    pub spool_segments: u64,
    /// Documents in the spool not yet handed to a worker now (gauge).
    pub spool_docs: u64,
    /// Compressed request body bytes sent.
    pub bytes_sent: u64,
    /// Uncompressed NDJSON bytes of those requests.
    pub bytes_uncompressed: u64,
    /// Bulk request latency (successful HTTP exchanges, any status).
    pub bulk_latency: LatencyHistogram,
    /// Setup (version check, template, policy) finished.
    pub setup_done: bool,
    /// What the cluster said it is, once known.
    pub flavor: Option<Flavor>,
    /// Index template `PUT`s done by this process (0 when an identical one was there).
    pub template_puts: u64,
    /// Errors during setup (template or policy refused); setup goes on without them.
    pub setup_errors: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub docs_submitted: AtomicU64,
    pub docs_shipped: AtomicU64,
    pub docs_duplicate: AtomicU64,
    pub docs_retried: AtomicU64,
    pub docs_failed: AtomicU64,
    pub docs_dead_lettered: AtomicU64,
    pub docs_dropped: AtomicU64,
    pub docs_spool_dropped: AtomicU64,
    pub docs_spooled: AtomicU64,
    pub bulk_requests: AtomicU64,
    pub bulk_request_errors: AtomicU64,
    pub requests_in_flight: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_segments: AtomicU64,
    pub spool_docs: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_uncompressed: AtomicU64,
    pub latency_counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    pub latency_sum_us: AtomicU64,
    pub setup_done: AtomicBool,
    /// 0 unknown, 1 Elasticsearch, 2 OpenSearch.
    pub flavor: AtomicU64,
    pub template_puts: AtomicU64,
    pub setup_errors: AtomicU64,
}

impl Counters {
    pub fn observe_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency_counts[i].fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    pub fn set_flavor(&self, f: Flavor) {
        self.flavor
            .store(if f == Flavor::Elasticsearch { 1 } else { 2 }, Relaxed);
    }

    pub fn snapshot(&self) -> EsStats {
        let l = |a: &AtomicU64| a.load(Relaxed);
        let counts: Vec<u64> = self.latency_counts.iter().map(l).collect();
        EsStats {
            docs_submitted: l(&self.docs_submitted),
            docs_shipped: l(&self.docs_shipped),
            docs_duplicate: l(&self.docs_duplicate),
            docs_retried: l(&self.docs_retried),
            docs_failed: l(&self.docs_failed),
            docs_dead_lettered: l(&self.docs_dead_lettered),
            docs_dropped: l(&self.docs_dropped),
            docs_spool_dropped: l(&self.docs_spool_dropped),
            docs_spooled: l(&self.docs_spooled),
            bulk_requests: l(&self.bulk_requests),
            bulk_request_errors: l(&self.bulk_request_errors),
            requests_in_flight: l(&self.requests_in_flight),
            spool_bytes: l(&self.spool_bytes),
            spool_segments: l(&self.spool_segments),
            spool_docs: l(&self.spool_docs),
            bytes_sent: l(&self.bytes_sent),
            bytes_uncompressed: l(&self.bytes_uncompressed),
            bulk_latency: LatencyHistogram {
                count: counts.iter().sum(),
                counts,
                sum_seconds: l(&self.latency_sum_us) as f64 / 1e6,
            },
            setup_done: self.setup_done.load(Relaxed),
            flavor: match l(&self.flavor) {
                1 => Some(Flavor::Elasticsearch),
                2 => Some(Flavor::OpenSearch),
                _ => None,
            },
            template_puts: l(&self.template_puts),
            setup_errors: l(&self.setup_errors),
        }
    }
}

/// Logs at most one line per `key` per 10 s, with how many were suppressed (so an outage
/// does not flood stderr). Messages never contain credentials.
pub(crate) fn log_limited(key: &'static str, msg: std::fmt::Arguments<'_>) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<HashMap<&'static str, (Instant, u64)>>> = Mutex::new(None);
    let Ok(mut guard) = LAST.lock() else { return };
    let map = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match map.get_mut(key) {
        Some((last, suppressed)) if now.duration_since(*last) < Duration::from_secs(10) => {
            *suppressed += 1;
        }
        Some((last, suppressed)) => {
            let n = std::mem::take(suppressed);
            *last = now;
            drop(guard);
            if n > 0 {
                eprintln!("sluice es: {msg} ({n} similar messages suppressed)");
            } else {
                eprintln!("sluice es: {msg}");
            }
        }
        None => {
            map.insert(key, (now, 0));
            drop(guard);
            eprintln!("sluice es: {msg}");
        }
    }
}
