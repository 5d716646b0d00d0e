//! `sluice run`: the live collector.
//!
//! Threads:
//! - one receive thread per worker (default: per core), each with its own SO_REUSEPORT socket
//!   per listener, its own [`Decoder`] (template cache) and its own batches. Decoding happens on
//!   the thread that received the datagram. Templates are published to a registry shared by
//!   all workers and saved to `templates.bin` (see `sluice_decode::shared`);
//! - the store thread: enriches each record once (with what its receive thread's decoder
//!   learned from options data, captured in the batch) for the store's enrichment columns and
//!   the Elasticsearch documents, writes batches to the local store, flushes every
//!   `flush_interval`, applies retention, saves the template registry, returns batches to
//!   their worker;
//! - the HTTP thread for `/metrics` and `/healthz`;
//! - one sender thread per `[[forward]]` target, fed copies of the accepted datagrams
//!   (`forward.rs`).
//!
//! When the store's queue is full, a receive thread waits for room at most [`STORE_WAIT`] (the
//! datagrams arriving meanwhile wait in its socket's buffer, and the CPU it would spend
//! receiving goes to the store thread), then drops the batch and counts the records in
//! `sluice_pipeline_dropped_records_total`. It never waits longer: under sustained overload
//! the excess is dropped by the kernel (`sluice_receive_kernel_drops_total`) or here, and
//! counted either way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use crossbeam_channel::{bounded, Receiver as ChanRx, SendTimeoutError, Sender as ChanTx};
use sluice_decode::{Datagram, Decoder, Limits, SharedTemplates};
use sluice_enrich::{CoreCache, Enriched, Enricher};
use sluice_sink::store::{StoreConfig, StoreWriter};

use crate::batch::Batch;
use crate::config::Config;
use crate::metrics::{count_up, Metrics};
use crate::udp::{ListenOptions, Receiver};

/// Records per batch before it is handed to the store.
const BATCH_RECORDS: usize = 4096;
/// How long a receive thread waits for room in the store's queue before it drops the batch:
/// shorter than what a socket buffer of the size `compare.sh` and the sysctl snippet allow
/// (64 MiB) holds at the loadgen's full rate (some tens of milliseconds of NetFlow v5). With a
/// small buffer the kernel drops during the wait instead, and counts it.
const STORE_WAIT: Duration = Duration::from_millis(20);
/// A partly filled batch is handed on after this long, which bounds the latency to the store.
const BATCH_MAX_AGE: Duration = Duration::from_millis(200);
/// Wake-ups that find fewer datagrams than this wait [`COALESCE_WAIT`] before polling again.
const COALESCE_BELOW: usize = 16;
const COALESCE_WAIT: Duration = Duration::from_micros(1000);
/// The wait for a steady stream when the socket buffers hold what arrives meanwhile many times
/// over. Each wake-up costs a context switch (about 10 us of CPU on this VM): at 50 k
/// datagrams/s per thread, 4 ms between drains is 250 wake-ups a second instead of 1,000 or
/// more. Records wait for their batch much longer than this anyway ([`BATCH_MAX_AGE`]).
const COALESCE_LONG_WAIT: Duration = Duration::from_micros(4000);
/// What a queued datagram costs the socket's receive buffer beyond its payload (the kernel's
/// buffer head and bookkeeping; about 0.7 KiB for a small UDP datagram), rounded up.
const QUEUED_OVERHEAD: usize = 1024;
/// Batches queued per worker before receive threads start dropping.
const QUEUE_PER_WORKER: usize = 64;

/// Log to stderr with a UTC timestamp.
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut ts = Vec::new();
        sluice_sink::timefmt::write_rfc3339(&mut ts, crate::run::now_ns());
        eprintln!("{} sluice: {}", String::from_utf8_lossy(&ts), format!($($arg)*));
    }};
}
pub(crate) use log;

/// Wall clock, ns since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The local store's settings from `[store]` (also used by `sluice ingest`).
pub fn store_config(cfg: &Config) -> StoreConfig {
    let s = &cfg.store;
    StoreConfig {
        dir: s.data_dir.join("flows"),
        partition_secs: s.partition.0.as_secs().max(60),
        max_age_secs: (!s.retention.0.is_zero()).then(|| s.retention.0.as_secs().max(1)),
        max_bytes: (s.max_size.0 > 0).then_some(s.max_size.0),
        zstd_level: s.zstd_level,
        ..StoreConfig::default()
    }
}

fn limits(cfg: &Config) -> Limits {
    let d = &cfg.decode;
    Limits {
        max_scopes: d.max_exporters,
        max_templates: d.max_templates_per_exporter,
        max_held_bytes: d.max_held_bytes_per_exporter.0 as usize,
        template_timeout_ns: (!d.template_timeout.0.is_zero())
            .then(|| d.template_timeout.0.as_nanos().min(i64::MAX as u128) as i64),
        ..Limits::default()
    }
}

