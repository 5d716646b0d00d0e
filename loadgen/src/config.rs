//! Run settings that the command line parses: rate, stop condition, durations.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How fast to send, counted in datagrams over all exporters together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// As fast as the sockets take them.
    Max,
    /// This many datagrams per second (> 0).
    Pps(f64),
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        // Accept "2000", "2000pps", "2.5k", "1M" (datagrams per second).
        let lower = s.to_ascii_lowercase();
        let body = lower.strip_suffix("pps").unwrap_or(&lower);
        let (num, mult) = match body.as_bytes().last() {
            Some(b'k') => (&body[..body.len() - 1], 1e3),
            Some(b'm') => (&body[..body.len() - 1], 1e6),
            _ => (body, 1.0),
        };
        match num.parse::<f64>() {
            Ok(v) if v.is_finite() && v * mult > 0.0 => Ok(Rate::Pps(v * mult)),
            _ => Err(format!(
                "invalid rate {s:?}: expected datagrams per second (e.g. 2000, 50k) or \"max\""
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::Pps(p) => write!(f, "{p} pps"),
        }
    }
}

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After every exporter has sent the capture this many times (at least 1).
    Loops(u64),
    /// After this much time, looping the capture as often as needed.
    Duration(Duration),
}

/// Parses a human duration: `30s`, `2m`, `1h`, `500ms`, `1m30s`, or plain seconds (`45`,
/// `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 2m, 1h30m, 500ms");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let v: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        total += v * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "s", "10x", "-3s", "1..2s", "m5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!("max".parse(), Ok(Rate::Max));
        assert_eq!("MAX".parse(), Ok(Rate::Max));
        assert_eq!("2000".parse(), Ok(Rate::Pps(2000.0)));
        assert_eq!("2000pps".parse(), Ok(Rate::Pps(2000.0)));
        assert_eq!("50k".parse(), Ok(Rate::Pps(50_000.0)));
        assert_eq!("1.5M".parse(), Ok(Rate::Pps(1_500_000.0)));
        for bad in ["", "0", "-5", "fast", "NaN", "inf"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
