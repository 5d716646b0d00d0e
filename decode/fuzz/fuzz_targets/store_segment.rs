#![no_main]
//! One local-store segment file (as a crash, a full disk or a bad disk may leave it) read by
//! `StoreReader`: every block it accepts must decode into records the encoder can take, with
//! the enrichment kept in its enrichment columns (format 1.1) when it has them, and whatever
//! it rejects must be counted, never panic.
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_enrich::{EnrichConfig, Enriched, Enricher};
use sluice_sink::ecs::{encode_json_enriched, EncodeOptions};
use sluice_sink::store::StoreReader;

/// `<tmp>/sluice-fuzz-store-<pid>/flows`, holding one hour partition with one segment.
fn store() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir()
            .join(format!("sluice-fuzz-store-{}", std::process::id()))
            .join("flows");
        let part = root.join("2026-11-23T14");
        std::fs::create_dir_all(&part).expect("fuzz store dir");
        (root, part.join("seg-00000001.sls"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (root, seg) = store();
    std::fs::write(seg, data).expect("write segment");
    let Ok(reader) = StoreReader::open(root) else {
        return;
    };
    static ENRICHER: OnceLock<Enricher> = OnceLock::new();
    let en = ENRICHER.get_or_init(|| Enricher::new(&EnrichConfig::default()).expect("enricher"));
    let mut cache = en.cache();
    let mut e = Enriched::default();
    let mut out = Vec::new();
    let _ = reader.scan_kept(i64::MIN, i64::MAX, |r, kept| {
        let f = r.flow();
        match kept {
            Some(k) => en.enrich_kept(&mut cache, r, &f, k, &mut e),
            None => en.enrich(&mut cache, r, &f, None, &mut e),
        }
        out.clear();
        encode_json_enriched(&mut out, r, &f, Some(&e), &EncodeOptions { annotate: true });
    });
});
