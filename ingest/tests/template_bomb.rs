//! Template bombs: thousands of templates from one exporter, and from thousands of exporters.
//! Memory stays under the bound the default limits give (README, "Bounded memory"), the
//! collector keeps decoding a well-behaved exporter, and refusals are counted.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};

/// The README's bound for the default limits and 2 receive threads, in bytes: per thread
/// 50,000 templates x 700 B + 250,000 fields x 100 B + 32 MiB held + 16,384 scopes x 1 KiB,
/// plus the shared registry's entries (100,000 x 200 B).
const BOUND: u64 = 2 * (50_000 * 700 + 250_000 * 100 + (32 << 20) + 16_384 * 1024) + 100_000 * 200;

fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// An IPFIX message with `n` templates of `fields` fields each, ids from `first`.
fn template_message(domain: u32, first: u16, n: u16, fields: u16) -> Vec<u8> {
    let mut set = Vec::new();
    for t in 0..n {
        set.extend_from_slice(&(first + t).to_be_bytes());
        set.extend_from_slice(&fields.to_be_bytes());
        for f in 0..fields {
            // Enterprise elements, so every field is an unknown with its own name.
            set.extend_from_slice(&(0x8000 | (f + 1)).to_be_bytes());
            set.extend_from_slice(&4u16.to_be_bytes());
            set.extend_from_slice(&(1000 + u32::from(t)).to_be_bytes());
        }
    }
    let mut body = 2u16.to_be_bytes().to_vec();
    body.extend_from_slice(&((set.len() + 4) as u16).to_be_bytes());
    body.extend_from_slice(&set);
    let mut m = 10u16.to_be_bytes().to_vec();
    m.extend_from_slice(&((body.len() + 16) as u16).to_be_bytes());
    m.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    m.extend_from_slice(&0u32.to_be_bytes());
    m.extend_from_slice(&domain.to_be_bytes());
    m.extend_from_slice(&body);
    m
}

#[test]
fn template_bombs_stay_within_the_memory_bound() {
    let dir = TempDir::new("bomb");
    let c = Collector::start(&dir.0, &Options::default());
    let pid = c.child.as_ref().expect("running").id();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(pid);
    let port = c.ipfix_port;
    let mut sent = 0u64;
    // One exporter: 6,000 templates of 20 fields (the per-exporter limit is 1,024).
    let one = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..2000u16 {
        one.send_to(
            &template_message(1, 256 + i * 3, 3, 20),
            ("127.0.0.1", port),
        )
        .expect("send");
        sent += 1;
    }
    // Thousands of exporters (source ports x observation domains): 3,000 x 40 templates of
    // 50 fields = 6 M fields, 24 times the per-thread budget.
    for s in 0..300u32 {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for domain in 0..10u32 {
            for k in 0..20u16 {
                let m = template_message(s * 10 + domain, 256 + k * 2, 2, 50);
                sock.send_to(&m, ("127.0.0.1", port)).expect("send");
                sent += 1;
            }
        }
        // Pace a little so the receive buffer absorbs the bomb (drops would only make it
        // smaller).
        std::thread::sleep(Duration::from_millis(2));
    }
    // Wait until the collector has drained its sockets (the packet count stops moving). Some
    // of the bomb is dropped by the kernel when the receive threads fall behind; that only
    // makes it smaller.
    let mut last = -1.0;
    let mut still = 0;
    let settled = wait_until(Duration::from_secs(90), || {
        let now = c.metric("sluice_receive_packets_total");
        if now == last {
            still += 1;
        } else {
            still = 0;
            last = now;
        }
        still >= 30
    });
    let received = c.metric("sluice_receive_packets_total");
    let dropped = c.metric("sluice_receive_kernel_drops_total");
    assert!(settled, "receive never settled: {}", c.log_text());
    assert!(
        received > sent as f64 / 4.0,
        "only {received} of {sent} datagrams received"
    );
    let after = rss_bytes(pid);
    let growth = after.saturating_sub(before);
    let refused = c.metric("sluice_decode_errors_total{reason=\"limit\"}");
    eprintln!(
        "template bomb: {sent} datagrams sent, {received} received, {dropped} dropped by the kernel, RSS {} MiB -> {} MiB (growth {} MiB, bound {} MiB), {} refusals",
        before >> 20,
        after >> 20,
        growth >> 20,
        BOUND >> 20,
        refused
    );
    assert!(growth < BOUND, "RSS grew {growth} bytes, bound {BOUND}");
    assert!(
        refused > 0.0,
        "the limits must have refused part of the bomb"
    );
    // Still working for a normal exporter.
    let stored_before = c.metric("sluice_store_records_total");
    replay(
        &common::captures_dir().join("generated/pmacctd_nfprobe_v9.pcap"),
        c.netflow_port,
    );
    assert!(wait_until(Duration::from_secs(10), || c
        .metric("sluice_store_records_total")
        >= stored_before + 46.0));
}
