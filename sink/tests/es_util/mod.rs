//! An in-test Elasticsearch 8 stand-in on 127.0.0.1 (std `TcpListener`, a thread per
//! connection, HTTP/1.1 keep-alive). It speaks what the sink uses, with Elasticsearch's
//! documented answer shapes:
//!
//! - `GET /` (8.x info, `"build_flavor":"default"`, no `distribution`);
//! - `GET|PUT /_index_template/NAME`, `GET|PUT /_ilm/policy/NAME` (404
//!   `resource_not_found_exception` when missing; PUTs are counted);
//! - `POST /_bulk`: gunzips `Content-Encoding: gzip` bodies, checks action/source line pairs
//!   (400 `illegal_argument_exception` otherwise), answers `{"took","errors","items":[{"create":
//!   {"_index","_id","_version","result","_shards","_seq_no","_primary_term","status"}}]}` and
//!   for failed items `{"create":{"_index","_id","status","error":{"type","reason",...}}}`;
//!   keeps documents by `_id` and answers 409 `version_conflict_engine_exception` for an
//!   existing one; maps `source.ip` as `ip` and `@timestamp` as `date` (400
//!   `document_parsing_exception` for values that do not parse);
//! - `POST /INDEX/_pit?keep_alive=..` (`{"id"}`), `POST /_search` with `pit`, `sort`
//!   (@timestamp, `_shard_doc`), `search_after` and a `range` on @timestamp, answering
//!   `{"pit_id","took","timed_out","_shards","hits":{"max_score":null,"hits":[{"_index","_id",
//!   "_score":null,"_source","sort"}]}}`; `DELETE /_pit` (`{"succeeded","num_freed"}`).
//!
//! Faults are injected on command ([`Fault`]), and [`FakeEs::set_down`] closes the listener
//! and every connection (clients then get "connection refused") until it is brought back on
//! the same port.

#![allow(dead_code)]

pub mod osmem;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const SEC: i64 = 1_000_000_000;
/// 2026-11-23T14:00:00Z.
pub const T2026: i64 = 1_795_442_400 * SEC;

/// Something the server does to the next `_bulk` requests, in order, one per request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Whole request 429 `es_rejected_execution_exception`.
    Reject429,
    /// Whole request 503 `unavailable_shards_exception`.
    Unavailable503,
    /// Index, then close the connection without answering (the client must resend; the
    /// resend meets 409s).
    ResetAfterIndexing,
    /// Close the connection as soon as the request is read, indexing nothing.
    ResetBeforeIndexing,
    /// Index, then wait this long before answering.
    Slow(Duration),
    /// HTTP 200, but every `n`th item (0, n, 2n, ...) answered 429 and not indexed.
    Item429Every(usize),
    /// HTTP 200, every `n`th item answered 503 `unavailable_shards_exception`.
    Item503Every(usize),
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub index: String,
    pub source: Value,
    pub ts_ms: i64,
    /// Order of indexing (the `_shard_doc` of this one-shard cluster).
    pub seq: u64,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub docs: HashMap<String, Stored>,
    /// Successful creates per `_id`: exactly-once means 1 for every id.
    pub creates: HashMap<String, u32>,
    /// `_id`s in the order they were indexed.
    pub arrival: Vec<String>,
    pub bulk_requests: u64,
    pub gzip_requests: u64,
    pub conflicts: u64,
    pub template_puts: u32,
    pub templates: HashMap<String, Value>,
    pub ilm_puts: u32,
    pub ilm: HashMap<String, Value>,
    pub faults: VecDeque<Fault>,
    pub pits: HashMap<String, Vec<(i64, u64, String)>>,
    pub pit_n: u64,
    pub requests: Vec<String>,
    /// `Authorization` headers seen, in order.
    pub auth: Vec<String>,
}

#[derive(Debug)]
struct State {
    inner: Mutex<Inner>,
    down: AtomicBool,
    stop: AtomicBool,
    /// Bumped at every `set_down(true)`: connections of an older generation close.
    generation: AtomicU64,
}

