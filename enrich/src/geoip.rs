//! MaxMind DB (GeoIP2/GeoLite2 City, Country, ASN) loading and lookups.
//!
//! At load, every data record the search tree reaches is decoded once into a compact
//! [`GeoInfo`] or [`AsInfo`] (strings interned as `Arc<str>`, so thousands of records share
//! one "United States"), and the record's data-section offset is mapped to its index. A lookup
//! is then a search-tree walk and one hash probe, with no decoding and no allocation; the
//! per-core [`crate::CoreCache`] avoids even that for addresses seen before.
//!
//! A loaded database never changes: a new file version is loaded beside it and swapped in as a
//! whole ([`GeoTables`] behind an `Arc`), so readers on other cores never see a half-loaded
//! table.

use std::fs::{self, File};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use maxminddb::{geoip2, LookupResult, MaxMindDbError, Reader, WithinOptions};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{DbKind, EnrichError};

/// Geolocation of a network, as the City (or Country) database gives it. English names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeoInfo {
    /// Two-letter continent code (`EU`).
    pub continent_code: Option<Arc<str>>,
    /// Continent name (`Europe`).
    pub continent_name: Option<Arc<str>>,
    /// ISO 3166-1 alpha-2 country code (`SE`).
    pub country_iso_code: Option<Arc<str>>,
    /// Country name (`Sweden`).
    pub country_name: Option<Arc<str>>,
    /// ISO 3166-2 code of the first subdivision, country-prefixed as ECS wants it (`SE-E`).
    pub region_iso_code: Option<Arc<str>>,
    /// Name of the first subdivision (`Östergötland County`).
    pub region_name: Option<Arc<str>>,
    /// City name (`Linköping`).
    pub city_name: Option<Arc<str>>,
    /// Approximate location.
    pub location: Option<GeoPoint>,
}

/// Latitude and longitude in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoPoint {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Autonomous system of a network, from the ASN (or ISP) database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsInfo {
    /// AS number.
    pub number: u32,
    /// Organization (`Bredband2 AB`); absent for some networks.
    pub organization: Option<Arc<str>>,
}

/// Identity of a file version: a change of any part means "reload".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

impl FileStamp {
    /// Reads the stamp of the file `path` names (following symlinks, so repointing a link
    /// counts as a change).
    pub(crate) fn of(path: &Path) -> std::io::Result<FileStamp> {
        let m = fs::metadata(path)?;
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Ok(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            dev,
            ino,
        })
    }
}

/// The bytes of a database: read into memory, or mapped.
enum Source {
    Mem(Vec<u8>),
    Map(maxminddb::Mmap),
}

impl AsRef<[u8]> for Source {
    fn as_ref(&self) -> &[u8] {
        match self {
            Source::Mem(v) => v,
            Source::Map(m) => m,
        }
    }
}

/// One loaded database with its decoded records.
pub(crate) struct Db<T> {
    reader: Reader<Source>,
    /// Data-section offset -> index in `records`.
    ids: FxHashMap<usize, u32>,
    records: Vec<T>,
    ipv4_only: bool,
    pub(crate) stamp: FileStamp,
    pub(crate) path: PathBuf,
}

impl<T> std::fmt::Debug for Db<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .field("type", &self.reader.metadata().database_type)
            .field("records", &self.records.len())
            .finish()
    }
}

impl<T> Db<T> {
    /// Index of the record for `ip`, if the database has one.
    #[inline]
    pub(crate) fn find(&self, ip: IpAddr) -> Result<Option<u32>, MaxMindDbError> {
        if self.ipv4_only && ip.is_ipv6() {
            return Ok(None);
        }
        let r = self.reader.lookup(ip)?;
        Ok(r.offset().and_then(|o| self.ids.get(&o).copied()))
    }

    #[inline]
    pub(crate) fn record(&self, id: u32) -> Option<&T> {
        self.records.get(id as usize)
    }

