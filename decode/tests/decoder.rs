//! Decoder behaviour on hand-built messages: template scope, held data, withdrawal, variable
//! length fields, enterprise and reverse elements, times, options tables, limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_decode::template::Dialect;
use sluice_decode::{Datagram, Decoder, Flow, Limits, ScopeKey};

const T0: u32 = 1_700_000_000; // export time used throughout

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Template record; fields are (id, len, pen). A pen sets the enterprise bit.
fn tpl(id: u16, fields: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for &(fid, len, pen) in fields {
        let raw = if pen != 0 { fid | 0x8000 } else { fid };
        v.extend_from_slice(&raw.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        if pen != 0 {
            v.extend_from_slice(&pen.to_be_bytes());
        }
    }
    v
}

fn opt_tpl_ipfix(id: u16, scope: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    v.extend_from_slice(&scope.to_be_bytes());
    for &(fid, len) in fields {
        v.extend_from_slice(&fid.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
    }
    v
}

fn ipfix(domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut v = Vec::new();
    v.extend_from_slice(&10u16.to_be_bytes());
    v.extend_from_slice(&((body.len() + 16) as u16).to_be_bytes());
    v.extend_from_slice(&T0.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&domain.to_be_bytes());
    v.extend_from_slice(&body);
    v
}

fn v9(uptime: u32, source_id: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&9u16.to_be_bytes());
    v.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    v.extend_from_slice(&uptime.to_be_bytes());
    v.extend_from_slice(&T0.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&source_id.to_be_bytes());
    for s in sets {
        v.extend_from_slice(s);
    }
    v
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), port)
}

/// Decodes and returns (flow, field names) of every flow record.
fn run(d: &mut Decoder, src: SocketAddr, payload: &[u8]) -> Vec<(Flow, Vec<String>)> {
    let mut out = Vec::new();
    let _ = d.decode(
        &Datagram {
            src,
            receive_time_ns: 5,
            payload,
            tag: 0,
        },
        |r| {
            if !r.template.options {
                out.push((
                    r.flow(),
                    r.template
                        .fields
                        .iter()
                        .map(|f| f.name.to_string())
                        .collect(),
                ));
            }
        },
    );
    out
}

const SRC_DST_BYTES: &[(u16, u16, u32)] = &[(8, 4, 0), (12, 4, 0), (1, 8, 0)];

fn data_src_dst_bytes(src: [u8; 4], dst: [u8; 4], bytes: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&bytes.to_be_bytes());
    v
}

#[test]
fn ipfix_data_before_template_is_held_then_decoded() {
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    let data = set(300, &data_src_dst_bytes([10, 0, 0, 1], [10, 0, 0, 2], 1234));
    assert!(run(&mut d, a, &ipfix(1, std::slice::from_ref(&data))).is_empty());
    assert_eq!(d.held_sets(), 1);
    let got = run(&mut d, a, &ipfix(1, &[set(2, &tpl(300, SRC_DST_BYTES))]));
    assert_eq!(got.len(), 1, "held record decoded when the template came");
    assert_eq!(got[0].0.bytes, Some(1234));
    assert_eq!(d.held_sets(), 0);
    assert_eq!(d.stats().held_records_decoded, 1);
}

#[test]
fn data_before_template_in_the_same_message_is_decoded() {
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    let msg = ipfix(
        1,
        &[
            set(300, &data_src_dst_bytes([10, 0, 0, 1], [10, 0, 0, 2], 7)),
            set(2, &tpl(300, SRC_DST_BYTES)),
        ],
    );
    let got = run(&mut d, a, &msg);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.bytes, Some(7));
}

#[test]
fn ipfix_scope_is_transport_session_and_domain() {
    let mut d = Decoder::default();
    let t = set(2, &tpl(300, SRC_DST_BYTES));
    let data = set(300, &data_src_dst_bytes([1, 1, 1, 1], [2, 2, 2, 2], 1));
    run(&mut d, addr(1, 4000), &ipfix(1, &[t]));
    // Same address, other source port: another transport session, template unknown.
    assert!(run(
        &mut d,
        addr(1, 4001),
        &ipfix(1, std::slice::from_ref(&data))
    )
    .is_empty());
    // Same session, other observation domain: unknown too.
    assert!(run(
        &mut d,
        addr(1, 4000),
        &ipfix(2, std::slice::from_ref(&data))
    )
    .is_empty());
    // Other exporter address: unknown.
    assert!(run(
        &mut d,
        addr(2, 4000),
        &ipfix(1, std::slice::from_ref(&data))
    )
    .is_empty());
    assert_eq!(run(&mut d, addr(1, 4000), &ipfix(1, &[data])).len(), 1);
}

