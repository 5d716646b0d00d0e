//! Store errors. Every variant has a stable `reason()` used as a metric label; none of them
//! allocates beyond the `io::Error` the OS hands us.

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The file system refused (disk full, permissions, a directory removed under us).
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes on disk that cannot be what the writer wrote: bad magic, checksum, lengths that
    /// contradict each other, a column that does not decode.
    #[error("corrupt store data: {0}")]
    Corrupt(&'static str),
    /// A segment written by a newer format version than this reader knows.
    #[error("unsupported store format version {0}")]
    UnsupportedVersion(u16),
    /// A block needs a column (or a column encoding) this reader does not know: written by a
    /// newer minor revision of the format. The block is skipped and counted.
    #[error("unsupported column {0}")]
    UnsupportedColumn(u16),
    /// A configuration value that cannot work; names the key.
    #[error("invalid store config: {0}")]
    Config(&'static str),
    /// zstd refused to compress or decompress a block.
    #[error("zstd: {0}")]
    Compression(std::io::Error),
}

impl StoreError {
    /// Stable, low-cardinality label for metrics and error counts.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Io(e) if is_disk_full(e) => "disk_full",
            StoreError::Io(_) => "io",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::UnsupportedVersion(_) => "unsupported_version",
            StoreError::UnsupportedColumn(_) => "unsupported_column",
            StoreError::Config(_) => "config",
            StoreError::Compression(_) => "compression",
        }
    }

    /// Whether the same operation may succeed later (disk space freed, a transient error):
    /// I/O errors only. Corrupt data and bad configuration stay that way.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }
}

/// ENOSPC or EDQUOT: the file system (or the user's quota) has no room left. Told apart from
/// other I/O errors because it is the one an operator fixes by freeing space, and the store
/// recovers by itself once there is room again.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122))
}
