//! Sink errors: each says whether retrying can help and which side failed, and has a stable
//! `reason()` for metric labels. None carries a credential: URLs with user info are refused
//! by config validation and request headers are never formatted into a message.

use thiserror::Error;

/// What went wrong talking to the cluster or with local resources.
#[derive(Debug, Error)]
pub enum EsError {
    /// A configuration value that cannot work; names the key.
    #[error("invalid Elasticsearch sink config: {key}: {msg}")]
    Config {
        /// The configuration key.
        key: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// No answer: connection refused or reset, timeout, DNS, TLS handshake.
    #[error("cluster unreachable: {0}")]
    Transport(String),
    /// The cluster answered with an error status.
    #[error("cluster answered HTTP {status}: {reason}")]
    Http {
        /// HTTP status.
        status: u16,
        /// `error.type: error.reason` from the answer, or its first bytes.
        reason: String,
    },
    /// An answer that does not have the documented shape.
    #[error("unexpected answer from the cluster: {0}")]
    Protocol(String),
    /// The local disk (spool, dead-letter file) failed.
    #[error("{what}: {source}")]
    Io {
        /// Which file or operation.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Which side an error lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// This process, its configuration or its disk.
    Local,
    /// The network or the cluster.
    Remote,
}

impl EsError {
    pub(crate) fn config(key: &'static str, msg: String) -> EsError {
        EsError::Config { key, msg }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> EsError {
        EsError::Io {
            what: what.into(),
            source,
        }
    }

    /// Stable, low-cardinality label for metrics and error counts.
    pub fn reason(&self) -> &'static str {
        match self {
            EsError::Config { .. } => "config",
            EsError::Transport(_) => "transport",
            EsError::Http { status: 429, .. } => "too_many_requests",
            EsError::Http {
                status: 500..=599, ..
            } => "server_error",
            EsError::Http { .. } => "client_error",
            EsError::Protocol(_) => "protocol",
            EsError::Io { .. } => "io",
        }
    }

    /// Whether the same request may succeed later: transport errors, 429, 5xx, and 401/403
    /// (an operator can fix the cluster's role mapping without restarting us). Other 4xx,
    /// bad configuration and local I/O do not get better by retrying the request.
    pub fn is_retryable(&self) -> bool {
        match self {
            EsError::Transport(_) | EsError::Protocol(_) => true,
            EsError::Http { status, .. } => {
                is_retryable_status(*status) || matches!(status, 401 | 403)
            }
            EsError::Config { .. } | EsError::Io { .. } => false,
        }
    }

    /// Which side failed.
    pub fn side(&self) -> Side {
        match self {
            EsError::Config { .. } | EsError::Io { .. } => Side::Local,
            _ => Side::Remote,
        }
    }
}

/// Statuses worth resending a request or a bulk item for: 429 (queue full, circuit breaker)
/// and every 5xx (shard unavailable, node restarting, gateway errors).
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// [`super::EsSink::submit`] could not take every document: the memory queue and the spool's
/// intake were both full. The documents were dropped and counted (`docs_dropped`).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("Elasticsearch sink full: {dropped} documents dropped")]
pub struct Full {
    /// Documents of this call that were dropped.
    pub dropped: usize,
}
