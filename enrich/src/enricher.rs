//! [`Enricher`] (shared, read-only but for database swaps) and [`Enriched`] (one flow's
//! results, reused from flow to flow).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use rustc_hash::FxHashMap;
use sluice_decode::{Flow, Record, ScopeTables};

use crate::cache::{CoreCache, NO_RECORD};
use crate::community_id::{community_id, CommunityId};
use crate::config::EnrichConfig;
use crate::direction::{network_direction, server_side, Side, Zone};
use crate::error::{DbKind, EnrichError};
use crate::fields::{self, ExtraFields};
use crate::geoip::{self, AsInfo, Db, FileStamp, GeoInfo, GeoTables};
use crate::learned::{IfTexts, Kept, Learned};
use crate::locality::{locality, Locality, Prefix};
use crate::names::{self, PROTO_ICMP, PROTO_ICMPV6};

/// One end as looked up: (canonical address and its locality, (geo index, AS index)).
type Found = (Option<(IpAddr, Locality)>, (u32, u32));

static NEXT_ENRICHER_ID: AtomicU64 = AtomicU64::new(1);

/// A text value copied into a buffer that keeps its capacity from flow to flow, so setting it
/// allocates only when a longer value than ever before comes along.
#[derive(Clone, Debug, Default)]
pub struct Text {
    buf: String,
    set: bool,
}

impl Text {
    /// The value, if set.
    pub fn get(&self) -> Option<&str> {
        self.set.then_some(self.buf.as_str())
    }

    fn assign(&mut self, v: Option<&str>) {
        self.buf.clear();
        match v {
            Some(s) => {
                self.buf.push_str(s);
                self.set = true;
            }
            None => self.set = false,
        }
    }
}

/// One end of a flow.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    /// Address from the record.
    pub ip: Option<IpAddr>,
    /// Port from the record (for ICMP, whatever the exporter put there).
    pub port: Option<u16>,
    /// Kind of address.
    pub locality: Option<Locality>,
    /// AS number: the AS database's, else the record's own (IE 16/17) if non-zero.
    pub as_number: Option<u32>,
    /// Address after NAT (IE 225/226, 281/282).
    pub nat_ip: Option<IpAddr>,
    /// Port after NAPT (IE 227/228).
    pub nat_port: Option<u16>,
    geo: u32,
    asn: u32,
}

/// An interface of the exporter.
#[derive(Clone, Debug, Default)]
pub struct Interface {
    /// ifIndex from the record.
    pub index: Option<u32>,
    /// Name, from the exporter's config or its options data.
    pub name: Text,
    /// Description, from the exporter's config or its options data.
    pub description: Text,
}

/// Where the sampling interval came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplingSource {
    /// The exporter's `sampling_interval` in the config.
    Config,
    /// The record itself (IE 34/50/305+306, or the v5 header).
    Record,
    /// The scope's sampler table, through the record's sampler id (IE 48/302).
    Sampler,
    /// The scope's sampling interval announced without a sampler id.
    Scope,
}

impl SamplingSource {
    /// `config`, `record`, `sampler`, `scope`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SamplingSource::Config => "config",
            SamplingSource::Record => "record",
            SamplingSource::Sampler => "sampler",
            SamplingSource::Scope => "scope",
        }
    }
}

/// What enrichment adds to one flow. Reuse one value across flows: [`Enricher::enrich`]
/// overwrites every field, and in steady state nothing is allocated.
#[derive(Clone, Debug, Default)]
pub struct Enriched {
    tables: Option<Arc<GeoTables>>,
    /// Set by [`Enricher::enrich_kept`]: geo and AS come from `kept_geo`/`kept_as`.
    from_kept: bool,
    /// Source and destination geolocation as kept (shared strings: cloning counts references).
    kept_geo: [Option<GeoInfo>; 2],
    /// Source and destination AS as kept.
    kept_as: [Option<AsInfo>; 2],
    /// `observer.name`: the exporter's name from the config.
    pub exporter_name: Text,
    /// Source end.
    pub source: Endpoint,
    /// Destination end.
    pub destination: Endpoint,
    /// `network.transport`: IANA protocol keyword (`tcp`, `udp`, `ipv6-icmp`).
    pub transport: Option<&'static str>,
    /// `network.protocol`: service name of the server's port (`https`, `dns`).
    pub service: Option<&'static str>,
    /// `network.direction`: `ingress`/`egress` from the record, else `inbound`, `outbound`,
    /// `internal`, `external` from the endpoints (see [`crate::direction`]).
    pub direction: Option<&'static str>,
    /// Which end is the server (see [`crate::direction`]).
    pub server: Option<Side>,
    /// ICMP/ICMPv6 type and code.
    pub icmp: Option<(u8, u8)>,
    /// TCP flag names (`SYN`, `ACK`, ...), empty when none or not TCP.
    pub tcp_flags: &'static [&'static str],
    /// `network.community_id`.
    pub community_id: Option<CommunityId>,
    /// Sampling interval applied (1 in N).
    pub sampling_interval: Option<u32>,
    /// Where it came from.
    pub sampling_source: Option<SamplingSource>,
    /// Forward bytes scaled by the sampling interval (the raw count stays in `netflow.*`).
    pub bytes: Option<u64>,
    /// Forward packets, scaled.
    pub packets: Option<u64>,
    /// Reverse (biflow / NSEL responder) bytes, scaled.
    pub rev_bytes: Option<u64>,
    /// Reverse packets, scaled.
    pub rev_packets: Option<u64>,
    /// Input interface.
    pub in_if: Interface,
    /// Output interface.
    pub out_if: Interface,
}

