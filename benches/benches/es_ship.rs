//! The collector's two sinks side by side, per CPU-second of Sluice's own threads, on the same
//! records (workload "captures-zipf", `sluice_benches::FlowWorkload`) in one run:
//!
//! - **Elasticsearch**: `sluice_ingest::ship::Shipper`, exactly as the store thread drives it
//!   (flow view, enrichment with MaxMind's test databases, ECS encoding, document id, then the
//!   sink: `_bulk` batches, gzip, HTTP) into a server on 127.0.0.1 that only counts: it reads
//!   each request, inflates the body to count its lines (so that it can answer one item per
//!   document, as the sink requires) and answers as Elasticsearch does with `filter_path`
//!   (`{"errors":false,"items":[{"create":{"status":201}},...]}`). Sluice's CPU is the
//!   calling thread's plus every `es-*` thread's (from /proc: schedstat, in ns); the
//!   server's threads are not counted.
//! - **local store**: `StoreWriter::append` of the same records and a final flush (columnar
//!   blocks, zstd, write), on the calling thread.
//!
//! Also printed: flow view + enrichment alone over the same records (part of the shipper's
//! cost, not of encode + gzip), so that the encode + ship part can be read off.
//!
//! This is a measurement printed as a table, not a criterion benchmark: one run ships
//! `SLUICE_SHIP_DOCS` documents (default 300,000) per gzip level (`SLUICE_SHIP_LEVELS`,
//! default `1,0`) and repeats `SLUICE_SHIP_RUNS` times (default 3), with
//! `SLUICE_SHIP_IN_FLIGHT` requests in flight (default: the sink's); the best run of each is
//! reported (the machine is shared). Run:
//! `cargo bench -p sluice-benches --bench es_ship`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_benches::{shared_dir, FlowWorkload};
use sluice_enrich::{EnrichConfig, Enriched, Enricher};
use sluice_ingest::ship::Shipper;
use sluice_sink::es::EsConfig;
use sluice_sink::store::{StoreConfig, StoreWriter};

/// Records per receive batch, as the store thread takes them.
const CHUNK: usize = 4096;

/// What the counting server saw.
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    body_bytes: AtomicU64,
    inflated_bytes: AtomicU64,
    docs: AtomicU64,
}

struct CountingServer {
    port: u16,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl CountingServer {
    fn start() -> CountingServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        std::thread::Builder::new()
            .name("count-accept".into())
            .spawn(move || {
                for conn in l.incoming() {
                    if s.load(Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let c = c.clone();
                    let _ = std::thread::Builder::new()
                        .name("count-conn".into())
                        .spawn(move || serve(conn, &c));
                }
            })
            .expect("spawn");
        CountingServer { port, counts, stop }
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, c: &Counts) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::with_capacity(1 << 16, conn);
    let mut body = Vec::new();
    let mut inflated = Vec::new();
    let mut reply = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.trim_end().to_owned();
        let (mut len, mut gzip) = (0usize, false);
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("content-encoding") {
                    gzip = v.eq_ignore_ascii_case("gzip");
                }
            }
        }
        body.resize(len, 0);
        if r.read_exact(&mut body).is_err() {
            return;
        }
        reply.clear();
        if request.starts_with("POST /_bulk") {
            let text: &[u8] = if gzip {
                inflated.clear();
                if flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut inflated)
                    .is_err()
                {
                    return;
                }
                &inflated
            } else {
                &body
            };
            let docs = text.iter().filter(|&&b| b == b'\n').count() / 2;
            reply.extend_from_slice(b"{\"errors\":false,\"items\":[");
            for i in 0..docs {
                if i > 0 {
                    reply.push(b',');
                }
                reply.extend_from_slice(b"{\"create\":{\"status\":201}}");
            }
            reply.extend_from_slice(b"]}");
            c.requests.fetch_add(1, Relaxed);
            c.body_bytes.fetch_add(len as u64, Relaxed);
            c.inflated_bytes.fetch_add(text.len() as u64, Relaxed);
            c.docs.fetch_add(docs as u64, Relaxed);
        } else if request.starts_with("GET / ") {
            reply.extend_from_slice(
                br#"{"name":"count","cluster_name":"count","version":{"number":"8.15.3","build_flavor":"default"},"tagline":"You Know, for Search"}"#,
            );
        } else {
            reply.extend_from_slice(b"{}");
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(&reply).is_err() {
            return;
        }
    }
}

