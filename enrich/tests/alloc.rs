//! `Enricher::enrich` allocates nothing per flow once warm: a counting global allocator
//! watches this thread while a mix of records is enriched many times over, including across a
//! database reload.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use sluice_decode::{InterfaceInfo, ScopeTables};
use sluice_enrich::{EnrichConfig, Enriched, Enricher, ExporterConfig, InterfaceConfig};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the thread-local counter is const-initialized and
// has no destructor, so touching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn enrich_allocates_nothing_in_steady_state() {
    let dir = std::env::temp_dir().join(format!("sluice-enrich-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let city = dir.join("city.mmdb");
    std::fs::copy(geoip("GeoLite2-City-Test.mmdb"), &city).expect("copy");
    let cfg = EnrichConfig {
        geoip_city: Some(city.clone()),
        geoip_asn: Some(geoip("GeoLite2-ASN-Test.mmdb")),
        exporters: vec![ExporterConfig {
            address: ip("192.0.2.1"),
            name: Some("edge1".into()),
            sampling_interval: None,
            interfaces: vec![InterfaceConfig {
                index: 1,
                name: Some("ge-0/0/1".into()),
                description: Some("uplink".into()),
            }],
        }],
        ..EnrichConfig::default()
    };
    let e = Enricher::new(&cfg).expect("enricher");
    let mut t = ScopeTables::default();
    t.samplers.insert(7, 100);
    t.interfaces.insert(
        2,
        InterfaceInfo {
            name: Some("eth2".into()),
            description: Some("lan side".into()),
        },
    );
    let recs = [
        ipfix(
            "192.0.2.1:2055",
            &[
                v(8, addr("89.160.20.115")),
                v(12, addr("192.168.1.10")),
                v(7, u16v(443)),
                v(11, u16v(51000)),
                v(4, u8v(6)),
                v(6, u8v(0x1b)),
                v(1, u64v(1000)),
                v(2, u64v(10)),
                v(10, u32v(1)),
                v(14, u32v(2)),
                v(48, u8v(7)),
                v(226, addr("10.1.1.1")),
                v(228, u16v(8443)),
            ],
        ),
        ipfix(
            "[2001:db8::1]:4739",
            &[
                v(27, addr("2001:218::10")),
                v(28, addr("2003::1")),
                v(7, u16v(50000)),
                v(11, u16v(22)),
                v(4, u8v(6)),
                v(1, u64v(1)),
                v(61, u8v(1)),
            ],
        ),
        ipfix(
            "192.0.2.2:4739",
            &[
                v(8, addr("216.160.83.57")),
                v(12, addr("81.2.69.142")),
                v(4, u8v(1)),
                v(32, u16v(0x0800)),
            ],
        ),
        v5(
            "192.0.2.3:2055",
            "10.0.0.1",
            "1.128.0.1",
            53000,
            53,
            17,
            0x4000 | 10,
        ),
    ];
    let mut caches = [e.cache(), e.cache()];
    let mut out = Enriched::default();
    let pass = |caches: &mut [sluice_enrich::CoreCache; 2], out: &mut Enriched, n: usize| {
        for i in 0..n {
            let r = recs[i % recs.len()].record();
            let f = r.flow();
            e.enrich(&mut caches[i % 2], &r, &f, Some(&t), out);
        }
    };
    // Warm up: texts grow to their longest value once.
    pass(&mut caches, &mut out, 100);
    assert!(out.source_geo().is_some() || out.destination_as().is_some());

    let before = allocs();
    pass(&mut caches, &mut out, 20_000);
    assert_eq!(allocs() - before, 0, "allocations while enriching");

    // A database swap (allocates while loading, on this thread) and then steady state again:
    // the caches follow the new snapshot without allocating.
    let tmp = dir.join("city.tmp");
    std::fs::copy(geoip("GeoIP2-City-Test.mmdb"), &tmp).expect("copy");
    std::fs::rename(&tmp, &city).expect("rename");
    assert!(matches!(e.reload_now(), Ok(true)));
    let before = allocs();
    pass(&mut caches, &mut out, 20_000);
    assert_eq!(allocs() - before, 0, "allocations after a reload");
    assert_eq!(caches[0].stats().reloads, 1);
    assert!(caches[0].stats().hits > caches[0].stats().misses);

    // The counter does count: a String allocates.
    let before = allocs();
    let s = String::from("x");
    assert!(allocs() > before);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
