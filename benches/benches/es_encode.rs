//! The Elasticsearch path's CPU per document, stage by stage, on workload "captures-zipf"
//! (see `sluice_benches::FlowWorkload`): enriched ECS documents as the collector ships them
//! (GeoIP/AS from MaxMind's test databases, community ID, names), in `_bulk` bodies of at most
//! 5 MiB as the sink builds them.
//!
//! - `es_encode/encode_full`: the JSON encoder alone (flow view and enrichment done
//!   beforehand), full documents as `sluice decode` prints them;
//! - `es_encode/encode_lean`: the same for lean documents, as the sink ships them;
//! - `es_encode/flow_enrich_encode_lean`: what the shipper does per record before the sink
//!   (flow view, enrichment, lean encoding, document id);
//! - `es_gzip/BACKEND/LEVEL`: compressing the bulk bodies, per backend: `flate2` (the crate the
//!   sink calls; its backend is zlib-rs, or zlib-ng when built with `--features zlib-ng`),
//!   `zlib-rs` (the zlib-rs crate's one-shot API), `libdeflate` (libdeflater) and `isal` (the
//!   sink's ISA-L path, levels 1 and 2, when libisal.so.2 is installed). Each output is
//!   checked to decompress (with flate2) to the body before timing; the compression ratio of
//!   each is printed to stderr.
//!
//! Times are CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`, through criterion's
//! `iter_custom`), not wall time: the machine is shared, and CPU per document is the figure
//! wanted. Throughput is in documents. Run:
//! `cargo bench -p sluice-benches --bench es_encode [--features zlib-ng]`

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_benches::{shared_dir, FlowWorkload};
use sluice_decode::Flow;
use sluice_enrich::{EnrichConfig, Enriched, Enricher};
use sluice_sink::ecs::{encode_json_enriched, encode_json_lean, EncodeOptions};

const DOCS: usize = 30_000;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times; the thread CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let t0 = thread_cpu();
    for _ in 0..iters {
        f();
    }
    thread_cpu() - t0
}
/// The sink's default `batch_bytes`.
const BODY_BYTES: usize = 5 << 20;

fn geoip(name: &str) -> PathBuf {
    shared_dir().join("geoip").join(name)
}

/// The enricher as a collector with GeoIP configured has it.
fn enricher() -> Enricher {
    Enricher::new(&EnrichConfig {
        geoip_city: Some(geoip("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geoip("GeoLite2-ASN-Test.mmdb")),
        ..EnrichConfig::default()
    })
    .expect("test databases")
}

/// A gzip implementation under test: compresses `input` into `out`.
type Gzip = fn(&mut Backend, &[u8], &mut Vec<u8>);

struct Backend {
    level: u32,
    libdeflate: Option<libdeflater::Compressor>,
}

fn gzip_flate2(b: &mut Backend, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut enc =
        flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::new(b.level));
    enc.write_all(input).expect("gzip");
    *out = enc.finish().expect("gzip");
}

fn gzip_zlib_rs(b: &mut Backend, input: &[u8], out: &mut Vec<u8>) {
    use zlib_rs::{compress_bound, compress_slice, DeflateConfig};
    out.resize(compress_bound(input.len()) + 32, 0);
    let cfg = DeflateConfig {
        level: b.level as i32,
        // 15-bit window, gzip wrapper.
        window_bits: 31,
        ..DeflateConfig::default()
    };
    let (done, rc) = compress_slice(out, input, cfg);
    assert_eq!(rc, zlib_rs::ReturnCode::Ok, "zlib-rs");
    let n = done.len();
    out.truncate(n);
}

fn gzip_libdeflate(b: &mut Backend, input: &[u8], out: &mut Vec<u8>) {
    let c = b.libdeflate.get_or_insert_with(|| {
        libdeflater::Compressor::new(
            libdeflater::CompressionLvl::new(b.level as i32).expect("level"),
        )
    });
    out.resize(c.gzip_compress_bound(input.len()), 0);
    let n = c.gzip_compress(input, out).expect("bound is enough");
    out.truncate(n);
}

/// The sink's own ISA-L path (levels 1 and 2; needs libisal.so.2).
fn gzip_isal(b: &mut Backend, input: &[u8], out: &mut Vec<u8>) {
    sluice_sink::es::gzip(input, b.level, sluice_sink::es::GzipLibrary::Isal, out).expect("isal");
}

fn flate2_backend() -> &'static str {
    if cfg!(feature = "zlib-ng") {
        "flate2-zlib-ng"
    } else {
        "flate2-zlib-rs"
    }
}