impl Enriched {
    /// Endpoint `side` (0 source, 1 destination).
    fn end(&self, side: usize) -> &Endpoint {
        if side == 0 {
            &self.source
        } else {
            &self.destination
        }
    }

    fn geo_of(&self, side: usize) -> Option<&GeoInfo> {
        if self.from_kept {
            return self.kept_geo[side].as_ref();
        }
        let e = self.end(side);
        if e.geo == NO_RECORD {
            return None;
        }
        self.tables.as_ref()?.geo(e.geo)
    }

    fn as_of(&self, side: usize) -> Option<&AsInfo> {
        if self.from_kept {
            return self.kept_as[side].as_ref();
        }
        let e = self.end(side);
        if e.asn == NO_RECORD {
            return None;
        }
        self.tables.as_ref()?.asn(e.asn)
    }

    /// Geolocation of the source address.
    pub fn source_geo(&self) -> Option<&GeoInfo> {
        self.geo_of(0)
    }

    /// Geolocation of the destination address.
    pub fn destination_geo(&self) -> Option<&GeoInfo> {
        self.geo_of(1)
    }

    /// AS database record of the source address (number and organization).
    pub fn source_as(&self) -> Option<&AsInfo> {
        self.as_of(0)
    }

    /// AS database record of the destination address.
    pub fn destination_as(&self) -> Option<&AsInfo> {
        self.as_of(1)
    }

    /// The database snapshot the geo and AS records of this flow come from, for callers that
    /// intern them (the local store): the addresses of the records [`Enriched::source_geo`]
    /// and co. return are stable, and identify them, for as long as the snapshot lives.
    /// `None` for values from [`Enricher::enrich_kept`] (which live in `self`).
    pub fn databases(&self) -> Option<&Arc<GeoTables>> {
        if self.from_kept {
            return None;
        }
        self.tables.as_ref()
    }

    /// The values the local store keeps of this flow (see [`Kept`]).
    pub fn kept(&self) -> Kept<'_> {
        let end = |side: usize| crate::learned::KeptEnd {
            geo: self.geo_of(side),
            as_number: self.end(side).as_number,
            as_organization: self.as_of(side).and_then(|a| a.organization.as_ref()),
        };
        fn texts(i: &Interface) -> IfTexts<'_> {
            IfTexts {
                name: i.name.get(),
                description: i.description.get(),
            }
        }
        Kept {
            exporter_name: self.exporter_name.get(),
            source: end(0),
            destination: end(1),
            sampling: self.sampling_interval.zip(self.sampling_source),
            in_if: texts(&self.in_if),
            out_if: texts(&self.out_if),
        }
    }

    /// The server end, if known.
    pub fn server_endpoint(&self) -> Option<&Endpoint> {
        self.server.map(|s| match s {
            Side::Source => &self.source,
            Side::Destination => &self.destination,
        })
    }

    /// The client end, if known.
    pub fn client_endpoint(&self) -> Option<&Endpoint> {
        self.server.map(|s| match s {
            Side::Source => &self.destination,
            Side::Destination => &self.source,
        })
    }
}

/// An interface's configured texts.
#[derive(Debug, Default)]
struct IfaceNames {
    name: Option<Box<str>>,
    description: Option<Box<str>>,
}

#[derive(Debug)]
struct ExporterEntry {
    name: Option<Box<str>>,
    sampling_interval: Option<u32>,
    interfaces: FxHashMap<u32, IfaceNames>,
}

/// Reload bookkeeping, behind a mutex (only the thread that checks takes it).
#[derive(Debug)]
struct ReloadState {
    city: Option<std::path::PathBuf>,
    asn: Option<std::path::PathBuf>,
    mmap: bool,
    verify: bool,
    failed_city: Failed,
    failed_asn: Failed,
    last_error: Option<String>,
}

