//! Synthetic exporters, in process: every datagram rendered for several exporters is decoded
//! with the collector's own decoders (NetFlow/IPFIX and sFlow), and what they read is compared
//! with the flows the model generates again from the same seed: counts, every field, options
//! tables (sampling, interface names), sequence numbers (no gap, no restart), template
//! refreshes, and flow end = send time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use sluice_decode::sflow::SflowDecoder;
use sluice_decode::{Datagram, Decoder, Limits};
use sluice_loadgen::send::{wall_clock, Rendered, Source};
use sluice_loadgen::synth::encode;
use sluice_loadgen::synth::{exporter_quota, exporter_rng, Flow, Model, Proto, Synth, SynthConfig};

struct Sent {
    exporter: usize,
    payload: Vec<u8>,
    what: Rendered,
    now_ns: i64,
}

/// Renders every datagram of a counted run, exporters in turn, with the clock advancing 1 ms
/// per datagram (so interval refreshes happen too).
fn render_all(cfg: &SynthConfig) -> (Synth, Vec<Sent>) {
    let start = wall_clock();
    let mut s = Synth::new(cfg.clone(), start.0).expect("config");
    let mut out = Vec::new();
    let mut clock = start.0 * 1_000_000 + i64::from(start.1 % 1_000_000);
    loop {
        let mut any = false;
        for e in 0..s.exporters() {
            if s.remaining(e) == 0 {
                continue;
            }
            any = true;
            clock += 1_000_000 + 12_345;
            let now = (clock / 1_000_000, (clock % 1_000_000_000) as u32);
            let mut buf = Vec::new();
            let what = s.render(e, now, &mut buf);
            assert!(buf.len() <= s.max_datagram_len(), "{} bytes", buf.len());
            out.push(Sent {
                exporter: e,
                payload: buf,
                what,
                now_ns: clock,
            });
        }
        if !any {
            break;
        }
    }
    (s, out)
}

fn src(e: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + e as u16))
}

/// The fields both sides know, as comparable tuples.
type Key = (IpAddr, IpAddr, u16, u16, u8, u16, u64, u64, u32, u32);

fn expected(cfg: &SynthConfig, model: &Model, e: usize, v5: bool) -> Vec<Key> {
    let mut rng = exporter_rng(cfg.seed, e);
    let n = exporter_quota(cfg.count.unwrap_or(0), cfg.exporters, e);
    let mut v: Vec<Key> = (0..n)
        .map(|_| {
            let f = model.flow(&mut rng);
            let (b, p) = if v5 {
                (f.bytes.min(u32::MAX.into()), f.packets.min(u32::MAX.into()))
            } else {
                (f.bytes, f.packets)
            };
            (
                f.src,
                f.dst,
                f.src_port,
                f.dst_port,
                f.proto,
                u16::from(f.tcp_flags),
                b,
                p,
                f.in_if,
                f.out_if,
            )
        })
        .collect();
    v.sort();
    v
}

