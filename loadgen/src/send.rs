//! The sending machinery shared by `replay` and `synth`: N exporter sockets, `sendmmsg(2)`
//! batches, rate control, progress, live counters and a hook that sees every datagram sent.
//!
//! A [`Source`] produces the datagrams of each exporter (a replayed capture, or synthetic
//! flows); [`send`] owns the sockets and the clock. Every exporter has its own UDP socket,
//! connected to the target (so its source port is its own, and the kernel sends nowhere else).
//! Datagrams are rendered into one arena and handed to `sendmmsg` in batches, one call per
//! exporter in turn. `Rate::Max` sends full batches as fast as the calls return.
//! `Rate::Pps(r)` is an absolute schedule: by time t since the start, `floor(r * t)`
//! datagrams are due; the sender sleeps until the next chunk (about a millisecond's worth) is
//! due, so the average stays on target whatever the sleep jitter, and a stall is made up
//! afterwards (at most one second's worth; older debt is forgotten).
//!
//! A batch the kernel does not take whole (an `ENOBUFS`, or an ICMP port unreachable turned
//! into `ECONNREFUSED`) keeps its unsent datagrams, already rendered with their sequence
//! numbers, and sends them again on the same socket before anything new: the exporter's
//! stream stays gap-free and in order.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Rate;

/// What one rendered datagram carries, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Flow records (sFlow: flow samples).
    pub flow_records: u32,
    /// Options data records (sFlow: counter samples).
    pub options_records: u32,
}

/// A producer of the datagrams of N exporters.
pub trait Source {
    /// Exporters (sockets) to open; at least 1.
    fn exporters(&self) -> usize;
    /// The longest datagram [`Source::render`] can produce (sizes the batch arena).
    fn max_datagram_len(&self) -> usize;
    /// Datagrams exporter `e` has left; `u64::MAX` for a source without end.
    fn remaining(&self, e: usize) -> u64;
    /// Appends exporter `e`'s next datagram, for the wall clock `now` (ms since the Unix
    /// epoch, and its sub-second ns), to `out`.
    fn render(&mut self, e: usize, now: (i64, u32), out: &mut Vec<u8>) -> Rendered;
}

/// Wall clock, ms since the Unix epoch, and the sub-second ns.
pub fn wall_clock() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as i64, d.subsec_nanos())
}

/// How a run sends.
#[derive(Clone, Copy, Debug)]
pub struct SendConfig {
    /// Where every datagram goes.
    pub to: SocketAddr,
    pub rate: Rate,
    /// Stop after this long (else when every exporter's source is exhausted).
    pub duration: Option<Duration>,
    /// Datagrams per `sendmmsg` call (1..=1024).
    pub batch: usize,
}

/// Progress, reported about once a second.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub elapsed: Duration,
    pub packets: u64,
    pub flow_records: u64,
    /// Datagrams per second over the last interval.
    pub pps: f64,
    /// Flow records per second over the last interval.
    pub records_per_sec: f64,
}

/// What a run sent.
#[derive(Clone, Debug, Default)]
pub struct SendStats {
    /// Datagrams sent, over all exporters.
    pub packets: u64,
    /// Flow records in them.
    pub flow_records: u64,
    /// Options data records in them.
    pub options_records: u64,
    /// UDP payload bytes.
    pub bytes: u64,
    /// From the first send to the last.
    pub elapsed: Duration,
    /// Sends the kernel refused or cut short (ENOBUFS, EAGAIN, ECONNREFUSED after an ICMP port
    /// unreachable); what was not sent was sent again.
    pub send_errors: u64,
    /// Local address (source port) of each exporter.
    pub exporter_addrs: Vec<SocketAddr>,
    /// Replay only: loops completed by every exporter.
    pub loops: u64,
}

impl SendStats {
    /// Achieved datagrams per second.
    pub fn pps(&self) -> f64 {
        per_sec(self.packets, self.elapsed)
    }

    /// Achieved flow records per second.
    pub fn records_per_sec(&self) -> f64 {
        per_sec(self.flow_records, self.elapsed)
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Counters another thread can read while a run goes on (a sampler for `--plot`, the soak).
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub packets: AtomicU64,
    pub flow_records: AtomicU64,
    pub options_records: AtomicU64,
}

impl LiveCounters {
    /// (packets, flow records, options records) sent so far.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.flow_records.load(Ordering::Relaxed),
            self.options_records.load(Ordering::Relaxed),
        )
    }
}

