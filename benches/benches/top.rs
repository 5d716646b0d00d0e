//! `sluice top` over the local store: one scan of N flow records (default 10 million,
//! `SLUICE_TOP_FLOWS` changes it) grouped by a key, on one core.
//!
//! The store is made once and kept under `target/sluice-top-bench-<N>/` (delete it to make it
//! again): synthetic NetFlow v9 datagrams (one exporter, 30 records each, one template) decoded
//! by the collector's decoder and appended through `StoreWriter`, as `sluice run` stores them.
//! The flows spread over one hour; addresses, ports and protocols are drawn with a skew (a
//! few heavy talkers and services, a long tail): sources from 65,536 addresses, destinations
//! from 16,384, destination ports mostly from 10 services, 85 % TCP, 13 % UDP, 2 % ICMP.
//!
//! Run: `cargo bench -p sluice-benches --bench top`. The same store can be read by the
//! command itself, e.g.
//! `sluice top --data-dir target/sluice-top-bench-10000000 --from 2026-01-01T00:00:00Z --to 2026-01-01T01:00:00Z --by conversation`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_decode::{Datagram, Decoder};
use sluice_enrich::{EnrichConfig, Enricher};
use sluice_sink::filter::Filter;
use sluice_sink::store::{StoreConfig, StoreReader, StoreWriter};
use sluice_sink::top::{top_local, By, LocalQuery, Order};

/// 2026-01-01T00:00:00Z, seconds.
const START_S: u32 = 1_767_225_600;
const RECORDS_PER_DATAGRAM: usize = 30;
/// Template 256: src, dst (IPv4), ports, protocol, TCP flags, bytes, packets, first/last
/// switched (uptime ms), input/output ifIndex.
const FIELDS: [(u16, u16); 12] = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (1, 4),
    (2, 4),
    (22, 4),
    (21, 4),
    (10, 2),
    (14, 2),
];
const RECORD_LEN: usize = 34;

fn flows() -> u64 {
    std::env::var("SLUICE_TOP_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value below `n`, skewed toward 0: the square of a uniform draw.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 32) as f64 / 4_294_967_296.0;
        ((u * u) * n as f64) as u64
    }
}

/// One NetFlow v9 export packet: header, the template (every 20th packet, as exporters
/// refresh), 30 data records.
fn datagram(seq: u32, secs: u32, rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    let with_template = seq.is_multiple_of(20);
    let count = RECORDS_PER_DATAGRAM as u16 + u16::from(with_template);
    let uptime_ms: u32 = (secs - START_S + 60) * 1000;
    out.extend_from_slice(&9u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&uptime_ms.to_be_bytes());
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    if with_template {
        let len = 4 + 4 + 4 * FIELDS.len() as u16;
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&256u16.to_be_bytes());
        out.extend_from_slice(&(FIELDS.len() as u16).to_be_bytes());
        for (t, l) in FIELDS {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&l.to_be_bytes());
        }
    }
    let set_len = 4 + RECORDS_PER_DATAGRAM * RECORD_LEN;
    let pad = (4 - set_len % 4) % 4;
    out.extend_from_slice(&256u16.to_be_bytes());
    out.extend_from_slice(&((set_len + pad) as u16).to_be_bytes());
    for _ in 0..RECORDS_PER_DATAGRAM {
        let src = 0x0a00_0000u32 | rng.skewed(65_536) as u32;
        let dst = 0xc000_0000u32 | (rng.skewed(16_384) as u32).wrapping_mul(2_654_435_761) >> 8;
        let proto: u8 = match rng.next() % 100 {
            0..85 => 6,
            85..98 => 17,
            _ => 1,
        };
        const SERVICES: [u16; 10] = [443, 80, 53, 22, 123, 993, 25, 8080, 3389, 5222];
        let dport = if rng.next() % 10 < 8 {
            SERVICES[rng.skewed(10) as usize]
        } else {
            1024 + (rng.next() % 64_000) as u16
        };
        let sport = 1024 + (rng.next() % 64_000) as u16;
        let packets = 1 + rng.skewed(1000) as u32;
        let bytes = packets * (40 + (rng.next() % 1400) as u32);
        let last = uptime_ms - (rng.next() % 1000) as u32;
        let first = last - (rng.next() % 30_000) as u32;
        out.extend_from_slice(&src.to_be_bytes());
        out.extend_from_slice(&dst.to_be_bytes());
        out.extend_from_slice(&sport.to_be_bytes());
        out.extend_from_slice(&dport.to_be_bytes());
        out.push(proto);
        out.push(if proto == 6 { 0x1b } else { 0 });
        out.extend_from_slice(&bytes.to_be_bytes());
        out.extend_from_slice(&packets.to_be_bytes());
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&(1 + (rng.next() % 4) as u16).to_be_bytes());
        out.extend_from_slice(&(1 + (rng.next() % 4) as u16).to_be_bytes());
    }
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// The store of `n` flows, made if missing; its data directory.
fn store(n: u64) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("sluice-top-bench-{n}"));
    let done = data.join("complete");
    if done.exists() {
        return data;
    }
    let _ = std::fs::remove_dir_all(&data);
    let started = Instant::now();
    let mut w = StoreWriter::open(StoreConfig {
        dir: data.join("flows"),
        ..StoreConfig::default()
    })
    .expect("store");
    let mut d = Decoder::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let exporter: SocketAddr = "192.0.2.1:2055".parse().expect("addr");
    let datagrams = n.div_ceil(RECORDS_PER_DATAGRAM as u64);
    let mut buf = Vec::with_capacity(1500);
    let mut written = 0u64;
    for seq in 0..datagrams {
        // Evenly over one hour.
        let secs = START_S + (seq * 3600 / datagrams) as u32;
        datagram(seq as u32, secs, &mut rng, &mut buf);
        let dg = Datagram {
            src: exporter,
            receive_time_ns: i64::from(secs) * 1_000_000_000,
            payload: &buf,
            tag: 0,
        };
        let now = i64::from(secs) * 1_000_000_000;
        d.decode(&dg, |r| {
            if written < n {
                w.append(r, now).expect("append");
                written += 1;
            }
        })
        .expect("decode");
    }
    w.flush().expect("flush");
    let st = w.stats();
    w.close().expect("close");
    eprintln!(
        "made {}: {} records, {:.1} MB, {:.1} bytes per record, in {:.1} s",
        data.display(),
        st.records_written,
        st.bytes_on_disk as f64 / 1e6,
        st.bytes_on_disk as f64 / st.records_written.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&done, b"").expect("marker");
    data
}

