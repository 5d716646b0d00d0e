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

/// Appends `YYYY-MM-DDTHH:MM:SS.sssZ` for `ns` since the Unix epoch. Years outside 0..=9999
/// are clamped to that range so the output always parses.
pub fn write_rfc3339(out: &mut Vec<u8>, ns: i64) {
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01 in ms
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999 in ms
    let ms = ns.div_euclid(1_000_000).clamp(MIN, MAX);
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil(days);
    let y = y as u32;
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, sod / 3600);
    out.push(b':');
    two(out, sod / 60 % 60);
    out.push(b':');
    two(out, sod % 60);
    out.push(b'.');
    out.push(b'0' + (milli / 100) as u8);
    two(out, milli % 100);
    out.push(b'Z');
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
