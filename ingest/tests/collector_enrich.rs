//! The collector keeps each flow's enrichment in the local store (`[store] enrich`, format
//! 1.1): what the GeoIP databases, the config and the exporter's options data (interface
//! names, sampler table) gave when the flow arrived is what `sluice dump` shows, also after
//! the GeoIP databases and the exporter's name are removed from the config and the collector
//! restarts. With `enrich = false` the same dump has none of it: the values come from the
//! store, not from read time.

mod common;

use std::time::Duration;

use std::ffi::OsStr;

use common::collector::{sluice_stdout, wait_until, Collector, Options, TempDir, ALL_TIME};
use common::ipfix;
use serde_json::Value;

fn enrich_section() -> String {
    let geo = common::captures_dir().join("../geoip");
    format!(
        "[enrich]\ngeoip_city = \"{}\"\ngeoip_asn = \"{}\"\n\n[[enrich.exporter]]\naddress = \"127.0.0.1\"\nname = \"edge-test\"\n",
        geo.join("GeoLite2-City-Test.mmdb").display(),
        geo.join("GeoLite2-ASN-Test.mmdb").display()
    )
}

/// `sluice dump` of everything, with `--config` (the collector's file as it is now).
fn dump(c: &Collector) -> Vec<Value> {
    c.dump_all_with(&[OsStr::new("--config"), c.config.as_os_str()], None)
}

fn at<'a>(d: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(d, |v, k| &v[k])
}

/// Every flow shows the enrichment it got on arrival.
fn check_enriched(docs: &[Value], when: &str) {
    assert_eq!(docs.len(), 30, "{when}");
    let mut se = 0;
    for d in docs {
        let raw = at(d, "netflow.octet_delta_count")
            .as_u64()
            .expect("raw bytes");
        assert_eq!(
            at(d, "network.bytes").as_u64(),
            Some(raw * u64::from(ipfix::SAMPLING)),
            "{when}: scaled by the sampler table's interval: {d}"
        );
        assert_eq!(at(d, "network.sampling_interval"), 100, "{when}");
        assert_eq!(at(d, "observer.name"), "edge-test", "{when}");
        let in_if = at(d, "observer.ingress.interface.id")
            .as_str()
            .unwrap_or("");
        let (name, alias) = match in_if {
            "1" => ("xe-0/0/1", "transit: AS64500"),
            "2" => ("xe-0/0/2", "peering IX"),
            "3" => ("ae0.100", "customers"),
            other => panic!("{when}: ingress interface {other:?}: {d}"),
        };
        assert_eq!(at(d, "observer.ingress.interface.name"), name, "{when}");
        assert_eq!(at(d, "observer.ingress.interface.alias"), alias, "{when}");
        assert!(
            at(d, "observer.egress.interface.name").is_string(),
            "{when}: {d}"
        );
        if at(d, "source.ip") == "89.160.20.115" {
            se += 1;
            assert_eq!(at(d, "source.geo.country_iso_code"), "SE", "{when}: {d}");
            assert_eq!(at(d, "source.geo.city_name"), "Linköping", "{when}");
            assert_eq!(at(d, "source.as.number"), 29518, "{when}");
            assert_eq!(
                at(d, "source.as.organization.name"),
                "Bredband2 AB",
                "{when}"
            );
            assert_eq!(
                at(d, "destination.geo.country_iso_code"),
                "GB",
                "{when}: {d}"
            );
        }
    }
    assert_eq!(se, 10, "{when}");
}

fn run_and_dump(dir: &TempDir, store_extra: &str) -> (Collector, Vec<Value>) {
    let opts = Options {
        store_extra: store_extra.into(),
        extra: enrich_section(),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let n = ipfix::send(c.ipfix_port);
    assert!(
        wait_until(Duration::from_secs(15), || c.dump_all(None).len() >= n),
        "{}",
        c.log_text()
    );
    let docs = dump(&c);
    (c, docs)
}

#[test]
fn dump_shows_the_enrichment_kept_in_the_store() {
    let dir = TempDir::new("kept");
    let (mut c, docs) = run_and_dump(&dir, "");
    check_enriched(&docs, "dump with the collector's config");
    assert_eq!(c.stop(), Some(0));

    // GeoIP databases and the exporter's name gone from the config.
    let text = std::fs::read_to_string(&c.config).expect("config");
    let without = text.replace(&enrich_section(), "");
    assert_ne!(text, without);
    std::fs::write(&c.config, without).expect("rewrite config");
    check_enriched(&dump(&c), "dump without GeoIP config");
    check_enriched(&c.dump_all(None), "dump --data-dir (embedded defaults)");
    // `top` on the local store counts the kept countries and the kept sampling too.
    let mut args: Vec<&OsStr> = ["top", "--by", "country", "--format", "json"]
        .iter()
        .chain(&ALL_TIME)
        .map(OsStr::new)
        .collect();
    args.extend([OsStr::new("--config"), c.config.as_os_str()]);
    let top: Value = serde_json::from_str(&sluice_stdout(&args)).expect("top JSON");
    let raw: u64 = ipfix::flows().iter().map(|f| f.bytes).sum();
    assert_eq!(at(&top, "total.bytes").as_u64(), Some(raw * 100), "{top}");
    let keys = top["rows"].to_string();
    for cc in ["\"SE\"", "\"GB\"", "\"US\""] {
        assert!(keys.contains(cc), "{cc} in {keys}");
    }

    // And after a restart on that config, which stores nothing new.
    c.spawn();
    check_enriched(&dump(&c), "dump after a restart without GeoIP config");
    assert_eq!(c.stop(), Some(0));
}

#[test]
fn without_kept_enrichment_dump_only_has_what_it_can_find_when_reading() {
    let dir = TempDir::new("unkept");
    let (mut c, docs) = run_and_dump(&dir, "enrich = false");
    assert_eq!(c.stop(), Some(0));
    assert_eq!(docs.len(), 30);
    for d in &docs {
        // Read time has the config (GeoIP, the exporter's name), never the options data.
        assert!(at(d, "observer.ingress.interface.name").is_null(), "{d}");
        assert!(at(d, "network.sampling_interval").is_null(), "{d}");
        assert_eq!(at(d, "observer.name"), "edge-test");
    }
    let text = std::fs::read_to_string(&c.config).expect("config");
    std::fs::write(&c.config, text.replace(&enrich_section(), "")).expect("rewrite");
    for d in dump(&c) {
        assert!(at(&d, "source.geo").is_null(), "{d}");
        assert!(at(&d, "observer.name").is_null(), "{d}");
    }
}
