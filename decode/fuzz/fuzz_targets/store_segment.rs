#![no_main]
//! One local-store segment file (as a crash, a full disk or a bad disk may leave it) read by
//! `StoreReader`: every block it accepts must decode into records the encoder can take, and
//! whatever it rejects must be counted, never panic.
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_sink::ecs::{encode_json, EncodeOptions};
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
    let mut out = Vec::new();
    let _ = reader.scan(i64::MIN, i64::MAX, |r| {
        let f = r.flow();
        out.clear();
        encode_json(&mut out, r, &f, &EncodeOptions { annotate: true });
    });
});