#[test]
fn v9_scope_is_address_and_source_id_not_port() {
    let mut d = Decoder::default();
    let t = set(0, &tpl(300, SRC_DST_BYTES));
    let data = set(300, &data_src_dst_bytes([1, 1, 1, 1], [2, 2, 2, 2], 9));
    run(&mut d, addr(1, 4000), &v9(1000, 7, &[t]));
    assert_eq!(
        run(
            &mut d,
            addr(1, 5555),
            &v9(1000, 7, std::slice::from_ref(&data))
        )
        .len(),
        1
    );
    assert!(run(
        &mut d,
        addr(1, 4000),
        &v9(1000, 8, std::slice::from_ref(&data))
    )
    .is_empty());
    assert!(run(&mut d, addr(3, 4000), &v9(1000, 7, &[data])).is_empty());
}

#[test]
fn same_template_id_two_source_ids_two_layouts() {
    let mut d = Decoder::default();
    let a = addr(1, 2055);
    run(
        &mut d,
        a,
        &v9(1, 1, &[set(0, &tpl(256, &[(8, 4, 0), (1, 4, 0)]))]),
    );
    run(
        &mut d,
        a,
        &v9(1, 2, &[set(0, &tpl(256, &[(1, 4, 0), (8, 4, 0)]))]),
    );
    let r1 = run(
        &mut d,
        a,
        &v9(1, 1, &[set(256, &[10, 0, 0, 1, 0, 0, 0, 5])]),
    );
    let r2 = run(
        &mut d,
        a,
        &v9(1, 2, &[set(256, &[0, 0, 0, 5, 10, 0, 0, 1])]),
    );
    assert_eq!(r1[0].0, r2[0].0);
    assert_eq!(r1[0].0.bytes, Some(5));
}

#[test]
fn withdrawal_and_redefinition() {
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    run(&mut d, a, &ipfix(1, &[set(2, &tpl(300, SRC_DST_BYTES))]));
    let data = set(300, &data_src_dst_bytes([1, 1, 1, 1], [2, 2, 2, 2], 3));
    assert_eq!(
        run(&mut d, a, &ipfix(1, std::slice::from_ref(&data))).len(),
        1
    );
    // Withdraw template 300 (field count 0).
    run(&mut d, a, &ipfix(1, &[set(2, &[1, 44, 0, 0])]));
    assert_eq!(d.stats().templates_withdrawn, 1);
    assert!(run(&mut d, a, &ipfix(1, std::slice::from_ref(&data))).is_empty());
    // Redefine with another layout: the held set is decoded with the new one.
    let got = run(
        &mut d,
        a,
        &ipfix(1, &[set(2, &tpl(300, &[(1, 8, 0), (8, 4, 0), (12, 4, 0)]))]),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.bytes, Some(0x0101_0101_0202_0202));
    // Withdraw all (template id 2, count 0).
    run(&mut d, a, &ipfix(1, &[set(2, &[0, 2, 0, 0])]));
    assert_eq!(d.template_count(), 0);
}

#[test]
fn variable_length_fields_and_unknown_enterprise_and_reverse_elements() {
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    let fields = [
        (8, 4, 0),
        (96, 0xffff, 0),  // applicationName, varlen
        (1, 8, 29305),    // reverse octetDeltaCount
        (77, 2, 424_242), // unknown enterprise element
        (83, 0xffff, 0),  // interfaceDescription, long form length
    ];
    run(&mut d, a, &ipfix(1, &[set(2, &tpl(400, &fields))]));
    let mut rec = vec![10, 0, 0, 9, 3, b'w', b'e', b'b'];
    rec.extend_from_slice(&77u64.to_be_bytes());
    rec.extend_from_slice(&[0xbe, 0xef]);
    rec.push(255);
    rec.extend_from_slice(&300u16.to_be_bytes());
    rec.extend(std::iter::repeat_n(b'x', 300));
    let mut two = rec.clone();
    two.extend_from_slice(&rec);
    let got = run(&mut d, a, &ipfix(1, &[set(400, &two)]));
    assert_eq!(got.len(), 2);
    let (flow, names) = &got[0];
    assert_eq!(flow.rev_bytes, Some(77));
    assert_eq!(
        names,
        &[
            "source_ipv4_address",
            "application_name",
            "reverse_octet_delta_count",
            "enterprise_424242_77",
            "interface_description"
        ]
    );
}

