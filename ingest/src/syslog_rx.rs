//! Syslog reception: UDP datagrams (on the receive threads, like flows) and TCP or TLS streams
//! (a thread per connection), both into the same batches, store and Elasticsearch path.
//!
//! UDP (RFC 5426): one message per datagram; a datagram holding several newline-separated
//! messages (some relays batch them) is split. TCP (RFC 6587) and TLS (RFC 5425): each frame
//! is either octet-counted (`MSG-LEN SP MSG`, which a frame starting with a non-zero digit is
//! taken to be) or ends at LF (CR LF and NUL are tolerated between frames), decided per frame,
//! so a sender may use either. A message longer than the listener's `max_line` is cut there:
//! the cut message is stored and counted (`too_long`), the rest of it skipped.
//!
//! TCP connections push back: a connection thread whose batch the store cannot take yet waits
//! (the sender's TCP window closes) instead of dropping; UDP receive threads never wait and
//! count drops, as for flows. Connections above `max_connections` are refused and counted.
//! TLS uses rustls with the listener's certificate and key; client certificates are not asked
//! for.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{SendTimeoutError, Sender};
use rustc_hash::FxHashMap;
use sluice_decode::syslog::framing::{FrameNote, Framer};
use sluice_decode::syslog::{SyslogDecoder, SyslogStats, Vendor};
use sluice_decode::Record;

use crate::batch::Batch;
use crate::config::{Cidr, Config, Listener, Protocol, Transport};
use crate::metrics::{count_up, Metrics};
use crate::run::{log, now_ns};

/// Records per batch of a connection.
const CONN_BATCH: usize = 1024;
/// A connection's partly filled batch goes to the store after this long.
const CONN_BATCH_AGE: Duration = Duration::from_millis(200);
/// How often a connection looks at the stop flag while its sender is quiet.
const READ_TICK: Duration = Duration::from_millis(200);
/// Batches from connections are not returned to a receive thread's free list.
const NO_CORE: usize = usize::MAX;

/// Adds a decoder's counts since the last call to the metrics.
#[derive(Debug, Default)]
pub struct StatsPublisher {
    messages: FxHashMap<Vendor, u64>,
    failures: FxHashMap<(Vendor, &'static str), u64>,
}

impl StatsPublisher {
    /// Publishes what `st` counted since the previous call.
    pub fn publish(&mut self, st: &SyslogStats, m: &Metrics) {
        for (v, n) in &st.messages {
            count_up(
                &m.syslog_messages,
                &[v.as_str()],
                self.messages.entry(*v).or_default(),
                *n,
            );
        }
        for ((v, reason), n) in &st.failures {
            let prev = self.failures.entry((*v, reason)).or_default();
            count_up(&m.syslog_parse_failures, &[v.as_str(), reason], prev, *n);
        }
    }
}

/// Syslog over UDP on one receive thread: its decoder and per-listener counts.
#[derive(Debug)]
pub struct UdpSyslog {
    decoder: SyslogDecoder,
    publisher: StatsPublisher,
    max_line: Vec<usize>,
    received: Vec<u64>,
    too_long: Vec<u64>,
}

impl UdpSyslog {
    /// For the listeners of `cfg` (indexed like `cfg.listeners`).
    pub fn new(cfg: &Config) -> UdpSyslog {
        let n = cfg.listeners.len();
        UdpSyslog {
            decoder: SyslogDecoder::new(),
            publisher: StatsPublisher::default(),
            max_line: cfg
                .listeners
                .iter()
                .map(|l| l.max_line.0 as usize)
                .collect(),
            received: vec![0; n],
            too_long: vec![0; n],
        }
    }

    /// Decodes the messages of one datagram received on listener `li`.
    pub fn datagram<F: FnMut(&Record<'_>)>(
        &mut self,
        li: usize,
        payload: &[u8],
        src: SocketAddr,
        receive_ns: i64,
        mut on_record: F,
    ) {
        let max = self.max_line.get(li).copied().unwrap_or(65_535);
        let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
        for msg in payload.split(|&c| c == b'\n') {
            if let Some(r) = self.received.get_mut(li) {
                *r += 1;
            }
            let msg = if msg.len() > max {
                if let Some(t) = self.too_long.get_mut(li) {
                    *t += 1;
                }
                &msg[..max]
            } else {
                msg
            };
            self.decoder.decode(msg, src, receive_ns, &mut on_record);
        }
    }

