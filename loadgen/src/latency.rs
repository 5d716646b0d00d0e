//! End-to-end latency from the collector's record-age histogram.
//!
//! Every synthetic flow record ends at its send time (see [`crate::synth::encode`]). When the
//! collector writes a record to its local store it records now - flow end in an HdrHistogram
//! (`sluice_sink::store::ages`), exported whole as text on `/debug/record-age` (one line
//! `<age µs> <count>` per bucket) and as the Prometheus histogram
//! `sluice_store_record_age_seconds`. The load generator fetches the text before and after a
//! run, rebuilds both histograms and subtracts them: what is left is exactly the records that
//! became durable during the run, to HdrHistogram's precision (3 significant digits).

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::metrics::{MetricsError, MetricsUrl};

/// The collector's path for the record-age distribution.
pub const RECORD_AGE_PATH: &str = "/debug/record-age";

/// Highest age the collector keeps apart, µs (a day), as in its histogram.
const MAX_AGE_US: u64 = 86_400 * 1_000_000;

/// A record-age distribution, µs.
#[derive(Clone, Debug)]
pub struct Ages(pub Histogram<u64>);

/// Quantiles of a run, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn empty() -> Histogram<u64> {
    // Constant bounds within HdrHistogram's limits: construction cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_AGE_US, 3).expect("valid histogram bounds")
}

impl Ages {
    /// Parses the collector's text; lines that do not parse are an error (a page that is not
    /// this format).
    pub fn parse(text: &str) -> Result<Ages, String> {
        let mut h = empty();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_ascii_whitespace();
            let (Some(v), Some(c), None) = (it.next(), it.next(), it.next()) else {
                return Err(format!("record-age line {}: {line:?}", i + 1));
            };
            let (Ok(v), Ok(c)) = (v.parse::<u64>(), c.parse::<u64>()) else {
                return Err(format!("record-age line {}: {line:?}", i + 1));
            };
            h.record_n(v.min(MAX_AGE_US), c)
                .map_err(|e| format!("record-age line {}: {e}", i + 1))?;
        }
        Ok(Ages(h))
    }

    /// Fetches the distribution from the collector whose metrics are at `url`.
    pub fn fetch(url: &MetricsUrl) -> Result<Ages, MetricsError> {
        let u = MetricsUrl {
            path: RECORD_AGE_PATH.into(),
            ..url.clone()
        };
        let text = u.fetch(Duration::from_secs(5))?;
        Ages::parse(&text).map_err(|_| MetricsError::Response)
    }

    /// What was recorded since `before` (a snapshot of the same collector).
    pub fn since(&self, before: &Ages) -> Ages {
        let mut h = self.0.clone();
        if h.subtract(&before.0).is_err() {
            // The collector restarted in between: its counts started again from zero.
            return self.clone();
        }
        Ages(h)
    }

    pub fn latency(&self) -> Option<Latency> {
        let h = &self.0;
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_subtract_and_quantiles() {
        // 980 records at 200 ms, 29 at 900 ms, 1 at 2 s: then 500 more at 300 ms.
        let before = Ages::parse("# header\n200000 980\n900000 29\n2000000 1\n").expect("parse");
        let after = Ages::parse("200000 980\n300000 500\n900000 29\n2000000 1\n").expect("parse");
        let l = before.latency().expect("some");
        assert_eq!(l.count, 1010);
        assert!((l.p50_ms - 200.0).abs() < 0.5, "{l:?}");
        assert!((l.p99_ms - 900.0).abs() < 1.0, "{l:?}");
        assert!((l.p999_ms - 900.0).abs() < 1.0, "{l:?}");
        assert!((l.max_ms - 2000.0).abs() < 2.0, "{l:?}");
        let run = after.since(&before).latency().expect("some");
        assert_eq!(run.count, 500);
        assert!((run.p50_ms - 300.0).abs() < 0.5 && (run.max_ms - 300.0).abs() < 0.5);
        assert!(Ages::parse("12 x\n").is_err());
        assert!(Ages::parse("<html>\n").is_err());
        assert_eq!(Ages::parse("").expect("empty").latency(), None);
    }
}
