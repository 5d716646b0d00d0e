//! Per-core UDP receive for Linux: the socket each receive loop reads.
//!
//! One [`Receiver`] per core, all bound to the same port with `SO_REUSEPORT`: the kernel hashes
//! each datagram's 4-tuple to one of the sockets, so an exporter stays on one core while the
//! socket set is stable. A receiver reads up to `batch` datagrams per `recvmmsg(2)` call into
//! buffers it owns, and the receive loop hands them to the decoder with [`Receiver::datagram`].
//!
//! Invariants:
//! - every buffer (payloads, iovecs, `mmsghdr`s, source addresses) is allocated once in
//!   [`Receiver::bind`]; [`Receiver::recv`] allocates nothing;
//! - the kernel's drop count for the socket is read on demand (`SO_MEMINFO`'s
//!   `SK_MEMINFO_DROPS`, the counter `/proc/net/udp`'s `drops` column shows) and kept as a
//!   `u64` across the kernel's `u32` wrap. Having it stamped on every datagram instead
//!   (`SO_RXQ_OVFL`) made the kernel run its control-message path per datagram, 5-6 % of the
//!   collector's CPU on small NetFlow v9 datagrams;
//! - IPv4 exporters reaching a dual-stack `[::]` socket are reported with plain IPv4 source
//!   addresses, so a template scope keyed by address is the same whichever socket family
//!   received it.
//!
//! Not done here: `IP_PKTINFO` (which local address a datagram was sent to) and kernel receive
//! timestamps; no control messages are asked for at all.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Datagrams per `recvmmsg` call unless configured: 64 amortises the syscall well (the gain
/// flattens out above that) while keeping a core's buffers at 4 MiB.
pub const DEFAULT_BATCH: usize = 64;

/// Buffer per datagram unless configured: one byte more than the largest UDP payload (65507
/// over IPv4, 65527 over IPv6 without jumbograms), so a datagram that fills the buffer can only
/// mean the kernel truncated it, and `MSG_TRUNC` is the only way that happens.
pub const DEFAULT_MAX_DATAGRAM: usize = 65536 + 1;

/// `recvmmsg` caps `vlen` at `UIO_MAXIOV` (1024) without saying so; refuse larger batches
/// rather than allocate buffers the kernel would never fill.
const MAX_BATCH: usize = 1024;

/// Receive errors that belong to one earlier datagram or ICMP message rather than to the
/// socket: they are reported once (a pending `sk_err`), so the call is retried. The kernel
/// reports these on unconnected sockets only with `IP_RECVERR`, but a receive loop must not
/// stop on them either way.
const PER_DATAGRAM_ERRORS: [i32; 13] = [
    libc::ECONNREFUSED,
    libc::ECONNRESET,
    libc::EHOSTUNREACH,
    libc::EHOSTDOWN,
    libc::ENETUNREACH,
    libc::ENETDOWN,
    libc::ENONET,
    libc::ENOPROTOOPT,
    libc::EOPNOTSUPP,
    libc::EPROTO,
    libc::EMSGSIZE,
    libc::EACCES,
    libc::ETIMEDOUT,
];

/// At most this many per-datagram errors are skipped in one `recv` call before it returns
/// `Ok(0)`, so a flood of ICMP errors cannot hold a core inside one call.
const MAX_SKIPPED_ERRORS_PER_CALL: u32 = 16;

/// How to open one receive socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// Address to bind, e.g. `[::]:2055`. An unspecified IPv6 address is bound dual-stack
    /// (`IPV6_V6ONLY` off), and IPv4 exporters then show up with plain IPv4 sources.
    pub addr: SocketAddr,
    /// Set `SO_REUSEPORT` so each core can bind its own socket to the same port.
    pub reuse_port: bool,
    /// Requested `SO_RCVBUF` in bytes (0 keeps the system default). Capped by
    /// `net.core.rmem_max` unless the process may use `SO_RCVBUFFORCE` (root or
    /// `CAP_NET_ADMIN`), which is tried as well; see [`Receiver::granted_recv_buffer`] for what
    /// the kernel granted.
    pub recv_buffer: usize,
    /// Datagrams per `recvmmsg` call, 1 to 1024.
    pub batch: usize,
    /// Buffer per datagram in bytes; longer datagrams are truncated and flagged.
    pub max_datagram: usize,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            addr: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 2055, 0, 0)),
            reuse_port: true,
            recv_buffer: 0,
            batch: DEFAULT_BATCH,
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

