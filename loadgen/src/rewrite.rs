//! Rewriting one datagram for one simulated exporter at send time.
//!
//! Per protocol, what the header gets:
//!
//! | field | v5 | v9 | IPFIX |
//! |---|---|---|---|
//! | source id | engine type/id (16 bits) | source id | observation domain |
//! | sequence | flows sent before (+ records) | packets sent before (+1) | data records sent before (+ flow and options data records) |
//! | export time | now (s + ns) | now (s) | now (s) |
//! | sysUptime | now - boot | now - boot | - |
//!
//! `boot` is fixed per stream for the whole run, so uptime and export time advance together
//! with the wall clock and never step back (the collector would take that for a restart). The
//! record times move with the header so that every flow keeps its age relative to the export:
//! sysUptime-relative FIRST/LAST by the header uptime's change (modulo 2^32, as the collector
//! reads them), absolute times (seconds, milliseconds, NTP) by the export time's change.

use crate::capture::{CaptureDatagram, Patch, PatchKind};

/// Values the header of one sent datagram takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderValues {
    /// Rewritten source id / observation domain / v5 engine (low 16 bits).
    pub source_id: u32,
    /// Sequence number for this datagram.
    pub sequence: u32,
    /// Wall clock at send time, ms since the Unix epoch.
    pub now_ms: i64,
    /// Sub-second part of the wall clock, ns (v5's unix_nsecs).
    pub now_subsec_ns: u32,
    /// sysUptime for v5/v9 (now - boot), ms.
    pub uptime_ms: u32,
}

/// Epoch ms below which an original export time is not a clock reading: absolute record times
/// of such a datagram are left alone.
const PLAUSIBLE_EXPORT_MS: i64 = 1_000_000_000_000;

fn get32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn get64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
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

fn put64(b: &mut [u8], at: usize, v: u64) {
    if let Some(s) = b.get_mut(at..at + 8) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites `buf`, a copy of `d`'s bytes, in place: header fields, then the record times
/// listed in `patches`. Out-of-range offsets are ignored (they cannot occur for patches
/// computed from the same bytes).
pub fn rewrite(buf: &mut [u8], d: &CaptureDatagram, patches: &[Patch], h: &HeaderValues) {
    let now_secs = h.now_ms.div_euclid(1000);
    let secs32 = now_secs.clamp(0, i64::from(u32::MAX)) as u32;
    // The export time as the header states it: v9 and IPFIX carry whole seconds only.
    let header_now_ms = match d.version {
        5 => {
            put32(buf, 4, h.uptime_ms);
            put32(buf, 8, secs32);
            put32(buf, 12, h.now_subsec_ns);
            put32(buf, 16, h.sequence);
            put16(buf, 20, h.source_id as u16);
            h.now_ms
        }
        9 => {
            put32(buf, 4, h.uptime_ms);
            put32(buf, 8, secs32);
            put32(buf, 12, h.sequence);
            put32(buf, 16, h.source_id);
            now_secs * 1000
        }
        _ => {
            put32(buf, 4, secs32);
            put32(buf, 8, h.sequence);
            put32(buf, 12, h.source_id);
            now_secs * 1000
        }
    };
    if patches.is_empty() {
        return;
    }
    let up_delta = h.uptime_ms.wrapping_sub(d.uptime_ms);
    let abs_ms = if d.export_ms >= PLAUSIBLE_EXPORT_MS {
        header_now_ms - d.export_ms
    } else {
        0
    };
    // The same shift in NTP units (2^-32 s).
    let abs_ntp = ((i128::from(abs_ms) << 32) / 1000) as i64;
    for p in patches {
        let at = p.at as usize;
        match p.kind {
            PatchKind::Uptime32 => {
                if let Some(v) = get32(buf, at) {
                    put32(buf, at, v.wrapping_add(up_delta));
                }
            }
            PatchKind::Secs32 => {
                if let Some(v) = get32(buf, at) {
                    let s = i64::from(v) + abs_ms.div_euclid(1000);
                    put32(buf, at, s.clamp(0, i64::from(u32::MAX)) as u32);
                }
            }
            PatchKind::Millis64 => {
                if let Some(v) = get64(buf, at) {
                    put64(buf, at, v.saturating_add_signed(abs_ms));
                }
            }
            PatchKind::Ntp64 => {
                if let Some(v) = get64(buf, at) {
                    put64(buf, at, v.wrapping_add_signed(abs_ntp));
                }
            }
        }
    }
}
