//! The collector: receive threads, batches, the store thread, configuration, metrics, and the
//! `decode`/`dump` commands. `main.rs` is the command line on top.
//!
//! Place in the pipeline: ingest uses decode (datagrams to records), enrich and sink (documents
//! and where they go); nothing depends on it.

pub mod batch;
pub mod config;
pub mod decode_cmd;
pub mod dump_cmd;
pub mod forward;
pub mod http;
pub mod logs_cmd;
pub mod metrics;
pub mod output;
pub mod run;
pub mod ship;
pub mod syslog_rx;
pub mod top_cmd;
pub mod udp;

/// Output formats of `decode` and `dump`.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// One JSON document per line.
    Ndjson,
    /// Comma-separated values with a header line (core columns only).
    Csv,
}
