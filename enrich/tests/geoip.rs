//! GeoIP/AS lookups against MaxMind's test databases (`../shared/geoip`), checked against
//! the known answers and, network by network, against the JSON the databases were built
//! from; broken databases; reloads.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sluice_enrich::{DbKind, EnrichConfig, EnrichError, Enricher, Locality};

fn geoip_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/geoip")
}

fn db(name: &str) -> PathBuf {
    let p = geoip_dir().join(name);
    assert!(p.exists(), "test database {} missing", p.display());
    p
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn enricher(city: Option<&str>, asn: Option<&str>) -> Enricher {
    let cfg = EnrichConfig {
        geoip_city: city.map(db),
        geoip_asn: asn.map(db),
        ..EnrichConfig::default()
    };
    Enricher::new(&cfg).expect("test databases load")
}

/// A scratch directory of our own under the system temp dir.
fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "sluice-enrich-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn known_answers_geolite2_city_and_asn() {
    let e = enricher(
        Some("GeoLite2-City-Test.mmdb"),
        Some("GeoLite2-ASN-Test.mmdb"),
    );
    let mut c = e.cache();

    let (loc, g, a) = e.lookup(&mut c, ip("89.160.20.115"));
    assert_eq!(loc, Locality::Public);
    let g = g.expect("89.160.20.115 has a location");
    assert_eq!(g.country_iso_code.as_deref(), Some("SE"));
    assert_eq!(g.country_name.as_deref(), Some("Sweden"));
    assert_eq!(g.city_name.as_deref(), Some("Linköping"));
    assert_eq!(g.continent_code.as_deref(), Some("EU"));
    assert_eq!(g.continent_name.as_deref(), Some("Europe"));
    assert_eq!(g.region_iso_code.as_deref(), Some("SE-E"));
    assert_eq!(g.region_name.as_deref(), Some("Östergötland County"));
    let p = g.location.expect("location");
    assert_eq!((p.lat, p.lon), (58.4167, 15.6167));
    let a = a.expect("89.160.20.115 has an AS");
    assert_eq!(a.number, 29518);
    assert_eq!(a.organization.as_deref(), Some("Bredband2 AB"));

    let (_, g, a) = e.lookup(&mut c, ip("216.160.83.57"));
    let g = g.expect("Milton");
    assert_eq!(g.country_iso_code.as_deref(), Some("US"));
    assert_eq!(g.city_name.as_deref(), Some("Milton"));
    assert_eq!(g.region_iso_code.as_deref(), Some("US-WA"));
    assert_eq!(g.continent_name.as_deref(), Some("North America"));
    let a = a.expect("AS209");
    assert_eq!((a.number, a.organization.as_deref()), (209, None));

    let (_, g, a) = e.lookup(&mut c, ip("81.2.69.142"));
    assert_eq!(g.and_then(|g| g.city_name.as_deref()), Some("London"));
    assert!(a.is_none());

    let (_, g, a) = e.lookup(&mut c, ip("67.43.156.1"));
    let g = g.expect("BT");
    assert_eq!(g.country_iso_code.as_deref(), Some("BT"));
    assert_eq!(g.city_name, None);
    assert_eq!(a.map(|a| a.number), Some(35908));

    let (_, g, _) = e.lookup(&mut c, ip("175.16.199.1"));
    assert_eq!(g.and_then(|g| g.city_name.as_deref()), Some("Changchun"));

    let (_, g, a) = e.lookup(&mut c, ip("1.128.0.1"));
    assert!(g.is_none());
    let a = a.expect("Telstra");
    assert_eq!(a.number, 1221);
    assert_eq!(a.organization.as_deref(), Some("Telstra Pty Ltd"));

    let (_, g, a) = e.lookup(&mut c, ip("2001:218::10"));
    assert_eq!(g.and_then(|g| g.country_iso_code.as_deref()), Some("JP"));
    assert!(a.is_none());

    let (_, g, a) = e.lookup(&mut c, ip("2003::1"));
    assert!(g.is_none());
    assert_eq!(
        a.map(|a| (a.number, a.organization.as_deref())),
        Some((3320, Some("Deutsche Telekom AG")))
    );

    // IPv4-mapped spelling of the same address: same answer.
    let (_, g, _) = e.lookup(&mut c, ip("::ffff:89.160.20.115"));
    assert_eq!(g.and_then(|g| g.city_name.as_deref()), Some("Linköping"));

    // Private space is never looked up.
    let (loc, g, a) = e.lookup(&mut c, ip("192.168.1.10"));
    assert_eq!(loc, Locality::Private);
    assert!(g.is_none() && a.is_none());

    // Second time round, the cache answers.
    let before = c.stats();
    let (_, g, _) = e.lookup(&mut c, ip("89.160.20.115"));
    assert_eq!(g.and_then(|g| g.city_name.as_deref()), Some("Linköping"));
    assert_eq!(c.stats().hits, before.hits + 1);
    assert_eq!(c.stats().misses, before.misses);
    assert_eq!(c.stats().lookup_errors, 0);
}

