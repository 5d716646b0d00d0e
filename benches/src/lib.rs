//! Benchmark support.
//!
//! [`FlowWorkload`]: flow records of real exporters' captures, repeated with their addresses,
//! ports and counters redrawn, so that documents built from them vary as a busy network's do
//! (what the document encoder and gzip see) rather than repeating a few dozen flows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use sluice_decode::pcap::PcapReader;
use sluice_decode::{Datagram, Decoder, ExportHeader, Record, Template};

/// The shared inputs (`../shared` beside the checkout).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// splitmix64: deterministic and cheap.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Where a base record keeps the values that are redrawn per copy: field indexes.
#[derive(Debug, Default, Clone, Copy)]
struct Slots {
    src: Option<usize>,
    dst: Option<usize>,
    sport: Option<usize>,
    counters: [Option<usize>; 4],
}

#[derive(Debug)]
struct Base {
    header: ExportHeader,
    template: Template,
    data: Vec<u8>,
    spans: Vec<(u32, u32)>,
    system_init_ms: Option<i64>,
    slots: Slots,
}

/// The captures the workload takes its records from: the exporters users run most (pmacct's
/// nfprobe as on EdgeOS/VyOS, v9 and IPFIX; softflowd's IPFIX biflows; a MikroTik router's
/// IPFIX with NAT; nfdump's re-export).
pub const WORKLOAD_CAPTURES: &[&str] = &[
    "generated/pmacctd_nfprobe_v9.pcap",
    "generated/pmacctd_nfprobe_ipfix.pcap",
    "generated/softflowd_ipfix_biflow.pcap",
    "ipfix/mikrotik_routeros_6.39.2.pcap",
    "generated/nfdump_nfreplay_v9.pcap",
];

/// Distinct addresses per family the copies draw from.
pub const WORKLOAD_ADDRESSES: usize = 100_000;
/// Zipf exponent of the address draws.
pub const WORKLOAD_ZIPF_S: f64 = 1.1;

/// Workload "captures-zipf": the flow records of [`WORKLOAD_CAPTURES`], copied round-robin;
/// each copy's source and destination addresses are drawn independently from
/// [`WORKLOAD_ADDRESSES`] distinct addresses of the record's family with a Zipf exponent of
/// [`WORKLOAD_ZIPF_S`] (half of the IPv4 ones inside the networks of the MaxMind test
/// databases, so GeoIP and AS lookups find records; the rest random public addresses), its
/// client port is uniform in 32768..61000 and its byte and packet counters are log-uniform
/// (1 to 10^6 packets of 40 to 1500 bytes). Everything else is as the exporter sent it.
/// Deterministic.
#[derive(Debug)]
pub struct FlowWorkload {
    bases: Vec<Base>,
    /// (base, offset of the record's bytes in `arena`).
    copies: Vec<(u32, u32)>,
    arena: Vec<u8>,
}

fn find(t: &Template, ids: &[u16], pen: u32, len: u16) -> Option<usize> {
    ids.iter().find_map(|&id| {
        t.fields
            .iter()
            .position(|f| f.spec.id == id && f.spec.pen == pen && f.spec.len == len)
    })
}

fn slots_of(t: &Template) -> Slots {
    let v6 = find(t, &[27], 0, 16).is_some();
    let (src, dst) = if v6 {
        (find(t, &[27], 0, 16), find(t, &[28], 0, 16))
    } else {
        (find(t, &[8], 0, 4), find(t, &[12], 0, 4))
    };
    let counter = |id: u16, pen: u32| {
        t.fields
            .iter()
            .position(|f| f.spec.id == id && f.spec.pen == pen && (1..=8).contains(&f.spec.len))
    };
    Slots {
        src,
        dst,
        sport: find(t, &[7], 0, 2),
        // Octets and packets, forward and (RFC 5103, PEN 29305) reverse.
        counters: [
            counter(1, 0),
            counter(2, 0),
            counter(1, 29305),
            counter(2, 29305),
        ],
    }
}

/// Networks of the MaxMind test databases (from their JSON source data).
fn test_db_networks() -> Vec<(IpAddr, u8)> {
    let mut nets = Vec::new();
    for name in ["GeoLite2-City-Test.json", "GeoLite2-ASN-Test.json"] {
        let path = shared_dir().join("geoip/source-data").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: serde_json::Value = serde_json::from_str(&text).expect("source data is JSON");
        for entry in v.as_array().into_iter().flatten() {
            for cidr in entry.as_object().into_iter().flat_map(|o| o.keys()) {
                if let Some((a, l)) = cidr.split_once('/') {
                    if let (Ok(a), Ok(l)) = (a.parse::<IpAddr>(), l.parse::<u8>()) {
                        nets.push((a, l));
                    }
                }
            }
        }
    }
    nets
}

fn public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64))
}

