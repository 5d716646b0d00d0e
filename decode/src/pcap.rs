//! Capture-file reader: every UDP datagram of a classic libpcap or pcapng file, in file order.
//!
//! Place in the pipeline: `sluice decode FILE.pcap` and the load generator's replay read a capture
//! through [`PcapReader::for_each_udp`] and hand each [`UdpDatagram`]'s payload to the decoders as
//! if it had arrived on a socket. Only std is used.
//!
//! Layers walked for each frame:
//! * file: classic pcap (draft-ietf-opsawg-pcap; both byte orders, µs and ns magic) or pcapng
//!   (draft-ietf-opsawg-pcapng; SHB in either byte order, several sections, IDB with `if_tsresol`
//!   and `if_tsoffset`, EPB, SPB and the obsolete PB; other blocks are skipped);
//! * link (numbers from the tcpdump.org LINKTYPE list): Ethernet with any depth of 802.1Q / 802.1ad
//!   / QinQ tags and an MPLS label stack, Linux cooked SLL and SLL2, raw IP (101, and 12 / 14 as
//!   some BSDs write DLT_RAW), raw IPv4 (228) and IPv6 (229), BSD null (0) and OpenBSD loop (108);
//! * network: IPv4 (RFC 791, options skipped through IHL) and IPv6 (RFC 8200, extension headers
//!   walked), with fragment reassembly;
//! * transport: UDP (RFC 768) only; everything else is counted in [`PcapStats`] and skipped.
//!
//! Invariants: no input panics (every read of file data goes through `get` or checked
//! arithmetic); each frame lands in exactly one [`PcapStats`] bucket unless it is an IP fragment
//! that does not complete its datagram; reassembly holds at most [`MAX_PENDING_DATAGRAMS`]
//! datagrams of at most [`MAX_REASSEMBLED_LEN`] bytes each.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// One UDP datagram found in a capture.
#[derive(Debug, Clone)]
pub struct UdpDatagram<'a> {
    /// 1-based frame number of the frame that completed this datagram (as tshark numbers frames).
    pub frame: u64,
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_nanos: i64,
    /// Sender (the exporter) address and port.
    pub src: SocketAddr,
    /// Receiver (the collector) address and port.
    pub dst: SocketAddr,
    /// UDP payload, truncated to the captured length if the frame was cut by snaplen (see
    /// `truncated`).
    pub payload: Cow<'a, [u8]>,
    /// The frame was cut by snaplen inside this datagram: `payload` is only its beginning.
    pub truncated: bool,
}

/// What one walk over a capture saw.
#[derive(Debug, Default, Clone)]
pub struct PcapStats {
    /// Frames, numbered as tshark numbers them: classic records; pcapng EPB, SPB and PB, and
    /// also systemd journal export and custom blocks, which tshark shows as frames too.
    pub frames: u64,
    /// UDP datagrams handed to the callback (a reassembled datagram counts once).
    pub udp: u64,
    /// Frames, or reassembled datagrams, carrying something else than UDP over IP (TCP, ICMP,
    /// ARP, ESP, ..., and the non-packet pcapng records counted in `frames`).
    pub non_udp: u64,
    /// Frames of a link type this reader does not decode.
    pub unsupported_link: u64,
    /// Frames whose headers contradict their length or each other, plus one for a file that
    /// ends in the middle of a record or whose block framing is broken (the walk stops there).
    pub malformed: u64,
    /// Partly received fragmented datagrams given up: evicted to respect
    /// [`MAX_PENDING_DATAGRAMS`], dropped for overlapping fragments, or still incomplete at the end.
    pub fragments_pending_dropped: u64,
}

/// Why a capture cannot be read at all. Problems inside the capture are counted in
/// [`PcapStats`] instead.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("cannot read capture: {0}")]
    Io(#[from] std::io::Error),
    /// The first four bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng capture (unknown magic number)")]
    NotACapture,
    /// The file ends inside its file header (classic) or first block header (pcapng).
    #[error("capture ends inside its file header")]
    Truncated,
    /// Classic pcap with a major version other than 2: the record layout is unknown.
    #[error("unsupported pcap version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
}

impl PcapError {
    /// Stable, low-cardinality label for metrics and error counts.
    pub fn reason(&self) -> &'static str {
        match self {
            PcapError::Io(_) => "io",
            PcapError::NotACapture => "not_a_capture",
            PcapError::Truncated => "truncated",
            PcapError::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

/// A whole capture file held in memory, ready to be walked any number of times.
pub struct PcapReader {
    bytes: Vec<u8>,
    format: Format,
}

impl fmt::Debug for PcapReader {
    // Hand-written so that debugging output does not dump the whole file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapReader")
            .field("format", &self.format)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl PcapReader {
    /// Reads the whole file and checks its header.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        Self::from_bytes(std::fs::read(path)?)
    }

    /// Takes a whole capture file and checks its header.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, PcapError> {
        let format = detect(&bytes)?;
        Ok(Self { bytes, format })
    }

    /// Calls `f` for each UDP datagram in file order. A malformed frame is counted and skipped,
    /// a truncated file ends the walk (counted as malformed), never a panic. Each call walks
    /// the file from the start with fresh reassembly state.
    pub fn for_each_udp<F: FnMut(&UdpDatagram<'_>)>(
        &mut self,
        f: F,
    ) -> Result<PcapStats, PcapError> {
        let mut walk = Walk {
            stats: PcapStats::default(),
            reasm: Reassembler::default(),
            f,
        };
        match self.format {
            Format::Classic {
                endian,
                nanos,
                link,
            } => walk_classic(&self.bytes, endian, nanos, link, &mut walk),
            Format::PcapNg => walk_pcapng(&self.bytes, &mut walk),
        }
        // Datagrams still waiting for fragments when the file ends will never be delivered.
        let left = walk.reasm.pending.len() as u64;
        walk.stats.fragments_pending_dropped += left;
        Ok(walk.stats)
    }
}

// ---------------------------------------------------------------------------------------------
// File formats
// ---------------------------------------------------------------------------------------------

/// Classic pcap magic for microsecond timestamps (draft-ietf-opsawg-pcap §4).
const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Classic pcap magic for nanosecond timestamps.
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// pcapng Section Header Block type; a palindrome, so it reads the same in both byte orders.
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
/// pcapng byte-order magic inside the SHB; tells the byte order of the whole section.
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Classic file header: magic, version (2+2), thiszone, sigfigs, snaplen, linktype.
const CLASSIC_HEADER_LEN: usize = 24;
/// Classic record header: ts_sec, ts_frac, incl_len, orig_len.
const CLASSIC_RECORD_LEN: usize = 16;

// pcapng block types (draft-ietf-opsawg-pcapng §10.1).
const BLOCK_IDB: u32 = 1;
const BLOCK_PB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;
const BLOCK_SYSTEMD_JOURNAL: u32 = 9;
const BLOCK_CUSTOM: u32 = 0x0000_0bad;
const BLOCK_CUSTOM_NO_COPY: u32 = 0x4000_0bad;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
        b.get(off..off.checked_add(N)?)?.try_into().ok()
    }

    fn u16(self, b: &[u8], off: usize) -> Option<u16> {
        let a = Self::bytes(b, off)?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }

    fn u32(self, b: &[u8], off: usize) -> Option<u32> {
        let a = Self::bytes(b, off)?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }

    fn u64(self, b: &[u8], off: usize) -> Option<u64> {
        let a = Self::bytes(b, off)?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        })
    }
}

/// Network byte order reads for protocol headers.
fn be16(b: &[u8], off: usize) -> Option<u16> {
    Endian::Big.u16(b, off)
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Endian::Big.u32(b, off)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Classic {
        endian: Endian,
        nanos: bool,
        link: u16,
    },
    PcapNg,
}

/// Recognises the format from the magic number and checks the file header.
fn detect(b: &[u8]) -> Result<Format, PcapError> {
    let Some(magic) = be32(b, 0) else {
        // Fewer than four bytes: a cut capture if they start a known magic, else something else.
        let known = [PCAP_MAGIC_MICROS, PCAP_MAGIC_NANOS, PCAPNG_SHB]
            .iter()
            .flat_map(|m| [m.to_be_bytes(), m.to_le_bytes()])
            .any(|m| m.starts_with(b));
        return Err(if known {
            PcapError::Truncated
        } else {
            PcapError::NotACapture
        });
    };
    for (m, nanos) in [(PCAP_MAGIC_MICROS, false), (PCAP_MAGIC_NANOS, true)] {
        // The writer stores the magic in its own byte order; all header fields follow it.
        let endian = if magic == m {
            Endian::Big
        } else if magic.swap_bytes() == m {
            Endian::Little
        } else {
            continue;
        };
        if b.len() < CLASSIC_HEADER_LEN {
            return Err(PcapError::Truncated);
        }
        let major = endian.u16(b, 4).ok_or(PcapError::Truncated)?;
        let minor = endian.u16(b, 6).ok_or(PcapError::Truncated)?;
        // libpcap rejects other major versions too: 2.x is the only record layout in use.
        if major != 2 {
            return Err(PcapError::UnsupportedVersion { major, minor });
        }
        // The LinkType field's upper bits carry FCS information (draft-ietf-opsawg-pcap §4,
        // "LinkType and additional information"); the link type is the low 16 bits.
        let link = endian.u32(b, 20).ok_or(PcapError::Truncated)? & 0xffff;
        return Ok(Format::Classic {
            endian,
            nanos,
            link: link as u16,
        });
    }
    if magic == PCAPNG_SHB {
        let bom = be32(b, 8).ok_or(PcapError::Truncated)?;
        if bom != PCAPNG_BYTE_ORDER_MAGIC && bom.swap_bytes() != PCAPNG_BYTE_ORDER_MAGIC {
            return Err(PcapError::NotACapture);
        }
        return Ok(Format::PcapNg);
    }
    Err(PcapError::NotACapture)
}

/// State of one walk: counters, fragments and the caller's callback.
struct Walk<F> {
    stats: PcapStats,
    reasm: Reassembler,
    f: F,
}

impl<F: FnMut(&UdpDatagram<'_>)> Walk<F> {
    /// One packet record: decode it, count it, hand a completed UDP datagram to the callback.
    /// `cut`: the capture kept fewer bytes than the frame had (snaplen).
    fn frame(&mut self, ts_nanos: i64, link: u16, data: &[u8], cut: bool) {
        self.stats.frames += 1;
        match decode_frame(link, data, cut, &mut self.reasm, &mut self.stats) {
            Ok(Some(d)) => {
                self.stats.udp += 1;
                (self.f)(&UdpDatagram {
                    frame: self.stats.frames,
                    ts_nanos,
                    src: d.src,
                    dst: d.dst,
                    payload: d.payload,
                    truncated: d.truncated,
                });
            }
            Ok(None) => {} // a fragment, held until its datagram is complete
            Err(Skip::NonUdp) => self.stats.non_udp += 1,
            Err(Skip::UnsupportedLink) => self.stats.unsupported_link += 1,
            Err(Skip::Malformed) => self.stats.malformed += 1,
        }
    }

    /// A packet record whose own header cannot be read (bad interface, lengths beyond its block):
    /// still a frame, so that the following frame numbers match tshark's.
    fn malformed_frame(&mut self) {
        self.stats.frames += 1;
        self.stats.malformed += 1;
    }

    /// A pcapng record that is not a packet but that tshark numbers as a frame.
    fn other_frame(&mut self) {
        self.stats.frames += 1;
        self.stats.non_udp += 1;
    }

    /// The file ends inside a record or its framing is broken: the walk stops.
    fn broken_file(&mut self) {
        self.stats.malformed += 1;
    }
}

