//! `top --source es --by interface` against osmem-server (see `es_opensearch.rs`), with the
//! generated index template: rows carry the texts of the most recent flow that had a name
//! or description for the interface, on either end, as the local store picks them (a
//! renamed interface shows its new name, a later flow without texts changes nothing, equal
//! times go to the greater name); interfaces nobody named stay unnamed. Fails, never skips,
//! without osmem-server.

mod es_util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use es_util::osmem::start_osmem;
use es_util::{config, doc_id, TempDir, T2026};
use serde_json::{json, Value};
use sluice_sink::es::{top, Doc, EsSink, EsTopQuery, PairStrategy};
use sluice_sink::top::{By, IfNames, Key, Order};

const MS: i64 = 1_000_000;

/// One end of a flow: ifIndex, name, description.
type End = (u32, Option<&'static str>, Option<&'static str>);

fn interface((id, name, alias): End) -> Value {
    let mut v = json!({"id": id.to_string()});
    if let Some(n) = name {
        v["name"] = json!(n);
    }
    if let Some(a) = alias {
        v["alias"] = json!(a);
    }
    json!({ "interface": v })
}

/// A flow document of exporter 198.51.100.1 at `ts`, `bytes` from `input` to `output`.
fn flow(ts: i64, bytes: u64, input: End, output: End) -> Vec<u8> {
    let mut stamp = Vec::new();
    sluice_sink::timefmt::write_rfc3339(&mut stamp, ts);
    let doc = json!({
        "@timestamp": String::from_utf8_lossy(&stamp),
        "network": {"bytes": bytes, "packets": 1},
        "observer": {
            "ip": "198.51.100.1",
            "ingress": interface(input),
            "egress": interface(output),
        },
    });
    serde_json::to_vec(&doc).expect("json")
}

/// The flows of the tests, shipped to `cfg`'s cluster.
fn ship_flows(cfg: &sluice_sink::es::EsConfig) {
    let docs = [
        // 1 is named, then renamed (seen on the egress end); a later flow without texts.
        flow(
            T2026,
            1000,
            (1, Some("ge-0/0/1"), Some("uplink")),
            (3, None, None),
        ),
        flow(
            T2026 + MS,
            900,
            (3, None, None),
            (1, Some("ge-0/0/1.new"), None),
        ),
        flow(T2026 + 2 * MS, 800, (1, None, None), (3, None, None)),
        // Two names in the same millisecond: the greater one.
        flow(T2026 + 3 * MS, 700, (4, Some("aa"), None), (3, None, None)),
        flow(T2026 + 3 * MS, 600, (4, Some("zz"), None), (3, None, None)),
        // A description only.
        flow(
            T2026 + 4 * MS,
            500,
            (5, None, Some("lab, rack 2")),
            (3, None, None),
        ),
    ];
    let sink = EsSink::start(cfg.clone()).expect("start");
    let batch: Vec<Doc<'_>> = docs
        .iter()
        .enumerate()
        .map(|(n, json)| Doc {
            id: doc_id(11, n as u64),
            timestamp_ns: T2026,
            json,
        })
        .collect();
    sink.submit(&batch).expect("submit");
    let stats = sink.shutdown(Duration::from_secs(60));
    assert_eq!(stats.docs_shipped, docs.len() as u64, "{stats:#?}");
}

fn cfg_with_template(url: &str, dir: &TempDir) -> sluice_sink::es::EsConfig {
    let template: Value =
        serde_json::from_str(&sluice_sink::schema::index_template()).expect("template");
    sluice_sink::es::EsConfig {
        template: Some(template),
        ..config(url, dir)
    }
}

fn query() -> EsTopQuery {
    EsTopQuery {
        from_ns: T2026 - 60_000 * MS,
        to_ns: T2026 + 60_000 * MS,
        query: None,
        by: By::Interface,
        order: Order::Bytes,
        n: 10,
        pairs: PairStrategy::Auto,
    }
}

