//! Shipping to Elasticsearch/OpenSearch from the store thread: each record, enriched by the
//! store thread (once, for the store too), is encoded as a lean ECS document
//! ([`encode_json_lean`]) and submitted with a deterministic id, so that a retry or a replay
//! from the spool can never create a second copy (`create` answers 409 for an id that
//! exists, which counts as delivered).

use std::time::Duration;

use anyhow::{Context, Result};
use sluice_decode::{Flow, Record};
use sluice_enrich::Enriched;
use sluice_sink::ecs::encode_json_lean;
use sluice_sink::es::{Auth, EsConfig, EsSink, EsStats};

use crate::config::Config;
use crate::metrics::Metrics;

/// The sink's configuration from `[elasticsearch]`; credentials from the environment.
pub fn es_config(cfg: &Config) -> Result<EsConfig> {
    let e = &cfg.elasticsearch;
    let template: serde_json::Value = serde_json::from_str(&sluice_sink::schema::index_template())
        .context("the generated index template is not JSON")?;
    let auth = Auth::from_env().context("Elasticsearch credentials from the environment")?;
    Ok(EsConfig {
        urls: e.urls.clone(),
        index: e.index.clone(),
        data_stream: e.data_stream.clone(),
        auth,
        ca_file: e.ca_file.clone(),
        tls_verify: e.tls_verify,
        batch_docs: e.batch_docs,
        flush_interval: e.flush_interval.0,
        max_in_flight: e.max_in_flight.max(1),
        gzip_level: e.gzip_level,
        gzip_library: e.gzip_library,
        spool_dir: cfg.store.data_dir.join("spool"),
        spool_max_bytes: e.spool_max_size.0,
        dead_letter: cfg.store.data_dir.join("dead-letter.ndjson"),
        install_template: true,
        template: Some(template),
        retention: (!e.retention.0.is_zero()).then_some(e.retention.0),
        ..EsConfig::default()
    })
}

/// A 128-bit id for a record that is the same however often the record is shipped: FNV-1a
/// over the exporter, its scope, the export header's time and sequence number, the record's
/// position in its datagram and its bytes, in two lanes with different offsets. (A fixed,
/// written-down function rather than std's hasher, whose algorithm may change between Rust
/// releases.)
pub fn record_id(r: &Record<'_>, ordinal: u32) -> [u8; 16] {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    let mut eat = |bytes: &[u8]| {
        for &x in bytes {
            a = (a ^ u64::from(x)).wrapping_mul(PRIME);
            b = (b ^ u64::from(x.rotate_left(3))).wrapping_mul(PRIME);
        }
    };
    let h = r.header;
    match h.exporter.ip() {
        std::net::IpAddr::V4(v) => eat(&v.octets()),
        std::net::IpAddr::V6(v) => eat(&v.octets()),
    }
    eat(&h.exporter.port().to_be_bytes());
    eat(&h.version.to_be_bytes());
    eat(&h.source_id.to_be_bytes());
    eat(&h.export_time_ns.to_be_bytes());
    eat(&h.sequence.to_be_bytes());
    eat(&ordinal.to_be_bytes());
    eat(&r.template.id.to_be_bytes());
    eat(r.data);
    // Final avalanche so that nearby inputs spread over the whole id.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    };
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(a).to_be_bytes());
    id[8..].copy_from_slice(&mix(b ^ a.rotate_left(17)).to_be_bytes());
    id
}

/// Encodes records straight into the sink's open batch.
pub struct Shipper {
    sink: EsSink,
    last: EsStats,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shipper")
    }
}

impl Shipper {
    /// Starts the sink (its threads set up the cluster in the background).
    pub fn start(cfg: EsConfig) -> Result<Shipper> {
        if !cfg.tls_verify {
            crate::run::log!(
                "WARNING: elasticsearch.tls_verify = false: the cluster's certificate is not checked"
            );
        }
        let sink = EsSink::start(cfg).context("starting the Elasticsearch sink")?;
        Ok(Shipper {
            sink,
            last: EsStats::default(),
        })
    }

    /// Adds one record (`flow`: `r.flow()`; `e`: its enrichment; `ordinal`: its position
    /// among its datagram's records). The document is encoded into the sink's open batch,
    /// which its flush timer sends if nothing fills it. The sink never blocks: what it cannot
    /// queue goes to its spool, and only a full spool drops (counted in its stats).
    pub fn push(&mut self, r: &Record<'_>, flow: &Flow, e: &Enriched, ordinal: u32) {
        let ts = sluice_decode::time::export_ns(r);
        // Lean documents: the `netflow.*` copies of what the ECS fields show are left out.
        let _ = self.sink.push_with(&record_id(r, ordinal), ts, |buf| {
            encode_json_lean(buf, r, flow, Some(e))
        });
    }

    /// Exports the sink's figures.
    pub fn publish(&mut self, m: &Metrics) {
        let st = self.sink.stats();
        let l = &self.last;
        for (outcome, now, before) in [
            ("shipped", st.docs_shipped, l.docs_shipped),
            ("duplicate", st.docs_duplicate, l.docs_duplicate),
            ("retried", st.docs_retried, l.docs_retried),
            ("failed", st.docs_failed, l.docs_failed),
            ("dead_lettered", st.docs_dead_lettered, l.docs_dead_lettered),
            (
                "dropped",
                st.docs_dropped + st.docs_spool_dropped,
                l.docs_dropped + l.docs_spool_dropped,
            ),
        ] {
            m.es_docs
                .with_label_values(&[outcome])
                .inc_by(now.saturating_sub(before));
        }
        m.es_requests
            .inc_by(st.bulk_requests.saturating_sub(l.bulk_requests));
        m.es_request_errors
            .inc_by(st.bulk_request_errors.saturating_sub(l.bulk_request_errors));
        m.es_in_flight.set(st.requests_in_flight as i64);
        m.es_spool_bytes.set(st.spool_bytes as i64);
        m.es_spool_segments.set(st.spool_segments as i64);
        m.es_spool_docs.set(st.spool_docs as i64);
        let mut cumulative = 0u64;
        for (i, c) in st.bulk_latency.counts.iter().enumerate() {
            cumulative += c;
            let le = sluice_sink::es::LATENCY_BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            m.es_latency_bucket
                .with_label_values(&[&le])
                .set(cumulative as i64);
        }
        m.es_latency_count.set(st.bulk_latency.count as i64);
        self.last = st;
    }

    /// Ships what it can within `deadline`; the rest stays in the spool for the next start.
    pub fn shutdown(self, deadline: Duration) -> EsStats {
        self.sink.shutdown(deadline)
    }
}
