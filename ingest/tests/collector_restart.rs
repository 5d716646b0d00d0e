//! Restarts: templates saved under the data dir decode data sent after Sluice restarts, and an
//! exporter that restarts with different template contents is not decoded with the old ones.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::collector::{wait_until, Collector, Options, TempDir};

const EXPORT_SECS: u32 = 1_700_000_000;

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// v9 template record; fields (type, length).
fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (t, l) in fields {
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&l.to_be_bytes());
    }
    v
}

fn v9(uptime: u32, seq: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut v = 9u16.to_be_bytes().to_vec();
    v.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    v.extend_from_slice(&uptime.to_be_bytes());
    v.extend_from_slice(&EXPORT_SECS.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&7u32.to_be_bytes()); // source id
    for s in sets {
        v.extend_from_slice(s);
    }
    v
}

/// Layout A: source address, destination address, octets (4 bytes each).
const LAYOUT_A: &[(u16, u16)] = &[(8, 4), (12, 4), (1, 4)];
/// Layout B after the exporter's restart: octets first, then the addresses.
const LAYOUT_B: &[(u16, u16)] = &[(1, 4), (8, 4), (12, 4)];

fn record_a(src: [u8; 4], dst: [u8; 4], bytes: u32) -> Vec<u8> {
    [src.to_vec(), dst.to_vec(), bytes.to_be_bytes().to_vec()].concat()
}

fn record_b(src: [u8; 4], dst: [u8; 4], bytes: u32) -> Vec<u8> {
    [bytes.to_be_bytes().to_vec(), src.to_vec(), dst.to_vec()].concat()
}

fn stored(c: &Collector) -> Vec<(String, String, u64)> {
    let mut v: Vec<(String, String, u64)> = c
        .dump_all(None)
        .iter()
        .map(|d| {
            (
                d["source"]["ip"].as_str().unwrap_or("").to_string(),
                d["destination"]["ip"].as_str().unwrap_or("").to_string(),
                d["network"]["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn templates_survive_a_restart_and_exporter_restarts_are_not_misdecoded() {
    let dir = TempDir::new("restart");
    let mut c = Collector::start(&dir.0, &Options::default());
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let send = |p: &[u8], port: u16| {
        tx.send_to(p, ("127.0.0.1", port)).expect("send");
    };
    let port = c.netflow_port;
    send(
        &v9(
            100_000,
            1,
            &[
                set(0, &template(300, LAYOUT_A)),
                set(300, &record_a([10, 0, 0, 1], [10, 0, 0, 2], 111)),
            ],
        ),
        port,
    );
    assert!(wait_until(Duration::from_secs(10), || c
        .metric("sluice_store_records_total")
        >= 1.0));
    assert_eq!(c.stop(), Some(0));
    assert!(
        c.data_dir.join("templates.bin").exists(),
        "templates saved at shutdown"
    );

    // Sluice restarts; the exporter does not resend its template.
    c.spawn();
    let port = c.netflow_port;
    send(
        &v9(
            101_000,
            2,
            &[set(300, &record_a([10, 0, 0, 3], [10, 0, 0, 4], 222))],
        ),
        port,
    );
    assert!(
        wait_until(Duration::from_secs(10), || c
            .metric("sluice_store_records_total")
            >= 1.0),
        "data after a restart decodes with the saved template: {}",
        c.log_text()
    );
    assert!(wait_until(Duration::from_secs(5), || c.metric(
        "sluice_decode_template_events_total{event=\"cross_core\"}"
    ) >= 1.0));

    // The exporter restarts (uptime back to 0.5 s, sequence from 0) with template 300
    // redefined. Its first data arrives before the new template: with the old layout it would
    // read as 0.0.0.77 -> 10.0.0.5 with 167772166 bytes; it must be held instead.
    send(
        &v9(
            500,
            0,
            &[set(300, &record_b([10, 0, 0, 5], [10, 0, 0, 6], 77))],
        ),
        port,
    );
    assert!(wait_until(Duration::from_secs(5), || c
        .metric("sluice_decode_exporter_restarts_total")
        >= 1.0));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.metric("sluice_store_records_total"),
        1.0,
        "held, not misdecoded"
    );
    send(&v9(600, 1, &[set(0, &template(300, LAYOUT_B))]), port);
    assert!(wait_until(Duration::from_secs(10), || c
        .metric("sluice_store_records_total")
        >= 2.0));
    assert_eq!(c.stop(), Some(0));
    assert_eq!(
        stored(&c),
        vec![
            ("10.0.0.1".into(), "10.0.0.2".into(), 111),
            ("10.0.0.3".into(), "10.0.0.4".into(), 222),
            ("10.0.0.5".into(), "10.0.0.6".into(), 77),
        ]
    );
}
