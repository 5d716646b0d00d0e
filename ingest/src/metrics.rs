//! Sluice's own metrics, in Prometheus text format on `/metrics`.
//!
//! Conventions: `sluice_<area>_<noun>_<unit>`, counters end in `_total`, labels are bounded
//! (listener, reason, protocol; exporter only on the per-exporter loss gauges, whose label
//! set is bounded by `decode.max_exporters`). Receive threads count into their own cells and
//! add to these families once per batch, never per record.

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All metric families.
#[allow(missing_docs)]
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub packets: IntCounterVec,
    pub bytes: IntCounterVec,
    pub truncated: IntCounterVec,
    pub kernel_drops: IntCounterVec,
    pub recv_errors: IntCounterVec,
    pub denied: IntCounterVec,
    pub recv_buffer: IntGaugeVec,
    pub decode_errors: IntCounterVec,
    pub records_decoded: IntCounterVec,
    pub templates_cached: IntGauge,
    pub template_events: IntCounterVec,
    pub exporter_restarts: IntCounter,
    pub exporter_missing: IntGaugeVec,
    pub pipeline_dropped: IntCounter,
    pub records_stored: IntCounter,
    pub store_errors: IntCounterVec,
    pub store_bytes: IntGauge,
    pub store_segments: IntGauge,
    pub store_partitions: IntGauge,
    pub up: IntGauge,
    pub es_docs: IntCounterVec,
    pub es_requests: IntCounter,
    pub es_request_errors: IntCounter,
    pub es_in_flight: IntGauge,
    pub es_spool_bytes: IntGauge,
    pub es_spool_segments: IntGauge,
    pub es_latency_bucket: IntGaugeVec,
    pub es_latency_count: IntGauge,
    pub enrich_cache_hits: IntGauge,
    pub enrich_cache_misses: IntGauge,
    pub forward_datagrams: IntCounterVec,
    pub forward_bytes: IntCounterVec,
    pub forward_dropped: IntCounterVec,
    pub forward_source_preserved: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let m = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let m = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    #[allow(clippy::expect_used)]
    pub fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            packets: counter_vec(&r, "sluice_receive_packets_total", "UDP datagrams received.", &["listener"]),
            bytes: counter_vec(&r, "sluice_receive_bytes_total", "UDP payload bytes received.", &["listener"]),
            truncated: counter_vec(&r, "sluice_receive_truncated_total", "Datagrams larger than the receive buffer (MSG_TRUNC), not decoded.", &["listener"]),
            kernel_drops: counter_vec(&r, "sluice_receive_kernel_drops_total", "Datagrams the kernel dropped because a socket's receive buffer was full (SO_RXQ_OVFL).", &["listener"]),
            recv_errors: counter_vec(&r, "sluice_receive_errors_total", "Per-datagram receive errors skipped (ICMP-reported and the like).", &["listener"]),
            denied: counter_vec(&r, "sluice_receive_denied_total", "Datagrams from exporters outside the listener's allowlist, dropped.", &["listener"]),
            recv_buffer: gauge_vec(&r, "sluice_receive_buffer_bytes", "Socket receive buffer the kernel granted (SO_RCVBUF as read back), per socket.", &["listener", "worker"]),
            decode_errors: counter_vec(&r, "sluice_decode_errors_total", "Datagrams, sets or records that could not be decoded, by reason.", &["reason"]),
            records_decoded: counter_vec(&r, "sluice_decode_records_total", "Records decoded, by kind (flow or options).", &["kind"]),
            templates_cached: gauge(&r, "sluice_decode_templates_cached", "Templates in the receive threads' caches."),
            template_events: counter_vec(&r, "sluice_decode_template_events_total", "Template events: learned, withdrawn, expired, cross_core (adopted from another thread or the saved set), evicted (dropped to make room when the total template budget was full).", &["event"]),
            exporter_restarts: counter(&r, "sluice_decode_exporter_restarts_total", "Exporter restarts detected (sysUptime or sequence going back); their templates were dropped."),
            exporter_missing: gauge_vec(&r, "sluice_exporter_missing", "Sequence units an exporter sent that never arrived (unit: packets for NetFlow v9, records for v5 and IPFIX); late arrivals are not loss.", &["exporter", "version", "domain", "unit"]),
            pipeline_dropped: counter(&r, "sluice_pipeline_dropped_records_total", "Records dropped because the store could not keep up (receive threads never block)."),
            records_stored: counter(&r, "sluice_store_records_total", "Records written to the local store (flushed)."),
            store_errors: counter_vec(&r, "sluice_store_errors_total", "Local store errors, by reason.", &["reason"]),
            store_bytes: gauge(&r, "sluice_store_bytes", "Bytes of the local store on disk."),
            store_segments: gauge(&r, "sluice_store_segments", "Segment files in the local store."),
            store_partitions: gauge(&r, "sluice_store_partitions", "Time partitions in the local store."),
            up: gauge(&r, "sluice_up", "1 while the collector runs."),
            es_docs: counter_vec(&r, "sluice_es_documents_total", "Documents by outcome in Elasticsearch: shipped, duplicate (409 on create: already there), retried, failed, dead_lettered, dropped (queue and spool full).", &["outcome"]),
            es_requests: counter(&r, "sluice_es_bulk_requests_total", "_bulk requests sent."),
            es_request_errors: counter(&r, "sluice_es_bulk_request_errors_total", "_bulk requests that failed as a whole (connection errors, 429, 5xx)."),
            es_in_flight: gauge(&r, "sluice_es_requests_in_flight", "_bulk requests in flight."),
            es_spool_bytes: gauge(&r, "sluice_es_spool_bytes", "Bytes waiting in the Elasticsearch spool on disk."),
            es_spool_segments: gauge(&r, "sluice_es_spool_segments", "Segment files in the Elasticsearch spool."),
            es_latency_bucket: gauge_vec(&r, "sluice_es_bulk_latency_seconds_bucket", "_bulk request latency: requests at or below each bound (cumulative, as a histogram's buckets).", &["le"]),
            es_latency_count: gauge(&r, "sluice_es_bulk_latency_seconds_count", "_bulk requests timed."),
            enrich_cache_hits: gauge(&r, "sluice_enrich_cache_hits", "GeoIP/AS cache hits of the shipping thread."),
            enrich_cache_misses: gauge(&r, "sluice_enrich_cache_misses", "GeoIP/AS cache misses of the shipping thread."),
            forward_datagrams: counter_vec(&r, "sluice_forward_datagrams_total", "Datagrams forwarded to another collector, by the source address they carry: exporter (the exporter's own, through a raw socket) or sluice (Sluice's address).", &["target", "source"]),
            forward_bytes: counter_vec(&r, "sluice_forward_bytes_total", "UDP payload bytes forwarded.", &["target"]),
            forward_dropped: counter_vec(&r, "sluice_forward_dropped_total", "Datagrams not forwarded, by reason: queue_full (the sender fell behind; receive threads never wait), send_error, truncated (cut by the receive buffer).", &["target", "reason"]),
            forward_source_preserved: gauge_vec(&r, "sluice_forward_source_preserved", "1 when a forward target gets datagrams with the exporters' source addresses (raw socket, CAP_NET_RAW), 0 when from Sluice's own.", &["target"]),
            registry: r,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            out.extend_from_slice(format!("# encode error: {e}\n").as_bytes());
        }
        out
    }
}