    /// `database_type` from the metadata.
    pub(crate) fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Distinct records decoded.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

/// The databases in use, swapped as a whole on reload.
#[derive(Debug, Default)]
pub struct GeoTables {
    pub(crate) city: Option<Arc<Db<GeoInfo>>>,
    pub(crate) asn: Option<Arc<Db<AsInfo>>>,
}

impl GeoTables {
    /// The geolocation record with index `id`.
    pub fn geo(&self, id: u32) -> Option<&GeoInfo> {
        self.city.as_ref()?.record(id)
    }

    /// The AS record with index `id`.
    pub fn asn(&self, id: u32) -> Option<&AsInfo> {
        self.asn.as_ref()?.record(id)
    }

    /// Whether any database is loaded (if not, no lookups are done).
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.asn.is_none()
    }

    /// Looks `ip` up in both databases, bypassing any cache: (geo index, AS index). Errors
    /// (a record the reader cannot follow) count as "not found" and are reported by the flag.
    pub fn lookup(&self, ip: IpAddr) -> (Option<u32>, Option<u32>, bool) {
        let mut failed = false;
        let mut get = |r: Result<Option<u32>, MaxMindDbError>| {
            r.unwrap_or_else(|_| {
                failed = true;
                None
            })
        };
        let geo = self.city.as_ref().and_then(|d| get(d.find(ip)));
        let asn = self.asn.as_ref().and_then(|d| get(d.find(ip)));
        (geo, asn, failed)
    }

    /// Looks `ip` up without a cache and returns the records (for tests and tools).
    pub fn lookup_records(&self, ip: IpAddr) -> (Option<&GeoInfo>, Option<&AsInfo>) {
        let (g, a, _) = self.lookup(ip);
        (g.and_then(|i| self.geo(i)), a.and_then(|i| self.asn(i)))
    }

    /// Summary for logs: `city: PATH (TYPE, N records); asn: ...`.
    pub fn describe(&self) -> String {
        fn one<T>(d: &Option<Arc<Db<T>>>) -> String {
            match d {
                Some(d) => format!(
                    "{} ({}, {} records)",
                    d.path.display(),
                    d.database_type(),
                    d.len()
                ),
                None => "none".into(),
            }
        }
        format!("city: {}; asn: {}", one(&self.city), one(&self.asn))
    }
}

/// Interns strings so that equal names share one allocation.
#[derive(Default)]
struct Interner(FxHashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        let s = s?;
        if s.is_empty() {
            return None;
        }
        if let Some(a) = self.0.get(s) {
            return Some(a.clone());
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        Some(a)
    }
}

fn open_source(kind: DbKind, path: &Path, mmap: bool) -> Result<Source, EnrichError> {
    let open_err = |source| EnrichError::Open {
        kind,
        path: path.to_path_buf(),
        source,
    };
    if mmap {
        let f = File::open(path).map_err(open_err)?;
        // SAFETY: the mapping stays valid as long as the file is not truncated or rewritten in
        // place while mapped. Replacing it by rename (what `geoipupdate` does) leaves the old
        // inode intact. `EnrichConfig::geoip_mmap` documents the hazard and is off by default.
        let m = unsafe { maxminddb::Mmap::map(&f) }.map_err(open_err)?;
        Ok(Source::Map(m))
    } else {
        fs::read(path).map(Source::Mem).map_err(open_err)
    }
}

/// Whether a `database_type` obviously belongs to the other slot (lenient: third-party
/// databases name their types freely, so only a clear mismatch is refused).
fn wrong_type(kind: DbKind, t: &str) -> bool {
    let t = t.to_ascii_lowercase();
    let geo = t.contains("city") || t.contains("country") || t.contains("enterprise");
    let asn = t.contains("asn") || t.contains("isp");
    match kind {
        DbKind::City => asn && !geo,
        DbKind::Asn => geo && !asn,
    }
}

