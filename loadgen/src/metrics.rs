//! Reading the collector's Prometheus text (`/metrics`) before and after a run.
//!
//! A plain HTTP/1.0 GET over a `TcpStream` is enough: the collector's endpoint answers one
//! request per connection with a `Content-Length` body (a chunked body is decoded too). The
//! exposition format is read line by line (`name{label="value",...} value [timestamp]`);
//! samples of one name are summed over the label sets that match a filter.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Collector counters the report uses.
pub const RECEIVED_PACKETS: &str = "sluice_receive_packets_total";
pub const DECODED_RECORDS: &str = "sluice_decode_records_total";
pub const STORED_RECORDS: &str = "sluice_store_records_total";
pub const KERNEL_DROPS: &str = "sluice_receive_kernel_drops_total";
pub const PIPELINE_DROPS: &str = "sluice_pipeline_dropped_records_total";

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid metrics URL {0:?}: expected http://HOST:PORT/PATH")]
    Url(String),
    #[error("cannot fetch metrics: {0}")]
    Io(#[from] std::io::Error),
    #[error("metrics endpoint answered {0:?}")]
    Status(String),
    #[error("malformed HTTP response from the metrics endpoint")]
    Response,
}

/// A parsed `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsUrl {
    /// Host as written (a name, an IPv4 address or a bracketed IPv6 address).
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl MetricsUrl {
    pub fn parse(url: &str) -> Result<Self, MetricsError> {
        let bad = || MetricsError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if tail.is_empty() => 80,
                None => return Err(bad()),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad());
        }
        Ok(MetricsUrl {
            host,
            port,
            path: path.to_string(),
        })
    }

    /// GETs the page and returns its body.
    pub fn fetch(&self, timeout: Duration) -> Result<String, MetricsError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host, self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| MetricsError::Url(self.host.clone()))?;
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        // One write: a server that answers after its first read must see the whole request.
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {}:{}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
            self.path, self.host, self.port
        );
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_response(&raw)
    }
}

/// Splits an HTTP response into status and body; only 200 is accepted.
fn parse_response(raw: &[u8]) -> Result<String, MetricsError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(MetricsError::Response)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| MetricsError::Response)?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().ok_or(MetricsError::Response)?;
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(MetricsError::Status(status.to_string()));
    }
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(body).ok_or(MetricsError::Response)?
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| MetricsError::Response)
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// One sample of the exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the Prometheus text format; comments and lines that do not parse are skipped.
pub fn parse_text(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (key, r) = rest.split_once('=')?;
            let r = r.trim_start().strip_prefix('"')?;
            // Label values escape backslash, double quote and newline.
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.trim().to_string(), value));
            rest = &r[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Sum of `name` over the samples whose labels include `filter` (all samples if `None`);
/// `None` if there is no such sample.
pub fn sum(samples: &[Sample], name: &str, filter: Option<(&str, &str)>) -> Option<f64> {
    let mut found = false;
    let mut total = 0.0;
    for s in samples.iter().filter(|s| s.name == name) {
        let keep = filter.is_none_or(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v));
        if keep {
            found = true;
            total += s.value;
        }
    }
    found.then_some(total)
}

/// Further collector counters the soak and the plots read.
pub const EXPORTER_MISSING: &str = "sluice_exporter_missing";
pub const DECODE_ERRORS: &str = "sluice_decode_errors_total";
pub const STORE_ERRORS: &str = "sluice_store_errors_total";
pub const RECEIVE_ERRORS: &str = "sluice_receive_errors_total";
pub const TRUNCATED: &str = "sluice_receive_truncated_total";
pub const DENIED: &str = "sluice_receive_denied_total";
pub const RESTARTS: &str = "sluice_decode_exporter_restarts_total";
pub const TEMPLATE_EVENTS: &str = "sluice_decode_template_events_total";
pub const RECORD_AGE_COUNT: &str = "sluice_store_record_age_seconds_count";

/// The collector counters the report compares.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `sluice_receive_packets_total`, all listeners.
    pub received_packets: Option<f64>,
    /// `sluice_decode_records_total{kind="flow"}`.
    pub decoded_flow_records: Option<f64>,
    /// `sluice_decode_records_total{kind="options"}`.
    pub decoded_options_records: Option<f64>,
    /// `sluice_decode_records_total{kind="sflow_flow"}`: sFlow flow and discard samples.
    pub decoded_sflow_samples: Option<f64>,
    /// `sluice_decode_records_total{kind="sflow_counters"}`.
    pub decoded_sflow_counters: Option<f64>,
    /// `sluice_store_records_total`.
    pub stored_records: Option<f64>,
    /// `sluice_receive_kernel_drops_total`, all listeners.
    pub kernel_drops: Option<f64>,
    /// `sluice_pipeline_dropped_records_total`: decoded records the store could not take in
    /// time.
    pub pipeline_drops: Option<f64>,
    /// `sluice_exporter_missing`, summed over exporters (a gauge per exporter: sequence units
    /// that never arrived).
    pub exporter_missing: Option<f64>,
    /// `sluice_decode_errors_total`, all reasons.
    pub decode_errors: Option<f64>,
    /// `sluice_store_errors_total`, all reasons.
    pub store_errors: Option<f64>,
    /// `sluice_receive_errors_total` + `sluice_receive_truncated_total` +
    /// `sluice_receive_denied_total`.
    pub receive_errors: Option<f64>,
    /// `sluice_decode_exporter_restarts_total`.
    pub exporter_restarts: Option<f64>,
    /// Template events that lose templates: `evicted` and `expired`.
    pub templates_lost: Option<f64>,
    /// `sluice_store_record_age_seconds_count`: records whose age at flush was recorded.
    pub record_ages: Option<f64>,
}

