//! sluice-loadgen: replays captured NetFlow v5/v9 and IPFIX exports, or sends synthetic
//! NetFlow v5/v9, IPFIX and sFlow flows, against a collector, as many exporters, at a
//! controlled rate; measures what the collector kept and how late; soaks a collector.
//!
//! Place in the pipeline: outside it. The load generator is the exporter side of the benchmarks:
//! it reads a capture with `sluice_decode::pcap`, prepares it once ([`capture::Capture`]), then
//! sends it from N sockets ([`replay`]), rewriting each datagram's header (source id,
//! sequence number, export time, sysUptime) and the record times that depend on them
//! ([`rewrite`]) so that the collector sees N well-behaved exporters with no sequence gaps.
//! [`synth`] generates flows from a traffic model and encodes them as exporters do. Both
//! are [`send::Source`]s for [`send::send`] (sockets, sendmmsg, pacing, progress).
//! [`metrics`] scrapes the collector's Prometheus endpoint before and after a run, and its
//! record-age histogram ([`latency`]); [`soak`] runs a collector under steady load and judges
//! it; [`plot`] draws a run.
//!
//! Invariants: a datagram is only ever sent to the address given; the bytes of a record are
//! only changed at offsets found by decoding the capture with the collector's own decoder;
//! nothing read from the capture can panic the load generator.

pub mod capture;
pub mod config;
pub mod error;
pub mod latency;
pub mod metrics;
pub mod pcap_out;
pub mod plot;
pub mod replay;
pub mod rewrite;
pub mod send;
pub mod soak;
pub mod synth;
pub mod timeline;

pub use capture::{Capture, CaptureDatagram, Stream};
pub use config::{parse_duration, Rate, Stop};
pub use error::LoadError;
pub use replay::{replay, Progress, ReplayConfig, ReplayStats, Schedule};
pub use send::{send, Hooks, LiveCounters, Rendered, SendConfig, SendStats, Source};
