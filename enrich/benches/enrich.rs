//! Enrichment cost per flow on a named workload.
//!
//! Workload "zipf-100k-s1.1": N = 100,000 distinct addresses, half drawn from the networks of
//! MaxMind's City and ASN test databases (`shared/geoip/source-data`, so lookups find records)
//! and half random public addresses (10% of all IPv6); ranks are shuffled across the two
//! halves. A trace of 1,000,000 flows draws each flow's source and destination independently
//! from a Zipf distribution over those ranks with exponent s = 1.1 (rank 1 the most popular).
//! Deterministic (fixed seed).
//!
//! Benchmarks (throughput in flows; each flow is two address lookups):
//! - `lookup_pair/cache=E`: [`Enricher::lookup_pair`] of source and destination through a per-core
//!   cache of E entries (locality, cache probe, on a miss the two database walks);
//! - `lookup_pair/no_cache`: the same two lookups straight in the databases (the miss cost);
//! - `enrich_full`: [`Enricher::enrich`] of an IPFIX record per flow (everything: lookups,
//!   names, NAT, sampling, direction, Community ID's SHA-1).
//!
//! The cache hit ratio over one pass of the trace (after a warm pass) is printed to stderr.
//! The test databases are small (a few hundred networks, shallow search trees), so a miss
//! here is cheaper than against a full GeoLite2-City; the hit ratio is what carries over.
//!
//! Run: `cargo bench -p sluice-enrich --bench enrich`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_decode::{Dialect, ExportHeader, FieldSpec, Record, Template};
use sluice_enrich::{locality, EnrichConfig, Enriched, Enricher, Locality};

const N: usize = 100_000;
const S: f64 = 1.1;
const FLOWS: usize = 1_000_000;
/// Flows per timed iteration.
const CHUNK: usize = 4096;

fn geoip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/geoip")
        .join(name)
}

/// splitmix64: small, deterministic, good enough for a workload generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Networks listed in the test databases' source data.
fn db_networks() -> Vec<(IpAddr, u8)> {
    let mut nets = Vec::new();
    for json in ["GeoLite2-City-Test.json", "GeoLite2-ASN-Test.json"] {
        let text = std::fs::read_to_string(geoip("source-data").join(json)).expect("source data");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        for o in v.as_array().expect("array") {
            for k in o.as_object().expect("object").keys() {
                let (a, l) = k.split_once('/').expect("cidr");
                let (Ok(a), Ok(l)) = (a.parse::<IpAddr>(), l.parse::<u8>()) else {
                    continue;
                };
                nets.push((a, l));
            }
        }
    }
    nets
}

fn random_in(rng: &mut Rng, (a, len): (IpAddr, u8)) -> IpAddr {
    match a {
        IpAddr::V4(a) => {
            let host_bits = 32 - u32::from(len.min(32));
            let mask = if host_bits == 0 {
                0
            } else {
                (1u64 << host_bits) as u32 - 1
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) | (rng.next() as u32 & mask)))
        }
        IpAddr::V6(a) => {
            let host_bits = 128 - u32::from(len.min(128));
            let mask = if host_bits == 0 {
                0
            } else {
                u128::MAX >> (128 - host_bits)
            };
            let r = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            IpAddr::V6(Ipv6Addr::from(u128::from(a) | (r & mask))).to_canonical()
        }
    }
}