/// The enricher for a `[enrich]` section; a database that cannot be loaded is an error that
/// names it.
pub fn enricher(cfg: &crate::config::Enrich) -> Result<Arc<sluice_enrich::Enricher>> {
    let c = cfg.to_enrich_config().map_err(|e| anyhow::anyhow!(e))?;
    Ok(Arc::new(
        sluice_enrich::Enricher::new(&c).context("loading enrichment (GeoIP databases)")?,
    ))
}

/// Settings the store thread re-reads on SIGHUP.
#[derive(Clone, Debug)]
struct Live {
    flush_interval: Duration,
    store: StoreConfig,
    /// `[store] enrich`: keep each record's enrichment in the store.
    keep_enrichment: bool,
}

/// Runs until SIGINT/SIGTERM.
pub fn run(cfg: Config, config_path: Option<PathBuf>) -> Result<()> {
    let data_dir = cfg.store.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let tpl_path = data_dir.join("templates.bin");
    let shared = match SharedTemplates::load(&tpl_path) {
        Ok(s) => {
            if !s.is_empty() {
                log!("loaded {} templates from {}", s.len(), tpl_path.display());
            }
            s
        }
        Err(e) => {
            log!("ignoring saved templates: {e}; they return with the exporters' next refresh");
            SharedTemplates::new()
        }
    };

    let metrics = Metrics::new();
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("signal handler")?;

    let workers = cfg.workers();
    // Bind every socket before starting anything, so a port in use fails start-up cleanly.
    let mut sockets: Vec<Vec<(usize, Receiver)>> = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut mine = Vec::new();
        for (li, l) in cfg.listeners.iter().enumerate() {
            if l.is_stream() {
                // TCP/TLS syslog: bound once below, served by its own threads.
                continue;
            }
            let opts = ListenOptions {
                addr: l.address,
                reuse_port: true,
                recv_buffer: cfg.receive.recv_buffer.0 as usize,
                batch: cfg.receive.batch,
                ..ListenOptions::default()
            };
            let rx = Receiver::bind(&opts)
                .with_context(|| format!("listener {} on {}", l.name, l.address))?;
            let granted = rx.granted_recv_buffer();
            metrics
                .recv_buffer
                .with_label_values(&[&l.name, &w.to_string()])
                .set(granted as i64);
            if w == 0 {
                log!(
                    "listener {} on {} ({} workers), receive buffer requested {} granted {}",
                    l.name,
                    rx.local_addr().map_or(l.address, |a| a),
                    workers,
                    cfg.receive.recv_buffer.0,
                    granted
                );
            }
            mine.push((li, rx));
        }
        sockets.push(mine);
    }
    let streams = crate::syslog_rx::bind_streams(&cfg)?;

    let (http_addr, http) = crate::http::serve(
        cfg.metrics.address,
        metrics.clone(),
        Arc::clone(&healthy),
        Arc::clone(&stop),
    )
    .with_context(|| format!("metrics endpoint on {}", cfg.metrics.address))?;
    log!("metrics and health on http://{http_addr}/metrics");

    let live = Arc::new(Mutex::new(Live {
        flush_interval: cfg.store.flush_interval.0,
        store: store_config(&cfg),
        keep_enrichment: cfg.store.enrich,
    }));
    let enricher = enricher(&cfg.enrich)?;
    let writer = if cfg.store.enabled {
        let mut w = StoreWriter::open(store_config(&cfg)).context("opening the local store")?;
        w.track_ages(Arc::clone(&metrics.record_ages));
        Some(w)
    } else {
        None
    };
    let shipper = if cfg.elasticsearch.enabled {
        let es = crate::ship::es_config(&cfg)?;
        log!(
            "shipping to Elasticsearch/OpenSearch at {} (index {}; gzip level {} by {})",
            es.urls.join(", "),
            es.data_stream.as_deref().unwrap_or(&es.index),
            es.gzip_level,
            es.gzip_library.effective(es.gzip_level)
        );
        Some(crate::ship::Shipper::start(es)?)
    } else {
        None
    };

    let names: Vec<String> = cfg.listeners.iter().map(|l| l.name.clone()).collect();
    let forwarders = crate::forward::Forwarders::start(&cfg.forwards, &names, &metrics)
        .context("starting forwarding")?;

    let (to_store, from_workers) = bounded::<Batch>(QUEUE_PER_WORKER * workers);
    let mut returns: Vec<ChanTx<Batch>> = Vec::new();
    let mut worker_threads = Vec::new();
    for (w, socks) in sockets.into_iter().enumerate() {
        let (ret_tx, ret_rx) = bounded::<Batch>(QUEUE_PER_WORKER + 4);
        returns.push(ret_tx);
        let ctx = WorkerCtx {
            id: w,
            names: cfg.listeners.iter().map(|l| l.name.clone()).collect(),
            allow: cfg.listeners.iter().map(|l| l.allow.clone()).collect(),
            protocols: cfg.listeners.iter().map(|l| l.protocol).collect(),
            sflow: {
                let mut d = sluice_decode::sflow::SflowDecoder::default();
                // Counter samples are stored and shipped as documents too (and are metrics).
                d.set_counter_records(true);
                d
            },
            syslog: crate::syslog_rx::UdpSyslog::new(&cfg),
            decoder: Decoder::with_shared(limits(&cfg), Arc::clone(&shared)),
            metrics: metrics.clone(),
            stop: Arc::clone(&stop),
            to_store: to_store.clone(),
            free: ret_rx,
            tee: forwarders.tee(),
        };
        worker_threads.push(
            std::thread::Builder::new()
                .name(format!("sluice-rx-{w}"))
                .spawn(move || worker(ctx, socks))?,
        );
    }
    let stream_threads = crate::syslog_rx::start_streams(streams, &to_store, &metrics, &stop)?;
    drop(to_store);

    let store_thread = {
        let metrics = metrics.clone();
        let live = Arc::clone(&live);
        let shared = Arc::clone(&shared);
        let tpl_path = tpl_path.clone();
        std::thread::Builder::new()
            .name("sluice-store".into())
            .spawn(move || {
                store_loop(
                    writer,
                    shipper,
                    enricher,
                    from_workers,
                    returns,
                    metrics,
                    live,
                    shared,
                    tpl_path,
                )
            })?
    };

    // Every series an alert or dashboard takes increase() of exists from the start, at 0: a
    // counter born at its first event (already above zero) hides that first burst.
    for l in &cfg.listeners {
        let n = [l.name.as_str()];
        for family in [
            &metrics.packets,
            &metrics.bytes,
            &metrics.truncated,
            &metrics.kernel_drops,
            &metrics.recv_errors,
            &metrics.denied,
        ] {
            family.with_label_values(&n);
        }
    }
    for reason in [
        "truncated",
        "unsupported_version",
        "invalid_length",
        "invalid_template",
        "template_missing",
        "limit",
    ] {
        metrics.decode_errors.with_label_values(&[reason]);
    }
    for reason in ["io", "disk_full", "corrupt", "compression"] {
        metrics.store_errors.with_label_values(&[reason]);
    }
    metrics.up.set(1);
    healthy.store(true, Ordering::Relaxed);
    log!("running; data in {}", data_dir.display());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if reload.swap(false, Ordering::Relaxed) {
            apply_reload(&cfg, config_path.as_deref(), &live);
        }
    }
    log!("stopping: flushing batches and the store");
    healthy.store(false, Ordering::Relaxed);
    for t in worker_threads.into_iter().chain(stream_threads) {
        let _ = t.join();
    }
    forwarders.join();
    match store_thread.join() {
        Ok(Ok(n)) => log!("stopped; {n} records stored in this run"),
        Ok(Err(e)) => log!("store thread ended with an error: {e:#}"),
        Err(_) => log!("store thread panicked"),
    }
    if let Err(e) = shared.save(&tpl_path) {
        log!("saving templates to {}: {e}", tpl_path.display());
    }
    metrics.up.set(0);
    let _ = http.join();
    Ok(())
}

