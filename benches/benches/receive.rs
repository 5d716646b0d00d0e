//! End-to-end UDP receive on loopback: which way should a Sluice receive thread read its socket?
//!
//! Not a criterion bench: each figure is a whole run of a sender thread and a receiver thread on
//! a real socket, and the number that matters is the receiver's CPU time, which criterion does
//! not measure. `cargo bench -p sluice-benches --bench receive` prints Markdown tables.
//!
//! Each run binds a fresh UDP socket on 127.0.0.1 with a 64 MiB `SO_RCVBUFFORCE` and
//! `SO_RXQ_OVFL` (as `ingest/src/udp.rs` does), pins the receiver to CPU 1 and a sender to
//! CPU 0, and has the sender `sendmmsg` NetFlow-v9-shaped datagrams (1400 bytes, a full export
//! packet, and 100 bytes, a one-record packet) from a connected socket. Two modes:
//!
//! - **stream**: the sender blasts `--count` datagrams (or for `--seconds`) while the receiver
//!   reads; the receiver waits whenever it has caught up, so wake-ups are part of the cost;
//! - **drain**: in each round the sender queues 32768 datagrams while the receiver is parked,
//!   then the receiver reads them all: the cost per datagram when it never has to wait, i.e.
//!   the ceiling of one core.
//!
//! The receiver is measured from the moment the round starts to the moment it reads the round's
//! end marker (a short datagram the sender repeats every millisecond once its data is out, so
//! every data datagram before it has been read or dropped): datagrams read, thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, with the user/system split from `getrusage(RUSAGE_THREAD)`),
//! process CPU time (so work that io_uring might hand to worker threads would show), wall time,
//! the kernel's drop count (`/proc/net/udp`), sent minus received, the receiver's voluntary
//! (slept) and involuntary (preempted) context switches, and a checksum over the sequence
//! numbers so no variant can skip the payload. On loopback the sender's CPU does the kernel's
//! receive-side work (softirq, socket enqueue, wake-up), so datagrams per receiver CPU-second is
//! the fair figure; wall rates depend on the sender and, on a shared machine, on whatever else
//! runs (both threads ask for nice -20 to keep that small). Repetitions are interleaved across
//! variants so a busy moment does not land on one variant only.
//!
//! Receivers, each doing the same per-datagram work (source address, truncation flag,
//! `SO_RXQ_OVFL` where it can, sequence number):
//!
//! 1. `recvmmsg`: Sluice's loop: `poll` when the last batch was not full, then one
//!    `recvmmsg(MSG_DONTWAIT | MSG_TRUNC)` of 64 datagrams into 64 KiB buffers;
//! 2. `io_uring multishot`: one `IORING_OP_RECVMSG` with `IORING_RECV_MULTISHOT` over a
//!    provided-buffer ring (`IORING_REGISTER_PBUF_RING`) of 64 KiB buffers, re-provided as
//!    completions are consumed, `SINGLE_ISSUER | DEFER_TASKRUN`, re-armed when the kernel ends
//!    it; source and flags from each buffer's `io_uring_recvmsg_out` header. Needs Linux 6.0;
//! 3. `monoio io_uring` and `monoio epoll`: `monoio::net::udp::UdpSocket::recv_from` in a loop on
//!    monoio's io_uring driver and on its legacy (epoll) driver. monoio 0.2 has no multishot
//!    receive and no access to control messages or `MSG_TRUNC`.
//!
//! Arguments (after `--`): `--count N` (default 2000000), `--seconds S` (stream mode time
//! limit, default 5), `--reps N` (default 3, the median is shown), `--mode stream|drain|both`,
//! and any other word filters the variants by name. Run without cargo bench's `--bench` flag
//! (`cargo test --benches`), it does one quick pass of 20000 datagrams as a smoke test.

use std::alloc::{self, Layout};
use std::hint::black_box;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, IoUring};
use socket2::{Domain, Protocol, Socket, Type};

/// Buffer per datagram, as `ingest::udp::DEFAULT_MAX_DATAGRAM`: one byte more than the largest
/// UDP payload, so a full buffer can only mean truncation.
const MAX_DATAGRAM: usize = 65536 + 1;
/// Datagrams per `recvmmsg`/`sendmmsg` call, as Sluice's default.
const BATCH: usize = 64;
/// Requested receive buffer; the kernel doubles it (128 MiB granted).
const RCVBUF: usize = 64 << 20;
/// Datagrams queued per drain round. Loopback skbs weigh 2304 bytes (1400-byte payload) and
/// 832 bytes (100-byte payload) against the receive buffer on Linux 6.x, so 32768 of either fit
/// in 128 MiB with room to spare: a drain round has no drops.
const DRAIN_ROUND: u64 = 32768;
/// Where the sender's sequence number sits in a NetFlow v9 header (RFC 3954 §5.1).
const SEQ_OFFSET: usize = 12;
/// End-of-round marker: this text and the round number (big-endian `u32`).
const MARKER: &[u8; 4] = b"STOP";
const MARKER_LEN: usize = 8;
const TX_CPU: usize = 0;
const RX_CPU: usize = 1;
/// `recvmmsg` control buffer per datagram, as Sluice's `CMSG_BUF`.
const CMSG_BUF: usize = 4 * cmsg_space(size_of::<u32>());
/// The receiver gives up after this long without its end marker (a bug, not a slow run).
const STALL_LIMIT: Duration = Duration::from_secs(60);

const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