/// Sees a datagram the kernel took: exporter's local address, send time (ns since the Unix
/// epoch), payload.
pub type SentHook<'a> = dyn FnMut(SocketAddr, i64, &[u8]) + 'a;

/// Optional observers of a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called about once a second.
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
    /// Called with every datagram the kernel took: exporter's local address, send time (ns
    /// since the Unix epoch), payload.
    pub sent: Option<&'a mut SentHook<'a>>,
    /// Updated after every batch.
    pub live: Option<&'a LiveCounters>,
    /// Set by another thread to end the run early.
    pub stop: Option<&'a AtomicBool>,
}

impl std::fmt::Debug for Hooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("progress", &self.progress.is_some())
            .field("sent", &self.sent.is_some())
            .field("live", &self.live.is_some())
            .field("stop", &self.stop.is_some())
            .finish()
    }
}

/// An exporter's socket: bound to an ephemeral port of the target's family, connected to it.
fn open_socket(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    sock.connect(to)?;
    // A larger send buffer absorbs bursts at max rate; the kernel caps it at wmem_max and a
    // refusal only costs speed, so the result is not checked.
    let size: libc::c_int = 4 << 20;
    // SAFETY: the fd is a valid open socket owned by `sock`; the option value points to a live
    // c_int whose size is passed alongside.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(sock)
}

/// Reusable `sendmmsg` argument arrays and the rendered datagrams of one exporter.
struct Batch {
    arena: Vec<u8>,
    spans: Vec<(usize, usize)>,
    what: Vec<Rendered>,
    /// Datagrams before this index have been sent.
    first: usize,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(batch: usize, max_len: usize) -> Self {
        Batch {
            arena: Vec::with_capacity(batch * max_len),
            spans: Vec::with_capacity(batch),
            what: Vec::with_capacity(batch),
            first: 0,
            iov: Vec::with_capacity(batch),
            msgs: Vec::with_capacity(batch),
        }
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
        self.what.clear();
        self.first = 0;
    }

    fn pending(&self) -> usize {
        self.spans.len() - self.first
    }

    /// Sends the unsent datagrams of the arena on `sock`; returns how many the kernel took.
    fn send(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.iov.clear();
        self.msgs.clear();
        let base = self.arena.as_ptr();
        for &(start, len) in &self.spans[self.first..] {
            self.iov.push(libc::iovec {
                // sendmmsg only reads the buffers; the cast to *mut is what the C type wants.
                iov_base: base.wrapping_add(start) as *mut libc::c_void,
                iov_len: len,
            });
        }
        let iov = self.iov.as_mut_ptr();
        for i in 0..self.iov.len() {
            // SAFETY: mmsghdr is a plain C struct (integers and pointers) for which all-zero
            // bytes are a valid value: no address, no control data, no flags.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov.wrapping_add(i);
            m.msg_hdr.msg_iovlen = 1;
            self.msgs.push(m);
        }
        if self.msgs.is_empty() {
            return Ok(0);
        }
        // SAFETY: `msgs` holds `msgs.len()` initialized headers; each points to one iovec of
        // `iov`, which points into `arena` within its length. None of the three vectors is
        // touched until the call returns. The socket is connected, so no address is passed.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                self.msgs.len() as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Errors after which the same datagrams are simply tried again.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR | libc::ECONNREFUSED)
    )
}

