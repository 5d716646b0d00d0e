//! Sluice's own metrics, in Prometheus text format on `/metrics`.
//!
//! Conventions: `sluice_<area>_<noun>_<unit>`, counters end in `_total`, labels are bounded
//! (listener, reason, protocol; exporter only on the per-exporter loss gauges, whose label
//! set is bounded by `decode.max_exporters`). Receive threads count into their own cells and
//! add to these families once per batch, never per record.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use sluice_decode::sflow::CounterSample;
use sluice_sink::store::RecordAges;

/// Interfaces (agent, sub-agent, ifIndex) whose sFlow counters are exported; samples of
/// others are counted in `sluice_sflow_interface_untracked_total`.
pub const SFLOW_INTERFACES_MAX: usize = 4096;

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
    pub store_dropped: IntCounter,
    pub sflow_interface: IntGaugeVec,
    pub sflow_interface_untracked: IntCounter,
    /// (agent, sub-agent, ifIndex) series of `sflow_interface`, bounded by
    /// [`SFLOW_INTERFACES_MAX`].
    pub sflow_interfaces: Arc<Mutex<HashSet<(IpAddr, u32, u32)>>>,
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
    pub es_spool_docs: IntGauge,
    pub es_latency_bucket: IntGaugeVec,
    pub es_latency_count: IntGauge,
    pub enrich_cache_hits: IntGauge,
    pub enrich_cache_misses: IntGauge,
    /// Ages of records at the moment they became durable in the local store; exported as the
    /// `sluice_store_record_age_seconds` histogram and, whole, on `/debug/record-age`.
    pub record_ages: Arc<Mutex<RecordAges>>,
    pub syslog_received: IntCounterVec,
    pub syslog_messages: IntCounterVec,
    pub syslog_parse_failures: IntCounterVec,
    pub syslog_framing_errors: IntCounterVec,
    pub syslog_connections: IntGaugeVec,
    pub syslog_connections_accepted: IntCounterVec,
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