/// SIGHUP: re-reads the file; what can change without dropping sockets is applied (store
/// retention, size limit, flush interval), the rest is reported as needing a restart.
fn apply_reload(old: &Config, path: Option<&std::path::Path>, live: &Mutex<Live>) {
    let Some(path) = path else {
        log!("SIGHUP: running on embedded defaults, nothing to reload");
        return;
    };
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            log!("SIGHUP: keeping the running configuration: {e}");
            return;
        }
    };
    let mut g = match live.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.flush_interval = new.store.flush_interval.0;
    let sc = store_config(&new);
    g.store.max_age_secs = sc.max_age_secs;
    g.store.max_bytes = sc.max_bytes;
    g.keep_enrichment = new.store.enrich;
    log!(
        "SIGHUP: reloaded {}: retention {:?}, max size {:?}, flush interval {:?}, keep enrichment {}",
        path.display(),
        g.store.max_age_secs,
        g.store.max_bytes,
        g.flush_interval,
        g.keep_enrichment
    );
    if new.listeners != old.listeners
        || new.receive != old.receive
        || new.decode != old.decode
        || new.metrics != old.metrics
        || new.store.data_dir != old.store.data_dir
    {
        log!("SIGHUP: listener, receive, decode, metrics and data_dir changes take effect after a restart");
    }
}

struct WorkerCtx {
    id: usize,
    names: Vec<String>,
    allow: Vec<Vec<crate::config::Cidr>>,
    protocols: Vec<crate::config::Protocol>,
    sflow: sluice_decode::sflow::SflowDecoder,
    syslog: crate::syslog_rx::UdpSyslog,
    decoder: Decoder,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
    to_store: ChanTx<Batch>,
    free: ChanRx<Batch>,
    /// Copies of accepted datagrams for `[[forward]]` targets.
    tee: crate::forward::Tee,
}