/// What went wrong with a database file last time, so that the same failure is reported
/// once, not at every check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Failed {
    #[default]
    No,
    /// This version failed to load; not retried until the file changes.
    Version(FileStamp),
    /// The file could not be looked at (gone, or mid-replacement).
    Missing,
}

/// Counters of the enricher itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnricherStats {
    /// Database swaps done (a new file version loaded).
    pub reloads: u64,
    /// New file versions that failed to load (the old one stays in use).
    pub reload_failures: u64,
}

/// Enrichment tables shared by every core: the GeoIP databases (swapped whole on reload),
/// exporter settings and internal networks. `Send + Sync`; put it in an `Arc`. Each core
/// calls [`Enricher::cache`] once and passes its [`CoreCache`] to [`Enricher::enrich`].
pub struct Enricher {
    id: u64,
    current: RwLock<Arc<GeoTables>>,
    generation: AtomicU64,
    reload: Mutex<ReloadState>,
    start: Instant,
    next_check_ms: AtomicU64,
    check_interval_ms: u64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    exporters: Vec<ExporterEntry>,
    exporter_index: FxHashMap<IpAddr, u32>,
    /// Whether any configured exporter names interfaces.
    any_interfaces: bool,
    internal: Vec<Prefix>,
    cache_entries: usize,
    /// Community ID seed, or `None` when it is not computed.
    seed: Option<u16>,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("tables", &self.tables().describe())
            .field("exporters", &self.exporters.len())
            .finish()
    }
}

fn config_err(key: String, message: &str) -> EnrichError {
    EnrichError::Config {
        key,
        message: message.into(),
    }
}

impl Enricher {
    /// Loads the configured databases (none configured: no GeoIP, not an error) and indexes
    /// the exporter settings. A database that cannot be read or is not a valid MaxMind DB is
    /// an error naming the file.
    pub fn new(cfg: &EnrichConfig) -> Result<Enricher, EnrichError> {
        let mut exporters = Vec::with_capacity(cfg.exporters.len());
        let mut exporter_index = FxHashMap::default();
        for (i, e) in cfg.exporters.iter().enumerate() {
            let addr = e.address.to_canonical();
            if exporter_index.insert(addr, i as u32).is_some() {
                return Err(config_err(
                    format!("exporters[{i}].address"),
                    "another exporter has the same address",
                ));
            }
            if e.sampling_interval == Some(0) {
                return Err(config_err(
                    format!("exporters[{i}].sampling_interval"),
                    "must be at least 1",
                ));
            }
            let mut interfaces = FxHashMap::default();
            for (j, f) in e.interfaces.iter().enumerate() {
                let names = IfaceNames {
                    name: f.name.as_deref().map(Box::from),
                    description: f.description.as_deref().map(Box::from),
                };
                if interfaces.insert(f.index, names).is_some() {
                    return Err(config_err(
                        format!("exporters[{i}].interfaces[{j}].index"),
                        "interface listed twice",
                    ));
                }
            }
            exporters.push(ExporterEntry {
                name: e.name.as_deref().map(Box::from),
                sampling_interval: e.sampling_interval,
                interfaces,
            });
        }
        if cfg.cache_entries == 0 {
            return Err(config_err("cache_entries".into(), "must be at least 2"));
        }
        let city = cfg
            .geoip_city
            .as_deref()
            .map(|p| geoip::load_city(p, cfg.geoip_mmap, cfg.geoip_verify))
            .transpose()?;
        let asn = cfg
            .geoip_asn
            .as_deref()
            .map(|p| geoip::load_asn(p, cfg.geoip_mmap, cfg.geoip_verify))
            .transpose()?;
        let tables = GeoTables {
            city: city.map(Arc::new),
            asn: asn.map(Arc::new),
        };
        let check_interval_ms = cfg.reload_interval.as_millis().min(u128::from(u64::MAX)) as u64;
        Ok(Enricher {
            id: NEXT_ENRICHER_ID.fetch_add(1, Ordering::Relaxed),
            current: RwLock::new(Arc::new(tables)),
            generation: AtomicU64::new(0),
            reload: Mutex::new(ReloadState {
                city: cfg.geoip_city.clone(),
                asn: cfg.geoip_asn.clone(),
                mmap: cfg.geoip_mmap,
                verify: cfg.geoip_verify,
                failed_city: Failed::No,
                failed_asn: Failed::No,
                last_error: None,
            }),
            start: Instant::now(),
            next_check_ms: AtomicU64::new(check_interval_ms),
            check_interval_ms,
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            any_interfaces: exporters.iter().any(|e| !e.interfaces.is_empty()),
            exporters,
            exporter_index,
            internal: cfg.internal_networks.clone(),
            cache_entries: cfg.cache_entries,
            seed: cfg.community_id.then_some(cfg.community_id_seed),
        })
    }

