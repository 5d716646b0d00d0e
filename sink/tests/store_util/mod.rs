//! Helpers shared by the store tests: temporary directories, captures through the decoder
//! into a store, synthetic records, scans collected as documents.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_decode::pcap::PcapReader;
use sluice_decode::template::{Dialect, FieldSpec, Template};
use sluice_decode::time::export_ns;
use sluice_decode::{Datagram, Decoder, ExportHeader, Limits, Record};
use sluice_sink::ecs::{encode_json, EncodeOptions};
use sluice_sink::store::{ScanStats, StoreConfig, StoreReader, StoreWriter};

pub const SEC: i64 = 1_000_000_000;
pub const HOUR: i64 = 3600 * SEC;
/// 2026-11-23T14:00:00Z.
pub const T2026: i64 = 1_795_442_400 * SEC;

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "sluice-store-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

/// A MaxMind test database of `../shared/geoip`.
pub fn geoip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/geoip")
        .join(name)
}

/// Enrichment with the MaxMind test databases (city and AS) and nothing configured.
pub fn geoip_enricher() -> sluice_enrich::Enricher {
    sluice_enrich::Enricher::new(&sluice_enrich::EnrichConfig {
        geoip_city: Some(geoip("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geoip("GeoLite2-ASN-Test.mmdb")),
        ..sluice_enrich::EnrichConfig::default()
    })
    .expect("the MaxMind test databases")
}

/// Capture files directly in each subdirectory (not `invalid/`), sorted.
pub fn capture_files(subdirs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in subdirs {
        let dir = captures().join(d);
        let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in rd {
            let p = e.expect("dir entry").path();
            let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
            if p.is_file() && (ext == "pcap" || ext == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no captures under {:?}", subdirs);
    out
}

/// The document `sluice decode` prints for a record (default options: no frame tag).
pub fn doc(rec: &Record<'_>) -> String {
    let mut out = Vec::new();
    encode_json(&mut out, rec, &rec.flow(), &EncodeOptions::default());
    String::from_utf8(out).expect("documents are UTF-8")
}

/// One record as appended: its @timestamp, the writer clock used, its document.
#[derive(Clone, Debug)]
pub struct Appended {
    pub ts: i64,
    pub now: i64,
    pub doc: String,
}

/// Decodes a capture as `sluice decode --include-options` does and hands every record to
/// `sink` with the capture time as "now".
pub fn decode_capture(path: &Path, mut sink: impl FnMut(&Record<'_>, i64)) {
    let mut reader = PcapReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = Decoder::new(Limits::default());
    reader
        .for_each_udp(|udp| {
            let dg = Datagram {
                src: udp.src,
                receive_time_ns: udp.ts_nanos,
                payload: &udp.payload,
                tag: udp.frame,
            };
            let _ = decoder.decode(&dg, |rec| sink(rec, udp.ts_nanos));
        })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decoder.finish();
}

/// Appends every record of a capture; returns what was appended.
pub fn store_capture(path: &Path, w: &mut StoreWriter) -> Vec<Appended> {
    let mut out = Vec::new();
    decode_capture(path, |rec, now| {
        w.append(rec, now)
            .unwrap_or_else(|e| panic!("{}: append: {e}", path.display()));
        out.push(Appended {
            ts: export_ns(rec),
            now,
            doc: doc(rec),
        });
    });
    out
}

/// The order a scan returns records in: by partition (the writer's placement rule), then in
/// append order. Valid for one writer whose records all fit in open partitions.
pub fn scan_order(items: &[Appended], cfg: &StoreConfig) -> Vec<Appended> {
    let psecs = cfg.partition_secs as i64 * SEC;
    let outlier = (cfg.outlier_secs as i64).saturating_mul(SEC);
    let mut v: Vec<(i64, Appended)> = items
        .iter()
        .map(|a| {
            let placed = if a.ts.abs_diff(a.now) > outlier.unsigned_abs() {
                a.now
            } else {
                a.ts
            };
            (placed.div_euclid(psecs), a.clone())
        })
        .collect();
    v.sort_by_key(|(p, _)| *p);
    v.into_iter().map(|(_, a)| a).collect()
}

/// Every document in [from, to), in scan order.
pub fn scan_docs(dir: &Path, from: i64, to: i64) -> (Vec<String>, ScanStats) {
    let r = StoreReader::open(dir).expect("reader");
    let mut docs = Vec::new();
    let st = r.scan(from, to, |rec| docs.push(doc(rec))).expect("scan");
    (docs, st)
}

pub fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_path_buf(),
        ..StoreConfig::default()
    }
}

/// A NetFlow v9 flow template: addresses, ports, protocol, counters, uptime times.
pub fn synth_template() -> Template {
    let fields = [
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (1, 8),
        (2, 4),
        (22, 4),
        (21, 4),
    ];
    template_of(260, Dialect::V9, &fields)
}

/// A template of IANA elements, given as (id, length).
fn template_of(id: u16, dialect: Dialect, fields: &[(u16, u16)]) -> Template {
    let specs: Vec<FieldSpec> = fields
        .iter()
        .map(|&(id, len)| FieldSpec { id, pen: 0, len })
        .collect();
    Template::compile(id, dialect, false, 0, &specs).expect("template compiles")
}

/// A record of a template without variable-length fields.
pub fn fixed_record<'a>(h: &'a ExportHeader, t: &'a Template, data: &'a [u8]) -> Record<'a> {
    Record {
        header: h,
        template: t,
        data,
        spans: &t.fixed_spans,
        system_init_ms: None,
    }
}

pub fn synth_header(export_ns: i64, seq: u32) -> ExportHeader {
    ExportHeader {
        version: 9,
        exporter: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 2055),
        source_id: 7,
        export_time_ns: export_ns,
        sys_uptime_ms: Some(3_600_000 + seq),
        sequence: seq,
        receive_time_ns: export_ns + 1_500_000,
        sampling_interval: 0,
        tag: 0,
    }
}

/// An IPFIX flow template: addresses, ports, protocol, counters, input and output
/// interfaces, sampler id, the record's ASes.
pub fn ipfix_template() -> Template {
    let fields = [
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (1, 8),
        (2, 4),
        (10, 4),
        (14, 4),
        (48, 1),
        (16, 4),
        (17, 4),
    ];
    template_of(300, Dialect::Ipfix, &fields)
}

/// An IPFIX export header from `exporter` at `export_ns`, received 5 ns later.
pub fn ipfix_header(exporter: IpAddr, export_ns: i64, seq: u32) -> ExportHeader {
    ExportHeader {
        version: 10,
        exporter: SocketAddr::new(exporter, 4739),
        source_id: 1,
        export_time_ns: export_ns,
        sys_uptime_ms: None,
        sequence: seq,
        receive_time_ns: export_ns + 5,
        sampling_interval: 0,
        tag: 0,
    }
}

/// Record bytes for [`synth_template`]; `id` goes to the byte counter so that records can be
/// told apart.
pub fn synth_data(id: u64) -> Vec<u8> {
    let mut d = Vec::with_capacity(37);
    d.extend_from_slice(&[10, 0, (id >> 8) as u8, id as u8]);
    d.extend_from_slice(&[192, 168, 1, (id % 7) as u8]);
    d.extend_from_slice(&(40_000 + (id % 1000) as u16).to_be_bytes());
    d.extend_from_slice(&443u16.to_be_bytes());
    d.push(6);
    d.extend_from_slice(&id.to_be_bytes());
    d.extend_from_slice(&((id % 50) as u32 + 1).to_be_bytes());
    d.extend_from_slice(&3_500_000u32.to_be_bytes());
    d.extend_from_slice(&3_599_000u32.to_be_bytes());
    d
}

/// Appends a synthetic record stamped `export_ns` with id `id`.
pub fn append_synth(
    w: &mut StoreWriter,
    t: &Template,
    export_ns: i64,
    id: u64,
    now: i64,
) -> Appended {
    let h = synth_header(export_ns, id as u32);
    let data = synth_data(id);
    let rec = fixed_record(&h, t, &data);
    w.append(&rec, now).expect("append");
    Appended {
        ts: export_ns,
        now,
        doc: doc(&rec),
    }
}

/// The synthetic id (the byte counter) of a scanned record.
pub fn synth_id(rec: &Record<'_>) -> u64 {
    rec.flow().bytes.expect("synthetic records carry bytes")
}

/// Segment files under a store, sorted.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in std::fs::read_dir(dir).expect("store dir") {
        let p = p.expect("entry").path();
        if p.is_dir() {
            for s in std::fs::read_dir(&p).expect("partition") {
                let s = s.expect("entry").path();
                if s.extension().and_then(|x| x.to_str()) == Some("sls") {
                    out.push(s);
                }
            }
        }
    }
    out.sort();
    out
}

/// Partition directory names, sorted.
pub fn partition_names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("store dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// A small deterministic generator (xorshift64*), enough for picking offsets and ranges.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}
