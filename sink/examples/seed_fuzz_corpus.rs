//! Seeds the corpora of the fuzz targets that read Sluice's own formats and languages:
//! `store_segment` gets real segment files, written by `StoreWriter` from the flows of a few
//! captures (each cut to at most 64 KiB), and `filter` gets `--where` expressions and time
//! arguments of every form the docs show.
//!
//! Usage: seed_fuzz_corpus CAPTURE_DIR CORPUS_DIR

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use sluice_decode::pcap::PcapReader;
use sluice_decode::{Datagram, Decoder};
use sluice_sink::store::{StoreConfig, StoreWriter};

fn put(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    std::fs::write(dir.join(format!("{:016x}", h.finish())), bytes)
}

const EXPRESSIONS: &[&str] = &[
    "dst port 443 and not src net 10.0.0.0/8",
    "proto tcp and (port 22 or port 3389)",
    "src host 192.0.2.1 or dst host 2001:db8::1",
    "bytes > 1000000",
    "packets >= 10 and packets < 100",
    "exporter 192.0.2.1",
    "net 198.51.100.0/24 and not proto udp",
    "src as 64496",
    "-15m",
    "2026-11-23T10:00:00Z",
    "1h30m",
    "now",
];

/// Captures whose flows make the segments: NetFlow v9, IPFIX (with variable-length fields)
/// and sFlow-free v5, so the store sees several template shapes.
const CAPTURES: &[&str] = &[
    "generated/pmacctd_nfprobe_v9.pcap",
    "generated/softflowd_ipfix.pcap",
    "generated/softflowd_v5.pcap",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
        return Err("usage: seed_fuzz_corpus CAPTURE_DIR CORPUS_DIR".into());
    };
    let (src, dst) = (Path::new(src), Path::new(dst));
    for e in EXPRESSIONS {
        put(&dst.join("filter"), e.as_bytes())?;
    }
    let tmp = std::env::temp_dir().join(format!("sluice-seed-store-{}", std::process::id()));
    // Half of the segments keep each record's enrichment (format 1.1 columns), looked up in
    // the MaxMind test databases beside the captures, so the target sees both kinds.
    let geoip = src.join("../geoip");
    let enricher = sluice_enrich::Enricher::new(&sluice_enrich::EnrichConfig {
        geoip_city: Some(geoip.join("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geoip.join("GeoLite2-ASN-Test.mmdb")),
        ..sluice_enrich::EnrichConfig::default()
    })?;
    let mut cache = enricher.cache();
    let mut enriched = sluice_enrich::Enriched::default();
    let mut segments = 0;
    let runs = CAPTURES
        .iter()
        .flat_map(|name| [(name, false), (name, true)]);
    for (i, (name, keep)) in runs.enumerate() {
        let dir = tmp.join(i.to_string());
        let mut w = StoreWriter::open(StoreConfig {
            dir: dir.clone(),
            block_records: 16,
            ..StoreConfig::default()
        })?;
        let mut decoder = Decoder::default();
        let mut reader = PcapReader::from_bytes(std::fs::read(src.join(name))?)?;
        let mut err = None;
        reader.for_each_udp(|u| {
            let dg = Datagram {
                src: u.src,
                receive_time_ns: 1_795_000_000_000_000_000,
                payload: &u.payload,
                tag: 0,
            };
            let _ = decoder.decode_with_tables(&dg, |r, tables| {
                let e = keep.then(|| {
                    enricher.enrich(&mut cache, r, &r.flow(), tables, &mut enriched);
                    &enriched
                });
                if let Err(e) = w.append_enriched(r, e, 1_795_000_000_000_000_000) {
                    err.get_or_insert(e);
                }
            });
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        w.close()?;
        for part in std::fs::read_dir(&dir)?.flatten() {
            if !part.path().is_dir() {
                continue;
            }
            for seg in std::fs::read_dir(part.path())?.flatten() {
                let bytes = std::fs::read(seg.path())?;
                if bytes.len() > 16 {
                    put(
                        &dst.join("store_segment"),
                        &bytes[..bytes.len().min(64 * 1024)],
                    )?;
                    segments += 1;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "seed_fuzz_corpus: {} expressions, {segments} segments",
        EXPRESSIONS.len()
    );
    Ok(())
}