#[test]
fn v9_uptime_arithmetic_including_wrap() {
    let mut d = Decoder::default();
    let a = addr(1, 2055);
    // FIRST_SWITCHED (22) and LAST_SWITCHED (21).
    run(
        &mut d,
        a,
        &v9(0, 1, &[set(0, &tpl(256, &[(22, 4, 0), (21, 4, 0)]))]),
    );
    // Uptime 10 s; flow from 4 s to 9 s of uptime.
    let mut body = Vec::new();
    body.extend_from_slice(&4_000u32.to_be_bytes());
    body.extend_from_slice(&9_000u32.to_be_bytes());
    let f = run(&mut d, a, &v9(10_000, 1, &[set(256, &body)]))[0].0;
    let export = i64::from(T0) * 1_000_000_000;
    assert_eq!(f.start_ns, export - 6_000_000_000);
    assert_eq!(f.end_ns, export - 1_000_000_000);
    // A second exporter (source id 2) whose uptime is 2 s, with first/last "negative"
    // (wrapped modulo 2^32): 3 s and 1 s before it started.
    run(
        &mut d,
        a,
        &v9(0, 2, &[set(0, &tpl(256, &[(22, 4, 0), (21, 4, 0)]))]),
    );
    let mut body = Vec::new();
    body.extend_from_slice(&(u32::MAX - 2_999).to_be_bytes());
    body.extend_from_slice(&(u32::MAX - 999).to_be_bytes());
    let f = run(&mut d, a, &v9(2_000, 2, &[set(256, &body)]))[0].0;
    assert_eq!(f.start_ns, export - 5_000_000_000);
    assert_eq!(f.end_ns, export - 3_000_000_000);
    // A flow stamped just after the header (clock skew) stays a few ms in the future.
    let mut body = Vec::new();
    body.extend_from_slice(&2_010u32.to_be_bytes());
    body.extend_from_slice(&2_020u32.to_be_bytes());
    let f = run(&mut d, a, &v9(2_000, 2, &[set(256, &body)]))[0].0;
    assert_eq!(f.end_ns, export + 20_000_000);
}

#[test]
fn ipfix_times_in_every_encoding() {
    let a = addr(1, 4000);
    let export = i64::from(T0) * 1_000_000_000;
    let ntp = |unix_s: u64, frac: u32| ((unix_s + 2_208_988_800) << 32) | u64::from(frac);
    /// (template fields, record, expected start, expected end)
    type Case = (Vec<(u16, u16, u32)>, Vec<u8>, i64, i64);
    let cases: Vec<Case> = vec![
        (
            vec![(150, 4, 0), (151, 4, 0)],
            [(T0 - 10).to_be_bytes(), (T0 - 5).to_be_bytes()].concat(),
            export - 10_000_000_000,
            export - 5_000_000_000,
        ),
        (
            vec![(152, 8, 0), (153, 8, 0)],
            [
                (u64::from(T0) * 1000 - 1500).to_be_bytes(),
                (u64::from(T0) * 1000 - 500).to_be_bytes(),
            ]
            .concat(),
            export - 1_500_000_000,
            export - 500_000_000,
        ),
        (
            vec![(154, 8, 0), (155, 8, 0)],
            [
                ntp(u64::from(T0) - 2, 1 << 31).to_be_bytes(),
                ntp(u64::from(T0) - 1, 0).to_be_bytes(),
            ]
            .concat(),
            export - 1_500_000_000,
            export - 1_000_000_000,
        ),
        (
            vec![(156, 8, 0), (157, 8, 0)],
            [
                ntp(u64::from(T0) - 2, 1 << 30).to_be_bytes(),
                ntp(u64::from(T0), 0).to_be_bytes(),
            ]
            .concat(),
            export - 1_750_000_000,
            export,
        ),
        (
            vec![(158, 4, 0), (159, 4, 0)],
            [3_000_000u32.to_be_bytes(), 1_000_000u32.to_be_bytes()].concat(),
            export - 3_000_000_000,
            export - 1_000_000_000,
        ),
        (
            // NX-OS: 8-byte FIRST/LAST_SWITCHED holding epoch milliseconds.
            vec![(22, 8, 0), (21, 8, 0)],
            [
                (u64::from(T0) * 1000 - 700).to_be_bytes(),
                (u64::from(T0) * 1000 - 200).to_be_bytes(),
            ]
            .concat(),
            export - 700_000_000,
            export - 200_000_000,
        ),
        (
            // Start plus duration.
            vec![(152, 8, 0), (161, 4, 0)],
            [
                (u64::from(T0) * 1000 - 4000).to_be_bytes().to_vec(),
                2500u32.to_be_bytes().to_vec(),
            ]
            .concat(),
            export - 4_000_000_000,
            export - 1_500_000_000,
        ),
    ];
    for (fields, body, start, end) in cases {
        let mut d = Decoder::default();
        run(&mut d, a, &ipfix(1, &[set(2, &tpl(300, &fields))]));
        let got = run(&mut d, a, &ipfix(1, &[set(300, &body)]));
        assert_eq!(got.len(), 1, "{fields:?}");
        assert_eq!(
            (got[0].0.start_ns, got[0].0.end_ns),
            (start, end),
            "{fields:?}"
        );
        assert!(got[0].0.times_from_record);
    }
}

