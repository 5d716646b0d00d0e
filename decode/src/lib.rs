//! NetFlow v5, v9 and IPFIX decoding for Sluice.
//!
//! Place in the pipeline: the receive loop (or `sluice decode`, reading a capture) hands each
//! UDP payload to its core's [`Decoder`], which learns templates per exporter scope and calls
//! back once per record with a borrowed [`Record`]. Nothing is copied per record; a record is
//! read through its compiled [`Template`]'s offset plan ([`Record::flow`]) or field by field
//! (the document encoder in `sluice-sink`).
//!
//! Invariants: no input panics; every rejected datagram, set or record is counted by reason in
//! [`DecodeStats`]; held data is bounded by [`Limits`].

pub mod decoder;
pub mod error;
pub mod event;
pub mod exporter;
pub mod ie;
mod ie_table;
pub mod pcap;
pub mod record;
pub mod sflow;
pub mod shared;
pub mod syslog;
pub mod template;
pub mod time;
pub mod vpc;

pub use decoder::{
    Datagram, DecodeStats, Decoder, ExporterStatus, InterfaceInfo, Limits, ScopeKey, ScopeTables,
};
pub use error::DecodeError;
pub use record::{ExportHeader, Flow, Record};
pub use shared::SharedTemplates;
pub use template::{Dialect, Field, FieldSpec, Template};
