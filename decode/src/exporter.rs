//! Per-exporter bookkeeping: sequence numbers (loss, not reordering) and restart detection.
//!
//! Sequence numbers count different things per protocol: v5 counts flow records sent before
//! the datagram, v9 counts export packets, IPFIX counts data records sent before the message
//! (RFC 7011 §3.1). [`SeqTracker`] works in "units" (records or packets) and keeps, since the
//! stream began (or the exporter restarted): the lowest unit expected, the highest unit seen
//! plus what its datagram carried, and the units received. Missing = span - received. A
//! datagram that arrives late fills its gap by raising `received`, so reordering does not
//! count as loss; nothing is assumed about order.

/// How far back (in packets) a v9 sequence number may be and still be a late arrival rather
/// than a restart.
pub const REORDER_WINDOW_PACKETS: u64 = 1024;
/// The same for v5 and IPFIX, whose sequence numbers count records.
pub const REORDER_WINDOW_RECORDS: u64 = 65_536;

/// Sequence accounting of one exporter scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    started: bool,
    /// First unit of the stream (unwrapped).
    first: u64,
    /// One past the highest unit seen (unwrapped).
    next: u64,
    /// Units received.
    received: u64,
}

/// What one datagram's sequence number said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqEvent {
    /// In order, or a late arrival within the window.
    Ok,
    /// The number went back further than any reordering: the exporter restarted (or reset its
    /// counter).
    Reset,
}

impl SeqTracker {
    /// Accounts a datagram whose header says `seq` and which carries `units`. A step back of
    /// more than `window` units is a reset.
    pub fn observe(&mut self, seq: u32, units: u64, window: u64) -> SeqEvent {
        if !self.started {
            *self = SeqTracker {
                started: true,
                first: u64::from(seq),
                next: u64::from(seq) + units,
                received: units,
            };
            return SeqEvent::Ok;
        }
        // Unwrap relative to the highest point: the signed 32-bit distance.
        let delta = i64::from(seq.wrapping_sub(self.next as u32) as i32);
        let at = self.next as i64 + delta;
        if delta < 0 && (-delta) as u64 > window {
            *self = SeqTracker::default();
            self.observe(seq, units, window);
            return SeqEvent::Reset;
        }
        let at = at.max(0) as u64;
        if at < self.first {
            self.first = at;
        }
        self.next = self.next.max(at + units);
        self.received += units;
        SeqEvent::Ok
    }

    /// Units the sequence numbers say were sent but never arrived.
    pub fn missing(&self) -> u64 {
        (self.next - self.first).saturating_sub(self.received)
    }

    /// Units received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Adds units decoded late (held data whose template came afterwards).
    pub fn add_received(&mut self, units: u64) {
        self.received += units;
    }
}

/// Whether a v5/v9 sysUptime going from `last` to `now` (ms) means the exporter restarted: it
/// went back by more than a second to less than half of what it was, and not because the
/// 32-bit counter wrapped (49.7 days). A rebooted device comes back with a small uptime; some
/// exporters' uptimes wobble by minutes between datagrams (seen in the akvorado sampling-rate
/// capture: 113 s back while the export time went 16 s forward), which is not a restart.
pub fn uptime_restarted(last: u32, now: u32) -> bool {
    const WRAP_MARGIN: u32 = 10 * 60 * 1000;
    if now >= last || last - now <= 1000 || now >= last / 2 {
        return false;
    }
    let wrapped = last > u32::MAX - WRAP_MARGIN && now < WRAP_MARGIN;
    !wrapped
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1000;

    #[test]
    fn loss_counts_gaps_and_reordering_fills_them() {
        let mut t = SeqTracker::default();
        t.observe(100, 10, W); // 100..110
        t.observe(110, 10, W); // 110..120
        t.observe(130, 10, W); // gap 120..130
        assert_eq!(t.missing(), 10);
        t.observe(120, 10, W); // late arrival fills it
        assert_eq!(t.missing(), 0);
        assert_eq!(t.received(), 40);
    }

    #[test]
    fn wraps_at_32_bits() {
        let mut t = SeqTracker::default();
        t.observe(u32::MAX - 4, 5, W);
        t.observe(0, 5, W);
        t.observe(10, 5, W); // 5 missing
        assert_eq!(t.missing(), 5);
    }

    #[test]
    fn a_big_step_back_is_a_reset() {
        let mut t = SeqTracker::default();
        for i in 0..100u32 {
            t.observe(1_000_000 + i * 10, 10, W);
        }
        assert_eq!(t.observe(0, 10, W), SeqEvent::Reset);
        assert_eq!(t.missing(), 0);
        t.observe(20, 10, W);
        assert_eq!(t.missing(), 10);
    }

    #[test]
    fn uptime_rules() {
        assert!(!uptime_restarted(1000, 2000));
        assert!(!uptime_restarted(5000, 4500), "small step back is jitter");
        assert!(uptime_restarted(500_000, 3_000));
        assert!(
            !uptime_restarted(3_872_245_664, 3_872_132_129),
            "wobble, not a reboot"
        );
        assert!(!uptime_restarted(u32::MAX - 100, 50), "wrap");
    }
}