/// Sends what `src` produces as configured, until `cfg.duration` has passed, every exporter's
/// source is exhausted, or `hooks.stop` is set.
pub fn send<S: Source + ?Sized>(
    src: &mut S,
    cfg: &SendConfig,
    hooks: &mut Hooks<'_>,
) -> io::Result<SendStats> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let exporters = src.exporters();
    if exporters == 0 {
        return Err(invalid("--exporters must be at least 1".into()));
    }
    if !(1..=1024).contains(&cfg.batch) {
        return Err(invalid("--batch must be within 1..=1024".into()));
    }
    let sockets = (0..exporters)
        .map(|_| open_socket(cfg.to))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("opening {exporters} exporter sockets: {e}"),
            )
        })?;
    let mut stats = SendStats {
        exporter_addrs: sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<io::Result<_>>()?,
        ..SendStats::default()
    };
    let mut batch = Batch::new(cfg.batch, src.max_datagram_len());
    // Pacing: datagrams per wake-up (about 1 ms worth) and tokens forgotten after stalls.
    let chunk = match cfg.rate {
        Rate::Max => cfg.batch as u64,
        Rate::Pps(r) => ((r / 1000.0).round() as u64).clamp(1, cfg.batch as u64),
    };
    let mut forgotten = 0u64;
    let mut next = 0usize;
    // The exporter whose batch still holds unsent datagrams.
    let mut holder = 0usize;
    let mut tick = (Duration::from_secs(1), 0u64, 0u64);
    let start = Instant::now();
    let mut last_send = start;
    loop {
        let t = start.elapsed();
        if cfg.duration.is_some_and(|d| t >= d)
            || hooks.stop.is_some_and(|s| s.load(Ordering::Relaxed))
        {
            break;
        }
        if t >= tick.0 {
            let dt = (t - tick.0 + Duration::from_secs(1)).as_secs_f64();
            if let Some(p) = hooks.progress.as_mut() {
                p(&Progress {
                    elapsed: t,
                    packets: stats.packets,
                    flow_records: stats.flow_records,
                    pps: (stats.packets - tick.1) as f64 / dt,
                    records_per_sec: (stats.flow_records - tick.2) as f64 / dt,
                });
            }
            tick = (
                t + Duration::from_secs(1),
                stats.packets,
                stats.flow_records,
            );
        }
        let e = if batch.pending() > 0 {
            holder
        } else {
            // The next exporter that still has something to send.
            let Some(e) = (0..exporters)
                .map(|i| (next + i) % exporters)
                .find(|&e| src.remaining(e) > 0)
            else {
                break;
            };
            let mut want = cfg.batch as u64;
            if let Rate::Pps(r) = cfg.rate {
                let due = ((r * t.as_secs_f64()) as u64).saturating_sub(forgotten);
                let mut credit = due.saturating_sub(stats.packets);
                let most = (r as u64).max(cfg.batch as u64);
                if credit > most {
                    forgotten += credit - most;
                    credit = most;
                }
                if credit < chunk {
                    let at = (stats.packets + forgotten + chunk) as f64 / r;
                    let mut wait = Duration::from_secs_f64((at - t.as_secs_f64()).max(0.0));
                    if let Some(d) = cfg.duration {
                        wait = wait.min(d.saturating_sub(t));
                    }
                    wait = wait.min(tick.0.saturating_sub(t));
                    std::thread::sleep(wait);
                    continue;
                }
                want = credit.min(cfg.batch as u64);
            }
            next = (e + 1) % exporters;
            let k = want.min(src.remaining(e)) as usize;
            batch.clear();
            let now = wall_clock();
            for _ in 0..k {
                let at = batch.arena.len();
                let what = src.render(e, now, &mut batch.arena);
                batch.spans.push((at, batch.arena.len() - at));
                batch.what.push(what);
            }
            holder = e;
            e
        };
        let first = batch.first;
        let sent = match batch.send(&sockets[e]) {
            Ok(n) => n,
            Err(err) if transient(&err) => {
                stats.send_errors += 1;
                std::thread::yield_now();
                0
            }
            Err(err) => return Err(err),
        };
        if sent > 0 && sent < batch.spans.len() - first {
            // Cut short: the kernel reports an error (an ICMP port unreachable turned into
            // ECONNREFUSED, typically) by ending the batch early. The rest goes again.
            stats.send_errors += 1;
        }
        if sent == 0 {
            continue;
        }
        last_send = Instant::now();
        let sent_range = first..first + sent;
        batch.first += sent;
        if let Some(hook) = hooks.sent.as_mut() {
            let ns = crate::send::now_ns();
            for &(at, len) in &batch.spans[sent_range.clone()] {
                hook(stats.exporter_addrs[e], ns, &batch.arena[at..at + len]);
            }
        }
        stats.packets += sent as u64;
        for w in &batch.what[sent_range.clone()] {
            stats.flow_records += u64::from(w.flow_records);
            stats.options_records += u64::from(w.options_records);
        }
        stats.bytes += batch.spans[sent_range]
            .iter()
            .map(|&(_, l)| l as u64)
            .sum::<u64>();
        if let Some(live) = hooks.live {
            live.packets.store(stats.packets, Ordering::Relaxed);
            live.flow_records
                .store(stats.flow_records, Ordering::Relaxed);
            live.options_records
                .store(stats.options_records, Ordering::Relaxed);
        }
    }
    // A timed run lasts its duration; a counted one ends with its last datagram.
    stats.elapsed = match cfg.duration {
        Some(d) if hooks.stop.is_none_or(|s| !s.load(Ordering::Relaxed)) => d.min(start.elapsed()),
        _ => last_send - start,
    };
    Ok(stats)
}

/// Wall clock, ns since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