#[test]
fn ipfix_uptime_times_use_system_init_time_from_options_data() {
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    let init_ms = u64::from(T0) * 1000 - 3_600_000; // booted an hour before
                                                    // Options template: scope observationDomainId (149), option systemInitTimeMilliseconds.
    let ot = set(3, &opt_tpl_ipfix(500, 1, &[(149, 4), (160, 8)]));
    let od = set(
        500,
        &[1u32.to_be_bytes().to_vec(), init_ms.to_be_bytes().to_vec()].concat(),
    );
    let t = set(2, &tpl(300, &[(22, 4, 0), (21, 4, 0)]));
    run(&mut d, a, &ipfix(1, &[ot, od, t]));
    let key = ScopeKey {
        version: 10,
        addr: a.ip(),
        port: a.port(),
        domain: 1,
    };
    assert_eq!(
        d.tables(&key).and_then(|t| t.system_init_ms),
        Some(init_ms as i64)
    );
    let body = [1_000u32.to_be_bytes(), 2_000u32.to_be_bytes()].concat();
    let f = run(&mut d, a, &ipfix(1, &[set(300, &body)]))[0].0;
    assert_eq!(f.start_ns, (init_ms as i64 + 1_000) * 1_000_000);
    assert_eq!(f.end_ns, (init_ms as i64 + 2_000) * 1_000_000);
    // "Negative" uptimes (a probe fed packets older than its start) wrap modulo 2^32.
    let body = [
        (u32::MAX - 9_999).to_be_bytes(),
        (u32::MAX - 4_999).to_be_bytes(),
    ]
    .concat();
    let f = run(&mut d, a, &ipfix(1, &[set(300, &body)]))[0].0;
    assert_eq!(f.start_ns, (init_ms as i64 - 10_000) * 1_000_000);
    assert_eq!(f.end_ns, (init_ms as i64 - 5_000) * 1_000_000);
}

#[test]
fn options_data_fills_sampler_and_interface_tables_and_is_not_a_flow() {
    let mut d = Decoder::default();
    let a = addr(1, 2055);
    // v9 options template: scope interface (2) 4 bytes; options samplerId 48, interval 34,
    // then a second with ifindex scope and interfaceName (82).
    let mut ot = Vec::new();
    ot.extend_from_slice(&600u16.to_be_bytes());
    ot.extend_from_slice(&4u16.to_be_bytes()); // scope length (bytes)
    ot.extend_from_slice(&8u16.to_be_bytes()); // options length
    ot.extend_from_slice(&[0, 1, 0, 4]); // scope: system, 4 bytes
    ot.extend_from_slice(&[0, 48, 0, 1, 0, 34, 0, 4]);
    ot.extend_from_slice(&[0, 0]); // padding to 4
    let od = [vec![0, 0, 0, 0], vec![7], 100u32.to_be_bytes().to_vec()].concat();
    let got = run(&mut d, a, &v9(1, 0, &[set(1, &ot), set(600, &od)]));
    assert!(got.is_empty(), "options records are not flows");
    let key = ScopeKey {
        version: 9,
        addr: a.ip(),
        port: 0,
        domain: 0,
    };
    assert_eq!(
        d.tables(&key).map(|t| t.samplers.get(&7).copied()),
        Some(Some(100))
    );
    assert_eq!(d.stats().options_records, 1);

    let ot = set(3, &opt_tpl_ipfix(501, 1, &[(10, 4), (82, 0xffff)]));
    let od = set(
        501,
        &[3u32.to_be_bytes().to_vec(), vec![4], b"eth0".to_vec()].concat(),
    );
    run(&mut d, addr(1, 4739), &ipfix(0, &[ot, od]));
    let key = ScopeKey {
        version: 10,
        addr: a.ip(),
        port: 4739,
        domain: 0,
    };
    let name = d
        .tables(&key)
        .and_then(|t| t.interfaces.get(&3))
        .and_then(|i| i.name.clone());
    assert_eq!(name.as_deref(), Some("eth0"));
}

