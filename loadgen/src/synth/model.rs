//! The traffic model of the synthetic exporters: who talks to whom, on which ports and
//! protocols, how much.
//!
//! - Hosts: `clients` client addresses and `servers` server addresses per address family
//!   (IPv4 clients in 10.0.0.0/8, servers in 172.16.0.0/12; IPv6 clients in 2001:db8:c1::/48,
//!   servers in 2001:db8:5e::/48). Rank r of a population maps to an address through a
//!   bijection of the host bits, so the heavy talkers are scattered, not adjacent.
//! - Heavy talkers: both ends are drawn from a Zipf law over their population ranks,
//!   P(rank k) ~ 1 / (k + 1)^s, with `s` = `zipf` (0 gives uniform; 1.1 makes the top 1 % of
//!   10,000 hosts send about half the flows). Drawn in O(1) with Walker/Vose alias tables.
//! - Address family: IPv6 with probability `ipv6`.
//! - Protocol: from a weighted mix (`tcp=80,udp=17,icmp=3` by default; ICMP is ICMPv6 for
//!   IPv6 flows). Services: `ports` distinct server ports per protocol, common ones first
//!   (443, 80, 22... for TCP; 53, 443, 123... for UDP), drawn by a Zipf law of exponent 1;
//!   clients use ephemeral ports 32768-60999. Half the flows go client to server, half back.
//!   ICMP flows carry type and code in the destination port (type * 256 + code), as NetFlow
//!   v5 does.
//! - Sizes: packets per flow from a Pareto law (shape 1.3, most flows a few packets, a few
//!   very large), packet sizes from a mix of small, MTU-sized and in-between; TCP flags,
//!   DSCP, durations (up to a 60 s active timeout) and end reasons to match.
//! - Interfaces 1..=`interfaces` in and out, AS numbers, masks and next hops derived from the
//!   addresses.
//!
//! Everything is drawn from a seeded generator ([`Rng`]), so one seed gives one flow
//! sequence per exporter: tests regenerate it to check what arrived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A small, fast, seedable generator (wyrand). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut r = Rng(seed ^ 0x243f_6a88_85a3_08d3);
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// Uniform in `0..n` (n > 0); the bias of the multiply-shift is below 2^-32 for the
    /// ranges used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Draws indices with given weights in O(1) (Walker's alias method, Vose's construction).
#[derive(Clone, Debug)]
pub struct Alias {
    /// Probability of keeping column i, scaled to 2^32.
    keep: Vec<u64>,
    alias: Vec<u32>,
}

impl Alias {
    /// From non-negative weights with a positive sum.
    pub fn new(weights: &[f64]) -> Alias {
        let n = weights.len().max(1);
        let sum: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = if sum > 0.0 {
            weights.iter().map(|w| w * n as f64 / sum).collect()
        } else {
            vec![1.0; n]
        };
        scaled.resize(n, 0.0);
        let mut keep = vec![1u64 << 32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = (scaled[s] * (1u64 << 32) as f64) as u64;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left is 1 up to rounding: kept whole.
        Alias { keep, alias }
    }

    /// Zipf weights 1 / (k + 1)^s over `n` ranks.
    pub fn zipf(n: usize, s: f64) -> Alias {
        let w: Vec<f64> = (0..n.max(1))
            .map(|k| 1.0 / ((k + 1) as f64).powf(s))
            .collect();
        Alias::new(&w)
    }

    pub fn len(&self) -> usize {
        self.keep.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let r = rng.next_u64();
        let i = ((u128::from(r >> 32) * self.keep.len() as u128) >> 32) as usize;
        if (r & 0xffff_ffff) < self.keep[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// A bijection of `0..2^bits`: rank to host bits.
fn scatter(rank: u32, bits: u32) -> u32 {
    let mask = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let mut x = rank & mask;
    x = x.wrapping_mul(0x9e37_79b1) & mask;
    x ^= x >> (bits / 2).max(1);
    x = x.wrapping_mul(0x85eb_ca6b) & mask;
    x ^= x >> (bits / 3).max(1);
    x
}

/// Largest client population (10.0.0.0/8).
pub const MAX_CLIENTS: u32 = 1 << 24;
/// Largest server population (172.16.0.0/12).
pub const MAX_SERVERS: u32 = 1 << 20;

const TCP_SERVICES: [u16; 20] = [
    443, 80, 22, 25, 993, 3306, 5432, 8080, 8443, 53, 3389, 445, 587, 6443, 9200, 27017, 1433,
    5222, 110, 143,
];
const UDP_SERVICES: [u16; 20] = [
    53, 443, 123, 161, 514, 1194, 3478, 4500, 5353, 500, 67, 137, 1900, 4789, 2055, 6343, 51820,
    19302, 5060, 69,
];

/// IP protocol numbers.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// The knobs of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Client addresses per family (1..=2^24).
    pub clients: u32,
    /// Server addresses per family (1..=2^20).
    pub servers: u32,
    /// Zipf exponent of both ends (0 = uniform).
    pub zipf: f64,
    /// Share of IPv6 flows, 0..=1.
    pub ipv6: f64,
    /// Distinct server ports per protocol (1..=20000).
    pub ports: u32,
    /// (protocol number, weight); ICMP (1) stands for ICMPv6 in IPv6 flows.
    pub mix: Vec<(u8, f64)>,
    /// Interfaces per exporter (1..=65535).
    pub interfaces: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            clients: 10_000,
            servers: 1_000,
            zipf: 1.1,
            ipv6: 0.2,
            ports: 64,
            mix: vec![(TCP, 80.0), (UDP, 17.0), (ICMP, 3.0)],
            interfaces: 8,
        }
    }
}

/// Parses a protocol mix: `tcp=80,udp=17,icmp=3`; names tcp, udp, icmp, gre, esp, sctp or a
/// protocol number.
pub fn parse_mix(s: &str) -> Result<Vec<(u8, f64)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid protocol mix entry {part:?}: expected NAME=WEIGHT"))?;
        let proto = match name.trim().to_ascii_lowercase().as_str() {
            "tcp" => TCP,
            "udp" => UDP,
            "icmp" => ICMP,
            "gre" => 47,
            "esp" => 50,
            "sctp" => 132,
            n => n
                .parse::<u8>()
                .map_err(|_| format!("unknown protocol {name:?} in the mix"))?,
        };
        let w: f64 = w
            .trim()
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| format!("invalid weight in {part:?}"))?;
        out.push((proto, w));
    }
    if out.is_empty() || out.iter().all(|&(_, w)| w == 0.0) {
        return Err(format!("protocol mix {s:?} has no positive weight"));
    }
    Ok(out)
}

