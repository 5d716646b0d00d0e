//! Enrichment configuration. The collector's config file maps onto these structs (the TOML
//! schema and human durations live in `sluice-ingest`); [`crate::Enricher::new`] validates
//! them and names the bad key.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::locality::Prefix;

/// Everything enrichment needs to know. `Default` is a working set-up with no GeoIP: every
/// part but the GeoIP/AS lookups works without configuration.
#[derive(Clone, Debug)]
pub struct EnrichConfig {
    /// MaxMind City or Country database (GeoLite2-City.mmdb, GeoIP2-Country.mmdb, DB-IP's
    /// City Lite, ...). `None`: no geolocation, not an error.
    pub geoip_city: Option<PathBuf>,
    /// MaxMind ASN database (GeoLite2-ASN.mmdb; GeoIP2-ISP also works). `None`: no AS
    /// lookups, not an error.
    pub geoip_asn: Option<PathBuf>,
    /// Memory-map the databases instead of reading them into memory. Saves a copy per loaded
    /// database, but a file overwritten in place (`cp new.mmdb GeoLite2-City.mmdb`, as opposed
    /// to writing a new file and renaming it over the old one, as `geoipupdate` does) changes
    /// the bytes under the reader's feet, which may crash the process. Off by default.
    pub geoip_mmap: bool,
    /// Check every database completely (search tree and every data record) before using it,
    /// so a corrupt file is refused at load instead of failing lookups later. Takes about a
    /// second for a full City database. On by default.
    pub geoip_verify: bool,
    /// How often [`crate::Enricher::maybe_reload`] looks at the files' size, mtime and inode
    /// for a new version. Zero: never (only [`crate::Enricher::reload_now`]).
    pub reload_interval: Duration,
    /// Entries of each core's address cache (rounded up to a power of two; 32 bytes each;
    /// default 32768, 1 MiB per core: about 91% hits on a Zipf(1.1) mix of 100k addresses,
    /// see `benches/enrich.rs`).
    pub cache_entries: usize,
    /// Compute `network.community_id` (one SHA-1 per flow, about 80 ns).
    pub community_id: bool,
    /// Seed of the Community ID hash (the spec's default is 0; change it only if every other
    /// tool computing IDs for the same traffic uses the same seed).
    pub community_id_seed: u16,
    /// Networks counted as internal for `network.direction`, besides private, CGNAT, ULA,
    /// loopback and link-local space (for example a public range used inside).
    pub internal_networks: Vec<Prefix>,
    /// Per-exporter settings.
    pub exporters: Vec<ExporterConfig>,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            geoip_city: None,
            geoip_asn: None,
            geoip_mmap: false,
            geoip_verify: true,
            reload_interval: Duration::from_secs(5),
            cache_entries: 1 << 15,
            community_id: true,
            community_id_seed: 0,
            internal_networks: Vec::new(),
            exporters: Vec::new(),
        }
    }
}

/// Settings of one exporter, matched by its address (any source port; an IPv4 exporter seen
/// on a dual-stack socket as `::ffff:a.b.c.d` matches `a.b.c.d`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    /// Exporter address.
    pub address: IpAddr,
    /// Name shown as `observer.name`.
    pub name: Option<String>,
    /// Sampling interval (1 in N packets) to use for this exporter's flows, whatever the
    /// records or options data say (for exporters that sample but do not say so).
    pub sampling_interval: Option<u32>,
    /// Interface names and descriptions; they win over what the exporter's options data say.
    pub interfaces: Vec<InterfaceConfig>,
}

/// Name and description of one interface of an exporter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// ifIndex (IE 10/14 in flows).
    pub index: u32,
    /// Interface name (`Gi0/0/1`).
    pub name: Option<String>,
    /// Interface description (`uplink to ISP A`).
    pub description: Option<String>,
}
