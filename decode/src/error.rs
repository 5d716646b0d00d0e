//! Decode errors. Every variant has a stable `reason()` used as a metric label and in the
//! per-reason counts `sluice decode` prints; none of them allocates.

use thiserror::Error;

/// Why a datagram, a set or a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum DecodeError {
    /// The datagram or a structure inside it ends before its declared length.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The first two bytes are not a NetFlow/IPFIX version we decode.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u16),
    /// A length or count field contradicts the datagram (e.g. v5 count above 30).
    #[error("invalid length in {0}")]
    InvalidLength(&'static str),
    /// A template or options template that cannot be right (zero-length record, bad scope count,
    /// reserved id).
    #[error("invalid template: {0}")]
    InvalidTemplate(&'static str),
    /// Data for a template we do not know; the data was held (if room) or dropped.
    #[error("data set without template")]
    TemplateMissing,
    /// A per-exporter limit was reached (templates, fields, held data).
    #[error("limit reached: {0}")]
    Limit(&'static str),
}

impl DecodeError {
    /// Stable, low-cardinality label for metrics and error counts.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Truncated(_) => "truncated",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::InvalidLength(_) => "invalid_length",
            DecodeError::InvalidTemplate(_) => "invalid_template",
            DecodeError::TemplateMissing => "template_missing",
            DecodeError::Limit(_) => "limit",
        }
    }
}