impl Snapshot {
    /// Reads the counters from a page. A labelled counter appears only once one of its label
    /// sets has been touched (kernel drops, typically), so on a page that is a Sluice
    /// collector's (it has `sluice_` samples) a missing counter reads as zero; on any other
    /// page it stays `None`.
    pub fn from_text(text: &str) -> Self {
        let s = parse_text(text);
        let sluice = s.iter().any(|x| x.name.starts_with("sluice_"));
        let get = |name, filter| sum(&s, name, filter).or(sluice.then_some(0.0));
        let add = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        Snapshot {
            received_packets: get(RECEIVED_PACKETS, None),
            decoded_flow_records: get(DECODED_RECORDS, Some(("kind", "flow"))),
            decoded_options_records: get(DECODED_RECORDS, Some(("kind", "options"))),
            decoded_sflow_samples: get(DECODED_RECORDS, Some(("kind", "sflow_flow"))),
            decoded_sflow_counters: get(DECODED_RECORDS, Some(("kind", "sflow_counters"))),
            stored_records: get(STORED_RECORDS, None),
            kernel_drops: get(KERNEL_DROPS, None),
            pipeline_drops: get(PIPELINE_DROPS, None),
            exporter_missing: get(EXPORTER_MISSING, None),
            decode_errors: get(DECODE_ERRORS, None),
            store_errors: get(STORE_ERRORS, None),
            receive_errors: add(
                add(get(RECEIVE_ERRORS, None), get(TRUNCATED, None)),
                get(DENIED, None),
            ),
            exporter_restarts: get(RESTARTS, None),
            templates_lost: add(
                get(TEMPLATE_EVENTS, Some(("event", "evicted"))),
                get(TEMPLATE_EVENTS, Some(("event", "expired"))),
            ),
            record_ages: sum(&s, RECORD_AGE_COUNT, None),
        }
    }

    pub fn scrape(url: &MetricsUrl) -> Result<Self, MetricsError> {
        Ok(Self::from_text(&url.fetch(Duration::from_secs(5))?))
    }

    /// Field-by-field difference `self - before` (a counter missing on either side gives
    /// `None`).
    pub fn delta(&self, before: &Snapshot) -> Snapshot {
        let d = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        Snapshot {
            received_packets: d(self.received_packets, before.received_packets),
            decoded_flow_records: d(self.decoded_flow_records, before.decoded_flow_records),
            decoded_options_records: d(
                self.decoded_options_records,
                before.decoded_options_records,
            ),
            decoded_sflow_samples: d(self.decoded_sflow_samples, before.decoded_sflow_samples),
            decoded_sflow_counters: d(self.decoded_sflow_counters, before.decoded_sflow_counters),
            stored_records: d(self.stored_records, before.stored_records),
            kernel_drops: d(self.kernel_drops, before.kernel_drops),
            pipeline_drops: d(self.pipeline_drops, before.pipeline_drops),
            exporter_missing: d(self.exporter_missing, before.exporter_missing),
            decode_errors: d(self.decode_errors, before.decode_errors),
            store_errors: d(self.store_errors, before.store_errors),
            receive_errors: d(self.receive_errors, before.receive_errors),
            exporter_restarts: d(self.exporter_restarts, before.exporter_restarts),
            templates_lost: d(self.templates_lost, before.templates_lost),
            record_ages: d(self.record_ages, before.record_ages),
        }
    }
}