/// Counters a worker keeps locally and adds to the metric families about once a second.
#[derive(Default)]
struct Cells {
    packets: Vec<u64>,
    bytes: Vec<u64>,
    truncated: Vec<u64>,
    denied: Vec<u64>,
    dropped: u64,
}

/// Whether waiting `wait` before the next read is safe for a socket buffer of `buffer` bytes,
/// given that `queued` bytes (payload and kernel overhead) arrived over `window`: the wait
/// must fill at most a quarter of the buffer at that rate.
fn coalescing_fits(queued: usize, window: Duration, wait: Duration, buffer: usize) -> bool {
    let window_ns = window.as_nanos().max(1);
    let expected = (queued as u128).saturating_mul(wait.as_nanos()) / window_ns;
    expected.saturating_mul(4) <= buffer as u128
}

fn worker(mut ctx: WorkerCtx, mut socks: Vec<(usize, Receiver)>) {
    let nl = ctx.names.len();
    let mut cells = Cells {
        packets: vec![0; nl],
        bytes: vec![0; nl],
        truncated: vec![0; nl],
        denied: vec![0; nl],
        dropped: 0,
    };
    let mut last_drops: Vec<u64> = vec![0; socks.len()];
    let mut last_recv_errors: Vec<u64> = vec![0; socks.len()];
    let mut last_errors: HashMap<&'static str, u64> = HashMap::new();
    let mut last_sflow = (0u64, 0u64);
    let mut last_sflow_errors: HashMap<&'static str, u64> = HashMap::new();
    let mut last_stats = sluice_decode::DecodeStats::default();
    let mut batch = Batch::new(ctx.id, BATCH_RECORDS);
    let mut batch_started = Instant::now();
    let mut last_publish = Instant::now();
    let mut last_meta = Instant::now();
    let mut last_expire = Instant::now();
    // The smallest receive buffer among the worker's sockets: what a coalescing wait must
    // not come near filling.
    let min_granted = socks
        .iter()
        .map(|(_, r)| r.granted_recv_buffer())
        .min()
        .unwrap_or(0);
    let mut last_drain_end = Instant::now();
    let mut pollfds: Vec<libc::pollfd> = socks
        .iter()
        .map(|(_, r)| libc::pollfd {
            fd: r.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let stopping = ctx.stop.load(Ordering::Relaxed);
        if !stopping {
            for p in pollfds.iter_mut() {
                p.revents = 0;
            }
            // SAFETY: `pollfds` is a valid, initialised array of `pollfd` of the given length,
            // alive for the whole call.
            let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 50) };
            let mut got_this_wake = 0usize;
            let bytes_before: u64 = cells.bytes.iter().sum();
            // Some socket still had data when the drain stopped at its bounds.
            let mut bounded = false;
            if n > 0 {
                for (i, (li, rx)) in socks.iter_mut().enumerate() {
                    if pollfds[i].revents == 0 {
                        continue;
                    }
                    // Drain what is there now, a bounded number of batches per wake-up so
                    // that one busy socket cannot starve the others.
                    let mut emptied = false;
                    for _ in 0..16 {
                        let got = match rx.recv(Duration::ZERO) {
                            Ok(n) => n,
                            Err(e) => {
                                log!(
                                    "worker {}: receive error on {}: {e}",
                                    ctx.id,
                                    ctx.names[*li]
                                );
                                0
                            }
                        };
                        if got == 0 {
                            emptied = true;
                            break;
                        }
                        got_this_wake += got;
                        let recv_ns = now_ns();
                        let allow = &ctx.allow[*li];
                        for dg in rx.datagrams() {
                            cells.packets[*li] += 1;
                            cells.bytes[*li] += dg.len as u64;
                            if !allow.is_empty() && !allow.iter().any(|c| c.contains(dg.src.ip())) {
                                cells.denied[*li] += 1;
                                continue;
                            }
                            if !ctx.tee.is_empty() {
                                ctx.tee.push(*li, dg.src, dg.payload, dg.truncated);
                            }
                            if dg.truncated {
                                cells.truncated[*li] += 1;
                                continue;
                            }
                            let d = Datagram {
                                src: dg.src,
                                receive_time_ns: recv_ns,
                                payload: dg.payload,
                                tag: 0,
                            };
                            let b = &mut batch;
                            match ctx.protocols[*li] {
                                crate::config::Protocol::Netflow => {
                                    let _ = ctx.decoder.decode_with_tables(&d, |r, t| {
                                        if !r.template.options {
                                            b.push(r, t);
                                        }
                                    });
                                }
                                crate::config::Protocol::Sflow => {
                                    let m = &ctx.metrics;
                                    let _ = ctx.sflow.decode(
                                        &d,
                                        |r| b.push(r, None),
                                        |cs| m.sflow_counters(cs),
                                    );
                                }
                                crate::config::Protocol::Syslog => {
                                    ctx.syslog.datagram(*li, d.payload, d.src, recv_ns, |r| {
                                        b.push(r, None)
                                    });
                                }
                            }
                        }
                        if batch.len() >= BATCH_RECORDS {
                            break;
                        }
                        // A partial batch means the socket was empty when it was read: leave
                        // the rest for the next wake-up instead of polling it again now.
                        if !rx.last_batch_full() {
                            emptied = true;
                            break;
                        }
                    }
                    bounded |= !emptied;
                }
            }
            // The sockets' receive errors and kernel drop counts, once per wake-up (an idle
            // thread still wakes every 50 ms): one getsockopt each for the drops.
            for (i, (li, rx)) in socks.iter_mut().enumerate() {
                let listener = [ctx.names[*li].as_str()];
                let m = &ctx.metrics;
                count_up(
                    &m.recv_errors,
                    &listener,
                    &mut last_recv_errors[i],
                    rx.recv_errors(),
                );
                if let Some(total) = rx.kernel_drops() {
                    count_up(&m.kernel_drops, &listener, &mut last_drops[i], total);
                }
            }
            // Coalescing: a wake-up that found only a few datagrams means the thread is
            // being woken per datagram or so, and the context switches cost more than the
            // work. Waiting [`COALESCE_WAIT`] lets datagrams gather in the (large) socket
            // buffer so the next recvmmsg takes a full batch. Adds at most that much
            // latency; at idle the poll above sleeps instead.
            //
            // A steady stream is coalesced too, whenever the socket buffers can hold what
            // arrives during the wait many times over (judged from the rate this wake-up saw):
            // otherwise the thread would sleep in `poll` after every drain and be woken by the
            // very next datagram, two context switches per drain instead of one.
            ctx.tee.flush();
            let drained_at = Instant::now();
            if got_this_wake > 0 && !bounded {
                let window = drained_at.saturating_duration_since(last_drain_end);
                let bytes_this_wake = cells.bytes.iter().sum::<u64>().saturating_sub(bytes_before);
                let queued = bytes_this_wake as usize + got_this_wake * QUEUED_OVERHEAD;
                let wait = [COALESCE_LONG_WAIT, COALESCE_WAIT]
                    .into_iter()
                    .find(|&w| coalescing_fits(queued, window, w, min_granted))
                    .or((got_this_wake < COALESCE_BELOW).then_some(COALESCE_WAIT));
                if let Some(wait) = wait {
                    std::thread::sleep(wait);
                }
            }
            last_drain_end = drained_at;
        }
        let due = batch.len() >= BATCH_RECORDS
            || (!batch.is_empty() && batch_started.elapsed() >= BATCH_MAX_AGE)
            || (stopping && !batch.is_empty());
        if due {
            let next = ctx
                .free
                .try_recv()
                .unwrap_or_else(|_| Batch::new(ctx.id, BATCH_RECORDS));
            let full = std::mem::replace(&mut batch, next);
            if let Err(mut b) = hand_to_store(&ctx.to_store, full, STORE_WAIT) {
                cells.dropped += b.len() as u64;
                b.reset();
                batch = b;
            }
            batch_started = Instant::now();
        }
        if batch.is_empty() {
            batch_started = Instant::now();
        }
        if stopping || last_publish.elapsed() >= Duration::from_secs(1) {
            publish(
                &ctx,
                &mut cells,
                &mut last_stats,
                &mut last_errors,
                &mut last_sflow,
                &mut last_sflow_errors,
            );
            ctx.syslog.publish(&ctx.metrics, &ctx.names);
            last_publish = Instant::now();
        }
        if stopping || last_meta.elapsed() >= Duration::from_secs(5) {
            ctx.decoder.publish_meta();
            last_meta = Instant::now();
        }
        if last_expire.elapsed() >= Duration::from_secs(30) {
            ctx.decoder.expire(now_ns());
            last_expire = Instant::now();
        }
        if stopping {
            break;
        }
    }
}