const fn cmsg_space(len: usize) -> usize {
    cmsg_align(size_of::<libc::cmsghdr>()) + cmsg_align(len)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stream,
    Drain,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Recvmmsg,
    UringMultishot,
    MonoioUring,
    MonoioEpoll,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Recvmmsg,
        Variant::UringMultishot,
        Variant::MonoioUring,
        Variant::MonoioEpoll,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Recvmmsg => "recvmmsg x64 (Sluice today)",
            Variant::UringMultishot => "io_uring multishot RecvMsg + buf ring",
            Variant::MonoioUring => "monoio io_uring driver, recv_from",
            Variant::MonoioEpoll => "monoio legacy (epoll) driver, recv_from",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    count: u64,
    seconds: f64,
    reps: usize,
    modes: Vec<Mode>,
    filter: Vec<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            count: 2_000_000,
            seconds: 5.0,
            reps: 3,
            modes: vec![Mode::Stream, Mode::Drain],
            filter: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        let mut bench = false;
        let mut count_given = false;
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--count" => {
                    args.count = value("--count")?.parse().map_err(|e| format!("{e}"))?;
                    count_given = true;
                }
                "--seconds" => {
                    args.seconds = value("--seconds")?.parse().map_err(|e| format!("{e}"))?
                }
                "--reps" => args.reps = value("--reps")?.parse().map_err(|e| format!("{e}"))?,
                "--mode" => {
                    args.modes = match value("--mode")?.as_str() {
                        "stream" => vec![Mode::Stream],
                        "drain" => vec![Mode::Drain],
                        "both" => vec![Mode::Stream, Mode::Drain],
                        other => return Err(format!("unknown mode {other}")),
                    }
                }
                // What `cargo bench` passes to every bench binary; `cargo test --benches`
                // does not, and then a quick smoke run is enough.
                "--bench" => bench = true,
                other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
                other => args.filter.push(other.to_lowercase()),
            }
        }
        if !bench && !count_given {
            args.count = 20_000;
            args.reps = 1;
        }
        if args.reps == 0 || args.count == 0 {
            return Err("--reps and --count must be positive".into());
        }
        Ok(args)
    }

    fn wants(&self, v: Variant) -> bool {
        let name = v.name().to_lowercase();
        self.filter.is_empty() || self.filter.iter().any(|f| name.contains(f.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------
// What every receiver does with a datagram.

/// Per-run counts, updated identically by every variant.
#[derive(Debug, Clone, Copy)]
struct Tally {
    /// The sender's address: every datagram must come from it.
    expect_src: SocketAddr,
    /// The round whose end marker stops the receiver.
    round: u32,
    datagrams: u64,
    bytes: u64,
    truncated: u64,
    wrong_source: u64,
    stale_markers: u64,
    /// Sum of sequence numbers, checked against the sender's.
    seq_sum: u64,
    /// Highest `SO_RXQ_OVFL` value seen (the socket's cumulative drop count).
    rxq_ovfl: Option<u32>,
}

impl Tally {
    fn new(expect_src: SocketAddr) -> Tally {
        Tally {
            expect_src,
            round: 0,
            datagrams: 0,
            bytes: 0,
            truncated: 0,
            wrong_source: 0,
            stale_markers: 0,
            seq_sum: 0,
            rxq_ovfl: None,
        }
    }

    /// Takes one datagram; true when it is this round's end marker.
    #[inline]
    fn take(&mut self, src: Option<SocketAddr>, payload: &[u8], len: usize, trunc: bool) -> bool {
        if src != Some(self.expect_src) {
            self.wrong_source += 1;
        }
        if len == MARKER_LEN && payload.starts_with(MARKER) {
            let round = payload
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes);
            if round == Some(self.round) {
                return true;
            }
            self.stale_markers += 1;
            return false;
        }
        self.datagrams += 1;
        self.bytes += len as u64;
        self.truncated += u64::from(trunc);
        let seq = payload
            .get(SEQ_OFFSET..SEQ_OFFSET + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes);
        self.seq_sum = self.seq_sum.wrapping_add(u64::from(seq));
        false
    }

    fn observe_ovfl(&mut self, control: &[u8]) {
        if let Some(raw) = find_rxq_ovfl(control) {
            self.rxq_ovfl = Some(self.rxq_ovfl.map_or(raw, |old| old.max(raw)));
        }
    }
}

/// A kernel-written socket address, read from its bytes (`sockaddr_in` or `sockaddr_in6`).
#[inline]
fn sockaddr_from_bytes(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match libc::c_int::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// The `SO_RXQ_OVFL` value in a filled control buffer (the kernel's `cmsghdr` layout).
#[inline]
fn find_rxq_ovfl(control: &[u8]) -> Option<u32> {
    const LEN: usize = size_of::<libc::size_t>();
    const HDR: usize = cmsg_align(size_of::<libc::cmsghdr>());
    let mut at = 0usize;
    while let Some(hdr) = control.get(at..at + HDR) {
        let cmsg_len = usize::from_ne_bytes(hdr.get(..LEN)?.try_into().ok()?);
        let level = i32::from_ne_bytes(hdr.get(LEN..LEN + 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(hdr.get(LEN + 4..LEN + 8)?.try_into().ok()?);
        if cmsg_len < HDR {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL {
            let data = control.get(at + HDR..at + HDR + 4)?;
            return Some(u32::from_ne_bytes(data.try_into().ok()?));
        }
        at = at.checked_add(cmsg_align(cmsg_len))?;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Clocks and the round protocol shared by sender and receiver.

#[derive(Debug, Clone, Copy)]
struct Clocks {
    wall: Instant,
    thread: Duration,
    process: Duration,
    user: Duration,
    sys: Duration,
    /// Voluntary (slept) and involuntary (preempted) context switches of the thread.
    nvcsw: u64,
    nivcsw: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    wall: Duration,
    thread: Duration,
    process: Duration,
    user: Duration,
    sys: Duration,
    nvcsw: u64,
    nivcsw: u64,
}

impl Clocks {
    fn now() -> Clocks {
        let ru = thread_rusage();
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec * 1000) as u32);
        Clocks {
            wall: Instant::now(),
            thread: cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID),
            process: cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID),
            user: tv(ru.ru_utime),
            sys: tv(ru.ru_stime),
            nvcsw: ru.ru_nvcsw as u64,
            nivcsw: ru.ru_nivcsw as u64,
        }
    }

    fn add_since(self, start: Clocks, to: &mut Spent) {
        to.wall += self.wall - start.wall;
        to.thread += self.thread.saturating_sub(start.thread);
        to.process += self.process.saturating_sub(start.process);
        to.user += self.user.saturating_sub(start.user);
        to.sys += self.sys.saturating_sub(start.sys);
        to.nvcsw += self.nvcsw.saturating_sub(start.nvcsw);
        to.nivcsw += self.nivcsw.saturating_sub(start.nivcsw);
    }
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec on the stack; the clock ids used are always present.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn thread_rusage() -> libc::rusage {
    // SAFETY: rusage is a plain C struct of integers; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_THREAD is Linux's per-thread figure. On
    // failure `ru` stays zeroed.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru
}

/// Pins the calling thread to one CPU, so sender and receiver never share a core, and raises
/// its weight (nice -20, best effort) so other work on a shared machine disturbs it less.
fn pin_to(cpu: usize) {
    // SAFETY: plain syscalls on the calling thread (tid 0 means "this thread" for
    // setpriority's PRIO_PROCESS on Linux); failure only leaves the default priority.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, -20) != 0 {
            eprintln!("note: could not renice the benchmark threads");
        }
    }
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (callers pass 0 or 1) and `set` is a valid cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        eprintln!(
            "warning: could not pin to CPU {cpu}: {}",
            io::Error::last_os_error()
        );
    }
}

/// What sender and receiver threads of one run share.
#[derive(Debug)]
struct Rounds {
    mode: Mode,
    rounds: u32,
    /// Both threads meet here at the start of every round.
    go: Barrier,
    /// Drain mode: the sender has queued the round's data.
    filled: Barrier,
    /// How many rounds the receiver has finished (the sender's markers stop then).
    finished: AtomicU32,
}

impl Rounds {
    /// Runs the receiver's side: `round` reads until the round's marker, and only that is timed.
    fn receive(
        &self,
        tally: &mut Tally,
        mut round: impl FnMut(&mut Tally) -> io::Result<()>,
    ) -> io::Result<Spent> {
        let mut spent = Spent::default();
        for r in 0..self.rounds {
            tally.round = r;
            self.go.wait();
            if self.mode == Mode::Drain {
                self.filled.wait();
            }
            let start = Clocks::now();
            let result = round(tally);
            Clocks::now().add_since(start, &mut spent);
            // Stop the sender's markers even on error, so it does not wait for us.
            self.finished.store(r + 1, Ordering::Release);
            result?;
        }
        Ok(spent)
    }
}

// ---------------------------------------------------------------------------------------------
// The sender.

#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    datagrams: u64,
    seq_sum: u64,
    spent: Spent,
}

/// A NetFlow v9 export packet of `size` bytes: the 20-byte header (version 9, record count,
/// sysUptime, export time, sequence, source id) and one data FlowSet (id 256) of 48-byte
/// records padded to `size`. Its content is not decoded here; its size and header are real.
fn v9_datagram(size: usize) -> Vec<u8> {
    let size = size.max(24);
    let records = ((size - 24) / 48).max(1) as u16;
    let mut d = Vec::with_capacity(size);
    d.extend_from_slice(&9u16.to_be_bytes());
    d.extend_from_slice(&records.to_be_bytes());
    d.extend_from_slice(&123_456u32.to_be_bytes());
    d.extend_from_slice(&1_795_000_000u32.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&256u16.to_be_bytes());
    d.extend_from_slice(&((size - 20) as u16).to_be_bytes());
    let mut x = 0x9e37_79b9u32;
    while d.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d.push(x as u8);
    }
    d
}