/// How often the collector's receive threads add their counts (packets, records decoded,
/// errors) to its metrics; the store's count moves on its own schedule.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Scrapes until the stored-records counter has taken in `expected` more records than in
/// `before`, or has not moved for `quiet`, or `max_wait` has passed; returns the last scrape.
/// The collector writes its store every flush interval (1 s by default), so `quiet` should be
/// longer than that. Once the store has everything, it scrapes once more a publish interval
/// later, so that the receive threads' counters (which they publish once a second) are
/// complete too.
pub fn wait_settled(
    url: &MetricsUrl,
    before: &Snapshot,
    expected: u64,
    quiet: Duration,
    max_wait: Duration,
) -> Result<Snapshot, MetricsError> {
    let start = Instant::now();
    let mut last = Snapshot::scrape(url)?;
    let mut since = Instant::now();
    loop {
        let stored = last.delta(before).stored_records.unwrap_or(0.0);
        if stored >= expected as f64 {
            std::thread::sleep(PUBLISH_INTERVAL + Duration::from_millis(200));
            return Snapshot::scrape(url);
        }
        if since.elapsed() >= quiet || start.elapsed() >= max_wait {
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(250));
        let now = Snapshot::scrape(url)?;
        if now.stored_records != last.stored_records {
            since = Instant::now();
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANNED: &str = r#"# HELP sluice_receive_packets_total UDP datagrams received.
# TYPE sluice_receive_packets_total counter
sluice_receive_packets_total{listener="[::]:2055"} 1200
sluice_receive_packets_total{listener="[::]:4739"} 34
# HELP sluice_receive_kernel_drops_total Datagrams the kernel dropped.
# TYPE sluice_receive_kernel_drops_total counter
sluice_receive_kernel_drops_total{listener="[::]:2055"} 7
sluice_receive_kernel_drops_total{listener="[::]:4739"} 0
# TYPE sluice_decode_records_total counter
sluice_decode_records_total{kind="flow"} 5.52e3
sluice_decode_records_total{kind="options"} 12
sluice_decode_errors_total{reason="template_missing",note="a \"quoted\", {odd} value\\"} 3
# TYPE sluice_store_records_total counter
sluice_store_records_total 5500 1700000000000
sluice_pipeline_dropped_records_total 20
sluice_exporter_missing{exporter="127.0.0.1"} NaN
garbage line without value
"#;

    #[test]
    fn parses_canned_collector_text() {
        let snap = Snapshot::from_text(CANNED);
        assert_eq!(snap.received_packets, Some(1234.0));
        assert_eq!(snap.kernel_drops, Some(7.0));
        assert_eq!(snap.decoded_flow_records, Some(5520.0));
        assert_eq!(snap.stored_records, Some(5500.0));
        assert_eq!(snap.pipeline_drops, Some(20.0));
        assert_eq!(snap.decoded_options_records, Some(12.0));
        assert_eq!(snap.decode_errors, Some(3.0));
        assert_eq!(
            snap.store_errors,
            Some(0.0),
            "a Sluice page: absent reads as 0"
        );
        assert_eq!(snap.record_ages, None, "not on this page");
        let s = parse_text(CANNED);
        let odd = s
            .iter()
            .find(|s| s.name == "sluice_decode_errors_total")
            .expect("escaped labels parse");
        assert_eq!(odd.labels[1].1, "a \"quoted\", {odd} value\\");
        assert_eq!(odd.value, 3.0);
        assert_eq!(sum(&s, "sluice_nothing", None), None);
        // Not yet incremented on a collector's page: zero. Not a collector's page: unknown.
        let quiet = Snapshot::from_text("sluice_store_records_total 3\n");
        assert_eq!(quiet.kernel_drops, Some(0.0));
        assert_eq!(Snapshot::from_text("other_total 1\n"), Snapshot::default());
        let before = Snapshot {
            received_packets: Some(200.0),
            decoded_flow_records: Some(20.0),
            stored_records: None,
            kernel_drops: Some(0.0),
            pipeline_drops: Some(0.0),
            ..Snapshot::default()
        };
        let d = snap.delta(&before);
        assert_eq!(d.received_packets, Some(1034.0));
        assert_eq!(d.stored_records, None);
    }

    #[test]
    fn urls() {
        let u = MetricsUrl::parse("http://127.0.0.1:9155/metrics").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9155, "/metrics")
        );
        let u = MetricsUrl::parse("http://[::1]:9155").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("[::1]", 9155, "/metrics")
        );
        let u = MetricsUrl::parse("http://localhost/m").expect("url");
        assert_eq!(u.port, 80);
        for bad in [
            "https://x:1/",
            "127.0.0.1:9155",
            "http://:9/",
            "http://[::1/",
            "http://h:x/",
        ] {
            assert!(MetricsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(ok).expect("ok"), "hello");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n wo\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).expect("chunked"), "hello wo");
        assert!(matches!(
            parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(MetricsError::Status(_))
        ));
        assert!(parse_response(b"garbage").is_err());
    }

    /// A one-shot HTTP server on 127.0.0.1 serving canned text, then a real fetch.
    #[test]
    fn fetches_over_tcp() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "request cut short");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(req.starts_with(b"GET /metrics HTTP/1.0\r\n"));
            let body = CANNED.as_bytes();
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .expect("write");
            s.write_all(body).expect("write body");
        });
        let url = MetricsUrl::parse(&format!("http://127.0.0.1:{port}/metrics")).expect("url");
        let snap = Snapshot::scrape(&url).expect("scrape");
        server.join().expect("server");
        assert_eq!(snap.stored_records, Some(5500.0));
    }
}
