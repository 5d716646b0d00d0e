//! Hand-built IPFIX messages with options data, as a router sends them: an interface table
//! (interfaceName, interfaceDescription by ingressInterface) and a sampler table (samplerId
//! -> samplingInterval), then flows that reference both, between addresses the MaxMind test
//! databases know.

use std::net::{SocketAddr, UdpSocket};

/// Options template: scope ingressInterface (10); interfaceName (82), interfaceDescription
/// (83), variable length.
const TPL_IFACE: u16 = 256;
/// Options template: scope samplerId (48, 2 bytes); samplingInterval (34, 4 bytes).
const TPL_SAMPLER: u16 = 257;
/// Flow template: 8, 12, 7, 11, 4, 1 (8), 2 (8), 10, 14, 48 (2), 152, 153.
const TPL_FLOW: u16 = 258;

/// The sampler id flows reference and its interval.
pub const SAMPLER_ID: u16 = 5;
pub const SAMPLING: u32 = 100;

/// One flow record.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub bytes: u64,
    pub packets: u64,
    pub in_if: u32,
    pub out_if: u32,
}

fn set(out: &mut Vec<u8>, id: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    body(out);
    let len = (out.len() - at) as u16;
    out[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn fields(out: &mut Vec<u8>, f: &[(u16, u16)]) {
    for (ie, len) in f {
        out.extend_from_slice(&ie.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// One IPFIX message: the three templates, the interface table `ifaces` (index, name,
/// description), the sampler table, then `flows` (sampled by the sampler, timed at
/// `export_secs`).
pub fn message(
    export_secs: u32,
    seq: u32,
    ifaces: &[(u32, &str, &str)],
    flows: &[Flow],
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&10u16.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&export_secs.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&1u32.to_be_bytes()); // observation domain
    set(&mut m, 3, |o| {
        o.extend_from_slice(&TPL_IFACE.to_be_bytes());
        o.extend_from_slice(&3u16.to_be_bytes());
        o.extend_from_slice(&1u16.to_be_bytes());
        fields(o, &[(10, 4), (82, 0xffff), (83, 0xffff)]);
        o.extend_from_slice(&TPL_SAMPLER.to_be_bytes());
        o.extend_from_slice(&2u16.to_be_bytes());
        o.extend_from_slice(&1u16.to_be_bytes());
        fields(o, &[(48, 2), (34, 4)]);
    });
    set(&mut m, 2, |o| {
        o.extend_from_slice(&TPL_FLOW.to_be_bytes());
        o.extend_from_slice(&12u16.to_be_bytes());
        fields(
            o,
            &[
                (8, 4),
                (12, 4),
                (7, 2),
                (11, 2),
                (4, 1),
                (1, 8),
                (2, 8),
                (10, 4),
                (14, 4),
                (48, 2),
                (152, 8),
                (153, 8),
            ],
        );
    });
    set(&mut m, TPL_IFACE, |o| {
        for (i, name, desc) in ifaces {
            o.extend_from_slice(&i.to_be_bytes());
            for s in [name, desc] {
                o.push(s.len() as u8);
                o.extend_from_slice(s.as_bytes());
            }
        }
    });
    set(&mut m, TPL_SAMPLER, |o| {
        o.extend_from_slice(&SAMPLER_ID.to_be_bytes());
        o.extend_from_slice(&SAMPLING.to_be_bytes());
    });
    let ms = u64::from(export_secs) * 1000;
    set(&mut m, TPL_FLOW, |o| {
        for f in flows {
            o.extend_from_slice(&f.src);
            o.extend_from_slice(&f.dst);
            o.extend_from_slice(&f.sport.to_be_bytes());
            o.extend_from_slice(&f.dport.to_be_bytes());
            o.push(6);
            o.extend_from_slice(&f.bytes.to_be_bytes());
            o.extend_from_slice(&f.packets.to_be_bytes());
            o.extend_from_slice(&f.in_if.to_be_bytes());
            o.extend_from_slice(&f.out_if.to_be_bytes());
            o.extend_from_slice(&SAMPLER_ID.to_be_bytes());
            o.extend_from_slice(&(ms - 2000).to_be_bytes());
            o.extend_from_slice(&(ms - 1000).to_be_bytes());
        }
    });
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

/// The interface table the tests send: ifIndex 1-3.
pub const IFACES: [(u32, &str, &str); 3] = [
    (1, "xe-0/0/1", "transit: AS64500"),
    (2, "xe-0/0/2", "peering IX"),
    (3, "ae0.100", "customers"),
];

/// Flows between addresses of the GeoLite2 test databases: 89.160.20.115 (SE, AS 29518
/// Bredband2 AB), 81.2.69.142 (GB, London), 216.160.83.56 (US, AS 209).
pub fn flows() -> Vec<Flow> {
    let ends = [
        ([89, 160, 20, 115], [81, 2, 69, 142], 1, 2),
        ([216, 160, 83, 56], [89, 160, 20, 115], 2, 3),
        ([81, 2, 69, 142], [216, 160, 83, 56], 3, 1),
    ];
    (0..30u64)
        .map(|i| {
            let (src, dst, in_if, out_if) = ends[(i % 3) as usize];
            Flow {
                src,
                dst,
                sport: 40_000 + i as u16,
                dport: 443,
                bytes: 1000 + i,
                packets: 10 + i,
                in_if,
                out_if,
            }
        })
        .collect()
}

/// Sends `count` messages (each with the tables and 10 of [`flows`]) from one socket (one
/// transport session) to the collector at `127.0.0.1:port`; export times are now.
pub fn send(port: u16) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    let all = flows();
    for (k, chunk) in all.chunks(10).enumerate() {
        let m = message(now, (k * 10) as u32, &IFACES, chunk);
        sock.send_to(&m, to).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    all.len()
}