    /// The databases in use now.
    pub fn tables(&self) -> Arc<GeoTables> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A new per-core cache.
    pub fn cache(&self) -> CoreCache {
        CoreCache::new(
            self.cache_entries,
            self.id,
            self.generation.load(Ordering::Acquire),
            self.tables(),
        )
    }

    /// Counters.
    pub fn stats(&self) -> EnricherStats {
        EnricherStats {
            reloads: self.reloads.load(Ordering::Relaxed),
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
        }
    }

    /// The last reload failure, if the newest file version of a database could not be loaded.
    pub fn last_reload_error(&self) -> Option<String> {
        self.reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error
            .clone()
    }

    /// Cheap unless `reload_interval` has passed since the last check: then looks at the
    /// database files and, if one changed (size, mtime or inode), loads it and swaps it in.
    /// Returns whether a new version is in use. Loading a full City database takes a second
    /// or so on the calling thread, so call this from a housekeeping thread rather than a
    /// receive loop; cores pick the new tables up on their next [`Enricher::enrich`]. A file
    /// that fails to load leaves the old version in use ([`Enricher::last_reload_error`]) and
    /// is retried only once it changes again.
    pub fn maybe_reload(&self) -> bool {
        if self.check_interval_ms == 0 {
            return false;
        }
        let now = self.start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        let due = self.next_check_ms.load(Ordering::Relaxed);
        if now < due {
            return false;
        }
        // One thread checks; the others go on.
        if self
            .next_check_ms
            .compare_exchange(
                due,
                now.saturating_add(self.check_interval_ms),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        matches!(self.reload_now(), Ok(true))
    }

    /// Checks the database files now and loads those that changed. `Ok(true)`: a new version
    /// is in use. `Err`: a changed file failed to load (another that loaded is still swapped
    /// in; the failed one keeps its old version).
    pub fn reload_now(&self) -> Result<bool, EnrichError> {
        let mut st = self.reload.lock().unwrap_or_else(PoisonError::into_inner);
        let cur = self.tables();
        let mut first_err = None;
        let state = &mut *st;
        let city = check_one(
            DbKind::City,
            state.city.as_deref(),
            cur.city.as_ref(),
            &mut state.failed_city,
            |p| geoip::load_city(p, state.mmap, state.verify),
            &mut first_err,
        );
        let asn = check_one(
            DbKind::Asn,
            state.asn.as_deref(),
            cur.asn.as_ref(),
            &mut state.failed_asn,
            |p| geoip::load_asn(p, state.mmap, state.verify),
            &mut first_err,
        );
        let changed = city.is_some() || asn.is_some();
        if changed {
            let next = GeoTables {
                city: city.map(Arc::new).or_else(|| cur.city.clone()),
                asn: asn.map(Arc::new).or_else(|| cur.asn.clone()),
            };
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.reloads.fetch_add(1, Ordering::Relaxed);
        }
        match first_err {
            Some(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                st.last_error = Some(e.to_string());
                Err(e)
            }
            None => Ok(changed),
        }
    }

    /// Makes `cache` follow this enricher's current databases.
    #[inline]
    fn sync(&self, cache: &mut CoreCache) {
        // One atomic load per flow; the lock is taken only when the generation moved.
        let g = self.generation.load(Ordering::Acquire);
        if cache.owner != self.id {
            cache.reset(self.id, g, self.tables());
        } else if cache.generation != g {
            cache.adopt(g, self.tables());
        }
    }

    fn exporter(&self, cache: &mut CoreCache, addr: IpAddr) -> Option<&ExporterEntry> {
        let idx = match cache.exporter_memo {
            Some((a, i)) if a == addr => i,
            _ => {
                let i = self.exporter_index.get(&addr).copied();
                cache.exporter_memo = Some((addr, i));
                i
            }
        };
        idx.and_then(|i| self.exporters.get(i as usize))
    }

    fn zone(&self, ip: IpAddr, loc: Locality) -> Zone {
        if matches!(loc, Locality::Multicast | Locality::Broadcast) {
            Zone::Group
        } else if loc.is_internal() || self.internal.iter().any(|p| p.contains(ip)) {
            Zone::Internal
        } else {
            Zone::External
        }
    }

    /// Locality, GeoIP and AS of both ends of a flow; the two cache probes overlap.
    #[inline]
    fn endpoints(
        &self,
        cache: &mut CoreCache,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        lookup: bool,
    ) -> [Found; 2] {
        let src = src.map(|ip| {
            let ip = ip.to_canonical();
            (ip, locality(ip))
        });
        let dst = dst.map(|ip| {
            let ip = ip.to_canonical();
            (ip, locality(ip))
        });
        let none = (NO_RECORD, NO_RECORD);
        if !lookup || cache.tables.is_empty() {
            return [(src, none), (dst, none)];
        }
        // Only public addresses are in GeoIP databases; skipping the rest saves the lookup.
        let public = |x: Option<(IpAddr, Locality)>| {
            x.and_then(|(ip, l)| (l == Locality::Public).then_some(ip))
        };
        let [s, d] = cache.lookup2(public(src), public(dst));
        [(src, s), (dst, d)]
    }

    /// Fills one end; returns its zone for the direction table.
    fn fill_endpoint(
        &self,
        cache: &CoreCache,
        (ip, port, record_as): (Option<IpAddr>, Option<u16>, Option<u32>),
        (canon, (geo, asn)): Found,
        (nat_ip, nat_port): (Option<IpAddr>, Option<u16>),
        out: &mut Endpoint,
    ) -> Option<Zone> {
        out.ip = ip;
        out.port = port;
        out.nat_ip = nat_ip;
        out.nat_port = nat_port.filter(|&p| p != 0);
        out.geo = geo;
        out.asn = asn;
        out.as_number = as_number(&cache.tables, asn, record_as);
        out.locality = canon.map(|c| c.1);
        canon.map(|(ip, loc)| self.zone(ip, loc))
    }

    /// Looks one address up through the core's cache (what [`Enricher::enrich`] does for
    /// each public endpoint): its locality and, for a public address, the GeoIP and AS
    /// records, borrowed from the cache's database snapshot.
    pub fn lookup<'c>(
        &self,
        cache: &'c mut CoreCache,
        ip: IpAddr,
    ) -> (Locality, Option<&'c GeoInfo>, Option<&'c AsInfo>) {
        self.sync(cache);
        let ip = ip.to_canonical();
        let loc = locality(ip);
        if loc != Locality::Public || cache.tables.is_empty() {
            return (loc, None, None);
        }
        let (g, a) = cache.lookup(ip);
        let t = &cache.tables;
        (loc, t.geo(g), t.asn(a))
    }