struct Sender {
    socket: Socket,
    bufs: Vec<Vec<u8>>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Sender {
    fn new(socket: Socket, size: usize) -> Sender {
        let template = v9_datagram(size);
        let bufs = vec![template; BATCH];
        let empty_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: mmsghdr is a plain C struct of integers and pointers; all zeroes (no name, no
        // control, null iov) is valid, and `send_batch` points it at buffers before each call.
        let empty_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Sender {
            socket,
            bufs,
            iovecs: vec![empty_iov; BATCH],
            msgs: vec![empty_msg; BATCH],
        }
    }

    /// Sends `n` (at most `BATCH`) datagrams numbered from `seq`; how many the kernel took.
    fn send_batch(&mut self, seq: u32, n: usize) -> io::Result<usize> {
        let n = n.min(BATCH);
        let parts = self
            .msgs
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.bufs.iter_mut())
            .take(n);
        for (i, ((msg, iov), buf)) in (0u32..).zip(parts) {
            if let Some(s) = buf.get_mut(SEQ_OFFSET..SEQ_OFFSET + 4) {
                s.copy_from_slice(&seq.wrapping_add(i).to_be_bytes());
            }
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = buf.len();
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
            msg.msg_len = 0;
        }
        loop {
            // SAFETY: the fd is a connected UDP socket owned by `self.socket`; the first `n`
            // mmsghdrs point at iovecs and buffers owned by `self`, alive for the call.
            let rc = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    self.msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    0,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR | libc::ENOBUFS | libc::EAGAIN) => continue,
                _ => return Err(err),
            }
        }
    }

    fn run(mut self, rounds: &Rounds, per_round: u64, limit: Duration) -> io::Result<Sent> {
        let mut sent = Sent::default();
        for r in 0..rounds.rounds {
            rounds.go.wait();
            let start = Clocks::now();
            let mut n = 0u64;
            while n < per_round {
                if rounds.mode == Mode::Stream && start.wall.elapsed() > limit {
                    break;
                }
                let want = (per_round - n).min(BATCH as u64) as usize;
                let seq = sent.datagrams as u32;
                let got = self.send_batch(seq, want)?;
                for i in 0..got as u32 {
                    sent.seq_sum = sent.seq_sum.wrapping_add(u64::from(seq.wrapping_add(i)));
                }
                n += got as u64;
                sent.datagrams += got as u64;
            }
            Clocks::now().add_since(start, &mut sent.spent);
            if rounds.mode == Mode::Drain {
                rounds.filled.wait();
            }
            // The end marker, repeated until the receiver has seen it (it can be dropped when
            // the receive buffer is full, and a round must never hang on that).
            let mut marker = [0u8; MARKER_LEN];
            marker[..4].copy_from_slice(MARKER);
            marker[4..].copy_from_slice(&r.to_be_bytes());
            let since = Instant::now();
            while rounds.finished.load(Ordering::Acquire) <= r {
                self.socket.send(&marker)?;
                std::thread::sleep(Duration::from_millis(1));
                if since.elapsed() > STALL_LIMIT {
                    eprintln!("receiver never read the end marker of round {r}; giving up");
                    std::process::exit(2);
                }
            }
        }
        Ok(sent)
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver 1: recvmmsg, as ingest/src/udp.rs.

struct Mmsg {
    fd: RawFd,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<u8>,
    msgs: Vec<libc::mmsghdr>,
    /// The last batch was full: read again before polling.
    read_first: bool,
}

impl Mmsg {
    fn new(fd: RawFd) -> Mmsg {
        let empty_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: sockaddr_storage is a plain C struct of integers; zeroes is AF_UNSPEC.
        let empty_name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: as for the sender's mmsghdrs; `prepare` fills them before each call.
        let empty_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Mmsg {
            fd,
            // Written, not just allocated, so page faults are not part of the first round.
            bufs: vec![1u8; BATCH * MAX_DATAGRAM],
            iovecs: vec![empty_iov; BATCH],
            names: vec![empty_name; BATCH],
            controls: vec![0u8; BATCH * CMSG_BUF],
            msgs: vec![empty_msg; BATCH],
            read_first: false,
        }
    }

    /// As `Receiver::prepare`: every header is pointed at its buffers before each call.
    fn prepare(&mut self) {
        let parts = self
            .msgs
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.bufs.chunks_exact_mut(MAX_DATAGRAM))
            .zip(self.names.iter_mut())
            .zip(self.controls.chunks_exact_mut(CMSG_BUF));
        for ((((msg, iov), buf), name), control) in parts {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = buf.len();
            let hdr = &mut msg.msg_hdr;
            hdr.msg_name = std::ptr::from_mut(name).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_controllen = control.len() as _;
            hdr.msg_flags = 0;
            msg.msg_len = 0;
        }
    }

    fn round(&mut self, tally: &mut Tally) -> io::Result<()> {
        let started = Instant::now();
        loop {
            if !self.read_first && !poll_readable(self.fd, Duration::from_millis(100))? {
                if started.elapsed() > STALL_LIMIT {
                    return Err(io::Error::other("no end marker"));
                }
                continue;
            }
            self.prepare();
            let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
            // SAFETY: the fd is an open UDP socket; `msgs` holds BATCH headers that `prepare`
            // has just pointed at buffers owned by `self`, which `&mut self` keeps alive and
            // unaliased for the call.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd,
                    self.msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    flags as _,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        self.read_first = false;
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(err),
                }
            }
            let n = (rc as usize).min(BATCH);
            self.read_first = n == BATCH;
            let mut done = false;
            let items = self
                .msgs
                .iter()
                .zip(&self.names)
                .zip(self.bufs.chunks_exact(MAX_DATAGRAM))
                .zip(self.controls.chunks_exact(CMSG_BUF))
                .take(n);
            for (((msg, name), buf), control) in items {
                let hdr = &msg.msg_hdr;
                let namelen = (hdr.msg_namelen as usize).min(size_of::<libc::sockaddr_storage>());
                // SAFETY: sockaddr_storage is plain bytes, initialised at creation, and
                // `namelen` is capped at its size.
                let name = unsafe {
                    std::slice::from_raw_parts(std::ptr::from_ref(name).cast::<u8>(), namelen)
                };
                #[allow(clippy::unnecessary_cast)]
                let used = (hdr.msg_controllen as usize).min(CMSG_BUF);
                if hdr.msg_flags & libc::MSG_CTRUNC == 0 {
                    tally.observe_ovfl(control.get(..used).unwrap_or_default());
                }
                let len = msg.msg_len as usize;
                let payload = buf.get(..len.min(MAX_DATAGRAM)).unwrap_or_default();
                let trunc = hdr.msg_flags & libc::MSG_TRUNC != 0;
                done |= tally.take(sockaddr_from_bytes(name), payload, len, trunc);
            }
            if done {
                return Ok(());
            }
        }
    }
}

fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is a valid pollfd on the stack and nfds is 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(rc > 0)
}

// ---------------------------------------------------------------------------------------------
// Receiver 2: io_uring multishot RecvMsg over a provided-buffer ring.

/// Buffer group id of the ring.
const BGID: u16 = 7;
/// Buffers in the ring. Each holds one datagram; 256 x 68 KiB is 17 MiB, against Sluice's
/// 64 x 64 KiB for recvmmsg. The kernel ends the multishot with `ENOBUFS` when it finds the ring
/// empty, and the loop re-arms it (counted).
const RING_BUFS: u16 = 256;
/// Space reserved for the source address in each buffer: a `sockaddr_in6` fits either family.
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// Each buffer: `io_uring_recvmsg_out` (16 bytes), the name, the control space, then the
/// payload, rounded up to whole pages.
const RING_BUF_LEN: usize = (16 + NAME_LEN + CMSG_BUF + MAX_DATAGRAM).next_multiple_of(4096);
const RECV_TAG: u64 = 1;
const CANCEL_TAG: u64 = 2;

/// One slot of a provided-buffer ring, the kernel's `struct io_uring_buf`. The ring's tail is
/// the `resv` field of slot 0, so slots are written field by field, never as a whole.
#[repr(C)]
struct RingSlot {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(size_of::<RingSlot>() == size_of::<types::BufRingEntry>());

/// Page-aligned memory the kernel reads (slots) or writes (buffers) behind our back, so it is
/// only ever reached through raw pointers.
struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Region {
    fn new(len: usize) -> io::Result<Region> {
        let layout = Layout::from_size_align(len, 4096).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (callers pass at least one slot or buffer).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::other("out of memory"))?;
        Ok(Region { ptr, layout })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

struct BufRing {
    slots: Region,
    bufs: Region,
    /// Our copy of the tail; the kernel sees it when `publish` stores it.
    tail: u16,
}

impl BufRing {
    fn new() -> io::Result<BufRing> {
        let slots = Region::new(usize::from(RING_BUFS) * size_of::<RingSlot>())?;
        let bufs = Region::new(usize::from(RING_BUFS) * RING_BUF_LEN)?;
        // Touch every page now, as the recvmmsg variant does, so no round pays the faults.
        // SAFETY: `bufs` is a live allocation of exactly this length, not yet shared.
        unsafe { std::ptr::write_bytes(bufs.ptr.as_ptr(), 1, bufs.layout.size()) };
        let mut ring = BufRing {
            slots,
            bufs,
            tail: 0,
        };
        for bid in 0..RING_BUFS {
            ring.provide(bid);
        }
        ring.publish();
        Ok(ring)
    }

    fn slot(&self, i: u16) -> *mut RingSlot {
        let i = usize::from(i & (RING_BUFS - 1));
        // SAFETY: i < RING_BUFS, so the slot lies inside the `slots` allocation.
        unsafe { self.slots.ptr.as_ptr().cast::<RingSlot>().add(i) }
    }

    /// Hands buffer `bid` back to the kernel at the tail (visible after `publish`).
    fn provide(&mut self, bid: u16) {
        let slot = self.slot(self.tail);
        let addr = self.buf_ptr(bid) as u64;
        // SAFETY: `slot` is inside the ring; the kernel reads only slots between its head and
        // the published tail, and this one is past the tail. Fields are written one by one so
        // slot 0's `resv` (the tail) is never overwritten.
        unsafe {
            std::ptr::addr_of_mut!((*slot).addr).write(addr);
            std::ptr::addr_of_mut!((*slot).len).write(RING_BUF_LEN as u32);
            std::ptr::addr_of_mut!((*slot).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every slot written by `provide` visible to the kernel.
    fn publish(&self) {
        let tail = self.slots.ptr.as_ptr().cast::<RingSlot>();
        // SAFETY: slot 0's `resv` field is the ring's u16 tail, aligned for an atomic u16; the
        // kernel only reads it, with acquire ordering, so a release store publishes the slots.
        let tail = unsafe { AtomicU16::from_ptr(std::ptr::addr_of_mut!((*tail).resv)) };
        tail.store(self.tail, Ordering::Release);
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        let bid = usize::from(bid % RING_BUFS);
        // SAFETY: bid < RING_BUFS, so the offset lies inside the `bufs` allocation.
        unsafe { self.bufs.ptr.as_ptr().add(bid * RING_BUF_LEN) }
    }

    /// The first `len` bytes of buffer `bid`, which a completion has just handed back.
    ///
    /// # Safety
    /// `bid` must come from a completion and must not have been provided again yet: only then
    /// is the kernel done writing it.
    unsafe fn filled(&self, bid: u16, len: usize) -> &[u8] {
        // SAFETY: the buffer is RING_BUF_LEN bytes inside `bufs` and the caller guarantees the
        // kernel no longer writes it.
        unsafe { std::slice::from_raw_parts(self.buf_ptr(bid), len.min(RING_BUF_LEN)) }
    }
}

struct Multishot {
    // Field order is drop order: the ring (and with it every request) goes before the buffers.
    ring: IoUring,
    bufs: BufRing,
    fd: RawFd,
    /// The msghdr the kernel reads the name and control lengths from; boxed so its address is
    /// stable while the request is armed.
    msg: Box<libc::msghdr>,
    armed: bool,
    /// Times the request was submitted: once, plus a re-arm each time the kernel ended it.
    arms: u64,
    enobufs: u64,
    defer_taskrun: bool,
}

impl Multishot {
    fn new(fd: RawFd) -> io::Result<Multishot> {
        // SINGLE_ISSUER | DEFER_TASKRUN (6.1+): completions are produced only when this thread
        // asks for them, in this thread, so the receive work is on the receiver's clock and
        // batches up while it is busy.
        let (ring, defer_taskrun) = match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(4096)
            .build(64)
        {
            Ok(ring) => (ring, true),
            Err(_) => (IoUring::builder().setup_cqsize(4096).build(64)?, false),
        };
        let bufs = BufRing::new()?;
        // SAFETY: the slots are page aligned, RING_BUFS long, and live as long as `bufs`, which
        // `Multishot` drops after the ring (field order) and after unregistering (`Drop`).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.slots.ptr.as_ptr() as u64,
                RING_BUFS,
                BGID,
                0,
            )?;
        }
        // SAFETY: msghdr is a plain C struct; all zeroes is valid. The kernel reads only the
        // name and control lengths of a multishot RecvMsg; data goes to the provided buffers.
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_namelen = NAME_LEN as libc::socklen_t;
        msg.msg_controllen = CMSG_BUF as _;
        Ok(Multishot {
            ring,
            bufs,
            fd,
            msg,
            armed: false,
            arms: 0,
            enobufs: 0,
            defer_taskrun,
        })
    }

    fn arm(&mut self) -> io::Result<()> {
        let entry =
            opcode::RecvMsgMulti::new(types::Fd(self.fd), std::ptr::from_ref(&*self.msg), BGID)
                .flags(libc::MSG_TRUNC as u32)
                .build()
                .user_data(RECV_TAG);
        // SAFETY: the entry points at `self.msg` (boxed, kept until the ring is gone) and at
        // the registered buffer group; the fd outlives the ring (the caller drops us first).
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("submission queue full"))?;
        self.armed = true;
        self.arms += 1;
        Ok(())
    }

    fn round(&mut self, tally: &mut Tally) -> io::Result<()> {
        let mut done = false;
        while !done {
            if !self.armed {
                self.arm()?;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
            for cqe in self.ring.completion() {
                if cqe.user_data() != RECV_TAG {
                    continue;
                }
                let flags = cqe.flags();
                if !cqueue::more(flags) {
                    self.armed = false;
                }
                let res = cqe.result();
                if res < 0 {
                    if res == -libc::ENOBUFS {
                        self.enobufs += 1;
                        continue;
                    }
                    return Err(io::Error::from_raw_os_error(-res));
                }
                let bid = cqueue::buffer_select(flags)
                    .ok_or_else(|| io::Error::other("completion without a buffer"))?;
                // SAFETY: the kernel has handed `bid` back with this completion and it is
                // provided again only below, after the last use of `data`.
                let data = unsafe { self.bufs.filled(bid, res as usize) };
                let out = types::RecvMsgOut::parse(data, &self.msg)
                    .map_err(|()| io::Error::other("short recvmsg_out buffer"))?;
                if !out.is_control_data_truncated() {
                    tally.observe_ovfl(out.control_data());
                }
                let src = if out.is_name_data_truncated() {
                    None
                } else {
                    sockaddr_from_bytes(out.name_data())
                };
                // With MSG_TRUNC the header's payload length is the datagram's real length.
                done |= tally.take(
                    src,
                    out.payload_data(),
                    out.incoming_payload_len() as usize,
                    out.is_payload_truncated(),
                );
                self.bufs.provide(bid);
            }
            self.bufs.publish();
        }
        Ok(())
    }

    /// Cancels the armed request and waits for its last completion, so the kernel is done
    /// with the buffers before they are freed.
    fn shutdown(&mut self) -> io::Result<()> {
        if !self.armed {
            return Ok(());
        }
        let cancel = opcode::AsyncCancel::new(RECV_TAG)
            .build()
            .user_data(CANCEL_TAG);
        // SAFETY: a cancel entry carries no pointers.
        unsafe { self.ring.submission().push(&cancel) }
            .map_err(|_| io::Error::other("submission queue full"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.armed && Instant::now() < deadline {
            self.ring.submit_and_wait(1)?;
            for cqe in self.ring.completion() {
                if cqe.user_data() == RECV_TAG {
                    if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                        self.bufs.provide(bid);
                    }
                    if !cqueue::more(cqe.flags()) {
                        self.armed = false;
                    }
                }
            }
            self.bufs.publish();
        }
        Ok(())
    }
}

impl Drop for Multishot {
    fn drop(&mut self) {
        let _ = self.shutdown();
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}

/// `(major, minor)` of the running kernel.
fn kernel_release() -> (String, (u32, u32)) {
    // SAFETY: utsname is a plain C struct of char arrays; all zeroes is valid.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (String::from("unknown"), (0, 0));
    }
    let release: String = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (release, (major, minor))
}

// ---------------------------------------------------------------------------------------------
// Receivers 3 and 4: monoio.

async fn monoio_round(
    socket: &monoio::net::udp::UdpSocket,
    buf: &mut Vec<u8>,
    tally: &mut Tally,
) -> io::Result<()> {
    loop {
        let (res, back) = socket.recv_from(std::mem::take(buf)).await;
        *buf = back;
        let (n, src) = res?;
        // recv_from reports the bytes copied only: no MSG_TRUNC, so no truncation flag.
        let payload = buf.get(..n).unwrap_or_default();
        if tally.take(Some(src), payload, n, false) {
            return Ok(());
        }
    }
}

fn monoio_session<D: monoio::Driver>(
    mut rt: monoio::Runtime<D>,
    socket: std::net::UdpSocket,
    rounds: &Rounds,
    tally: &mut Tally,
) -> io::Result<(Spent, u64)> {
    let inode = socket_inode(socket.as_raw_fd())?;
    let socket = rt.block_on(async move { monoio::net::udp::UdpSocket::from_std(socket) })?;
    // monoio's IoBufMut for Vec uses the capacity; filled once so no round pays page faults.
    let mut buf = vec![1u8; MAX_DATAGRAM];
    let spent = rounds.receive(tally, |tally| {
        rt.block_on(monoio_round(&socket, &mut buf, tally))
    });
    let drops = proc_udp_drops(inode);
    rt.block_on(async move { drop(socket) });
    Ok((spent?, drops?))
}

// ---------------------------------------------------------------------------------------------
// One run.

#[derive(Debug, Clone, Copy)]
struct Run {
    sent: Sent,
    tally: Tally,
    rx: Spent,
    kernel_drops: u64,
    rearms: u64,
    enobufs: u64,
}

impl Run {
    /// Datagrams per receiver CPU-second.
    fn rate(&self) -> f64 {
        self.tally.datagrams as f64 / self.rx.thread.as_secs_f64().max(1e-9)
    }
}

fn socket_inode(fd: RawFd) -> io::Result<u64> {
    Ok(std::fs::metadata(format!("/proc/self/fd/{fd}"))?.ino())
}

/// The `drops` column of `/proc/net/udp` for the socket with this inode. The file is read in
/// pages while other programs open and close sockets, so a line can be missed: read again.
fn proc_udp_drops(inode: u64) -> io::Result<u64> {
    for _ in 0..10 {
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        for line in std::fs::read_to_string("/proc/net/udp")?.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(9).and_then(|c| c.parse::<u64>().ok()) == Some(inode) {
                return cols
                    .get(12)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| io::Error::other(format!("no drops column: {line}")));
            }
        }
    }
    Err(io::Error::other(format!(
        "inode {inode} not in /proc/net/udp"
    )))
}

fn receiver_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(RCVBUF)?;
    set_int_option(&socket, libc::SO_RCVBUFFORCE, RCVBUF)?;
    set_int_option(&socket, libc::SO_RXQ_OVFL, 1)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    Ok(socket)
}

fn set_int_option(socket: &Socket, name: libc::c_int, value: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: the fd is an open socket; the value is a c_int on the stack with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            std::ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The receiver thread's side of one run: set up, run every round, read the drop count.
fn receive(
    variant: Variant,
    socket: Socket,
    rounds: &Rounds,
    tally: &mut Tally,
) -> io::Result<(Spent, u64, u64, u64)> {
    let fd = socket.as_raw_fd();
    match variant {
        Variant::Recvmmsg => {
            let mut rx = Mmsg::new(fd);
            let spent = rounds.receive(tally, |t| rx.round(t))?;
            Ok((spent, proc_udp_drops(socket_inode(fd)?)?, 0, 0))
        }
        Variant::UringMultishot => {
            let mut rx = Multishot::new(fd)?;
            if !rx.defer_taskrun {
                eprintln!("note: IORING_SETUP_DEFER_TASKRUN refused; plain ring used");
            }
            let spent = rounds.receive(tally, |t| rx.round(t))?;
            let drops = proc_udp_drops(socket_inode(fd)?)?;
            let (rearms, enobufs) = (rx.arms.saturating_sub(1), rx.enobufs);
            drop(rx);
            drop(socket);
            Ok((spent, drops, rearms, enobufs))
        }
        Variant::MonoioUring => {
            let rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(256)
                .build()?;
            let (spent, drops) = monoio_session(rt, socket.into(), rounds, tally)?;
            Ok((spent, drops, 0, 0))
        }
        Variant::MonoioEpoll => {
            // monoio's own `bind` makes the socket non-blocking for this driver; `from_std`
            // leaves that to the caller.
            socket.set_nonblocking(true)?;
            let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build()?;
            let (spent, drops) = monoio_session(rt, socket.into(), rounds, tally)?;
            Ok((spent, drops, 0, 0))
        }
    }
}

fn run_once(variant: Variant, mode: Mode, size: usize, args: &Args) -> io::Result<Run> {
    let rx_socket = receiver_socket()?;
    let to = rx_socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))?;
    let tx_socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    tx_socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    tx_socket.connect(&to.into())?;
    let from = tx_socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))?;

    let (rounds, per_round) = match mode {
        Mode::Stream => (1, args.count),
        Mode::Drain => (args.count.div_ceil(DRAIN_ROUND) as u32, DRAIN_ROUND),
    };
    let shared = Arc::new(Rounds {
        mode,
        rounds,
        go: Barrier::new(2),
        filled: Barrier::new(2),
        finished: AtomicU32::new(0),
    });
    let limit = Duration::from_secs_f64(args.seconds);

    let rx_shared = Arc::clone(&shared);
    let receiver = std::thread::spawn(move || {
        pin_to(RX_CPU);
        let mut tally = Tally::new(from);
        let result = receive(variant, rx_socket, &rx_shared, &mut tally);
        if result.is_err() {
            // Release a sender still waiting for this round to end.
            rx_shared.finished.store(u32::MAX, Ordering::Release);
        }
        result.map(|r| (r, tally))
    });
    let tx_shared = Arc::clone(&shared);
    let sender = std::thread::spawn(move || {
        pin_to(TX_CPU);
        Sender::new(tx_socket, size).run(&tx_shared, per_round, limit)
    });
    let rx = receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))?;
    let sent = sender
        .join()
        .map_err(|_| io::Error::other("sender panicked"))??;
    let ((spent, kernel_drops, rearms, enobufs), tally) = rx?;
    Ok(Run {
        sent,
        tally,
        rx: spent,
        kernel_drops,
        rearms,
        enobufs,
    })
}

