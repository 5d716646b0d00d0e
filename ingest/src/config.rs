//! Configuration: the embedded defaults (`sluice.default.toml`), overridden by a TOML file
//! given with `--config`. Unknown keys are errors that name the key; values are checked at
//! start-up so a bad file fails before any socket is bound.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The defaults, as shipped.
pub const DEFAULT_TOML: &str = include_str!("sluice.default.toml");

/// A duration written as `500ms`, `30s`, `15m`, `2h`, `7d`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `500ms`, `30s`, `15m`, `2h`, `7d`, `1w` and sums like `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("bad duration {s:?}: expected a number"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ns: u128 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => {
                return Err(format!(
                    "bad duration {s:?}: unit must be ms, s, m, h, d or w"
                ))
            }
        };
        total = total
            .checked_add(n.checked_mul(ns).ok_or("duration too long")?)
            .ok_or("duration too long")?;
    }
    let total = u64::try_from(total).map_err(|_| "duration too long".to_string())?;
    Ok(Duration::from_nanos(total))
}

/// A size written as `512KiB`, `32MiB`, `10GiB`, `1000`, `0B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(HumanSize(n)),
            Raw::S(s) => parse_size(&s)
                .map(HumanSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a byte size with an optional binary (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB,
/// TB) unit.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(format!("bad size {s:?}: expected a number"));
    }
    let n: u64 = t[..digits].parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        u => return Err(format!("bad size {s:?}: unknown unit {u:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// Protocols a listener decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// NetFlow v5, v9 and IPFIX, by the version field.
    Netflow,
    /// sFlow v5.
    Sflow,
    /// Firewall syslog (RFC 3164/5424; netfilter/EdgeOS, Cisco ASA, PAN-OS).
    Syslog,
}

/// How a listener receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP datagrams (every protocol).
    #[default]
    Udp,
    /// TCP streams with RFC 6587 framing (syslog only).
    Tcp,
    /// TLS over TCP, RFC 5425 (syslog only).
    Tls,
}

fn default_max_line() -> HumanSize {
    HumanSize(32 << 10)
}

fn default_max_connections() -> usize {
    1024
}

/// One listener.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Name used as the `listener` metric label.
    pub name: String,
    /// Address and port; `[::]` is dual-stack.
    pub address: SocketAddr,
    /// What it decodes.
    pub protocol: Protocol,
    /// Exporters allowed to send (addresses or CIDRs); empty allows everyone. Datagrams from
    /// others are counted (`sluice_receive_denied_total`) and dropped before decoding; TCP
    /// connections from others are closed (and counted the same way).
    #[serde(default)]
    pub allow: Vec<Cidr>,
    /// `udp` (default), `tcp` or `tls`; the stream transports are for syslog.
    #[serde(default)]
    pub transport: Transport,
    /// Syslog: longest message kept; longer ones are cut there and counted
    /// (`sluice_syslog_framing_errors_total{reason="too_long"}`). At most 65535 bytes
    /// (the longest value a record field holds).
    #[serde(default = "default_max_line")]
    pub max_line: HumanSize,
    /// Syslog over TCP/TLS: connections served at once; more are refused and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Syslog over TLS: certificate chain (PEM).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Syslog over TLS: private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl Listener {
    /// Whether it is a TCP or TLS (stream) listener.
    pub fn is_stream(&self) -> bool {
        self.transport != Transport::Udp
    }
}