fn load<T>(
    kind: DbKind,
    path: &Path,
    mmap: bool,
    verify: bool,
    mut decode: impl FnMut(
        &LookupResult<'_, Source>,
        &mut Interner,
    ) -> Result<Option<T>, MaxMindDbError>,
) -> Result<Db<T>, EnrichError> {
    let invalid = |source| EnrichError::Invalid {
        kind,
        path: path.to_path_buf(),
        source,
    };
    // Stamp first: if the file changes while we read it, the next check sees a new stamp.
    let stamp = FileStamp::of(path).map_err(|source| EnrichError::Open {
        kind,
        path: path.to_path_buf(),
        source,
    })?;
    let src = open_source(kind, path, mmap)?;
    let reader = Reader::from_source(src).map_err(invalid)?;
    let found = reader.metadata().database_type.clone();
    if wrong_type(kind, &found) {
        return Err(EnrichError::WrongType {
            kind,
            path: path.to_path_buf(),
            found,
        });
    }
    if verify {
        reader.verify().map_err(invalid)?;
    }
    let mut ids = FxHashMap::default();
    let mut records = Vec::new();
    let mut interner = Interner::default();
    let networks = reader
        .networks(WithinOptions::default().skip_empty_values())
        .map_err(invalid)?;
    for item in networks {
        let r = item.map_err(invalid)?;
        let Some(offset) = r.offset() else { continue };
        if ids.contains_key(&offset) {
            continue;
        }
        if let Some(rec) = decode(&r, &mut interner).map_err(invalid)? {
            let Ok(id) = u32::try_from(records.len()) else {
                return Err(invalid(MaxMindDbError::invalid_database(
                    "more than 2^32 distinct records",
                )));
            };
            records.push(rec);
            ids.insert(offset, id);
        }
    }
    records.shrink_to_fit();
    let ipv4_only = reader.metadata().ip_version == 4;
    Ok(Db {
        reader,
        ids,
        records,
        ipv4_only,
        stamp,
        path: path.to_path_buf(),
    })
}

/// Loads a City or Country database (both decode as `City`: a Country record simply has no
/// city, subdivisions or location).
pub(crate) fn load_city(path: &Path, mmap: bool, verify: bool) -> Result<Db<GeoInfo>, EnrichError> {
    load(DbKind::City, path, mmap, verify, |r, i| {
        let Some(c) = r.decode::<geoip2::City>()? else {
            return Ok(None);
        };
        let country_iso = c.country.iso_code;
        let sub = c.subdivisions.first();
        let region_iso_code = match (country_iso, sub.and_then(|s| s.iso_code)) {
            (Some(cc), Some(sc)) => i.get(Some(&format!("{cc}-{sc}"))),
            _ => None,
        };
        let g = GeoInfo {
            continent_code: i.get(c.continent.code),
            continent_name: i.get(c.continent.names.english),
            country_iso_code: i.get(country_iso),
            country_name: i.get(c.country.names.english),
            region_iso_code,
            region_name: i.get(sub.and_then(|s| s.names.english)),
            city_name: i.get(c.city.names.english),
            location: match (c.location.latitude, c.location.longitude) {
                (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => {
                    Some(GeoPoint { lat, lon })
                }
                _ => None,
            },
        };
        // A record with nothing we use (only a `traits` map, say) is as good as none.
        Ok((g != GeoInfo::default()).then_some(g))
    })
}

/// Loads an ASN (or ISP) database.
pub(crate) fn load_asn(path: &Path, mmap: bool, verify: bool) -> Result<Db<AsInfo>, EnrichError> {
    load(DbKind::Asn, path, mmap, verify, |r, i| {
        let Some(a) = r.decode::<geoip2::Asn>()? else {
            return Ok(None);
        };
        Ok(a.autonomous_system_number.map(|number| AsInfo {
            number,
            organization: i.get(a.autonomous_system_organization),
        }))
    })
}
