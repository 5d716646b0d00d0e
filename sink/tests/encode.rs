//! The encoder's output for hand-built records: valid JSON, nesting, element values by type.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_decode::template::{Dialect, FieldSpec, Template, VARLEN};
use sluice_decode::{ExportHeader, Record};
use sluice_sink::ecs::{csv_header, encode_csv, encode_json, EncodeOptions};

fn header() -> ExportHeader {
    ExportHeader {
        version: 10,
        exporter: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 4739),
        source_id: 5,
        export_time_ns: 1_700_000_000_000_000_000,
        sys_uptime_ms: None,
        sequence: 0,
        receive_time_ns: 0,
        sampling_interval: 0,
        tag: 42,
    }
}

fn encode(specs: &[FieldSpec], data: &[u8]) -> serde_json::Value {
    let t = Template::compile(300, Dialect::Ipfix, false, 0, specs).expect("compiles");
    let mut spans = Vec::new();
    sluice_decode::record::spans_of(&t, data, &mut spans).expect("fits");
    let h = header();
    let r = Record {
        header: &h,
        template: &t,
        data,
        spans: &spans,
        system_init_ms: None,
    };
    let mut out = Vec::new();
    encode_json(&mut out, &r, &r.flow(), &EncodeOptions { annotate: true });
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&out)))
}

fn spec(id: u16, len: u16) -> FieldSpec {
    FieldSpec { id, pen: 0, len }
}

#[test]
fn ecs_and_netflow_fields() {
    let mut data = vec![10, 1, 2, 3, 192, 168, 0, 1];
    data.extend_from_slice(&443u16.to_be_bytes());
    data.extend_from_slice(&51000u16.to_be_bytes());
    data.push(6);
    data.extend_from_slice(&1500u64.to_be_bytes());
    data.extend_from_slice(&3u32.to_be_bytes());
    data.extend_from_slice(&[0x00, 0x53, 0, 0, 0, 0xfe]);
    data.extend_from_slice(&[3, b'a', b'"', b'\n']);
    data.extend_from_slice(&[0xde, 0xad]);
    let specs = [
        spec(8, 4),
        spec(12, 4),
        spec(7, 2),
        spec(11, 2),
        spec(4, 1),
        spec(1, 8),
        spec(2, 4),
        spec(56, 6),
        spec(96, VARLEN),
        FieldSpec {
            id: 12,
            pen: 99999,
            len: 2,
        },
    ];
    let v = encode(&specs, &data);
    assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.000Z");
    assert_eq!(v["source"]["ip"], "10.1.2.3");
    assert_eq!(v["source"]["port"], 443);
    assert_eq!(v["destination"]["ip"], "192.168.0.1");
    assert_eq!(v["network"]["iana_number"], "6");
    assert_eq!(v["network"]["transport"], "tcp");
    assert_eq!(v["network"]["bytes"], 1500);
    assert_eq!(v["network"]["packets"], 3);
    assert_eq!(v["observer"]["ip"], "192.0.2.9");
    assert_eq!(v["netflow"]["exporter"]["address"], "192.0.2.9:4739");
    assert_eq!(v["netflow"]["exporter"]["version"], 10);
    assert_eq!(v["netflow"]["octet_delta_count"], 1500);
    assert_eq!(v["netflow"]["source_mac_address"], "00:53:00:00:00:fe");
    assert_eq!(v["netflow"]["application_name"], "a\"\n");
    assert_eq!(v["netflow"]["enterprise_99999_12"], "dead");
    assert_eq!(v["sluice"]["frame"], 42);
    assert_eq!(
        v["event"]["start"], v["@timestamp"],
        "no times: export time"
    );
}

#[test]
fn csv_has_a_column_per_header_name() {
    let t = Template::compile(300, Dialect::Ipfix, false, 0, &[spec(8, 4)]).expect("compiles");
    let h = header();
    let data = [1, 2, 3, 4];
    let spans = [(0u32, 4u32)];
    let r = Record {
        header: &h,
        template: &t,
        data: &data,
        spans: &spans,
        system_init_ms: None,
    };
    let mut head = Vec::new();
    csv_header(&mut head);
    let mut line = Vec::new();
    encode_csv(&mut line, &r, &r.flow(), None);
    let head = String::from_utf8(head).expect("utf8");
    let line = String::from_utf8(line).expect("utf8");
    assert_eq!(head.split(',').count(), line.split(',').count());
    let col = head
        .split(',')
        .position(|c| c == "source.ip")
        .expect("column");
    assert_eq!(line.split(',').nth(col), Some("1.2.3.4"));
}