/// An address block, `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits cleared), IPv6 form (IPv4 as v4-mapped).
    net: u128,
    /// Prefix length over the 128-bit form.
    len: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/LEN`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
        let (bits, max) = match addr {
            IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 32u8),
            IpAddr::V6(v6) => (u128::from(v6), 128u8),
        };
        let plen: u8 = match l {
            Some(l) => l
                .trim()
                .parse()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
            None => max,
        };
        let len = if max == 32 { plen + 96 } else { plen };
        Ok(Cidr {
            net: bits & Self::mask(len),
            len,
        })
    }

    fn mask(len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        }
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = match ip {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        bits & Self::mask(self.len) == self.net
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[receive]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receive {
    /// Receive threads; 0 = one per core.
    pub workers: usize,
    /// Requested SO_RCVBUF.
    pub recv_buffer: HumanSize,
    /// Datagrams per recvmmsg.
    pub batch: usize,
}

impl Default for Receive {
    fn default() -> Self {
        Receive {
            workers: 0,
            recv_buffer: HumanSize(32 << 20),
            batch: 64,
        }
    }
}

/// `[decode]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Decode {
    /// Template expiry.
    pub template_timeout: HumanDuration,
    /// Templates per exporter scope.
    pub max_templates_per_exporter: usize,
    /// Held data per exporter scope.
    pub max_held_bytes_per_exporter: HumanSize,
    /// Exporter scopes per receive thread.
    pub max_exporters: usize,
}

impl Default for Decode {
    fn default() -> Self {
        Decode {
            template_timeout: HumanDuration(Duration::from_secs(7200)),
            max_templates_per_exporter: 1024,
            max_held_bytes_per_exporter: HumanSize(256 << 10),
            max_exporters: 16_384,
        }
    }
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Keep flows in the local store (the embedded default sink). With it off, and
    /// Elasticsearch on, the data directory still holds templates and the spool.
    pub enabled: bool,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Partition length.
    pub partition: HumanDuration,
    /// Retention by age; 0 keeps everything.
    pub retention: HumanDuration,
    /// Retention by size; 0 is no limit.
    pub max_size: HumanSize,
    /// Flush interval.
    pub flush_interval: HumanDuration,
    /// zstd level.
    pub zstd_level: i32,
    /// Keep each flow's enrichment (exporter and interface names, geo, AS, sampling) in the
    /// store as it was when the flow arrived, so that `dump` shows it whatever the databases
    /// and options data are later.
    pub enrich: bool,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            enabled: true,
            data_dir: PathBuf::from("./sluice-data"),
            partition: HumanDuration(Duration::from_secs(3600)),
            retention: HumanDuration(Duration::from_secs(7 * 86_400)),
            max_size: HumanSize(0),
            flush_interval: HumanDuration(Duration::from_secs(1)),
            zstd_level: 3,
            enrich: true,
        }
    }
}

/// One exporter's settings under `[[enrich.exporter]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterSettings {
    /// Exporter address.
    pub address: IpAddr,
    /// Name shown as `observer.name`.
    #[serde(default)]
    pub name: Option<String>,
    /// Sampling interval to apply whatever the exporter says (1 in N).
    #[serde(default)]
    pub sampling_interval: Option<u32>,
    /// Interface names: `{ index = 3, name = "eth0", description = "uplink" }`.
    #[serde(default)]
    pub interfaces: Vec<InterfaceSettings>,
}

/// An interface name from the config.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSettings {
    /// ifIndex.
    pub index: u32,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[enrich]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Enrich {
    /// MaxMind (or compatible) City or Country database; none means no geo fields.
    pub geoip_city: Option<PathBuf>,
    /// MaxMind (or compatible) ASN database; none means AS numbers from the records only.
    pub geoip_asn: Option<PathBuf>,
    /// Compute `network.community_id`.
    pub community_id: bool,
    /// Networks that count as internal for `network.direction` (besides private ranges).
    pub internal_networks: Vec<String>,
    /// Per-exporter names, sampling overrides and interface names.
    #[serde(rename = "exporter")]
    pub exporters: Vec<ExporterSettings>,
}

impl Default for Enrich {
    fn default() -> Self {
        Enrich {
            geoip_city: None,
            geoip_asn: None,
            community_id: true,
            internal_networks: Vec::new(),
            exporters: Vec::new(),
        }
    }
}