    /// [`Enricher::lookup`] of a flow's two addresses at once (their cache probes overlap,
    /// as in [`Enricher::enrich`]).
    pub fn lookup_pair<'c>(
        &self,
        cache: &'c mut CoreCache,
        a: IpAddr,
        b: IpAddr,
    ) -> [(Locality, Option<&'c GeoInfo>, Option<&'c AsInfo>); 2] {
        self.sync(cache);
        let found = self.endpoints(cache, Some(a), Some(b), true);
        let t: &'c GeoTables = &cache.tables;
        found.map(|(c, (g, a))| (c.map_or(Locality::Public, |c| c.1), t.geo(g), t.asn(a)))
    }

    /// The sampling interval [`Enricher::enrich`] applies to a flow received from `exporter`
    /// (the exporter's configured override, the record's own, then the scope's sampler
    /// tables), and where it came from; `None` means unsampled (counts are kept as they are).
    /// For callers that need only the scaled counters, without the rest of enrichment.
    pub fn sampling(
        &self,
        cache: &mut CoreCache,
        exporter: IpAddr,
        flow: &Flow,
        tables: Option<&ScopeTables>,
    ) -> Option<(u32, SamplingSource)> {
        let e = self.exporter(cache, exporter.to_canonical());
        sampling_of(e, flow, Learned::of_flow(tables, flow).sampling)
    }

    /// The input and output interface texts [`Enricher::enrich`] gives a flow received from
    /// `exporter` when its scope sent no options data: the exporter's configured interfaces.
    /// For readers of records stored without enrichment, which have only the config.
    pub fn interfaces(
        &self,
        cache: &mut CoreCache,
        exporter: IpAddr,
        flow: &Flow,
    ) -> [IfTexts<'_>; 2] {
        // Most configs name no interfaces, or none of this exporter's: nothing to look up per
        // end then (`top --by interface` asks this for every flow of a range).
        if !self.any_interfaces {
            return [IfTexts::default(); 2];
        }
        match self.exporter(cache, exporter.to_canonical()) {
            Some(e) if !e.interfaces.is_empty() => {
                [flow.in_if, flow.out_if].map(|i| interface(Some(e), IfTexts::default(), i))
            }
            _ => [IfTexts::default(); 2],
        }
    }

    /// The AS number and geolocation [`Enricher::enrich`] gives each end of a flow (source,
    /// destination): the AS database's number, else the record's own non-zero AS; the City
    /// database's record. For callers that group flows by AS or country without encoding
    /// documents.
    pub fn ends<'c>(&self, cache: &'c mut CoreCache, flow: &Flow) -> [EndInfo<'c>; 2] {
        self.sync(cache);
        let [s, d] = self.endpoints(cache, flow.src_ip, flow.dst_ip, true);
        let t: &'c GeoTables = &cache.tables;
        [(s, flow.src_as), (d, flow.dst_as)].map(|((_, (geo, asn)), record_as)| EndInfo {
            as_number: as_number(t, asn, record_as),
            geo: t.geo(geo),
        })
    }

    /// Enriches one flow record. `flow` is `rec.flow()`; `tables` are the options tables of
    /// the record's scope (`Decoder::tables`), if any. Overwrites every field of `out`.
    pub fn enrich(
        &self,
        cache: &mut CoreCache,
        rec: &Record<'_>,
        flow: &Flow,
        tables: Option<&ScopeTables>,
        out: &mut Enriched,
    ) {
        let learned = Learned::of_flow(tables, flow);
        self.enrich_from(cache, rec, flow, From::Learned(&learned), true, out);
    }

    /// [`Enricher::enrich`] with what the scope's tables gave the record captured earlier
    /// ([`Learned::from_tables`], on the thread that decoded it), for enriching on a thread
    /// without the decoder.
    pub fn enrich_learned(
        &self,
        cache: &mut CoreCache,
        rec: &Record<'_>,
        flow: &Flow,
        learned: &Learned<'_>,
        out: &mut Enriched,
    ) {
        self.enrich_from(cache, rec, flow, From::Learned(learned), true, out);
    }

    /// [`Enricher::enrich_learned`] limited to what the local store keeps (exporter name,
    /// endpoints with their GeoIP/AS, sampling and the scaled counts, interfaces), for the
    /// store thread when nothing else needs the whole result. What a reader computes from the
    /// record itself (protocol and service names, ICMP type, TCP flag names, orientation,
    /// direction, community ID) is left empty: about half of the work of a whole enrichment.
    pub fn enrich_learned_for_store(
        &self,
        cache: &mut CoreCache,
        rec: &Record<'_>,
        flow: &Flow,
        learned: &Learned<'_>,
        out: &mut Enriched,
    ) {
        self.enrich_from(cache, rec, flow, From::Learned(learned), false, out);
    }

    /// Whether keeping a record's enrichment in the store could hold anything its own fields
    /// do not: a GeoIP/AS database is loaded, the exporter has settings in the config (name,
    /// sampling, interfaces), or its options data gave the record something (`learned`).
    /// When not, a reader that enriches the record as it reads it (with the same config)
    /// gets the same values, so the store thread need not enrich it at all.
    pub fn adds_to_record(
        &self,
        cache: &mut CoreCache,
        exporter: IpAddr,
        learned: &Learned<'_>,
    ) -> bool {
        self.sync(cache);
        !cache.tables.is_empty()
            || !learned.is_empty()
            || self.exporter(cache, exporter.to_canonical()).is_some()
    }

    /// Whether [`Enricher::adds_to_record`] can be true for a record of which options data
    /// said nothing: a GeoIP/AS database is loaded or some exporter has settings. When it is
    /// false, only a record's learned values decide (checked once per batch, not per record).
    pub fn may_add_to_records(&self, cache: &mut CoreCache) -> bool {
        self.sync(cache);
        !cache.tables.is_empty() || !self.exporters.is_empty()
    }

    /// Enriches a stored flow with the values kept with it (see [`Kept`]): exporter name,
    /// geolocation, AS, sampling and interface texts are taken as they are, nothing is looked
    /// up; the rest is computed from the record as [`Enricher::enrich`] does.
    pub fn enrich_kept(
        &self,
        cache: &mut CoreCache,
        rec: &Record<'_>,
        flow: &Flow,
        kept: &Kept<'_>,
        out: &mut Enriched,
    ) {
        self.enrich_from(cache, rec, flow, From::Kept(kept), true, out);
    }

    fn enrich_from(
        &self,
        cache: &mut CoreCache,
        rec: &Record<'_>,
        flow: &Flow,
        from: From<'_>,
        whole: bool,
        out: &mut Enriched,
    ) {
        self.sync(cache);
        if !out
            .tables
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &cache.tables))
        {
            out.tables = Some(cache.tables.clone());
        }
        let x: ExtraFields = cache.template_fields(rec.template);
        let exporter = self.exporter(cache, rec.header.exporter.ip().to_canonical());
        let kept = match from {
            From::Kept(k) => Some(k),
            From::Learned(_) => None,
        };
        out.exporter_name.assign(match kept {
            Some(k) => k.exporter_name,
            None => exporter.and_then(|e| e.name.as_deref()),
        });

        // Endpoints, NAT, locality, GeoIP/AS.
        let [src, dst] = self.endpoints(cache, flow.src_ip, flow.dst_ip, kept.is_none());
        let src_zone = self.fill_endpoint(
            cache,
            (flow.src_ip, flow.src_port, flow.src_as),
            src,
            (
                fields::ip(rec, x.nat_src_v4, x.nat_src_v6),
                fields::uint(rec, x.nat_src_port).map(|v| v as u16),
            ),
            &mut out.source,
        );
        let dst_zone = self.fill_endpoint(
            cache,
            (flow.dst_ip, flow.dst_port, flow.dst_as),
            dst,
            (
                fields::ip(rec, x.nat_dst_v4, x.nat_dst_v6),
                fields::uint(rec, x.nat_dst_port).map(|v| v as u16),
            ),
            &mut out.destination,
        );
        out.from_kept = kept.is_some();
        if let Some(k) = kept {
            for (side, end) in [(0, &k.source), (1, &k.destination)] {
                out.kept_geo[side] = end.geo.cloned();
                out.kept_as[side] = end.as_number.map(|number| AsInfo {
                    number,
                    organization: end.as_organization.cloned(),
                });
            }
            out.source.as_number = k.source.as_number;
            out.destination.as_number = k.destination.as_number;
        }

        if whole {
            self.derived(rec, flow, &x, (src_zone, dst_zone), out);
        } else {
            out.transport = None;
            out.icmp = None;
            out.tcp_flags = &[];
            out.server = None;
            out.service = None;
            out.direction = None;
            out.community_id = None;
        }

        // Log events (firewall syslog, VPC Flow Logs) count every packet of what they
        // describe: never scaled, whatever the exporter's NetFlow sampling.
        let sampling = match from {
            From::Kept(k) => k.sampling,
            From::Learned(l) => sampling_of(exporter, flow, l.sampling),
        }
        .filter(|_| !rec.template.dialect.is_event());
        out.sampling_interval = sampling.map(|s| s.0);
        out.sampling_source = sampling.map(|s| s.1);
        let k = u64::from(out.sampling_interval.unwrap_or(1));
        out.bytes = flow.bytes.map(|v| v.saturating_mul(k));
        out.packets = flow.packets.map(|v| v.saturating_mul(k));
        out.rev_bytes = flow.rev_bytes.map(|v| v.saturating_mul(k));
        out.rev_packets = flow.rev_packets.map(|v| v.saturating_mul(k));

        // Interfaces: config first, then the exporter's options data.
        let (in_if, out_if) = match from {
            From::Kept(k) => (k.in_if, k.out_if),
            From::Learned(l) => (
                interface(exporter, l.in_if, flow.in_if),
                interface(exporter, l.out_if, flow.out_if),
            ),
        };
        set_interface(&mut out.in_if, flow.in_if, in_if);
        set_interface(&mut out.out_if, flow.out_if, out_if);
    }

    /// The parts of an enrichment computed from the record alone: protocol and service names,
    /// ICMP type and code, TCP flag names, orientation, direction, community ID.
    fn derived(
        &self,
        rec: &Record<'_>,
        flow: &Flow,
        x: &ExtraFields,
        (src_zone, dst_zone): (Option<Zone>, Option<Zone>),
        out: &mut Enriched,
    ) {
        // Protocol, ICMP, flags.
        out.transport = flow.proto.and_then(names::protocol_name);
        out.icmp = match flow.proto {
            Some(PROTO_ICMP) => icmp_type_code(rec, x, flow, false),
            Some(PROTO_ICMPV6) => icmp_type_code(rec, x, flow, true),
            _ => None,
        };
        out.tcp_flags = match (flow.proto, flow.tcp_flags) {
            (Some(names::PROTO_TCP), Some(f)) => names::tcp_flag_names(f),
            _ => &[],
        };

        // Orientation and direction.
        out.server = server_side(
            flow.proto,
            flow.src_port,
            flow.dst_port,
            out.icmp,
            fields::uint(rec, x.biflow_direction),
        );
        out.service = match (out.server, flow.proto) {
            (Some(side), Some(p)) => {
                let port = match side {
                    Side::Source => flow.src_port,
                    Side::Destination => flow.dst_port,
                };
                port.and_then(|port| names::service_name(p, port))
            }
            _ => None,
        };
        out.direction = network_direction(fields::uint(rec, x.flow_direction), src_zone, dst_zone);

        // Community ID.
        out.community_id = match (self.seed, flow.src_ip, flow.dst_ip, flow.proto) {
            (Some(seed), Some(s), Some(d), Some(p)) => {
                let ports = match p {
                    PROTO_ICMP | PROTO_ICMPV6 => {
                        out.icmp.map(|(t, c)| (u16::from(t), u16::from(c)))
                    }
                    _ => flow.src_port.zip(flow.dst_port),
                };
                community_id(seed, s, d, p, ports)
            }
            _ => None,
        };
    }
}

