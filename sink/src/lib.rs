//! Flow documents and where they go.
//!
//! Place in the pipeline: after decode (and enrichment), records are encoded as ECS documents
//! ([`ecs`]) driven by one field table ([`schema`]), then written to a sink: stdout for
//! `sluice decode`, later the local store and Elasticsearch.

pub mod ecs;
pub mod es;
pub mod filter;
pub mod schema;
pub mod store;
pub mod timefmt;
pub mod top;