impl Enrich {
    /// The enrichment crate's configuration.
    pub fn to_enrich_config(&self) -> Result<sluice_enrich::EnrichConfig, String> {
        let mut c = sluice_enrich::EnrichConfig {
            geoip_city: self.geoip_city.clone(),
            geoip_asn: self.geoip_asn.clone(),
            community_id: self.community_id,
            ..sluice_enrich::EnrichConfig::default()
        };
        for n in &self.internal_networks {
            c.internal_networks.push(
                n.parse()
                    .map_err(|_| format!("enrich.internal_networks: {n:?} is not a CIDR"))?,
            );
        }
        for e in &self.exporters {
            c.exporters.push(sluice_enrich::ExporterConfig {
                address: e.address,
                name: e.name.clone(),
                sampling_interval: e.sampling_interval,
                interfaces: e
                    .interfaces
                    .iter()
                    .map(|i| sluice_enrich::InterfaceConfig {
                        index: i.index,
                        name: i.name.clone(),
                        description: i.description.clone(),
                    })
                    .collect(),
            });
        }
        Ok(c)
    }
}

/// `[elasticsearch]`: ship enriched documents to Elasticsearch 8 or OpenSearch 2/3.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Elasticsearch {
    /// Ship to Elasticsearch at all.
    pub enabled: bool,
    /// Cluster URLs (http:// or https://), tried in turn.
    pub urls: Vec<String>,
    /// Index name with strftime-style date parts of the document's @timestamp (UTC).
    pub index: String,
    /// Write into this data stream instead of daily indices (Elasticsearch only).
    pub data_stream: Option<String>,
    /// CA certificate file (PEM) to trust for https.
    pub ca_file: Option<PathBuf>,
    /// Verify the server's certificate; turning it off logs a warning.
    pub tls_verify: bool,
    /// Documents per bulk request.
    pub batch_docs: usize,
    /// A partial bulk request is sent after this long.
    pub flush_interval: HumanDuration,
    /// Bulk requests in flight.
    pub max_in_flight: usize,
    /// gzip level of request bodies (Elasticsearch takes gzip, not zstd).
    pub gzip_level: u32,
    /// What compresses at levels 1 and 2: `auto` (ISA-L when `libisal.so.2` is installed,
    /// about twice as fast as zlib-rs and tighter; zlib-rs otherwise), `isal` (required) or
    /// `zlib-rs`. Levels 3 to 9 always use zlib-rs.
    pub gzip_library: sluice_sink::es::GzipLibrary,
    /// Disk spool for what cannot be shipped while the cluster is slow or down.
    pub spool_max_size: HumanSize,
    /// How long indices are kept (ILM / ISM policy); 0s: no policy.
    pub retention: HumanDuration,
}

impl Default for Elasticsearch {
    fn default() -> Self {
        Elasticsearch {
            enabled: false,
            urls: vec!["http://127.0.0.1:9200".into()],
            index: "sluice-flows-%Y.%m.%d".into(),
            data_stream: None,
            ca_file: None,
            tls_verify: true,
            batch_docs: 5000,
            flush_interval: HumanDuration(Duration::from_secs(1)),
            max_in_flight: 4,
            gzip_level: 1,
            gzip_library: sluice_sink::es::GzipLibrary::Auto,
            spool_max_size: HumanSize(10 << 30),
            retention: HumanDuration(Duration::from_secs(30 * 86_400)),
        }
    }
}

/// One `[[forward]]` table: every datagram the listeners accept is also sent, unchanged, to
/// another collector (see `forward.rs`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// Name used as the `target` metric label; default: the address.
    #[serde(default)]
    pub name: Option<String>,
    /// Where to send, `HOST:PORT` (an address, not a name).
    pub address: SocketAddr,
    /// Listeners (by name) whose datagrams are forwarded; empty: all of them.
    #[serde(default)]
    pub listeners: Vec<String>,
    /// Send with the exporter's own source address and port (a raw socket: needs
    /// CAP_NET_RAW); without the privilege, or when the families differ, datagrams go out
    /// from Sluice's own address and that is logged and counted.
    #[serde(default = "default_true")]
    pub preserve_source: bool,
    /// Datagrams queued for this target before receive threads start dropping (and counting)
    /// them instead of waiting: `queue / 64` batches of up to 64 datagrams each.
    #[serde(default = "default_forward_queue")]
    pub queue: usize,
}

fn default_true() -> bool {
    true
}

fn default_forward_queue() -> usize {
    16_384
}

