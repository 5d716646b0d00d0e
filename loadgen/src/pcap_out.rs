//! `--pcap-out`: what was sent, as a classic pcap file (Ethernet, IPv4 or IPv6, UDP), so that
//! tshark, `sluice decode` or any other decoder can check it independently.
//!
//! Each datagram the kernel took is written with its send time, from the exporter's local
//! address and port to the target. IPv4 headers get their checksum; UDP checksums are
//! computed for IPv6 (where they are mandatory) and left 0 (none) for IPv4.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// A pcap file being written.
#[derive(Debug)]
pub struct PcapWriter {
    out: BufWriter<File>,
    to: SocketAddr,
    frame: Vec<u8>,
    /// Frames written.
    pub frames: u64,
}

fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

impl PcapWriter {
    /// Creates `path` and writes the file header (microsecond timestamps, Ethernet).
    pub fn create(path: &Path, to: SocketAddr) -> io::Result<PcapWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&65_535u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter {
            out,
            to,
            frame: Vec::with_capacity(2048),
            frames: 0,
        })
    }

    /// Writes one datagram sent from `from` at `ns` (since the Unix epoch).
    pub fn write(&mut self, from: SocketAddr, ns: i64, payload: &[u8]) -> io::Result<()> {
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
        let udp_len = (8 + payload.len()) as u16;
        match (from.ip(), self.to.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let ip = f.len();
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&(20 + udp_len).to_be_bytes());
                f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                let c = fold(sum16(0, &f[ip..ip + 20]));
                f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&from.port().to_be_bytes());
                f.extend_from_slice(&self.to.port().to_be_bytes());
                f.extend_from_slice(&udp_len.to_be_bytes());
                f.extend_from_slice(&[0, 0]);
            }
            (s, d) => {
                let as6 = |a: IpAddr| match a {
                    IpAddr::V4(v) => v.to_ipv6_mapped(),
                    IpAddr::V6(v) => v,
                };
                let (s, d) = (as6(s).octets(), as6(d).octets());
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                f.extend_from_slice(&0x6000_0000u32.to_be_bytes());
                f.extend_from_slice(&udp_len.to_be_bytes());
                f.extend_from_slice(&[17, 64]);
                f.extend_from_slice(&s);
                f.extend_from_slice(&d);
                let udp = f.len();
                f.extend_from_slice(&from.port().to_be_bytes());
                f.extend_from_slice(&self.to.port().to_be_bytes());
                f.extend_from_slice(&udp_len.to_be_bytes());
                f.extend_from_slice(&[0, 0]);
                // Pseudo-header: addresses, length, next header; then the UDP header and data.
                let mut acc = sum16(0, &s);
                acc = sum16(acc, &d);
                acc += u32::from(udp_len) + 17;
                acc = sum16(acc, &f[udp..udp + 8]);
                acc = sum16(acc, payload);
                let c = match fold(acc) {
                    0 => 0xffff,
                    c => c,
                };
                f[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
            }
        }
        let len = (f.len() + payload.len()) as u32;
        let ns = ns.max(0);
        self.out
            .write_all(&((ns / 1_000_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&(((ns % 1_000_000_000) / 1000) as u32).to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&self.frame)?;
        self.out.write_all(payload)?;
        self.frames += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}