#[test]
fn v5_rejects_bad_counts_and_decodes_times() {
    let mut d = Decoder::default();
    let a = addr(1, 2055);
    let mut p = vec![0, 5, 0, 1];
    p.extend_from_slice(&60_000u32.to_be_bytes()); // uptime
    p.extend_from_slice(&T0.to_be_bytes());
    p.extend_from_slice(&500_000_000u32.to_be_bytes()); // nsecs
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&[0, 0, 0x40, 0x0a]); // engine, sampling mode 1 interval 10
    let mut rec = [0u8; 48];
    rec[0..4].copy_from_slice(&[10, 0, 0, 1]);
    rec[16..20].copy_from_slice(&2u32.to_be_bytes());
    rec[20..24].copy_from_slice(&100u32.to_be_bytes());
    rec[24..28].copy_from_slice(&50_000u32.to_be_bytes());
    rec[28..32].copy_from_slice(&59_000u32.to_be_bytes());
    rec[38] = 6;
    p.extend_from_slice(&rec);
    let got = run(&mut d, a, &p);
    assert_eq!(got.len(), 1);
    let f = got[0].0;
    assert_eq!((f.packets, f.bytes, f.proto), (Some(2), Some(100), Some(6)));
    let export = i64::from(T0) * 1_000_000_000 + 500_000_000;
    assert_eq!(f.start_ns, export - 10_000_000_000);
    assert_eq!(f.end_ns, export - 1_000_000_000);
    assert_eq!(f.sampling_interval, Some(10));
    // Count 31 and count above the payload are rejected.
    let mut bad = p.clone();
    bad[3] = 31;
    assert!(run(&mut d, a, &bad).is_empty());
    let mut bad = p.clone();
    bad[3] = 2;
    assert!(run(&mut d, a, &bad).is_empty());
    assert_eq!(d.stats().errors.get("invalid_length"), Some(&1));
    assert_eq!(d.stats().errors.get("truncated"), Some(&1));
}

