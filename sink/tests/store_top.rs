//! `top --by interface` over the local store names the interfaces: the texts kept with the
//! records (learned from options data, or the config of the collector that stored them),
//! the reader's config for records stored without enrichment, the most recent flow's texts
//! when an interface was renamed (by flow time, not by the order records were stored), the
//! same answer on one thread and on several, and interfaces nobody named stay unnamed.

mod store_util;

use std::net::IpAddr;

use sluice_decode::{InterfaceInfo, ScopeTables};
use sluice_enrich::{EnrichConfig, Enriched, Enricher, ExporterConfig, InterfaceConfig};
use sluice_sink::store::{StoreConfig, StoreReader, StoreWriter};
use sluice_sink::top::{top_local, By, IfNames, Key, LocalQuery, Order, Top};
use store_util::*;

/// A configured exporter (interfaces 1 and 2 named in the config, 3 not).
const CONFIGURED: [u8; 4] = [198, 51, 100, 1];
/// An exporter without config that names its interfaces in options data (10 renamed, 11
/// with a description only, 20 not named).
const LEARNING: [u8; 4] = [198, 51, 100, 2];

/// Record bytes for [`ipfix_template`]: one UDP flow of `bytes` from `in_if` to `out_if`.
fn data(bytes: u64, in_if: u32, out_if: u32) -> Vec<u8> {
    let mut d = vec![10, 0, 0, 1, 10, 0, 0, 2];
    d.extend_from_slice(&[0x9c, 0x40, 0, 53, 17]);
    d.extend_from_slice(&bytes.to_be_bytes());
    d.extend_from_slice(&1u32.to_be_bytes());
    d.extend_from_slice(&in_if.to_be_bytes());
    d.extend_from_slice(&out_if.to_be_bytes());
    d.extend_from_slice(&[0; 9]); // no sampler id, no ASes
    d
}

fn iface(index: u32, name: &str, description: Option<&str>) -> InterfaceConfig {
    InterfaceConfig {
        index,
        name: Some(name.into()),
        description: description.map(Into::into),
    }
}

fn enricher(interfaces: Vec<InterfaceConfig>) -> Enricher {
    Enricher::new(&EnrichConfig {
        exporters: vec![ExporterConfig {
            address: IpAddr::from(CONFIGURED),
            name: Some("edge-1".into()),
            sampling_interval: None,
            interfaces,
        }],
        ..EnrichConfig::default()
    })
    .expect("enricher")
}

/// Options data naming interface 10 `name10`, and 11 by a description only.
fn learned(name10: &str) -> ScopeTables {
    let mut t = ScopeTables::default();
    t.interfaces.insert(
        10,
        InterfaceInfo {
            name: Some(name10.into()),
            description: Some("transit AS64500".into()),
        },
    );
    t.interfaces.insert(
        11,
        InterfaceInfo {
            name: None,
            description: Some("customer, rack 4".into()),
        },
    );
    t
}

/// One flow record: (exporter, its options tables, time, bytes, in, out, keep enrichment).
type Flow<'a> = ([u8; 4], Option<&'a ScopeTables>, i64, u64, u32, u32, bool);

