//! The hot path, decode -> batch -> store, allocates nothing per record in steady state.
//!
//! A counting global allocator counts allocations made by this test's thread while it pushes
//! real capture datagrams (NetFlow v5, v9 with template refreshes and a sampler table, IPFIX)
//! and built IPFIX messages with options data (interface names, a sampler table) through a
//! decoder into arena batches, capturing what the options data gives each record, and from
//! the batches into the local store, enriched and with the enrichment kept (as the receive
//! and store threads of `sluice run` do) or not. After a warm-up, decode + batch must make
//! zero allocations; the store may allocate per sealed block (compression), never per
//! record.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_decode::pcap::PcapReader;
use sluice_decode::{Datagram, Decoder};
use sluice_enrich::{EnrichConfig, Enriched, Enricher, Learned};
use sluice_ingest::batch::Batch;
use sluice_sink::store::{RecordAges, StoreConfig, StoreWriter};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn now() -> i64 {
    1_800_000_000_000_000_000
}

fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCS.load(Ordering::Relaxed) - before)
}

fn datagrams() -> Vec<(SocketAddr, Vec<u8>)> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures");
    let mut v = Vec::new();
    for f in [
        "generated/pmacctd_nfprobe_v9.pcap",
        "generated/pmacctd_nfprobe_ipfix.pcap",
        "generated/softflowd_v5.pcap",
        "netflow9/cisco_asa_1.pcap",
        "netflow9/akvorado_v9_multiple_sampling_rates.pcap",
    ] {
        let mut r = PcapReader::open(&base.join(f)).expect("capture");
        r.for_each_udp(|u| v.push((u.src, u.payload.to_vec())))
            .expect("read");
    }
    let src: SocketAddr = "192.0.2.77:4739".parse().expect("addr");
    let flows = common::ipfix::flows();
    for (k, chunk) in flows.chunks(10).enumerate() {
        let m = common::ipfix::message(1_800_000_000, k as u32, &common::ipfix::IFACES, chunk);
        v.push((src, m));
    }
    v
}

/// One pass of every datagram through the decoder into the batch; full batches go to `sink`.
fn pass(
    d: &mut Decoder,
    batch: &mut Batch,
    dgs: &[(SocketAddr, Vec<u8>)],
    mut sink: impl FnMut(&mut Batch),
) -> u64 {
    let mut n = 0;
    for (src, p) in dgs {
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
            sink(batch);
        }
    }
    n
}

#[test]
fn decode_and_batch_allocate_nothing_per_record() {
    let dgs = datagrams();
    let mut d = Decoder::default();
    let mut batch = Batch::new(0, 4096);
    // Warm-up: templates learned, arena and vectors at their working size. Options data
    // gives some records learned values (interface texts, sampler intervals).
    let mut scratch = Vec::new();
    let mut learned = [0u64; 2];
    for _ in 0..50 {
        pass(&mut d, &mut batch, &dgs, |b| {
            b.for_each_learned(&mut scratch, |_, l| {
                learned[0] += u64::from(l.in_if.name.is_some());
                learned[1] += u64::from(l.sampling.is_some());
            });
            b.reset()
        });
    }
    assert!(learned[0] > 0 && learned[1] > 0, "{learned:?}");
    let (records, allocs) = count(|| {
        let mut n = 0;
        for _ in 0..200 {
            n += pass(&mut d, &mut batch, &dgs, |b| b.reset());
        }
        n
    });
    assert!(records > 20_000, "{records} records");
    assert_eq!(allocs, 0, "{allocs} allocations for {records} records");
}

#[test]
fn store_allocates_per_block_not_per_record() {
    store_allocations(false);
}

/// With `[store] enrich` (the default): each record enriched with what its batch captured
/// from options data and appended with its enrichment, which blocks keep in their
/// enrichment columns (per-block dictionaries, cleared with their memory kept).
#[test]
fn enriched_store_allocates_per_block_not_per_record() {
    store_allocations(true);
}

fn store_allocations(keep: bool) {
    let dgs = datagrams();
    let geo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/geoip");
    let en = Enricher::new(&EnrichConfig {
        geoip_city: Some(geo.join("GeoLite2-City-Test.mmdb")),
        geoip_asn: Some(geo.join("GeoLite2-ASN-Test.mmdb")),
        ..EnrichConfig::default()
    })
    .expect("enricher");
    let mut cache = en.cache();
    let mut e = Enriched::default();
    let mut append = |w: &mut StoreWriter, r: &sluice_decode::Record<'_>, l: &Learned<'_>| {
        if keep {
            let flow = r.flow();
            en.enrich_learned(&mut cache, r, &flow, l, &mut e);
            w.append_enriched(r, Some(&e), now()).expect("append");
        } else {
            w.append(r, now()).expect("append");
        }
    };
    let dir = std::env::temp_dir().join(format!("sluice-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut w = StoreWriter::open(StoreConfig {
        dir: dir.clone(),
        ..StoreConfig::default()
    })
    .expect("store");
    // Record ages at flush are tracked, as `sluice run` does.
    let ages = std::sync::Arc::new(std::sync::Mutex::new(RecordAges::new()));
    w.track_ages(std::sync::Arc::clone(&ages));
    let mut d = Decoder::default();
    let mut batch = Batch::new(0, 4096);
    let mut scratch = Vec::new();
    let mut to_store = |b: &mut Batch| {
        b.for_each_learned(&mut scratch, |r, l| append(&mut w, r, l));
        b.reset();
    };
    for _ in 0..50 {
        pass(&mut d, &mut batch, &dgs, &mut to_store);
    }
    for _ in 0..50 {
        pass(&mut d, &mut batch, &dgs, &mut to_store);
    }

    let blocks_before = w.stats().blocks_written;
    let mut to_store = |b: &mut Batch| {
        b.for_each_learned(&mut scratch, |r, l| append(&mut w, r, l));
        b.reset();
    };
    let (records, allocs) = count(|| {
        let mut n = 0;
        for _ in 0..400 {
            n += pass(&mut d, &mut batch, &dgs, &mut to_store);
        }
        n
    });

    let blocks = w.stats().blocks_written - blocks_before;
    eprintln!(
        "enrichment kept: {keep}: {records} records, {blocks} blocks sealed, {allocs} allocations"
    );
    // Sealing a block (columns, zstd frame, write) may allocate; appending a record must not.
    // 200 per block is far below one per record (8192 records per block). Keeping the
    // enrichment adds eight columns and their dictionaries to each sealed block: measured
    // 25-75 more allocations per block (a seal then makes about 90; the columns go into the
    // reused payload buffer, what grows is in the compression of the larger payload), never
    // one per record, so its allowance is 300.
    assert!(blocks >= 5, "only {blocks} blocks");
    let per_block = if keep { 300 } else { 200 };
    assert!(
        allocs <= per_block * blocks,
        "{allocs} allocations for {records} records in {blocks} blocks"
    );
    let _ = w.flush();
    let timed = ages.lock().map_or(0, |a| a.count());
    assert_eq!(
        timed,
        w.stats().records_written,
        "every record written was timed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
