//! Firewall syslog: one message in, one [`Record`] out (dialect
//! [`Dialect::Syslog`](crate::Dialect::Syslog), layout in [`crate::event`]).
//!
//! Place in the pipeline: the syslog listeners (UDP datagrams, TCP/TLS streams once framed by
//! [`framing`]) and `sluice decode --syslog` hand each message to their [`SyslogDecoder`]. The header is
//! RFC 5424 or RFC 3164 ([`header`]); the message is then read by the first parser that
//! recognises it: Cisco ASA/FTD ([`asa`]), netfilter/iptables including Ubiquiti EdgeOS
//! ([`netfilter`]), PAN-OS TRAFFIC/THREAT CSV ([`panos`]).
//!
//! Nothing is dropped: a message no parser recognises, or one a parser cannot read, is still
//! emitted with `event.original`, the header's fields and whatever was read, plus the
//! parse-failure tag (`error.type` names the reason). [`SyslogStats`] counts messages by
//! vendor and failures by (vendor, reason). Only empty messages are skipped (and counted).
//!
//! The record's export header: version 0, the sender as exporter, the message's own time as
//! export time (the receive time when it has none), a per-decoder message counter as sequence
//! (so that two identical lines get different document ids).
//!
//! Invariants: no input panics; every message is emitted or counted as empty.

pub mod asa;
pub mod framing;
pub mod header;
pub mod netfilter;
pub mod panos;

use std::borrow::Cow;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::event::{elem, event_header, Event, EventWriter};
use crate::record::Record;
use crate::template::Dialect;

/// Which parser read a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    /// Cisco ASA / FTD / PIX.
    Asa,
    /// Linux netfilter, Ubiquiti EdgeOS.
    Netfilter,
    /// Palo Alto Networks PAN-OS.
    Panos,
    /// No parser recognised the message.
    Unknown,
}

impl Vendor {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Asa => "asa",
            Vendor::Netfilter => "netfilter",
            Vendor::Panos => "panos",
            Vendor::Unknown => "unknown",
        }
    }
}

/// Counters of one decoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyslogStats {
    /// Messages emitted as records, by vendor (parsed or not).
    pub messages: FxHashMap<Vendor, u64>,
    /// Messages emitted with the parse-failure tag, by (vendor, reason).
    pub failures: FxHashMap<(Vendor, &'static str), u64>,
    /// Empty messages skipped.
    pub empty: u64,
    /// Messages that were not valid UTF-8 (read with replacement characters).
    pub invalid_utf8: u64,
}

impl SyslogStats {
    /// All messages emitted.
    pub fn total(&self) -> u64 {
        self.messages.values().sum()
    }

    /// All messages tagged as parse failures.
    pub fn failure_total(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// The syslog decoder. Not shared between threads: each receive thread owns one.
#[derive(Debug, Default)]
pub struct SyslogDecoder {
    stats: SyslogStats,
    writer: EventWriter,
    sequence: u32,
}

/// The reason for a message that no parser recognised.
pub const UNRECOGNIZED: &str = "unrecognized_format";

impl SyslogDecoder {
    /// A decoder.
    pub fn new() -> Self {
        SyslogDecoder::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> &SyslogStats {
        &self.stats
    }

    /// Decodes one message (framing already removed; a trailing CR/LF or NUL is ignored) from
    /// `src` received at `receive_ns`, calling `on_record` once unless the message is empty.
    pub fn decode<F: FnMut(&Record<'_>)>(
        &mut self,
        message: &[u8],
        src: SocketAddr,
        receive_ns: i64,
        mut on_record: F,
    ) {
        let mut end = message.len();
        while end > 0 && matches!(message[end - 1], b'\n' | b'\r' | 0) {
            end -= 1;
        }
        let message = &message[..end];
        if message.iter().all(|c| c.is_ascii_whitespace()) {
            self.stats.empty += 1;
            return;
        }
        let text = String::from_utf8_lossy(message);
        if matches!(text, Cow::Owned(_)) {
            self.stats.invalid_utf8 += 1;
        }
        let mut e = Event::default();
        let (vendor, failure) = parse_line(&text, receive_ns, &mut e);
        *self.stats.messages.entry(vendor).or_default() += 1;
        if let Some(reason) = failure {
            *self.stats.failures.entry((vendor, reason)).or_default() += 1;
        }
        self.sequence = self.sequence.wrapping_add(1);
        let header = event_header(
            src,
            e.time_ns.unwrap_or(receive_ns),
            self.sequence,
            receive_ns,
        );
        self.writer
            .emit(Dialect::Syslog, &header, &e, &mut on_record);
    }
}

/// Parses one message (header and body) into `e`; returns the vendor whose parser read it
/// and the parse-failure reason, if any (also set in `e`). `now_ns` resolves years of RFC
/// 3164 timestamps.
pub fn parse_line<'a>(
    text: &'a str,
    now_ns: i64,
    e: &mut Event<'a>,
) -> (Vendor, Option<&'static str>) {
    let h = header::parse(text, now_ns);
    e.text(elem::ORIGINAL, text);
    e.time_ns = h.time_ns;
    if let Some(p) = h.pri {
        e.uint(elem::SYSLOG_PRIORITY, u64::from(p));
        e.uint(elem::SYSLOG_FACILITY, u64::from(p >> 3));
        e.uint(elem::SYSLOG_SEVERITY, u64::from(p & 7));
    }
    if let Some(v) = h.version {
        e.uint(elem::SYSLOG_VERSION, u64::from(v));
    }
    e.text_opt(elem::SYSLOG_HOSTNAME, h.hostname);
    e.text_opt(elem::OBSERVER_HOSTNAME, h.hostname);
    e.text_opt(elem::SYSLOG_APPNAME, h.appname);
    e.text_opt(elem::SYSLOG_PROCID, h.procid);
    e.text_opt(elem::SYSLOG_MSGID, h.msgid);
    let msg = h.msg;
    let (vendor, result) = if let Some((i, product)) = asa::detect(msg) {
        (Vendor::Asa, asa::parse(&msg[i..], product, e))
    } else if netfilter::detect(msg) {
        (Vendor::Netfilter, netfilter::parse(msg, e))
    } else if panos::detect(msg) {
        (Vendor::Panos, panos::parse(msg, e))
    } else {
        e.text(elem::DATASET, "syslog");
        (Vendor::Unknown, Err(UNRECOGNIZED))
    };
    match result {
        Ok(()) => (vendor, None),
        Err(reason) => {
            e.fail(reason);
            (vendor, Some(reason))
        }
    }
}

#[cfg(test)]
mod tests;