/// Stores the flows as the collector does (enriched once, kept or not), in small blocks so
/// that several scan shards have some.
fn store(dir: &std::path::Path, flows: &[Flow<'_>]) {
    let en = enricher(vec![
        iface(1, "ge-0/0/1", Some("uplink to pop-7")),
        iface(2, "ge-0/0/2", None),
    ]);
    let mut cache = en.cache();
    let mut e = Enriched::default();
    let t = ipfix_template();
    let mut w = StoreWriter::open(StoreConfig {
        block_records: 3,
        ..config(dir)
    })
    .expect("writer");
    for &(exporter, tables, ts, bytes, in_if, out_if, keep) in flows {
        let h = ipfix_header(IpAddr::from(exporter), ts, 0);
        let d = data(bytes, in_if, out_if);
        let rec = fixed_record(&h, &t, &d);
        en.enrich(&mut cache, &rec, &rec.flow(), tables, &mut e);
        w.append_enriched(&rec, keep.then_some(&e), ts)
            .expect("append");
    }
    w.close().expect("close");
}

fn top(dir: &std::path::Path, reader_config: &Enricher, threads: usize) -> Top {
    let reader = StoreReader::open(dir).expect("reader");
    let q = LocalQuery {
        from_ns: T2026 - HOUR,
        to_ns: T2026 + HOUR,
        filter: None,
        by: By::Interface,
        order: Order::Bytes,
        n: 100,
        threads,
    };
    top_local(&reader, &q, reader_config).expect("top").0
}

fn names(name: Option<&str>, description: Option<&str>) -> IfNames {
    IfNames {
        name: name.map(Box::from),
        description: description.map(Box::from),
    }
}

#[test]
fn interface_rows_show_the_names_kept_learned_or_configured() {
    let tmp = TempDir::new("top-ifnames");
    let old = learned("et-0/0/10");
    let renamed = learned("et-0/0/10.new");
    let stale = learned("et-0/0/10.stale");
    let ms = 1_000_000;
    let (c, l) = (CONFIGURED, LEARNING);
    store(
        tmp.path(),
        &[
            // Kept: the collector's config names 1 (both texts); 3 has none.
            (c, None, T2026, 1000, 1, 3, true),
            (c, None, T2026 + ms, 900, 3, 1, true),
            // Not kept (as blocks of format 1.0 or `store.enrich = false`): 2 is named by
            // the reader's config.
            (c, None, T2026 + 2 * ms, 800, 2, 3, false),
            // Options data: 10 renamed later; 11 described only; 20 never named.
            (l, Some(&old), T2026, 700, 10, 20, true),
            (l, Some(&old), T2026 + 5 * ms, 600, 20, 10, true),
            (l, Some(&renamed), T2026 + 9 * ms, 500, 10, 11, true),
            (l, None, T2026 + 10 * ms, 400, 10, 20, true),
            // Stored last, but older than the rename: its name is not the most recent.
            (l, Some(&stale), T2026 + 7 * ms, 300, 10, 20, true),
        ],
    );
    // The reader's config renames 1 (kept records keep the collector's texts) and names 2.
    let reader_config = enricher(vec![
        iface(1, "reader-name-for-1", None),
        iface(2, "ge-0/0/2 (reader)", Some("to lab")),
    ]);
    let want = [
        (c, 1, names(Some("ge-0/0/1"), Some("uplink to pop-7"))),
        (c, 2, names(Some("ge-0/0/2 (reader)"), Some("to lab"))),
        (c, 3, IfNames::default()),
        (l, 10, names(Some("et-0/0/10.new"), Some("transit AS64500"))),
        (l, 11, names(None, Some("customer, rack 4"))),
        (l, 20, IfNames::default()),
    ];
    for threads in [1, 3] {
        let t = top(tmp.path(), &reader_config, threads);
        assert_eq!(t.rows.len(), want.len(), "{threads} threads: {:?}", t.rows);
        for (exporter, index, names) in &want {
            let key = Key::Interface(IpAddr::from(*exporter), *index);
            let row = t
                .rows
                .iter()
                .find(|r| r.key == key)
                .unwrap_or_else(|| panic!("{threads} threads: no row {key:?}"));
            assert_eq!(&row.names, names, "{threads} threads: {key:?}");
        }
    }

    // Other groupings carry no interface texts.
    let reader = StoreReader::open(tmp.path()).expect("reader");
    let q = LocalQuery {
        from_ns: T2026 - HOUR,
        to_ns: T2026 + HOUR,
        filter: None,
        by: By::Exporter,
        order: Order::Flows,
        n: 10,
        threads: 1,
    };
    let t = top_local(&reader, &q, &reader_config).expect("top").0;
    assert_eq!(t.rows.len(), 2);
    assert!(t.rows.iter().all(|r| r.names.is_empty()));
}
