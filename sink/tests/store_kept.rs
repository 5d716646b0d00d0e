//! The store's enrichment columns (format 1.1): what `append_enriched` keeps comes back from
//! `scan_kept` exactly (every field, absent values, thousands of distinct strings over many
//! blocks), gives the same documents as enriching live, and blocks without the columns read
//! as before.

mod store_util;

use std::net::IpAddr;
use std::path::Path;

use sluice_decode::{ExportHeader, InterfaceInfo, Record, ScopeTables};
use sluice_enrich::{EnrichConfig, Enriched, Enricher, ExporterConfig, InterfaceConfig};
use sluice_sink::ecs::{encode_json_enriched, EncodeOptions};
use sluice_sink::store::{StoreConfig, StoreReader, StoreWriter};
use store_util::*;

/// Public addresses of the MaxMind test databases (with and without AS, city, region) and
/// private ones (nothing to look up).
const ADDRS: [[u8; 4]; 8] = [
    [89, 160, 20, 115],
    [81, 2, 69, 142],
    [216, 160, 83, 56],
    [2, 125, 160, 216],
    [175, 16, 199, 1],
    [1, 128, 0, 1],
    [10, 1, 2, 3],
    [192, 168, 7, 9],
];

const EXPORTERS: usize = 6;

fn exporter(e: usize) -> IpAddr {
    IpAddr::from([198, 51, 100, e as u8 + 1])
}

/// Exporters 0-3 are configured (named, 300 interfaces each with their own texts, exporter 3
/// with a sampling override); 4 and 5 are not.
fn enricher() -> Enricher {
    let exporters = (0..4)
        .map(|e| ExporterConfig {
            address: exporter(e),
            name: Some(format!("edge-{e}")),
            sampling_interval: (e == 3).then_some(16),
            interfaces: (0..300)
                .map(|i| InterfaceConfig {
                    index: i,
                    name: Some(format!("e{e}-ge-0/0/{i}")),
                    description: (i % 3 != 0).then(|| format!("uplink {e}/{i} to pop-{}", i * 7)),
                })
                .collect(),
        })
        .collect();
    Enricher::new(&EnrichConfig {
        geoip_city: Some(geoip("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geoip("GeoLite2-ASN-Test.mmdb")),
        exporters,
        ..EnrichConfig::default()
    })
    .expect("enricher")
}

/// Options-data tables of an unconfigured exporter: a sampler table and interface texts for
/// ifIndex 0..400 (names for even ones).
fn learned_tables(e: usize) -> ScopeTables {
    let mut t = ScopeTables::default();
    t.samplers.insert(1, 100 + e as u32);
    t.samplers.insert(u64::MAX, 7);
    for i in 0..400u32 {
        t.interfaces.insert(
            i,
            InterfaceInfo {
                name: (i % 2 == 0).then(|| format!("x{e}-eth{i}").into()),
                description: Some(format!("learned {e}/{i}").into()),
            },
        );
    }
    t
}

fn data(i: u64) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&ADDRS[(i % 8) as usize]);
    d.extend_from_slice(&ADDRS[((i / 8) % 8) as usize]);
    d.extend_from_slice(&(40_000 + (i % 1000) as u16).to_be_bytes());
    d.extend_from_slice(&443u16.to_be_bytes());
    d.push(6);
    d.extend_from_slice(&(1000 + i).to_be_bytes());
    d.extend_from_slice(&((i % 9) as u32 + 1).to_be_bytes());
    d.extend_from_slice(&((i * 7 % 430) as u32).to_be_bytes());
    d.extend_from_slice(&((i * 13 % 430) as u32).to_be_bytes());
    d.push((i % 3) as u8); // sampler 0 (unknown), 1 (in the table), 2 (unknown)
    d.extend_from_slice(&(if i.is_multiple_of(5) { 64_500 } else { 0u32 }).to_be_bytes());
    d.extend_from_slice(&(i as u32 % 2).to_be_bytes());
    d
}

fn header(e: usize, i: u64) -> ExportHeader {
    ipfix_header(exporter(e), T2026 + i as i64 * 1_000_000, i as u32)
}

/// The document of a record with its enrichment, and the kept values as debug text (every
/// field of them, region and location included, which documents do not all show).
fn shown(rec: &Record<'_>, e: &Enriched) -> (String, String) {
    let mut out = Vec::new();
    encode_json_enriched(
        &mut out,
        rec,
        &rec.flow(),
        Some(e),
        &EncodeOptions::default(),
    );
    (
        String::from_utf8(out).expect("utf-8"),
        format!("{:?}", e.kept()),
    )
}

const RECORDS: u64 = 6000;

