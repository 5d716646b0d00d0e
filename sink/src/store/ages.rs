//! Record age at flush: how long after its flow ended a record became durable in the store.
//!
//! When a block reaches its segment file (one `write(2)`, readable by other processes and
//! surviving a crash of the collector), the writer records the wall clock then minus the flow
//! end (`sluice_decode::time::end_ns`, `event.end`) of one record in [`AGE_SAMPLE_EVERY`] into
//! an HdrHistogram (microseconds, 3 significant digits, up to a day), each sample counted for
//! itself and the records after it that were not read, so the histogram's count is the number
//! of records written, exactly. For a real exporter this is
//! the freshness of the store: the exporter's active/idle timeout and export delay, the
//! network, the collector's batching and flush interval, all in one figure. For the load
//! generator's synthetic exporters, which stamp each record's end with its send time, it is
//! the collector's end-to-end latency.
//!
//! Costs: per sampled record, the flow end is read when it is appended and kept in a reused
//! vector; per block, one lock and one histogram increment per sample. Reading every record's
//! end and recording it was 8 % of the collector's CPU on NetFlow v5 (15 records per datagram),
//! for a distribution that a sample of one in eight describes as well: records of one
//! datagram and one block end within moments of each other. Nothing is allocated per record.

use hdrhistogram::Histogram;

/// Highest age kept apart, microseconds (one day). Older records (a replayed capture, an
/// exporter whose clock is far behind) are counted at this value.
pub const MAX_AGE_US: u64 = 86_400 * 1_000_000;

/// One record in this many has its age read (the first of a block, then every this many).
pub const AGE_SAMPLE_EVERY: usize = 8;

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

    /// Records the ages at `now_ns` of `records` records from the flow ends (ns since the
    /// Unix epoch) of a sample of them: `ends[i]` is the end of record `i * every`, and stands
    /// for it and the `every - 1` records after it (the last sample for whatever remains);
    /// with `every` 1, each end is one record. `ends` must hold `records.div_ceil(every)`
    /// values; otherwise nothing is recorded and `false` is returned. An end after `now_ns`
    /// (the exporter's clock is ahead) counts as age 0 and in [`RecordAges::future`].
    pub fn record_sampled(
        &mut self,
        now_ns: i64,
        ends: &[i64],
        every: usize,
        records: u64,
    ) -> bool {
        let every = every.max(1) as u64;
        if ends.len() as u64 != records.div_ceil(every) {
            return false;
        }
        let mut left = records;
        for &end in ends {
            let weight = left.min(every);
            self.record_one(now_ns, end, weight);
            left -= weight;
        }
        true
    }

    fn record_one(&mut self, now_ns: i64, end: i64, weight: u64) {
        let age_ns = now_ns.saturating_sub(end);
        if age_ns < 0 {
            self.future += weight;
        }
        let age_ns = age_ns.max(0) as u64;
        self.sum_ns += u128::from(age_ns) * u128::from(weight);
        self.hist
            .saturating_record_n((age_ns / 1000).min(MAX_AGE_US), weight);
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
        assert!(a.record_sampled(now, &ends, 1, 4));
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
        assert!(a.record_sampled(now, &[now - 3 * 86_400 * 1_000_000_000], 1, 1));
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

    #[test]
    fn a_sample_stands_for_the_records_after_it() {
        let now = 1_700_000_000_000_000_000i64;
        let ms = 1_000_000i64;
        // 19 records, one in 8 read: records 0, 8 and 16, standing for 8, 8 and 3.
        let mut a = RecordAges::new();
        assert!(a.record_sampled(now, &[now - ms, now - 10 * ms, now + ms], 8, 19));
        assert_eq!(a.count(), 19);
        assert_eq!(a.future(), 3);
        assert_eq!(a.count_at_most(1_000), 8 + 3);
        assert_eq!(a.count_at_most(10_000), 19);
        assert!(
            (a.sum_seconds() - 0.088).abs() < 1e-9,
            "{}",
            a.sum_seconds()
        );
        // A sample that does not match the record count is refused, not guessed at.
        let mut b = RecordAges::new();
        assert!(!b.record_sampled(now, &[now - ms, now - ms], 8, 19));
        assert!(!b.record_sampled(now, &[now - ms; 4], 8, 19));
        assert_eq!(b.count(), 0);
    }
}