/// Classic pcap: fixed 24-byte header, then 16-byte record headers each followed by the frame.
fn walk_classic<F: FnMut(&UdpDatagram<'_>)>(
    b: &[u8],
    endian: Endian,
    nanos: bool,
    link: u16,
    w: &mut Walk<F>,
) {
    let mut pos = CLASSIC_HEADER_LEN;
    while pos < b.len() {
        let Some(hdr) = b.get(pos..).and_then(|r| r.get(..CLASSIC_RECORD_LEN)) else {
            return w.broken_file();
        };
        let (Some(sec), Some(frac), Some(incl), Some(orig)) = (
            endian.u32(hdr, 0),
            endian.u32(hdr, 4),
            endian.u32(hdr, 8),
            endian.u32(hdr, 12),
        ) else {
            return w.broken_file();
        };
        let start = pos + CLASSIC_RECORD_LEN; // cannot overflow: `hdr` ends there
        let end = start.checked_add(incl as usize);
        let Some(data) = end.and_then(|e| b.get(start..e)) else {
            return w.broken_file();
        };
        // ts_sec is unsigned (draft-ietf-opsawg-pcap §5); u32 seconds in ns fit in i64.
        let frac_ns = if nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1_000
        };
        let ts = i64::from(sec) * 1_000_000_000 + frac_ns;
        w.frame(ts, link, data, orig > incl);
        pos = start + data.len();
    }
}

/// Timestamp resolution of a pcapng interface (`if_tsresol`, pcapng §4.2).
#[derive(Debug, Clone, Copy)]
enum TsResol {
    /// Units of 10^-n seconds.
    Pow10(u8),
    /// Units of 2^-n seconds.
    Pow2(u8),
}

/// What a packet block needs from its Interface Description Block.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: u16,
    snaplen: u32,
    resol: TsResol,
    /// `if_tsoffset`: seconds added to every timestamp of the interface.
    offset_secs: i64,
}

impl Interface {
    /// Converts a 64-bit pcapng timestamp to ns since the epoch, saturating at the i64 range
    /// (a hostile resolution or offset must not overflow).
    fn nanos(&self, units: u64) -> i64 {
        const NS: u128 = 1_000_000_000;
        let units = u128::from(units);
        let ns: u128 = match self.resol {
            // At most 2^64 × 10^9 ≈ 1.8e28, far inside u128.
            TsResol::Pow10(n) if n <= 9 => units * 10u128.pow(u32::from(9 - n)),
            TsResol::Pow10(n) => 10u128
                .checked_pow(u32::from(n - 9))
                .map_or(0, |div| units / div),
            TsResol::Pow2(n) => (units * NS).checked_shr(u32::from(n)).unwrap_or(0),
        };
        let ns = i128::try_from(ns).unwrap_or(i128::MAX);
        let total = ns.saturating_add(i128::from(self.offset_secs) * NS as i128);
        i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Interface Description Block body: LinkType (2), reserved (2), SnapLen (4), options.
fn parse_idb(e: Endian, body: &[u8]) -> Option<Interface> {
    let mut iface = Interface {
        link: e.u16(body, 0)?,
        snaplen: e.u32(body, 4)?,
        resol: TsResol::Pow10(6), // the default when if_tsresol is absent: microseconds
        offset_secs: 0,
    };
    // Options (pcapng §3.5): code (2), length (2), value padded to 32 bits, until opt_endofopt
    // or the end of the body. A broken option list keeps what was read so far.
    let mut opts = body.get(8..).unwrap_or_default();
    while let (Some(code), Some(len)) = (e.u16(opts, 0), e.u16(opts, 2)) {
        let len = usize::from(len);
        let Some(value) = opts.get(4..4 + len) else {
            break;
        };
        match (code, value) {
            (0, _) => break, // opt_endofopt
            // if_tsresol: MSB clear = negative power of 10, MSB set = negative power of 2.
            (9, &[r]) => {
                iface.resol = if r & 0x80 == 0 {
                    TsResol::Pow10(r)
                } else {
                    TsResol::Pow2(r & 0x7f)
                };
            }
            // if_tsoffset: signed seconds to add to each timestamp.
            (14, v) if v.len() == 8 => iface.offset_secs = e.u64(v, 0)? as i64,
            _ => {}
        }
        let padded = (4 + len + 3) & !3;
        opts = opts.get(padded..).unwrap_or_default();
    }
    Some(iface)
}

/// A packet block's frame: timestamp, link type, captured bytes, cut by snaplen.
type Packet<'a> = (i64, u16, &'a [u8], bool);

/// Enhanced Packet Block (pcapng §4.3): Interface ID (4), Timestamp high/low (4+4),
/// Captured Length (4), Original Length (4), data, options.
fn parse_epb<'a>(e: Endian, body: &'a [u8], ifaces: &[Option<Interface>]) -> Option<Packet<'a>> {
    let iface = ifaces.get(e.u32(body, 0)? as usize)?.as_ref()?;
    let ts = (u64::from(e.u32(body, 4)?) << 32) | u64::from(e.u32(body, 8)?);
    let cap = e.u32(body, 12)?;
    let orig = e.u32(body, 16)?;
    let data = body.get(20..)?.get(..cap as usize)?;
    Some((iface.nanos(ts), iface.link, data, orig > cap))
}

/// Obsolete Packet Block (pcapng Appendix A): Interface ID (2), Drops Count (2), then the same
/// layout as the EPB.
fn parse_pb<'a>(e: Endian, body: &'a [u8], ifaces: &[Option<Interface>]) -> Option<Packet<'a>> {
    let iface = ifaces.get(usize::from(e.u16(body, 0)?))?.as_ref()?;
    let ts = (u64::from(e.u32(body, 4)?) << 32) | u64::from(e.u32(body, 8)?);
    let cap = e.u32(body, 12)?;
    let orig = e.u32(body, 16)?;
    let data = body.get(20..)?.get(..cap as usize)?;
    Some((iface.nanos(ts), iface.link, data, orig > cap))
}

/// Simple Packet Block (pcapng §4.4): Original Packet Length (4), data. It belongs to interface
/// 0 and has no timestamp: it gets the previous frame's, so that replay pacing stays monotonic.
/// The captured length is the original length bounded by the interface's SnapLen and the block.
fn parse_spb<'a>(
    e: Endian,
    body: &'a [u8],
    ifaces: &[Option<Interface>],
    last_ts: i64,
) -> Option<Packet<'a>> {
    let iface = ifaces.first()?.as_ref()?;
    let orig = e.u32(body, 0)?;
    let avail = body.get(4..)?;
    let mut cap = (orig as usize).min(avail.len());
    if iface.snaplen != 0 {
        cap = cap.min(iface.snaplen as usize);
    }
    let data = avail.get(..cap)?;
    Some((last_ts, iface.link, data, (cap as u64) < u64::from(orig)))
}

/// pcapng: a sequence of blocks `type (4), total length (4), body, total length (4)`; each
/// Section Header Block sets the byte order for its section and starts a new interface list.
fn walk_pcapng<F: FnMut(&UdpDatagram<'_>)>(b: &[u8], w: &mut Walk<F>) {
    let mut pos = 0usize;
    let mut endian = Endian::Little;
    // A broken IDB still takes its interface number, so it is kept as `None`. The list grows
    // with the file (each IDB is at least 20 bytes), so it is bounded by the bytes we hold.
    let mut ifaces: Vec<Option<Interface>> = Vec::new();
    let mut last_ts = 0i64;
    while pos < b.len() {
        let rest = b.get(pos..).unwrap_or_default();
        let Some(btype) = endian.u32(rest, 0) else {
            return w.broken_file();
        };
        if btype == PCAPNG_SHB {
            // The byte-order magic decides how this block's length and all the section's
            // blocks are read (pcapng §4.1).
            endian = match be32(rest, 8) {
                Some(PCAPNG_BYTE_ORDER_MAGIC) => Endian::Big,
                Some(m) if m.swap_bytes() == PCAPNG_BYTE_ORDER_MAGIC => Endian::Little,
                _ => return w.broken_file(),
            };
            ifaces.clear();
        }
        // Total length covers the whole block, is a multiple of 4 and at least 12 (§3.1);
        // anything else loses the framing, so the walk stops.
        let Some(len) = endian.u32(rest, 4).map(|l| l as usize) else {
            return w.broken_file();
        };
        // (`& 3` rather than `is_multiple_of`, which is newer than the workspace's rust-version.)
        if len < 12 || len & 3 != 0 {
            return w.broken_file();
        }
        let Some(block) = rest.get(..len) else {
            return w.broken_file();
        };
        if endian.u32(block, len - 4) != Some(len as u32) {
            return w.broken_file();
        }
        let body = block.get(8..len - 4).unwrap_or_default();
        match btype {
            // SHB body: byte-order magic (4), major (2), minor (2), section length (8). Major 1
            // is the only version; another one means a layout we cannot read.
            PCAPNG_SHB if endian.u16(body, 4) != Some(1) => return w.broken_file(),
            BLOCK_IDB => ifaces.push(parse_idb(endian, body)),
            BLOCK_EPB | BLOCK_PB | BLOCK_SPB => {
                let packet = match btype {
                    BLOCK_EPB => parse_epb(endian, body, &ifaces),
                    BLOCK_PB => parse_pb(endian, body, &ifaces),
                    _ => parse_spb(endian, body, &ifaces, last_ts),
                };
                match packet {
                    Some((ts, link, data, cut)) => {
                        last_ts = ts;
                        w.frame(ts, link, data, cut);
                    }
                    None => w.malformed_frame(),
                }
            }
            // Not packets, but Wireshark reads them as records and numbers them as frames
            // (checked with tshark 4.0); counting them keeps our frame numbers equal to tshark's.
            BLOCK_SYSTEMD_JOURNAL | BLOCK_CUSTOM | BLOCK_CUSTOM_NO_COPY => w.other_frame(),
            // A good SHB (already applied above); name resolution, statistics, decryption
            // secrets and unknown blocks.
            _ => {}
        }
        pos += len; // cannot overflow: `block` ends there
    }
}

// ---------------------------------------------------------------------------------------------
// Link layer
// ---------------------------------------------------------------------------------------------

