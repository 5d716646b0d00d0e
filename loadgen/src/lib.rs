//! sluice-loadgen: replays captured NetFlow v5/v9 and IPFIX exports against a collector, as
//! many exporters, at a controlled rate, and measures what the collector kept.
//!
//! Place in the pipeline: outside it. The load generator is the exporter side of the benchmarks:
//! it reads a capture with `sluice_decode::pcap`, prepares it once ([`capture::Capture`]), then
//! sends it from N sockets ([`replay`]), rewriting each datagram's header (source id,
//! sequence number, export time, sysUptime) and the record times that depend on them
//! ([`rewrite`]) so that the collector sees N well-behaved exporters with no sequence gaps.
//! [`metrics`] scrapes the collector's Prometheus endpoint before and after a run.
//!
//! Invariants: a datagram is only ever sent to the address given; the bytes of a record are
//! only changed at offsets found by decoding the capture with the collector's own decoder;
//! nothing read from the capture can panic the load generator.

pub mod capture;
pub mod config;
pub mod error;
pub mod metrics;
pub mod replay;
pub mod rewrite;
pub mod send;

pub use capture::{Capture, CaptureDatagram, Stream};
pub use config::{parse_duration, Rate, Stop};
pub use error::LoadError;
pub use replay::{replay, Progress, ReplayConfig, ReplayStats, Schedule};
pub use send::{send, Hooks, LiveCounters, Rendered, SendConfig, SendStats, Source};