fn publish(
    ctx: &WorkerCtx,
    cells: &mut Cells,
    last: &mut sluice_decode::DecodeStats,
    last_errors: &mut HashMap<&'static str, u64>,
    last_sflow: &mut (u64, u64),
    last_sflow_errors: &mut HashMap<&'static str, u64>,
) {
    let m = &ctx.metrics;
    for (i, name) in ctx.names.iter().enumerate() {
        m.packets
            .with_label_values(&[name])
            .inc_by(cells.packets[i]);
        m.bytes.with_label_values(&[name]).inc_by(cells.bytes[i]);
        m.truncated
            .with_label_values(&[name])
            .inc_by(cells.truncated[i]);
        m.denied.with_label_values(&[name]).inc_by(cells.denied[i]);
        cells.packets[i] = 0;
        cells.bytes[i] = 0;
        cells.truncated[i] = 0;
        cells.denied[i] = 0;
    }
    m.pipeline_dropped.inc_by(cells.dropped);
    cells.dropped = 0;
    let st = ctx.decoder.stats();
    for (reason, n) in &st.errors {
        count_up(
            &m.decode_errors,
            &[reason],
            last_errors.entry(reason).or_default(),
            *n,
        );
    }
    let d = |now: u64, before: u64| now.saturating_sub(before);
    m.records_decoded
        .with_label_values(&["flow"])
        .inc_by(d(st.flow_records, last.flow_records));
    m.records_decoded
        .with_label_values(&["options"])
        .inc_by(d(st.options_records, last.options_records));
    for (ev, now, before) in [
        ("learned", st.templates_learned, last.templates_learned),
        (
            "withdrawn",
            st.templates_withdrawn,
            last.templates_withdrawn,
        ),
        ("expired", st.templates_expired, last.templates_expired),
        ("cross_core", st.cross_core_hits, last.cross_core_hits),
        ("evicted", st.templates_evicted, last.templates_evicted),
    ] {
        m.template_events
            .with_label_values(&[ev])
            .inc_by(d(now, before));
    }
    m.exporter_restarts
        .inc_by(d(st.exporter_restarts, last.exporter_restarts));
    let sf = ctx.sflow.stats();
    m.records_decoded
        .with_label_values(&["sflow_flow"])
        .inc_by(d(sf.flow_samples + sf.discard_samples, last_sflow.0));
    m.records_decoded
        .with_label_values(&["sflow_counters"])
        .inc_by(d(sf.counter_samples, last_sflow.1));
    *last_sflow = (sf.flow_samples + sf.discard_samples, sf.counter_samples);
    for (reason, n) in &sf.errors {
        count_up(
            &m.decode_errors,
            &[reason],
            last_sflow_errors.entry(reason).or_default(),
            *n,
        );
    }
    *last = st.clone();
    // sFlow: datagram sequence numbers per agent and sub-agent, sample sequence numbers per
    // data source (summed per sub-agent).
    for (k, a) in ctx.sflow.agents() {
        let (agent, sub) = (k.agent.to_string(), k.sub_agent_id.to_string());
        for (unit, n) in [
            ("datagrams", a.missing_datagrams),
            ("samples", a.missing_samples),
        ] {
            m.exporter_missing
                .with_label_values(&[&agent, "sflow5", &sub, unit])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    for (k, e) in ctx.decoder.exporters() {
        let unit = if k.version == 9 { "packets" } else { "records" };
        m.exporter_missing
            .with_label_values(&[
                &k.addr.to_string(),
                &k.version.to_string(),
                &k.domain.to_string(),
                unit,
            ])
            .set(e.missing as i64);
    }
}

/// Tells the operator, at most every [`StoreTrouble::EVERY`], that the local store cannot
/// write (the disk is full, most often) and, once a flush goes through again, that it
/// recovered and how many records were lost meanwhile.
#[derive(Debug, Default)]
struct StoreTrouble {
    /// Set at the first error of an episode.
    failing: bool,
    /// An error since the previous flush (a flush that went through after one does not yet
    /// mean recovery: the records appended in between may have failed).
    since_flush: bool,
    last_log: Option<Instant>,
    dropped_at_start: u64,
}

impl StoreTrouble {
    const EVERY: Duration = Duration::from_secs(10);

    fn report(&mut self, e: &sluice_sink::store::StoreError, dropped: u64) {
        if !self.failing {
            self.failing = true;
            self.dropped_at_start = dropped;
            self.last_log = None;
        }
        self.since_flush = true;
        if self.last_log.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            let hint = if e.reason() == "disk_full" {
                "; free space in the data directory (or lower [store] max_size): writing resumes by itself"
            } else {
                ""
            };
            log!(
                "local store: write failed ({}): {e}{hint}; {} records dropped so far (sluice_store_dropped_records_total)",
                e.reason(),
                dropped
            );
            self.last_log = Some(Instant::now());
        }
    }

    fn flushed(&mut self, dropped: u64) {
        if self.failing && !std::mem::take(&mut self.since_flush) {
            log!(
                "local store: writing again; {} records were dropped while it could not",
                dropped.saturating_sub(self.dropped_at_start)
            );
            self.failing = false;
        }
    }
}

/// Enrichment on the store thread (and in `sluice ingest`): the shared enricher, this
/// thread's cache and output.
pub(crate) struct StoreEnrich {
    enricher: Arc<Enricher>,
    cache: CoreCache,
    out: Box<Enriched>,
}

impl StoreEnrich {
    pub(crate) fn new(enricher: Arc<Enricher>) -> StoreEnrich {
        StoreEnrich {
            cache: enricher.cache(),
            enricher,
            out: Box::default(),
        }
    }

    /// Enriches one record with what its scope's options data gave it; returns the result.
    /// `whole`: everything a document shows; otherwise only what the local store keeps
    /// ([`Enricher::enrich_learned_for_store`]).
    pub(crate) fn run(
        &mut self,
        r: &sluice_decode::Record<'_>,
        flow: &sluice_decode::Flow,
        learned: &sluice_enrich::Learned<'_>,
        whole: bool,
    ) -> &Enriched {
        if whole {
            self.enricher
                .enrich_learned(&mut self.cache, r, flow, learned, &mut self.out);
        } else {
            self.enricher.enrich_learned_for_store(
                &mut self.cache,
                r,
                flow,
                learned,
                &mut self.out,
            );
        }
        &self.out
    }

    /// Whether keeping this record's enrichment would add to what the record itself says
    /// ([`Enricher::adds_to_record`]); `may_add` is [`StoreEnrich::may_add`] of the batch.
    pub(crate) fn adds(
        &mut self,
        may_add: bool,
        r: &sluice_decode::Record<'_>,
        learned: &sluice_enrich::Learned<'_>,
    ) -> bool {
        if may_add {
            self.enricher
                .adds_to_record(&mut self.cache, r.header.exporter.ip(), learned)
        } else {
            !learned.is_empty()
        }
    }

    /// Whether any record could gain from enrichment beyond what options data gave it
    /// ([`Enricher::may_add_to_records`]); asked once per batch.
    pub(crate) fn may_add(&mut self) -> bool {
        self.enricher.may_add_to_records(&mut self.cache)
    }

    /// Exports the cache's figures and picks up changed GeoIP databases.
    fn publish(&mut self, m: &Metrics) {
        let cs = self.cache.stats();
        m.enrich_cache_hits.set(cs.hits as i64);
        m.enrich_cache_misses.set(cs.misses as i64);
        let _ = self.enricher.maybe_reload();
    }
}

#[allow(clippy::too_many_arguments)]
fn store_loop(
    mut writer: Option<StoreWriter>,
    mut shipper: Option<crate::ship::Shipper>,
    enricher: Arc<Enricher>,
    rx: ChanRx<Batch>,
    returns: Vec<ChanTx<Batch>>,
    metrics: Metrics,
    live: Arc<Mutex<Live>>,
    shared: Arc<SharedTemplates>,
    tpl_path: PathBuf,
) -> Result<u64> {
    let mut scratch = Vec::new();
    let mut enrich = StoreEnrich::new(enricher);
    let mut last_flush = Instant::now();
    let mut last_retention = Instant::now();
    let mut last_save = Instant::now();
    let mut saved_generation = shared.generation();
    let mut stored = 0u64;
    let mut errors: HashMap<&'static str, u64> = HashMap::new();
    let mut templates_gauge = 0usize;
    let mut store_trouble = StoreTrouble::default();
    loop {
        let settings = match live.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let wait = settings
            .flush_interval
            .saturating_sub(last_flush.elapsed())
            .max(Duration::from_millis(1));
        let (batch, closed) = match rx.recv_timeout(wait) {
            Ok(b) => (Some(b), false),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => (None, false),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => (None, true),
        };
        if let Some(mut b) = batch {
            let now = now_ns();
            let mut failed = None;
            let mut last_header: *const sluice_decode::ExportHeader = std::ptr::null();
            let mut ordinal = 0u32;
            let keep = writer.is_some() && settings.keep_enrichment;
            // Without a shipper only what the store keeps is worth computing, and only for
            // records where keeping it adds to what the record itself says (otherwise the
            // store marks it "nothing kept" and readers enrich it as they read it).
            let whole = shipper.is_some();
            let may_add = keep && enrich.may_add();
            b.for_each_learned(&mut scratch, |r, learned| {
                // Each record is enriched once, for the store and the shipper alike.
                let needed = whole || (keep && enrich.adds(may_add, r, learned));
                let flow = needed.then(|| r.flow());
                let e = flow
                    .as_ref()
                    .map(|f| enrich.run(r, f, learned, whole))
                    .filter(|_| keep);
                if let Some(w) = writer.as_mut() {
                    // Every record is offered even after a failure: the writer counts what it
                    // drops, and a later block may well fit (a freed disk, another partition).
                    if let Err(e) = w.append_enriched(r, e, now) {
                        failed.get_or_insert(e);
                    }
                }
                if let (Some(s), Some(flow)) = (shipper.as_mut(), flow.as_ref()) {
                    // Records of one datagram share one header in the batch: their position
                    // among its records is part of their id.
                    if std::ptr::eq(last_header, r.header) {
                        ordinal += 1;
                    } else {
                        last_header = r.header;
                        ordinal = 0;
                    }
                    s.push(r, flow, &enrich.out, ordinal);
                }
            });
            if let Some(e) = failed {
                *errors.entry(e.reason()).or_default() += 1;
                metrics.store_errors.with_label_values(&[e.reason()]).inc();
                store_trouble.report(&e, writer.as_ref().map_or(0, |w| w.stats().records_dropped));
            }
            let core = b.core;
            b.reset();
            if let Some(ret) = returns.get(core) {
                let _ = ret.try_send(b);
            }
        }
        if closed || last_flush.elapsed() >= settings.flush_interval {
            if let Some(w) = writer.as_mut() {
                let flushed = w.flush();
                let st = w.stats();
                metrics.store_dropped.inc_by(
                    st.records_dropped
                        .saturating_sub(metrics.store_dropped.get()),
                );
                match flushed {
                    Ok(n) => {
                        stored += n;
                        metrics.records_stored.inc_by(n);
                        store_trouble.flushed(st.records_dropped);
                    }
                    Err(e) => {
                        metrics.store_errors.with_label_values(&[e.reason()]).inc();
                        store_trouble.report(&e, st.records_dropped);
                    }
                }
                metrics.store_bytes.set(st.bytes_on_disk as i64);
                metrics.store_segments.set(st.segments as i64);
                metrics.store_partitions.set(st.partitions as i64);
            }
            if let Some(s) = shipper.as_mut() {
                s.publish(&metrics);
            }
            enrich.publish(&metrics);
            let t = shared.len();
            if t != templates_gauge {
                metrics.templates_cached.set(t as i64);
                templates_gauge = t;
            }
            last_flush = Instant::now();
        }
        if last_retention.elapsed() >= Duration::from_secs(60) {
            if let Some(w) = writer.as_mut() {
                w.set_retention(settings.store.max_age_secs, settings.store.max_bytes);
                if let Err(e) = w.enforce_retention(now_ns()) {
                    metrics.store_errors.with_label_values(&[e.reason()]).inc();
                }
            }
            last_retention = Instant::now();
        }
        if closed || last_save.elapsed() >= Duration::from_secs(5) {
            let g = shared.generation();
            if g != saved_generation || closed {
                if let Err(e) = shared.save(&tpl_path) {
                    log!("saving templates: {e}");
                } else {
                    saved_generation = g;
                }
            }
            last_save = Instant::now();
        }
        if closed {
            if let Some(s) = shipper.take() {
                let st = s.shutdown(Duration::from_secs(10));
                log!(
                    "Elasticsearch: {} documents shipped, {} spooled for the next start",
                    st.docs_shipped,
                    st.spool_docs
                );
            }
            if let Some(w) = writer.as_mut() {
                w.sync().context("syncing the store")?;
            }
            return Ok(stored);
        }
    }
}

/// Queues a full batch for the store, waiting at most `wait` for room; the batch back if it
/// could not be queued (the caller drops and counts its records).
fn hand_to_store<T>(to_store: &ChanTx<T>, batch: T, wait: Duration) -> Result<(), T> {
    to_store.send_timeout(batch, wait).map_err(|e| match e {
        SendTimeoutError::Timeout(b) | SendTimeoutError::Disconnected(b) => b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_queue_is_waited_for_then_the_batch_comes_back() {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).expect("room for one");
        // The store takes the queued batch a little later: the next one goes in, not lost.
        let store = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let first = rx.recv().expect("first");
            let second = rx.recv().expect("second");
            (first, second, rx)
        });
        assert_eq!(hand_to_store(&tx, 2, Duration::from_secs(10)), Ok(()));
        let (first, second, rx) = store.join().expect("store thread");
        assert_eq!((first, second), (1, 2));
        // Nobody takes it: the batch comes back after the wait, for the caller to count.
        tx.send(3).expect("room again");
        let t = Instant::now();
        assert_eq!(hand_to_store(&tx, 4, Duration::from_millis(20)), Err(4));
        assert!(t.elapsed() >= Duration::from_millis(20));
        // A store that has gone away gives it back at once.
        drop(rx);
        assert_eq!(hand_to_store(&tx, 5, Duration::from_secs(10)), Err(5));
    }

    #[test]
    fn coalescing_waits_only_while_the_buffer_holds_four_waits() {
        let ms = Duration::from_millis(1);
        // 100 kB arrived over 1 ms: a 4 ms wait queues 400 kB.
        assert!(coalescing_fits(100_000, ms, 4 * ms, 1_600_000));
        assert!(!coalescing_fits(100_000, ms, 4 * ms, 1_599_999));
        assert!(coalescing_fits(100_000, ms, ms, 400_000));
        // A long quiet window means a low rate; an empty window cannot divide by zero.
        assert!(coalescing_fits(
            100_000,
            Duration::from_secs(1),
            4 * ms,
            4_096
        ));
        assert!(!coalescing_fits(1_000, Duration::ZERO, ms, 1 << 30));
        // The default 208 KiB buffer at 650 k datagrams/s of 450 bytes (about 1 GB/s
        // counting the kernel's overhead) must not be left to fill for even 1 ms.
        let per_ms = 650 * (450 + QUEUED_OVERHEAD);
        assert!(!coalescing_fits(per_ms, ms, ms, 212_992));
        assert!(coalescing_fits(per_ms, ms, COALESCE_LONG_WAIT, 64 << 20));
    }
}
