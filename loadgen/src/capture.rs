//! A capture prepared for replay: its NetFlow datagrams split into streams, the templates each
//! stream needs before its first data, and, per datagram, what the sender must rewrite.
//!
//! Loading walks the capture once ([`PcapReader::for_each_udp`]) and keeps the UDP payloads
//! whose version field says NetFlow v5 (5), v9 (9) or IPFIX (10) and whose header is sound, in
//! file order. Each datagram belongs to a *stream*: one original exporter scope, keyed as the
//! collector keys template scopes (RFC 3954 §5.1: address and source id; RFC 7011 §8: address,
//! port and observation domain; v5: address and engine type/id). The sender gives every stream
//! of every simulated exporter its own rewritten id, so the streams of a capture that mixes
//! exporters stay apart.
//!
//! Templates first: every template and options template record of a stream (its first
//! definition per template id, in file order) is copied into synthesized template-only
//! datagrams, the *preamble*, sent before the capture itself. Data that precedes its template in
//! the file (or in the same datagram) then decodes at once. When a stream redefines or withdraws
//! a template during the capture, the preamble is sent again before every loop, so each loop
//! starts from the same template state.
//!
//! Then the preamble and the capture are decoded once with the collector's own
//! [`Decoder`], on copies whose headers are normalized (constant uptime and export time,
//! gap-free sequence numbers) so that nothing in the original headers can look like an exporter
//! restart. That pass gives, per datagram: the flow and options data records it carries (IPFIX
//! sequence numbers count both, RFC 7011 §3.1) and the byte offsets of the record fields that
//! hold times the sender must shift along with the header ([`Patch`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;

use sluice_decode::pcap::PcapReader;
use sluice_decode::record::be_uint;
use sluice_decode::{Datagram, Decoder, Limits, Record};

use crate::error::LoadError;

/// NetFlow v5 header length.
pub const V5_HEADER_LEN: usize = 24;
/// NetFlow v5 record length.
pub const V5_RECORD_LEN: usize = 48;
/// NetFlow v9 header length (RFC 3954 §5.1).
pub const V9_HEADER_LEN: usize = 20;
/// IPFIX message header length (RFC 7011 §3.1).
pub const IPFIX_HEADER_LEN: usize = 16;
/// Size the synthesized template datagrams are packed to: below a 1500-byte MTU with IPv6 and
/// UDP headers, as exporters do. A single larger template record gets a datagram of its own.
pub const PREAMBLE_DATAGRAM_LEN: usize = 1400;

/// Absolute times below these are not real clock readings (2001-09-09): they are zeros, small
/// counters or garbage, and are left alone rather than shifted into nonsense.
const PLAUSIBLE_SECS: u64 = 1_000_000_000;
const PLAUSIBLE_MS: u64 = PLAUSIBLE_SECS * 1000;
/// The same instant in NTP seconds (the NTP era begins 2 208 988 800 s before the Unix epoch).
const PLAUSIBLE_NTP_SECS: u64 = PLAUSIBLE_SECS + 2_208_988_800;

/// Normalized header values used while counting records (see the module doc).
const NORM_UPTIME_MS: u32 = 1_000_000;
const NORM_EXPORT_SECS: u32 = 1_700_000_000;

/// How a time field inside a record moves when the header is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// 32-bit sysUptime milliseconds (v5 First/Last, v9 FIRST/LAST_SWITCHED, IE 22/21):
    /// shifted by the same amount as the header's sysUptime, modulo 2^32, so the flow keeps its
    /// age relative to the export.
    Uptime32,
    /// 32-bit seconds since the Unix epoch (IE 150, 151, 322).
    Secs32,
    /// 64-bit milliseconds since the Unix epoch (IE 152, 153, 160, 323; NX-OS 8-byte 21/22).
    Millis64,
    /// 64-bit NTP timestamp (IE 154-157, 324, 325; RFC 7011 §6.1.9-10).
    Ntp64,
}

