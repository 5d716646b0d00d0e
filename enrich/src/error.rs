//! Errors of enrichment set-up and reloads. The per-flow path has none: a lookup that fails is
//! counted in [`crate::CacheStats`] and the flow goes on without that field.

use std::path::PathBuf;

/// Which GeoIP database slot a file was configured for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// City or Country database (`geoip_city`).
    City,
    /// ASN (or ISP) database (`geoip_asn`).
    Asn,
}

impl DbKind {
    /// `city` or `asn`, the config key's suffix.
    pub const fn as_str(self) -> &'static str {
        match self {
            DbKind::City => "city",
            DbKind::Asn => "asn",
        }
    }
}

/// What can go wrong loading the enrichment tables.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The file could not be read (or mapped).
    #[error("GeoIP {kind} database {path}: cannot open: {source}", kind = .kind.as_str(), path = .path.display())]
    Open {
        /// Slot.
        kind: DbKind,
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid MaxMind DB (bad metadata, search tree or data section).
    #[error("GeoIP {kind} database {path}: not a valid MaxMind DB: {source}", kind = .kind.as_str(), path = .path.display())]
    Invalid {
        /// Slot.
        kind: DbKind,
        /// File.
        path: PathBuf,
        /// What the reader found.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// A valid database of the wrong kind (an ASN database given as the city database).
    #[error("GeoIP {kind} database {path}: wrong database type {found:?}", kind = .kind.as_str(), path = .path.display())]
    WrongType {
        /// Slot.
        kind: DbKind,
        /// File.
        path: PathBuf,
        /// `database_type` from the file's metadata.
        found: String,
    },
    /// A configuration value that cannot work (names the key).
    #[error("enrich config: {key}: {message}")]
    Config {
        /// Key, e.g. `exporters[2].address`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl EnrichError {
    /// Short label for metrics (`open`, `invalid`, `wrong_type`, `config`).
    pub fn reason(&self) -> &'static str {
        match self {
            EnrichError::Open { .. } => "open",
            EnrichError::Invalid { .. } => "invalid",
            EnrichError::WrongType { .. } => "wrong_type",
            EnrichError::Config { .. } => "config",
        }
    }
}