// ---------------------------------------------------------------------------------------------
// Report.

fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn print_header(mode: Mode) {
    println!();
    println!("### {} mode", mode.name());
    println!();
    println!(
        "| size | receiver | datagrams / rx CPU-s (median; min-max) | rx CPU ns / datagram (user + sys) | received / sent | lost (kernel drops) | wall rate | rx sleeps / preemptions per 1k datagrams | process CPU / rx CPU | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

fn print_row(size: usize, variant: Variant, runs: &mut [Run]) {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let Some(median) = runs.get(runs.len() / 2) else {
        return;
    };
    let lo = runs.first().map_or(0.0, Run::rate);
    let hi = runs.last().map_or(0.0, Run::rate);
    let m = median;
    let n = m.tally.datagrams.max(1) as f64;
    let ns = |d: Duration| d.as_nanos() as f64 / n;
    let mut notes = Vec::new();
    if m.tally.truncated > 0 {
        notes.push(format!("{} truncated", m.tally.truncated));
    }
    if m.tally.wrong_source > 0 {
        notes.push(format!("{} wrong source", m.tally.wrong_source));
    }
    if m.tally.seq_sum != m.sent.seq_sum && m.tally.datagrams == m.sent.datagrams {
        notes.push("SEQUENCE CHECKSUM MISMATCH".into());
    }
    if m.rearms > 0 || m.enobufs > 0 {
        notes.push(format!("{} ENOBUFS, {} re-arms", m.enobufs, m.rearms));
    }
    if let Some(ovfl) = m.tally.rxq_ovfl {
        if u64::from(ovfl) != m.kernel_drops {
            notes.push(format!("SO_RXQ_OVFL {ovfl}"));
        }
    }
    let lost = m.sent.datagrams.saturating_sub(m.tally.datagrams);
    println!(
        "| {size} B | {} | **{}/s** ({}-{}) | {:.0} ({:.0} + {:.0}) | {} / {} | {} ({}) | {}/s | {:.1} / {:.1} | {:.2} | {} |",
        variant.name(),
        si(m.rate()),
        si(lo),
        si(hi),
        ns(m.rx.thread),
        ns(m.rx.user),
        ns(m.rx.sys),
        m.tally.datagrams,
        m.sent.datagrams,
        lost,
        m.kernel_drops,
        si(m.tally.datagrams as f64 / m.rx.wall.as_secs_f64().max(1e-9)),
        m.rx.nvcsw as f64 * 1000.0 / n,
        m.rx.nivcsw as f64 * 1000.0 / n,
        m.rx.process.as_secs_f64() / m.rx.thread.as_secs_f64().max(1e-9),
        notes.join("; "),
    );
}

fn main() {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("receive bench: {e}");
            std::process::exit(2);
        }
    };
    let (release, (major, minor)) = kernel_release();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## UDP receive on 127.0.0.1");
    println!();
    println!(
        "kernel {release}, {cpus} CPUs, load average at start {}; sender pinned to CPU {TX_CPU}, \
         receiver to CPU {RX_CPU}, both at nice -20; {} datagrams per run (stream mode stops after {} s), {} \
         runs each, interleaved; buffers of 64 KiB + 1 per datagram for every variant.",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        args.count,
        args.seconds,
        args.reps,
    );
    let uring_ok = (major, minor) >= (6, 0);
    if !uring_ok {
        println!();
        println!(
            "io_uring multishot RecvMsg needs Linux 6.0 or newer (running {release}): skipped."
        );
    }
    let variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|&v| args.wants(v))
        .filter(|&v| uring_ok || v != Variant::UringMultishot)
        .collect();
    for &mode in &args.modes {
        print_header(mode);
        for size in [1400usize, 100] {
            let mut runs: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
            // Repetitions interleaved across variants, so a noisy moment on a shared machine
            // does not land on one variant only.
            for _ in 0..args.reps {
                for (&variant, runs) in variants.iter().zip(runs.iter_mut()) {
                    match run_once(variant, mode, size, &args) {
                        Ok(run) => runs.push(black_box(run)),
                        Err(e) => eprintln!("{} {size} B {}: {e}", mode.name(), variant.name()),
                    }
                }
            }
            for (&variant, runs) in variants.iter().zip(runs.iter_mut()) {
                print_row(size, variant, runs);
            }
        }
    }
}