/// A time field at a byte offset of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset from the start of the datagram.
    pub at: u32,
    pub kind: PatchKind,
}

/// One datagram to replay, with what the sender needs to rewrite it.
#[derive(Clone, Debug)]
pub struct CaptureDatagram {
    /// Index into [`Capture::streams`].
    pub stream: u32,
    /// 5, 9 or 10.
    pub version: u16,
    /// Capture frame number; 0 for a synthesized template datagram.
    pub frame: u64,
    /// What the header sequence number advances by after this datagram: v5 records, v9 one
    /// packet, IPFIX data records (flow and options).
    pub seq_units: u32,
    /// Flow records the collector decodes from it.
    pub flow_records: u32,
    /// Options data records the collector decodes from it.
    pub options_records: u32,
    /// Original export time, ms since the Unix epoch.
    pub export_ms: i64,
    /// Original sysUptime (v5/v9), ms; 0 for IPFIX.
    pub uptime_ms: u32,
    /// Carries template or options template records.
    pub has_templates: bool,
    bytes: Range<usize>,
    patches: Range<usize>,
}

/// One original exporter scope of the capture.
#[derive(Clone, Debug)]
pub struct Stream {
    /// 5, 9 or 10.
    pub version: u16,
    /// Original exporter address and port.
    pub exporter: SocketAddr,
    /// Original v9 source id, IPFIX observation domain, or v5 engine type << 8 | engine id.
    pub source_id: u32,
    /// Sequence number of the stream's first datagram; replays start counting from it.
    pub first_sequence: u32,
    /// Highest sysUptime the stream's headers show (v5/v9), ms.
    pub max_uptime_ms: u32,
    /// Datagrams of the capture in this stream.
    pub datagrams: usize,
    /// Distinct template ids the stream defines.
    pub templates: usize,
    /// The stream redefines or withdraws a template during the capture.
    pub templates_change: bool,
    /// Header of the stream's first datagram, the model for its synthesized datagrams.
    header: Vec<u8>,
}

/// UDP datagrams of the capture that are not replayed, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Not NetFlow v5/v9/IPFIX (sFlow, DNS, syslog, ...).
    pub other: u64,
    /// A NetFlow version but a header that contradicts the datagram (v5 count, IPFIX length).
    pub malformed: u64,
    /// Cut by the capture's snaplen.
    pub truncated: u64,
}

/// A datagram handed to [`Capture::from_datagrams`].
#[derive(Clone, Debug)]
pub struct InputDatagram {
    /// Original sender.
    pub src: SocketAddr,
    /// Capture frame number (informational).
    pub frame: u64,
    pub payload: Vec<u8>,
}