    /// Adds this thread's counts to the metrics.
    pub fn publish(&mut self, m: &Metrics, names: &[String]) {
        for (i, name) in names.iter().enumerate() {
            if let Some(n) = self.received.get_mut(i).filter(|n| **n > 0) {
                m.syslog_received.with_label_values(&[name]).inc_by(*n);
                *n = 0;
            }
            if let Some(n) = self.too_long.get_mut(i).filter(|n| **n > 0) {
                m.syslog_framing_errors
                    .with_label_values(&[name, "too_long"])
                    .inc_by(*n);
                *n = 0;
            }
        }
        self.publisher.publish(self.decoder.stats(), m);
    }
}

/// A stream listener, bound.
pub struct BoundStream {
    listener: Listener,
    socket: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for BoundStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundStream")
            .field("name", &self.listener.name)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Loads a certificate chain and key (PEM) into a server configuration.
pub fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("certificates in {}", cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not go together")
}

/// Binds every TCP/TLS listener of `cfg` (and loads TLS certificates), so that start-up fails
/// before anything runs.
pub fn bind_streams(cfg: &Config) -> Result<Vec<BoundStream>> {
    let mut out = Vec::new();
    for l in cfg.listeners.iter().filter(|l| l.is_stream()) {
        debug_assert_eq!(l.protocol, Protocol::Syslog);
        let tls = match (l.transport, &l.tls_cert, &l.tls_key) {
            (Transport::Tls, Some(c), Some(k)) => Some(Arc::new(
                tls_config(c, k).with_context(|| format!("listener {}", l.name))?,
            )),
            _ => None,
        };
        let socket = bind_tcp(l.address)
            .with_context(|| format!("listener {} on tcp {}", l.name, l.address))?;
        out.push(BoundStream {
            listener: l.clone(),
            socket,
            tls,
        });
    }
    Ok(out)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if let SocketAddr::V6(v6) = addr {
        if v6.ip().is_unspecified() {
            s.set_only_v6(false)?;
        }
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    let l: TcpListener = s.into();
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What every connection of a listener shares.
struct Shared {
    name: String,
    max_line: usize,
    max_connections: usize,
    allow: Vec<Cidr>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
    to_store: Sender<Batch>,
    active: AtomicUsize,
}

/// Starts an accept thread per bound listener; they end (after their connections) when `stop`
/// is set.
pub fn start_streams(
    bound: Vec<BoundStream>,
    to_store: &Sender<Batch>,
    metrics: &Metrics,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
    for b in bound {
        let l = &b.listener;
        log!(
            "listener {} on {} {} (syslog), at most {} connections",
            l.name,
            if b.tls.is_some() { "tls" } else { "tcp" },
            b.socket.local_addr().map_or(l.address, |a| a),
            l.max_connections
        );
        let shared = Arc::new(Shared {
            name: l.name.clone(),
            max_line: l.max_line.0 as usize,
            max_connections: l.max_connections,
            allow: l.allow.clone(),
            metrics: metrics.clone(),
            stop: Arc::clone(stop),
            to_store: to_store.clone(),
            active: AtomicUsize::new(0),
        });
        metrics
            .syslog_connections
            .with_label_values(&[&shared.name])
            .set(0);
        handles.push(
            std::thread::Builder::new()
                .name(format!("sluice-syslog-{}", l.name))
                .spawn(move || accept_loop(b.socket, b.tls, shared))?,
        );
    }
    Ok(handles)
}

fn accept_loop(socket: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, shared: Arc<Shared>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    let framing = |reason: &str| {
        shared
            .metrics
            .syslog_framing_errors
            .with_label_values(&[&shared.name, reason])
            .inc()
    };
    while !shared.stop.load(Ordering::Relaxed) {
        conns.retain(|h| !h.is_finished());
        let (stream, peer) = match socket.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                framing("read_error");
                log!("listener {}: accept: {e}", shared.name);
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if !shared.allow.is_empty() && !shared.allow.iter().any(|c| c.contains(peer.ip())) {
            shared
                .metrics
                .denied
                .with_label_values(&[&shared.name])
                .inc();
            continue;
        }
        if shared.active.load(Ordering::Relaxed) >= shared.max_connections {
            framing("connection_limit");
            continue;
        }
        shared.active.fetch_add(1, Ordering::Relaxed);
        shared
            .metrics
            .syslog_connections_accepted
            .with_label_values(&[&shared.name])
            .inc();
        set_connections(&shared);
        let s2 = Arc::clone(&shared);
        let tls = tls.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sluice-syslog-conn-{}", shared.name))
            .spawn(move || {
                connection(stream, peer, tls, &s2);
                s2.active.fetch_sub(1, Ordering::Relaxed);
                set_connections(&s2);
            });
        match spawned {
            Ok(h) => conns.push(h),
            Err(e) => {
                shared.active.fetch_sub(1, Ordering::Relaxed);
                set_connections(&shared);
                framing("connection_limit");
                log!(
                    "listener {}: cannot start a connection thread: {e}",
                    shared.name
                );
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

fn set_connections(s: &Shared) {
    s.metrics
        .syslog_connections
        .with_label_values(&[&s.name])
        .set(s.active.load(Ordering::Relaxed) as i64);
}

fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: &Shared,
) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(READ_TICK)).is_err() {
        return;
    }
    match tls {
        Some(cfg) => match rustls::ServerConnection::new(cfg) {
            Ok(conn) => serve(rustls::StreamOwned::new(conn, stream), peer, shared, true),
            Err(_) => shared
                .metrics
                .syslog_framing_errors
                .with_label_values(&[&shared.name, "tls"])
                .inc(),
        },
        None => serve(stream, peer, shared, false),
    }
}

/// Sends a batch to the store, waiting while it is full (TCP pushes back on the sender);
/// gives up only when stopping or when the store is gone, counting the records.
fn send(batch: &mut Batch, shared: &Shared) {
    if batch.is_empty() {
        return;
    }
    let mut b = std::mem::replace(batch, Batch::new(NO_CORE, CONN_BATCH));
    loop {
        match shared.to_store.send_timeout(b, READ_TICK) {
            Ok(()) => return,
            Err(SendTimeoutError::Timeout(back)) if !shared.stop.load(Ordering::Relaxed) => {
                b = back
            }
            Err(SendTimeoutError::Timeout(back) | SendTimeoutError::Disconnected(back)) => {
                shared.metrics.pipeline_dropped.inc_by(back.len() as u64);
                return;
            }
        }
    }
}

/// One connection's decoder, batch and counts since they were last published.
struct Conn {
    peer: SocketAddr,
    decoder: SyslogDecoder,
    batch: Batch,
    received: u64,
    too_long: u64,
    incomplete: u64,
}

impl Conn {
    fn frame(&mut self, msg: &[u8], note: FrameNote) {
        self.received += 1;
        match note {
            FrameNote::Whole => {}
            FrameNote::TooLong => self.too_long += 1,
            FrameNote::Incomplete => self.incomplete += 1,
        }
        let batch = &mut self.batch;
        self.decoder
            .decode(msg, self.peer, now_ns(), |r| batch.push(r, None));
    }

    fn publish(&mut self, shared: &Shared, publisher: &mut StatsPublisher) {
        let m = &shared.metrics;
        let name = shared.name.as_str();
        m.syslog_received
            .with_label_values(&[name])
            .inc_by(self.received);
        for (reason, n) in [("too_long", self.too_long), ("incomplete", self.incomplete)] {
            if n > 0 {
                m.syslog_framing_errors
                    .with_label_values(&[name, reason])
                    .inc_by(n);
            }
        }
        (self.received, self.too_long, self.incomplete) = (0, 0, 0);
        publisher.publish(self.decoder.stats(), m);
    }
}

fn serve(mut stream: impl Read, peer: SocketAddr, shared: &Shared, tls: bool) {
    let mut c = Conn {
        peer,
        decoder: SyslogDecoder::new(),
        batch: Batch::new(NO_CORE, CONN_BATCH),
        received: 0,
        too_long: 0,
        incomplete: 0,
    };
    let mut publisher = StatsPublisher::default();
    let mut framer = Framer::new(shared.max_line);
    let mut started = Instant::now();
    let mut last_publish = Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        let mut closed = stopping;
        if !stopping {
            match stream.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => framer.push(&buf[..n], &mut |m, note| c.frame(m, note)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    // What came before is kept either way. rustls reports TLS protocol
                    // errors as InvalidData; a peer that leaves without close_notify or
                    // resets the connection is a read error.
                    let reason = if tls && e.kind() == io::ErrorKind::InvalidData {
                        "tls"
                    } else {
                        "read_error"
                    };
                    shared
                        .metrics
                        .syslog_framing_errors
                        .with_label_values(&[&shared.name, reason])
                        .inc();
                    closed = true;
                }
            }
        }
        if closed {
            framer.finish(&mut |m, note| c.frame(m, note));
        }
        if c.batch.len() >= CONN_BATCH
            || closed
            || (!c.batch.is_empty() && started.elapsed() >= CONN_BATCH_AGE)
        {
            send(&mut c.batch, shared);
            started = Instant::now();
        }
        if c.batch.is_empty() {
            started = Instant::now();
        }
        if closed || last_publish.elapsed() >= Duration::from_secs(1) {
            c.publish(shared, &mut publisher);
            last_publish = Instant::now();
        }
        if closed {
            return;
        }
    }
}
