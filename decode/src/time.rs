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

/// Seconds since the Unix epoch of a UTC civil date and time (proleptic Gregorian; the inverse
/// of the days-to-civil conversion in `sluice_sink::timefmt`). No range checks beyond
/// overflow: callers validate fields.
pub fn civil_to_unix(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + s
}

/// Year of an instant (ns since the Unix epoch), UTC.
pub fn year_of(ns: i64) -> i64 {
    let days = ns.div_euclid(1_000_000_000).div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let y = yoe + era * 400;
    if mp >= 10 {
        y + 1
    } else {
        y
    }
}

/// Parses an RFC 3339 timestamp: `2026-11-22T09:15:01Z`, with any number of fraction digits
/// and a `Z` or `±hh:mm` offset (a space instead of the `T` is accepted). Returns ns since the
/// Unix epoch; `None` for anything else and for years past 2262, which do not fit.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut v = 0i64;
        for (k, c) in digits.bytes().take(9).enumerate() {
            v += i64::from(c - b'0') * 10i64.pow(8 - k as u32);
        }
        frac_ns = v;
    }
    let offset_s = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = civil_to_unix(y, mo, d, h, mi, se) - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}