/// What [`Enricher::ends`] gives for one end of a flow.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndInfo<'c> {
    /// AS number: the AS database's, else the record's own if non-zero.
    pub as_number: Option<u32>,
    /// Geolocation from the City/Country database.
    pub geo: Option<&'c GeoInfo>,
}

/// An end's AS number: the AS database's record `asn`, else the record's own (IE 16/17) if
/// non-zero (0 means "unknown" in NetFlow).
fn as_number(t: &GeoTables, asn: u32, record_as: Option<u32>) -> Option<u32> {
    t.asn(asn)
        .map(|r| r.number)
        .or(record_as.filter(|&n| n != 0))
}

/// Where [`Enricher::enrich_from`] takes what the enricher's own tables do not have.
#[derive(Clone, Copy)]
enum From<'a> {
    /// Options data as captured at decode time; config overrides still win.
    Learned(&'a Learned<'a>),
    /// Values kept by the store: taken as they are.
    Kept(&'a Kept<'a>),
}

/// Sampling: the exporter's config override, the record, then what the scope's options data
/// gave (the sampler table by id, the scope's id-less interval: [`Learned::from_tables`]).
/// An interval of 0 means "none given" at every step.
fn sampling_of(
    exporter: Option<&ExporterEntry>,
    flow: &Flow,
    learned: Option<(u32, SamplingSource)>,
) -> Option<(u32, SamplingSource)> {
    exporter
        .and_then(|e| e.sampling_interval)
        .filter(|&n| n > 0)
        .map(|n| (n, SamplingSource::Config))
        .or_else(|| {
            flow.sampling_interval
                .filter(|&n| n > 0)
                .map(|n| (n, SamplingSource::Record))
        })
        .or(learned.filter(|s| s.0 > 0))
}

