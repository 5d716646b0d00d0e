//! Firewall syslog and VPC Flow Logs: messages per second on one core through the decoder
//! (header, vendor parser, record layout), and through the decoder and the JSON encoder.
//!
//! Inputs: the sample lines of ../shared/logs, one group per vendor file; each iteration
//! decodes every line of the file once.
//!
//! After criterion's wall-clock figures, the same work is timed in CPU time of the bench
//! thread (`CLOCK_THREAD_CPUTIME_ID`), about 2 CPU-seconds per input, and printed as
//! messages per CPU-second: on a shared machine, wall time counts other processes' turns.
//!
//! Run: `cargo bench -p sluice-benches --bench logs`

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;

use criterion::{criterion_group, Criterion, Throughput};
use sluice_decode::syslog::SyslogDecoder;
use sluice_decode::vpc::VpcDecoder;
use sluice_sink::ecs::{encode_json, EncodeOptions};

fn lines(name: &str) -> Vec<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/logs")
        .join(name);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

const NOW: i64 = 1_795_435_200_000_000_000;

fn syslog(c: &mut Criterion) {
    let src = SocketAddr::from(([192, 0, 2, 1], 514));
    for file in ["edgerouter-iptables.log", "cisco-asa.log", "panos.log"] {
        let ls = lines(file);
        let mut g = c.benchmark_group(format!("syslog/{file}"));
        g.throughput(Throughput::Elements(ls.len() as u64));
        let mut d = SyslogDecoder::new();
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut n = 0usize;
                for l in &ls {
                    d.decode(l, src, NOW, |r| n += r.data.len());
                }
                black_box(n)
            })
        });
        let mut out = Vec::with_capacity(1 << 16);
        g.bench_function("decode + encode json", |b| {
            b.iter(|| {
                out.clear();
                for l in &ls {
                    d.decode(l, src, NOW, |r| {
                        encode_json(&mut out, r, &r.flow(), &EncodeOptions::default())
                    });
                }
                black_box(out.len())
            })
        });
        g.finish();
    }
}

fn vpc(c: &mut Criterion) {
    let src = SocketAddr::from(([0, 0, 0, 0], 0));
    // The default-format records (NODATA included, as files have them), and the custom
    // format's record after its header.
    for file in ["vpc-flow-logs-v2.log", "vpc-flow-logs-custom.log"] {
        let ls = lines(file);
        let records = if file.contains("custom") { 1 } else { 2 };
        let mut g = c.benchmark_group(format!("vpc/{file}"));
        g.throughput(Throughput::Elements(records));
        let mut d = VpcDecoder::new();
        let mut out = Vec::with_capacity(1 << 16);
        g.bench_function("decode + encode json", |b| {
            b.iter(|| {
                out.clear();
                d.start_file();
                for l in &ls {
                    d.line(l, src, NOW, |r| {
                        encode_json(&mut out, r, &r.flow(), &EncodeOptions::default())
                    });
                }
                black_box(out.len())
            })
        });
        g.finish();
    }
}

/// CPU time of this thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `pass` (which handles `per_pass` messages) for about 2 CPU-seconds; messages per
/// CPU-second.
fn per_cpu_second(per_pass: u64, mut pass: impl FnMut()) -> f64 {
    let start = thread_cpu();
    let mut n = 0u64;
    while thread_cpu() - start < 2.0 {
        for _ in 0..64 {
            pass();
        }
        n += 64 * per_pass;
    }
    n as f64 / (thread_cpu() - start)
}

fn cpu_report() {
    let src = SocketAddr::from(([192, 0, 2, 1], 514));
    println!("\nmessages per CPU-second of the bench thread:");
    for file in ["edgerouter-iptables.log", "cisco-asa.log", "panos.log"] {
        let ls = lines(file);
        let mut d = SyslogDecoder::new();
        let mut out = Vec::with_capacity(1 << 16);
        let dec = per_cpu_second(ls.len() as u64, || {
            let mut n = 0usize;
            for l in &ls {
                d.decode(l, src, NOW, |r| n += r.data.len());
            }
            black_box(n);
        });
        let enc = per_cpu_second(ls.len() as u64, || {
            out.clear();
            for l in &ls {
                d.decode(l, src, NOW, |r| {
                    encode_json(&mut out, r, &r.flow(), &EncodeOptions::default())
                });
            }
            black_box(out.len());
        });
        println!("  syslog {file}: decode {dec:.0}/s, decode + encode json {enc:.0}/s");
    }
    for (file, records) in [("vpc-flow-logs-v2.log", 2), ("vpc-flow-logs-custom.log", 1)] {
        let ls = lines(file);
        let mut d = VpcDecoder::new();
        let mut out = Vec::with_capacity(1 << 16);
        let enc = per_cpu_second(records, || {
            out.clear();
            d.start_file();
            for l in &ls {
                d.line(l, SocketAddr::from(([0, 0, 0, 0], 0)), NOW, |r| {
                    encode_json(&mut out, r, &r.flow(), &EncodeOptions::default())
                });
            }
            black_box(out.len());
        });
        println!("  vpc {file}: decode + encode json {enc:.0} records/s");
    }
}

criterion_group!(benches, syslog, vpc);

fn main() {
    benches();
    cpu_report();
    Criterion::default().configure_from_args().final_summary();
}
