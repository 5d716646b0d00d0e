//! The encoder's output for hand-built records: valid JSON, nesting, element values by type.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_decode::template::{Dialect, FieldSpec, Template, VARLEN};
use sluice_decode::{ExportHeader, Record};
use sluice_enrich::{EnrichConfig, Enriched, Enricher};
use sluice_sink::ecs::{
    csv_header, encode_csv, encode_json, encode_json_enriched, encode_json_lean, EncodeOptions,
};

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

/// Calls `f` with a record of an IPFIX template made of `specs`, holding `data`.
fn with_record<T>(specs: &[FieldSpec], data: &[u8], f: impl FnOnce(&Record<'_>) -> T) -> T {
    let t = Template::compile(300, Dialect::Ipfix, false, 0, specs).expect("compiles");
    let mut spans = Vec::new();
    sluice_decode::record::spans_of(&t, data, &mut spans).expect("fits");
    let h = header();
    f(&Record {
        header: &h,
        template: &t,
        data,
        spans: &spans,
        system_init_ms: None,
    })
}

fn encode(specs: &[FieldSpec], data: &[u8]) -> serde_json::Value {
    let mut out = Vec::new();
    with_record(specs, data, |r| {
        encode_json(&mut out, r, &r.flow(), &EncodeOptions { annotate: true })
    });
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

#[test]
fn lean_documents_leave_out_only_the_elements_the_ecs_part_shows() {
    let start_ms: u64 = 1_700_000_000_250;
    let fields: [(u16, Vec<u8>); 14] = [
        (8, vec![10, 1, 2, 3]),
        (12, vec![192, 168, 0, 1]),
        (7, 443u16.to_be_bytes().to_vec()),
        (11, 51000u16.to_be_bytes().to_vec()),
        (4, vec![17]),
        (1, 1500u64.to_be_bytes().to_vec()),
        (2, 3u32.to_be_bytes().to_vec()),
        (152, start_ms.to_be_bytes().to_vec()),
        (153, (start_ms + 1000).to_be_bytes().to_vec()),
        (10, 7u32.to_be_bytes().to_vec()),
        (14, 9u32.to_be_bytes().to_vec()),
        (225, vec![10, 9, 9, 9]),
        // Two next hops: a repeated element stays an array.
        (15, vec![10, 0, 0, 1]),
        (15, vec![10, 0, 0, 2]),
    ];
    let specs: Vec<FieldSpec> = fields
        .iter()
        .map(|(id, b)| spec(*id, b.len() as u16))
        .collect();
    let data: Vec<u8> = fields.iter().flat_map(|(_, b)| b.clone()).collect();
    with_record(&specs, &data, lean_checks);
}

fn lean_checks(r: &Record<'_>) {
    let f = r.flow();
    let json = |b: &[u8]| -> serde_json::Value {
        serde_json::from_slice(b)
            .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(b)))
    };
    let enricher = Enricher::new(&EnrichConfig::default()).expect("no databases");
    let mut cache = enricher.cache();
    let mut en = Enriched::default();
    enricher.enrich(&mut cache, r, &f, None, &mut en);
    // Left out without enrichment; with it, the interface indexes too.
    let always = [
        "source_ipv4_address",
        "destination_ipv4_address",
        "source_transport_port",
        "destination_transport_port",
        "protocol_identifier",
        "flow_start_milliseconds",
        "flow_end_milliseconds",
    ];
    let with_enrichment = [&always[..], &["ingress_interface", "egress_interface"]].concat();
    for (e, gone) in [(None, &always[..]), (Some(&en), &with_enrichment[..])] {
        let (mut full, mut lean) = (Vec::new(), Vec::new());
        encode_json_enriched(&mut full, r, &f, e, &EncodeOptions::default());
        encode_json_lean(&mut lean, r, &f, e);
        let (mut full, lean) = (json(&full), json(&lean));
        // What is left out is shown by the ECS part, with the same value.
        let nf = &full["netflow"];
        assert_eq!(nf["source_ipv4_address"], lean["source"]["ip"]);
        assert_eq!(
            nf["destination_transport_port"],
            lean["destination"]["port"]
        );
        assert_eq!(
            nf["protocol_identifier"].to_string(),
            lean["network"]["iana_number"].as_str().expect("keyword")
        );
        assert_eq!(nf["flow_start_milliseconds"], lean["event"]["start"]);
        assert_eq!(nf["flow_end_milliseconds"], lean["event"]["end"]);
        if e.is_some() {
            assert_eq!(
                nf["ingress_interface"].to_string(),
                lean["observer"]["ingress"]["interface"]["id"]
                    .as_str()
                    .expect("keyword")
            );
        }
        let obj = full["netflow"].as_object_mut().expect("netflow object");
        for k in gone {
            assert!(obj.remove(*k).is_some(), "{k} in the full document");
        }
        // Everything else is the same: the raw counters, the NAT address, the repeated
        // next hops, and the whole ECS part.
        assert_eq!(full, lean);
        assert_eq!(lean["netflow"]["octet_delta_count"], 1500);
        assert_eq!(lean["netflow"]["post_nat_source_ipv4_address"], "10.9.9.9");
        assert_eq!(
            lean["netflow"]["ip_next_hop_ipv4_address"],
            serde_json::json!(["10.0.0.1", "10.0.0.2"])
        );
    }
}