#[test]
fn geoip2_city_and_country_databases() {
    let e = enricher(Some("GeoIP2-City-Test.mmdb"), None);
    let mut c = e.cache();
    let (_, g, a) = e.lookup(&mut c, ip("89.160.20.115"));
    assert_eq!(g.and_then(|g| g.city_name.as_deref()), Some("Linköping"));
    assert!(a.is_none(), "no ASN database configured");
    let (_, g, _) = e.lookup(&mut c, ip("2001:218::10"));
    assert_eq!(g.and_then(|g| g.country_iso_code.as_deref()), Some("JP"));

    let e = enricher(Some("GeoIP2-Country-Test.mmdb"), None);
    let mut c = e.cache();
    let (_, g, _) = e.lookup(&mut c, ip("89.160.20.115"));
    let g = g.expect("country");
    assert_eq!(g.country_iso_code.as_deref(), Some("SE"));
    assert_eq!(g.city_name, None);
    assert_eq!(g.location, None);
    let (_, g, _) = e.lookup(&mut c, ip("2001:218::10"));
    assert_eq!(g.and_then(|g| g.country_iso_code.as_deref()), Some("JP"));
}

#[test]
fn no_databases_is_not_an_error() {
    let e = Enricher::new(&EnrichConfig::default()).expect("no GeoIP configured");
    assert!(e.tables().is_empty());
    let mut c = e.cache();
    let (loc, g, a) = e.lookup(&mut c, ip("89.160.20.115"));
    assert_eq!(loc, Locality::Public);
    assert!(g.is_none() && a.is_none());
    assert_eq!(
        c.stats().misses + c.stats().hits,
        0,
        "no lookups without databases"
    );
    assert!(!e.maybe_reload());
    assert!(matches!(e.reload_now(), Ok(false)));
}

