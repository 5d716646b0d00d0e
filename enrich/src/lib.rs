//! Flow enrichment for Sluice: GeoIP/AS, address locality, protocol/service/TCP-flag names,
//! NAT, sampling, interface and exporter names, Community ID, client/server orientation and
//! `network.direction`.
//!
//! Place in the pipeline: after decode and before encoding, on the receiving core. An
//! [`Enricher`] is built once from the [`EnrichConfig`] and shared (`Arc`) by every core;
//! each core makes its own [`CoreCache`] with [`Enricher::cache`] and, for every flow record,
//! calls [`Enricher::enrich`] with the record, its [`sluice_decode::Flow`], the options
//! tables of the record's scope ([`sluice_decode::Decoder::tables`]) and an [`Enriched`] it
//! reuses from flow to flow:
//!
//! ```no_run
//! # use sluice_enrich::{EnrichConfig, Enricher, Enriched};
//! # fn f(rec: &sluice_decode::Record<'_>, tables: Option<&sluice_decode::ScopeTables>) {
//! let enricher = std::sync::Arc::new(Enricher::new(&EnrichConfig::default()).expect("config"));
//! let mut cache = enricher.cache();          // one per core
//! let mut out = Enriched::default();         // reused
//! let flow = rec.flow();
//! enricher.enrich(&mut cache, rec, &flow, tables, &mut out);
//! if let Some(g) = out.source_geo() {
//!     println!("{:?} {:?}", g.country_iso_code, out.community_id);
//! }
//! # }
//! ```
//!
//! A housekeeping thread calls [`Enricher::maybe_reload`] every second or so: when a database
//! file changed it loads the new version and swaps it in; cores follow on their next flow.
//!
//! Invariants:
//! - [`Enricher::enrich`] allocates nothing in steady state (names are `&'static str` or
//!   shared `Arc<str>`s held by the loaded tables; the few copied texts reuse their buffers)
//!   and never fails: what cannot be found is left `None`.
//! - A database is decoded completely at load ([`geoip`]); a broken file is an error then,
//!   never a panic or a wrong answer later.
//! - A [`CoreCache`] belongs to one core; the [`Enricher`] is read-only except for the
//!   database swap, which cores notice with one atomic load per flow.

pub mod cache;
pub mod community_id;
pub mod config;
pub mod direction;
pub mod enricher;
pub mod error;
mod fields;
pub mod geoip;
pub mod learned;
pub mod locality;
pub mod names;

pub use cache::{CacheStats, CoreCache};
pub use community_id::{community_id, CommunityId};
pub use config::{EnrichConfig, ExporterConfig, InterfaceConfig};
pub use direction::Side;
pub use enricher::{
    EndInfo, Endpoint, Enriched, Enricher, EnricherStats, Interface, SamplingSource, Text,
};
pub use error::{DbKind, EnrichError};
pub use geoip::{AsInfo, GeoInfo, GeoPoint, GeoTables};
pub use learned::{IfTexts, Kept, KeptEnd, Learned};
pub use locality::{locality, Locality, Prefix};
pub use names::{protocol_name, service_name, tcp_flag_names};

#[cfg(test)]
mod tests {
    /// The enricher is shared by every core; caches and outputs move between threads.
    #[test]
    fn thread_safety() {
        fn shared<T: Send + Sync>() {}
        fn sendable<T: Send>() {}
        shared::<crate::Enricher>();
        shared::<crate::GeoTables>();
        sendable::<crate::CoreCache>();
        sendable::<crate::Enriched>();
    }
}