/// A capture ready to replay.
pub struct Capture {
    /// Original exporter scopes, in order of first appearance.
    pub streams: Vec<Stream>,
    /// Synthesized template-only datagrams, stream by stream.
    pub preamble: Vec<CaptureDatagram>,
    /// The capture's NetFlow datagrams in file order: one loop.
    pub body: Vec<CaptureDatagram>,
    /// Send the preamble before every loop, not only the first (templates change mid-capture).
    pub preamble_each_loop: bool,
    /// UDP datagrams left out.
    pub skipped: Skipped,
    /// Errors the decoder counted in one pass over the capture (the collector will count them
    /// too, once per loop); by reason.
    pub decode_errors: Vec<(&'static str, u64)>,
    /// Data records whose times could not be located (decoded from held data).
    pub unpatched_records: u64,
    bytes: Vec<u8>,
    patches: Vec<Patch>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("streams", &self.streams.len())
            .field("preamble", &self.preamble.len())
            .field("body", &self.body.len())
            .field("preamble_each_loop", &self.preamble_each_loop)
            .field("skipped", &self.skipped)
            .finish()
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// What a UDP payload is, from its header alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Netflow(u16),
    Other,
    Malformed,
}

fn classify(p: &[u8]) -> Kind {
    match be16(p, 0) {
        Some(5) => {
            let count = usize::from(be16(p, 2).unwrap_or(u16::MAX));
            // v5 carries at most 30 records (the decoder rejects more).
            if count > 30 || p.len() < V5_HEADER_LEN + V5_RECORD_LEN * count {
                Kind::Malformed
            } else {
                Kind::Netflow(5)
            }
        }
        Some(9) if p.len() >= V9_HEADER_LEN => Kind::Netflow(9),
        Some(9) => Kind::Malformed,
        Some(10) => match be16(p, 2) {
            Some(len) if usize::from(len) >= IPFIX_HEADER_LEN && usize::from(len) <= p.len() => {
                Kind::Netflow(10)
            }
            _ => Kind::Malformed,
        },
        _ => Kind::Other,
    }
}

/// Header fields the rewriting needs, read from an original datagram.
struct HeaderFields {
    source_id: u32,
    sequence: u32,
    export_ms: i64,
    uptime_ms: u32,
    header_len: usize,
}

fn header_fields(version: u16, p: &[u8]) -> HeaderFields {
    let g32 = |at| be32(p, at).unwrap_or(0);
    match version {
        5 => HeaderFields {
            source_id: u32::from(be16(p, 20).unwrap_or(0)),
            sequence: g32(16),
            export_ms: i64::from(g32(8)) * 1000 + i64::from(g32(12).min(999_999_999)) / 1_000_000,
            uptime_ms: g32(4),
            header_len: V5_HEADER_LEN,
        },
        9 => HeaderFields {
            source_id: g32(16),
            sequence: g32(12),
            export_ms: i64::from(g32(8)) * 1000,
            uptime_ms: g32(4),
            header_len: V9_HEADER_LEN,
        },
        _ => HeaderFields {
            source_id: g32(12),
            sequence: g32(8),
            export_ms: i64::from(g32(4)) * 1000,
            uptime_ms: 0,
            header_len: IPFIX_HEADER_LEN,
        },
    }
}

/// A template record met in a template set.
#[derive(Debug, PartialEq, Eq)]
enum TemplateEvent<'a> {
    /// A (options) template record, raw, without set header or padding.
    Define {
        options: bool,
        id: u16,
        raw: &'a [u8],
    },
    /// An IPFIX withdrawal (RFC 7011 §8.1).
    Withdraw,
}

/// Calls `f` for every template record of a v9 or IPFIX datagram. Stops at the first thing that
/// does not parse (the collector's decoder does the same with it).
fn template_events<'a>(version: u16, p: &'a [u8], mut f: impl FnMut(TemplateEvent<'a>)) {
    let body = match version {
        9 => p.get(V9_HEADER_LEN..),
        10 => {
            let len = usize::from(be16(p, 2).unwrap_or(0));
            p.get(IPFIX_HEADER_LEN..len.min(p.len()))
        }
        _ => None,
    };
    let Some(mut body) = body else { return };
    let (tpl, opt) = if version == 9 { (0, 1) } else { (2, 3) };
    while let (Some(id), Some(len)) = (be16(body, 0), be16(body, 2)) {
        let len = usize::from(len);
        if len < 4 || len > body.len() {
            return;
        }
        let set = &body[4..len];
        body = &body[len..];
        if id == tpl || id == opt {
            template_set(version, id == opt, set, &mut f);
        }
    }
}