/// The server. Dropping it stops it.
#[derive(Debug)]
pub struct FakeEs {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl FakeEs {
    pub fn start() -> FakeEs {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            inner: Mutex::new(Inner::default()),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        });
        let st = state.clone();
        let accept = std::thread::spawn(move || accept_loop(Some(listener), addr, &st));
        FakeEs {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn inner(&self) -> MutexGuard<'_, Inner> {
        self.state.inner.lock().expect("fake es lock")
    }

    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner().faults.extend(faults);
    }

    /// Down: the port refuses connections and open connections are closed. Up: listening
    /// again on the same port.
    pub fn set_down(&self, down: bool) {
        if down {
            self.state.generation.fetch_add(1, SeqCst);
        }
        self.state.down.store(down, SeqCst);
        // Let the accept loop see it.
        std::thread::sleep(Duration::from_millis(30));
    }

    /// Number of documents stored.
    pub fn count(&self) -> usize {
        self.inner().docs.len()
    }

    /// Waits until `n` documents are stored or `timeout` passes; the count.
    pub fn wait_count(&self, n: usize, timeout: Duration) -> usize {
        let end = Instant::now() + timeout;
        loop {
            let c = self.count();
            if c >= n || Instant::now() > end {
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeEs {
    fn drop(&mut self) {
        self.state.stop.store(true, SeqCst);
        self.state.generation.fetch_add(1, SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(mut listener: Option<TcpListener>, addr: SocketAddr, st: &Arc<State>) {
    if let Some(l) = &listener {
        l.set_nonblocking(true).expect("nonblocking");
    }
    while !st.stop.load(SeqCst) {
        let down = st.down.load(SeqCst);
        if down && listener.is_some() {
            listener = None; // closes the socket: connects are refused
        }
        if !down && listener.is_none() {
            // std sets SO_REUSEADDR, so the same port binds again at once.
            match TcpListener::bind(addr) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("nonblocking");
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        match listener.as_ref().map(TcpListener::accept) {
            Some(Ok((s, _))) => {
                let st = st.clone();
                let gen = st.generation.load(SeqCst);
                std::thread::spawn(move || serve(s, &st, gen));
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn live(st: &State, gen: u64) -> bool {
    !st.stop.load(SeqCst) && st.generation.load(SeqCst) == gen
}

/// Reads one request; `None` at EOF, on error or when the connection's generation ended.
fn read_request(r: &mut BufReader<TcpStream>, st: &State, gen: u64) -> Option<Request> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        loop {
            match r.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(_) if line.ends_with(b"\n") => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !live(st, gen) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
        if line == b"\r\n" || line == b"\n" {
            if head.is_empty() {
                continue;
            }
            break;
        }
        head.push(String::from_utf8_lossy(&line).trim_end().to_owned());
    }
    let mut first = head.first()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let headers: Vec<(String, String)> = head[1..]
        .iter()
        .filter_map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
    };
    let read_exact = |r: &mut BufReader<TcpStream>, buf: &mut [u8]| -> Option<()> {
        let mut got = 0;
        while got < buf.len() {
            match r.read(&mut buf[got..]) {
                Ok(0) => return None,
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !live(st, gen) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
        Some(())
    };
    if let Some(len) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        read_exact(r, &mut body)?;
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            read_exact(r, &mut chunk)?;
            if size == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(req)
}

fn respond(w: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let text = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let head = format!(
        "HTTP/1.1 {status} {text}\r\nX-elastic-product: Elasticsearch\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        bytes.len()
    );
    // One write: head and body in separate segments would meet Nagle and delayed ACKs.
    let mut out = head.into_bytes();
    out.extend_from_slice(&bytes);
    w.write_all(&out)?;
    w.flush()
}

fn es_error(status: u16, typ: &str, reason: &str) -> Value {
    json!({
        "error": {"root_cause": [{"type": typ, "reason": reason}], "type": typ, "reason": reason},
        "status": status
    })
}

fn serve(stream: TcpStream, st: &Arc<State>, gen: u64) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_nodelay(true);
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    while let Some(req) = read_request(&mut r, st, gen) {
        let (status, body, close) = handle(st, req);
        if close || !live(st, gen) {
            let _ = w.shutdown(std::net::Shutdown::Both);
            return;
        }
        if respond(&mut w, status, &body).is_err() {
            return;
        }
    }
    let _ = w.shutdown(std::net::Shutdown::Both);
}

fn handle(st: &State, mut req: Request) -> (u16, Value, bool) {
    if req
        .header("content-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
    {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&req.body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return (
                400,
                es_error(400, "parse_exception", "request body is not valid gzip"),
                false,
            );
        }
        req.body = out;
        st.inner.lock().expect("lock").gzip_requests += 1;
    }
    let mut g = st.inner.lock().expect("lock");
    g.requests.push(format!("{} {}", req.method, req.path));
    if let Some(a) = req.header("authorization") {
        g.auth.push(a.to_owned());
    }
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", [""]) => (200, info(), false),
        ("GET", ["_index_template", name]) => match g.templates.get(*name) {
            Some(t) => (
                200,
                json!({"index_templates": [{"name": name, "index_template": t}]}),
                false,
            ),
            None => (
                404,
                es_error(
                    404,
                    "resource_not_found_exception",
                    &format!("index template matching [{name}] not found"),
                ),
                false,
            ),
        },
        ("PUT", ["_index_template", name]) => match serde_json::from_slice::<Value>(&req.body) {
            Ok(v) if v.get("index_patterns").is_some() => {
                g.template_puts += 1;
                g.templates.insert((*name).to_owned(), v);
                (200, json!({"acknowledged": true}), false)
            }
            _ => (
                400,
                es_error(
                    400,
                    "x_content_parse_exception",
                    "index_patterns is missing",
                ),
                false,
            ),
        },
        ("GET", ["_ilm", "policy", name]) => match g.ilm.get(*name) {
            Some(p) => (
                200,
                json!({*name: {"version": g.ilm_puts, "modified_date": "2026-11-23T14:00:00.000Z", "policy": p,
                        "in_use_by": {"indices": [], "data_streams": [], "composable_templates": []}}}),
                false,
            ),
            None => (
                404,
                es_error(
                    404,
                    "resource_not_found_exception",
                    &format!("Lifecycle policy not found: {name}"),
                ),
                false,
            ),
        },
        ("PUT", ["_ilm", "policy", name]) => match serde_json::from_slice::<Value>(&req.body) {
            Ok(v) if v.get("policy").and_then(|p| p.get("phases")).is_some() => {
                g.ilm_puts += 1;
                g.ilm.insert((*name).to_owned(), v["policy"].clone());
                (200, json!({"acknowledged": true}), false)
            }
            _ => (
                400,
                es_error(
                    400,
                    "x_content_parse_exception",
                    "[put_lifecycle_request] policy.phases required",
                ),
                false,
            ),
        },
        ("POST" | "PUT", ["_bulk"]) => {
            g.bulk_requests += 1;
            let fault = g.faults.pop_front();
            match fault {
                Some(Fault::Reject429) => {
                    let reason = "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1048576, max_coordinating_and_primary_bytes=53687091]";
                    return (
                        429,
                        es_error(429, "es_rejected_execution_exception", reason),
                        false,
                    );
                }
                Some(Fault::Unavailable503) => {
                    let reason = "[sluice-flows][0] primary shard is not active Timeout: [1m]";
                    return (
                        503,
                        es_error(503, "unavailable_shards_exception", reason),
                        false,
                    );
                }
                Some(Fault::ResetBeforeIndexing) => return (0, Value::Null, true),
                _ => {}
            }
            let (status, body) = bulk(&mut g, &req.body, fault.as_ref());
            drop(g);
            match fault {
                Some(Fault::ResetAfterIndexing) => (0, Value::Null, true),
                Some(Fault::Slow(d)) => {
                    std::thread::sleep(d);
                    (status, body, false)
                }
                _ => (status, body, false),
            }
        }
        ("POST", [_index, "_pit"]) => {
            g.pit_n += 1;
            let id = format!(
                "46ToAwMDaWR4BXV1aWQxAgZub2RlXzEAAAAAAAAAAAEBYQ{}==",
                g.pit_n
            );
            let mut snap: Vec<(i64, u64, String)> = g
                .docs
                .iter()
                .map(|(k, d)| (d.ts_ms, d.seq, k.clone()))
                .collect();
            snap.sort();
            g.pits.insert(id.clone(), snap);
            (
                200,
                json!({"id": id, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}),
                false,
            )
        }
        ("DELETE", ["_pit"]) => {
            let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let id = v.get("id").and_then(Value::as_str).unwrap_or("");
            let freed = u32::from(g.pits.remove(id).is_some());
            (200, json!({"succeeded": true, "num_freed": freed}), false)
        }
        ("POST" | "GET", ["_search"]) => search(&g, &req.body),
        ("POST", [_index, "_refresh"]) => (
            200,
            json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}),
            false,
        ),
        _ => (
            404,
            es_error(
                404,
                "illegal_argument_exception",
                &format!("no handler for {} {}", req.method, req.path),
            ),
            false,
        ),
    }
}

fn info() -> Value {
    json!({
        "name": "fake-node-1",
        "cluster_name": "sluice-test",
        "cluster_uuid": "t8pQ8J9oQ2u1m3Z3sVh3fA",
        "version": {
            "number": "8.15.3",
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "f97532e680b555c3a05e73a74c28afb666923018",
            "build_date": "2024-10-09T22:08:00.328917561Z",
            "build_snapshot": false,
            "lucene_version": "9.11.1",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    })
}

fn get_path<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(dotted) {
        return Some(x);
    }
    let mut cur = v;
    for part in dotted.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn bulk(g: &mut Inner, body: &[u8], fault: Option<&Fault>) -> (u16, Value) {
    if !body.is_empty() && !body.ends_with(b"\n") {
        return (
            400,
            es_error(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            ),
        );
    }
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.len().is_multiple_of(2) {
        return (
            400,
            es_error(
                400,
                "illegal_argument_exception",
                "Malformed action/metadata line, expected a source line",
            ),
        );
    }
    let t0 = Instant::now();
    let mut items = Vec::new();
    let mut errors = false;
    for (n, pair) in lines.chunks(2).enumerate() {
        let Ok(action) = serde_json::from_slice::<Value>(pair[0]) else {
            return (
                400,
                es_error(
                    400,
                    "x_content_parse_exception",
                    "[1:1] Unexpected character in action line",
                ),
            );
        };
        let Some(meta) = action.get("create") else {
            return (
                400,
                es_error(
                    400,
                    "illegal_argument_exception",
                    "this stand-in takes create actions only",
                ),
            );
        };
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let id = meta
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let fail = |status: u16, typ: &str, reason: String| json!({"create": {"_index": index, "_id": id, "status": status, "error": {"type": typ, "reason": reason}}});
        let every = match fault {
            Some(Fault::Item429Every(k)) => Some((*k, 429)),
            Some(Fault::Item503Every(k)) => Some((*k, 503)),
            _ => None,
        };
        if let Some((k, status)) = every {
            if n.is_multiple_of(k.max(1)) {
                errors = true;
                items.push(if status == 429 {
                    fail(
                        429,
                        "es_rejected_execution_exception",
                        format!(
                            "rejected execution of primary operation [shard_detail=[{index}][0]]"
                        ),
                    )
                } else {
                    fail(
                        503,
                        "unavailable_shards_exception",
                        format!("[{index}][0] primary shard is not active"),
                    )
                });
                continue;
            }
        }
        let source: Value = match serde_json::from_slice(pair[1]) {
            Ok(v) => v,
            Err(e) => {
                errors = true;
                items.push(fail(
                    400,
                    "document_parsing_exception",
                    format!("[1:1] failed to parse: {e}"),
                ));
                continue;
            }
        };
        // The mapping: source.ip is `ip`, @timestamp is `date`.
        if let Some(ip) = get_path(&source, "source.ip") {
            let ok = ip
                .as_str()
                .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok());
            if !ok {
                errors = true;
                items.push(fail(
                    400,
                    "document_parsing_exception",
                    format!("[1:40] failed to parse field [source.ip] of type [ip] in document with id '{id}'. Preview of field's value: '{}'", ip.as_str().unwrap_or("?")),
                ));
                continue;
            }
        }
        let ts = get_path(&source, "@timestamp")
            .and_then(Value::as_str)
            .and_then(sluice_sink::timefmt::parse_rfc3339);
        let Some(ts) = ts else {
            errors = true;
            items.push(fail(400, "document_parsing_exception", format!("[1:15] failed to parse field [@timestamp] of type [date] in document with id '{id}'")));
            continue;
        };
        if g.docs.contains_key(&id) {
            errors = true;
            g.conflicts += 1;
            let mut e = fail(
                409,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists (current version [1])"),
            );
            e["create"]["error"]["index_uuid"] = json!("aAsFqTI0Tc2W0LCWgPNrOA");
            e["create"]["error"]["shard"] = json!("0");
            e["create"]["error"]["index"] = json!(index);
            items.push(e);
            continue;
        }
        let seq = g.arrival.len() as u64;
        g.docs.insert(
            id.clone(),
            Stored {
                index: index.clone(),
                source,
                ts_ms: ts.div_euclid(1_000_000),
                seq,
            },
        );
        *g.creates.entry(id.clone()).or_insert(0) += 1;
        g.arrival.push(id.clone());
        items.push(json!({"create": {
            "_index": index, "_id": id, "_version": 1, "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": seq, "_primary_term": 1, "status": 201
        }}));
    }
    (
        200,
        json!({"errors": errors, "took": t0.elapsed().as_millis() as u64, "items": items}),
    )
}

fn search(g: &Inner, body: &[u8]) -> (u16, Value, bool) {
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return (
            400,
            es_error(400, "parse_exception", "request body is required"),
            false,
        );
    };
    let Some(pit) = q
        .get("pit")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
    else {
        return (
            400,
            es_error(
                400,
                "action_request_validation_exception",
                "this stand-in searches a pit only",
            ),
            false,
        );
    };
    let Some(snap) = g.pits.get(pit) else {
        return (
            404,
            es_error(
                404,
                "search_context_missing_exception",
                "No search context found",
            ),
            false,
        );
    };
    let sort = q.get("sort").cloned().unwrap_or(Value::Null);
    let ok_sort = sort.get(0).is_some_and(|s| s.get("@timestamp").is_some())
        && sort.get(1).is_some_and(|s| s.get("_shard_doc").is_some());
    if !ok_sort {
        return (
            400,
            es_error(
                400,
                "illegal_argument_exception",
                "this stand-in sorts by @timestamp, _shard_doc",
            ),
            false,
        );
    }
    // Filters: a range on @timestamp in epoch_millis; nothing else is understood.
    let (mut gte, mut lt) = (i64::MIN, i64::MAX);
    let filters = q
        .get("query")
        .and_then(|x| x.get("bool"))
        .and_then(|b| b.get("filter"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for f in &filters {
        match f.get("range").and_then(|r| r.get("@timestamp")) {
            Some(r) => {
                gte = r.get("gte").and_then(Value::as_i64).unwrap_or(gte);
                lt = r.get("lt").and_then(Value::as_i64).unwrap_or(lt);
            }
            None => {
                return (
                    400,
                    es_error(
                        400,
                        "parsing_exception",
                        "this stand-in filters on a @timestamp range only",
                    ),
                    false,
                )
            }
        }
    }
    let after = q.get("search_after").and_then(Value::as_array).map(|a| {
        (
            a.first().and_then(Value::as_i64).unwrap_or(i64::MIN),
            a.get(1).and_then(Value::as_u64).unwrap_or(0),
        )
    });
    let size = q.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
    let hits: Vec<Value> = snap
        .iter()
        .filter(|(ts, _, _)| *ts >= gte && *ts < lt)
        .filter(|(ts, seq, _)| after.is_none_or(|(ats, aseq)| (*ts, *seq) > (ats, aseq)))
        .take(size)
        .filter_map(|(ts, seq, id)| {
            let d = g.docs.get(id)?;
            Some(json!({"_index": d.index, "_id": id, "_score": null, "_source": d.source, "sort": [ts, seq]}))
        })
        .collect();
    (
        200,
        json!({"pit_id": pit, "took": 1, "timed_out": false,
               "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
               "hits": {"max_score": null, "hits": hits}}),
        false,
    )
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "sluice-es-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A flow document shaped like the ECS encoder's output (about 700 bytes), numbered `n`.
pub fn flow_json(n: u64, ts_ns: i64) -> Vec<u8> {
    let mut stamp = Vec::new();
    sluice_sink::timefmt::write_rfc3339(&mut stamp, ts_ns);
    let stamp = String::from_utf8(stamp).unwrap_or_default();
    let a = (n % 250) as u8 + 1;
    let b = (n / 250 % 250) as u8;
    format!(
        concat!(
            r#"{{"@timestamp":"{ts}","event":{{"kind":"event","category":["network"],"action":"netflow_flow","type":["connection"],"start":"{ts}","end":"{ts}","duration":1500000000}},"#,
            r#""source":{{"ip":"10.{b}.0.{a}","port":{sport},"bytes":{bytes},"packets":{pkts}}},"destination":{{"ip":"192.0.2.{a}","port":443,"locality":"external"}},"#,
            r#""network":{{"transport":"tcp","iana_number":"6","bytes":{bytes},"packets":{pkts},"direction":"outbound","community_id":"1:LQU9qZlK+B5F3KDmev6m5PMibrg="}},"#,
            r#""observer":{{"ip":"198.51.100.1"}},"flow":{{"id":"f{n}","locality":"external"}},"netflow":{{"type":"ipfix","exporter":{{"address":"198.51.100.1:4739","source_id":0,"version":10}},"#,
            r#""octet_delta_count":{bytes},"packet_delta_count":{pkts},"protocol_identifier":6,"source_ipv4_address":"10.{b}.0.{a}","destination_ipv4_address":"192.0.2.{a}","tcp_control_bits":27,"ingress_interface":2,"egress_interface":3}},"#,
            r#""sluice":{{"seq":{n}}}}}"#
        ),
        ts = stamp,
        a = a,
        b = b,
        sport = 1024 + n % 60000,
        bytes = 1000 + n * 7 % 100000,
        pkts = 1 + n % 97,
        n = n
    )
    .into_bytes()
}

/// A deterministic id for document `n` of test `salt`.
pub fn doc_id(salt: u64, n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&salt.to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

/// The `sluice.seq` of a stored document.
pub fn seq_of(v: &Value) -> u64 {
    v.get("sluice")
        .and_then(|s| s.get("seq"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX)
}

/// CPU time (user + system) of this process's threads whose name starts with `prefix`, plus
/// the calling thread, from /proc (clock ticks of 10 ms).
pub fn thread_cpu_seconds(prefix: &str) -> f64 {
    let me = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let mut ticks = stat_ticks(&me);
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.starts_with(prefix) {
                ticks +=
                    stat_ticks(&std::fs::read_to_string(e.path().join("stat")).unwrap_or_default());
            }
        }
    }
    ticks as f64 / 100.0
}

fn stat_ticks(stat: &str) -> u64 {
    // Fields after the parenthesised name: state is field 3; utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// A minimal template body in the shape of the generated `ops/elasticsearch` one.
pub fn template() -> Value {
    json!({
        "template": {
            "settings": {"index": {"number_of_shards": 1, "codec": "best_compression"}},
            "mappings": {
                "dynamic": true,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}, "bytes": {"type": "long"}}},
                    "destination": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"},
                                                   "geo": {"properties": {"location": {"type": "geo_point"}}}}},
                    "network": {"properties": {"transport": {"type": "keyword"}, "bytes": {"type": "long"}}},
                    "sluice": {"properties": {"seq": {"type": "long"}}}
                }
            }
        }
    })
}

/// Test settings: short timers, files under `dir`.
pub fn config(url: &str, dir: &TempDir) -> sluice_sink::es::EsConfig {
    sluice_sink::es::EsConfig {
        urls: vec![url.to_owned()],
        batch_docs: 500,
        batch_bytes: 1 << 20,
        flush_interval: Duration::from_millis(50),
        max_in_flight: 4,
        queue_batches: 4,
        request_timeout: Duration::from_secs(5),
        retry_initial_delay: Duration::from_millis(20),
        retry_max_delay: Duration::from_millis(500),
        retry_max_time: Duration::from_secs(5),
        spool_dir: dir.0.join("spool"),
        dead_letter: dir.0.join("dead-letter.ndjson"),
        template: Some(template()),
        retention: Some(Duration::from_secs(7 * 86_400)),
        ..sluice_sink::es::EsConfig::default()
    }
}

/// A small document (about 110 bytes) numbered `n`, for tests that move many documents
/// through an unoptimised build.
pub fn small_json(n: u64, ts_ns: i64) -> Vec<u8> {
    let mut stamp = Vec::new();
    sluice_sink::timefmt::write_rfc3339(&mut stamp, ts_ns);
    let stamp = String::from_utf8(stamp).unwrap_or_default();
    format!(
        r#"{{"@timestamp":"{stamp}","source":{{"ip":"10.0.{}.{}"}},"sluice":{{"seq":{n}}}}}"#,
        n / 250 % 250,
        n % 250
    )
    .into_bytes()
}

/// Submits documents `range` (one per millisecond from `t0`) in calls of `chunk`.
pub fn submit_range(
    sink: &sluice_sink::es::EsSink,
    salt: u64,
    range: std::ops::Range<u64>,
    t0: i64,
    chunk: usize,
) {
    submit_range_with(sink, salt, range, t0, chunk, flow_json);
}

/// [`submit_range`] with another document maker.
pub fn submit_range_with(
    sink: &sluice_sink::es::EsSink,
    salt: u64,
    range: std::ops::Range<u64>,
    t0: i64,
    chunk: usize,
    make: fn(u64, i64) -> Vec<u8>,
) {
    let docs: Vec<(u64, i64, Vec<u8>)> = range
        .map(|n| {
            let ts = t0 + n as i64 * 1_000_000;
            (n, ts, make(n, ts))
        })
        .collect();
    for part in docs.chunks(chunk) {
        let batch: Vec<sluice_sink::es::Doc<'_>> = part
            .iter()
            .map(|(n, ts, j)| sluice_sink::es::Doc {
                id: doc_id(salt, *n),
                timestamp_ns: *ts,
                json: j,
            })
            .collect();
        sink.submit(&batch).expect("submit accepted everything");
    }
}