// LINKTYPE_ values (tcpdump.org link-layer header types).
const LINKTYPE_NULL: u16 = 0;
const LINKTYPE_ETHERNET: u16 = 1;
/// DLT_RAW's value on most BSDs, written as-is into files by old libpcap versions.
const LINKTYPE_RAW_BSD: u16 = 12;
/// DLT_RAW's value on OpenBSD.
const LINKTYPE_RAW_OPENBSD: u16 = 14;
const LINKTYPE_RAW: u16 = 101;
const LINKTYPE_LOOP: u16 = 108;
const LINKTYPE_LINUX_SLL: u16 = 113;
const LINKTYPE_IPV4: u16 = 228;
const LINKTYPE_IPV6: u16 = 229;
const LINKTYPE_LINUX_SLL2: u16 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag.
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still used by some switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;

/// Why a frame yields no datagram; each maps to one [`PcapStats`] counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    NonUdp,
    UnsupportedLink,
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L3 {
    V4,
    V6,
}

/// A datagram found in one frame or reassembled from several.
struct Decoded<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    payload: Cow<'a, [u8]>,
    truncated: bool,
}

fn decode_frame<'a>(
    link: u16,
    frame: &'a [u8],
    cut: bool,
    reasm: &mut Reassembler,
    stats: &mut PcapStats,
) -> Result<Option<Decoded<'a>>, Skip> {
    let (l3, packet) = strip_link(link, frame)?;
    match l3 {
        L3::V4 => ipv4(packet, cut, reasm, stats),
        L3::V6 => ipv6(packet, cut, reasm, stats),
    }
}

/// Removes the link-layer header; returns the network protocol and the packet after it.
fn strip_link(link: u16, f: &[u8]) -> Result<(L3, &[u8]), Skip> {
    match link {
        // Ethernet II: destination (6), source (6), EtherType (2). FCS or padding after the IP
        // packet is cut off later by the IP length.
        LINKTYPE_ETHERNET => ethertype(be16(f, 12).ok_or(Skip::Malformed)?, tail(f, 14)?),
        // Linux cooked v1: packet type (2), ARPHRD (2), address length (2), address (8),
        // protocol (2) which is an EtherType for the link types we can decode.
        LINKTYPE_LINUX_SLL => ethertype(be16(f, 14).ok_or(Skip::Malformed)?, tail(f, 16)?),
        // Linux cooked v2: protocol (2) first, then reserved (2), ifindex (4), ARPHRD (2),
        // packet type (1), address length (1), address (8).
        LINKTYPE_LINUX_SLL2 => ethertype(be16(f, 0).ok_or(Skip::Malformed)?, tail(f, 20)?),
        LINKTYPE_RAW | LINKTYPE_RAW_BSD | LINKTYPE_RAW_OPENBSD => {
            Ok((ip_version(f).ok_or(Skip::Malformed)?, f))
        }
        LINKTYPE_IPV4 => Ok((L3::V4, f)),
        LINKTYPE_IPV6 => Ok((L3::V6, f)),
        // 4-byte address family: host byte order of the capturing machine for NULL, network
        // order for LOOP. AF_ values are small, so a value with high bits set was written in
        // the other byte order (Wireshark's packet-null.c reasons the same way).
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let mut af = Endian::Little.u32(f, 0).ok_or(Skip::Malformed)?;
            if af & 0xffff_0000 != 0 {
                af = af.swap_bytes();
            }
            let rest = tail(f, 4)?;
            match af {
                2 => Ok((L3::V4, rest)),
                // AF_INET6 is 24 on NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS.
                24 | 28 | 30 => Ok((L3::V6, rest)),
                _ => Err(Skip::NonUdp),
            }
        }
        _ => Err(Skip::UnsupportedLink),
    }
}

fn tail(b: &[u8], from: usize) -> Result<&[u8], Skip> {
    b.get(from..).ok_or(Skip::Malformed)
}

fn ip_version(p: &[u8]) -> Option<L3> {
    match p.first()? >> 4 {
        4 => Some(L3::V4),
        6 => Some(L3::V6),
        _ => None,
    }
}

/// Follows an EtherType through VLAN tags and MPLS labels to IPv4 or IPv6.
fn ethertype(mut et: u16, mut p: &[u8]) -> Result<(L3, &[u8]), Skip> {
    // 802.1Q / 802.1ad / old QinQ tag: TCI (2) then the next EtherType (2). Any depth: each tag
    // consumes 4 bytes, so the loop ends with the frame.
    while matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
        et = be16(p, 2).ok_or(Skip::Malformed)?;
        p = tail(p, 4)?;
    }
    match et {
        ETHERTYPE_IPV4 => Ok((L3::V4, p)),
        ETHERTYPE_IPV6 => Ok((L3::V6, p)),
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
            // RFC 3032: 4-byte label stack entries until the bottom-of-stack bit. The payload
            // type is not signalled; like Wireshark, guess IP from its version nibble. Anything
            // else (pseudowire control word, Ethernet over MPLS) is not ours.
            loop {
                let bos = p.get(2).ok_or(Skip::Malformed)? & 1 != 0;
                p = tail(p, 4)?;
                if bos {
                    break;
                }
            }
            Ok((ip_version(p).ok_or(Skip::NonUdp)?, p))
        }
        // ARP, LLDP, 802.3 length fields (LLC), PPPoE, ...
        _ => Err(Skip::NonUdp),
    }
}

// ---------------------------------------------------------------------------------------------
// Network and transport layers
// ---------------------------------------------------------------------------------------------

const PROTO_UDP: u8 = 17;

/// IPv4 (RFC 791 §3.1).
fn ipv4<'a>(
    p: &'a [u8],
    cut: bool,
    reasm: &mut Reassembler,
    stats: &mut PcapStats,
) -> Result<Option<Decoded<'a>>, Skip> {
    let m = Skip::Malformed;
    let b0 = *p.first().ok_or(m)?;
    let ihl = usize::from(b0 & 0x0f) * 4;
    if b0 >> 4 != 4 || ihl < 20 || p.len() < ihl {
        return Err(m);
    }
    let total = usize::from(be16(p, 2).ok_or(m)?);
    // The total length bounds the packet (Ethernet pads short frames to 60 bytes; an FCS may
    // follow). Zero appears in captures of TCP/UDP segmentation offload, where the NIC fills it
    // in later; like Wireshark, take the captured bytes then.
    let (end, truncated) = if total == 0 {
        (p.len(), cut)
    } else if total < ihl {
        return Err(m);
    } else if total > p.len() {
        (p.len(), true)
    } else {
        (total, false)
    };
    let id = be16(p, 4).ok_or(m)?;
    let frag = be16(p, 6).ok_or(m)?;
    let more = frag & 0x2000 != 0; // MF flag
    let offset = usize::from(frag & 0x1fff) * 8; // fragment offset in 8-octet units
    let proto = *p.get(9).ok_or(m)?;
    let src = Ipv4Addr::from(Endian::bytes::<4>(p, 12).ok_or(m)?);
    let dst = Ipv4Addr::from(Endian::bytes::<4>(p, 16).ok_or(m)?);
    let body = p.get(ihl..end).ok_or(m)?;
    if proto != PROTO_UDP {
        return Err(Skip::NonUdp);
    }
    let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
    if !more && offset == 0 {
        return udp(src, dst, Cow::Borrowed(body), truncated, false).map(Some);
    }
    // A fragment cut by snaplen leaves a hole that no later frame can fill.
    if truncated {
        return Err(m);
    }
    // RFC 791 identifies a datagram's fragments by source, destination, protocol and id.
    let key = FragKey::V4 {
        src,
        dst,
        id,
        proto,
    };
    match reasm.add(key, offset, body, more, Some(proto), stats)? {
        Some((whole, _)) => udp(src, dst, Cow::Owned(whole), false, false).map(Some),
        None => Ok(None),
    }
}

/// IPv6 (RFC 8200 §3).
fn ipv6<'a>(
    p: &'a [u8],
    cut: bool,
    reasm: &mut Reassembler,
    stats: &mut PcapStats,
) -> Result<Option<Decoded<'a>>, Skip> {
    let m = Skip::Malformed;
    if p.len() < 40 || p.first().map(|b| b >> 4) != Some(6) {
        return Err(m);
    }
    let plen = usize::from(be16(p, 4).ok_or(m)?);
    let next = *p.get(6).ok_or(m)?;
    let src = IpAddr::V6(Ipv6Addr::from(Endian::bytes::<16>(p, 8).ok_or(m)?));
    let dst = IpAddr::V6(Ipv6Addr::from(Endian::bytes::<16>(p, 24).ok_or(m)?));
    // Payload length 0: a jumbogram (RFC 2675) or segmentation offload; take the captured bytes.
    let (end, truncated) = if plen == 0 {
        (p.len(), cut)
    } else {
        let want = 40 + plen; // at most 40 + 65535
        if want > p.len() {
            (p.len(), true)
        } else {
            (want, false)
        }
    };
    let body = p.get(40..end).ok_or(m)?;
    match walk_v6(next, body)? {
        V6Next::Udp(off) => {
            udp(src, dst, Cow::Borrowed(tail(body, off)?), truncated, true).map(Some)
        }
        V6Next::Fragment {
            off,
            next,
            offset,
            more,
            id,
        } => {
            if truncated {
                return Err(m);
            }
            // RFC 8200 §4.5: fragments of one packet share source, destination and id; the
            // Next Header of the offset-0 fragment starts the reassembled fragmentable part.
            let key = FragKey::V6 { src, dst, id };
            let first = (offset == 0).then_some(next);
            match reasm.add(key, offset, tail(body, off)?, more, first, stats)? {
                None => Ok(None),
                Some((whole, first_next)) => match walk_v6(first_next, &whole)? {
                    V6Next::Udp(0) => udp(src, dst, Cow::Owned(whole), false, true).map(Some),
                    V6Next::Udp(off) => {
                        let seg = whole.get(off..).ok_or(m)?.to_vec();
                        udp(src, dst, Cow::Owned(seg), false, true).map(Some)
                    }
                    // A fragment header inside a reassembled packet: nested fragmentation is
                    // not allowed (RFC 8200 §4.5).
                    V6Next::Fragment { .. } => Err(m),
                },
            }
        }
    }
}

/// Where the IPv6 extension-header chain leads.
enum V6Next {
    /// UDP header at this offset.
    Udp(usize),
    /// A fragment header; its data starts at `off`.
    Fragment {
        off: usize,
        next: u8,
        offset: usize,
        more: bool,
        id: u32,
    },
}