#[test]
fn held_data_is_bounded_and_counted() {
    let limits = Limits {
        max_held_sets: 4,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    let a = addr(1, 4000);
    for i in 0..10u16 {
        run(&mut d, a, &ipfix(1, &[set(300 + i, &[0; 16])]));
    }
    assert_eq!(d.held_sets(), 4);
    assert_eq!(d.stats().errors.get("limit"), Some(&6));
    assert_eq!(d.finish(), 4);
    assert_eq!(d.stats().errors.get("template_missing"), Some(&4));
}

#[test]
fn template_count_is_bounded() {
    let limits = Limits {
        max_templates: 3,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    let a = addr(1, 4000);
    for i in 0..5u16 {
        run(
            &mut d,
            a,
            &ipfix(1, &[set(2, &tpl(300 + i, SRC_DST_BYTES))]),
        );
    }
    assert_eq!(d.template_count(), 3);
    assert_eq!(d.stats().errors.get("limit"), Some(&2));
}

#[test]
fn zero_length_records_and_reserved_ids_do_not_loop_or_panic() {
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    run(&mut d, a, &ipfix(1, &[set(2, &tpl(300, &[(8, 0, 0)]))]));
    assert_eq!(d.template_count(), 0);
    assert!(run(&mut d, a, &ipfix(1, &[set(300, &[0; 64])])).is_empty());
    run(&mut d, a, &ipfix(1, &[set(2, &tpl(7, SRC_DST_BYTES))]));
    assert_eq!(d.template_count(), 0, "template ids below 256 are refused");
}

#[test]
fn every_truncation_and_byte_flip_of_a_message_is_handled() {
    let msg = ipfix(
        1,
        &[
            set(3, &opt_tpl_ipfix(500, 1, &[(149, 4), (160, 8)])),
            set(
                2,
                &tpl(
                    300,
                    &[(8, 4, 0), (96, 0xffff, 0), (1, 8, 29305), (5, 4, 99)],
                ),
            ),
            set(
                300,
                &[10, 0, 0, 1, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            ),
        ],
    );
    for cut in 0..msg.len() {
        let mut d = Decoder::default();
        run(&mut d, addr(1, 1), &msg[..cut]);
    }
    for i in 0..msg.len() {
        for bit in 0..8 {
            let mut m = msg.clone();
            m[i] ^= 1 << bit;
            let mut d = Decoder::default();
            run(&mut d, addr(1, 1), &m);
            run(&mut d, addr(1, 1), &m);
        }
    }
    let _ = Dialect::Ipfix;
}

#[test]
fn template_memory_is_bounded_over_all_exporters() {
    let limits = Limits {
        max_total_template_fields: 10,
        max_total_held_bytes: 2 * (40 + sluice_decode::decoder::HELD_OVERHEAD) + 10,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    // Three exporters, one 3-field template each: 9 fields.
    for e in 1..=3u8 {
        run(
            &mut d,
            addr(e, 4000),
            &ipfix(1, &[set(2, &tpl(300, SRC_DST_BYTES))]),
        );
    }
    assert_eq!(d.template_fields(), 9);
    // A fourth exporter's template would pass the total: another exporter's templates are
    // evicted to make room (its next refresh brings them back).
    run(
        &mut d,
        addr(4, 4000),
        &ipfix(1, &[set(2, &tpl(300, SRC_DST_BYTES))]),
    );
    assert_eq!(d.template_count(), 3);
    assert_eq!(d.template_fields(), 9);
    assert_eq!(d.stats().templates_evicted, 1);
    assert_eq!(d.stats().errors.get("limit"), None);
    let with_templates = d.exporters().filter(|(_, e)| e.templates > 0).count();
    assert_eq!(with_templates, 3);
    // The newcomer is among them: its data decodes.
    let data = set(300, &data_src_dst_bytes([1, 1, 1, 1], [2, 2, 2, 2], 5));
    assert_eq!(run(&mut d, addr(4, 4000), &ipfix(1, &[data])).len(), 1);
    // A template bigger than the whole budget is refused and counted.
    run(
        &mut d,
        addr(5, 4000),
        &ipfix(1, &[set(2, &tpl(301, &[(8, 4, 0); 11]))]),
    );
    assert_eq!(d.stats().errors.get("limit"), Some(&1));
    // Held data over all exporters stops at the budget (two 40-byte sets and their overhead).
    for e in 10..20u8 {
        run(&mut d, addr(e, 4000), &ipfix(1, &[set(400, &[0; 40])]));
    }
    assert_eq!(
        d.held_bytes(),
        2 * (40 + sluice_decode::decoder::HELD_OVERHEAD)
    );
    assert_eq!(d.finish(), 2);
    assert_eq!(d.held_bytes(), 0);
}

#[test]
fn sampling_packet_interval_and_space_at_their_maximum_do_not_overflow() {
    // Found by the ipfix fuzz target: samplingPacketInterval + samplingPacketSpace (IE 305,
    // 306) as 8-byte values overflowed when added.
    let mut d = Decoder::default();
    let a = addr(1, 4000);
    run(
        &mut d,
        a,
        &ipfix(1, &[set(2, &tpl(300, &[(305, 8, 0), (306, 8, 0)]))]),
    );
    let body = [u64::MAX.to_be_bytes(), u64::MAX.to_be_bytes()].concat();
    let got = run(&mut d, a, &ipfix(1, &[set(300, &body)]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.sampling_interval, Some(1));
    // And through an options record (the sampler table).
    let ot = set(3, &opt_tpl_ipfix(501, 1, &[(302, 4), (305, 8), (306, 8)]));
    let od = set(
        501,
        &[
            7u32.to_be_bytes().to_vec(),
            u64::MAX.to_be_bytes().to_vec(),
            u64::MAX.to_be_bytes().to_vec(),
        ]
        .concat(),
    );
    run(&mut d, a, &ipfix(1, &[ot, od]));
}