/// Writes RECORDS records over the exporters, enriched live, keeping the enrichment of
/// record `i` when `keep(i)`; returns what each showed.
fn write(dir: &Path, keep: impl Fn(u64) -> bool) -> Vec<(String, String)> {
    let en = enricher();
    let mut cache = en.cache();
    let mut e = Enriched::default();
    let t = ipfix_template();
    let tables: Vec<ScopeTables> = (0..EXPORTERS).map(learned_tables).collect();
    let mut w = StoreWriter::open(StoreConfig {
        block_records: 97,
        ..config(dir)
    })
    .expect("writer");
    let mut want = Vec::new();
    for i in 0..RECORDS {
        let ex = (i as usize / 3) % EXPORTERS;
        let h = header(ex, i);
        let d = data(i);
        let rec = fixed_record(&h, &t, &d);
        // Exporters 2 and 5 send options data.
        let scope = (ex == 2 || ex == 5).then(|| &tables[ex]);
        en.enrich(&mut cache, &rec, &rec.flow(), scope, &mut e);
        want.push(shown(&rec, &e));
        w.append_enriched(&rec, keep(i).then_some(&e), T2026)
            .expect("append");
    }
    w.close().expect("close");
    want
}

#[test]
fn kept_enrichment_round_trips() {
    let tmp = TempDir::new("kept");
    let want = write(tmp.path(), |_| true);
    // Read back through an enricher with no databases and no exporters configured: the
    // values can only come from the store.
    let bare = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut cache = bare.cache();
    let mut e = Enriched::default();
    let mut got = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let st = StoreReader::open(tmp.path())
        .expect("reader")
        .scan_kept(i64::MIN, i64::MAX, |rec, kept| {
            let kept = kept.expect("every block has enrichment columns");
            names.extend(kept.in_if.name.map(str::to_string));
            bare.enrich_kept(&mut cache, rec, &rec.flow(), kept, &mut e);
            got.push(shown(rec, &e));
        })
        .expect("scan");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "record {i}");
    }
    assert!(st.blocks_read > 50, "{st:?}");
    assert_eq!((st.blocks_corrupt, st.records_skipped), (0, 0));
    // What the test covers: geo and none, AS with and without organization, configured and
    // learned and missing interface texts, every sampling source but the record's.
    let all: String = want.iter().map(|w| w.1.as_str()).collect();
    for needle in [
        "Linköping",
        "region_iso_code: Some(\"GB-ENG\")",
        "as_number: Some(29518)",
        "as_number: Some(64500), as_organization: None",
        "geo: None",
        "e1-ge-0/0/",
        "x5-eth",
        "description: None",
        "Config",
        "Sampler",
        "Scope",
        "exporter_name: None",
    ] {
        assert!(all.contains(needle), "the data set lacks {needle}");
    }
    assert!(
        names.len() > 1000,
        "{} distinct interface names",
        names.len()
    );
}

/// Records written without enrichment into blocks that have the columns (what the collector
/// does when keeping would add nothing to the record) read back as "nothing kept", and their
/// neighbours keep theirs.
#[test]
fn records_without_enrichment_in_a_kept_block_read_back_as_not_kept() {
    let tmp = TempDir::new("kept-mixed");
    let skipped = |i: u64| i % 7 == 3;
    let want = write(tmp.path(), |i| !skipped(i));
    let bare = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let mut cache = bare.cache();
    let mut e = Enriched::default();
    let (mut i, mut kept_n, mut not_kept) = (0u64, 0u64, 0u64);
    StoreReader::open(tmp.path())
        .expect("reader")
        .scan_kept(i64::MIN, i64::MAX, |rec, kept| {
            match kept {
                Some(k) => {
                    assert!(!skipped(i), "record {i} was written without enrichment");
                    bare.enrich_kept(&mut cache, rec, &rec.flow(), k, &mut e);
                    assert_eq!(shown(rec, &e), want[i as usize], "record {i}");
                    kept_n += 1;
                }
                None => {
                    assert!(skipped(i), "record {i} lost its kept enrichment");
                    not_kept += 1;
                }
            }
            i += 1;
        })
        .expect("scan");
    assert_eq!(i, RECORDS);
    assert!(kept_n > 0 && not_kept > 0, "{kept_n} {not_kept}");
}

#[test]
fn without_enrichment_blocks_have_no_columns_and_are_smaller() {
    let with = TempDir::new("kept-on");
    let without = TempDir::new("kept-off");
    write(with.path(), |_| true);
    write(without.path(), |_| false);
    let mut n = 0;
    StoreReader::open(without.path())
        .expect("reader")
        .scan_kept(i64::MIN, i64::MAX, |_, kept| {
            assert!(kept.is_none());
            n += 1;
        })
        .expect("scan");
    assert_eq!(n, RECORDS);
    let size = |d: &Path| -> u64 {
        segment_files(d)
            .iter()
            .map(|p| std::fs::metadata(p).expect("segment").len())
            .sum()
    };
    let (a, b) = (size(with.path()), size(without.path()));
    println!(
        "{RECORDS} records: {:.1} bytes/record with enrichment columns, {:.1} without",
        a as f64 / RECORDS as f64,
        b as f64 / RECORDS as f64
    );
    assert!(a > b, "{a} vs {b}");
}

/// The committed 1.0 segments read through `scan_kept` too, without kept values.
#[test]
fn old_segments_have_no_kept_values() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1.0");
    let mut n = 0;
    let st = StoreReader::open(&dir)
        .expect("reader")
        .scan_kept(i64::MIN, i64::MAX, |_, kept| {
            assert!(kept.is_none());
            n += 1;
        })
        .expect("scan");
    assert!(n > 20 && st.blocks_unsupported == 0 && st.blocks_corrupt == 0);
}
