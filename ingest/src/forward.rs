//! Forwarding (tee): every datagram a listener accepts is also sent, byte for byte, to other
//! collectors (`[[forward]]` in the config), so Sluice can run beside ElastiFlow, nfcapd or
//! anything else during a migration with the exporters pointed at Sluice alone.
//!
//! **The receive path never waits for it.** A receive thread copies each accepted datagram
//! into its pending batch for each target (one memcpy; batches are recycled, so nothing is
//! allocated in steady state) and hands full batches (64 datagrams or 256 KiB), and what it
//! has at the end of every wake-up, to the target's sender thread over a bounded channel
//! (`queue / 64` batches) with `try_send`. When the channel is full the batch is dropped and
//! its datagrams counted (`sluice_forward_dropped_total{reason="queue_full"}`): the queue
//! bounds memory, never the receive rate.
//!
//! **Source address.** Collectors key templates and exporters by the datagram's source
//! address and port, so a forwarded stream should look as if the exporter had sent it. With
//! `preserve_source` (the default) each target gets a raw socket (`IPPROTO_RAW`: the kernel
//! takes our IPv4 header as given, IP_HDRINCL, and the same for IPv6), and each datagram goes
//! out inside an IP and UDP header carrying the exporter's address and port. That needs
//! CAP_NET_RAW (root has it). Without it, or for an exporter of the other address family than
//! the target, or for a datagram larger than the outgoing interface's MTU (the kernel does not
//! fragment a header-included packet), the datagram is sent from Sluice's own address
//! instead: logged once per reason and counted in
//! `sluice_forward_datagrams_total{source="sluice"}`. `sluice_forward_source_preserved` says
//! which mode a target is in.
//!
//! Truncated datagrams (larger than the receive buffer) are not forwarded: they would arrive
//! cut. They are counted (`reason="truncated"`).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use prometheus::IntCounter;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::Forward;
use crate::metrics::Metrics;

/// Datagrams per batch before it is handed to the sender.
const BATCH_DATAGRAMS: usize = 64;
/// Payload bytes per batch before it is handed to the sender.
const BATCH_BYTES: usize = 256 << 10;

/// Datagrams copied for one target, back to back.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    /// (exporter, end offset in `data`).
    items: Vec<(SocketAddr, u32)>,
}

impl Batch {
    /// An empty batch; its buffers grow to what the traffic needs and are kept when the
    /// batch is recycled, so queued memory follows the datagrams actually queued.
    fn new() -> Batch {
        Batch {
            data: Vec::new(),
            items: Vec::with_capacity(BATCH_DATAGRAMS),
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }

    fn is_full(&self) -> bool {
        self.items.len() >= BATCH_DATAGRAMS || self.data.len() >= BATCH_BYTES
    }

    /// The datagrams: (exporter, payload).
    fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        let mut start = 0usize;
        self.items.iter().map(move |&(src, end)| {
            let p = &self.data[start..end as usize];
            start = end as usize;
            (src, p)
        })
    }
}

/// A receive thread's side of one target.
#[derive(Debug)]
struct Lane {
    /// Which listeners (by index) feed this target.
    listeners: Vec<bool>,
    tx: Sender<Batch>,
    free: Receiver<Batch>,
    pending: Batch,
    dropped_queue: IntCounter,
    dropped_truncated: IntCounter,
}

impl Lane {
    fn hand_off(&mut self) {
        if self.pending.items.is_empty() {
            return;
        }
        let next = self.free.try_recv().unwrap_or_else(|_| Batch::new());
        let full = std::mem::replace(&mut self.pending, next);
        if let Err(TrySendError::Full(mut b) | TrySendError::Disconnected(mut b)) =
            self.tx.try_send(full)
        {
            self.dropped_queue.inc_by(b.items.len() as u64);
            b.clear();
            // Keep the allocation: the one just taken from `free` goes back unused.
            self.pending = b;
        }
    }
}

/// What one receive thread holds: a lane per target.
#[derive(Debug, Default)]
pub struct Tee {
    lanes: Vec<Lane>,
}

