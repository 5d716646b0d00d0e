//! The sFlow decoder against tshark's sFlow dissector, sample by sample, on every sFlow
//! capture (`captures/sflow/*.pcap` and `generated/pmacctd_sfprobe_sflow5.pcap`).
//!
//! How tshark's JSON is read (tshark 4.0): `tshark -n -r FILE -T json`; UDP 6343 is dissected
//! as sFlow by default. Per frame, `_source.layers.sflow` holds one object per sample, keyed
//! `"Flow sample, seq N"` (flow), `"Counters sample, seq N"` (counters) and so on; inside a flow
//! sample, `"Raw packet header"` carries `sflow_245.header.frame_length` and the dissected
//! sampled header under `sflow_245.header_tree` (`eth`, `vlan`, `ip`/`ipv6`, `tcp`/`udp`/
//! `icmp`/`icmpv6`); `"Extended switch data"`, `"Extended router data"` and `"Extended gateway
//! data"` carry the extended records. Keys repeat within one object (two samples with the
//! same sequence number, two VLAN tags), so the JSON is read into an ordered tree that keeps
//! every key and the order (serde_json's map would keep only the last of a repeated key, and
//! would sort). The k-th flow sample tshark shows in a frame is compared with the k-th record
//! the decoder emitted for that frame (records carry the frame number as their tag).
//!
//! Compared per sample, each only where tshark shows it: data source index, sampling rate,
//! input and output interface, frame length, source and destination address, protocol,
//! ports, TCP flags, ICMP type and code, VLANs of the extended switch record, next hop and
//! prefix lengths of the extended router record, source AS of the extended gateway record.
//! The interface mapping is the decoder's (documented in `sluice_decode::sflow`): an
//! interface that is not an ifIndex (the device itself, a discard, several interfaces) is 0.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use sluice_decode::pcap::PcapReader;
use sluice_decode::record::be_uint;
use sluice_decode::sflow::SflowDecoder;
use sluice_decode::{Datagram, Flow, Template};

// ---- an order- and duplicate-preserving JSON tree --------------------------------------