/// On-CPU ns of a thread (schedstat's first field).
fn schedstat_ns(path: std::path::PathBuf) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// On-CPU ns of the calling thread.
fn thread_ns() -> u64 {
    schedstat_ns("/proc/thread-self/schedstat".into())
}

/// On-CPU ns of the calling thread plus this process's threads whose name starts with
/// `prefix`.
fn cpu_ns(prefix: &str) -> u64 {
    let mut ns = thread_ns();
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.starts_with(prefix) {
                ns += schedstat_ns(e.path().join("schedstat"));
            }
        }
    }
    ns
}

fn enricher() -> Enricher {
    let geo = shared_dir().join("geoip");
    Enricher::new(&EnrichConfig {
        geoip_city: Some(geo.join("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geo.join("GeoLite2-ASN-Test.mmdb")),
        ..EnrichConfig::default()
    })
    .expect("test databases")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct EsRun {
    cpu_s: f64,
    shipper_s: f64,
    wall_s: f64,
    body: u64,
    inflated: u64,
    requests: u64,
    /// Documents that went through the disk spool (the memory queue was full).
    spooled: u64,
}

fn run_es(w: &FlowWorkload, level: u32, dir: &std::path::Path) -> EsRun {
    let server = CountingServer::start();
    let _ = std::fs::remove_dir_all(dir);
    let cfg = EsConfig {
        urls: vec![format!("http://127.0.0.1:{}", server.port)],
        gzip_level: level,
        install_template: false,
        template: None,
        retention: None,
        spool_dir: dir.join("spool"),
        dead_letter: dir.join("dead-letter.ndjson"),
        max_in_flight: env_or("SLUICE_SHIP_IN_FLIGHT", EsConfig::default().max_in_flight),
        ..EsConfig::default()
    };
    let mut shipper = Shipper::start(cfg).expect("shipper");
    // The store thread enriches each record once and hands the result to the shipper; the
    // shipper's figures below include that enrichment, as they did when the shipper did it.
    let en = enricher();
    let mut cache = en.cache();
    let mut e = Enriched::default();
    // Setup (GET /) done and the threads idle before measuring.
    std::thread::sleep(Duration::from_millis(300));
    let n = w.len();
    let t = Instant::now();
    let cpu0 = cpu_ns("es-");
    let main0 = thread_ns();
    let mut at = 0;
    while at < n {
        let end = (at + CHUNK).min(n);
        w.for_each(at..end, |r, i| {
            let flow = r.flow();
            en.enrich(&mut cache, r, &flow, None, &mut e);
            shipper.push(r, &flow, &e, i)
        });
        at = end;
    }
    let shipper_s = (thread_ns() - main0) as f64 / 1e9;
    // The last partial batch goes at the flush interval (1 s): wait for every document.
    let deadline = Instant::now() + Duration::from_secs(600);
    while server.counts.docs.load(Relaxed) < n as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu_s = (cpu_ns("es-") - cpu0) as f64 / 1e9;
    let wall_s = t.elapsed().as_secs_f64();
    let stats = shipper.shutdown(Duration::from_secs(10));
    assert_eq!(
        server.counts.docs.load(Relaxed),
        n as u64,
        "every document reached the server"
    );
    assert_eq!(stats.docs_shipped, n as u64);
    EsRun {
        cpu_s,
        shipper_s,
        wall_s,
        body: server.counts.body_bytes.load(Relaxed),
        inflated: server.counts.inflated_bytes.load(Relaxed),
        requests: server.counts.requests.load(Relaxed),
        spooled: stats.docs_spooled,
    }
}

fn run_store(w: &FlowWorkload, dir: &std::path::Path) -> (f64, u64) {
    let _ = std::fs::remove_dir_all(dir);
    let mut s = StoreWriter::open(StoreConfig {
        dir: dir.to_path_buf(),
        ..StoreConfig::default()
    })
    .expect("store");
    let t0 = thread_ns();
    let now = 1_800_000_000_000_000_000;
    w.for_each(0..w.len(), |r, _| s.append(r, now).expect("append"));
    s.flush().expect("flush");
    let cpu = (thread_ns() - t0) as f64 / 1e9;
    let bytes = s.stats().bytes_on_disk;
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
    (cpu, bytes)
}

fn run_enrich(w: &FlowWorkload) -> f64 {
    let e = enricher();
    let mut cache = e.cache();
    let mut out = Enriched::default();
    let t0 = thread_ns();
    w.for_each(0..w.len(), |r, _| {
        let f = r.flow();
        e.enrich(&mut cache, r, &f, None, &mut out);
        std::hint::black_box(&out);
    });
    (thread_ns() - t0) as f64 / 1e9
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let docs: usize = env_or("SLUICE_SHIP_DOCS", 300_000);
    let runs: usize = env_or("SLUICE_SHIP_RUNS", 3);
    let levels: Vec<u32> = std::env::var("SLUICE_SHIP_LEVELS")
        .unwrap_or_else(|_| "1,0".into())
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let w = FlowWorkload::new(docs);
    let dir = std::env::temp_dir().join(format!("sluice-es-ship-{}", std::process::id()));
    eprintln!(
        "workload captures-zipf: {docs} records; {runs} runs; gzip levels {levels:?}; flate2 backend: {}",
        if cfg!(feature = "zlib-ng") { "zlib-ng" } else { "default" }
    );
    let mut best_es: Vec<Option<EsRun>> = levels.iter().map(|_| None).collect();
    let (mut best_store, mut store_bytes, mut best_enrich) = (f64::MAX, 0, f64::MAX);
    for run in 0..runs {
        for (k, &level) in levels.iter().enumerate() {
            let r = run_es(&w, level, &dir.join("es"));
            eprintln!(
                "run {run} gzip {level}: {:.0} docs per CPU-second (CPU {:.2} s, of which shipper thread {:.2} s; wall {:.2} s); {} requests, {:.0} B per document inflated, {:.0} B sent, ratio {:.1}; {} through the spool",
                docs as f64 / r.cpu_s,
                r.cpu_s,
                r.shipper_s,
                r.wall_s,
                r.requests,
                r.inflated as f64 / docs as f64,
                r.body as f64 / docs as f64,
                r.inflated as f64 / r.body as f64,
                r.spooled
            );
            if best_es[k].as_ref().is_none_or(|b| r.cpu_s < b.cpu_s) {
                best_es[k] = Some(r);
            }
        }
        let (s, bytes) = run_store(&w, &dir.join("store"));
        eprintln!(
            "run {run} local store: {:.0} records per CPU-second ({bytes} bytes)",
            docs as f64 / s
        );
        if s < best_store {
            best_store = s;
            store_bytes = bytes;
        }
        best_enrich = best_enrich.min(run_enrich(&w));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let per = |s: f64| docs as f64 / s;
    println!();
    println!("| path | records per CPU-second | CPU per record | note |");
    println!("|---|---|---|---|");
    for (k, &level) in levels.iter().enumerate() {
        let Some(r) = &best_es[k] else { continue };
        let ship_only = r.cpu_s - best_enrich;
        println!(
            "| Elasticsearch, gzip level {level}: everything | {:.0} | {:.2} us | shipper thread {:.2} us + es-* threads {:.2} us; {:.0} B per document inflated, {:.1}x |",
            per(r.cpu_s),
            r.cpu_s / docs as f64 * 1e6,
            r.shipper_s / docs as f64 * 1e6,
            (r.cpu_s - r.shipper_s) / docs as f64 * 1e6,
            r.inflated as f64 / docs as f64,
            r.inflated as f64 / r.body.max(1) as f64
        );
        println!(
            "| Elasticsearch, gzip level {level}: encode + ship (without flow view and enrichment) | {:.0} | {:.2} us | |",
            per(ship_only),
            ship_only / docs as f64 * 1e6
        );
    }
    println!(
        "| flow view + enrichment alone | {:.0} | {:.2} us | |",
        per(best_enrich),
        best_enrich / docs as f64 * 1e6
    );
    println!(
        "| local store (append, blocks, zstd, write) | {:.0} | {:.2} us | {:.1} bytes per record |",
        per(best_store),
        best_store / docs as f64 * 1e6,
        store_bytes as f64 / docs as f64
    );
}