fn template_set<'a>(
    version: u16,
    options: bool,
    mut set: &'a [u8],
    f: &mut impl FnMut(TemplateEvent<'a>),
) {
    // Fewer than four bytes, or only zeros, is padding (RFC 7011 §3.3.1).
    while set.len() >= 4 && set.iter().any(|&b| b != 0) {
        let (Some(id), Some(count)) = (be16(set, 0), be16(set, 2)) else {
            return;
        };
        let len = if version == 9 && options {
            // RFC 3954 §6.1: id, scope length, option length (bytes), fields, padding to 4.
            let Some(opt_len) = be16(set, 4) else { return };
            let (scope_len, opt_len) = (usize::from(count), usize::from(opt_len));
            if scope_len % 4 != 0 || opt_len % 4 != 0 || scope_len + opt_len == 0 {
                return;
            }
            6 + scope_len + opt_len
        } else if version == 9 {
            if count == 0 {
                return;
            }
            4 + 4 * usize::from(count)
        } else {
            if count == 0 {
                f(TemplateEvent::Withdraw);
                set = &set[4..];
                continue;
            }
            let mut pos = if options { 6 } else { 4 };
            for _ in 0..count {
                let Some(raw_id) = be16(set, pos) else { return };
                pos += if raw_id & 0x8000 != 0 { 8 } else { 4 };
            }
            pos
        };
        let Some(raw) = set.get(..len) else { return };
        if id >= 256 {
            f(TemplateEvent::Define { options, id, raw });
        }
        // v9 options template records are padded to four bytes.
        let next = if version == 9 && options {
            (len + 3) & !3
        } else {
            len
        };
        set = set.get(next..).unwrap_or(&[]);
    }
}

/// The template records of one stream, first definition per id, in order of appearance.
#[derive(Default)]
struct StreamTemplates {
    defs: Vec<(bool, u16, Vec<u8>)>,
    by_id: HashMap<u16, usize>,
    changes: bool,
}

impl StreamTemplates {
    fn add(&mut self, ev: TemplateEvent<'_>) {
        match ev {
            TemplateEvent::Define { options, id, raw } => match self.by_id.get(&id) {
                Some(&i) => {
                    let (o, _, r) = &self.defs[i];
                    if *o != options || r.as_slice() != raw {
                        self.changes = true;
                    }
                }
                None => {
                    self.by_id.insert(id, self.defs.len());
                    self.defs.push((options, id, raw.to_vec()));
                }
            },
            TemplateEvent::Withdraw => self.changes = true,
        }
    }
}

/// Builds a stream's template-only datagrams: each template record in a set of its own (padded
/// to four bytes), sets packed into datagrams of at most [`PREAMBLE_DATAGRAM_LEN`] bytes.
fn preamble_payloads(stream: &Stream, templates: &StreamTemplates) -> Vec<Vec<u8>> {
    let v9 = stream.version == 9;
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut records = 0u16;
    let finish = |cur: &mut Vec<u8>, records: &mut u16, out: &mut Vec<Vec<u8>>| {
        if *records == 0 {
            return;
        }
        if v9 {
            put16(cur, 2, *records); // v9 count: records of all kinds (RFC 3954 §5.1)
        } else {
            let len = u16::try_from(cur.len()).unwrap_or(u16::MAX);
            put16(cur, 2, len);
        }
        out.push(std::mem::take(cur));
        *records = 0;
    };
    for (options, _, raw) in &templates.defs {
        let padded = (raw.len() + 3) & !3;
        let set_len = 4 + padded;
        if records > 0 && cur.len() + set_len > PREAMBLE_DATAGRAM_LEN {
            finish(&mut cur, &mut records, &mut out);
        }
        if records == 0 {
            cur.extend_from_slice(&stream.header);
        }
        let set_id: u16 = match (v9, options) {
            (true, false) => 0,
            (true, true) => 1,
            (false, false) => 2,
            (false, true) => 3,
        };
        if cur.len() + set_len > usize::from(u16::MAX) {
            continue; // cannot happen for a record that came in a datagram; never panic anyway
        }
        cur.extend_from_slice(&set_id.to_be_bytes());
        cur.extend_from_slice(&(set_len as u16).to_be_bytes());
        cur.extend_from_slice(raw);
        cur.resize(cur.len() + padded - raw.len(), 0);
        records += 1;
    }
    finish(&mut cur, &mut records, &mut out);
    out
}

