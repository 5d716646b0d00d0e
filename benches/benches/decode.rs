//! Decode throughput per protocol, Sluice against netflow_parser on the same datagrams.
//!
//! Inputs: the UDP payloads of shared captures, templates learned in a warm-up pass so the
//! timed loop decodes data sets only (the steady state of a collector). Sluice reads each
//! record's core fields through the offset plan (`Record::flow`); netflow_parser builds its
//! records as it parses. Throughput is in records.
//!
//! Run: `cargo bench -p sluice-benches --bench decode`

use std::net::SocketAddr;
use std::path::Path;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netflow_parser::NetflowParser;
use sluice_decode::pcap::PcapReader;
use sluice_decode::{Datagram, Decoder};

fn payloads(rel: &str) -> Vec<(SocketAddr, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/captures")
        .join(rel);
    let mut r = PcapReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = Vec::new();
    r.for_each_udp(|u| v.push((u.src, u.payload.to_vec())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    v
}

fn sluice_pass(d: &mut Decoder, dgs: &[(SocketAddr, Vec<u8>)]) -> u64 {
    let mut sum = 0u64;
    for (src, p) in dgs {
        let dg = Datagram {
            src: *src,
            receive_time_ns: 0,
            payload: p,
            tag: 0,
        };
        let _ = d.decode(&dg, |r| {
            let f = r.flow();
            sum = sum.wrapping_add(f.bytes.unwrap_or(0));
        });
    }
    sum
}

/// Decode only: what the collector's receive thread does before copying records into a batch.
fn sluice_count(d: &mut Decoder, dgs: &[(SocketAddr, Vec<u8>)]) -> u64 {
    let mut n = 0u64;
    for (src, p) in dgs {
        let dg = Datagram {
            src: *src,
            receive_time_ns: 0,
            payload: p,
            tag: 0,
        };
        let _ = d.decode(&dg, |r| n += r.data.len() as u64);
    }
    n
}

fn bench(c: &mut Criterion) {
    for (name, file) in [
        ("v5", "generated/softflowd_v5.pcap"),
        ("v9", "generated/pmacctd_nfprobe_v9.pcap"),
        ("ipfix", "generated/pmacctd_nfprobe_ipfix.pcap"),
        // Fuller datagrams, closer to a busy router's (18 and 15 records per datagram).
        ("v9_full", "generated/nfdump_nfreplay_v9.pcap"),
        ("ipfix_full", "ipfix/mikrotik_routeros_6.39.2.pcap"),
    ] {
        let dgs = payloads(file);
        let mut warm = Decoder::default();
        sluice_pass(&mut warm, &dgs);
        let records = warm.stats().flow_records;
        let mut g = c.benchmark_group(format!("decode_{name}"));
        g.throughput(Throughput::Elements(records));
        g.bench_function("sluice", |b| {
            let mut d = Decoder::default();
            sluice_pass(&mut d, &dgs);
            b.iter(|| black_box(sluice_pass(&mut d, black_box(&dgs))))
        });
        g.bench_function("sluice_decode_only", |b| {
            let mut d = Decoder::default();
            sluice_count(&mut d, &dgs);
            b.iter(|| black_box(sluice_count(&mut d, black_box(&dgs))))
        });
        g.bench_function("netflow_parser", |b| {
            let mut p = NetflowParser::default();
            let mut v5_records = 0;
            for (_, d) in &dgs {
                for pkt in p.parse_bytes(d).packets {
                    if let netflow_parser::NetflowPacket::V5(v5) = pkt {
                        v5_records += v5.flowsets.len() as u64;
                    }
                }
            }
            if name == "v5" {
                // Both sides must have decoded the same records for the ratio to mean anything.
                assert_eq!(v5_records, records, "netflow_parser v5 record count");
            }
            b.iter(|| {
                let mut n = 0usize;
                for (_, d) in &dgs {
                    n += p.parse_bytes(black_box(d)).packets.len();
                }
                black_box(n)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
