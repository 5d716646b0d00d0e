//! Errors of the load generator's library part.

use sluice_decode::pcap::PcapError;

/// Why a capture cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Pcap(#[from] PcapError),
    /// Nothing in the capture is NetFlow v5, v9 or IPFIX.
    #[error(
        "no NetFlow v5/v9 or IPFIX datagram in the capture ({udp} UDP datagrams: {other} of \
         another protocol, {malformed} with a broken NetFlow header, {truncated} cut by snaplen)"
    )]
    NoNetflow {
        udp: u64,
        other: u64,
        malformed: u64,
        truncated: u64,
    },
}

impl LoadError {
    /// Stable, low-cardinality label.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::Pcap(e) => e.reason(),
            LoadError::NoNetflow { .. } => "no_netflow",
        }
    }
}
