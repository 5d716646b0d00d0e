//! Per-stage costs of the collector's path after decode: copying records into an arena batch
//! (what the receive thread does), appending a batch to the local store with block encoding and
//! zstd (the store thread), the same with the record-age histogram the collector keeps, and
//! encoding ECS JSON (the Elasticsearch path), each on the same
//! records: every flow record of pmacct's v9 and IPFIX captures (the exporter EdgeOS and VyOS
//! run), repeated to 46,000 records. No peer exists for these stages; the store's bytes per
//! record are printed so they can be set against nfcapd's file size for the same flows.
//!
//! Run: `cargo bench -p sluice-benches --bench pipeline`

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_decode::pcap::PcapReader;
use sluice_decode::time::end_ns;
use sluice_decode::{Datagram, Decoder};
use sluice_ingest::batch::Batch;
use sluice_sink::ecs::{encode_json, EncodeOptions};
use sluice_sink::store::{RecordAges, StoreConfig, StoreWriter, AGE_SAMPLE_EVERY};

fn datagrams() -> Vec<(SocketAddr, Vec<u8>)> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures");
    let mut v = Vec::new();
    // SLUICE_PIPELINE_CAPTURES: other captures (comma-separated, under shared/captures), e.g.
    // generated/softflowd_v5.pcap.
    let chosen = std::env::var("SLUICE_PIPELINE_CAPTURES").unwrap_or_else(|_| {
        "generated/pmacctd_nfprobe_v9.pcap,generated/pmacctd_nfprobe_ipfix.pcap".into()
    });
    for f in chosen.split(',') {
        let mut r = PcapReader::open(&base.join(f)).expect("capture");
        r.for_each_udp(|u| v.push((u.src, u.payload.to_vec())))
            .expect("read");
    }
    v
}