/// `n` distinct IPv4 addresses (half in the test databases' networks) and `n` IPv6 ones
/// (global unicast; the databases' IPv6 networks where they have them), each list shuffled.
fn address_pools(rng: &mut Rng, n: usize) -> (Vec<[u8; 4]>, Vec<[u8; 16]>) {
    let nets = test_db_networks();
    let (n4, n6): (Vec<_>, Vec<_>) = nets.iter().partition(|(a, _)| a.is_ipv4());
    let mut v4 = std::collections::HashSet::with_capacity(n);
    let mut v6 = std::collections::HashSet::with_capacity(n);
    while v4.len() < n {
        let r = rng.next_u64();
        let a = if v4.len() % 2 == 0 && !n4.is_empty() {
            let (IpAddr::V4(base), len) = n4[rng.below(n4.len() as u64) as usize] else {
                continue;
            };
            let host = if len >= 32 { 0 } else { u32::MAX >> len };
            Ipv4Addr::from(u32::from(base) | (r as u32 & host))
        } else {
            Ipv4Addr::from(r as u32)
        };
        if public_v4(a) {
            v4.insert(a.octets());
        }
    }
    while v6.len() < n {
        let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let a = if v6.len() % 2 == 0 && !n6.is_empty() {
            let (IpAddr::V6(base), len) = n6[rng.below(n6.len() as u64) as usize] else {
                continue;
            };
            let host = if len >= 128 { 0 } else { u128::MAX >> len };
            u128::from(base) | (r & host)
        } else {
            // 2000::/3
            (r >> 3) | (1u128 << 125)
        };
        if Ipv6Addr::from(a).to_ipv4_mapped().is_none() {
            v6.insert(a.to_be_bytes());
        }
    }
    let mut v4: Vec<[u8; 4]> = v4.into_iter().collect();
    let mut v6: Vec<[u8; 16]> = v6.into_iter().collect();
    v4.sort_unstable();
    v6.sort_unstable();
    shuffle(rng, &mut v4);
    shuffle(rng, &mut v6);
    (v4, v6)
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Zipf(n, s) sampler over ranks 0..n.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        Zipf(
            (1..=n)
                .map(|k| {
                    acc += (k as f64).powf(-s);
                    acc
                })
                .collect(),
        )
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let total = self.0.last().copied().unwrap_or(0.0);
        let u = rng.unit() * total;
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

fn put_uint(b: &mut [u8], v: u64) {
    let n = b.len();
    for (i, x) in b.iter_mut().enumerate() {
        let shift = 8 * (n - 1 - i);
        *x = if shift >= 64 { 0 } else { (v >> shift) as u8 };
    }
}

impl FlowWorkload {
    /// `n` records.
    pub fn new(n: usize) -> FlowWorkload {
        let mut bases = Vec::new();
        let mut d = Decoder::default();
        for f in WORKLOAD_CAPTURES {
            let path = shared_dir().join("captures").join(f);
            let mut r = PcapReader::open(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
            let mut dgs: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            r.for_each_udp(|u| dgs.push((u.src, u.payload.to_vec())))
                .expect("read capture");
            for (src, payload) in &dgs {
                let dg = Datagram {
                    src: *src,
                    receive_time_ns: 1_800_000_000_000_000_000,
                    payload,
                    tag: 0,
                };
                let _ = d.decode(&dg, |rec| {
                    if rec.template.options {
                        return;
                    }
                    bases.push(Base {
                        header: *rec.header,
                        template: rec.template.clone(),
                        data: rec.data.to_vec(),
                        spans: rec.spans.to_vec(),
                        system_init_ms: rec.system_init_ms,
                        slots: slots_of(rec.template),
                    });
                });
            }
        }
        assert!(
            !bases.is_empty(),
            "no flow records in the workload captures"
        );
        let mut rng = Rng(0x5eed_e5ba_7c40_0001);
        let (v4, v6) = address_pools(&mut rng, WORKLOAD_ADDRESSES);
        let zipf = Zipf::new(WORKLOAD_ADDRESSES, WORKLOAD_ZIPF_S);
        let mut copies = Vec::with_capacity(n);
        let mut arena = Vec::new();
        for i in 0..n {
            let bi = i % bases.len();
            let b = &bases[bi];
            let at = arena.len();
            arena.extend_from_slice(&b.data);
            let data = &mut arena[at..];
            let field = |idx: usize| -> std::ops::Range<usize> {
                let (o, l) = b.spans[idx];
                o as usize..(o + l) as usize
            };
            for slot in [b.slots.src, b.slots.dst].into_iter().flatten() {
                let r = field(slot);
                let k = zipf.draw(&mut rng);
                if r.len() == 4 {
                    data[r].copy_from_slice(&v4[k]);
                } else {
                    data[r].copy_from_slice(&v6[k]);
                }
            }
            // The client side gets an ephemeral port; the server keeps the exporter's port.
            if let Some(s) = b.slots.sport {
                let r = field(s);
                let port = 32768 + rng.below(61000 - 32768);
                put_uint(&mut data[r], port);
            }
            let packets = (10f64.powf(rng.unit() * 6.0)) as u64 + 1;
            let size = 40 + rng.below(1461);
            let [oct, pkt, roct, rpkt] = b.slots.counters;
            for (slot, v) in [
                (oct, packets * size),
                (pkt, packets),
                (roct, packets * (40 + rng.below(1461))),
                (rpkt, packets),
            ] {
                if let Some(s) = slot {
                    let r = field(s);
                    put_uint(&mut data[r], v);
                }
            }
            copies.push((bi as u32, at as u32));
        }
        FlowWorkload {
            bases,
            copies,
            arena,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.copies.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }

    /// Calls `f` with records `range` and each one's ordinal (position in its base datagram
    /// does not matter here: the copy number is unique).
    pub fn for_each(&self, range: std::ops::Range<usize>, mut f: impl FnMut(&Record<'_>, u32)) {
        for i in range {
            let (bi, at) = self.copies[i];
            let b = &self.bases[bi as usize];
            let at = at as usize;
            let r = Record {
                header: &b.header,
                template: &b.template,
                data: &self.arena[at..at + b.data.len()],
                spans: &b.spans,
                system_init_ms: b.system_init_ms,
            };
            f(&r, i as u32);
        }
    }
}