impl Forward {
    /// The metric label.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Address of /metrics and /healthz.
    pub address: SocketAddr,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            address: SocketAddr::from(([127, 0, 0, 1], 9155)),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP listeners.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Receive settings.
    #[serde(default)]
    pub receive: Receive,
    /// Decoder settings.
    #[serde(default)]
    pub decode: Decode,
    /// Local store.
    #[serde(default)]
    pub store: Store,
    /// Enrichment.
    #[serde(default)]
    pub enrich: Enrich,
    /// Elasticsearch / OpenSearch sink.
    #[serde(default)]
    pub elasticsearch: Elasticsearch,
    /// Metrics endpoint.
    #[serde(default)]
    pub metrics: Metrics,
    /// Collectors every received datagram is also sent to.
    #[serde(default, rename = "forward")]
    pub forwards: Vec<Forward>,
}

/// A configuration error with the file it came from.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The embedded defaults.
    pub fn defaults() -> Config {
        match Self::parse(DEFAULT_TOML, "embedded defaults") {
            Ok(c) => c,
            // The defaults are checked by a test; a broken build must not start.
            Err(e) => panic!("embedded defaults do not parse: {e}"),
        }
    }

    /// Parses a TOML text: a file gives only the keys it changes; tables it names replace the
    /// defaults key by key, and `[[listener]]` tables, if any, replace the default listeners.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        let cfg = if cfg.listeners.is_empty() && origin != "embedded defaults" {
            Config {
                listeners: Self::defaults().listeners,
                ..cfg
            }
        } else {
            cfg
        };
        cfg.validate()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Checks values serde cannot: each error names its key.
    pub fn validate(&self) -> Result<(), String> {
        if self.listeners.is_empty() {
            return Err("listener: at least one listener is needed".into());
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.name.is_empty()
                || !l
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "listener[{i}].name: use letters, digits, '_' or '-'"
                ));
            }
            if self.listeners[..i].iter().any(|o| o.name == l.name) {
                return Err(format!("listener[{i}].name: {:?} is used twice", l.name));
            }
            if self.listeners[..i]
                .iter()
                .any(|o| o.address == l.address && o.is_stream() == l.is_stream())
            {
                return Err(format!(
                    "listener[{i}].address: {} is used twice",
                    l.address
                ));
            }
            if l.is_stream() && l.protocol != Protocol::Syslog {
                return Err(format!(
                    "listener[{i}].transport: tcp and tls are for protocol = \"syslog\""
                ));
            }
            if l.max_line.0 == 0 || l.max_line.0 > 65_535 {
                return Err(format!("listener[{i}].max_line: 1 to 65535 bytes"));
            }
            if l.max_connections == 0 {
                return Err(format!("listener[{i}].max_connections: at least 1"));
            }
            match (l.transport, &l.tls_cert, &l.tls_key) {
                (Transport::Tls, Some(_), Some(_))
                | (Transport::Udp | Transport::Tcp, None, None) => {}
                (Transport::Tls, _, _) => {
                    return Err(format!(
                        "listener[{i}].tls_cert: transport = \"tls\" needs tls_cert and tls_key"
                    ))
                }
                _ => {
                    return Err(format!(
                        "listener[{i}].tls_cert: tls_cert and tls_key are for transport = \"tls\""
                    ))
                }
            }
        }
        if self.receive.batch == 0 || self.receive.batch > 1024 {
            return Err("receive.batch: must be 1 to 1024".into());
        }
        if self.receive.workers > 256 {
            return Err("receive.workers: at most 256".into());
        }
        if self.decode.max_templates_per_exporter == 0 {
            return Err("decode.max_templates_per_exporter: must be at least 1".into());
        }
        if self.decode.max_exporters == 0 {
            return Err("decode.max_exporters: must be at least 1".into());
        }
        if self.store.partition.0 < Duration::from_secs(60) {
            return Err("store.partition: at least 1m".into());
        }
        if self.store.flush_interval.0.is_zero()
            || self.store.flush_interval.0 > Duration::from_secs(60)
        {
            return Err("store.flush_interval: between 1ms and 60s".into());
        }
        if !(1..=19).contains(&self.store.zstd_level) {
            return Err("store.zstd_level: 1 to 19".into());
        }
        self.enrich.to_enrich_config()?;
        if !self.store.enabled && !self.elasticsearch.enabled {
            return Err("store.enabled: with Elasticsearch off too, flows would go nowhere".into());
        }
        if self.elasticsearch.enabled {
            if self.elasticsearch.urls.is_empty() {
                return Err("elasticsearch.urls: at least one URL".into());
            }
            for u in &self.elasticsearch.urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(format!("elasticsearch.urls: {u:?} is not an http(s) URL"));
                }
            }
            if self.elasticsearch.batch_docs == 0 {
                return Err("elasticsearch.batch_docs: at least 1".into());
            }
        }
        self.validate_forwards()
    }

    fn validate_forwards(&self) -> Result<(), String> {
        for (i, f) in self.forwards.iter().enumerate() {
            if f.address.ip().is_unspecified() || f.address.port() == 0 {
                return Err(format!(
                    "forward[{i}].address: a host and a port to send to"
                ));
            }
            for l in &f.listeners {
                if !self.listeners.iter().any(|x| &x.name == l) {
                    return Err(format!("forward[{i}].listeners: no listener named {l:?}"));
                }
            }
            if !(64..=1 << 24).contains(&f.queue) {
                return Err(format!("forward[{i}].queue: 64 to 16777216 datagrams"));
            }
            if self.forwards[..i].iter().any(|o| o.label() == f.label()) {
                return Err(format!("forward[{i}].name: {:?} is used twice", f.label()));
            }
        }
        Ok(())
    }

    /// Receive threads to start.
    pub fn workers(&self) -> usize {
        match self.receive.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_match_the_documented_values() {
        let c = Config::defaults();
        assert_eq!(c.listeners.len(), 5);
        assert_eq!(c.listeners[2].address, "[::]:6343".parse().expect("addr"));
        assert_eq!(c.listeners[3].address, "[::]:5514".parse().expect("addr"));
        assert_eq!(c.listeners[3].protocol, Protocol::Syslog);
        assert_eq!(c.listeners[3].transport, Transport::Udp);
        assert_eq!(c.listeners[4].address, "[::]:5514".parse().expect("addr"));
        assert_eq!(c.listeners[4].transport, Transport::Tcp);
        assert_eq!(c.listeners[4].max_line, HumanSize(32 << 10));
        assert_eq!(c.listeners[0].address, "[::]:2055".parse().expect("addr"));
        assert_eq!(c.listeners[1].address, "[::]:4739".parse().expect("addr"));
        assert_eq!(c.store.data_dir, PathBuf::from("./sluice-data"));
        assert_eq!(c.metrics.address, "127.0.0.1:9155".parse().expect("addr"));
        // The struct defaults agree with the embedded file, so a partial file means the same
        // thing whichever way a value was left out.
        assert_eq!(c.receive, Receive::default());
        assert_eq!(c.decode, Decode::default());
        assert_eq!(c.store, Store::default());
        assert_eq!(c.metrics, Metrics::default());
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let c = Config::parse("[store]\ndata_dir = \"/tmp/x\"\n", "t").expect("parses");
        assert_eq!(c.store.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.listeners.len(), 5);
        assert_eq!(c.listeners[2].address, "[::]:6343".parse().expect("addr"));
        assert_eq!(
            c.store.retention,
            HumanDuration(Duration::from_secs(7 * 86_400))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[store]\ndata_dri = \"x\"\n", "f.toml").expect_err("unknown key");
        assert!(e.0.contains("data_dri"), "{e}");
        let e = Config::parse("[receive]\nbatch = 0\n", "f.toml").expect_err("bad value");
        assert!(e.0.contains("receive.batch"), "{e}");
        let e = Config::parse("[store]\nretention = \"7 days\"\n", "f.toml").expect_err("bad dur");
        assert!(e.0.contains("retention"), "{e}");
        let e = Config::parse(
            "[[listener]]\nname = \"a\"\naddress = \"x\"\nprotocol = \"netflow\"\n",
            "f.toml",
        )
        .expect_err("bad address");
        assert!(e.0.contains("address"), "{e}");
    }

    #[test]
    fn allowlists() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(c.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        let c = Cidr::parse("2001:db8::/32").expect("cidr");
        assert!(c.contains("2001:db8::1".parse().expect("ip")));
        assert!(!c.contains("10.0.0.1".parse().expect("ip")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let cfg = Config::parse(
            "[[listener]]\nname = \"a\"\naddress = \"[::]:2055\"\nprotocol = \"netflow\"\nallow = [\"192.0.2.0/24\", \"2001:db8::1\"]\n",
            "t",
        )
        .expect("parses");
        assert_eq!(cfg.listeners[0].allow.len(), 2);
        let e = Config::parse(
            "[[listener]]\nname = \"a\"\naddress = \"[::]:2055\"\nprotocol = \"netflow\"\nallow = [\"192.0.2.0/40\"]\n",
            "f.toml",
        )
        .expect_err("bad prefix");
        assert!(e.0.contains("allow") || e.0.contains("prefix"), "{e}");
    }

    #[test]
    fn syslog_listeners() {
        let udp_tcp = "[[listener]]\nname = \"u\"\naddress = \"[::]:5514\"\nprotocol = \"syslog\"\n\n[[listener]]\nname = \"t\"\naddress = \"[::]:5514\"\nprotocol = \"syslog\"\ntransport = \"tcp\"\nmax_line = \"8KiB\"\n";
        let c = Config::parse(udp_tcp, "t").expect("UDP and TCP may share a port");
        assert_eq!(c.listeners[1].max_line, HumanSize(8 << 10));
        let e = Config::parse(
            "[[listener]]\nname = \"n\"\naddress = \"[::]:2055\"\nprotocol = \"netflow\"\ntransport = \"tcp\"\n",
            "f.toml",
        )
        .expect_err("netflow over tcp");
        assert!(e.0.contains("listener[0].transport"), "{e}");
        let e = Config::parse(
            "[[listener]]\nname = \"s\"\naddress = \"[::]:6514\"\nprotocol = \"syslog\"\ntransport = \"tls\"\n",
            "f.toml",
        )
        .expect_err("tls without a certificate");
        assert!(e.0.contains("tls_cert"), "{e}");
        let e = Config::parse(
            "[[listener]]\nname = \"s\"\naddress = \"[::]:5514\"\nprotocol = \"syslog\"\nmax_line = \"1MiB\"\n",
            "f.toml",
        )
        .expect_err("line too long for a record");
        assert!(e.0.contains("max_line"), "{e}");
    }

    #[test]
    fn forwards() {
        let c = Config::parse(
            "[[forward]]\naddress = \"192.0.2.10:2055\"\n\n[[forward]]\nname = \"nfcapd\"\naddress = \"[2001:db8::1]:9995\"\nlisteners = [\"ipfix\"]\npreserve_source = false\nqueue = 1024\n",
            "t",
        )
        .expect("parses");
        assert_eq!(c.forwards.len(), 2);
        assert!(c.forwards[0].preserve_source);
        assert_eq!(c.forwards[0].queue, 16_384);
        assert_eq!(c.forwards[0].label(), "192.0.2.10:2055");
        assert_eq!(c.forwards[1].label(), "nfcapd");
        assert!(Config::defaults().forwards.is_empty());
        for (bad, key) in [
            ("[[forward]]\naddress = \"0.0.0.0:2055\"\n", "forward[0].address"),
            ("[[forward]]\naddress = \"192.0.2.1:2055\"\nlisteners = [\"nope\"]\n", "forward[0].listeners"),
            ("[[forward]]\naddress = \"192.0.2.1:2055\"\nqueue = 1\n", "forward[0].queue"),
            ("[[forward]]\naddress = \"192.0.2.1:2055\"\nspoof = true\n", "spoof"),
            ("[[forward]]\naddress = \"192.0.2.1:2055\"\n[[forward]]\naddress = \"192.0.2.1:2055\"\n", "forward[1].name"),
        ] {
            let e = Config::parse(bad, "f.toml").expect_err(bad);
            assert!(e.0.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("0B"), Ok(0));
        assert!(parse_size("12 parsecs").is_err());
    }
}