/// One datagram of the last [`Receiver::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The sender; IPv4-mapped IPv6 addresses are given back as IPv4.
    pub src: SocketAddr,
    /// The bytes received: all of them, or the first `max_datagram` if `truncated`.
    pub payload: &'a [u8],
    /// The datagram's real length, larger than `payload.len()` when truncated.
    pub len: usize,
    /// The kernel cut the datagram to fit the buffer (`MSG_TRUNC`).
    pub truncated: bool,
}

/// A bound UDP socket with its batch buffers. Not `Sync`; one per core.
pub struct Receiver {
    socket: Socket,
    batch: usize,
    max_datagram: usize,
    /// `batch` payload buffers of `max_datagram` bytes, back to back.
    bufs: Box<[u8]>,
    iovecs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_storage]>,
    msgs: Box<[libc::mmsghdr]>,
    /// Datagrams filled by the last `recv`.
    received: usize,
    /// The last `recv` filled the whole batch, so more is probably queued: read before polling.
    last_batch_full: bool,
    granted_recv_buffer: usize,
    drops: DropCounter,
    recv_errors: u64,
}

// SAFETY: the raw pointers inside `iovecs` and `msgs` point only into heap buffers owned by this
// same `Receiver` (`bufs`, `names`, `iovecs`), are rewritten by `prepare` before
// every `recvmmsg` and are dereferenced only by that call, under `&mut self`. Moving the
// receiver to another thread moves the ownership of all of them together.
unsafe impl Send for Receiver {}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("fd", &self.socket.as_raw_fd())
            .field("batch", &self.batch)
            .field("max_datagram", &self.max_datagram)
            .field("received", &self.received)
            .field("granted_recv_buffer", &self.granted_recv_buffer)
            .field("kernel_drops", &self.drops.total())
            .field("recv_errors", &self.recv_errors)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Opens, configures and binds the socket, and allocates every buffer `recv` will use.
    pub fn bind(opts: &ListenOptions) -> io::Result<Receiver> {
        if opts.batch == 0 || opts.batch > MAX_BATCH {
            return Err(invalid_input("batch must be between 1 and 1024"));
        }
        if opts.max_datagram == 0 {
            return Err(invalid_input("max_datagram must be at least 1"));
        }
        let total = opts
            .batch
            .checked_mul(opts.max_datagram)
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or_else(|| invalid_input("batch * max_datagram is too large"))?;

        let socket = Socket::new(
            Domain::for_address(opts.addr),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if let SocketAddr::V6(v6) = opts.addr {
            if v6.ip().is_unspecified() {
                // Dual stack whatever net.ipv6.bindv6only says: IPv4 exporters arrive as
                // ::ffff:a.b.c.d and are converted back in `datagram`.
                socket.set_only_v6(false)?;
            }
        }
        if opts.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if opts.recv_buffer > 0 {
            // The kernel doubles the value (bookkeeping overhead) and takes an int.
            let want = opts.recv_buffer.min(i32::MAX as usize);
            socket.set_recv_buffer_size(want)?;
            // SO_RCVBUF is capped at net.core.rmem_max; SO_RCVBUFFORCE is not, but needs
            // CAP_NET_ADMIN. Without it the call fails with EPERM and SO_RCVBUF's value stands.
            let _ = set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want);
        }
        socket.bind(&opts.addr.into())?;
        let granted_recv_buffer = socket.recv_buffer_size()?;

        let empty_iovec = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: sockaddr_storage is a plain C struct of integers; all zeroes is a valid
        // value (family AF_UNSPEC).
        let empty_name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: mmsghdr is a plain C struct of integers and raw pointers; all zeroes (null
        // pointers, zero lengths) is a valid value, and `prepare` fills it before any use.
        let empty_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };

        Ok(Receiver {
            socket,
            batch: opts.batch,
            max_datagram: opts.max_datagram,
            bufs: vec![0u8; total].into_boxed_slice(),
            iovecs: vec![empty_iovec; opts.batch].into_boxed_slice(),
            names: vec![empty_name; opts.batch].into_boxed_slice(),
            msgs: vec![empty_msg; opts.batch].into_boxed_slice(),
            received: 0,
            last_batch_full: false,
            granted_recv_buffer,
            drops: DropCounter::default(),
            recv_errors: 0,
        })
    }

    /// The bound address (with the kernel-chosen port if port 0 was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("socket is not bound to an IP address"))
    }

    /// Whether the last [`recv`](Self::recv) filled its whole batch (more is probably queued).
    /// A partial batch means the socket was empty when it was read.
    pub fn last_batch_full(&self) -> bool {
        self.last_batch_full
    }

    /// What the kernel granted for `SO_RCVBUF`, read back at bind. Linux doubles the requested
    /// value (half is bookkeeping), caps a plain `SO_RCVBUF` at twice `net.core.rmem_max` and
    /// enforces a minimum of about 4.5 KiB.
    pub fn granted_recv_buffer(&self) -> usize {
        self.granted_recv_buffer
    }

    /// Waits up to `timeout` for data (`poll(2)`), then reads up to `batch` datagrams with one
    /// `recvmmsg(MSG_DONTWAIT)`. Returns how many were read; `Ok(0)` when the timeout passed
    /// with nothing to read. The datagrams stay readable with [`datagram`](Self::datagram)
    /// until the next call.
    ///
    /// After a full batch the socket is read first and polled only if it is empty, which
    /// saves the `poll` syscall while the socket is busy. Errors that belong to one datagram
    /// (ICMP-reported `ECONNREFUSED` and the like) are counted in
    /// [`recv_errors`](Self::recv_errors) and the read retried; `EINTR` is retried; any other
    /// error is returned.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<usize> {
        self.received = 0;
        let mut started: Option<Instant> = None;
        let mut read_first = self.last_batch_full;
        self.last_batch_full = false;
        let mut skipped = 0u32;
        loop {
            if !read_first {
                let start = *started.get_or_insert_with(Instant::now);
                let left = timeout.saturating_sub(start.elapsed());
                match poll_readable(self.socket.as_raw_fd(), left) {
                    Ok(true) => {}
                    Ok(false) => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            match self.recv_batch() {
                Ok(n) => {
                    self.received = n;
                    self.last_batch_full = n == self.batch;
                    return Ok(n);
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => read_first = true,
                    // Nothing queued after all (a datagram that failed its checksum is dropped
                    // at read time, after poll saw it): wait out the rest of the timeout.
                    Some(libc::EAGAIN) => {
                        if read_first {
                            read_first = false;
                        } else if started.is_some_and(|s| s.elapsed() >= timeout) {
                            return Ok(0);
                        }
                    }
                    Some(code) if PER_DATAGRAM_ERRORS.contains(&code) => {
                        self.recv_errors += 1;
                        skipped += 1;
                        if skipped >= MAX_SKIPPED_ERRORS_PER_CALL {
                            return Ok(0);
                        }
                        read_first = true;
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// The `i`-th datagram of the last [`recv`](Self::recv). Out of range (`i` at or past
    /// what `recv` returned) gives an empty datagram from `0.0.0.0:0`; prefer
    /// [`datagrams`](Self::datagrams) to loop.
    pub fn datagram(&self, i: usize) -> Datagram<'_> {
        const NONE: Datagram<'static> = Datagram {
            src: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            payload: &[],
            len: 0,
            truncated: false,
        };
        if i >= self.received {
            return NONE;
        }
        let (Some(msg), Some(name)) = (self.msgs.get(i), self.names.get(i)) else {
            return NONE;
        };
        // With MSG_TRUNC in the recvmmsg flags, msg_len is the datagram's real length, not
        // the number of bytes copied.
        let len = msg.msg_len as usize;
        let copied = len.min(self.max_datagram);
        let start = i * self.max_datagram;
        let payload = self.bufs.get(start..start + copied).unwrap_or(&[]);
        Datagram {
            src: socket_addr(name, msg.msg_hdr.msg_namelen).unwrap_or(NONE.src),
            payload,
            len,
            truncated: msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }

    /// The datagrams of the last [`recv`](Self::recv), in arrival order.
    pub fn datagrams(&self) -> impl ExactSizeIterator<Item = Datagram<'_>> + '_ {
        (0..self.received).map(|i| self.datagram(i))
    }

    /// The kernel's cumulative drop count for this socket (receive buffer full, and the other
    /// reasons `/proc/net/udp`'s `drops` column counts), read now with one `getsockopt`
    /// (`SO_MEMINFO`). `None` if the kernel does not answer it.
    pub fn kernel_drops(&mut self) -> Option<u64> {
        let mut info = [0u32; SK_MEMINFO_VARS];
        let mut len = size_of_val(&info) as libc::socklen_t;
        // SAFETY: the fd is an open socket owned by `self.socket`; `info` is a writable array
        // of `len` bytes on the stack, and the kernel writes at most `len` bytes and stores
        // the length it wrote in `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let drops_at = libc::SK_MEMINFO_DROPS as usize;
        if rc < 0 || (len as usize) < (drops_at + 1) * size_of::<u32>() {
            return None;
        }
        self.drops.observe(info[drops_at]);
        self.drops.total()
    }

    /// Receive errors skipped so far (see [`recv`](Self::recv)).
    pub fn recv_errors(&self) -> u64 {
        self.recv_errors
    }

    /// The socket's file descriptor, e.g. to read its counters; the receiver still owns it.
    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Points every `mmsghdr` at its buffers and resets the lengths the kernel overwrites.
    /// Done before each call, not once at bind, so that no pointer outlives the borrow it was
    /// made from.
    fn prepare(&mut self) {
        let parts = self
            .msgs
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.bufs.chunks_exact_mut(self.max_datagram))
            .zip(self.names.iter_mut());
        for (((msg, iov), buf), name) in parts {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = buf.len();
            let hdr = &mut msg.msg_hdr;
            hdr.msg_name = std::ptr::from_mut(name).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            msg.msg_len = 0;
        }
    }

    /// One `recvmmsg(MSG_DONTWAIT | MSG_TRUNC)`; the count it returns.
    fn recv_batch(&mut self) -> io::Result<usize> {
        self.prepare();
        let vlen = self.msgs.len().min(MAX_BATCH) as libc::c_uint;
        let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
        // SAFETY: the fd is an open socket owned by `self.socket`. `msgs` holds `vlen`
        // initialised mmsghdrs that `prepare` has just pointed at buffers owned by `self`
        // (payload, iovec and address buffers, with their true lengths; no control buffer);
        // `&mut self` keeps them alive and unaliased for the call. A null timeout means none
        // (the call does not block anyway with MSG_DONTWAIT).
        let rc = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                vlen,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((rc as usize).min(self.batch))
    }
}

/// Entries of the `SO_MEMINFO` array (Linux `SK_MEMINFO_VARS`); `SK_MEMINFO_DROPS` is the
/// last.
const SK_MEMINFO_VARS: usize = 9;

/// The socket's cumulative drop count as read, widened to `u64`.
#[derive(Debug, Default, Clone, Copy)]
struct DropCounter {
    last_raw: Option<u32>,
    total: u64,
}

impl DropCounter {
    fn observe(&mut self, raw: u32) {
        match self.last_raw {
            // The kernel counts from the socket's creation, so the first value is the total.
            None => {
                self.last_raw = Some(raw);
                self.total = u64::from(raw);
            }
            Some(last) => {
                // Serial-number arithmetic (RFC 1982): a forward step of less than 2^31 is
                // new drops, including across the u32 wrap; a backward step cannot come from
                // the kernel's counter and is ignored.
                let delta = raw.wrapping_sub(last);
                if delta != 0 && delta < 1 << 31 {
                    self.last_raw = Some(raw);
                    self.total += u64::from(delta);
                }
            }
        }
    }

    fn total(&self) -> Option<u64> {
        self.last_raw.map(|_| self.total)
    }
}

/// A kernel-filled source address as a std address, IPv4-mapped IPv6 given back as IPv4.
fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the kernel wrote a sockaddr_in, and sockaddr_storage is
            // larger than and aligned for every sockaddr type.
            let sin = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )),
            })
        }
        _ => None,
    }
}

