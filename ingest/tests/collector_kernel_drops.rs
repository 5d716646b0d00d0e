//! Overrunning a tiny receive buffer: the collector's kernel-drop metric equals the kernel's
//! own count (the `drops` column of /proc/net/udp6 for the listener's socket), and every
//! datagram sent is either received or counted as dropped.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::collector::{wait_until, Collector, Options, TempDir};

/// Kernel drop count summed over this process's view of UDP sockets bound to `port`.
fn proc_drops(port: u16) -> u64 {
    let mut total = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = cols.get(1) else { continue };
            let Some((_, p)) = local.rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                total += cols.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn kernel_drop_metric_equals_the_kernels_count() {
    let dir = TempDir::new("drops");
    let opts = Options {
        workers: 1,
        // The kernel raises this to its minimum (a couple of KiB): a few datagrams fit.
        recv_buffer: "1B".into(),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let port = c.netflow_port;
    // A v5 datagram with one record: small, valid, cheap to decode.
    let mut dg = vec![0, 5, 0, 1];
    dg.extend_from_slice(&[0; 20]);
    dg.extend_from_slice(&[0; 48]);
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let sent = 50_000u64;
    for _ in 0..sent {
        tx.send_to(&dg, ("127.0.0.1", port)).expect("send");
    }
    // The drop count reaches userspace with the next datagram the socket queues.
    std::thread::sleep(Duration::from_millis(300));
    tx.send_to(&dg, ("127.0.0.1", port)).expect("send");
    let total = sent + 1;
    let settled = wait_until(Duration::from_secs(10), || {
        let got = c.metric("sluice_receive_packets_total");
        let dropped = c.metric("sluice_receive_kernel_drops_total");
        got + dropped >= total as f64
    });
    let got = c.metric("sluice_receive_packets_total") as u64;
    let dropped = c.metric("sluice_receive_kernel_drops_total") as u64;
    assert!(
        settled,
        "received {got} + dropped {dropped} != sent {total}"
    );
    assert_eq!(got + dropped, total);
    assert!(
        dropped > 0,
        "a {total}-datagram burst into a tiny buffer must overflow it"
    );
    assert_eq!(dropped, proc_drops(port), "metric vs /proc/net/udp6");
}