fn netflow_roundtrip(proto: Proto, ipv6: f64) {
    let mut cfg = SynthConfig {
        proto,
        exporters: 3,
        seed: 99,
        sampling: 250,
        count: Some(20_000),
        refresh_every: 200,
        refresh_interval_ms: 500,
        ..SynthConfig::default()
    };
    cfg.model.ipv6 = ipv6;
    cfg.model.interfaces = 40;
    let (synth, sent) = render_all(&cfg);
    let v5 = proto == Proto::V5;
    let ipfix = proto == Proto::Ipfix;
    let mut dec = Decoder::new(Limits::default());
    let mut got: HashMap<usize, Vec<Key>> = HashMap::new();
    let (mut flows, mut options) = (0u64, 0u64);
    let mut refreshes = 0;
    let mut checked_tables = 0u64;
    for (i, s) in sent.iter().enumerate() {
        flows += u64::from(s.what.flow_records);
        options += u64::from(s.what.options_records);
        if s.what.options_records > 0 && s.what.flow_records == 0 && !v5 {
            refreshes += 1;
        }
        let dg = Datagram {
            src: src(s.exporter),
            receive_time_ns: s.now_ns + 50_000,
            payload: &s.payload,
            tag: i as u64,
        };
        let now = s.now_ns;
        let e = s.exporter;
        let mut n = 0u32;
        dec.decode_with_tables(&dg, |r, tables| {
            if r.template.options {
                return;
            }
            n += 1;
            let f = r.flow();
            let end_err = (f.end_ns - now).abs();
            let tolerance = if proto == Proto::V9 { 1_000_000 } else { 1_000 };
            assert!(
                end_err < tolerance,
                "{proto}: flow end {} vs sent {now}",
                f.end_ns
            );
            assert!(f.times_from_record);
            let key = (
                f.src_ip.expect("src"),
                f.dst_ip.expect("dst"),
                f.src_port.expect("sport"),
                f.dst_port.expect("dport"),
                f.proto.expect("proto"),
                f.tcp_flags.expect("flags"),
                f.bytes.expect("bytes"),
                f.packets.expect("packets"),
                f.in_if.expect("in if"),
                f.out_if.expect("out if"),
            );
            got.entry(e).or_default().push(key);
            if v5 {
                assert_eq!(f.sampling_interval, Some(250));
            } else {
                // Sampling and interface names come from the options tables.
                let t = tables.expect("options tables");
                assert_eq!(f.sampler_id, Some(1));
                assert_eq!(t.samplers.get(&1), Some(&250));
                let name = t.interfaces.get(&key.8).and_then(|i| i.name.as_deref());
                let (want, desc) = encode::interface_names(e, key.8);
                assert_eq!(name, Some(want.as_str()));
                assert_eq!(
                    t.interfaces
                        .get(&key.8)
                        .and_then(|i| i.description.as_deref()),
                    Some(desc.as_str())
                );
                checked_tables += 1;
            }
        })
        .expect("decodes");
        assert_eq!(n, s.what.flow_records, "{proto}: records of datagram {i}");
    }
    assert_eq!(flows, 20_000, "{proto}: flow records sent");
    let st = dec.stats();
    assert_eq!(st.flow_records, flows, "{proto}: every flow record decodes");
    assert_eq!(
        st.options_records, options,
        "{proto}: every options record decodes"
    );
    assert_eq!(st.error_total(), 0, "{proto}: errors {:?}", st.errors);
    assert_eq!(st.sets_held, 0, "{proto}: data before its template");
    assert_eq!(st.exporter_restarts, 0, "{proto}: restarts");
    assert_eq!(dec.scope_count(), 3);
    for (k, x) in dec.exporters() {
        assert_eq!(x.missing, 0, "{proto}: sequence gap in {k:?}");
        assert!(x.received > 0);
    }
    if !v5 {
        // First refresh plus those due every 200 datagrams or 500 ms (a datagram per ms).
        assert!(refreshes > 3 * 5, "{proto}: {refreshes} refresh datagrams");
        assert_eq!(checked_tables, flows);
        // Interface table: 40 interfaces over as many datagrams as it takes, every refresh.
        assert!(options > 3 * 41, "{proto}: {options} options records");
    }
    for e in 0..3 {
        let mut g = got.remove(&e).expect("exporter's records");
        g.sort();
        assert_eq!(
            g,
            expected(&cfg, synth.model(), e, v5),
            "{proto}: exporter {e}'s flows"
        );
    }
    let six = sent.iter().filter(|s| s.payload.len() > 20).count();
    assert!(six > 0);
    if ipv6 > 0.0 {
        let v6 = synth_v6_share(&cfg, synth.model());
        assert!((v6 - ipv6).abs() < 0.03, "{proto}: IPv6 share {v6}");
    }
    let _ = ipfix;
}

fn synth_v6_share(cfg: &SynthConfig, model: &Model) -> f64 {
    let mut rng = exporter_rng(cfg.seed, 0);
    let n = 5000;
    let v6 = (0..n).filter(|_| model.flow(&mut rng).v6).count();
    v6 as f64 / f64::from(n)
}

#[test]
fn v5_roundtrip() {
    netflow_roundtrip(Proto::V5, 0.0);
}

#[test]
fn v9_roundtrip() {
    netflow_roundtrip(Proto::V9, 0.3);
}

#[test]
fn ipfix_roundtrip() {
    netflow_roundtrip(Proto::Ipfix, 0.3);
}

/// (src, dst, sport, dport, protocol, in, out) of an sFlow sample.
type SampleKey = (IpAddr, IpAddr, u16, u16, u8, u32, u32);