/// Walks IPv6 extension headers (RFC 8200 §4, IANA "IPv6 Extension Header Types") from `next`
/// at the start of `b`. Each header is at least 8 bytes, so the walk ends with the packet.
fn walk_v6(mut next: u8, b: &[u8]) -> Result<V6Next, Skip> {
    let m = Skip::Malformed;
    let mut off = 0usize;
    loop {
        let len = match next {
            PROTO_UDP => return Ok(V6Next::Udp(off)),
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6, experimental:
            // next header (1), length in 8-octet units not counting the first 8 (1).
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => {
                (usize::from(*b.get(off.checked_add(1).ok_or(m)?).ok_or(m)?) + 1) * 8
            }
            // Authentication header (RFC 4302 §2.2): length in 4-octet units minus 2.
            51 => (usize::from(*b.get(off.checked_add(1).ok_or(m)?).ok_or(m)?) + 2) * 4,
            // Fragment header: next (1), reserved (1), offset (13 bits) + 2 reserved + M (16),
            // identification (32).
            44 => {
                let h = b.get(off..).and_then(|h| h.get(..8)).ok_or(m)?;
                let nh = *h.first().ok_or(m)?;
                let fo = be16(h, 2).ok_or(m)?;
                let id = be32(h, 4).ok_or(m)?;
                let offset = usize::from(fo & 0xfff8); // 8-octet units in the top 13 bits
                let more = fo & 1 != 0;
                off += 8;
                if offset == 0 && !more {
                    // Atomic fragment (RFC 6946): a whole packet, processed in place.
                    next = nh;
                    continue;
                }
                return Ok(V6Next::Fragment {
                    off,
                    next: nh,
                    offset,
                    more,
                    id,
                });
            }
            // TCP, ICMPv6, ESP (encrypted: cannot see inside), No Next Header, ...
            _ => return Err(Skip::NonUdp),
        };
        next = *b.get(off).ok_or(m)?;
        off = off.checked_add(len).ok_or(m)?;
    }
}

/// UDP (RFC 768): checks the header and makes the datagram. Checksums are not verified:
/// captures taken on the sending host carry offloaded, not yet computed checksums.
fn udp(
    src: IpAddr,
    dst: IpAddr,
    seg: Cow<'_, [u8]>,
    ip_truncated: bool,
    v6: bool,
) -> Result<Decoded<'_>, Skip> {
    let m = Skip::Malformed;
    if seg.len() < 8 {
        return Err(m);
    }
    let sport = be16(&seg, 0).ok_or(m)?;
    let dport = be16(&seg, 2).ok_or(m)?;
    let ulen = usize::from(be16(&seg, 4).ok_or(m)?);
    let (end, truncated) = match ulen {
        // Jumbogram (RFC 2675 §4): the length comes from the IPv6 layer.
        0 if v6 => (seg.len(), ip_truncated),
        // Shorter than its header: the kernel drops it, so a collector never sees it.
        0..=7 => return Err(m),
        // Anything after the declared length (IP padding) is not payload.
        n if n <= seg.len() => (n, false),
        // Cut by snaplen: deliver what was captured.
        _ if ip_truncated => (seg.len(), true),
        // Longer than the complete IP packet that carries it: corrupt, dropped by the kernel.
        _ => return Err(m),
    };
    let payload = match seg {
        Cow::Borrowed(s) => Cow::Borrowed(s.get(8..end).ok_or(m)?),
        Cow::Owned(mut v) => {
            v.truncate(end);
            v.drain(..8);
            Cow::Owned(v)
        }
    };
    Ok(Decoded {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        payload,
        truncated,
    })
}

// ---------------------------------------------------------------------------------------------
// Fragment reassembly
// ---------------------------------------------------------------------------------------------

/// Datagrams reassembled at once. Exporters fragment only datagrams above the path MTU and
/// send them back to back, so a handful is in flight at a time; 64 leaves room for many
/// exporters interleaved in one capture while bounding what a hostile file can make us hold
/// (64 × 64 KiB of data plus the range lists).
pub const MAX_PENDING_DATAGRAMS: usize = 64;

/// Largest reassembled payload: the IPv4 total length and the IPv6 payload length are 16-bit
/// fields, so no legitimate datagram is larger (RFC 791 §3.1, RFC 8200 §4.5).
pub const MAX_REASSEMBLED_LEN: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FragKey {
    V4 {
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        proto: u8,
    },
    V6 {
        src: IpAddr,
        dst: IpAddr,
        id: u32,
    },
}

/// One datagram being reassembled.
#[derive(Debug)]
struct Pending {
    key: FragKey,
    buf: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and not touching (touching ones are merged).
    have: Vec<(usize, usize)>,
    /// Length of the whole datagram, known once the last fragment (MF = 0) arrived.
    total: Option<usize>,
    /// Protocol / Next Header carried by the offset-0 fragment.
    first_next: Option<u8>,
}

enum Insert {
    Held,
    Complete,
    /// Overlap or contradicting lengths: the datagram is given up (RFC 5722 for IPv6; Linux
    /// does the same for IPv4), since no answer is safer than a spliced one.
    Conflict,
}

impl Pending {
    fn insert(
        &mut self,
        offset: usize,
        end: usize,
        data: &[u8],
        more: bool,
        first_next: Option<u8>,
    ) -> Insert {
        if !more {
            let beyond = self.have.last().is_some_and(|&(_, e)| e > end);
            if beyond || self.total.is_some_and(|t| t != end) {
                return Insert::Conflict;
            }
            self.total = Some(end);
        } else if self.total.is_some_and(|t| end > t) {
            return Insert::Conflict;
        }
        if self.have.iter().any(|&(s, e)| s < end && offset < e) {
            // The same bytes again (a frame captured twice, e.g. on two interfaces) are a
            // harmless duplicate; anything else overlapping is a conflict.
            let inside = self.have.iter().any(|&(s, e)| s <= offset && end <= e);
            return if inside && self.buf.get(offset..end) == Some(data) {
                Insert::Held
            } else {
                Insert::Conflict
            };
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        if let Some(dst) = self.buf.get_mut(offset..end) {
            dst.copy_from_slice(data);
        }
        self.add_range(offset, end);
        if offset == 0 {
            self.first_next = first_next;
        }
        match (self.total, self.have.as_slice(), self.first_next) {
            (Some(t), &[(0, e)], Some(_)) if e == t => Insert::Complete,
            _ => Insert::Held,
        }
    }

    /// Inserts a range known not to overlap any held one, merging touching neighbours.
    fn add_range(&mut self, s: usize, e: usize) {
        let i = self.have.partition_point(|&(hs, _)| hs < s);
        self.have.insert(i, (s, e));
        if let Some(&(ns, ne)) = self.have.get(i + 1) {
            if ns == e {
                if let Some(r) = self.have.get_mut(i) {
                    r.1 = ne;
                }
                self.have.remove(i + 1);
            }
        }
        if let (Some(p), Some(&(_, ce))) = (i.checked_sub(1), self.have.get(i)) {
            if self.have.get(p).is_some_and(|&(_, pe)| pe == s) {
                if let Some(r) = self.have.get_mut(p) {
                    r.1 = ce;
                }
                self.have.remove(i);
            }
        }
    }
}

/// Pending datagrams, oldest first.
#[derive(Debug, Default)]
struct Reassembler {
    pending: VecDeque<Pending>,
}

impl Reassembler {
    /// Adds one fragment; returns the whole fragmentable part and the first Next Header /
    /// protocol once every byte is there.
    fn add(
        &mut self,
        key: FragKey,
        offset: usize,
        data: &[u8],
        more: bool,
        first_next: Option<u8>,
        stats: &mut PcapStats,
    ) -> Result<Option<(Vec<u8>, u8)>, Skip> {
        let m = Skip::Malformed;
        let end = offset.checked_add(data.len()).ok_or(m)?;
        // Every fragment but the last carries a non-empty multiple of 8 bytes (RFC 791 §3.2,
        // RFC 8200 §4.5), and nothing may reach beyond the largest possible datagram (the
        // classic "ping of death").
        if end > MAX_REASSEMBLED_LEN || (more && (data.is_empty() || data.len() & 7 != 0)) {
            return Err(m);
        }
        let idx = match self.pending.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING_DATAGRAMS {
                    self.pending.pop_front();
                    stats.fragments_pending_dropped += 1;
                }
                self.pending.push_back(Pending {
                    key,
                    buf: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    first_next: None,
                });
                self.pending.len() - 1
            }
        };
        let Some(p) = self.pending.get_mut(idx) else {
            return Err(m);
        };
        match p.insert(offset, end, data, more, first_next) {
            Insert::Held => Ok(None),
            Insert::Complete => match self.pending.remove(idx) {
                Some(Pending {
                    buf,
                    first_next: Some(next),
                    ..
                }) => Ok(Some((buf, next))),
                _ => Err(m),
            },
            Insert::Conflict => {
                self.pending.remove(idx);
                stats.fragments_pending_dropped += 1;
                Err(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- packet builders -------------------------------------------------------------------

    const V4_SRC: [u8; 4] = [192, 0, 2, 7];
    const V4_DST: [u8; 4] = [198, 51, 100, 1];

    fn v6(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn udp_seg(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((data.len() + 8) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(data);
        v
    }

    /// IPv4 header (with `options`, a multiple of 4 bytes) followed by `body`.
    fn ipv4_raw(proto: u8, id: u16, frag: u16, options: &[u8], body: &[u8]) -> Vec<u8> {
        let ihl = 20 + options.len();
        let mut v = vec![0x40 | (ihl / 4) as u8, 0];
        v.extend_from_slice(&((ihl + body.len()) as u16).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&V4_SRC);
        v.extend_from_slice(&V4_DST);
        v.extend_from_slice(options);
        v.extend_from_slice(body);
        v
    }

    fn ipv4_udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        ipv4_raw(17, 1, 0, &[], &udp_seg(sport, dport, data))
    }

    fn ipv6_raw(next: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&v6(1).octets());
        v.extend_from_slice(&v6(2).octets());
        v.extend_from_slice(body);
        v
    }

    fn ipv6_udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        ipv6_raw(17, &udp_seg(sport, dport, data))
    }

    fn eth(tags: &[u16], ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for (i, tpid) in tags.iter().enumerate() {
            v.extend_from_slice(&tpid.to_be_bytes());
            v.extend_from_slice(&(100 + i as u16).to_be_bytes()); // TCI: VLAN id
        }
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(l3);
        v
    }

    fn eth_v4(l3: &[u8]) -> Vec<u8> {
        eth(&[], ETHERTYPE_IPV4, l3)
    }

    fn sll(proto: u16, l3: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        v.extend_from_slice(&proto.to_be_bytes());
        v.extend_from_slice(l3);
        v
    }

    fn sll2(proto: u16, l3: &[u8]) -> Vec<u8> {
        let mut v = proto.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        v.extend_from_slice(l3);
        v
    }

    /// IPv4 fragments of one UDP datagram, each carrying at most `chunk` (multiple of 8) bytes.
    fn ipv4_fragments(id: u16, dgram: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        dgram
            .chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let off = i * chunk;
                let more = off + c.len() < dgram.len();
                let frag = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
                ipv4_raw(17, id, frag, &[], c)
            })
            .collect()
    }

