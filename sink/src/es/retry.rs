//! Retry policy, kept apart from the transport: which bulk outcomes are resent (`classify`)
//! and how long to wait before the next attempt (`Backoff`). Both are pure, so they are tested
//! without a clock or a server.

use std::time::Duration;

use super::error::is_retryable_status;

/// Jittered exponential backoff: attempt `n` waits a random time in `[d/2, d]`, where
/// `d = min(initial * 2^n, max)` ("equal jitter": never near zero, so a fleet of workers does
/// not hammer a recovering cluster in step, and never longer than `max`).
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        // xorshift needs a non-zero state.
        Backoff {
            initial,
            max,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt; advances the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << self.attempt.min(20));
        let d = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        let span = (d - half).as_nanos() as u64;
        half + Duration::from_nanos(if span == 0 {
            0
        } else {
            self.random() % (span + 1)
        })
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// A seed that differs per thread and per start.
pub(crate) fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// What to do with one bulk item, from its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    /// 2xx: indexed.
    Created,
    /// 409 on `create`: the document with this `_id` exists, so an earlier attempt (or a
    /// replay) delivered it. Counts as delivered.
    Duplicate,
    /// 429 or 5xx: resend this item.
    Retry,
    /// Anything else (400 mapping errors, 404 missing index with auto-create off, ...):
    /// resending cannot help; dead-letter it.
    Reject,
}

pub(crate) fn classify(status: u16) -> ItemOutcome {
    match status {
        200..=299 => ItemOutcome::Created,
        409 => ItemOutcome::Duplicate,
        s if is_retryable_status(s) => ItemOutcome::Retry,
        _ => ItemOutcome::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 42);
        let ds: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (n, d) in ds.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(2));
            assert!(
                *d >= full / 2 && *d <= full,
                "attempt {n}: {d:?} vs {full:?}"
            );
        }
        assert_eq!(b.attempts(), 10);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Two seeds give different waits (jitter).
        let mut c = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 7);
        let mut d = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 8);
        assert_ne!(c.next_delay(), d.next_delay());
    }

    #[test]
    fn item_statuses() {
        assert_eq!(classify(201), ItemOutcome::Created);
        assert_eq!(classify(409), ItemOutcome::Duplicate);
        assert_eq!(classify(429), ItemOutcome::Retry);
        assert_eq!(classify(503), ItemOutcome::Retry);
        assert_eq!(classify(400), ItemOutcome::Reject);
        assert_eq!(classify(404), ItemOutcome::Reject);
    }
}