#[test]
fn sflow_roundtrip() {
    let mut cfg = SynthConfig {
        proto: Proto::Sflow,
        exporters: 2,
        seed: 5,
        sampling: 512,
        count: Some(6_000),
        refresh_every: 100,
        refresh_interval_ms: 300,
        ..SynthConfig::default()
    };
    cfg.model.ipv6 = 0.3;
    cfg.model.interfaces = 30;
    let (synth, sent) = render_all(&cfg);
    let mut dec = SflowDecoder::default();
    let mut got: HashMap<usize, Vec<SampleKey>> = HashMap::new();
    let (mut flows, mut counters_sent, mut counters_got) = (0u64, 0u64, 0u64);
    for (i, s) in sent.iter().enumerate() {
        flows += u64::from(s.what.flow_records);
        counters_sent += u64::from(s.what.options_records);
        let dg = Datagram {
            src: src(s.exporter),
            receive_time_ns: s.now_ns,
            payload: &s.payload,
            tag: i as u64,
        };
        let e = s.exporter;
        dec.decode(
            &dg,
            |r| {
                let f = r.flow();
                assert_eq!(f.sampling_interval, Some(512));
                assert_eq!(f.packets, Some(1));
                got.entry(e).or_default().push((
                    f.src_ip.expect("src"),
                    f.dst_ip.expect("dst"),
                    f.src_port.unwrap_or(0),
                    f.dst_port.unwrap_or(0),
                    f.proto.expect("proto"),
                    f.in_if.expect("in"),
                    f.out_if.expect("out"),
                ));
            },
            |_| counters_got += 1,
        )
        .expect("decodes");
    }
    let st = dec.stats();
    assert_eq!(flows, 6_000);
    assert_eq!(st.flow_samples, flows);
    assert_eq!(st.counter_samples, counters_sent);
    assert_eq!(counters_got, counters_sent);
    assert!(
        counters_sent >= 2 * 30 * 3,
        "{counters_sent} counter samples"
    );
    assert_eq!(st.error_total(), 0, "{:?}", st.errors);
    assert_eq!(st.skipped_samples + st.skipped_flow_records, 0);
    let agents: Vec<_> = dec.agents().collect();
    assert_eq!(agents.len(), 2);
    for (k, a) in agents {
        assert_eq!(a.missing_datagrams, 0, "{k:?}");
        assert_eq!(a.missing_samples, 0, "{k:?}");
        assert_eq!(a.restarts, 0, "{k:?}");
    }
    for e in 0..2 {
        let mut rng = exporter_rng(cfg.seed, e);
        let n = exporter_quota(6_000, 2, e);
        let mut want: Vec<_> = (0..n)
            .map(|_| {
                let f: Flow = synth.model().flow(&mut rng);
                let icmp = f.proto == 1 || f.proto == 58;
                let (sp, dp) = if icmp {
                    (0, 0)
                } else {
                    (f.src_port, f.dst_port)
                };
                (f.src, f.dst, sp, dp, f.proto, f.in_if, f.out_if)
            })
            .collect();
        let mut g = got.remove(&e).expect("records");
        for r in g.iter_mut() {
            if r.4 == 1 || r.4 == 58 {
                (r.2, r.3) = (0, 0);
            }
        }
        g.sort();
        want.sort();
        assert_eq!(g, want, "exporter {e}'s samples");
    }
}

#[test]
fn configs_that_cannot_work_are_refused() {
    let bad = [
        SynthConfig {
            proto: Proto::V5,
            ..SynthConfig::default()
        }, // IPv6 share 0.2 by default: v5 cannot carry it
        SynthConfig {
            exporters: 0,
            ..SynthConfig::default()
        },
        SynthConfig {
            sampling: 0,
            ..SynthConfig::default()
        },
        SynthConfig {
            max_records: Some(0),
            ..SynthConfig::default()
        },
    ];
    for c in bad {
        assert!(Synth::new(c.clone(), 0).is_err(), "{c:?}");
    }
    let mut v5 = SynthConfig {
        proto: Proto::V5,
        exporters: 70_000,
        ..SynthConfig::default()
    };
    v5.model.ipv6 = 0.0;
    assert!(Synth::new(v5, 0).is_err(), "70,000 v5 engine ids");
}

/// `max_records` caps every data datagram, and a counted run sends exactly its count.
#[test]
fn records_per_datagram_and_exact_counts() {
    let cfg = SynthConfig {
        proto: Proto::Ipfix,
        exporters: 4,
        count: Some(1003),
        max_records: Some(7),
        ..SynthConfig::default()
    };
    let (_, sent) = render_all(&cfg);
    let data: Vec<&Sent> = sent.iter().filter(|s| s.what.flow_records > 0).collect();
    assert!(data.iter().all(|s| s.what.flow_records <= 7));
    let total: u64 = sent.iter().map(|s| u64::from(s.what.flow_records)).sum();
    assert_eq!(total, 1003);
    for e in 0..4 {
        let n: u64 = sent
            .iter()
            .filter(|s| s.exporter == e)
            .map(|s| u64::from(s.what.flow_records))
            .sum();
        assert_eq!(n, exporter_quota(1003, 4, e));
    }
}