fn bench(c: &mut Criterion) {
    let w = FlowWorkload::new(DOCS);
    let e = enricher();
    let mut cache = e.cache();
    let mut prepared: Vec<(Flow, Enriched)> = Vec::with_capacity(DOCS);
    w.for_each(0..DOCS, |r, _| {
        let f = r.flow();
        let mut en = Enriched::default();
        e.enrich(&mut cache, r, &f, None, &mut en);
        prepared.push((f, en));
    });
    // Bulk bodies as the sink writes them: action line, document line.
    let mut bodies: Vec<Vec<u8>> = vec![Vec::with_capacity(BODY_BYTES + 4096)];
    let mut doc = Vec::with_capacity(4096);
    let (mut doc_bytes, mut full_bytes) = (0usize, 0usize);
    w.for_each(0..DOCS, |r, i| {
        let (f, en) = &prepared[i as usize];
        doc.clear();
        encode_json_enriched(&mut doc, r, f, Some(en), &EncodeOptions::default());
        full_bytes += doc.len();
        doc.clear();
        encode_json_lean(&mut doc, r, f, Some(en));
        doc_bytes += doc.len();
        let id = sluice_ingest::ship::record_id(r, i);
        let body = bodies.last_mut().expect("a body");
        if body.len() + doc.len() + 100 > BODY_BYTES {
            bodies.push(Vec::with_capacity(BODY_BYTES + 4096));
        }
        let body = bodies.last_mut().expect("a body");
        body.extend_from_slice(b"{\"create\":{\"_index\":\"sluice-flows-2026.11.23\",\"_id\":\"");
        body.extend_from_slice(sluice_sink::es::id_hex(&id).as_bytes());
        body.extend_from_slice(b"\"}}\n");
        body.extend_from_slice(&doc);
        body.push(b'\n');
    });
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    eprintln!(
        "workload captures-zipf: {DOCS} documents, {:.0} bytes per lean document ({:.0} full; {:.0} with its action line), {} bodies",
        doc_bytes as f64 / DOCS as f64,
        full_bytes as f64 / DOCS as f64,
        body_bytes as f64 / DOCS as f64,
        bodies.len()
    );

    let mut g = c.benchmark_group("es_encode");
    g.throughput(Throughput::Elements(DOCS as u64));
    for (name, lean) in [("encode_full", false), ("encode_lean", true)] {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(1 << 16);
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    let mut n = 0;
                    w.for_each(0..DOCS, |r, i| {
                        let (f, en) = &prepared[i as usize];
                        out.clear();
                        if lean {
                            encode_json_lean(&mut out, r, f, Some(en));
                        } else {
                            let o = EncodeOptions::default();
                            encode_json_enriched(&mut out, r, f, Some(en), &o);
                        }
                        n += out.len();
                    });
                    black_box(n);
                })
            })
        });
    }
    g.bench_function("flow_enrich_encode_lean", |b| {
        let mut out = Vec::with_capacity(1 << 16);
        let mut en = Enriched::default();
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut n = 0;
                w.for_each(0..DOCS, |r, i| {
                    let f = r.flow();
                    e.enrich(&mut cache, r, &f, None, &mut en);
                    out.clear();
                    encode_json_lean(&mut out, r, &f, Some(&en));
                    n += out.len() + usize::from(sluice_ingest::ship::record_id(r, i)[0]);
                });
                black_box(n);
            })
        })
    });
    g.finish();

    let backends: [(&str, Gzip); 4] = [
        (flate2_backend(), gzip_flate2),
        ("zlib-rs", gzip_zlib_rs),
        ("libdeflate", gzip_libdeflate),
        ("isal", gzip_isal),
    ];
    if !sluice_sink::es::isal_available() {
        eprintln!("libisal.so.2 not found (apt install libisal2): no isal rows");
    }
    let mut g = c.benchmark_group("es_gzip");
    g.throughput(Throughput::Elements(DOCS as u64));
    g.sample_size(10);
    for level in [1u32, 2, 6] {
        for (name, f) in backends {
            if name == "isal" && (level > 2 || !sluice_sink::es::isal_available()) {
                continue;
            }
            let mut be = Backend {
                level,
                libdeflate: None,
            };
            // Valid gzip that gives the body back, and the ratio.
            let mut out = Vec::new();
            let mut packed = 0usize;
            for body in &bodies {
                f(&mut be, body, &mut out);
                packed += out.len();
                let mut back = Vec::with_capacity(body.len());
                flate2::read::GzDecoder::new(&out[..])
                    .read_to_end(&mut back)
                    .expect("valid gzip");
                assert!(back == *body, "{name} level {level}: round trip differs");
            }
            eprintln!(
                "{name} level {level}: {body_bytes} -> {packed} bytes, ratio {:.1}",
                body_bytes as f64 / packed as f64
            );
            g.bench_with_input(BenchmarkId::new(name, level), &bodies, |b, bodies| {
                b.iter_custom(|iters| {
                    cpu_time(iters, || {
                        let mut n = 0;
                        for body in bodies {
                            f(&mut be, body, &mut out);
                            n += out.len();
                        }
                        black_box(n);
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