/// `top` once the shipped documents are searchable (after a refresh): its rows as (key,
/// names).
fn top_rows(cfg: &sluice_sink::es::EsConfig, rows: usize) -> Vec<(Key, IfNames)> {
    let mut got = Vec::new();
    for _ in 0..50 {
        got = top(cfg, &query()).expect("top").rows;
        if got.len() == rows {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    got.into_iter().map(|r| (r.key, r.names)).collect()
}

fn key(i: u32) -> Key {
    Key::Interface("198.51.100.1".parse().expect("ip"), i)
}

#[test]
fn es_interface_rows_carry_the_latest_texts() {
    let os = start_osmem();
    let dir = TempDir::new("es-top");
    let cfg = cfg_with_template(&os.url, &dir);
    ship_flows(&cfg);
    let names = |name: Option<&str>, description: Option<&str>| IfNames {
        name: name.map(Box::from),
        description: description.map(Box::from),
    };
    let want = vec![
        (key(3), IfNames::default()),
        (key(1), names(Some("ge-0/0/1.new"), None)),
        (key(4), names(Some("zz"), None)),
        (key(5), names(None, Some("lab, rack 2"))),
    ];
    assert_eq!(top_rows(&cfg, want.len()), want);
}

/// A server that refuses the names search (HTTP 400, as one without `top_hits` would) still
/// gives the ranking, rows without names, and no error: osmem-server behind a proxy that
/// answers every search asking for `top_hits` with Elasticsearch's 400 error shape.
#[test]
fn es_interface_rows_without_names_when_the_names_search_is_refused() {
    let os = start_osmem();
    let dir = TempDir::new("es-top-400");
    ship_flows(&cfg_with_template(&os.url, &dir));
    let proxy = RefusingProxy::start(&os.url, b"top_hits");
    let cfg = cfg_with_template(&proxy.url, &dir);
    let want: Vec<(Key, IfNames)> = [3, 1, 4, 5]
        .into_iter()
        .map(|i| (key(i), IfNames::default()))
        .collect();
    assert_eq!(top_rows(&cfg, want.len()), want);
    assert!(
        proxy.refused.load(Ordering::SeqCst) > 0,
        "the names search was never made"
    );
}

/// An HTTP/1.1 proxy to `upstream` that answers requests whose body contains `needle` with
/// HTTP 400 and forwards the rest (one upstream connection per request, closed after it).
struct RefusingProxy {
    url: String,
    refused: Arc<AtomicUsize>,
}

impl RefusingProxy {
    fn start(upstream: &str, needle: &'static [u8]) -> RefusingProxy {
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let refused = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&refused);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, count) = (up.clone(), Arc::clone(&count));
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, needle, &count);
                });
            }
        });
        RefusingProxy { url, refused }
    }
}

/// One client connection: request after request until it closes.
fn serve(
    conn: TcpStream,
    upstream: &str,
    needle: &[u8],
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let end = line == b"\r\n";
            // Each forwarded request gets its own upstream connection.
            if !line.to_ascii_lowercase().starts_with(b"connection:") {
                head.extend_from_slice(&line);
            }
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        if body.windows(needle.len()).any(|w| w == needle) {
            refused.fetch_add(1, Ordering::SeqCst);
            let answer = br#"{"error":{"root_cause":[{"type":"parsing_exception","reason":"Unknown aggregation type [top_hits]"}],"type":"parsing_exception","reason":"Unknown aggregation type [top_hits]"},"status":400}"#;
            write!(
                conn,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            )?;
            conn.write_all(answer)?;
            continue;
        }
        let mut up = TcpStream::connect(upstream)?;
        let end = head.len() - 2;
        up.write_all(&head[..end])?;
        up.write_all(b"connection: close\r\n\r\n")?;
        up.write_all(&body)?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        conn.write_all(&answer)?;
        // The upstream's answer said `connection: close`: so does this connection.
        return Ok(());
    }
}