fn bench(c: &mut Criterion) {
    let n = flows();
    let data = store(n);
    let reader = StoreReader::open(&data.join("flows")).expect("reader");
    let plain = Enricher::new(&EnrichConfig::default()).expect("enricher");
    let geo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/geoip");
    let with_asn = Enricher::new(&EnrichConfig {
        geoip_asn: Some(geo.join("GeoLite2-ASN-Test.mmdb")),
        ..EnrichConfig::default()
    })
    .expect("enricher with the ASN test database");
    let from_ns = i64::from(START_S) * 1_000_000_000;
    let to_ns = from_ns + 3_700 * 1_000_000_000;
    let web = Filter::parse("proto tcp and dst port 443").expect("filter");

    let mut g = c.benchmark_group("top_local");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    let cases: [(&str, By, Order, Option<&Filter>, &Enricher); 6] = [
        ("src_bytes", By::Src, Order::Bytes, None, &plain),
        // Exporter and ifIndex, with the interface texts tracked per key (none here: the
        // synthetic exporter sends no options data).
        ("interface_bytes", By::Interface, Order::Bytes, None, &plain),
        (
            "conversation_bytes",
            By::Conversation,
            Order::Bytes,
            None,
            &plain,
        ),
        ("dport_flows", By::Dport, Order::Flows, None, &plain),
        ("as_bytes_geoip", By::As, Order::Bytes, None, &with_asn),
        ("src_where_https", By::Src, Order::Bytes, Some(&web), &plain),
    ];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, by, order, filter, enricher) in cases {
        for threads in [1, cores] {
            let q = LocalQuery {
                from_ns,
                to_ns,
                filter,
                by,
                order,
                n: 20,
                threads,
            };
            bench_one(
                &mut g,
                &format!("{name}/{threads}t"),
                &reader,
                &q,
                enricher,
                n,
            );
        }
    }
    g.finish();
}

fn bench_one(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    reader: &StoreReader,
    q: &LocalQuery<'_>,
    enricher: &Enricher,
    n: u64,
) {
    g.bench_function(name, |b| {
        b.iter(|| {
            let (top, st) = top_local(reader, q, enricher).expect("top");
            assert_eq!(st.records, n, "every record read");
            black_box(top)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
