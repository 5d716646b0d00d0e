//! Sending a prepared capture as N exporters.
//!
//! Every exporter has its own UDP socket, connected to the target (so its source port is its
//! own, and the kernel sends nowhere else), and its own copy of every stream's state: rewritten
//! id, next sequence number. An exporter's send sequence is the preamble, then the capture
//! in file order, looped ([`Schedule`]); with `preamble_each_loop` the preamble starts every
//! loop. All exporters share one wall-clock "boot" time per stream (their scopes are distinct
//! anyway), set when the run starts.
//!
//! Sending: datagrams are copied into one arena, rewritten ([`crate::rewrite`]) and handed to
//! `sendmmsg(2)` in batches, one call per exporter in turn. `--rate max` sends full batches as
//! fast as the calls return. `--rate PPS` is an absolute schedule: by time t since the start,
//! `floor(PPS * t)` datagrams are due; the sender sleeps until the next chunk (about a
//! millisecond's worth) is due, so the average stays on target whatever the sleep jitter, and
//! a stall is made up afterwards (at most one second's worth; older debt is forgotten).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::capture::{Capture, CaptureDatagram};
use crate::config::{Rate, Stop};
use crate::rewrite::{rewrite, HeaderValues};

/// What a run does.
#[derive(Clone, Copy, Debug)]
pub struct ReplayConfig {
    /// Where every datagram goes.
    pub to: SocketAddr,
    pub rate: Rate,
    /// Simulated exporters (>= 1).
    pub exporters: usize,
    pub stop: Stop,
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
pub struct ReplayStats {
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
    /// Loops completed by every exporter.
    pub loops: u64,
}

impl ReplayStats {
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

/// The rewritten id of `stream` for `exporter`: distinct for every (exporter, stream) pair, so
/// that the collector keeps one template scope and one sequence space per pair even for v9 and
/// v5, whose scopes ignore the source port.
pub fn rewritten_id(exporter: usize, stream: usize, streams: usize) -> u32 {
    (exporter * streams + stream) as u32
}

/// Which datagram comes at each position of an exporter's send sequence.
#[derive(Clone, Copy, Debug)]
pub struct Schedule<'c> {
    cap: &'c Capture,
}

impl<'c> Schedule<'c> {
    pub fn new(cap: &'c Capture) -> Self {
        Schedule { cap }
    }

    /// Datagrams sent once, before the first loop.
    pub fn lead(&self) -> u64 {
        if self.cap.preamble_each_loop {
            0
        } else {
            self.cap.preamble.len() as u64
        }
    }

    /// Datagrams per loop.
    pub fn per_loop(&self) -> u64 {
        let p = if self.cap.preamble_each_loop {
            self.cap.preamble.len()
        } else {
            0
        };
        (p + self.cap.body.len()) as u64
    }

    /// Datagrams one exporter sends in `loops` loops.
    pub fn total(&self, loops: u64) -> u64 {
        self.lead() + loops.saturating_mul(self.per_loop())
    }

    /// Loops completed after `sent` datagrams.
    pub fn loops_done(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.lead()) / self.per_loop().max(1)
    }

    /// The datagram at position `i`.
    pub fn at(&self, i: u64) -> &'c CaptureDatagram {
        let cap = self.cap;
        let lead = self.lead();
        if i < lead {
            return &cap.preamble[i as usize];
        }
        let k = ((i - lead) % self.per_loop().max(1)) as usize;
        if cap.preamble_each_loop {
            if let Some(d) = cap.preamble.get(k) {
                return d;
            }
            return &cap.body[k - cap.preamble.len()];
        }
        &cap.body[k]
    }
}

/// One exporter's position and per-stream sequence numbers.
#[derive(Clone, Debug)]
struct ExporterState {
    pos: u64,
    seq: Vec<u32>,
    ids: Vec<u32>,
}

/// Produces the rewritten datagrams of every exporter; the sender and the tests share it.
#[derive(Debug)]
pub struct Generator<'c> {
    cap: &'c Capture,
    sched: Schedule<'c>,
    exporters: Vec<ExporterState>,
    boot_ms: Vec<i64>,
}

/// Wall clock, ms since the Unix epoch, and the sub-second ns.
pub fn wall_clock() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_millis() as i64, d.subsec_nanos())
}