#[derive(Debug, Clone)]
enum J {
    /// null, booleans and numbers (tshark writes values as strings).
    Other,
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<J, E> {
                Ok(J::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<J, E> {
                Ok(J::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<J, E> {
                Ok(J::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<J, E> {
                Ok(J::Other)
            }
            fn visit_str<E>(self, v: &str) -> Result<J, E> {
                Ok(J::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<J, E> {
                Ok(J::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(J::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, J>()? {
                    v.push((k, x));
                }
                Ok(J::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl J {
    /// Values of key `k` in this object, in order (an array value counts as its elements).
    fn all<'a>(&'a self, k: &str) -> Vec<&'a J> {
        let mut out = Vec::new();
        if let J::Obj(m) = self {
            for (key, v) in m {
                if key == k {
                    match v {
                        J::Arr(xs) => out.extend(xs.iter()),
                        x => out.push(x),
                    }
                }
            }
        }
        out
    }
    fn get(&self, k: &str) -> Option<&J> {
        self.all(k).into_iter().next()
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.get(k)? {
            J::Str(s) => Some(s),
            _ => None,
        }
    }
    fn u64(&self, k: &str) -> Option<u64> {
        let s = self.str(k)?;
        match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        }
    }
    fn ip(&self, k: &str) -> Option<IpAddr> {
        self.str(k)?.parse().ok()
    }
    /// Entries of an object whose key starts with `prefix`, in order.
    fn starting<'a>(&'a self, prefix: &str) -> Vec<&'a J> {
        let mut out = Vec::new();
        if let J::Obj(m) = self {
            for (k, v) in m {
                if k.starts_with(prefix) {
                    out.push(v);
                }
            }
        }
        out
    }
}

// ---- the two sides ------------------------------------------------------------------------

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

fn sflow_captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(captures_dir().join("sflow"))
        .expect("captures/sflow")
        .flatten()
        .map(|e| format!("sflow/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".pcap"))
        .collect();
    v.push("generated/pmacctd_sfprobe_sflow5.pcap".into());
    v.sort();
    assert!(
        v.len() >= 8,
        "expected the shared sFlow captures, found {v:?}"
    );
    v
}

/// What tshark says about one flow sample; `None` where it shows nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sample {
    index: Option<u64>,
    rate: Option<u64>,
    in_if: Option<u64>,
    out_if: Option<u64>,
    bytes: Option<u64>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: Option<u64>,
    sport: Option<u64>,
    dport: Option<u64>,
    tcp_flags: Option<u64>,
    icmp: Option<u64>,
    vlan_in: Option<u64>,
    vlan_out: Option<u64>,
    next_hop: Option<IpAddr>,
    src_mask: Option<u64>,
    dst_mask: Option<u64>,
    src_as: Option<u64>,
}

const FIELDS: [&str; 18] = [
    "index",
    "rate",
    "in_if",
    "out_if",
    "bytes",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "tcp_flags",
    "icmp",
    "vlan_in",
    "vlan_out",
    "next_hop",
    "src_mask",
    "dst_mask",
    "src_as",
];

impl Sample {
    /// Field `i` of [`FIELDS`] as text, for comparison and messages.
    fn field(&self, i: usize) -> Option<String> {
        let ip = |a: &Option<IpAddr>| a.map(|a| a.to_string());
        let n = |v: &Option<u64>| v.map(|v| v.to_string());
        match i {
            0 => n(&self.index),
            1 => n(&self.rate),
            2 => n(&self.in_if),
            3 => n(&self.out_if),
            4 => n(&self.bytes),
            5 => ip(&self.src),
            6 => ip(&self.dst),
            7 => n(&self.proto),
            8 => n(&self.sport),
            9 => n(&self.dport),
            10 => n(&self.tcp_flags),
            11 => n(&self.icmp),
            12 => n(&self.vlan_in),
            13 => n(&self.vlan_out),
            14 => ip(&self.next_hop),
            15 => n(&self.src_mask),
            16 => n(&self.dst_mask),
            17 => n(&self.src_as),
            _ => None,
        }
    }
}

/// A VLAN as the decoder keeps it: 1..=4095, else none (0 and 0xffffffff mean unknown).
fn vlan(v: Option<u64>) -> Option<u64> {
    v.filter(|v| (1..=4095).contains(v))
}

fn tshark_sample(s: &J) -> Sample {
    let mut t = Sample {
        index: s.u64("sflow.flow_sample.index"),
        rate: s.u64("sflow.flow_sample.sampling_rate"),
        ..Sample::default()
    };
    // Compact input: a plain number; 0x3fffffff is the device itself, shown as 0.
    t.in_if = s
        .u64("sflow.flow_sample.input_interface")
        .map(|v| if v == 0x3fff_ffff { 0 } else { v });
    if let Some(o) = s.get("sflow.flow_sample.output_interface_tree") {
        let fmt = o.u64("sflow.flow_sample.output_interface_format");
        let val = o.u64("sflow.flow_sample.output_interface_value");
        t.out_if = match (fmt, val) {
            (Some(0), Some(v)) if v != 0x3fff_ffff => Some(v),
            (Some(_), Some(_)) => Some(0),
            _ => None,
        };
    }
    if let Some(h) = s.get("Raw packet header") {
        t.bytes = h.u64("sflow_245.header.frame_length");
        if let Some(tree) = h.get("sflow_245.header_tree") {
            if let Some(ip) = tree.get("ip") {
                t.src = ip.ip("ip.src");
                t.dst = ip.ip("ip.dst");
                t.proto = ip.u64("ip.proto");
            } else if let Some(ip) = tree.get("ipv6") {
                t.src = ip.ip("ipv6.src");
                t.dst = ip.ip("ipv6.dst");
                t.proto = ip.u64("ipv6.nxt");
            }
            if let Some(l4) = tree.get("tcp") {
                t.proto = Some(6);
                t.sport = l4.u64("tcp.srcport");
                t.dport = l4.u64("tcp.dstport");
                t.tcp_flags = l4.u64("tcp.flags");
            } else if let Some(l4) = tree.get("udp") {
                t.proto = Some(17);
                t.sport = l4.u64("udp.srcport");
                t.dport = l4.u64("udp.dstport");
            } else if let Some(l4) = tree.get("icmp") {
                t.proto = Some(1);
                t.icmp = Some(
                    (l4.u64("icmp.type").unwrap_or(0) << 8) | l4.u64("icmp.code").unwrap_or(0),
                );
            } else if let Some(l4) = tree.get("icmpv6") {
                t.proto = Some(58);
                t.icmp = Some(
                    (l4.u64("icmpv6.type").unwrap_or(0) << 8) | l4.u64("icmpv6.code").unwrap_or(0),
                );
            }
        }
    }
    if let Some(sw) = s.get("Extended switch data") {
        t.vlan_in = vlan(sw.u64("sflow_245.vlan.in"));
        t.vlan_out = vlan(sw.u64("sflow_245.vlan.out"));
    }
    if let Some(r) = s.get("Extended router data") {
        t.next_hop = r.ip("sflow_245.nexthop");
        t.src_mask = r.u64("sflow_245.nexthop.src_mask");
        t.dst_mask = r.u64("sflow_245.nexthop.dst_mask");
    }
    if let Some(g) = s.get("Extended gateway data") {
        t.src_as = g.u64("sflow_245.srcAS");
    }
    t
}

/// tshark's flow samples per frame, in order.
fn tshark_side(rel: &str) -> Vec<(u64, Vec<Sample>)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(captures_dir().join(rel))
        .args(["-T", "json"])
        .output()
        .expect("tshark is required (apt-get install tshark); this test does not skip");
    assert!(
        out.status.success(),
        "{rel}: tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: J = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    let J::Arr(frames) = doc else {
        panic!("{rel}: tshark JSON is not an array")
    };
    let mut v = Vec::new();
    for fr in &frames {
        let layers = fr
            .get("_source")
            .and_then(|s| s.get("layers"))
            .expect("layers");
        let number = layers
            .get("frame")
            .and_then(|f| f.u64("frame.number"))
            .expect("frame number");
        let Some(sflow) = layers.get("sflow") else {
            continue;
        };
        let samples: Vec<Sample> = sflow
            .starting("Flow sample")
            .into_iter()
            .chain(sflow.starting("Expanded flow sample"))
            .flat_map(|s| match s {
                J::Arr(xs) => xs.iter().collect::<Vec<_>>(),
                x => vec![x],
            })
            .map(tshark_sample)
            .collect();
        v.push((number, samples));
    }
    v
}

/// The decoder's records read back the way tshark shows them.
fn sluice_sample(f: &Flow, t: &Template, data: &[u8]) -> Sample {
    let ie = |id: u16| -> Option<u64> {
        let i = t.fields.iter().position(|x| x.spec.id == id)?;
        let (o, l) = t.fixed_spans[i];
        data.get(o as usize..(o + l) as usize).map(be_uint)
    };
    Sample {
        index: ie(138).map(|v| v & 0xffff_ffff),
        rate: f.sampling_interval.map(u64::from),
        in_if: f.in_if.map(u64::from),
        out_if: f.out_if.map(u64::from),
        bytes: f.bytes,
        src: f.src_ip,
        dst: f.dst_ip,
        proto: f.proto.map(u64::from),
        sport: f.src_port.map(u64::from),
        dport: f.dst_port.map(u64::from),
        tcp_flags: f.tcp_flags.map(u64::from),
        icmp: ie(32).or_else(|| ie(139)),
        vlan_in: ie(58),
        vlan_out: ie(59),
        next_hop: f.next_hop,
        src_mask: f.src_mask.map(u64::from),
        dst_mask: f.dst_mask.map(u64::from),
        src_as: f.src_as.map(u64::from),
    }
}

fn sluice_side(rel: &str) -> Vec<(u64, Vec<Sample>)> {
    let mut r = PcapReader::open(&captures_dir().join(rel)).expect("capture");
    let mut dgs: Vec<(u64, SocketAddr, i64, Vec<u8>)> = Vec::new();
    r.for_each_udp(|u| dgs.push((u.frame, u.src, u.ts_nanos, u.payload.to_vec())))
        .expect("walk");
    let mut d = SflowDecoder::default();
    let mut v = Vec::new();
    for (frame, src, ts, p) in &dgs {
        let mut samples = Vec::new();
        let dg = Datagram {
            src: *src,
            receive_time_ns: *ts,
            payload: p,
            tag: *frame,
        };
        d.decode(
            &dg,
            |rec| samples.push(sluice_sample(&rec.flow(), rec.template, rec.data)),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{rel} frame {frame}: {e}"));
        v.push((*frame, samples));
    }
    assert_eq!(d.stats().error_total(), 0, "{rel}: {:?}", d.stats().errors);
    v
}

#[test]
fn every_flow_sample_agrees_with_tshark() {
    let mut compared = [0u64; FIELDS.len()];
    let mut total_samples = 0;
    let mut mismatches = Vec::new();
    for rel in sflow_captures() {
        let ts = tshark_side(&rel);
        let ours = sluice_side(&rel);
        let frames =
            |v: &[(u64, Vec<Sample>)]| v.iter().map(|f| (f.0, f.1.len())).collect::<Vec<_>>();
        assert_eq!(frames(&ours), frames(&ts), "{rel}: samples per frame");
        for ((frame, theirs), (_, mine)) in ts.iter().zip(&ours) {
            for (k, (t, m)) in theirs.iter().zip(mine).enumerate() {
                total_samples += 1;
                for (i, name) in FIELDS.iter().enumerate() {
                    // Only what tshark shows is compared; what it shows we must have.
                    let Some(tv) = t.field(i) else { continue };
                    compared[i] += 1;
                    let mv = m.field(i);
                    if mv.as_deref() != Some(tv.as_str()) {
                        mismatches.push(format!(
                            "{rel} frame {frame} sample {k}: {name} tshark {tv} sluice {mv:?}"
                        ));
                    }
                }
            }
        }
    }
    let summary: Vec<String> = FIELDS
        .iter()
        .zip(compared)
        .map(|(n, c)| format!("{n}={c}"))
        .collect();
    eprintln!(
        "{total_samples} flow samples; values compared: {}",
        summary.join(" ")
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The generated capture alone has 615 samples; all must have been compared.
    assert!(total_samples >= 626, "{total_samples}");
    for (i, n) in [
        "index", "rate", "in_if", "out_if", "bytes", "src", "dst", "proto",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            compared[i], total_samples,
            "{n} shown by tshark for every sample"
        );
    }
}
