//! Record age at flush: how long after its flow ended a record became durable in the store.
//!
//! When a block reaches its segment file (one `write(2)`, readable by other processes and
//! surviving a crash of the collector), the writer records, for each of its records, the wall
//! clock then minus the record's flow end (`sluice_decode::time::end_ns`, `event.end`) into an
//! HdrHistogram (microseconds, 3 significant digits, up to a day). For a real exporter this is
//! the freshness of the store: the exporter's active/idle timeout and export delay, the
//! network, the collector's batching and flush interval, all in one figure. For the load
//! generator's synthetic exporters, which stamp each record's end with its send time, it is
//! the collector's end-to-end latency.
//!
//! Costs: per record, the flow end is read when it is appended (one template slot lookup for
//! records that state their end) and kept in a reused vector; per block, one lock and one
//! histogram increment per record. Nothing is allocated per record.

use hdrhistogram::Histogram;

/// Highest age kept apart, microseconds (one day). Older records (a replayed capture, an
/// exporter whose clock is far behind) are counted at this value.
pub const MAX_AGE_US: u64 = 86_400 * 1_000_000;

/// Ages of durable records since the collector started.
#[derive(Clone, Debug)]
pub struct RecordAges {
    hist: Histogram<u64>,
    sum_ns: u128,
    future: u64,
}

impl Default for RecordAges {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordAges {
    pub fn new() -> Self {
        // The bounds are constants within HdrHistogram's limits (low >= 1, high >= 2 * low,
        // 3 significant digits), so construction cannot fail.
        #[allow(clippy::expect_used)]
        let hist = Histogram::new_with_bounds(1, MAX_AGE_US, 3).expect("valid histogram bounds");
        RecordAges {
            hist,
            sum_ns: 0,
            future: 0,
        }
    }

    /// Records the ages at `now_ns` of records whose flows ended at `ends` (ns since the Unix
    /// epoch). An end after `now_ns` (the exporter's clock is ahead) counts as age 0 and in
    /// [`RecordAges::future`].
    pub fn record(&mut self, now_ns: i64, ends: &[i64]) {
        for &end in ends {
            let age_ns = now_ns.saturating_sub(end);
            if age_ns < 0 {
                self.future += 1;
            }
            let age_ns = age_ns.max(0) as u64;
            self.sum_ns += u128::from(age_ns);
            self.hist.saturating_record((age_ns / 1000).min(MAX_AGE_US));
        }
    }

    /// The histogram, in microseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Records counted.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Sum of the ages, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// Records whose flow ended after the moment they were written (counted at age 0).
    pub fn future(&self) -> u64 {
        self.future
    }

    /// Records with an age of at most `le_us` microseconds (to HdrHistogram's precision: the
    /// bucket holding `le_us` counts whole).
    pub fn count_at_most(&self, le_us: u64) -> u64 {
        self.hist.count_between(0, le_us)
    }

    /// The distribution as text, one line per non-empty bucket: `<age µs> <count>`, where the
    /// age is the highest value the bucket stands for. A reader rebuilds the histogram by
    /// recording each count at its value; two snapshots subtract bucket by bucket.
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# sluice record age at flush (now - event.end), microseconds: <age> <count>; \
             count {} sum_seconds {} future {}",
            self.count(),
            self.sum_seconds(),
            self.future
        );
        for v in self.hist.iter_recorded() {
            let _ = writeln!(
                out,
                "{} {}",
                self.hist.highest_equivalent(v.value_iterated_to()),
                v.count_at_value()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_now_minus_end() {
        let mut a = RecordAges::new();
        let now = 1_700_000_000_000_000_000i64;
        let ends = [
            now - 1_000_000,     // 1 ms
            now - 250_000_000,   // 250 ms
            now - 2_000_000_000, // 2 s
            now + 5_000_000,     // 5 ms in the future
        ];
        a.record(now, &ends);
        assert_eq!(a.count(), 4);
        assert_eq!(a.future(), 1);
        assert!(
            (a.sum_seconds() - 2.251).abs() < 1e-9,
            "{}",
            a.sum_seconds()
        );
        assert_eq!(a.count_at_most(0), 1);
        assert_eq!(a.count_at_most(1_000), 2);
        assert_eq!(a.count_at_most(300_000), 3);
        assert_eq!(a.count_at_most(MAX_AGE_US), 4);
        let h = a.histogram();
        assert_eq!(h.value_at_quantile(1.0), h.highest_equivalent(2_000_000));
        // Older than a day: kept at the ceiling.
        a.record(now, &[now - 3 * 86_400 * 1_000_000_000]);
        assert!(a.histogram().max() >= MAX_AGE_US);
        let mut text = String::new();
        a.write_text(&mut text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), 5, "{text}");
        let total: u64 = lines
            .iter()
            .map(|l| {
                l.split(' ')
                    .nth(1)
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(total, 5);
    }
}