/// `poll(2)` for readability. `Ok(false)` on timeout. A sub-millisecond timeout is rounded up
/// so it waits instead of spinning.
fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms =
        libc::c_int::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is a valid pollfd on the stack and nfds is 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // POLLERR counts as ready: the read that follows reports the error.
    Ok(rc > 0)
}

fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: usize,
) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: the fd is an open socket owned by `socket`; the option value is a c_int on the
    // stack, passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
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

fn invalid_input(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::UdpSocket;
    use std::os::unix::fs::MetadataExt;

    const SHORT: Duration = Duration::from_millis(50);

    fn options(addr: &str) -> ListenOptions {
        ListenOptions {
            addr: addr.parse().expect("test address"),
            reuse_port: false,
            recv_buffer: 1 << 20,
            ..ListenOptions::default()
        }
    }

    /// A sender on the loopback address of `to`'s family.
    fn sender_for(to: SocketAddr) -> io::Result<UdpSocket> {
        match to {
            SocketAddr::V4(_) => UdpSocket::bind("127.0.0.1:0"),
            SocketAddr::V6(_) => UdpSocket::bind("[::1]:0"),
        }
    }

    /// Reads until `want` datagrams have arrived or 5 s have passed; (source, payload) pairs.
    fn collect(rx: &mut Receiver, want: usize) -> io::Result<Vec<(SocketAddr, Vec<u8>)>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            rx.recv(SHORT)?;
            got.extend(rx.datagrams().map(|d| (d.src, d.payload.to_vec())));
        }
        Ok(got)
    }

    #[test]
    fn receives_batches_in_order() -> io::Result<()> {
        let mut rx = Receiver::bind(&ListenOptions {
            batch: 4,
            ..options("127.0.0.1:0")
        })?;
        let to = rx.local_addr()?;
        let tx = sender_for(to)?;
        for i in 0..10u8 {
            tx.send_to(&[i; 3], to)?;
        }
        // Loopback delivers inside send_to unless softirqs were deferred; give them a moment.
        std::thread::sleep(Duration::from_millis(20));
        let mut sizes = Vec::new();
        let mut payloads = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while payloads.len() < 10 && Instant::now() < deadline {
            let n = rx.recv(SHORT)?;
            sizes.push(n);
            assert_eq!(rx.datagrams().len(), n);
            for d in rx.datagrams() {
                assert_eq!(d.src, tx.local_addr()?);
                assert!(!d.truncated);
                assert_eq!(d.len, d.payload.len());
                payloads.push(d.payload.to_vec());
            }
        }
        let expected: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 3]).collect();
        assert_eq!(payloads, expected);
        assert_eq!(sizes, [4, 4, 2], "batches of at most `batch`");
        // Nothing left, and out-of-range indexes are empty rather than a panic.
        assert_eq!(rx.recv(Duration::ZERO)?, 0);
        assert_eq!(rx.datagram(0).payload, b"");
        assert_eq!(rx.datagram(usize::MAX).len, 0);
        Ok(())
    }

    #[test]
    fn dual_stack_socket_reports_ipv4_sources_as_ipv4() -> io::Result<()> {
        let mut rx = Receiver::bind(&options("[::]:0"))?;
        let port = rx.local_addr()?.port();

        let tx4 = UdpSocket::bind("127.0.0.1:0")?;
        tx4.send_to(b"v4", (Ipv4Addr::LOCALHOST, port))?;
        let got = collect(&mut rx, 1)?;
        assert_eq!(got, [(tx4.local_addr()?, b"v4".to_vec())]);
        assert!(got[0].0.is_ipv4(), "plain IPv4, not ::ffff:127.0.0.1");

        let tx6 = UdpSocket::bind("[::1]:0")?;
        tx6.send_to(b"v6", (Ipv6Addr::LOCALHOST, port))?;
        let got = collect(&mut rx, 1)?;
        assert_eq!(got, [(tx6.local_addr()?, b"v6".to_vec())]);
        Ok(())
    }

    #[test]
    fn reuse_port_receivers_share_a_port_and_keep_each_source_on_one() -> io::Result<()> {
        let shared = |addr: &str| ListenOptions {
            reuse_port: true,
            ..options(addr)
        };
        let mut a = Receiver::bind(&shared("127.0.0.1:0"))?;
        let to = a.local_addr()?;
        let mut b = Receiver::bind(&shared(&to.to_string()))?;
        assert_eq!(b.local_addr()?, to);
        // Without SO_REUSEPORT the port is taken.
        let taken = Receiver::bind(&options(&to.to_string()));
        assert_eq!(
            taken.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::AddrInUse)
        );

        const SOURCES: u8 = 64;
        const EACH: u8 = 4;
        let senders = (0..SOURCES)
            .map(|_| sender_for(to))
            .collect::<io::Result<Vec<_>>>()?;
        for seq in 0..EACH {
            for (id, tx) in (0u8..).zip(&senders) {
                tx.send_to(&[id, seq], to)?;
            }
        }
        let want = usize::from(SOURCES) * usize::from(EACH);
        // Which receiver saw each (source, seq).
        let mut seen: BTreeMap<(u8, u8), char> = BTreeMap::new();
        let mut dupes = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < want && Instant::now() < deadline {
            for (rx, name) in [(&mut a, 'a'), (&mut b, 'b')] {
                rx.recv(Duration::from_millis(10))?;
                for d in rx.datagrams() {
                    if let [id, seq] = *d.payload {
                        assert_eq!(d.src, senders[usize::from(id)].local_addr()?);
                        dupes += usize::from(seen.insert((id, seq), name).is_some());
                    }
                }
            }
        }
        assert_eq!(dupes, 0);
        assert_eq!(seen.len(), want, "every datagram arrived once");
        for id in 0..SOURCES {
            let sockets: BTreeSet<char> = (0..EACH).map(|seq| seen[&(id, seq)]).collect();
            assert_eq!(sockets.len(), 1, "source {id} stayed on one socket");
        }
        // 64 source ports hashed over two sockets: both get some (fails with p = 2^-63).
        let on_a = seen.values().filter(|&&s| s == 'a').count();
        assert!(on_a > 0 && on_a < want, "{on_a} of {want} on a");
        Ok(())
    }

    #[test]
    fn largest_ipv4_datagram_arrives_whole() -> io::Result<()> {
        let mut rx = Receiver::bind(&options("127.0.0.1:0"))?;
        let to = rx.local_addr()?;
        let tx = sender_for(to)?;
        let big: Vec<u8> = (0..65507u32).map(|i| (i % 251) as u8).collect();
        tx.send_to(&big, to)?;
        assert!(collect(&mut rx, 1)?.len() == 1);
        let d = rx.datagram(0);
        assert_eq!((d.len, d.truncated), (65507, false));
        assert!(d.payload == big.as_slice());
        Ok(())
    }

    #[test]
    fn oversized_datagram_is_flagged_truncated_with_its_real_length() -> io::Result<()> {
        let mut rx = Receiver::bind(&ListenOptions {
            max_datagram: 100,
            ..options("[::1]:0")
        })?;
        let to = rx.local_addr()?;
        let tx = sender_for(to)?;
        let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        tx.send_to(&long, to)?;
        tx.send_to(&long[..100], to)?;
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < 2 && Instant::now() < deadline {
            rx.recv(SHORT)?;
            seen.extend(
                rx.datagrams()
                    .map(|d| (d.len, d.truncated, d.payload.to_vec())),
            );
        }
        assert_eq!(
            seen,
            [
                (300, true, long[..100].to_vec()),
                (100, false, long[..100].to_vec())
            ]
        );
        Ok(())
    }

    /// The `drops` column of `/proc/net/udp{,6}` for the socket with this fd.
    fn proc_drops(rx: &Receiver) -> io::Result<u64> {
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", rx.raw_fd()))?.ino();
        let table = match rx.local_addr()? {
            SocketAddr::V4(_) => "/proc/net/udp",
            SocketAddr::V6(_) => "/proc/net/udp6",
        };
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        for line in std::fs::read_to_string(table)?.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(9).and_then(|c| c.parse::<u64>().ok()) == Some(inode) {
                return cols
                    .get(12)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| io::Error::other(format!("no drops column: {line}")));
            }
        }
        Err(io::Error::other(format!("inode {inode} not in {table}")))
    }

    #[test]
    fn kernel_drops_account_for_every_datagram_sent() -> io::Result<()> {
        let mut rx = Receiver::bind(&ListenOptions {
            recv_buffer: 2048, // below Linux's minimum: the kernel raises it to ~4.5 KiB
            ..options("127.0.0.1:0")
        })?;
        assert!(rx.granted_recv_buffer() < 16 * 1024, "tiny buffer granted");
        assert_eq!(rx.kernel_drops(), Some(0));
        let to = rx.local_addr()?;
        let tx = sender_for(to)?;

        const BURST: usize = 300;
        for i in 0..BURST {
            tx.send_to(&[(i % 256) as u8; 512], to)?;
        }
        let mut received = 0;
        loop {
            let n = rx.recv(SHORT)?;
            if n == 0 {
                break;
            }
            received += n;
        }
        assert!(received > 0 && received < BURST, "received {received}");
        let drops = rx.kernel_drops().expect("a drop count");
        assert_eq!(drops as usize + received, BURST);
        assert_eq!(proc_drops(&rx)?, drops, "the kernel's own count");
        Ok(())
    }

    #[test]
    fn no_drops_reads_as_zero() -> io::Result<()> {
        // IPv6 this time, so /proc/net/udp6 is read too.
        let mut rx = Receiver::bind(&options("[::1]:0"))?;
        let to = rx.local_addr()?;
        sender_for(to)?.send_to(b"x", to)?;
        assert_eq!(collect(&mut rx, 1)?.len(), 1);
        assert_eq!(rx.kernel_drops(), Some(0));
        assert_eq!(proc_drops(&rx)?, 0);
        Ok(())
    }

    #[test]
    fn drop_counter_widens_across_u32_wrap() {
        let mut c = DropCounter::default();
        assert_eq!(c.total(), None);
        c.observe(0);
        assert_eq!(c.total(), Some(0));
        // Climb to just below the wrap in steps under 2^31, as a socket's count does.
        for step in [1 << 30, 2 << 30, 3 << 30, u32::MAX - 5] {
            c.observe(step);
            assert_eq!(c.total(), Some(u64::from(step)));
        }
        c.observe(u32::MAX - 9); // a step back is not a wrap
        assert_eq!(c.total(), Some(u64::from(u32::MAX - 5)));
        c.observe(10);
        assert_eq!(c.total(), Some(u64::from(u32::MAX) + 11));
        c.observe(0); // a second reading of a count that wrapped to exactly zero
        assert_eq!(c.total(), Some(u64::from(u32::MAX) + 11));
    }

    #[test]
    fn recv_times_out_with_zero() -> io::Result<()> {
        let mut rx = Receiver::bind(&options("127.0.0.1:0"))?;
        let start = Instant::now();
        assert_eq!(rx.recv(Duration::from_millis(100))?, 0);
        assert!(start.elapsed() >= Duration::from_millis(90));
        assert_eq!(rx.recv(Duration::ZERO)?, 0);
        assert_eq!(rx.kernel_drops(), Some(0));
        assert_eq!(rx.recv_errors(), 0);
        Ok(())
    }

    #[test]
    fn bind_rejects_unusable_sizes() {
        for (batch, max_datagram) in [(0, 100), (2000, 100), (4, 0), (1024, usize::MAX)] {
            let opts = ListenOptions {
                batch,
                max_datagram,
                ..options("127.0.0.1:0")
            };
            let err = Receiver::bind(&opts).map(|_| ()).map_err(|e| e.kind());
            assert_eq!(
                err,
                Err(io::ErrorKind::InvalidInput),
                "{batch} x {max_datagram}"
            );
        }
    }
}