/// Every network of the source JSON: its first address must give the JSON's country, city
/// and AS. Where networks overlap (the JSON lists a few twice) the most specific one wins in
/// the database, so those are skipped.
#[test]
fn every_network_matches_source_data() {
    for (mmdb, json, kind) in [
        (
            "GeoLite2-City-Test.mmdb",
            "GeoLite2-City-Test.json",
            DbKind::City,
        ),
        (
            "GeoIP2-City-Test.mmdb",
            "GeoIP2-City-Test.json",
            DbKind::City,
        ),
        (
            "GeoIP2-Country-Test.mmdb",
            "GeoIP2-Country-Test.json",
            DbKind::City,
        ),
        (
            "GeoLite2-ASN-Test.mmdb",
            "GeoLite2-ASN-Test.json",
            DbKind::Asn,
        ),
    ] {
        let e = match kind {
            DbKind::City => enricher(Some(mmdb), None),
            DbKind::Asn => enricher(None, Some(mmdb)),
        };
        let t = e.tables();
        let text = std::fs::read_to_string(geoip_dir().join("source-data").join(json))
            .expect("source data");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let entries: Vec<(String, serde_json::Value)> = v
            .as_array()
            .expect("array")
            .iter()
            .flat_map(|o| o.as_object().expect("object").clone())
            .collect();
        let nets: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let mut checked = 0;
        for (net, data) in &entries {
            if nets.iter().filter(|n| **n == net.as_str()).count() > 1 {
                continue;
            }
            let (addr, len) = net.split_once('/').expect("cidr");
            let a: IpAddr = addr.parse().expect("network address");
            // Skip networks with a more specific network inside starting at the same address.
            let len: u8 = len.parse().expect("len");
            let shadowed = entries.iter().any(|(n2, _)| {
                let (a2, l2) = n2.split_once('/').expect("cidr");
                a2.parse::<IpAddr>().ok() == Some(a) && l2.parse::<u8>().expect("len") > len
            });
            if shadowed {
                continue;
            }
            let (g, asn) = t.lookup_records(a);
            match kind {
                DbKind::City => {
                    let want_cc = data["country"]["iso_code"].as_str();
                    let want_city = data["city"]["names"]["en"].as_str();
                    let want_cont = data["continent"]["code"].as_str();
                    if want_cc.is_none() && want_city.is_none() && want_cont.is_none() {
                        // Only traits (is_anycast): nothing we use, so no record.
                        assert!(g.is_none(), "{mmdb}: {net}");
                        checked += 1;
                        continue;
                    }
                    let g = g.unwrap_or_else(|| panic!("{mmdb}: {net}: no record"));
                    assert_eq!(g.country_iso_code.as_deref(), want_cc, "{mmdb}: {net}");
                    assert_eq!(g.city_name.as_deref(), want_city, "{mmdb}: {net}");
                    assert_eq!(g.continent_code.as_deref(), want_cont, "{mmdb}: {net}");
                    let want_lat = data["location"]["latitude"].as_f64();
                    assert_eq!(
                        g.location.map(|p| p.lat),
                        want_lat.filter(|_| data["location"]["longitude"].is_number()),
                        "{mmdb}: {net}"
                    );
                }
                DbKind::Asn => {
                    let want = data["autonomous_system_number"].as_u64();
                    let got = asn.map(|a| u64::from(a.number));
                    assert_eq!(got, want, "{mmdb}: {net}");
                    let org = data["autonomous_system_organization"].as_str();
                    assert_eq!(
                        asn.and_then(|a| a.organization.as_deref()),
                        org,
                        "{mmdb}: {net}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 200, "{mmdb}: only {checked} networks checked");
    }
}

#[test]
fn broken_databases_are_errors_at_load() {
    for name in [
        "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
    ] {
        for verify in [true, false] {
            let cfg = EnrichConfig {
                geoip_city: Some(db(name)),
                geoip_verify: verify,
                ..EnrichConfig::default()
            };
            match Enricher::new(&cfg) {
                Err(e @ EnrichError::Invalid { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(name), "{msg}");
                    assert!(msg.contains("not a valid MaxMind DB"), "{msg}");
                    assert_eq!(e.reason(), "invalid");
                }
                Err(e) => panic!("{name}: unexpected error {e}"),
                Ok(_) => panic!("{name}: a broken database was accepted (verify {verify})"),
            }
        }
    }
}

#[test]
fn garbage_truncated_and_missing_files_are_errors() {
    let dir = scratch();
    let good = std::fs::read(db("GeoLite2-City-Test.mmdb")).expect("read");
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        (
            "garbage".into(),
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
    ];
    for cut in [
        1,
        100,
        good.len() / 3,
        good.len() / 2,
        good.len() - 200,
        good.len() - 1,
    ] {
        cases.push((format!("cut{cut}"), good[..cut].to_vec()));
    }
    // The tail (metadata) kept, the middle (search tree and data) shredded.
    let mut shredded = good.clone();
    for b in shredded[100..good.len() - 600].iter_mut() {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    cases.push(("shredded".into(), shredded));
    for (name, bytes) in cases {
        let p = dir.join(format!("{name}.mmdb"));
        std::fs::write(&p, &bytes).expect("write");
        for mmap in [false, true] {
            let cfg = EnrichConfig {
                geoip_city: Some(p.clone()),
                geoip_mmap: mmap,
                ..EnrichConfig::default()
            };
            match Enricher::new(&cfg) {
                Err(EnrichError::Invalid { .. }) => {}
                Err(e) => panic!("{name}: unexpected error kind {e}"),
                Ok(_) => panic!("{name}: accepted"),
            }
        }
    }
    let cfg = EnrichConfig {
        geoip_asn: Some(dir.join("does-not-exist.mmdb")),
        ..EnrichConfig::default()
    };
    let e = Enricher::new(&cfg).expect_err("missing file");
    assert_eq!(e.reason(), "open");
    assert!(e.to_string().contains("does-not-exist.mmdb"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_database_type_is_refused() {
    let cfg = EnrichConfig {
        geoip_city: Some(db("GeoLite2-ASN-Test.mmdb")),
        ..EnrichConfig::default()
    };
    let e = Enricher::new(&cfg).expect_err("ASN as city");
    assert_eq!(e.reason(), "wrong_type");
    assert!(e.to_string().contains("GeoLite2-ASN"), "{e}");
    let cfg = EnrichConfig {
        geoip_asn: Some(db("GeoLite2-City-Test.mmdb")),
        ..EnrichConfig::default()
    };
    assert_eq!(
        Enricher::new(&cfg).expect_err("city as ASN").reason(),
        "wrong_type"
    );
    // The ISP database carries AS numbers too.
    let e = enricher(None, Some("GeoIP2-ISP-Test.mmdb"));
    let mut c = e.cache();
    let (_, _, a) = e.lookup(&mut c, ip("1.128.0.1"));
    assert_eq!(a.map(|a| a.number), Some(1221));
}

/// Every other database in the directory, in either slot: loads or fails cleanly.
#[test]
fn no_test_database_panics() {
    let mut n = 0;
    for entry in std::fs::read_dir(geoip_dir()).expect("dir") {
        let p = entry.expect("entry").path();
        if p.extension().and_then(|e| e.to_str()) != Some("mmdb") {
            continue;
        }
        for (city, asn) in [(Some(p.clone()), None), (None, Some(p.clone()))] {
            let cfg = EnrichConfig {
                geoip_city: city,
                geoip_asn: asn,
                ..EnrichConfig::default()
            };
            if let Ok(e) = Enricher::new(&cfg) {
                let mut c = e.cache();
                for a in [
                    "1.1.1.1",
                    "89.160.20.115",
                    "2001:218::10",
                    "::1.2.3.4",
                    "2003::1",
                ] {
                    let _ = e.lookup(&mut c, ip(a));
                }
                assert_eq!(c.stats().lookup_errors, 0, "{}", p.display());
            }
            n += 1;
        }
    }
    assert!(n > 40, "{n}");
}

#[test]
fn mmap_gives_the_same_answers() {
    let cfg = EnrichConfig {
        geoip_city: Some(db("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(db("GeoLite2-ASN-Test.mmdb")),
        geoip_mmap: true,
        ..EnrichConfig::default()
    };
    let e = Enricher::new(&cfg).expect("mmap");
    let mut c = e.cache();
    let (_, g, a) = e.lookup(&mut c, ip("89.160.20.115"));
    assert_eq!(g.and_then(|g| g.city_name.as_deref()), Some("Linköping"));
    assert_eq!(a.map(|a| a.number), Some(29518));
}

#[test]
fn reload_picks_up_a_new_file_and_survives_a_broken_one() {
    let dir = scratch();
    let live = dir.join("city.mmdb");
    std::fs::copy(db("GeoLite2-City-Test.mmdb"), &live).expect("copy");
    let cfg = EnrichConfig {
        geoip_city: Some(live.clone()),
        reload_interval: Duration::from_millis(30),
        ..EnrichConfig::default()
    };
    let e = Enricher::new(&cfg).expect("load");
    let mut c = e.cache();
    let city = |e: &Enricher, c: &mut sluice_enrich::CoreCache| {
        let (_, g, _) = e.lookup(c, ip("89.160.20.115"));
        g.map(|g| (g.country_iso_code.clone(), g.city_name.clone()))
    };
    assert_eq!(
        city(&e, &mut c).and_then(|x| x.1).as_deref(),
        Some("Linköping")
    );
    // Nothing changed: the time check keeps it cheap, then the stamp check finds nothing.
    assert!(!e.maybe_reload());
    std::thread::sleep(Duration::from_millis(40));
    assert!(!e.maybe_reload());

    // A new version written beside and renamed over (what geoipupdate does): the Country
    // database, so the city disappears.
    let tmp = dir.join("city.mmdb.tmp");
    std::fs::copy(db("GeoIP2-Country-Test.mmdb"), &tmp).expect("copy");
    std::fs::rename(&tmp, &live).expect("rename");
    std::thread::sleep(Duration::from_millis(40));
    assert!(e.maybe_reload(), "changed file picked up");
    assert_eq!(e.stats().reloads, 1);
    let got = city(&e, &mut c).expect("country record");
    assert_eq!(got.0.as_deref(), Some("SE"));
    assert_eq!(got.1, None, "the cache followed the swap");
    assert_eq!(c.stats().reloads, 1);

    // A broken version: refused, the previous one stays, and it is not retried until it
    // changes again.
    std::fs::write(&tmp, b"not a database at all").expect("write");
    std::fs::rename(&tmp, &live).expect("rename");
    let err = e.reload_now().expect_err("broken file");
    assert_eq!(err.reason(), "invalid");
    assert!(e
        .last_reload_error()
        .expect("error kept")
        .contains("city.mmdb"));
    assert_eq!(e.stats().reload_failures, 1);
    assert_eq!(city(&e, &mut c).and_then(|x| x.0).as_deref(), Some("SE"));
    assert!(
        matches!(e.reload_now(), Ok(false)),
        "same broken file not retried"
    );

    // Fixed: loads again.
    std::fs::copy(db("GeoLite2-City-Test.mmdb"), &tmp).expect("copy");
    std::fs::rename(&tmp, &live).expect("rename");
    assert!(matches!(e.reload_now(), Ok(true)));
    assert_eq!(
        city(&e, &mut c).and_then(|x| x.1).as_deref(),
        Some("Linköping")
    );
    assert_eq!(e.stats().reloads, 2);

    // Deleted: the loaded version stays in use.
    std::fs::remove_file(&live).expect("rm");
    assert_eq!(e.reload_now().expect_err("missing").reason(), "open");
    assert!(matches!(e.reload_now(), Ok(false)), "reported once");
    assert_eq!(
        city(&e, &mut c).and_then(|x| x.1).as_deref(),
        Some("Linköping")
    );
    // Back: a new version again.
    std::fs::copy(db("GeoLite2-City-Test.mmdb"), &tmp).expect("copy");
    std::fs::rename(&tmp, &live).expect("rename");
    assert!(matches!(e.reload_now(), Ok(true)));
    assert_eq!(e.stats().reload_failures, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn caches_from_another_enricher_are_reset() {
    let a = enricher(Some("GeoLite2-City-Test.mmdb"), None);
    let b = enricher(Some("GeoIP2-Country-Test.mmdb"), None);
    let mut c = a.cache();
    let (_, g, _) = a.lookup(&mut c, ip("89.160.20.115"));
    assert!(g.and_then(|g| g.city_name.as_deref()).is_some());
    let (_, g, _) = b.lookup(&mut c, ip("89.160.20.115"));
    assert_eq!(g.expect("country").city_name, None);
}
