//! Helpers shared by the integration tests: hand-built records, test database paths, capture
//! decoding.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use sluice_decode::pcap::PcapReader;
use sluice_decode::record::spans_of;
use sluice_decode::template::v5_template;
use sluice_decode::{
    Datagram, Decoder, Dialect, ExportHeader, FieldSpec, Limits, Record, ScopeKey, Template,
};

pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

pub fn geoip(name: &str) -> PathBuf {
    let p = shared().join("geoip").join(name);
    assert!(p.exists(), "{} missing", p.display());
    p
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// A record built by hand: owns what a [`Record`] borrows.
pub struct Owned {
    pub header: ExportHeader,
    pub template: Template,
    pub data: Vec<u8>,
    pub spans: Vec<(u32, u32)>,
}

impl Owned {
    pub fn record(&self) -> Record<'_> {
        Record {
            header: &self.header,
            template: &self.template,
            data: &self.data,
            spans: &self.spans,
            system_init_ms: None,
        }
    }
}

pub fn header(version: u16, exporter: &str) -> ExportHeader {
    ExportHeader {
        version,
        exporter: exporter.parse::<SocketAddr>().expect("socket address"),
        source_id: 0,
        export_time_ns: 1_700_000_000_000_000_000,
        sys_uptime_ms: None,
        sequence: 0,
        receive_time_ns: 1_700_000_000_000_000_000,
        sampling_interval: 0,
        tag: 0,
    }
}

/// A field value: (element id, enterprise, bytes).
pub type Val = (u16, u32, Vec<u8>);

pub fn v(id: u16, bytes: impl Into<Vec<u8>>) -> Val {
    (id, 0, bytes.into())
}

pub fn addr(s: &str) -> Vec<u8> {
    match ip(s) {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub fn u8v(x: u8) -> Vec<u8> {
    vec![x]
}
pub fn u16v(x: u16) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}
pub fn u32v(x: u32) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}
pub fn u64v(x: u64) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}

/// An IPFIX record with one fixed-length field per value.
pub fn ipfix(exporter: &str, vals: &[Val]) -> Owned {
    let specs: Vec<FieldSpec> = vals
        .iter()
        .map(|(id, pen, b)| FieldSpec {
            id: *id,
            pen: *pen,
            len: b.len() as u16,
        })
        .collect();
    let template = Template::compile(256, Dialect::Ipfix, false, 0, &specs).expect("template");
    owned(
        header(10, exporter),
        template,
        vals.iter().flat_map(|x| x.2.clone()).collect(),
    )
}

/// A NetFlow v9 record (same ids; NSEL's 40001-40004 live here).
pub fn v9(exporter: &str, vals: &[Val]) -> Owned {
    let specs: Vec<FieldSpec> = vals
        .iter()
        .map(|(id, _, b)| FieldSpec {
            id: *id,
            pen: 0,
            len: b.len() as u16,
        })
        .collect();
    let template = Template::compile(256, Dialect::V9, false, 0, &specs).expect("template");
    owned(
        header(9, exporter),
        template,
        vals.iter().flat_map(|x| x.2.clone()).collect(),
    )
}

/// A NetFlow v5 record with the header's sampling field set.
pub fn v5(
    exporter: &str,
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    proto: u8,
    sampling: u16,
) -> Owned {
    let mut d = Vec::with_capacity(48);
    d.extend(addr(src));
    d.extend(addr(dst));
    d.extend([0u8; 4]); // nexthop
    d.extend(u16v(3)); // input
    d.extend(u16v(4)); // output
    d.extend(u32v(10)); // packets
    d.extend(u32v(1500)); // octets
    d.extend(u32v(0)); // first
    d.extend(u32v(0)); // last
    d.extend(u16v(sport));
    d.extend(u16v(dport));
    d.push(0); // pad
    d.push(0x1b); // tcp flags
    d.push(proto);
    d.push(0); // tos
    d.extend(u16v(0)); // src as
    d.extend(u16v(0)); // dst as
    d.push(24);
    d.push(24);
    d.extend(u16v(0));
    assert_eq!(d.len(), 48);
    let mut h = header(5, exporter);
    h.sampling_interval = sampling;
    owned(h, v5_template().clone(), d)
}

fn owned(header: ExportHeader, template: Template, data: Vec<u8>) -> Owned {
    let mut spans = Vec::new();
    let n = spans_of(&template, &data, &mut spans).expect("record fits");
    assert_eq!(n, data.len());
    Owned {
        header,
        template,
        data,
        spans,
    }
}

/// The scope a record belongs to (as the decoder keys its tables).
pub fn scope_of(h: &ExportHeader) -> ScopeKey {
    ScopeKey {
        version: h.version,
        addr: h.exporter.ip(),
        port: if h.version == 10 {
            h.exporter.port()
        } else {
            0
        },
        domain: h.source_id,
    }
}

/// Decodes a capture twice: once to learn every options table, then again calling `f` for
/// each flow record with the tables of its scope (the decoder's callback cannot borrow the
/// decoder's own tables).
pub fn each_flow(path: &Path, mut f: impl FnMut(&Record<'_>, Option<&sluice_decode::ScopeTables>)) {
    let limits = Limits {
        template_timeout_ns: None,
        ..Limits::default()
    };
    let mut learn = Decoder::new(limits);
    let mut run = Decoder::new(limits);
    for pass in 0..2 {
        let mut reader = PcapReader::open(path).expect("capture");
        reader
            .for_each_udp(|udp| {
                let dg = Datagram {
                    src: udp.src,
                    receive_time_ns: udp.ts_nanos,
                    payload: &udp.payload,
                    tag: udp.frame,
                };
                if pass == 0 {
                    let _ = learn.decode(&dg, |_| {});
                } else {
                    let _ = run.decode(&dg, |rec| {
                        if !rec.template.options {
                            f(rec, learn.tables(&scope_of(rec.header)));
                        }
                    });
                }
            })
            .expect("capture reads");
    }
}