impl Tee {
    /// Whether there is any target.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Copies one datagram accepted on listener `listener` for every target that takes it.
    #[inline]
    pub fn push(&mut self, listener: usize, src: SocketAddr, payload: &[u8], truncated: bool) {
        for lane in &mut self.lanes {
            if !lane.listeners.get(listener).copied().unwrap_or(false) {
                continue;
            }
            if truncated {
                lane.dropped_truncated.inc();
                continue;
            }
            lane.pending.data.extend_from_slice(payload);
            lane.pending
                .items
                .push((src, lane.pending.data.len() as u32));
            if lane.pending.is_full() {
                lane.hand_off();
            }
        }
    }

    /// Hands every pending datagram to the senders (end of a wake-up, and at shutdown).
    pub fn flush(&mut self) {
        for lane in &mut self.lanes {
            lane.hand_off();
        }
    }
}

/// The running senders; [`Forwarders::tee`] makes each receive thread's handle. Senders stop
/// once every [`Tee`] is dropped and their queues are drained.
#[derive(Debug, Default)]
pub struct Forwarders {
    targets: Vec<TargetShared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct TargetShared {
    listeners: Vec<bool>,
    tx: Sender<Batch>,
    free: Receiver<Batch>,
    dropped_queue: IntCounter,
    dropped_truncated: IntCounter,
}

impl Forwarders {
    /// Opens the sockets and starts one sender thread per target. `listeners` are the
    /// listener names in index order.
    pub fn start(cfgs: &[Forward], listeners: &[String], metrics: &Metrics) -> io::Result<Self> {
        let mut f = Forwarders::default();
        for c in cfgs {
            let label = c.label();
            let sender = Target::open(c, &label, metrics)?;
            let cap = (c.queue / BATCH_DATAGRAMS).max(2);
            let (tx, rx) = bounded::<Batch>(cap);
            let (free_tx, free_rx) = bounded::<Batch>(cap + 8);
            let dropped =
                |reason: &str| metrics.forward_dropped.with_label_values(&[&label, reason]);
            f.targets.push(TargetShared {
                listeners: listeners
                    .iter()
                    .map(|l| c.listeners.is_empty() || c.listeners.contains(l))
                    .collect(),
                tx,
                free: free_rx,
                dropped_queue: dropped("queue_full"),
                dropped_truncated: dropped("truncated"),
            });
            f.threads.push(
                std::thread::Builder::new()
                    .name(format!("sluice-fwd-{}", f.threads.len()))
                    .spawn(move || sender.run(rx, free_tx))?,
            );
        }
        Ok(f)
    }

    /// A receive thread's handle.
    pub fn tee(&self) -> Tee {
        Tee {
            lanes: self
                .targets
                .iter()
                .map(|t| Lane {
                    listeners: t.listeners.clone(),
                    tx: t.tx.clone(),
                    free: t.free.clone(),
                    pending: Batch::new(),
                    dropped_queue: t.dropped_queue.clone(),
                    dropped_truncated: t.dropped_truncated.clone(),
                })
                .collect(),
        }
    }

    /// Drops this side's channel ends and waits for the senders to drain what the receive
    /// threads handed over (call after they stopped).
    pub fn join(self) {
        let Forwarders { targets, threads } = self;
        drop(targets);
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Why a datagram went out from Sluice's own address although `preserve_source` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    Family,
    TooBig,
}

/// One target's sending end, on its own thread.
struct Target {
    label: String,
    to: SocketAddr,
    plain: UdpSocket,
    raw: Option<Socket>,
    raw_to: SockAddr,
    packet: Vec<u8>,
    logged: [bool; 2],
    sent_exporter: IntCounter,
    sent_sluice: IntCounter,
    bytes: IntCounter,
    send_errors: IntCounter,
}

fn open_raw(v6: bool) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    Ok(s)
}

impl Target {
    fn open(c: &Forward, label: &str, metrics: &Metrics) -> io::Result<Target> {
        let to = c.address;
        let local: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().map_err(io::Error::other)?
        } else {
            "[::]:0".parse().map_err(io::Error::other)?
        };
        let plain = UdpSocket::bind(local)?;
        plain.set_write_timeout(Some(Duration::from_secs(1)))?;
        let raw = if c.preserve_source {
            match open_raw(to.is_ipv6()) {
                Ok(s) => {
                    crate::run::log!(
                        "forward {label} ({to}): datagrams keep the exporter's source address and port"
                    );
                    Some(s)
                }
                Err(e) => {
                    crate::run::log!(
                        "forward {label} ({to}): cannot keep the exporters' source addresses \
                         (raw socket: {e}; it needs CAP_NET_RAW): datagrams are sent from \
                         Sluice's own address"
                    );
                    None
                }
            }
        } else {
            crate::run::log!(
                "forward {label} ({to}): preserve_source is off: datagrams are sent from Sluice's own address"
            );
            None
        };
        metrics
            .forward_source_preserved
            .with_label_values(&[label])
            .set(i64::from(raw.is_some()));
        let sent = |source: &str| {
            metrics
                .forward_datagrams
                .with_label_values(&[label, source])
        };
        // Raw IPv6 sockets take the protocol in the port field: 0 means "the socket's".
        let raw_to = SockAddr::from(SocketAddr::new(to.ip(), 0));
        Ok(Target {
            label: label.to_owned(),
            to,
            plain,
            raw,
            raw_to,
            packet: Vec::with_capacity(65_600),
            logged: [false; 2],
            sent_exporter: sent("exporter"),
            sent_sluice: sent("sluice"),
            bytes: metrics.forward_bytes.with_label_values(&[label]),
            send_errors: metrics
                .forward_dropped
                .with_label_values(&[label, "send_error"]),
        })
    }