/// One database slot's reload check: `Some(db)` if a new version loaded.
fn check_one<T>(
    kind: DbKind,
    path: Option<&std::path::Path>,
    current: Option<&Arc<Db<T>>>,
    failed: &mut Failed,
    load: impl FnOnce(&std::path::Path) -> Result<Db<T>, EnrichError>,
    first_err: &mut Option<EnrichError>,
) -> Option<Db<T>> {
    let path = path?;
    let stamp = match FileStamp::of(path) {
        Ok(s) => s,
        Err(source) => {
            // Gone or unreadable for now: keep what we have, and say so once.
            if *failed != Failed::Missing {
                *failed = Failed::Missing;
                first_err.get_or_insert(EnrichError::Open {
                    kind,
                    path: path.to_path_buf(),
                    source,
                });
            }
            return None;
        }
    };
    if current.is_some_and(|c| c.stamp == stamp) {
        *failed = Failed::No;
        return None;
    }
    if *failed == Failed::Version(stamp) {
        return None;
    }
    match load(path) {
        Ok(db) => {
            *failed = Failed::No;
            Some(db)
        }
        Err(e) => {
            *failed = Failed::Version(stamp);
            first_err.get_or_insert(e);
            None
        }
    }
}

/// ICMP type and code: IE 32/139 (type << 8 | code), IE 176-179, else the NetFlow v5/v9
/// convention of type << 8 | code in the destination port (in the source port when the
/// destination port is 0 and the source port is not, as some exporters do).
fn icmp_type_code(rec: &Record<'_>, x: &ExtraFields, flow: &Flow, v6: bool) -> Option<(u8, u8)> {
    let (tc, t, c) = if v6 {
        (x.icmp_type_code_v6, x.icmp_type_v6, x.icmp_code_v6)
    } else {
        (x.icmp_type_code_v4, x.icmp_type_v4, x.icmp_code_v4)
    };
    if let Some(v) = fields::uint(rec, tc) {
        return Some(((v >> 8) as u8, v as u8));
    }
    if let Some(ty) = fields::uint(rec, t) {
        return Some((ty as u8, fields::uint(rec, c).unwrap_or(0) as u8));
    }
    let v = match (flow.src_port, flow.dst_port) {
        (Some(s), Some(0)) if s != 0 => s,
        (_, Some(d)) => d,
        (Some(s), None) => s,
        (None, None) => return None,
    };
    Some(((v >> 8) as u8, v as u8))
}

/// An interface's texts: the exporter's config first, then its options data.
fn interface<'a>(
    exporter: Option<&'a ExporterEntry>,
    learned: IfTexts<'a>,
    index: Option<u32>,
) -> IfTexts<'a> {
    let cfg = index.and_then(|i| exporter?.interfaces.get(&i));
    IfTexts {
        name: cfg
            .and_then(|c| c.name.as_deref())
            .or(learned.name)
            .filter(|s| !s.is_empty()),
        description: cfg
            .and_then(|c| c.description.as_deref())
            .or(learned.description)
            .filter(|s| !s.is_empty()),
    }
}

fn set_interface(out: &mut Interface, index: Option<u32>, t: IfTexts<'_>) {
    out.index = index;
    out.name.assign(t.name);
    out.description.assign(t.description);
}