/// The record fields to shift, located through the record's template.
fn record_patches(r: &Record<'_>, version: u16, rec_off: usize, out: &mut Vec<Patch>) {
    for (i, f) in r.template.fields.iter().enumerate() {
        // Enterprise elements are not times we know; v9 scope fields are a separate namespace.
        if f.spec.pen != 0 || (version == 9 && f.scope) {
            continue;
        }
        let Some(&(o, l)) = r.spans.get(i) else {
            continue;
        };
        let (o, l) = (o as usize, l as usize);
        let Some(bytes) = r.data.get(o..o + l) else {
            continue;
        };
        let v = be_uint(bytes);
        let kind = match (f.spec.id, l) {
            // IPFIX's 21/22 count from systemInitTimeMilliseconds (160), shifted instead.
            (21 | 22, 4) if version != 10 => PatchKind::Uptime32,
            (21 | 22, 8) if v >= PLAUSIBLE_MS => PatchKind::Millis64,
            (150 | 151 | 322, 4) if v >= PLAUSIBLE_SECS => PatchKind::Secs32,
            (152 | 153 | 160 | 323, 8) if v >= PLAUSIBLE_MS => PatchKind::Millis64,
            (154..=157 | 324 | 325, 8) if v >> 32 >= PLAUSIBLE_NTP_SECS => PatchKind::Ntp64,
            _ => continue,
        };
        if let Ok(at) = u32::try_from(rec_off + o) {
            out.push(Patch { at, kind });
        }
    }
}

impl Capture {
    /// Reads and prepares a capture file.
    pub fn open(path: &Path) -> Result<Capture, LoadError> {
        Self::from_reader(&mut PcapReader::open(path)?)
    }

    /// Prepares a capture held in memory.
    pub fn from_pcap_bytes(bytes: Vec<u8>) -> Result<Capture, LoadError> {
        Self::from_reader(&mut PcapReader::from_bytes(bytes)?)
    }

    fn from_reader(reader: &mut PcapReader) -> Result<Capture, LoadError> {
        let mut input = Vec::new();
        let mut truncated = 0u64;
        reader.for_each_udp(|d| {
            if d.truncated {
                truncated += 1;
            } else {
                input.push(InputDatagram {
                    src: d.src,
                    frame: d.frame,
                    payload: d.payload.to_vec(),
                });
            }
        })?;
        Self::from_datagrams(input, truncated)
    }

