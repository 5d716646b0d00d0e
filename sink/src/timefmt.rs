//! RFC 3339 UTC timestamps with millisecond precision, written without allocation.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// civil-from-days algorithm, re-derived here).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn two(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01 in ms
const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999 in ms

/// Appends `YYYY-MM-DDTHH:MM:SS.sssZ` for `ns` since the Unix epoch. Years outside 0..=9999
/// are clamped to that range so the output always parses.
pub fn write_rfc3339(out: &mut Vec<u8>, ns: i64) {
    let ms = ns.div_euclid(1_000_000).clamp(MIN_MS, MAX_MS);
    write_seconds(out, ms.div_euclid(1000));
    write_millis(out, ms.rem_euclid(1000) as u32);
}

/// `.sssZ`
fn write_millis(out: &mut Vec<u8>, milli: u32) {
    out.push(b'.');
    out.push(b'0' + (milli / 100) as u8);
    two(out, milli % 100);
    out.push(b'Z');
}

/// What [`write_rfc3339`] writes, remembering the last second's text: the times of one
/// document (export time, flow start and end, time elements) mostly fall in the same second,
/// and the calendar arithmetic is the costly part.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339Cache {
    secs: i64,
    text: [u8; 19],
}

impl Default for Rfc3339Cache {
    fn default() -> Self {
        Rfc3339Cache {
            secs: i64::MIN,
            text: [0; 19],
        }
    }
}

impl Rfc3339Cache {
    /// What [`write_rfc3339`] writes, as a JSON string: in double quotes, composed on the stack and appended in one
    /// fixed-size copy.
    pub fn write_quoted(&mut self, out: &mut Vec<u8>, ns: i64) {
        let ms = ns.div_euclid(1_000_000).clamp(MIN_MS, MAX_MS);
        let secs = ms.div_euclid(1000);
        if secs != self.secs {
            self.text = seconds_text(secs);
            self.secs = secs;
        }
        let milli = ms.rem_euclid(1000) as u32;
        let mut t = *b"\"0000-00-00T00:00:00.000Z\"";
        t[1..20].copy_from_slice(&self.text);
        t[21] = b'0' + (milli / 100) as u8;
        t[22] = b'0' + (milli / 10 % 10) as u8;
        t[23] = b'0' + (milli % 10) as u8;
        out.extend_from_slice(&t);
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (19 bytes) for seconds since the epoch, within the clamped range.
fn write_seconds(out: &mut Vec<u8>, secs: i64) {
    out.extend_from_slice(&seconds_text(secs));
}

fn seconds_text(secs: i64) -> [u8; 19] {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil(days);
    let y = y as u32;
    let mut t = *b"0000-00-00T00:00:00";
    for (at, v) in [
        (0, y / 100),
        (2, y % 100),
        (5, m),
        (8, d),
        (11, sod / 3600),
        (14, sod / 60 % 60),
        (17, sod % 60),
    ] {
        t[at] = b'0' + (v / 10 % 10) as u8;
        t[at + 1] = b'0' + (v % 10) as u8;
    }
    t
}

/// Parses what [`write_rfc3339`] writes, and the other RFC 3339 forms (offsets, any number of
/// fraction digits). Returns ns since the Unix epoch. (The decoder's, which syslog timestamps
/// use too.)
pub use sluice_decode::time::parse_rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ns: i64) -> String {
        let mut v = Vec::new();
        write_rfc3339(&mut v, ns);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(fmt(1_700_000_000_999_999_999), "2023-11-14T22:13:20.999Z");
        assert_eq!(fmt(-1_000_000), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn cache_writes_what_the_plain_writer_writes() {
        let mut instants = vec![i64::MIN, i64::MAX, 0, -1];
        let mut ns = -3_000_000_000_123_456_789i64;
        for step in [1_000_000i64, 999_999, 1_000_000_001, 86_399_999_999_999, 7] {
            for _ in 0..200 {
                instants.push(ns);
                ns += step;
            }
        }
        let mut c = Rfc3339Cache::default();
        for ns in instants {
            let mut q = Vec::new();
            c.write_quoted(&mut q, ns);
            assert_eq!(q, format!("\"{}\"", fmt(ns)).as_bytes(), "{ns}");
        }
    }

    #[test]
    fn parse_round_trips_every_day_for_sixty_years() {
        let mut ns = 0i64;
        while ns < 60 * 366 * 86_400 * 1_000_000_000 {
            let s = fmt(ns);
            assert_eq!(parse_rfc3339(&s), Some(ns), "{s}");
            ns += 86_400 * 1_000_000_000 + 3_723_456_000_000;
        }
        assert_eq!(
            parse_rfc3339("2024-01-01T01:00:00+01:00"),
            parse_rfc3339("2024-01-01T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("3000-01-01T00:00:00Z"), None);
    }
}