    fn run(mut self, rx: Receiver<Batch>, free: Sender<Batch>) {
        while let Ok(mut b) = rx.recv() {
            for (src, payload) in b.iter() {
                self.send(src, payload);
            }
            b.clear();
            let _ = free.try_send(b);
        }
    }

    fn note(&mut self, why: Fallback) {
        let i = why as usize;
        if self.logged[i] {
            return;
        }
        self.logged[i] = true;
        let what = match why {
            Fallback::Family => "an exporter of the other address family than the target",
            Fallback::TooBig => "a datagram larger than the outgoing interface's MTU",
        };
        crate::run::log!(
            "forward {} ({}): {what} is sent from Sluice's own address (counted in \
             sluice_forward_datagrams_total{{source=\"sluice\"}}; logged once)",
            self.label,
            self.to
        );
    }

    fn send(&mut self, src: SocketAddr, payload: &[u8]) {
        if self.raw.is_some() {
            match build_packet(&mut self.packet, src, self.to, payload) {
                Ok(()) => {
                    let r = self
                        .raw
                        .as_ref()
                        .map(|s| s.send_to(&self.packet, &self.raw_to));
                    match r {
                        Some(Ok(_)) => {
                            self.sent_exporter.inc();
                            self.bytes.inc_by(payload.len() as u64);
                            return;
                        }
                        Some(Err(e)) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                            self.note(Fallback::TooBig);
                        }
                        _ => {
                            self.send_errors.inc();
                            return;
                        }
                    }
                }
                Err(why) => self.note(why),
            }
        }
        match self.plain.send_to(payload, self.to) {
            Ok(_) => {
                self.sent_sluice.inc();
                self.bytes.inc_by(payload.len() as u64);
            }
            Err(_) => self.send_errors.inc(),
        }
    }
}

