//! Absolute flow times.
//!
//! Exporters state times in many ways; all end up as ns since the Unix epoch:
//! - IPFIX `flowStart/EndSeconds|Milliseconds` (150-153) are absolute; `...Microseconds` and
//!   `...Nanoseconds` (154-157) are NTP-format timestamps (RFC 7011 §6.1.9-10);
//! - v5/v9 `FIRST/LAST_SWITCHED` (IE 22/21) are sysUptime milliseconds: start = export time -
//!   (sysUptime - first). The difference is taken modulo 2^32 and read as signed, so an uptime
//!   that wrapped (or a probe fed packets older than its start, which makes "negative" uptimes)
//!   still gives the right instant, and a flow stamped a little after the header does not jump
//!   49 days back;
//! - in IPFIX, IE 21/22 are relative to `systemInitTimeMilliseconds` (IE 160), which arrives in
//!   the record or in options data; a sum that lands after the export time means the 32-bit
//!   uptime wrapped;
//! - Cisco NX-OS sends IE 21/22 as 8-byte absolute epoch milliseconds;
//! - `flowStart/EndDeltaMicroseconds` (158/159) count back from the export time;
//! - with only a duration (161/162) one end is derived from the other; NSEL event records carry
//!   only an observation time (322-325).
//!
//! A record with none of these gets the export time for both ends.

use crate::record::{be_uint, Record};
use crate::template::Slot;

/// Seconds between the NTP era 0 epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: i64 = 2_208_988_800;
/// Epoch milliseconds below this (2001-09-09) cannot be absolute times from a real exporter.
const PLAUSIBLE_EPOCH_MS: u64 = 1_000_000_000_000;

/// An NTP-format timestamp (RFC 7011 §6.1.9-10) as ns since the Unix epoch.
pub fn ntp_to_ns(v: u64) -> i64 {
    let secs = (v >> 32) as i64 - NTP_UNIX_OFFSET;
    let frac = ((v & 0xffff_ffff) * 1_000_000_000) >> 32;
    secs.saturating_mul(1_000_000_000)
        .saturating_add(frac as i64)
}

fn ms(v: i64) -> i64 {
    v.saturating_mul(1_000_000)
}

/// The export time, or the receive time when the header has none.
pub fn export_ns(r: &Record<'_>) -> i64 {
    if r.header.export_time_ns > 0 {
        r.header.export_time_ns
    } else {
        r.header.receive_time_ns
    }
}

enum Edge {
    Start,
    End,
}

fn edge(r: &Record<'_>, e: Edge) -> Option<i64> {
    let (sec, msl, us, ns, up, delta) = match e {
        Edge::Start => (
            Slot::StartSec,
            Slot::StartMs,
            Slot::StartUs,
            Slot::StartNs,
            Slot::StartUptime,
            Slot::StartDeltaUs,
        ),
        Edge::End => (
            Slot::EndSec,
            Slot::EndMs,
            Slot::EndUs,
            Slot::EndNs,
            Slot::EndUptime,
            Slot::EndDeltaUs,
        ),
    };
    let get = |s| r.slot(s).filter(|b: &&[u8]| !b.is_empty());
    if let Some(b) = get(ns) {
        return Some(ntp_to_ns(be_uint(b)));
    }
    if let Some(b) = get(us) {
        // dateTimeMicroseconds: the low 11 bits of the fraction are not significant.
        return Some(ntp_to_ns(be_uint(b) & !0x7ff));
    }
    if let Some(b) = get(msl) {
        return Some(ms(be_uint(b) as i64));
    }
    if let Some(b) = get(sec) {
        return Some((be_uint(b) as i64).saturating_mul(1_000_000_000));
    }
    if let Some(b) = get(up) {
        let v = be_uint(b);
        if b.len() == 8 && v >= PLAUSIBLE_EPOCH_MS {
            // NX-OS: absolute epoch milliseconds in an 8-byte uptime field.
            return Some(ms(v as i64));
        }
        if let Some(uptime) = r.header.sys_uptime_ms {
            let back = uptime.wrapping_sub(v as u32) as i32;
            return Some(export_ns(r) - ms(i64::from(back)));
        }
        let init = r
            .slot(Slot::SysInitMs)
            .filter(|b| !b.is_empty())
            .map(|b| be_uint(b) as i64)
            .or(r.system_init_ms)?;
        let mut t = ms(init.saturating_add(v as i64));
        // A 4-byte uptime wraps every 49.7 days, and a probe fed packets older than its own
        // start writes "negative" uptimes modulo 2^32. A flow cannot end after it was
        // exported: if the plain sum lands more than an hour past the export time, the
        // counter wrapped, so step back one period.
        if b.len() <= 4 && t > export_ns(r).saturating_add(3_600_000_000_000) {
            t -= ms(1 << 32);
        }
        return Some(t);
    }
    if let Some(b) = get(delta) {
        return Some(export_ns(r).saturating_sub((be_uint(b) as i64).saturating_mul(1000)));
    }
    None
}

fn observation(r: &Record<'_>) -> Option<i64> {
    let get = |s| r.slot(s).filter(|b: &&[u8]| !b.is_empty()).map(be_uint);
    if let Some(v) = get(Slot::ObservationNs) {
        return Some(ntp_to_ns(v));
    }
    if let Some(v) = get(Slot::ObservationUs) {
        return Some(ntp_to_ns(v & !0x7ff));
    }
    if let Some(v) = get(Slot::ObservationMs) {
        return Some(ms(v as i64));
    }
    get(Slot::ObservationSec).map(|v| (v as i64).saturating_mul(1_000_000_000))
}

fn duration_ns(r: &Record<'_>) -> Option<i64> {
    let get = |s| r.slot(s).filter(|b: &&[u8]| !b.is_empty()).map(be_uint);
    get(Slot::DurationUs)
        .map(|v| (v as i64).saturating_mul(1000))
        .or_else(|| get(Slot::DurationMs).map(|v| ms(v as i64)))
}

/// The flow end alone, as [`resolve`] gives it; cheaper when the record states its end (the
/// start is then not looked at). The local store times records' age at flush with it.
pub fn end_ns(r: &Record<'_>) -> i64 {
    match edge(r, Edge::End) {
        Some(e) => e,
        None => resolve(r).1,
    }
}

/// (start, end, whether they came from the record), ns since the Unix epoch.
pub fn resolve(r: &Record<'_>) -> (i64, i64, bool) {
    let start = edge(r, Edge::Start);
    let end = edge(r, Edge::End);
    let dur = duration_ns(r);
    match (start, end) {
        (Some(s), Some(e)) => (s, e, true),
        (Some(s), None) => (s, dur.map_or(s, |d| s.saturating_add(d)), true),
        (None, Some(e)) => (dur.map_or(e, |d| e.saturating_sub(d)), e, true),
        (None, None) => match observation(r) {
            Some(t) => (t, t, true),
            None => {
                let t = export_ns(r);
                (t, t, false)
            }
        },
    }
}