fn addresses(rng: &mut Rng) -> Vec<IpAddr> {
    let nets = db_networks();
    let mut set = std::collections::HashSet::with_capacity(N * 2);
    let mut out = Vec::with_capacity(N);
    while out.len() < N {
        let ip = if out.len().is_multiple_of(2) {
            let net = nets[(rng.next() % nets.len() as u64) as usize];
            random_in(rng, net)
        } else if rng.next().is_multiple_of(10) {
            // Global unicast 2000::/3.
            let r = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            IpAddr::V6(Ipv6Addr::from((r >> 3) | (1u128 << 125)))
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
        };
        if locality(ip) == Locality::Public && set.insert(ip) {
            out.push(ip);
        }
    }
    // Shuffle so popularity is independent of where an address came from.
    for i in (1..out.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// (source, destination) index pairs drawn from Zipf(N, S).
fn trace(rng: &mut Rng) -> Vec<(u32, u32)> {
    let mut cdf = Vec::with_capacity(N);
    let mut acc = 0.0;
    for k in 1..=N {
        acc += 1.0 / (k as f64).powf(S);
        cdf.push(acc);
    }
    let total = acc;
    let draw = |rng: &mut Rng| {
        let u = rng.unit() * total;
        cdf.partition_point(|&c| c < u).min(N - 1) as u32
    };
    (0..FLOWS).map(|_| (draw(rng), draw(rng))).collect()
}

/// Times `chunk` (CHUNK flows per call) `reps` times and prints the fastest and the median
/// ns per flow. On a shared machine the fastest run is the best estimate of the uncontended
/// cost; criterion's mean includes whatever else the machine did.
fn spot(label: &str, reps: usize, mut chunk: impl FnMut()) {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = std::time::Instant::now();
            chunk();
            s.elapsed().as_nanos() as f64 / CHUNK as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    eprintln!(
        "{label}: fastest {:.1} ns/flow, median {:.1} ns/flow ({reps} runs of {CHUNK} flows)",
        t[0],
        t[reps / 2]
    );
}

fn enricher(cache_entries: usize) -> Enricher {
    Enricher::new(&EnrichConfig {
        geoip_city: Some(geoip("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geoip("GeoLite2-ASN-Test.mmdb")),
        cache_entries,
        ..EnrichConfig::default()
    })
    .expect("test databases")
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x5eed_0f5e_1ce0_0001);
    let addrs = addresses(&mut rng);
    let flows: Vec<(IpAddr, IpAddr)> = trace(&mut rng)
        .into_iter()
        .map(|(s, d)| (addrs[s as usize], addrs[d as usize]))
        .collect();
    eprintln!("workload zipf-100k-s1.1: N = {N} distinct addresses, s = {S}, {FLOWS} flows");

    let mut g = c.benchmark_group("lookup_pair");
    g.throughput(Throughput::Elements(CHUNK as u64));
    for entries in [4096usize, 32768, 262_144] {
        let e = enricher(entries);
        let mut cache = e.cache();
        // Warm pass, then one measured pass for the hit ratio.
        for &(s, d) in &flows {
            black_box(e.lookup_pair(&mut cache, s, d));
        }
        let before = cache.stats();
        for &(s, d) in &flows {
            black_box(e.lookup_pair(&mut cache, s, d));
        }
        let after = cache.stats();
        let (h, m) = (after.hits - before.hits, after.misses - before.misses);
        eprintln!(
            "lookup_pair/cache={entries}: hit ratio {:.4} ({h} hits, {m} misses over one pass of {FLOWS} flows)",
            h as f64 / (h + m) as f64
        );
        let mut pos = 0usize;
        let mut pair = || {
            let mut n = 0u32;
            for _ in 0..CHUNK {
                let (s, d) = flows[pos];
                pos = if pos + 1 == FLOWS { 0 } else { pos + 1 };
                let [(_, g1, a1), (_, g2, a2)] = e.lookup_pair(&mut cache, s, d);
                n = n.wrapping_add(
                    g1.is_some() as u32
                        + a1.is_some() as u32
                        + g2.is_some() as u32
                        + a2.is_some() as u32,
                );
            }
            black_box(n);
        };
        spot(&format!("lookup_pair/cache={entries}"), 500, &mut pair);
        g.bench_function(BenchmarkId::new("cache", entries), |b| {
            b.iter(|| {
                let mut n = 0u32;
                for _ in 0..CHUNK {
                    let (s, d) = flows[pos];
                    pos = if pos + 1 == FLOWS { 0 } else { pos + 1 };
                    let (_, g1, a1) = e.lookup(&mut cache, s);
                    n = n.wrapping_add(g1.is_some() as u32 + a1.is_some() as u32);
                    let (_, g2, a2) = e.lookup(&mut cache, d);
                    n = n.wrapping_add(g2.is_some() as u32 + a2.is_some() as u32);
                }
                black_box(n)
            })
        });
        let st = cache.stats();
        eprintln!(
            "lookup_pair/cache={entries}: cumulative hit ratio incl. the timed runs {:.4}",
            st.hit_ratio()
        );
    }
    {
        // Compute floor: only the 64 most popular addresses, so every probe hits in L1.
        let e = enricher(32768);
        let mut cache = e.cache();
        let hot: Vec<(IpAddr, IpAddr)> = (0..CHUNK)
            .map(|i| (addrs[i % 64], addrs[(i * 7 + 3) % 64]))
            .collect();
        for &(s, d) in &hot {
            black_box(e.lookup_pair(&mut cache, s, d));
        }
        spot("lookup_pair/hot64", 500, || {
            let mut n = 0u32;
            for &(s, d) in &hot {
                let [(_, g1, a1), (_, g2, a2)] = e.lookup_pair(&mut cache, s, d);
                n = n.wrapping_add(
                    g1.is_some() as u32
                        + a1.is_some() as u32
                        + g2.is_some() as u32
                        + a2.is_some() as u32,
                );
            }
            black_box(n);
        });
    }
    {
        let e = enricher(2);
        let t = e.tables();
        let mut found = 0usize;
        for &(s, d) in &flows[..100_000] {
            found += t.lookup(s).0.is_some() as usize + t.lookup(d).0.is_some() as usize;
        }
        eprintln!(
            "workload: {:.1}% of lookups find a City record",
            found as f64 / 2000.0
        );
        let mut pos = 0usize;
        spot("lookup_pair/no_cache", 300, || {
            let mut n = 0u32;
            for _ in 0..CHUNK {
                let (s, d) = flows[pos];
                pos = if pos + 1 == FLOWS { 0 } else { pos + 1 };
                n = n.wrapping_add(t.lookup(s).0.is_some() as u32);
                n = n.wrapping_add(t.lookup(d).0.is_some() as u32);
            }
            black_box(n);
        });
        g.bench_function("no_cache", |b| {
            b.iter(|| {
                let mut n = 0u32;
                for _ in 0..CHUNK {
                    let (s, d) = flows[pos];
                    pos = if pos + 1 == FLOWS { 0 } else { pos + 1 };
                    n = n.wrapping_add(t.lookup(s).0.is_some() as u32);
                    n = n.wrapping_add(t.lookup(d).0.is_some() as u32);
                }
                black_box(n)
            })
        });
    }
    g.finish();

    // Parts of enrich_full on their own.
    {
        let mut pos = 0usize;
        spot("community_id", 300, || {
            for _ in 0..CHUNK {
                let (s, d) = flows[pos];
                pos = if pos + 1 == FLOWS { 0 } else { pos + 1 };
                black_box(sluice_enrich::community_id(0, s, d, 6, Some((40000, 443))));
            }
        });
        let mut port = 0u16;
        spot("server_side+service", 300, || {
            for _ in 0..CHUNK {
                port = port.wrapping_add(7919);
                let side = sluice_enrich::direction::server_side(
                    Some(6),
                    Some(port),
                    Some(443),
                    None,
                    None,
                );
                black_box(side);
                black_box(sluice_enrich::service_name(6, port));
            }
        });
    }

    // Full enrichment: one IPFIX record per flow (an IPv4 and an IPv6 template).
    let template = |v6: bool| {
        let (s, d, l) = if v6 {
            (27u16, 28u16, 16u16)
        } else {
            (8, 12, 4)
        };
        let specs: Vec<FieldSpec> = [
            (s, l),
            (d, l),
            (7, 2),
            (11, 2),
            (4, 1),
            (6, 1),
            (1, 8),
            (2, 8),
            (10, 4),
            (14, 4),
            (61, 1),
        ]
        .iter()
        .map(|&(id, len)| FieldSpec { id, pen: 0, len })
        .collect();
        Template::compile(256, Dialect::Ipfix, false, 0, &specs).expect("template")
    };
    let templates = [template(false), template(true)];
    const RECS: usize = 65_536;
    // (template index, start, end) into `data`.
    let mut recs = Vec::with_capacity(RECS);
    let mut data = Vec::new();
    for (i, &(s, d)) in flows
        .iter()
        .filter(|(s, d)| s.is_ipv4() == d.is_ipv4())
        .take(RECS)
        .enumerate()
    {
        let start = data.len();
        match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                data.extend(s.octets());
                data.extend(d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                data.extend(s.octets());
                data.extend(d.octets());
            }
            _ => unreachable!("filtered"),
        }
        let (sp, dp) = if i.is_multiple_of(2) {
            (40000 + i as u16 % 20000, 443)
        } else {
            (53, 33000)
        };
        data.extend(sp.to_be_bytes());
        data.extend(u16::to_be_bytes(dp));
        data.push(if i.is_multiple_of(3) { 17 } else { 6 });
        data.push(0x1b);
        data.extend(1500u64.to_be_bytes());
        data.extend(3u64.to_be_bytes());
        data.extend(1u32.to_be_bytes());
        data.extend(2u32.to_be_bytes());
        data.push((i % 2) as u8);
        recs.push((usize::from(s.is_ipv6()), start, data.len()));
    }
    let header = ExportHeader {
        version: 10,
        exporter: "192.0.2.1:4739".parse().expect("addr"),
        source_id: 0,
        export_time_ns: 0,
        sys_uptime_ms: None,
        sequence: 0,
        receive_time_ns: 0,
        sampling_interval: 0,
        tag: 0,
    };
    let e = enricher(32768);
    let mut cache = e.cache();
    let mut out = Enriched::default();
    let record = |i: usize| {
        let (t, a, b) = recs[i];
        Record {
            header: &header,
            template: &templates[t],
            data: &data[a..b],
            spans: &templates[t].fixed_spans,
            system_init_ms: None,
        }
    };
    let flows_of: Vec<_> = (0..recs.len()).map(|i| record(i).flow()).collect();
    let mut g = c.benchmark_group("enrich_full");
    g.throughput(Throughput::Elements(CHUNK as u64));
    let mut pos = 0usize;
    spot("enrich_full/ipfix", 300, || {
        for _ in 0..CHUNK {
            let r = record(pos);
            e.enrich(&mut cache, &r, &flows_of[pos], None, &mut out);
            black_box(&out);
            pos = (pos + 1) % recs.len();
        }
    });
    g.bench_function("ipfix", |b| {
        b.iter(|| {
            for _ in 0..CHUNK {
                let r = record(pos);
                e.enrich(&mut cache, &r, &flows_of[pos], None, &mut out);
                black_box(&out);
                pos = (pos + 1) % recs.len();
            }
        })
    });
    g.finish();
    eprintln!(
        "enrich_full: cache hit ratio {:.4} over {} records cycled",
        cache.stats().hit_ratio(),
        recs.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
