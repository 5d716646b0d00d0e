//! Reading flows back from the cluster (`sluice dump --source es`): a point in time over the
//! read pattern, pages sorted by `@timestamp` then `_shard_doc` (the PIT tiebreaker, unique
//! per document within the PIT), continued with `search_after`, parsed with simd-json.
//!
//! Elasticsearch opens a PIT with `POST /INDEX/_pit?keep_alive=1m` (answer `{"id":..}`) and
//! closes it with `DELETE /_pit {"id":..}`; OpenSearch with `POST
//! /INDEX/_search/point_in_time?keep_alive=1m` (answer `{"pit_id":..}`) and `DELETE
//! /_search/point_in_time {"pit_id":[..]}`. Searches name the PIT, not the index, and each
//! answer's `pit_id` replaces the one held (the documented rule).

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{Client, Method};
use super::config::EsConfig;
use super::error::EsError;
use super::metrics::Flavor;
use super::retry::{seed, Backoff};
use super::setup;

/// How long the cluster keeps the PIT between two pages.
const KEEP_ALIVE: &str = "1m";

/// What to read.
#[derive(Clone, Debug)]
pub struct DumpQuery {
    /// Start of the @timestamp range, ns since the epoch, inclusive.
    pub from_ns: i64,
    /// End of the range, exclusive.
    pub to_ns: i64,
    /// An extra query (Elasticsearch query DSL) the documents must also match, as a filter.
    pub query: Option<Value>,
    /// Documents per page (1 to 10000).
    pub page_size: usize,
}

impl DumpQuery {
    /// `[from_ns, to_ns)`, no extra query, pages of 1000.
    pub fn range(from_ns: i64, to_ns: i64) -> DumpQuery {
        DumpQuery {
            from_ns,
            to_ns,
            query: None,
            page_size: 1000,
        }
    }
}

#[derive(Deserialize)]
struct SearchReply {
    #[serde(default)]
    pit_id: Option<String>,
    hits: Hits,
}

#[derive(Deserialize)]
struct Hits {
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_source", default)]
    source: Value,
    #[serde(default)]
    sort: Vec<Value>,
}

/// An iterator over the documents of a range, in @timestamp order. The PIT is closed when the
/// iterator ends or is dropped. An error ends the iteration (after being yielded once).
#[derive(Debug)]
pub struct EsDump {
    client: Client,
    flavor: Flavor,
    pit: Option<String>,
    search_after: Option<Vec<Value>>,
    page: VecDeque<Value>,
    query: Value,
    page_size: usize,
    done: bool,
}

/// Opens a dump of `[from_ns, to_ns)` (see [`EsDump::open`]).
pub fn dump(
    cfg: &EsConfig,
    from_ns: i64,
    to_ns: i64,
    query: Option<Value>,
) -> Result<EsDump, EsError> {
    EsDump::open(
        cfg,
        &DumpQuery {
            query,
            ..DumpQuery::range(from_ns, to_ns)
        },
    )
}