impl<'c> Generator<'c> {
    /// `start_ms`: wall clock at the start of the run. Each stream's boot time is set so that
    /// its uptime starts at the highest uptime its capture shows, so shifted FIRST/LAST values
    /// never go below the originals.
    pub fn new(cap: &'c Capture, exporters: usize, start_ms: i64) -> Self {
        let n = cap.streams.len();
        let boot_ms = cap
            .streams
            .iter()
            .map(|s| start_ms - i64::from(s.max_uptime_ms))
            .collect();
        let exporters = (0..exporters)
            .map(|e| ExporterState {
                pos: 0,
                seq: cap.streams.iter().map(|s| s.first_sequence).collect(),
                ids: (0..n).map(|s| rewritten_id(e, s, n)).collect(),
            })
            .collect();
        Generator {
            cap,
            sched: Schedule::new(cap),
            exporters,
            boot_ms,
        }
    }

    pub fn schedule(&self) -> Schedule<'c> {
        self.sched
    }

    /// Datagrams exporter `e` has produced.
    pub fn position(&self, e: usize) -> u64 {
        self.exporters.get(e).map_or(0, |x| x.pos)
    }

    /// Appends exporter `e`'s next datagram, rewritten for the wall clock `now`, to `out` and
    /// returns what it is.
    pub fn render(&mut self, e: usize, now: (i64, u32), out: &mut Vec<u8>) -> &'c CaptureDatagram {
        let cap = self.cap;
        let x = &mut self.exporters[e];
        let d = self.sched.at(x.pos);
        let s = d.stream as usize;
        let uptime = (now.0 - self.boot_ms[s]).rem_euclid(1 << 32) as u32;
        let start = out.len();
        out.extend_from_slice(cap.bytes(d));
        let h = HeaderValues {
            source_id: x.ids[s],
            sequence: x.seq[s],
            now_ms: now.0,
            now_subsec_ns: now.1,
            uptime_ms: uptime,
        };
        rewrite(&mut out[start..], d, cap.patches(d), &h);
        x.seq[s] = x.seq[s].wrapping_add(d.seq_units);
        x.pos += 1;
        d
    }

    /// Saves exporter `e`'s state before a batch.
    fn save(&self, e: usize, into: &mut ExporterState) {
        into.clone_from(&self.exporters[e]);
    }

    /// Puts back exporter `e`'s saved state, then advances it by `n` datagrams (those the
    /// kernel took out of a batch it did not take whole).
    fn restore_and_advance(&mut self, e: usize, saved: &ExporterState, n: usize) {
        let x = &mut self.exporters[e];
        x.clone_from(saved);
        for _ in 0..n {
            let d = self.sched.at(x.pos);
            let s = d.stream as usize;
            x.seq[s] = x.seq[s].wrapping_add(d.seq_units);
            x.pos += 1;
        }
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

/// Reusable `sendmmsg` argument arrays.
struct Batch {
    arena: Vec<u8>,
    spans: Vec<(usize, usize)>,
    flow: Vec<u32>,
    options: Vec<u32>,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(batch: usize, max_len: usize) -> Self {
        Batch {
            arena: Vec::with_capacity(batch * max_len),
            spans: Vec::with_capacity(batch),
            flow: Vec::with_capacity(batch),
            options: Vec::with_capacity(batch),
            iov: Vec::with_capacity(batch),
            msgs: Vec::with_capacity(batch),
        }
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
        self.flow.clear();
        self.options.clear();
    }

    /// Sends the datagrams in the arena on `sock`; returns how many the kernel took.
    fn send(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.iov.clear();
        self.msgs.clear();
        let base = self.arena.as_ptr();
        for &(start, len) in &self.spans {
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

/// Sends the capture as configured. `progress` is called about once a second.
pub fn replay(
    cap: &Capture,
    cfg: &ReplayConfig,
    mut progress: impl FnMut(&Progress),
) -> io::Result<ReplayStats> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    if cfg.exporters == 0 {
        return Err(invalid("--exporters must be at least 1".into()));
    }
    if !(1..=1024).contains(&cfg.batch) {
        return Err(invalid("--batch must be within 1..=1024".into()));
    }
    let ids = cfg.exporters.saturating_mul(cap.streams.len());
    if cap.streams.iter().any(|s| s.version == 5) && ids > 1 << 16 {
        return Err(invalid(format!(
            "{} exporters x {} streams need {ids} distinct v5 engine ids; at most 65536 fit",
            cfg.exporters,
            cap.streams.len()
        )));
    }
    if u32::try_from(ids).is_err() {
        return Err(invalid("too many exporters".into()));
    }
    let sockets = (0..cfg.exporters)
        .map(|_| open_socket(cfg.to))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("opening {} exporter sockets: {e}", cfg.exporters),
            )
        })?;
    let mut stats = ReplayStats {
        exporter_addrs: sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<io::Result<_>>()?,
        ..ReplayStats::default()
    };
    let mut gen = Generator::new(cap, cfg.exporters, wall_clock().0);
    let sched = gen.schedule();
    let per_exporter = match cfg.stop {
        Stop::Loops(n) => sched.total(n.max(1)),
        Stop::Duration(_) => u64::MAX,
    };
    let budget = per_exporter.saturating_mul(cfg.exporters as u64);
    let deadline = match cfg.stop {
        Stop::Duration(d) => Some(d),
        Stop::Loops(_) => None,
    };
    let mut batch = Batch::new(cfg.batch, cap.max_datagram_len());
    let mut saved = ExporterState {
        pos: 0,
        seq: Vec::new(),
        ids: Vec::new(),
    };
    // Pacing: datagrams per wake-up (about 1 ms worth) and tokens forgotten after stalls.
    let chunk = match cfg.rate {
        Rate::Max => cfg.batch as u64,
        Rate::Pps(r) => ((r / 1000.0).round() as u64).clamp(1, cfg.batch as u64),
    };
    let mut forgotten = 0u64;
    let mut next = 0usize;
    let mut tick = (Duration::from_secs(1), 0u64, 0u64);
    let start = Instant::now();
    let mut last_send = start;
    loop {
        let t = start.elapsed();
        if deadline.is_some_and(|d| t >= d) {
            break;
        }
        if t >= tick.0 {
            let dt = (t - tick.0 + Duration::from_secs(1)).as_secs_f64();
            progress(&Progress {
                elapsed: t,
                packets: stats.packets,
                flow_records: stats.flow_records,
                pps: (stats.packets - tick.1) as f64 / dt,
                records_per_sec: (stats.flow_records - tick.2) as f64 / dt,
            });
            tick = (
                t + Duration::from_secs(1),
                stats.packets,
                stats.flow_records,
            );
        }
        // Positions only move by what was sent, so what is left is the budget minus that.
        let remaining = budget.saturating_sub(stats.packets);
        if remaining == 0 {
            break;
        }
        let mut want = cfg.batch as u64;
        if let Rate::Pps(r) = cfg.rate {
            let due = ((r * t.as_secs_f64()) as u64).saturating_sub(forgotten);
            let mut credit = due.saturating_sub(stats.packets);
            let most = (r as u64).max(cfg.batch as u64);
            if credit > most {
                forgotten += credit - most;
                credit = most;
            }
            let need = chunk.min(remaining);
            if credit < need {
                let at = (stats.packets + forgotten + need) as f64 / r;
                let mut wait = Duration::from_secs_f64((at - t.as_secs_f64()).max(0.0));
                if let Some(d) = deadline {
                    wait = wait.min(d.saturating_sub(t));
                }
                wait = wait.min(tick.0.saturating_sub(t));
                std::thread::sleep(wait);
                continue;
            }
            want = credit.min(cfg.batch as u64);
        }
        // The next exporter that still has something to send.
        let e = (0..cfg.exporters)
            .map(|i| (next + i) % cfg.exporters)
            .find(|&e| gen.position(e) < per_exporter)
            .unwrap_or(0);
        next = (e + 1) % cfg.exporters;
        let k = want.min(per_exporter - gen.position(e)) as usize;
        batch.clear();
        gen.save(e, &mut saved);
        let now = wall_clock();
        for _ in 0..k {
            let start = batch.arena.len();
            let d = gen.render(e, now, &mut batch.arena);
            batch.spans.push((start, batch.arena.len() - start));
            batch.flow.push(d.flow_records);
            batch.options.push(d.options_records);
        }
        let sent = match batch.send(&sockets[e]) {
            Ok(n) => n,
            Err(err) if transient(&err) => {
                stats.send_errors += 1;
                std::thread::yield_now();
                0
            }
            Err(err) => return Err(err),
        };
        if sent < k {
            // Cut short: the kernel reports an error (an ICMP port unreachable turned into
            // ECONNREFUSED, typically) by ending the batch early. The rest goes again.
            if sent > 0 {
                stats.send_errors += 1;
            }
            gen.restore_and_advance(e, &saved, sent);
        }
        if sent > 0 {
            last_send = Instant::now();
        }
        stats.packets += sent as u64;
        stats.flow_records += batch.flow[..sent]
            .iter()
            .map(|&n| u64::from(n))
            .sum::<u64>();
        stats.options_records += batch.options[..sent]
            .iter()
            .map(|&n| u64::from(n))
            .sum::<u64>();
        stats.bytes += batch.spans[..sent]
            .iter()
            .map(|&(_, l)| l as u64)
            .sum::<u64>();
    }
    // A timed run lasts its duration; a counted one ends with its last datagram.
    stats.elapsed = match deadline {
        Some(d) => d.min(start.elapsed()),
        None => last_send - start,
    };
    stats.loops = (0..cfg.exporters)
        .map(|e| sched.loops_done(gen.position(e)))
        .min()
        .unwrap_or(0);
    Ok(stats)
}