    /// IPv6 fragments: each has a fragment header; `dgram` is the fragmentable part whose first
    /// header is `first_next`.
    fn ipv6_fragments(id: u32, first_next: u8, dgram: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        dgram
            .chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let off = i * chunk;
                let more = off + c.len() < dgram.len();
                let mut body = vec![first_next, 0];
                body.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
                body.extend_from_slice(&id.to_be_bytes());
                body.extend_from_slice(c);
                ipv6_raw(44, &body)
            })
            .collect()
    }

    // ---- file builders ---------------------------------------------------------------------

    fn put16(out: &mut Vec<u8>, big: bool, v: u16) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn put32(out: &mut Vec<u8>, big: bool, v: u32) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    struct Classic {
        out: Vec<u8>,
        big: bool,
    }

    impl Classic {
        fn new(big: bool, nanos: bool, link: u32) -> Self {
            let mut out = Vec::new();
            let magic = if nanos {
                PCAP_MAGIC_NANOS
            } else {
                PCAP_MAGIC_MICROS
            };
            put32(&mut out, big, magic);
            put16(&mut out, big, 2);
            put16(&mut out, big, 4);
            put32(&mut out, big, 0);
            put32(&mut out, big, 0);
            put32(&mut out, big, 262_144);
            put32(&mut out, big, link);
            Classic { out, big }
        }

        fn rec_cut(mut self, sec: u32, frac: u32, data: &[u8], orig: u32) -> Self {
            let big = self.big;
            put32(&mut self.out, big, sec);
            put32(&mut self.out, big, frac);
            put32(&mut self.out, big, data.len() as u32);
            put32(&mut self.out, big, orig);
            self.out.extend_from_slice(data);
            self
        }

        fn rec(self, sec: u32, frac: u32, data: &[u8]) -> Self {
            let n = data.len() as u32;
            self.rec_cut(sec, frac, data, n)
        }
    }

    struct Ng {
        out: Vec<u8>,
        big: bool,
    }

    fn pad4(v: &mut Vec<u8>) {
        while v.len() & 3 != 0 {
            v.push(0);
        }
    }

    impl Ng {
        fn new(big: bool) -> Self {
            Ng {
                out: Vec::new(),
                big,
            }
            .shb(big)
        }

        fn block(mut self, btype: u32, body: &[u8]) -> Self {
            let big = self.big;
            let len = 12 + body.len() as u32;
            put32(&mut self.out, big, btype);
            put32(&mut self.out, big, len);
            self.out.extend_from_slice(body);
            put32(&mut self.out, big, len);
            self
        }

        /// Starts a new section in byte order `big`.
        fn shb(mut self, big: bool) -> Self {
            self.big = big;
            let mut body = Vec::new();
            put32(&mut body, big, PCAPNG_BYTE_ORDER_MAGIC);
            put16(&mut body, big, 1);
            put16(&mut body, big, 0);
            body.extend_from_slice(&[0xff; 8]); // section length unknown (-1)
            self.block(PCAPNG_SHB, &body)
        }

        /// IDB with options given as (code, value).
        fn idb(self, link: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) -> Self {
            let big = self.big;
            let mut body = Vec::new();
            put16(&mut body, big, link);
            put16(&mut body, big, 0);
            put32(&mut body, big, snaplen);
            for (code, val) in opts {
                put16(&mut body, big, *code);
                put16(&mut body, big, val.len() as u16);
                body.extend_from_slice(val);
                pad4(&mut body);
            }
            if !opts.is_empty() {
                body.extend_from_slice(&[0, 0, 0, 0]);
            }
            self.block(BLOCK_IDB, &body)
        }

        fn epb_cut(self, iface: u32, ts: u64, data: &[u8], orig: u32) -> Self {
            let big = self.big;
            let mut body = Vec::new();
            put32(&mut body, big, iface);
            put32(&mut body, big, (ts >> 32) as u32);
            put32(&mut body, big, ts as u32);
            put32(&mut body, big, data.len() as u32);
            put32(&mut body, big, orig);
            body.extend_from_slice(data);
            pad4(&mut body);
            // an option (opt_comment) after the data, to check it is not read as data
            put16(&mut body, big, 1);
            put16(&mut body, big, 3);
            body.extend_from_slice(b"hi!\0");
            body.extend_from_slice(&[0, 0, 0, 0]);
            self.block(BLOCK_EPB, &body)
        }

        fn epb(self, iface: u32, ts: u64, data: &[u8]) -> Self {
            let n = data.len() as u32;
            self.epb_cut(iface, ts, data, n)
        }

        fn spb(self, data: &[u8]) -> Self {
            let big = self.big;
            let mut body = Vec::new();
            put32(&mut body, big, data.len() as u32);
            body.extend_from_slice(data);
            pad4(&mut body);
            self.block(BLOCK_SPB, &body)
        }

        fn pb(self, iface: u16, ts: u64, data: &[u8]) -> Self {
            let big = self.big;
            let mut body = Vec::new();
            put16(&mut body, big, iface);
            put16(&mut body, big, 0);
            put32(&mut body, big, (ts >> 32) as u32);
            put32(&mut body, big, ts as u32);
            put32(&mut body, big, data.len() as u32);
            put32(&mut body, big, data.len() as u32);
            body.extend_from_slice(data);
            pad4(&mut body);
            self.block(BLOCK_PB, &body)
        }
    }

    // ---- running ---------------------------------------------------------------------------

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Got {
        frame: u64,
        ts: i64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: Vec<u8>,
        truncated: bool,
        borrowed: bool,
    }

    fn run(bytes: Vec<u8>) -> (Vec<Got>, PcapStats) {
        let mut r = PcapReader::from_bytes(bytes).expect("valid header");
        let mut got = Vec::new();
        let stats = r
            .for_each_udp(|d| {
                got.push(Got {
                    frame: d.frame,
                    ts: d.ts_nanos,
                    src: d.src,
                    dst: d.dst,
                    payload: d.payload.to_vec(),
                    truncated: d.truncated,
                    borrowed: matches!(d.payload, Cow::Borrowed(_)),
                })
            })
            .expect("walk");
        (got, stats)
    }

    fn v4_sock(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
    }

    fn v6_sock(last: u16, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(v6(last)), port)
    }

    // ---- classic pcap ----------------------------------------------------------------------

    #[test]
    fn classic_both_byte_orders_and_resolutions() {
        let data = payload(40);
        for big in [false, true] {
            for nanos in [false, true] {
                let frac = if nanos { 123_456_789 } else { 123_456 };
                let file = Classic::new(big, nanos, 1)
                    .rec(1_700_000_000, frac, &eth_v4(&ipv4_udp(50000, 4739, &data)))
                    .rec(1_700_000_001, 0, &eth_v4(&ipv4_udp(50001, 2055, b"x")));
                let (got, stats) = run(file.out);
                assert_eq!(got.len(), 2, "big={big} nanos={nanos}");
                let want_frac = if nanos { 123_456_789 } else { 123_456_000 };
                assert_eq!(got[0].ts, 1_700_000_000 * 1_000_000_000 + want_frac);
                assert_eq!(got[0].frame, 1);
                assert_eq!(got[0].src, v4_sock(V4_SRC, 50000));
                assert_eq!(got[0].dst, v4_sock(V4_DST, 4739));
                assert_eq!(got[0].payload, data);
                assert!(got[0].borrowed && !got[0].truncated);
                assert_eq!(got[1].frame, 2);
                assert_eq!(got[1].payload, b"x");
                assert_eq!(got[1].ts, 1_700_000_001 * 1_000_000_000);
                assert_eq!((stats.frames, stats.udp, stats.malformed), (2, 2, 0));
            }
        }
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            PcapReader::from_bytes(Vec::new()),
            Err(PcapError::Truncated)
        ));
        assert!(matches!(
            PcapReader::from_bytes(vec![0xd4, 0xc3]),
            Err(PcapError::Truncated)
        ));
        assert!(matches!(
            PcapReader::from_bytes(b"GIF89a".to_vec()),
            Err(PcapError::NotACapture)
        ));
        assert!(matches!(
            PcapReader::from_bytes(b"ab".to_vec()),
            Err(PcapError::NotACapture)
        ));
        let hdr = Classic::new(false, false, 1).out;
        assert!(matches!(
            PcapReader::from_bytes(hdr[..20].to_vec()),
            Err(PcapError::Truncated)
        ));
        let mut bad = hdr.clone();
        bad[4] = 1;
        assert!(matches!(
            PcapReader::from_bytes(bad),
            Err(PcapError::UnsupportedVersion { major: 1, minor: 4 })
        ));
        let ng = Ng::new(true).out;
        assert!(matches!(
            PcapReader::from_bytes(ng[..10].to_vec()),
            Err(PcapError::Truncated)
        ));
        let mut bad = ng.clone();
        bad[8] = 0;
        assert!(matches!(
            PcapReader::from_bytes(bad),
            Err(PcapError::NotACapture)
        ));
        // A header and no records is an empty, valid capture.
        let (got, stats) = run(hdr);
        assert!(got.is_empty());
        assert_eq!(stats.frames, 0);
        assert_eq!(PcapError::Truncated.reason(), "truncated");
    }

    #[test]
    fn open_reads_a_file() {
        let path =
            std::env::temp_dir().join(format!("sluice-pcap-open-{}.pcap", std::process::id()));
        let file = Classic::new(false, false, 1).rec(5, 6, &eth_v4(&ipv4_udp(1, 2, b"abc")));
        std::fs::write(&path, &file.out).expect("write temp file");
        let mut r = PcapReader::open(&path).expect("open");
        let _ = std::fs::remove_file(&path);
        let mut n = 0;
        r.for_each_udp(|d| {
            assert_eq!(&*d.payload, b"abc");
            n += 1;
        })
        .expect("walk");
        assert_eq!(n, 1);
        assert!(format!("{r:?}").contains("Classic"));
        assert!(matches!(
            PcapReader::open(Path::new("/nonexistent/sluice.pcap")),
            Err(PcapError::Io(_))
        ));
    }

    #[test]
    fn vlan_tags_any_depth() {
        let data = payload(20);
        let l3 = ipv4_udp(1000, 2055, &data);
        let cases: [&[u16]; 4] = [
            &[ETHERTYPE_VLAN],
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
            &[ETHERTYPE_QINQ_OLD, ETHERTYPE_QINQ, ETHERTYPE_VLAN],
            &[ETHERTYPE_VLAN; 6],
        ];
        let mut file = Classic::new(false, false, 1);
        for tags in cases {
            file = file.rec(1, 0, &eth(tags, ETHERTYPE_IPV4, &l3));
        }
        file = file.rec(
            1,
            0,
            &eth(&[ETHERTYPE_VLAN], ETHERTYPE_IPV6, &ipv6_udp(1, 2, &data)),
        );
        let (got, stats) = run(file.out);
        assert_eq!(stats.udp, 5);
        for g in &got[..4] {
            assert_eq!(g.payload, data);
            assert_eq!(g.dst, v4_sock(V4_DST, 2055));
        }
        assert_eq!(got[4].src, v6_sock(1, 1));
        // A tag cut short is malformed, not a panic.
        let file = Classic::new(false, false, 1).rec(1, 0, &eth(&[], ETHERTYPE_VLAN, &[0, 1]));
        assert_eq!(run(file.out).1.malformed, 1);
    }

    #[test]
    fn mpls_label_stack() {
        let data = payload(12);
        let mut labels = vec![0x00, 0x01, 0x00, 0x40]; // label 16, not bottom
        labels.extend_from_slice(&[0x00, 0x02, 0x01, 0x40]); // label 32, bottom of stack
        let mut v4 = labels.clone();
        v4.extend_from_slice(&ipv4_udp(7, 8, &data));
        let mut pw = labels;
        pw.extend_from_slice(&[0, 0, 0, 0]); // pseudowire control word: not IP
        pw.extend_from_slice(&eth_v4(&ipv4_udp(7, 8, &data)));
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &eth(&[ETHERTYPE_VLAN], ETHERTYPE_MPLS, &v4))
            .rec(1, 0, &eth(&[], ETHERTYPE_MPLS, &pw));
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, data);
        assert_eq!(stats.non_udp, 1);
    }

    #[test]
    fn every_supported_link_type() {
        let data = payload(33);
        let v4 = ipv4_udp(4000, 4739, &data);
        let v6p = ipv6_udp(4001, 4739, &data);
        let null = |af: u32, big: bool, l3: &[u8]| {
            let mut v = if big {
                af.to_be_bytes()
            } else {
                af.to_le_bytes()
            }
            .to_vec();
            v.extend_from_slice(l3);
            v
        };
        let cases: Vec<(u32, Vec<u8>, bool)> = vec![
            (113, sll(ETHERTYPE_IPV4, &v4), false),
            (113, sll(ETHERTYPE_IPV6, &v6p), true),
            (276, sll2(ETHERTYPE_IPV4, &v4), false),
            (276, sll2(ETHERTYPE_IPV6, &v6p), true),
            (101, v4.clone(), false),
            (101, v6p.clone(), true),
            (12, v4.clone(), false),
            (14, v6p.clone(), true),
            (228, v4.clone(), false),
            (229, v6p.clone(), true),
            (0, null(2, false, &v4), false),
            (0, null(2, true, &v4), false),
            (0, null(24, false, &v6p), true),
            (0, null(28, true, &v6p), true),
            (0, null(30, false, &v6p), true),
            (108, null(2, true, &v4), false),
            (108, null(24, true, &v6p), true),
            // Link type with FCS bits set in the upper half of the field (draft-ietf-opsawg-pcap).
            (0x1400_0001, eth_v4(&v4), false),
        ];
        for (link, frame, is_v6) in cases {
            for big in [false, true] {
                let file = Classic::new(big, false, link).rec(9, 0, &frame);
                let (got, stats) = run(file.out);
                assert_eq!(got.len(), 1, "link {link} big {big}: {stats:?}");
                assert_eq!(got[0].payload, data);
                let src = if is_v6 {
                    v6_sock(1, 4001)
                } else {
                    v4_sock(V4_SRC, 4000)
                };
                assert_eq!(got[0].src, src, "link {link}");
            }
        }
        // Unknown link type, unknown address family, SLL carrying ARP.
        let file = Classic::new(false, false, 105).rec(1, 0, &v4);
        assert_eq!(run(file.out).1.unsupported_link, 1);
        let file = Classic::new(false, false, 0).rec(1, 0, &null(7, false, &v4));
        assert_eq!(run(file.out).1.non_udp, 1);
        let file = Classic::new(false, false, 113).rec(1, 0, &sll(0x0806, &[0; 28]));
        assert_eq!(run(file.out).1.non_udp, 1);
        // Raw IP with a version that is neither 4 nor 6.
        let file = Classic::new(false, false, 101).rec(1, 0, &[0x50; 40]);
        assert_eq!(run(file.out).1.malformed, 1);
    }

    #[test]
    fn ipv4_options_padding_and_trailers() {
        let data = payload(6);
        // Record-route-ish option (8 bytes): IHL 7.
        let opts = [7, 7, 4, 0, 0, 0, 0, 1];
        let l3 = ipv4_raw(17, 9, 0x4000, &opts, &udp_seg(123, 2055, &data));
        let mut frame = eth_v4(&l3);
        frame.resize(60, 0); // Ethernet minimum-size padding
        frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // FCS
        let file = Classic::new(false, false, 1).rec(1, 0, &frame);
        let (got, _) = run(file.out);
        assert_eq!(got[0].payload, data);
        assert_eq!(got[0].src.port(), 123);
        // UDP length shorter than the IP payload: trailing bytes are not payload.
        let mut seg = udp_seg(1, 2, b"abcd");
        seg.extend_from_slice(b"junk");
        let file = Classic::new(false, false, 101).rec(1, 0, &ipv4_raw(17, 1, 0, &[], &seg));
        assert_eq!(run(file.out).0[0].payload, b"abcd");
    }

    #[test]
    fn ipv6_extension_headers() {
        let data = payload(50);
        let seg = udp_seg(9995, 9996, &data);
        // hop-by-hop (8) -> routing (24) -> AH (16) -> destination options (8) -> UDP
        let mut body = vec![43, 0, 1, 4, 0, 0, 0, 0];
        body.extend_from_slice(&[51, 2, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[60, 2, 0, 0]); // AH: payload len 2 => (2+2)*4 = 16 bytes
        body.extend_from_slice(&[0; 12]);
        body.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        body.extend_from_slice(&seg);
        let mut atomic = vec![17, 0, 0, 0, 0, 0, 0, 9]; // atomic fragment (RFC 6946)
        atomic.extend_from_slice(&seg);
        let mut esp = vec![0, 0, 1, 0, 0, 0, 0, 1];
        esp.extend_from_slice(&seg);
        let file = Classic::new(true, true, 229)
            .rec(1, 0, &ipv6_raw(0, &body))
            .rec(1, 0, &ipv6_raw(44, &atomic))
            .rec(1, 0, &ipv6_raw(50, &esp))
            .rec(1, 0, &ipv6_raw(6, &[0; 20]))
            .rec(1, 0, &ipv6_raw(0, &[17, 9, 0, 0])); // extension header longer than the packet
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 2);
        for g in &got {
            assert_eq!(g.payload, data);
            assert_eq!(g.src, v6_sock(1, 9995));
            assert_eq!(g.dst, v6_sock(2, 9996));
        }
        assert_eq!((stats.non_udp, stats.malformed), (2, 1));
    }

    #[test]
    fn non_udp_and_malformed_frames_are_counted_and_skipped() {
        let tcp = ipv4_raw(6, 1, 0, &[], &[0; 20]);
        let mut bad_udp_len = udp_seg(1, 2, b"abc");
        bad_udp_len[5] = 200; // UDP length beyond the complete IP packet
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &eth_v4(&tcp))
            .rec(1, 0, &eth(&[], 0x0806, &[0; 28])) // ARP
            .rec(1, 0, &eth_v4(&ipv4_raw(1, 1, 0, &[], &[8, 0, 0, 0]))) // ICMP
            .rec(1, 0, &[0; 10]) // runt
            .rec(1, 0, &eth_v4(&[0x45, 0, 0, 10])) // cut IPv4 header
            .rec(1, 0, &eth_v4(&ipv4_raw(17, 1, 0, &[], &bad_udp_len)))
            .rec(
                1,
                0,
                &eth_v4(&ipv4_raw(17, 1, 0, &[], &[0, 1, 0, 2, 0, 4, 0, 0])),
            ) // UDP len 4
            .rec(1, 0, &eth(&[], ETHERTYPE_IPV4, &ipv6_udp(1, 2, b"v"))) // version mismatch
            .rec(2, 0, &eth_v4(&ipv4_udp(5, 6, b"ok")));
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].frame, 9);
        assert_eq!(stats.frames, 9);
        assert_eq!(stats.non_udp, 3);
        assert_eq!(stats.malformed, 5);
    }

    #[test]
    fn snaplen_cut_frames_are_delivered_truncated() {
        let data = payload(300);
        let full = eth_v4(&ipv4_udp(1, 2, &data));
        let cut = &full[..14 + 20 + 8 + 100];
        let full6 = eth(&[], ETHERTYPE_IPV6, &ipv6_udp(1, 2, &data));
        let cut6 = &full6[..14 + 40 + 8 + 50];
        let file = Classic::new(false, false, 1)
            .rec_cut(1, 0, cut, full.len() as u32)
            .rec_cut(1, 0, cut6, full6.len() as u32)
            .rec_cut(1, 0, &full[..14 + 20 + 4], full.len() as u32); // UDP header cut
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 2);
        assert!(got[0].truncated && got[1].truncated);
        assert_eq!(got[0].payload, &data[..100]);
        assert_eq!(got[1].payload, &data[..50]);
        assert_eq!(stats.malformed, 1);
    }

    #[test]
    fn truncated_file_ends_the_walk() {
        let ok = eth_v4(&ipv4_udp(1, 2, b"first"));
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &ok)
            .rec(2, 0, &ok)
            .out;
        // Cut inside the second record's data, then inside its header.
        for cut in [file.len() - 3, 24 + 16 + ok.len() + 7] {
            let (got, stats) = run(file[..cut].to_vec());
            assert_eq!(got.len(), 1);
            assert_eq!((stats.frames, stats.malformed), (1, 1));
        }
    }

    // ---- fragments -------------------------------------------------------------------------

    #[test]
    fn ipv4_fragments_reassembled_in_any_order() {
        let data = payload(3000);
        let dgram = udp_seg(50000, 4739, &data);
        let frags = ipv4_fragments(0x1234, &dgram, 1480);
        assert_eq!(frags.len(), 3);
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut file = Classic::new(false, false, 1);
            for (n, &i) in order.iter().enumerate() {
                file = file.rec(10 + n as u32, 0, &eth_v4(&frags[i]));
                if n == 0 {
                    // A datagram from elsewhere in between.
                    file = file.rec(10, 5, &eth_v4(&ipv4_udp(1, 2, b"between")));
                }
            }
            let (got, stats) = run(file.out);
            assert_eq!(got.len(), 2, "order {order:?}");
            assert_eq!(got[0].payload, b"between");
            let g = &got[1];
            assert_eq!(g.frame, 4, "delivered at the frame that completes it");
            assert_eq!(g.ts, 12 * 1_000_000_000);
            assert_eq!(g.src, v4_sock(V4_SRC, 50000));
            assert_eq!(g.dst, v4_sock(V4_DST, 4739));
            assert_eq!(g.payload, data);
            assert!(!g.borrowed && !g.truncated);
            assert_eq!(stats.frames, 4);
            assert_eq!(stats.udp, 2);
            assert_eq!(stats.fragments_pending_dropped, 0);
        }
    }

    #[test]
    fn ipv4_fragments_interleaved_by_key() {
        let a = udp_seg(1, 4739, &payload(2000));
        let b = udp_seg(2, 4739, &payload(1800));
        let fa = ipv4_fragments(7, &a, 1000);
        let fb = ipv4_fragments(8, &b, 1000);
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &eth_v4(&fa[0]))
            .rec(1, 0, &eth_v4(&fb[0]))
            .rec(1, 0, &eth_v4(&fa[1]))
            .rec(1, 0, &eth_v4(&fb[1]))
            .rec(1, 0, &eth_v4(&fa[2]));
        let (got, _) = run(file.out);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].src.port(), got[0].frame), (2, 4));
        assert_eq!(got[0].payload, payload(1800));
        assert_eq!((got[1].src.port(), got[1].frame), (1, 5));
        assert_eq!(got[1].payload, payload(2000));
    }

    #[test]
    fn duplicate_and_overlapping_fragments() {
        let dgram = udp_seg(1, 2, &payload(2000));
        let f = ipv4_fragments(3, &dgram, 1000);
        // An exact duplicate is ignored.
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &eth_v4(&f[0]))
            .rec(1, 0, &eth_v4(&f[0]))
            .rec(1, 0, &eth_v4(&f[1]))
            .rec(1, 0, &eth_v4(&f[2]));
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, payload(2000));
        assert_eq!(stats.fragments_pending_dropped, 0);
        // Same offset, other bytes: the datagram is dropped (RFC 5722).
        let mut evil = f[0].clone();
        let last = evil.len() - 1;
        evil[last] ^= 0xff;
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &eth_v4(&f[0]))
            .rec(1, 0, &eth_v4(&evil))
            .rec(1, 0, &eth_v4(&f[1]))
            .rec(1, 0, &eth_v4(&f[2]));
        let (got, stats) = run(file.out);
        assert!(got.is_empty());
        // The conflict drops one; the later fragments start a new one that never completes.
        assert_eq!(stats.fragments_pending_dropped, 2);
        assert_eq!(stats.malformed, 1);
        // Two last fragments with different ends, a fragment beyond 65535, an odd-sized middle.
        let tail_a = ipv4_raw(17, 4, 125, &[], &[0; 16]);
        let tail_b = ipv4_raw(17, 4, 125, &[], &[0; 24]);
        let huge = ipv4_raw(17, 5, 0x1fff, &[], &[0; 16]);
        let odd = ipv4_raw(17, 6, 0x2000, &[], &[0; 15]);
        let file = Classic::new(false, false, 1)
            .rec(1, 0, &eth_v4(&tail_a))
            .rec(1, 0, &eth_v4(&tail_b))
            .rec(1, 0, &eth_v4(&huge))
            .rec(1, 0, &eth_v4(&odd));
        let (got, stats) = run(file.out);
        assert!(got.is_empty());
        assert_eq!(stats.malformed, 3);
        assert_eq!(stats.fragments_pending_dropped, 1);
    }

    #[test]
    fn pending_fragments_are_bounded() {
        let extra = 6;
        let mut file = Classic::new(false, false, 1);
        let mut firsts = Vec::new();
        for id in 0..(MAX_PENDING_DATAGRAMS + extra) as u16 {
            let f = ipv4_fragments(id, &udp_seg(1, 2, &payload(64)), 32);
            file = file.rec(1, 0, &eth_v4(&f[0]));
            firsts.push(f);
        }
        // The oldest were evicted: their last fragments no longer complete anything; the
        // newest still do.
        for f in firsts.iter().take(extra) {
            file = file.rec(2, 0, &eth_v4(&f[2]));
        }
        let newest = firsts.last().expect("some");
        file = file
            .rec(3, 0, &eth_v4(&newest[1]))
            .rec(3, 0, &eth_v4(&newest[2]));
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, payload(64));
        // `extra` evicted on arrival of the new ones, then each stale last fragment evicts one
        // more; what is left at the end (all but the completed one) counts too.
        assert_eq!(
            stats.fragments_pending_dropped,
            (extra + extra + MAX_PENDING_DATAGRAMS - 1) as u64
        );
        // Never more than the bound held at once: checked directly on the reassembler.
        let mut r = Reassembler::default();
        let mut s = PcapStats::default();
        for id in 0..1000u32 {
            let key = FragKey::V6 {
                src: IpAddr::V6(v6(1)),
                dst: IpAddr::V6(v6(2)),
                id,
            };
            let _ = r.add(key, 0, &[0; 8], true, Some(17), &mut s);
            assert!(r.pending.len() <= MAX_PENDING_DATAGRAMS);
        }
        assert_eq!(
            s.fragments_pending_dropped,
            1000 - MAX_PENDING_DATAGRAMS as u64
        );
    }

    #[test]
    fn ipv4_fragment_of_tcp_is_not_held() {
        let f = ipv4_raw(6, 1, 0x2000, &[], &[0; 16]);
        let file = Classic::new(false, false, 1).rec(1, 0, &eth_v4(&f));
        let (_, stats) = run(file.out);
        assert_eq!((stats.non_udp, stats.fragments_pending_dropped), (1, 0));
    }

    #[test]
    fn ipv6_fragments_reassembled() {
        let data = payload(4000);
        // Fragmentable part: destination options (8 bytes) then UDP.
        let mut frag_part = vec![17, 0, 1, 4, 0, 0, 0, 0];
        frag_part.extend_from_slice(&udp_seg(2055, 9995, &data));
        let frags = ipv6_fragments(0xdead_beef, 60, &frag_part, 1448);
        assert_eq!(frags.len(), 3);
        let plain = ipv6_fragments(7, 17, &udp_seg(1, 2, &payload(100)), 64);
        let file = Classic::new(false, true, 1)
            .rec(1, 0, &eth(&[], ETHERTYPE_IPV6, &frags[1]))
            .rec(1, 0, &eth(&[], ETHERTYPE_IPV6, &frags[2]))
            .rec(1, 0, &eth(&[], ETHERTYPE_IPV6, &plain[0]))
            .rec(4, 44, &eth(&[], ETHERTYPE_IPV6, &frags[0]))
            .rec(5, 0, &eth(&[], ETHERTYPE_IPV6, &plain[1]));
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].frame, 4);
        assert_eq!(got[0].ts, 4_000_000_044);
        assert_eq!(got[0].src, v6_sock(1, 2055));
        assert_eq!(got[0].dst, v6_sock(2, 9995));
        assert_eq!(got[0].payload, data);
        assert!(!got[0].borrowed);
        assert_eq!(got[1].frame, 5);
        assert_eq!(got[1].payload, payload(100));
        assert_eq!(stats.udp, 2);
        // Reassembled into something that is not UDP: counted once, at completion.
        let icmp = ipv6_fragments(8, 58, &[0u8; 32], 16);
        let mut file = Classic::new(false, false, 229);
        for f in &icmp {
            file = file.rec(1, 0, f);
        }
        let (got, stats) = run(file.out);
        assert!(got.is_empty());
        assert_eq!((stats.frames, stats.non_udp), (2, 1));
    }

    // ---- pcapng ----------------------------------------------------------------------------

    #[test]
    fn pcapng_blocks_sections_and_resolutions() {
        let data = payload(64);
        let v4 = eth_v4(&ipv4_udp(50000, 4739, &data));
        let v6raw = ipv6_udp(50001, 2055, &data);
        for big in [false, true] {
            let offset = if big {
                100i64.to_be_bytes()
            } else {
                100i64.to_le_bytes()
            };
            let file = Ng::new(big)
                .idb(1, 0, &[]) // 0: Ethernet, default µs
                .idb(229, 0, &[(9, vec![9]), (2, b"eth1".to_vec())]) // 1: raw v6, ns
                .idb(1, 0, &[(9, vec![0x80 | 20]), (14, offset.to_vec())])
                .block(0x0000_0004, &[0; 4]) // Name Resolution (empty): skipped
                .block(0x0000_0005, &[0; 12]) // Interface Statistics: skipped
                .block(0x0000_0099, &[1, 2, 3, 4]) // unknown: skipped
                .block(BLOCK_CUSTOM, &[0, 0, 0x7e, 0xd9]) // custom (PEN 32473): a frame to tshark
                .epb(0, 1_700_000_000_123_456, &v4)
                .epb(1, 1_700_000_000_123_456_789, &v6raw)
                .epb(2, 3 << 20 | 1 << 19, &v4) // 3.5 s in 2^-20 units, +100 s offset
                .spb(&v4) // interface 0, previous timestamp
                .pb(1, 42, &v6raw)
                .epb(9, 0, &v4) // unknown interface: malformed frame
                .shb(!big) // new section, other byte order, interfaces reset
                .idb(113, 0, &[(9, vec![3])]) // ms
                .epb(
                    0,
                    1_700_000_000_001,
                    &sll(ETHERTYPE_IPV4, &ipv4_udp(1, 2, b"s2")),
                )
                .idb(1, 100, &[]) // snaplen 100 on interface 1: SPB uses interface 0 anyway
                .spb(&sll(ETHERTYPE_IPV4, &ipv4_udp(3, 4, b"spb2")));
            let (got, stats) = run(file.out);
            let frames: Vec<u64> = got.iter().map(|g| g.frame).collect();
            assert_eq!(frames, [2, 3, 4, 5, 6, 8, 9], "big={big}");
            assert_eq!(stats.frames, 9);
            assert_eq!((stats.malformed, stats.non_udp), (1, 1));
            assert_eq!(got[0].ts, 1_700_000_000_123_456_000);
            assert_eq!(got[0].src, v4_sock(V4_SRC, 50000));
            assert_eq!(got[0].payload, data);
            assert!(got[0].borrowed);
            assert_eq!(got[1].ts, 1_700_000_000_123_456_789);
            assert_eq!(got[1].src, v6_sock(1, 50001));
            assert_eq!(got[1].payload, data);
            assert_eq!(got[2].ts, 103_500_000_000);
            assert_eq!(got[3].ts, got[2].ts, "SPB takes the previous timestamp");
            assert_eq!(got[3].payload, data);
            assert_eq!(got[4].ts, 42, "PB on interface 1, ns resolution");
            assert_eq!(got[5].ts, 1_700_000_000_001_000_000);
            assert_eq!(got[5].payload, b"s2");
            assert_eq!(got[6].payload, b"spb2");
        }
    }

    #[test]
    fn pcapng_snaplen_and_truncation() {
        let data = payload(200);
        let full = eth_v4(&ipv4_udp(1, 2, &data));
        let file = Ng::new(false)
            .idb(1, 100, &[])
            .epb_cut(0, 5, &full[..100], full.len() as u32)
            .spb(&full); // SPB: captured length = min(original, snaplen 100)
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 2);
        for g in &got {
            assert!(g.truncated);
            assert_eq!(g.payload, &data[..100 - 42]);
        }
        assert_eq!(stats.malformed, 0);
        // Framing errors: a block running past the end, a bad trailing length, a short length.
        let good = Ng::new(true).idb(1, 0, &[]).epb(0, 1, &full).out;
        let cut = good[..good.len() - 4].to_vec();
        let mut bad_trailer = good.clone();
        let n = bad_trailer.len();
        bad_trailer[n - 1] ^= 4;
        let mut short = Ng::new(true).idb(1, 0, &[]).out;
        short.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 8]);
        for f in [cut, bad_trailer, short] {
            let (got, stats) = run(f);
            assert!(got.is_empty());
            assert_eq!((stats.frames, stats.malformed), (0, 1));
        }
        // EPB whose captured length runs beyond the block: a malformed frame, walk goes on.
        let mut epb_body = Vec::new();
        for v in [0u32, 0, 1, 9999, 9999] {
            epb_body.extend_from_slice(&v.to_le_bytes());
        }
        let file = Ng::new(false)
            .idb(1, 0, &[])
            .block(BLOCK_EPB, &epb_body)
            .epb(0, 7, &full);
        let (got, stats) = run(file.out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].frame, 2);
        assert_eq!((stats.frames, stats.malformed), (2, 1));
    }

    #[test]
    fn timestamp_resolutions() {
        let iface = |resol, offset_secs| Interface {
            link: 1,
            snaplen: 0,
            resol,
            offset_secs,
        };
        assert_eq!(iface(TsResol::Pow10(6), 0).nanos(1_500_000), 1_500_000_000);
        assert_eq!(iface(TsResol::Pow10(0), 0).nanos(2), 2_000_000_000);
        assert_eq!(iface(TsResol::Pow10(12), 0).nanos(5_000_000), 5_000);
        assert_eq!(iface(TsResol::Pow10(127), 0).nanos(u64::MAX), 0);
        assert_eq!(iface(TsResol::Pow2(10), 0).nanos(1024 + 512), 1_500_000_000);
        assert_eq!(iface(TsResol::Pow2(30), 0).nanos(1 << 30), 1_000_000_000);
        assert_eq!(iface(TsResol::Pow2(127), 0).nanos(u64::MAX), 0);
        assert_eq!(iface(TsResol::Pow10(6), -1).nanos(0), -1_000_000_000);
        assert_eq!(iface(TsResol::Pow10(0), 0).nanos(u64::MAX), i64::MAX);
        assert_eq!(iface(TsResol::Pow10(9), i64::MIN).nanos(0), i64::MIN);
    }

    // ---- robustness ------------------------------------------------------------------------

    /// A capture that goes through most code paths, in both formats.
    fn torture_files() -> Vec<Vec<u8>> {
        let data = payload(200);
        let frags = ipv4_fragments(77, &udp_seg(1, 2, &data), 64);
        let mut v6part = vec![17, 0, 1, 4, 0, 0, 0, 0];
        v6part.extend_from_slice(&udp_seg(3, 4, &data));
        let frags6 = ipv6_fragments(5, 60, &v6part, 96);
        let mut classic = Classic::new(false, false, 1)
            .rec(
                1,
                2,
                &eth(
                    &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
                    ETHERTYPE_IPV4,
                    &ipv4_udp(1, 2, b"q"),
                ),
            )
            .rec(
                1,
                2,
                &eth(&[], ETHERTYPE_IPV4, &ipv4_raw(6, 1, 0, &[], &[0; 20])),
            );
        for f in &frags {
            classic = classic.rec(1, 3, &eth_v4(f));
        }
        for f in frags6.iter().rev() {
            classic = classic.rec(1, 3, &eth(&[], ETHERTYPE_IPV6, f));
        }
        let ng = Ng::new(true)
            .idb(113, 0, &[(9, vec![0x88])])
            .epb(0, 99, &sll(ETHERTYPE_IPV6, &frags6[0]))
            .epb(0, 99, &sll(ETHERTYPE_IPV6, &frags6[1]))
            .epb(0, 99, &sll(ETHERTYPE_IPV6, &frags6[2]))
            .spb(&sll(ETHERTYPE_IPV4, &ipv4_udp(5, 6, b"z")))
            .shb(false)
            .idb(0, 0, &[])
            .pb(0, 1, &{
                let mut v = 2u32.to_le_bytes().to_vec();
                v.extend_from_slice(&frags[0]);
                v
            });
        vec![classic.out, ng.out]
    }

    fn walk_quietly(bytes: Vec<u8>) {
        if let Ok(mut r) = PcapReader::from_bytes(bytes) {
            let _ = r.for_each_udp(|d| {
                let _ = d.payload.len();
            });
        }
    }

    #[test]
    fn torture_files_are_valid() {
        let files = torture_files();
        let (got, _) = run(files[0].clone());
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].payload, payload(200));
        assert_eq!(got[2].payload, payload(200));
        let (got, _) = run(files[1].clone());
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn no_panic_on_any_truncation_or_bit_flip() {
        for file in torture_files() {
            for cut in 0..file.len() {
                walk_quietly(file[..cut].to_vec());
            }
            for i in 0..file.len() {
                for bit in 0..8 {
                    let mut f = file.clone();
                    f[i] ^= 1 << bit;
                    walk_quietly(f);
                }
            }
            // Random multi-byte damage, deterministic (xorshift).
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..3000 {
                let mut f = file.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x % f.len() as u64) as usize;
                    f[i] = (x >> 32) as u8;
                }
                walk_quietly(f);
            }
        }
    }

    // ---- real captures ---------------------------------------------------------------------

    const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/captures");

    fn collect_file(path: &Path) -> (Vec<Got>, PcapStats) {
        let bytes = std::fs::read(path).expect("read capture");
        run(bytes)
    }

    fn tool(name: &str) -> bool {
        std::process::Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// What tshark sees for `-Y udp`: (frame, ts ns, first udp srcport, dstport, length).
    fn tshark_udp(path: &Path) -> Vec<(u64, i64, u16, u16, usize)> {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(path)
            .args(["-Y", "udp", "-T", "fields"])
            .args(["-e", "frame.number", "-e", "frame.time_epoch"])
            .args(["-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length"])
            .output()
            .expect("run tshark");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let first = |i: usize| f[i].split(',').next().expect("value").to_string();
                let (sec, frac) = f[1].split_once('.').unwrap_or((f[1], "0"));
                let frac = format!("{frac:0<9}");
                let ts = sec.parse::<i64>().expect("sec") * 1_000_000_000
                    + frac[..9].parse::<i64>().expect("frac");
                (
                    f[0].parse().expect("frame"),
                    ts,
                    first(2).parse().expect("sport"),
                    first(3).parse().expect("dport"),
                    first(4).parse().expect("len"),
                )
            })
            .collect()
    }

    fn compare_with_tshark(path: &Path) {
        let (got, stats) = collect_file(path);
        let mine: Vec<(u64, i64, u16, u16, usize)> = got
            .iter()
            .map(|g| {
                (
                    g.frame,
                    g.ts,
                    g.src.port(),
                    g.dst.port(),
                    g.payload.len() + 8,
                )
            })
            .collect();
        assert_eq!(mine, tshark_udp(path), "{}: {stats:?}", path.display());
    }

    #[test]
    fn real_captures() {
        let dir = Path::new(CAPTURES);
        if !dir.is_dir() {
            eprintln!("skipping: {} not found", dir.display());
            return;
        }
        // IPv6 exporter with TCP BGP sessions in the same capture.
        let bgp =
            dir.join("ipfix/cisco_iosxr_pmacct_test_ipfixv10_bgp_ipv6_cisco_mpls_traffic-00.pcap");
        let (got, stats) = collect_file(&bgp);
        assert!(stats.non_udp > 0, "BGP frames are skipped: {stats:?}");
        assert_eq!(stats.frames, stats.udp + stats.non_udp);
        assert_eq!(stats.malformed + stats.unsupported_link, 0);
        assert!(got
            .iter()
            .all(|g| g.src.is_ipv6() && g.borrowed && !g.truncated));
        let asa = dir.join("netflow9/cisco_asa_1.pcap");
        let (got, stats) = collect_file(&asa);
        assert_eq!(got.len() as u64, stats.frames);
        assert!(got
            .iter()
            .all(|g| u16::from_be_bytes([g.payload[0], g.payload[1]]) == 9));

        // Every capture walks without malformed frames.
        let mut stack = vec![dir.to_path_buf()];
        let mut files = 0;
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                    let (got, stats) = collect_file(&p);
                    assert_eq!(stats.malformed, 0, "{}: {stats:?}", p.display());
                    assert_eq!(got.len() as u64, stats.udp);
                    files += 1;
                }
            }
        }
        assert!(files > 0);

        if !tool("tshark") {
            eprintln!("skipping the tshark comparison: tshark not installed");
            return;
        }
        for f in [
            "ipfix/cisco_iosxr_pmacct_test_ipfixv10_bgp_ipv6_cisco_mpls_traffic-00.pcap",
            "ipfix/cisco_iosxr_pmacct_test_ipfixv10_bmp_cisco_srv6_multiple_sources_traffic-01.pcap",
            "netflow9/cisco_asa_1.pcap",
            "netflow5/softflowd_v5.pcap",
            "sflow/pmacct_sfprobe_encap-vxlan.pcap",
            "generated/input/traffic_lo.pcap",
        ] {
            let p = dir.join(f);
            if p.exists() {
                compare_with_tshark(&p);
            }
        }
    }

    /// The same capture converted to pcapng (and cut to a snaplen) by editcap reads the same.
    #[test]
    fn real_capture_through_editcap() {
        let src = Path::new(CAPTURES)
            .join("ipfix/cisco_iosxr_pmacct_test_ipfixv10_bgp_ipv6_cisco_mpls_traffic-00.pcap");
        if !src.exists() || !tool("editcap") {
            eprintln!("skipping: capture or editcap missing");
            return;
        }
        let (want, want_stats) = collect_file(&src);
        let tmp = std::env::temp_dir();
        let ng = tmp.join(format!("sluice-pcap-{}.pcapng", std::process::id()));
        let cut = tmp.join(format!("sluice-pcap-{}-s200.pcapng", std::process::id()));
        let ok = std::process::Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(&src)
            .arg(&ng)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new("editcap")
                .args(["-F", "pcapng", "-s", "200"])
                .arg(&src)
                .arg(&cut)
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "editcap failed");
        let (got, stats) = collect_file(&ng);
        let (got_cut, _) = collect_file(&cut);
        let _ = std::fs::remove_file(&ng);
        let _ = std::fs::remove_file(&cut);
        assert_eq!(got, want);
        assert_eq!(stats.frames, want_stats.frames);
        assert_eq!(got_cut.len(), want.len());
        for (c, w) in got_cut.iter().zip(&want) {
            assert_eq!((c.frame, c.ts, c.src, c.dst), (w.frame, w.ts, w.src, w.dst));
            assert!(w.payload.starts_with(&c.payload));
            assert_eq!(c.truncated, c.payload.len() < w.payload.len());
        }
        assert!(got_cut.iter().any(|g| g.truncated));
    }

    /// Every capture under shared/captures against tshark, field by field. Slow (one tshark
    /// run per file): `cargo test -p sluice-decode all_real_captures_match_tshark -- --ignored`.
    #[test]
    #[ignore]
    fn all_real_captures_match_tshark() {
        let dir = Path::new(CAPTURES);
        if !dir.is_dir() || !tool("tshark") {
            eprintln!("skipping: captures or tshark missing");
            return;
        }
        let mut stack = vec![dir.to_path_buf()];
        let mut n = 0;
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                    compare_with_tshark(&p);
                    n += 1;
                }
            }
        }
        assert!(n > 0);
    }
}