/// One's-complement sum of 16-bit words, folded.
fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Fold now and then so that 64 KiB of payload cannot overflow.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Writes into `out` an IP packet (IPv4 or IPv6 header, UDP header with its checksum,
/// payload) from `src` to `dst`; an error when the two are of different families or the
/// payload does not fit one IP packet.
fn build_packet(
    out: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Result<(), Fallback> {
    let udp_len = u16::try_from(8 + payload.len()).map_err(|_| Fallback::TooBig)?;
    out.clear();
    let pseudo = match (src.ip().to_canonical(), dst.ip().to_canonical()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + 8 + payload.len()).map_err(|_| Fallback::TooBig)?;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            // Identification 0 (the kernel fills it in), no flags, TTL 64, UDP; the kernel
            // computes the header checksum of a header-included packet.
            out.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let mut p = sum16(0, &s.octets());
            p = sum16(p, &d.octets());
            sum16(p, &[0, 17, (udp_len >> 8) as u8, udp_len as u8])
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let mut p = sum16(0, &s.octets());
            p = sum16(p, &d.octets());
            sum16(p, &[0, 0, (udp_len >> 8) as u8, udp_len as u8, 0, 0, 0, 17])
        }
        _ => return Err(Fallback::Family),
    };
    let udp_at = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let sum = !(sum16(pseudo, &out[udp_at..]) as u16);
    // A computed 0 is sent as all ones (0 means "no checksum" in IPv4 and is invalid in IPv6).
    let sum = if sum == 0 { 0xffff } else { sum };
    out[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(cap: usize) -> (Tee, Receiver<Batch>, IntCounter) {
        let (tx, rx) = bounded(cap);
        let (_free_tx, free_rx) = bounded(cap);
        let dropped = IntCounter::new("d", "d").expect("counter");
        let tee = Tee {
            lanes: vec![Lane {
                listeners: vec![true, false],
                tx,
                free: free_rx,
                pending: Batch::new(),
                dropped_queue: dropped.clone(),
                dropped_truncated: IntCounter::new("t", "t").expect("counter"),
            }],
        };
        (tee, rx, dropped)
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (mut tee, rx, dropped) = lane(1);
        let src: SocketAddr = "192.0.2.1:2055".parse().expect("addr");
        // Three full batches into a queue of one, with nobody reading.
        for i in 0..3 * BATCH_DATAGRAMS {
            tee.push(0, src, &(i as u32).to_be_bytes(), false);
        }
        // Listener 1 does not feed this target.
        tee.push(1, src, b"other listener", false);
        tee.flush();
        assert_eq!(rx.len(), 1);
        assert_eq!(dropped.get(), 2 * BATCH_DATAGRAMS as u64);
        let b = rx.try_recv().expect("the batch that fit");
        let got: Vec<(SocketAddr, Vec<u8>)> = b.iter().map(|(s, p)| (s, p.to_vec())).collect();
        assert_eq!(got.len(), BATCH_DATAGRAMS);
        assert_eq!(got[5], (src, 5u32.to_be_bytes().to_vec()));
    }

    #[test]
    fn udp_checksums_verify() {
        let mut out = Vec::new();
        let payload = b"\x00\x09 odd-length payload";
        let src: SocketAddr = "192.0.2.7:4739".parse().expect("addr");
        let dst: SocketAddr = "198.51.100.9:2055".parse().expect("addr");
        build_packet(&mut out, src, dst, payload).expect("v4");
        assert_eq!(out.len(), 20 + 8 + payload.len());
        assert_eq!(&out[12..16], &[192, 0, 2, 7]);
        assert_eq!(&out[20..22], &4739u16.to_be_bytes());
        // Summing pseudo header and UDP segment, checksum included, gives all ones.
        let udp = &out[20..];
        let mut p = sum16(0, &out[12..20]);
        p = sum16(p, &[0, 17, 0, udp.len() as u8]);
        assert_eq!(sum16(p, udp), 0xffff);

        let src: SocketAddr = "[2001:db8::7]:4739".parse().expect("addr");
        let dst: SocketAddr = "[2001:db8::9]:2055".parse().expect("addr");
        build_packet(&mut out, src, dst, payload).expect("v6");
        assert_eq!(out.len(), 40 + 8 + payload.len());
        let udp = &out[40..];
        let mut p = sum16(0, &out[8..40]);
        p = sum16(p, &[0, 0, 0, udp.len() as u8, 0, 0, 0, 17]);
        assert_eq!(sum16(p, udp), 0xffff);

        let v4: SocketAddr = "192.0.2.7:1".parse().expect("addr");
        assert_eq!(
            build_packet(&mut out, v4, dst, payload),
            Err(Fallback::Family)
        );
        // An IPv4-mapped exporter address counts as IPv4.
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:1".parse().expect("addr");
        let d4: SocketAddr = "198.51.100.9:2055".parse().expect("addr");
        assert!(build_packet(&mut out, mapped, d4, payload).is_ok());
        let big = vec![0u8; 65_508];
        assert_eq!(
            build_packet(&mut out, src, dst, &big).map(|_| out.len()),
            Ok(40 + 8 + big.len()),
            "IPv6 carries 65,508 bytes"
        );
        assert_eq!(
            build_packet(&mut out, mapped, d4, &big),
            Err(Fallback::TooBig),
            "IPv4 does not"
        );
    }
}