/// One synthetic flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub tcp_flags: u8,
    pub tos: u8,
    pub packets: u64,
    pub bytes: u64,
    pub in_if: u32,
    pub out_if: u32,
    pub src_as: u32,
    pub dst_as: u32,
    pub src_mask: u8,
    pub dst_mask: u8,
    pub next_hop: IpAddr,
    /// Start to end, ms.
    pub duration_ms: u32,
    /// IPFIX flowEndReason: 1 idle timeout, 2 active timeout, 3 end of flow.
    pub end_reason: u8,
}

/// The model, with its alias tables built.
#[derive(Clone, Debug)]
pub struct Model {
    pub cfg: ModelConfig,
    clients: Alias,
    servers: Alias,
    services: Alias,
    tcp_ports: Vec<u16>,
    udp_ports: Vec<u16>,
    protos: Vec<u8>,
    mix: Alias,
}

fn service_ports(common: &[u16], n: usize, salt: u64) -> Vec<u16> {
    let mut ports: Vec<u16> = common.iter().copied().take(n).collect();
    let mut rng = Rng::new(salt);
    while ports.len() < n {
        let p = 1024 + rng.below(49151 - 1024) as u16;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

impl Model {
    /// Checks the configuration and builds the tables.
    pub fn new(cfg: ModelConfig) -> Result<Model, String> {
        if !(1..=MAX_CLIENTS).contains(&cfg.clients) {
            return Err(format!("--clients must be 1..={MAX_CLIENTS}"));
        }
        if !(1..=MAX_SERVERS).contains(&cfg.servers) {
            return Err(format!("--servers must be 1..={MAX_SERVERS}"));
        }
        if !(cfg.zipf.is_finite() && (0.0..=5.0).contains(&cfg.zipf)) {
            return Err("--zipf must be within 0..=5".into());
        }
        if !(0.0..=1.0).contains(&cfg.ipv6) {
            return Err("--ipv6 must be a share within 0..=1".into());
        }
        if !(1..=20_000).contains(&cfg.ports) {
            return Err("--ports must be 1..=20000".into());
        }
        if !(1..=65_535).contains(&cfg.interfaces) {
            return Err("--interfaces must be 1..=65535".into());
        }
        if cfg.mix.is_empty() || cfg.mix.iter().all(|&(_, w)| w <= 0.0) {
            return Err("the protocol mix has no positive weight".into());
        }
        let n = cfg.ports as usize;
        let weights: Vec<f64> = cfg.mix.iter().map(|&(_, w)| w).collect();
        Ok(Model {
            clients: Alias::zipf(cfg.clients as usize, cfg.zipf),
            servers: Alias::zipf(cfg.servers as usize, cfg.zipf),
            services: Alias::zipf(n, 1.0),
            tcp_ports: service_ports(&TCP_SERVICES, n, 6),
            udp_ports: service_ports(&UDP_SERVICES, n, 17),
            protos: cfg.mix.iter().map(|&(p, _)| p).collect(),
            mix: Alias::new(&weights),
            cfg,
        })
    }

    /// Client rank `r` as an address.
    pub fn client_addr(r: u32, v6: bool) -> IpAddr {
        if v6 {
            let h = scatter(r, 32);
            let mut b = [0u8; 16];
            b[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0xc1]);
            b[12..].copy_from_slice(&h.to_be_bytes());
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | scatter(r, 24)))
        }
    }

    /// Server rank `r` as an address.
    pub fn server_addr(r: u32, v6: bool) -> IpAddr {
        if v6 {
            let h = scatter(r, 32);
            let mut b = [0u8; 16];
            b[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x5e]);
            b[12..].copy_from_slice(&h.to_be_bytes());
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::from(0xac10_0000 | scatter(r, 20)))
        }
    }

    /// The next flow of a sequence.
    pub fn flow(&self, rng: &mut Rng) -> Flow {
        let cfg = &self.cfg;
        let v6 = cfg.ipv6 > 0.0 && rng.unit() < cfg.ipv6;
        let c = self.clients.sample(rng) as u32;
        let s = self.servers.sample(rng) as u32;
        let client = Model::client_addr(c, v6);
        let server = Model::server_addr(s, v6);
        let mut proto = self.protos[self.mix.sample(rng)];
        if proto == ICMP && v6 {
            proto = ICMPV6;
        }
        let (service, client_port) = match proto {
            TCP => (
                self.tcp_ports[self.services.sample(rng)],
                32768 + rng.below(28232) as u16,
            ),
            UDP => (
                self.udp_ports[self.services.sample(rng)],
                32768 + rng.below(28232) as u16,
            ),
            _ => (0, 0),
        };
        // Packets: Pareto, shape 1.3, at least 1.
        let u = 1.0 - rng.unit();
        let packets = (u.powf(-1.0 / 1.3) as u64).clamp(1, 10_000_000);
        let size = match rng.below(20) {
            0..=6 => 40 + rng.below(60),
            7..=9 => 576,
            10..=14 => 100 + rng.below(1300),
            _ => 1500,
        };
        let mut tcp_flags = 0;
        let mut bytes = packets * size;
        if proto == TCP {
            tcp_flags = if packets == 1 {
                [0x02, 0x02, 0x10, 0x14, 0x04][rng.below(5) as usize]
            } else {
                [0x1b, 0x1b, 0x1b, 0x18, 0x18, 0x1a, 0x13, 0x1f][rng.below(8) as usize]
            };
        }
        let (src_port, dst_port) = match proto {
            ICMP | ICMPV6 => {
                let (t, code) = if v6 {
                    [(128, 0), (129, 0), (1, 4), (3, 0), (135, 0), (136, 0)][rng.below(6) as usize]
                } else {
                    [(8, 0), (0, 0), (3, 3), (3, 1), (11, 0), (3, 13)][rng.below(6) as usize]
                };
                bytes = packets * if v6 { 104 } else { 84 };
                (0, (t as u16) << 8 | code as u16)
            }
            _ => (client_port, service),
        };
        let tos = [0u8, 0, 0, 0, 0, 0, 0x28, 0xb8][rng.below(8) as usize];
        let forward = rng.below(2) == 0;
        let nif = cfg.interfaces;
        let in_if = 1 + rng.below(u64::from(nif)) as u32;
        let out_if = if nif > 1 {
            1 + (in_if + rng.below(u64::from(nif - 1)) as u32) % nif
        } else {
            in_if
        };
        let client_as = 64_500 + c % 10;
        let server_as = 64_512 + s % 1000;
        let next_hop = if v6 {
            let mut b = [0u8; 16];
            b[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff]);
            b[14..].copy_from_slice(&(out_if as u16).to_be_bytes());
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, (out_if % 254 + 1) as u8))
        };
        let (cmask, smask) = if v6 { (64, 48) } else { (24, 16) };
        let duration_ms = if packets == 1 {
            0
        } else {
            rng.below(60_000) as u32
        };
        let end_reason = match rng.below(20) {
            0..=11 => 1,
            12..=16 => 2,
            _ => 3,
        };
        let (src, dst, sp, dp, sas, das, smk, dmk) = if forward {
            (
                client, server, src_port, dst_port, client_as, server_as, cmask, smask,
            )
        } else if proto == TCP || proto == UDP {
            (
                server, client, dst_port, src_port, server_as, client_as, smask, cmask,
            )
        } else {
            (
                server, client, src_port, dst_port, server_as, client_as, smask, cmask,
            )
        };
        Flow {
            v6,
            src,
            dst,
            src_port: sp,
            dst_port: dp,
            proto,
            tcp_flags,
            tos,
            packets,
            bytes,
            in_if,
            out_if,
            src_as: sas,
            dst_as: das,
            src_mask: smk,
            dst_mask: dmk,
            next_hop,
            duration_ms,
            end_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn alias_draws_follow_the_weights() {
        let a = Alias::new(&[1.0, 0.0, 3.0, 6.0]);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[a.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (i, want) in [(0, 0.1), (2, 0.3), (3, 0.6)] {
            let got = f64::from(counts[i]) / 100_000.0;
            assert!((got - want).abs() < 0.01, "index {i}: {got} for {want}");
        }
    }

    #[test]
    fn scatter_is_a_bijection() {
        for bits in [4, 12, 20] {
            let n = 1u32 << bits;
            let seen: HashSet<u32> = (0..n).map(|r| scatter(r, bits)).collect();
            assert_eq!(seen.len(), n as usize);
            assert!(seen.iter().all(|&x| x < n));
        }
    }

    #[test]
    fn heavy_talkers_and_cardinality() {
        let m = Model::new(ModelConfig {
            clients: 10_000,
            servers: 500,
            zipf: 1.1,
            ipv6: 0.25,
            ports: 30,
            ..ModelConfig::default()
        })
        .expect("model");
        let mut rng = Rng::new(7);
        let mut by_src: HashMap<IpAddr, u32> = HashMap::new();
        let mut v6 = 0;
        let mut protos: HashMap<u8, u32> = HashMap::new();
        let mut services = HashSet::new();
        let n = 200_000;
        for _ in 0..n {
            let f = m.flow(&mut rng);
            assert_eq!(f.src.is_ipv6(), f.v6);
            assert_eq!(f.dst.is_ipv6(), f.v6);
            assert!(f.bytes >= f.packets * 40);
            assert!((1..=8).contains(&f.in_if) && (1..=8).contains(&f.out_if));
            assert_ne!(f.in_if, f.out_if);
            if f.v6 {
                v6 += 1;
            }
            *protos.entry(f.proto).or_default() += 1;
            let is_client = |a: &IpAddr| match a {
                IpAddr::V4(v) => v.octets()[0] == 10,
                IpAddr::V6(v) => v.segments()[2] == 0xc1,
            };
            assert_ne!(is_client(&f.src), is_client(&f.dst));
            let client = if is_client(&f.src) { f.src } else { f.dst };
            if f.proto == TCP {
                services.insert(if is_client(&f.src) {
                    f.dst_port
                } else {
                    f.src_port
                });
            }
            *by_src.entry(client).or_default() += 1;
        }
        let share6 = f64::from(v6) / f64::from(n);
        assert!((share6 - 0.25).abs() < 0.01, "IPv6 share {share6}");
        let tcp = f64::from(protos[&TCP]) / f64::from(n);
        assert!((tcp - 0.8).abs() < 0.01, "TCP share {tcp}");
        assert!(protos.contains_key(&ICMP) && protos.contains_key(&ICMPV6));
        assert!(
            services.len() <= 30 && services.len() > 20,
            "{}",
            services.len()
        );
        // Heavy talkers: the busiest 1 % of clients (both families) carry a large share.
        let mut counts: Vec<u32> = by_src.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: u32 = counts.iter().take(200).sum();
        let share = f64::from(top) / f64::from(n);
        assert!(share > 0.4, "top 200 clients send {share}");
        assert!(counts.len() > 5_000, "distinct clients {}", counts.len());
    }

    #[test]
    fn same_seed_same_flows() {
        let m = Model::new(ModelConfig::default()).expect("model");
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..1000 {
            assert_eq!(m.flow(&mut a), m.flow(&mut b));
        }
        assert_ne!(m.flow(&mut Rng::new(1)), m.flow(&mut Rng::new(2)));
    }

    #[test]
    fn mixes() {
        assert_eq!(
            parse_mix("tcp=80, udp=17,icmp=3"),
            Ok(vec![(TCP, 80.0), (UDP, 17.0), (ICMP, 3.0)])
        );
        assert_eq!(parse_mix("gre=1,132=2"), Ok(vec![(47, 1.0), (132, 2.0)]));
        for bad in ["", "tcp", "tcp=x", "foo=1", "tcp=0", "tcp=-1"] {
            assert!(parse_mix(bad).is_err(), "{bad}");
        }
    }
}