/// Adds to the `labels` series of `c` what a cumulative count gained since `prev` (now
/// `now`), and remembers `now`. A series is created only once it has something to count.
pub fn count_up(c: &IntCounterVec, labels: &[&str], prev: &mut u64, now: u64) {
    if now > *prev {
        c.with_label_values(labels).inc_by(now - *prev);
        *prev = now;
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

/// Upper bounds of `sluice_store_record_age_seconds`, seconds: from the collector's own
/// latency (a flush interval is 1 s by default) to exporters' active timeouts (minutes) and
/// clocks that are far off.
pub const RECORD_AGE_BUCKETS: [f64; 18] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Exposes [`RecordAges`] as a Prometheus histogram (and its future-stamped count), built
/// from the HdrHistogram at scrape time: the store thread pays one histogram increment per
/// record, nothing per bucket.
struct RecordAgeCollector {
    ages: Arc<Mutex<RecordAges>>,
    descs: Vec<Desc>,
}

const AGE_NAME: &str = "sluice_store_record_age_seconds";
const AGE_HELP: &str = "Age of records when they became durable in the local store: write time minus the flow end (event.end). For the load generator's synthetic records, whose end is their send time, this is the end-to-end latency.";
const FUTURE_NAME: &str = "sluice_store_record_age_future_total";
const FUTURE_HELP: &str = "Records whose flow end was after the moment they were stored (the exporter's clock is ahead), counted at age 0.";

impl RecordAgeCollector {
    #[allow(clippy::expect_used)]
    fn new(ages: Arc<Mutex<RecordAges>>) -> Self {
        let desc = |n: &str, h: &str| {
            Desc::new(n.into(), h.into(), Vec::new(), Default::default()).expect("valid desc")
        };
        RecordAgeCollector {
            ages,
            descs: vec![desc(AGE_NAME, AGE_HELP), desc(FUTURE_NAME, FUTURE_HELP)],
        }
    }
}

impl Collector for RecordAgeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let (buckets, count, sum, future) = {
            let a = match self.ages.lock() {
                Ok(a) => a,
                Err(p) => p.into_inner(),
            };
            let buckets: Vec<proto::Bucket> = RECORD_AGE_BUCKETS
                .iter()
                .map(|&le| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(le);
                    b.set_cumulative_count(a.count_at_most((le * 1e6) as u64));
                    b
                })
                .collect();
            (buckets, a.count(), a.sum_seconds(), a.future())
        };
        let mut h = proto::Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(buckets);
        let mut m = proto::Metric::default();
        m.set_histogram(h);
        let mut hist = proto::MetricFamily::default();
        hist.set_name(AGE_NAME.into());
        hist.set_help(AGE_HELP.into());
        hist.set_field_type(proto::MetricType::HISTOGRAM);
        hist.set_metric(vec![m]);
        let mut c = proto::Counter::default();
        c.set_value(future as f64);
        let mut m = proto::Metric::default();
        m.set_counter(c);
        let mut fut = proto::MetricFamily::default();
        fut.set_name(FUTURE_NAME.into());
        fut.set_help(FUTURE_HELP.into());
        fut.set_field_type(proto::MetricType::COUNTER);
        fut.set_metric(vec![m]);
        vec![hist, fut]
    }
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
        let record_ages = Arc::new(Mutex::new(RecordAges::new()));
        r.register(Box::new(RecordAgeCollector::new(Arc::clone(&record_ages))))
            .expect("registered once");
        Metrics {
            record_ages,
            packets: counter_vec(&r, "sluice_receive_packets_total", "UDP datagrams received.", &["listener"]),
            bytes: counter_vec(&r, "sluice_receive_bytes_total", "UDP payload bytes received.", &["listener"]),
            truncated: counter_vec(&r, "sluice_receive_truncated_total", "Datagrams larger than the receive buffer (MSG_TRUNC), not decoded.", &["listener"]),
            kernel_drops: counter_vec(&r, "sluice_receive_kernel_drops_total", "Datagrams the kernel dropped because a socket's receive buffer was full (the socket's drop counter, SO_MEMINFO).", &["listener"]),
            recv_errors: counter_vec(&r, "sluice_receive_errors_total", "Per-datagram receive errors skipped (ICMP-reported and the like).", &["listener"]),
            denied: counter_vec(&r, "sluice_receive_denied_total", "Datagrams from exporters outside the listener's allowlist, dropped.", &["listener"]),
            recv_buffer: gauge_vec(&r, "sluice_receive_buffer_bytes", "Socket receive buffer the kernel granted (SO_RCVBUF as read back), per socket.", &["listener", "worker"]),
            decode_errors: counter_vec(&r, "sluice_decode_errors_total", "Datagrams, sets or records that could not be decoded, by reason.", &["reason"]),
            records_decoded: counter_vec(&r, "sluice_decode_records_total", "Records decoded, by kind (flow or options).", &["kind"]),
            templates_cached: gauge(&r, "sluice_decode_templates_cached", "Templates in the receive threads' caches."),
            template_events: counter_vec(&r, "sluice_decode_template_events_total", "Template events: learned, withdrawn, expired, cross_core (adopted from another thread or the saved set), evicted (dropped to make room when the total template budget was full).", &["event"]),
            exporter_restarts: counter(&r, "sluice_decode_exporter_restarts_total", "Exporter restarts detected (sysUptime or sequence going back); their templates were dropped."),
            exporter_missing: gauge_vec(&r, "sluice_exporter_missing", "Sequence units an exporter sent that never arrived (unit: packets for NetFlow v9, records for v5 and IPFIX; for sFlow, version sflow5, domain = sub-agent id, unit datagrams (per agent and sub-agent) and samples (per data source, summed)); late arrivals are not loss.", &["exporter", "version", "domain", "unit"]),
            pipeline_dropped: counter(&r, "sluice_pipeline_dropped_records_total", "Records dropped because the store could not keep up (a receive thread waits at most 20 ms for room in its queue)."),
            records_stored: counter(&r, "sluice_store_records_total", "Records written to the local store (flushed)."),
            store_errors: counter_vec(&r, "sluice_store_errors_total", "Local store errors, by reason (disk_full: ENOSPC/EDQUOT; the store recovers by itself when space returns).", &["reason"]),
            sflow_interface: gauge_vec(&r, "sluice_sflow_interface_counter", "Interface counters from sFlow counter samples (generic interface counters), as the agent last reported them: in/out octets, packets (unicast+multicast+broadcast), errors, discards (device counters: use rate()), speed_bps, admin_up and oper_up (1/0).", &["agent", "sub_agent", "ifindex", "counter"]),
            sflow_interface_untracked: counter(&r, "sluice_sflow_interface_untracked_total", "sFlow counter samples of interfaces beyond the tracked limit (4096 interfaces), not exported as metrics."),
            sflow_interfaces: Arc::new(Mutex::new(HashSet::new())),
            store_dropped: counter(&r, "sluice_store_dropped_records_total", "Records the local store could not write (disk full or another write error) and dropped."),
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
            es_spool_docs: gauge(&r, "sluice_es_spool_documents", "Documents in the Elasticsearch spool on disk (written, not yet acknowledged by the cluster); they survive a crash and are replayed at the next start."),
            es_latency_bucket: gauge_vec(&r, "sluice_es_bulk_latency_seconds_bucket", "_bulk request latency: requests at or below each bound (cumulative, as a histogram's buckets).", &["le"]),
            es_latency_count: gauge(&r, "sluice_es_bulk_latency_seconds_count", "_bulk requests timed."),
            enrich_cache_hits: gauge(&r, "sluice_enrich_cache_hits", "GeoIP/AS cache hits of the store thread (which enriches for the local store and Elasticsearch)."),
            enrich_cache_misses: gauge(&r, "sluice_enrich_cache_misses", "GeoIP/AS cache misses of the store thread (which enriches for the local store and Elasticsearch)."),
            syslog_received: counter_vec(&r, "sluice_syslog_received_total", "Syslog messages received (framed), per listener.", &["listener"]),
            syslog_messages: counter_vec(&r, "sluice_syslog_messages_total", "Syslog messages stored, by the parser that read them (asa, netfilter, panos; unknown when none did).", &["vendor"]),
            syslog_parse_failures: counter_vec(&r, "sluice_syslog_parse_failures_total", "Syslog messages stored with the parse-failure tag (event.original kept), by vendor and reason.", &["vendor", "reason"]),
            syslog_framing_errors: counter_vec(&r, "sluice_syslog_framing_errors_total", "Syslog framing problems per listener: too_long (message cut at max_line), incomplete (connection closed inside an octet-counted message, kept), connection_limit (refused), tls (handshake or record errors), read_error.", &["listener", "reason"]),
            syslog_connections: gauge_vec(&r, "sluice_syslog_connections", "Syslog TCP/TLS connections open, per listener.", &["listener"]),
            syslog_connections_accepted: counter_vec(&r, "sluice_syslog_connections_total", "Syslog TCP/TLS connections accepted, per listener.", &["listener"]),
            forward_datagrams: counter_vec(&r, "sluice_forward_datagrams_total", "Datagrams forwarded to another collector, by the source address they carry: exporter (the exporter's own, through a raw socket) or sluice (Sluice's address).", &["target", "source"]),
            forward_bytes: counter_vec(&r, "sluice_forward_bytes_total", "UDP payload bytes forwarded.", &["target"]),
            forward_dropped: counter_vec(&r, "sluice_forward_dropped_total", "Datagrams not forwarded, by reason: queue_full (the sender fell behind; receive threads never wait), send_error, truncated (cut by the receive buffer).", &["target", "reason"]),
            forward_source_preserved: gauge_vec(&r, "sluice_forward_source_preserved", "1 when a forward target gets datagrams with the exporters' source addresses (raw socket, CAP_NET_RAW), 0 when from Sluice's own.", &["target"]),
            registry: r,
        }
    }

    /// The record-age distribution as text (see [`RecordAges::write_text`]).
    pub fn render_record_ages(&self) -> Vec<u8> {
        let mut out = String::with_capacity(4096);
        match self.record_ages.lock() {
            Ok(a) => a.write_text(&mut out),
            Err(p) => p.into_inner().write_text(&mut out),
        }
        out.into_bytes()
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

impl Metrics {
    /// Sets the interface gauges from one sFlow counter sample (generic interface counters;
    /// samples without them are skipped). Counter samples come every 20-30 s per interface,
    /// so the label formatting here is not on any hot path.
    pub fn sflow_counters(&self, cs: &CounterSample) {
        let Some(ic) = cs.interface.as_ref() else {
            return;
        };
        let Some(agent) = cs.agent.or(Some(cs.exporter.ip())) else {
            return;
        };
        let key = (agent, cs.sub_agent_id, ic.if_index);
        {
            let mut seen = match self.sflow_interfaces.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !seen.contains(&key) {
                if seen.len() >= SFLOW_INTERFACES_MAX {
                    self.sflow_interface_untracked.inc();
                    return;
                }
                seen.insert(key);
            }
        }
        let (agent, sub, ifindex) = (
            agent.to_string(),
            cs.sub_agent_id.to_string(),
            ic.if_index.to_string(),
        );
        let packets = |a: u32, b: u32, c: u32| u64::from(a) + u64::from(b) + u64::from(c);
        for (name, v) in [
            ("in_octets", ic.in_octets),
            ("out_octets", ic.out_octets),
            (
                "in_packets",
                packets(ic.in_ucast_pkts, ic.in_multicast_pkts, ic.in_broadcast_pkts),
            ),
            (
                "out_packets",
                packets(
                    ic.out_ucast_pkts,
                    ic.out_multicast_pkts,
                    ic.out_broadcast_pkts,
                ),
            ),
            ("in_errors", u64::from(ic.in_errors)),
            ("out_errors", u64::from(ic.out_errors)),
            ("in_discards", u64::from(ic.in_discards)),
            ("out_discards", u64::from(ic.out_discards)),
            ("speed_bps", ic.if_speed),
            ("admin_up", u64::from(ic.admin_up())),
            ("oper_up", u64::from(ic.oper_up())),
        ] {
            self.sflow_interface
                .with_label_values(&[&agent, &sub, &ifindex, name])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}