impl EsDump {
    /// Asks the cluster what it is and opens a PIT over the configured index pattern (or data
    /// stream).
    pub fn open(cfg: &EsConfig, q: &DumpQuery) -> Result<EsDump, EsError> {
        cfg.validate()?;
        if q.page_size == 0 || q.page_size > 10_000 {
            return Err(EsError::config("page_size", "1 to 10000".to_owned()));
        }
        let client = Client::new(cfg)?;
        let (flavor, _) = setup::detect(&client)?;
        let pattern = cfg.read_pattern();
        let path = match flavor {
            Flavor::Elasticsearch => format!("/{pattern}/_pit?keep_alive={KEEP_ALIVE}"),
            Flavor::OpenSearch => {
                format!("/{pattern}/_search/point_in_time?keep_alive={KEEP_ALIVE}")
            }
        };
        let mut body = client.json(Method::Post, &path, None)?;
        let v: Value = simd_json::serde::from_slice(&mut body)
            .map_err(|e| EsError::Protocol(format!("PIT answer: {e}")))?;
        let key = if flavor == Flavor::Elasticsearch {
            "id"
        } else {
            "pit_id"
        };
        let pit = v
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| EsError::Protocol(format!("PIT answer has no {key}")))?;
        Ok(EsDump {
            client,
            flavor,
            pit: Some(pit.to_owned()),
            search_after: None,
            page: VecDeque::new(),
            query: range_query(q.from_ns, q.to_ns, q.query.as_ref()),
            page_size: q.page_size,
            done: false,
        })
    }

    fn fetch(&mut self) -> Result<(), EsError> {
        let Some(pit) = &self.pit else {
            self.done = true;
            return Ok(());
        };
        let mut req = json!({
            "size": self.page_size,
            "pit": {"id": pit, "keep_alive": KEEP_ALIVE},
            "query": self.query,
            "sort": [{"@timestamp": {"order": "asc"}}, {"_shard_doc": "asc"}],
            "track_total_hits": false,
        });
        if let Some(after) = &self.search_after {
            req["search_after"] = Value::Array(after.clone());
        }
        let mut body = search(&self.client, "/_search", &req)?;
        let reply: SearchReply = simd_json::serde::from_slice(&mut body)
            .map_err(|e| EsError::Protocol(format!("search answer: {e}")))?;
        if let Some(id) = reply.pit_id {
            self.pit = Some(id);
        }
        if reply.hits.hits.len() < self.page_size {
            self.done = true;
        }
        if let Some(last) = reply.hits.hits.last() {
            if last.sort.is_empty() {
                return Err(EsError::Protocol("search hit without sort values".into()));
            }
            self.search_after = Some(last.sort.clone());
        }
        self.page
            .extend(reply.hits.hits.into_iter().map(|h| h.source));
        Ok(())
    }

    fn close(&mut self) {
        let Some(pit) = self.pit.take() else { return };
        let (path, body) = match self.flavor {
            Flavor::Elasticsearch => ("/_pit", json!({"id": pit})),
            Flavor::OpenSearch => ("/_search/point_in_time", json!({"pit_id": [pit]})),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        // Best effort: an unclosed PIT expires after KEEP_ALIVE.
        let _ = self.client.request(
            Method::Delete,
            path,
            Some(super::client::Body::json(&bytes)),
        );
    }
}

/// The documents of `[from_ns, to_ns)` that also match `extra`: a `bool` filter. Millisecond
/// bounds: @timestamp is a millisecond `date`; `lt` rounds up so that a sub-millisecond `to`
/// still includes its millisecond.
pub(crate) fn range_query(from_ns: i64, to_ns: i64, extra: Option<&Value>) -> Value {
    let from_ms = from_ns.div_euclid(1_000_000);
    let to_ms = to_ns.div_euclid(1_000_000) + i64::from(to_ns.rem_euclid(1_000_000) != 0);
    let range =
        json!({"range": {"@timestamp": {"gte": from_ms, "lt": to_ms, "format": "epoch_millis"}}});
    let mut filter = vec![range];
    if let Some(extra) = extra {
        filter.push(extra.clone());
    }
    json!({"bool": {"filter": filter}})
}

/// POSTs a search body to `path`, retrying connection errors, 429 and 5xx a few times with
/// backoff; the answer body of a 2xx.
pub(crate) fn search(client: &Client, path: &str, req: &Value) -> Result<Vec<u8>, EsError> {
    let bytes = serde_json::to_vec(req).map_err(|e| EsError::Protocol(e.to_string()))?;
    let mut backoff = Backoff::new(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(5),
        seed(),
    );
    loop {
        match client.json(Method::Post, path, Some(&bytes)) {
            Ok(b) => return Ok(b),
            Err(e) if e.is_retryable() && backoff.attempts() < 5 => {
                std::thread::sleep(backoff.next_delay())
            }
            Err(e) => return Err(e),
        }
    }
}

impl Iterator for EsDump {
    type Item = Result<Value, EsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(v) = self.page.pop_front() {
                return Some(Ok(v));
            }
            if self.done {
                self.close();
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                self.close();
                return Some(Err(e));
            }
        }
    }
}

impl Drop for EsDump {
    fn drop(&mut self) {
        self.close();
    }
}