    /// Prepares a list of UDP payloads as if they had been read from a capture, in this order.
    /// `truncated` only feeds the error message and [`Capture::skipped`].
    pub fn from_datagrams(input: Vec<InputDatagram>, truncated: u64) -> Result<Capture, LoadError> {
        let udp = input.len() as u64 + truncated;
        let mut skipped = Skipped {
            truncated,
            ..Skipped::default()
        };
        let mut streams: Vec<Stream> = Vec::new();
        let mut templates: Vec<StreamTemplates> = Vec::new();
        let mut keys: HashMap<(u16, IpAddr, u16, u32), u32> = HashMap::new();
        // (stream, version, frame, payload, header fields)
        let mut kept = Vec::new();
        for d in input {
            let version = match classify(&d.payload) {
                Kind::Netflow(v) => v,
                Kind::Other => {
                    skipped.other += 1;
                    continue;
                }
                Kind::Malformed => {
                    skipped.malformed += 1;
                    continue;
                }
            };
            let h = header_fields(version, &d.payload);
            // Scope as the collector keys it: the port only matters for IPFIX.
            let port = if version == 10 { d.src.port() } else { 0 };
            let key = (version, d.src.ip(), port, h.source_id);
            let next = streams.len() as u32;
            let s = *keys.entry(key).or_insert(next);
            if s == next {
                streams.push(Stream {
                    version,
                    exporter: d.src,
                    source_id: h.source_id,
                    first_sequence: h.sequence,
                    max_uptime_ms: 0,
                    datagrams: 0,
                    templates: 0,
                    templates_change: false,
                    header: d.payload[..h.header_len].to_vec(),
                });
                templates.push(StreamTemplates::default());
            }
            let st = &mut streams[s as usize];
            st.datagrams += 1;
            st.max_uptime_ms = st.max_uptime_ms.max(h.uptime_ms);
            let mut has_templates = false;
            template_events(version, &d.payload, |ev| {
                has_templates = true;
                templates[s as usize].add(ev);
            });
            kept.push((s, version, d.frame, d.payload, h, has_templates));
        }
        if kept.is_empty() {
            return Err(LoadError::NoNetflow {
                udp,
                other: skipped.other,
                malformed: skipped.malformed,
                truncated: skipped.truncated,
            });
        }
        // Everything to decode, in send order: the preamble, then one loop of the capture.
        let mut items = Vec::new();
        for (s, (st, t)) in streams.iter_mut().zip(&templates).enumerate() {
            st.templates = t.defs.len();
            st.templates_change = t.changes;
            for p in preamble_payloads(st, t) {
                let h = header_fields(st.version, &p);
                items.push((s as u32, st.version, 0, p, h, true));
            }
        }
        let preamble_len = items.len();
        items.extend(kept);
        let preamble_each_loop = streams.iter().any(|s| s.templates_change);

        let mut decoder = Decoder::new(Limits {
            template_timeout_ns: None,
            ..Limits::default()
        });
        let mut flow = vec![0u32; items.len()];
        let mut opts = vec![0u32; items.len()];
        let mut norm_seq: Vec<u32> = vec![0; streams.len()];
        let mut bytes = Vec::new();
        let mut patches = Vec::new();
        let mut dgrams = Vec::with_capacity(items.len());
        let mut unpatched = 0u64;
        let mut norm = Vec::new();
        let mut found = Vec::new();
        for (idx, (s, version, frame, payload, h, has_templates)) in items.into_iter().enumerate() {
            norm.clear();
            norm.extend_from_slice(&payload);
            let seq = norm_seq[s as usize];
            match version {
                5 => {
                    put32(&mut norm, 4, NORM_UPTIME_MS);
                    put32(&mut norm, 8, NORM_EXPORT_SECS);
                    put32(&mut norm, 12, 0);
                    put32(&mut norm, 16, seq);
                }
                9 => {
                    put32(&mut norm, 4, NORM_UPTIME_MS);
                    put32(&mut norm, 8, NORM_EXPORT_SECS);
                    put32(&mut norm, 12, seq);
                }
                _ => {
                    put32(&mut norm, 4, NORM_EXPORT_SECS);
                    put32(&mut norm, 8, seq);
                }
            }
            let base = norm.as_ptr() as usize;
            let end = base + norm.len();
            found.clear();
            let dg = Datagram {
                src: streams[s as usize].exporter,
                receive_time_ns: i64::from(NORM_EXPORT_SECS) * 1_000_000_000,
                payload: &norm,
                tag: idx as u64,
            };
            // Errors are counted in the decoder's stats and reported; nothing to do per datagram.
            let _ = decoder.decode(&dg, |r| {
                let Ok(i) = usize::try_from(r.header.tag) else {
                    return;
                };
                if r.template.options {
                    if let Some(c) = opts.get_mut(i) {
                        *c += 1;
                    }
                } else if let Some(c) = flow.get_mut(i) {
                    *c += 1;
                }
                let p = r.data.as_ptr() as usize;
                if i == idx && p >= base && p + r.data.len() <= end {
                    record_patches(r, version, p - base, &mut found);
                } else {
                    unpatched += 1;
                }
            });
            let units = match version {
                5 => flow[idx],
                9 => 1,
                _ => flow[idx] + opts[idx],
            };
            norm_seq[s as usize] = seq.wrapping_add(units);
            let start = bytes.len();
            bytes.extend_from_slice(&payload);
            let pstart = patches.len();
            patches.extend_from_slice(&found);
            dgrams.push(CaptureDatagram {
                stream: s,
                version,
                frame,
                seq_units: units,
                flow_records: 0, // filled below: held records may be counted later
                options_records: 0,
                export_ms: h.export_ms,
                uptime_ms: h.uptime_ms,
                has_templates,
                bytes: start..bytes.len(),
                patches: pstart..patches.len(),
            });
        }
        decoder.finish();
        for (i, d) in dgrams.iter_mut().enumerate() {
            d.flow_records = flow[i];
            d.options_records = opts[i];
        }
        let mut decode_errors: Vec<(&'static str, u64)> = decoder
            .stats()
            .errors
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        decode_errors.sort();
        let body = dgrams.split_off(preamble_len);
        Ok(Capture {
            streams,
            preamble: dgrams,
            body,
            preamble_each_loop,
            skipped,
            decode_errors,
            unpatched_records: unpatched,
            bytes,
            patches,
        })
    }

    /// The datagram's bytes as captured (or synthesized).
    pub fn bytes(&self, d: &CaptureDatagram) -> &[u8] {
        self.bytes.get(d.bytes.clone()).unwrap_or(&[])
    }

    /// The record time fields of the datagram.
    pub fn patches(&self, d: &CaptureDatagram) -> &[Patch] {
        self.patches.get(d.patches.clone()).unwrap_or(&[])
    }

    /// Flow records in one loop of the capture (preamble excluded: it carries none).
    pub fn loop_flow_records(&self) -> u64 {
        self.body.iter().map(|d| u64::from(d.flow_records)).sum()
    }

    /// Options data records in one loop.
    pub fn loop_options_records(&self) -> u64 {
        self.body.iter().map(|d| u64::from(d.options_records)).sum()
    }

    /// Length of the longest datagram.
    pub fn max_datagram_len(&self) -> usize {
        self.preamble
            .iter()
            .chain(&self.body)
            .map(|d| d.bytes.len())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v9_header(count: u16, seq: u32, source_id: u32) -> Vec<u8> {
        let mut h = vec![0, 9];
        h.extend_from_slice(&count.to_be_bytes());
        h.extend_from_slice(&5000u32.to_be_bytes()); // uptime
        h.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        h.extend_from_slice(&seq.to_be_bytes());
        h.extend_from_slice(&source_id.to_be_bytes());
        h
    }

    fn set(id: u16, body: &[u8]) -> Vec<u8> {
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    /// Template 256: src addr (8, 4), packets (2, 4), FIRST (22, 4), LAST (21, 4).
    fn v9_template() -> Vec<u8> {
        let mut t = vec![1, 0, 0, 4];
        for (id, len) in [(8u16, 4u16), (2, 4), (22, 4), (21, 4)] {
            t.extend_from_slice(&id.to_be_bytes());
            t.extend_from_slice(&len.to_be_bytes());
        }
        set(0, &t)
    }

    fn v9_data(n: u8) -> Vec<u8> {
        let mut b = Vec::new();
        for i in 0..n {
            b.extend_from_slice(&[10, 0, 0, i]);
            b.extend_from_slice(&1u32.to_be_bytes());
            b.extend_from_slice(&4000u32.to_be_bytes());
            b.extend_from_slice(&4500u32.to_be_bytes());
        }
        set(256, &b)
    }

    fn src(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 50000))
    }

    #[test]
    fn data_before_template_gets_a_preamble_and_counts() {
        let mut d1 = v9_header(3, 7, 1);
        d1.extend(v9_data(3));
        let mut d2 = v9_header(1, 8, 1);
        d2.extend(v9_template());
        let input = vec![
            InputDatagram {
                src: src(1),
                frame: 1,
                payload: d1,
            },
            InputDatagram {
                src: src(1),
                frame: 2,
                payload: d2,
            },
        ];
        let c = Capture::from_datagrams(input, 0).expect("loads");
        assert_eq!(c.streams.len(), 1);
        assert_eq!(c.streams[0].first_sequence, 7);
        assert_eq!(c.preamble.len(), 1);
        assert!(c.preamble[0].has_templates);
        assert_eq!(c.body[0].flow_records, 3);
        assert_eq!(c.body[1].flow_records, 0);
        assert!(!c.preamble_each_loop);
        // FIRST and LAST of three records.
        let p = c.patches(&c.body[0]);
        assert_eq!(p.len(), 6);
        assert!(p.iter().all(|p| p.kind == PatchKind::Uptime32));
        assert_eq!(p[0].at, 20 + 4 + 8);
        assert_eq!(p[1].at, 20 + 4 + 12);
        assert_eq!(c.unpatched_records, 0);
    }

    #[test]
    fn streams_split_by_address_and_source_id() {
        let mk = |s: SocketAddr, id: u32| {
            let mut p = v9_header(1, 0, id);
            p.extend(v9_template());
            InputDatagram {
                src: s,
                frame: 0,
                payload: p,
            }
        };
        let c = Capture::from_datagrams(
            vec![mk(src(1), 0), mk(src(2), 0), mk(src(1), 1), mk(src(1), 0)],
            0,
        )
        .expect("loads");
        assert_eq!(c.streams.len(), 3);
        let ids: Vec<u32> = c.body.iter().map(|d| d.stream).collect();
        assert_eq!(ids, [0, 1, 2, 0]);
    }

    #[test]
    fn redefinition_resends_the_preamble() {
        let mut d1 = v9_header(1, 0, 0);
        d1.extend(v9_template());
        let mut other = v9_template();
        other[7] = 3; // FIRST replaced by another element: same id, new layout
        let mut d2 = v9_header(1, 1, 0);
        d2.extend(other);
        let c = Capture::from_datagrams(
            vec![
                InputDatagram {
                    src: src(1),
                    frame: 1,
                    payload: d1,
                },
                InputDatagram {
                    src: src(1),
                    frame: 2,
                    payload: d2,
                },
            ],
            0,
        )
        .expect("loads");
        assert!(c.preamble_each_loop);
        assert_eq!(c.streams[0].templates, 1);
    }

    #[test]
    fn nothing_netflow_is_an_error() {
        let input = vec![InputDatagram {
            src: src(1),
            frame: 1,
            payload: vec![0, 0, 0, 5, 1, 2, 3], // sFlow v5 starts with a 32-bit version
        }];
        let e = Capture::from_datagrams(input, 2).expect_err("no netflow");
        assert_eq!(e.reason(), "no_netflow");
        assert!(e.to_string().contains("3 UDP datagrams"), "{e}");
    }

    #[test]
    fn malformed_headers_are_skipped() {
        let mut v5 = vec![0, 5, 0, 31]; // count above 30
        v5.resize(24 + 48 * 31, 0);
        let ipfix = vec![0, 10, 0, 200, 0, 0, 0, 0]; // length beyond the datagram
        let input = [v5, ipfix, vec![0, 9, 0]]
            .into_iter()
            .map(|payload| InputDatagram {
                src: src(1),
                frame: 0,
                payload,
            })
            .collect();
        let e = Capture::from_datagrams(input, 0).expect_err("all malformed");
        match e {
            LoadError::NoNetflow { malformed, .. } => assert_eq!(malformed, 3),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn ipfix_template_parsing_handles_enterprise_fields_and_withdrawals() {
        // Template 300 with one IANA and one enterprise field, then a withdrawal of 301.
        let mut t = vec![1, 44, 0, 2, 0, 8, 0, 4, 0x80, 1, 0, 2, 0, 0, 0, 9];
        t.extend_from_slice(&[1, 45, 0, 0]);
        let mut p = vec![0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p.extend(set(2, &t));
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        let mut evs = Vec::new();
        template_events(10, &p, |e| evs.push(e));
        assert_eq!(evs.len(), 2);
        assert_eq!(
            evs[0],
            TemplateEvent::Define {
                options: false,
                id: 300,
                raw: &t[..16]
            }
        );
        assert_eq!(evs[1], TemplateEvent::Withdraw);
    }
}