/// Decodes the datagrams `loops` times into batches of up to 4096 records.
fn batches(d: &mut Decoder, dgs: &[(SocketAddr, Vec<u8>)], loops: usize) -> Vec<Batch> {
    let mut out = vec![Batch::new(0, 4096)];
    for _ in 0..loops {
        for (src, p) in dgs {
            let dg = Datagram {
                src: *src,
                receive_time_ns: 1_800_000_000_000_000_000,
                payload: p,
                tag: 0,
            };
            let b = out.last_mut().expect("a batch");
            let _ = d.decode_with_tables(&dg, |r, t| {
                if !r.template.options {
                    b.push(r, t);
                }
            });
            if b.len() >= 4096 {
                out.push(Batch::new(0, 4096));
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let dgs = datagrams();
    let mut d = Decoder::default();
    let all = batches(&mut d, &dgs, 500);
    let records: usize = all.iter().map(Batch::len).sum();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(records as u64));

    g.bench_function("decode_and_batch", |b| {
        let mut batch = Batch::new(0, 4096);
        b.iter(|| {
            let mut n = 0;
            for _ in 0..500 {
                for (src, p) in &dgs {
                    let dg = Datagram {
                        src: *src,
                        receive_time_ns: 1_800_000_000_000_000_000,
                        payload: p,
                        tag: 0,
                    };
                    let _ = d.decode_with_tables(&dg, |r, t| {
                        if !r.template.options {
                            batch.push(r, t);
                            n += 1;
                        }
                    });
                    if batch.len() >= 4096 {
                        batch.reset();
                    }
                }
            }
            black_box(n)
        })
    });

    let dir = std::env::temp_dir().join(format!("sluice-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // SLUICE_PIPELINE_ZSTD_LEVEL: another zstd level for this one (default: the store's).
    let level = std::env::var("SLUICE_PIPELINE_ZSTD_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(StoreConfig::default().zstd_level);
    let mut w = StoreWriter::open(StoreConfig {
        dir: dir.clone(),
        zstd_level: level,
        ..StoreConfig::default()
    })
    .expect("store");
    let mut scratch = Vec::new();
    g.bench_function("store_append_encode_zstd", |b| {
        b.iter(|| {
            for batch in &all {
                batch.for_each(&mut scratch, |r| {
                    w.append(r, 1_800_000_000_000_000_000).expect("append")
                });
            }
            black_box(w.flush().expect("flush"))
        })
    });
    let st = w.stats();
    eprintln!(
        "store: {} records, {} bytes on disk, {:.1} bytes per record",
        st.records_written,
        st.bytes_on_disk,
        st.bytes_on_disk as f64 / st.records_written.max(1) as f64
    );
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);

    // What the store thread does with `[store] enrich` on (the default): each record enriched
    // once (GeoLite2 test databases; what its receive thread learned from options data) and
    // appended with its enrichment, which the block keeps in its enrichment columns. The
    // difference to store_append_encode_zstd is what keeping enrichment costs per record.
    let en = sluice_enrich::Enricher::new(&sluice_enrich::EnrichConfig {
        geoip_city: Some(sluice_benches::shared_dir().join("geoip/GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(sluice_benches::shared_dir().join("geoip/GeoLite2-ASN-Test.mmdb")),
        ..sluice_enrich::EnrichConfig::default()
    })
    .expect("test databases");
    let mut cache = en.cache();
    let mut e = sluice_enrich::Enriched::default();
    let mut w = StoreWriter::open(StoreConfig {
        dir: dir.clone(),
        ..StoreConfig::default()
    })
    .expect("store");
    g.bench_function("store_enrich_append_kept_encode_zstd", |b| {
        b.iter(|| {
            for batch in &all {
                batch.for_each_learned(&mut scratch, |r, learned| {
                    let flow = r.flow();
                    en.enrich_learned(&mut cache, r, &flow, learned, &mut e);
                    w.append_enriched(r, Some(&e), 1_800_000_000_000_000_000)
                        .expect("append")
                });
            }
            black_box(w.flush().expect("flush"))
        })
    });
    let st = w.stats();
    eprintln!(
        "store with enrichment columns: {} records, {} bytes on disk, {:.1} bytes per record",
        st.records_written,
        st.bytes_on_disk,
        st.bytes_on_disk as f64 / st.records_written.max(1) as f64
    );
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);

    // What the collector does when the local store is the only sink: the enrichment limited
    // to what the store keeps.
    let mut w = StoreWriter::open(StoreConfig {
        dir: dir.clone(),
        ..StoreConfig::default()
    })
    .expect("store");
    g.bench_function("store_enrich_for_store_append_kept_encode_zstd", |b| {
        b.iter(|| {
            for batch in &all {
                batch.for_each_learned(&mut scratch, |r, learned| {
                    let flow = r.flow();
                    en.enrich_learned_for_store(&mut cache, r, &flow, learned, &mut e);
                    w.append_enriched(r, Some(&e), 1_800_000_000_000_000_000)
                        .expect("append")
                });
            }
            black_box(w.flush().expect("flush"))
        })
    });
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);

    // The flow view alone, which every enrichment starts from.
    g.bench_function("flow_view_only", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for batch in &all {
                batch.for_each_learned(&mut scratch, |r, _| {
                    n += r.flow().bytes.unwrap_or(0);
                });
            }
            black_box(n)
        })
    });

    // The enrichment alone, for the split of the above.
    g.bench_function("store_enrich_only", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for batch in &all {
                batch.for_each_learned(&mut scratch, |r, learned| {
                    let flow = r.flow();
                    en.enrich_learned(&mut cache, r, &flow, learned, &mut e);
                    n += e.bytes.unwrap_or(0);
                });
            }
            black_box(n)
        })
    });

    // The same with the record-age histogram on, as `sluice run` has it: the difference is
    // what timing every record's age at flush costs the store thread.
    let mut w = StoreWriter::open(StoreConfig {
        dir: dir.clone(),
        ..StoreConfig::default()
    })
    .expect("store");
    let ages = Arc::new(Mutex::new(RecordAges::new()));
    w.track_ages(Arc::clone(&ages));
    g.bench_function("store_append_encode_zstd_with_record_ages", |b| {
        b.iter(|| {
            for batch in &all {
                batch.for_each(&mut scratch, |r| {
                    w.append(r, 1_800_000_000_000_000_000).expect("append")
                });
            }
            black_box(w.flush().expect("flush"))
        })
    });
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "record ages counted: {}",
        ages.lock().map_or(0, |a| a.count())
    );

    // The baseline of the next one: walking the batches alone.
    g.bench_function("batch_walk_only", |b| {
        let mut lens: Vec<i64> = Vec::with_capacity(8192);
        b.iter(|| {
            let mut n = 0;
            for batch in &all {
                batch.for_each(&mut scratch, |r| lens.push(r.data.len() as i64));
                n += lens.len();
                lens.clear();
            }
            black_box(n)
        })
    });

    // Its first half: reading each record's flow end.
    g.bench_function("flow_end_only", |b| {
        let mut ends: Vec<i64> = Vec::with_capacity(8192);
        b.iter(|| {
            let mut n = 0;
            for batch in &all {
                batch.for_each(&mut scratch, |r| ends.push(end_ns(r)));
                n += ends.len();
                ends.clear();
            }
            black_box(n)
        })
    });

    // The record-age work alone, as the writer does it: the flow end of one record in
    // AGE_SAMPLE_EVERY read at append, then one weighted histogram count per sample when its
    // block is written.
    g.bench_function("record_age_only", |b| {
        let mut ends: Vec<i64> = Vec::with_capacity(8192);
        let mut a = RecordAges::new();
        b.iter(|| {
            for batch in &all {
                let mut i = 0usize;
                batch.for_each(&mut scratch, |r| {
                    if i.is_multiple_of(AGE_SAMPLE_EVERY) {
                        ends.push(end_ns(r));
                    }
                    i += 1;
                });
                a.record_sampled(1_800_000_000_000_000_000, &ends, AGE_SAMPLE_EVERY, i as u64);
                ends.clear();
            }
            black_box(a.count())
        })
    });

    g.bench_function("ecs_json_encode", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut bytes = 0;
            for batch in &all {
                batch.for_each(&mut scratch, |r| {
                    out.clear();
                    encode_json(&mut out, r, &r.flow(), &EncodeOptions::default());
                    bytes += out.len();
                });
            }
            black_box(bytes)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
