//! Replays real captures to a UDP socket of the test (127.0.0.1 / ::1 only) and checks what
//! arrives: counts, exporters, rewritten ids, sequence numbers, templates first, decoding with
//! the collector's own decoder, times, and rate control. Also runs the binary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_decode::{Datagram, Decoder, Limits};
use sluice_loadgen::replay::{rewritten_id, wall_clock, Generator};
use sluice_loadgen::{replay, Capture, Rate, ReplayConfig, ReplayStats, Stop};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/captures");

fn capture(rel: &str) -> Option<Capture> {
    let p = Path::new(CAPTURES).join(rel);
    if !p.exists() {
        eprintln!("skipping: {} not found", p.display());
        return None;
    }
    Some(Capture::open(&p).expect("capture loads"))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// (version, source id, sequence) of a datagram's header.
fn header(p: &[u8]) -> (u16, u32, u32) {
    match be16(p, 0) {
        5 => (5, u32::from(be16(p, 20)), be32(p, 16)),
        9 => (9, be32(p, 16), be32(p, 12)),
        v => (v, be32(p, 12), be32(p, 8)),
    }
}

/// A UDP sink on `bind` that collects datagrams until `expected` arrived or it stays idle for
/// a second.
/// Datagrams as received: sender and payload.
type Received = Vec<(SocketAddr, Vec<u8>)>;

fn sink(bind: &str, expected: usize) -> (SocketAddr, JoinHandle<Received>) {
    let sock = UdpSocket::bind(bind).expect("bind sink");
    let addr = sock.local_addr().expect("sink addr");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < expected {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => got.push((from, buf[..n].to_vec())),
                Err(_) => break,
            }
        }
        got
    });
    (addr, h)
}

fn run(cap: &Capture, to: SocketAddr, rate: Rate, exporters: usize, stop: Stop) -> ReplayStats {
    let cfg = ReplayConfig {
        to,
        rate,
        exporters,
        stop,
        batch: 32,
    };
    replay(cap, &cfg, |_| {}).expect("replay")
}

/// Decodes datagrams as the collector would; returns the decoder (for its stats and
/// exporters) and the flow records decoded.
fn decode_all(dgrams: &[(SocketAddr, Vec<u8>)]) -> (Decoder, u64) {
    let mut dec = Decoder::new(Limits::default());
    let mut flows = 0u64;
    let now = wall_clock().0 * 1_000_000;
    for (i, (src, p)) in dgrams.iter().enumerate() {
        let dg = Datagram {
            src: *src,
            receive_time_ns: now,
            payload: p,
            tag: i as u64,
        };
        let _ = dec.decode(&dg, |r| {
            if !r.template.options {
                flows += 1;
            }
        });
    }
    (dec, flows)
}

fn assert_clean_decode(dec: &Decoder, label: &str) {
    let st = dec.stats();
    assert_eq!(st.sets_held, 0, "{label}: data arrived before its template");
    assert_eq!(
        st.exporter_restarts, 0,
        "{label}: an exporter looked restarted"
    );
    for (k, s) in dec.exporters() {
        assert_eq!(s.missing, 0, "{label}: sequence gap in {k:?}");
        assert_eq!(s.restarts, 0, "{label}: restart in {k:?}");
    }
}

/// v5 and v9 sequence numbers of every (source port, id) stream are consecutive: v5 advances
/// by the previous datagram's record count, v9 by one. (IPFIX: [`assert_ipfix_sequences`].)
fn assert_sequences(dgrams: &[(SocketAddr, Vec<u8>)]) {
    let mut next: HashMap<(u16, u32), u32> = HashMap::new();
    let mut checked = 0;
    for (src, p) in dgrams {
        let (version, id, seq) = header(p);
        let units = match version {
            5 => u32::from(be16(p, 2)),
            9 => 1,
            _ => continue,
        };
        if let Some(want) = next.insert((src.port(), id), seq.wrapping_add(units)) {
            assert_eq!(
                seq,
                want,
                "v{version} port {} id {id}: sequence",
                src.port()
            );
            checked += 1;
        }
    }
    assert!(checked > 0 || dgrams.iter().all(|(_, p)| header(p).0 == 10));
}

/// IPFIX: the sequence number advances by the data records of the previous message.
fn assert_ipfix_sequences(dgrams: &[(SocketAddr, Vec<u8>)]) {
    let mut dec = Decoder::new(Limits::default());
    let mut last: HashMap<(u16, u32), u32> = HashMap::new();
    let mut expected: HashMap<(u16, u32), u32> = HashMap::new();
    for (i, (src, p)) in dgrams.iter().enumerate() {
        let (_, id, seq) = header(p);
        let key = (src.port(), id);
        if let Some(&want) = expected.get(&key) {
            assert_eq!(seq, want, "IPFIX port {} domain {id}: sequence", src.port());
        }
        let mut n = 0u32;
        let dg = Datagram {
            src: *src,
            receive_time_ns: 0,
            payload: p,
            tag: i as u64,
        };
        let _ = dec.decode(&dg, |_| n += 1);
        last.insert(key, seq);
        expected.insert(key, seq.wrapping_add(n));
    }
    assert!(!last.is_empty());
}

/// The generic socket test: `exporters` exporters, 2 loops, at a rate the sink keeps up with.
fn socket_roundtrip(rel: &str, exporters: usize, bind: &str) {
    let Some(cap) = capture(rel) else { return };
    let per_exporter = cap.preamble.len() as u64 * if cap.preamble_each_loop { 2 } else { 1 }
        + 2 * cap.body.len() as u64;
    let expected = per_exporter as usize * exporters;
    let (to, h) = sink(bind, expected);
    let stats = run(&cap, to, Rate::Pps(20_000.0), exporters, Stop::Loops(2));
    let got = h.join().expect("sink");
    assert_eq!(stats.packets, expected as u64, "{rel}: sent");
    assert_eq!(got.len(), expected, "{rel}: received");
    assert_eq!(stats.loops, 2);
    assert_eq!(
        stats.flow_records,
        2 * exporters as u64 * cap.loop_flow_records()
    );

    // One source port per exporter, each with its own rewritten ids.
    let ports: BTreeSet<u16> = got.iter().map(|(s, _)| s.port()).collect();
    let want_ports: BTreeSet<u16> = stats.exporter_addrs.iter().map(|a| a.port()).collect();
    assert_eq!(ports, want_ports, "{rel}: source ports");
    assert_eq!(ports.len(), exporters);
    let n = cap.streams.len();
    let mut ids: BTreeMap<u16, BTreeSet<u32>> = BTreeMap::new();
    for (src, p) in &got {
        assert_eq!(src.ip(), to.ip(), "loopback only");
        ids.entry(src.port()).or_default().insert(header(p).1);
    }
    let mut all = BTreeSet::new();
    for (i, addr) in stats.exporter_addrs.iter().enumerate() {
        let want: BTreeSet<u32> = (0..n).map(|s| rewritten_id(i, s, n)).collect();
        assert_eq!(ids[&addr.port()], want, "{rel}: exporter {i} ids");
        all.extend(want);
    }
    assert_eq!(all.len(), exporters * n, "{rel}: ids are distinct");

    assert_sequences(&got);
    if cap.streams.iter().any(|s| s.version == 10) {
        assert_ipfix_sequences(&got);
    }
    let (dec, flows) = decode_all(&got);
    assert_clean_decode(&dec, rel);
    assert_eq!(flows, stats.flow_records, "{rel}: every record decodes");
    assert_eq!(
        dec.scope_count(),
        exporters * n,
        "{rel}: one scope per exporter stream"
    );
}

#[test]
fn pmacct_v9_three_exporters() {
    socket_roundtrip("generated/pmacctd_nfprobe_v9.pcap", 3, "127.0.0.1:0");
}

#[test]
fn pmacct_ipfix_three_exporters() {
    socket_roundtrip("generated/pmacctd_nfprobe_ipfix.pcap", 3, "127.0.0.1:0");
}

#[test]
fn pmacct_v5_two_exporters() {
    socket_roundtrip("generated/pmacctd_nfprobe_v5.pcap", 2, "127.0.0.1:0");
}

#[test]
fn pmacct_v9_sampling_options() {
    socket_roundtrip(
        "generated/pmacctd_nfprobe_v9_sampling.pcap",
        2,
        "127.0.0.1:0",
    );
}

#[test]
fn ubiquiti_edgerouter() {
    // Its data datagram's sequence and uptime run backwards in the capture; rewritten, they
    // must not.
    socket_roundtrip("netflow9/ubiquiti_edgerouter_mpls.pcap", 4, "127.0.0.1:0");
}

#[test]
fn two_original_exporters_stay_apart() {
    let rel = "netflow9/nprobe_and_softflowd_two_exporters.pcap";
    if let Some(cap) = capture(rel) {
        assert_eq!(cap.streams.len(), 2);
    }
    socket_roundtrip(rel, 2, "127.0.0.1:0");
}

#[test]
fn data_before_template_in_one_datagram() {
    socket_roundtrip(
        "netflow9/juniper_mx960_junos19.4_data_and_templates_in_one_packet.pcap",
        2,
        "127.0.0.1:0",
    );
}

#[test]
fn ipv6_loopback() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback");
        return;
    }
    socket_roundtrip("generated/softflowd_ipfix.pcap", 2, "[::1]:0");
}

/// Every capture of the shared set either loads and replays cleanly (checked in process,
/// without sockets: 3 exporters, 3 loops, through the collector's decoder) or is refused with a
/// clear error because it holds no NetFlow.
#[test]
fn every_capture_replays_in_process() {
    let dir = Path::new(CAPTURES);
    if !dir.is_dir() {
        eprintln!("skipping: {} not found", dir.display());
        return;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    let (mut replayed, mut refused) = (0, 0);
    for p in &files {
        let label = p.strip_prefix(dir).unwrap_or(p).display().to_string();
        let cap = match Capture::open(p) {
            Ok(c) => c,
            Err(e) => {
                assert_eq!(e.reason(), "no_netflow", "{label}: {e}");
                refused += 1;
                continue;
            }
        };
        replayed += 1;
        let exporters = 3;
        let loops = 3;
        let start = wall_clock().0;
        let mut gen = Generator::new(&cap, exporters, start);
        let total = gen.schedule().total(loops);
        let mut got = Vec::new();
        for i in 0..total {
            for e in 0..exporters {
                let mut buf = Vec::new();
                // The clock advances 1 ms per round, as a slow sender's would.
                let now = (start + i as i64, 0);
                gen.render(e, now, &mut buf);
                got.push((SocketAddr::from(([127, 0, 0, 1], 40000 + e as u16)), buf));
            }
        }
        let (dec, flows) = decode_all(&got);
        assert_eq!(
            flows,
            exporters as u64 * loops * cap.loop_flow_records(),
            "{label}: flow records"
        );
        let st = dec.stats();
        assert_eq!(st.exporter_restarts, 0, "{label}: restarts");
        for (k, s) in dec.exporters() {
            assert_eq!(s.missing, 0, "{label}: sequence gap in {k:?}");
        }
        if cap.decode_errors.is_empty() {
            assert_eq!(st.errors.len(), 0, "{label}: {:?}", st.errors);
            assert_eq!(st.sets_held, 0, "{label}: data before template");
        }
        assert_eq!(
            dec.scope_count(),
            exporters * cap.streams.len(),
            "{label}: scopes"
        );
    }
    assert!(replayed > 50, "{replayed} captures replayed");
    assert!(refused > 0, "the sFlow captures are refused");
}

/// Flow ages relative to the export time are what the capture says, loop after loop, while
/// the export time is now: v5/v9 FIRST/LAST move with sysUptime, IPFIX absolute times with
/// the export time.
#[test]
fn record_times_keep_their_age() {
    for rel in [
        "generated/pmacctd_nfprobe_v5.pcap",
        "generated/pmacctd_nfprobe_v9.pcap",
        "generated/pmacctd_nfprobe_v5_uptime_wrap.pcap",
        "generated/softflowd_v9_uptime_wrap.pcap",
        "generated/softflowd_ipfix.pcap",
        "generated/pmacctd_nfprobe_ipfix.pcap",
    ] {
        let Some(cap) = capture(rel) else { continue };
        let ages = |dgrams: &[(SocketAddr, Vec<u8>)]| {
            let mut dec = Decoder::new(Limits {
                template_timeout_ns: None,
                ..Limits::default()
            });
            let mut v = Vec::new();
            let mut exports = Vec::new();
            for (i, (src, p)) in dgrams.iter().enumerate() {
                let dg = Datagram {
                    src: *src,
                    receive_time_ns: 0,
                    payload: p,
                    tag: i as u64,
                };
                let _ = dec.decode(&dg, |r| {
                    if r.template.options {
                        return;
                    }
                    let f = r.flow();
                    let export = r.header.export_time_ns;
                    exports.push(export);
                    v.push((export - f.start_ns, export - f.end_ns, f.times_from_record));
                });
            }
            (v, exports)
        };
        let src = cap.streams[0].exporter;
        let original: Vec<(SocketAddr, Vec<u8>)> = cap
            .preamble
            .iter()
            .chain(&cap.body)
            .map(|d| (src, cap.bytes(d).to_vec()))
            .collect();
        let (want, _) = ages(&original);
        assert!(
            want.iter().all(|w| w.2),
            "{rel}: times come from the records"
        );

        let start = wall_clock().0;
        let mut gen = Generator::new(&cap, 1, start);
        let total = gen.schedule().total(2);
        let mut sent = Vec::new();
        for i in 0..total {
            let mut buf = Vec::new();
            // 250 ms between datagrams: the replay takes longer than the capture did.
            gen.render(0, (start + 250 * i as i64, 0), &mut buf);
            sent.push((src, buf));
        }
        let (got, exports) = ages(&sent);
        assert_eq!(got.len(), 2 * want.len(), "{rel}");
        assert_eq!(&got[..want.len()], &want[..], "{rel}: loop 1 ages");
        assert_eq!(&got[want.len()..], &want[..], "{rel}: loop 2 ages");
        let now_ns = wall_clock().0 * 1_000_000;
        let last = start * 1_000_000 + 250_000_000 * total as i64;
        for e in exports {
            assert!(
                e >= start * 1_000_000 - 1_000_000_000 && e <= last.max(now_ns),
                "{rel}: export time {e} is not now"
            );
        }
    }
}

/// `--rate 2000` over 3 s: within ±2% of the target, and everything arrives.
#[test]
fn rate_control_2000_pps() {
    let Some(cap) = capture("generated/pmacctd_nfprobe_v9.pcap") else {
        return;
    };
    let (to, h) = sink("127.0.0.1:0", usize::MAX);
    let t0 = Instant::now();
    let stats = run(
        &cap,
        to,
        Rate::Pps(2000.0),
        2,
        Stop::Duration(Duration::from_secs(3)),
    );
    let wall = t0.elapsed();
    let got = h.join().expect("sink");
    let pps = stats.pps();
    assert!((pps - 2000.0).abs() <= 40.0, "achieved {pps:.1} pps");
    let over_wall = stats.packets as f64 / wall.as_secs_f64();
    assert!(
        (over_wall - 2000.0).abs() <= 40.0,
        "{} packets in {wall:?}",
        stats.packets
    );
    assert!(
        wall < Duration::from_millis(3200),
        "stopped on time: {wall:?}"
    );
    assert_eq!(got.len() as u64, stats.packets);
    assert_sequences(&got);
    let (dec, _) = decode_all(&got);
    assert_clean_decode(&dec, "rate");
}

/// `--loops` with a rate: the run lasts packets / rate.
#[test]
fn paced_loops_take_the_expected_time() {
    let Some(cap) = capture("generated/pmacctd_nfprobe_ipfix.pcap") else {
        return;
    };
    let (to, h) = sink("127.0.0.1:0", usize::MAX);
    let stats = run(&cap, to, Rate::Pps(1000.0), 1, Stop::Loops(100));
    let got = h.join().expect("sink");
    let expected = cap.preamble.len() as u64 + 100 * cap.body.len() as u64;
    assert_eq!(stats.packets, expected);
    assert_eq!(got.len() as u64, expected);
    let secs = stats.elapsed.as_secs_f64();
    let want = expected as f64 / 1000.0;
    assert!((secs - want).abs() / want < 0.02, "{secs} s for {want} s");
    assert_ipfix_sequences(&got);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice-loadgen"))
}

#[test]
fn cli_json_report() {
    let p = Path::new(CAPTURES).join("generated/pmacctd_nfprobe_v9.pcap");
    if !p.exists() {
        return;
    }
    let cap = Capture::open(&p).expect("load");
    let expected = 2 * (cap.preamble.len() + 3 * cap.body.len());
    let (to, h) = sink("127.0.0.1:0", expected);
    let out = bin()
        .arg("replay")
        .arg(&p)
        .args(["--to", &to.to_string(), "--exporters", "2", "--loops", "3"])
        .args(["--rate", "10000", "--json"])
        .output()
        .expect("run binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(v["packets"], expected as u64);
    assert_eq!(v["records"], 2 * 3 * cap.loop_flow_records());
    assert_eq!(v["exporters"], 2);
    assert_eq!(v["loops"], 3);
    assert!(v["pps"].as_f64().is_some_and(|p| p > 0.0));
    assert!(v.get("collector").is_none());
    assert_eq!(h.join().expect("sink").len(), expected);
}

#[test]
fn cli_refuses_what_it_cannot_replay() {
    let sflow = Path::new(CAPTURES).join("generated/pmacctd_sfprobe_sflow5.pcap");
    if sflow.exists() {
        let out = bin()
            .arg("replay")
            .arg(&sflow)
            .args(["--to", "127.0.0.1:9"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no NetFlow v5/v9 or IPFIX datagram"), "{err}");
    }
    let junk = std::env::temp_dir().join(format!("loadgen-junk-{}.pcap", std::process::id()));
    std::fs::write(&junk, b"not a capture at all").expect("write");
    let out = bin()
        .arg("replay")
        .arg(&junk)
        .args(["--to", "127.0.0.1:9"])
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&junk);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap"));
    // Usage errors: clap's exit status 2.
    let out = bin()
        .args(["replay", "x.pcap", "--to", "127.0.0.1:9", "--loops", "2"])
        .args(["--duration", "3s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["replay", "x.pcap", "--to", "127.0.0.1:9", "--rate", "fast"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `--metrics`: a fake collector endpoint whose counters move by what the sink received.
#[test]
fn cli_metrics_report() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let p = Path::new(CAPTURES).join("generated/pmacctd_nfprobe_v9.pcap");
    if !p.exists() {
        return;
    }
    let cap = Capture::open(&p).expect("load");
    let expected = cap.preamble.len() + cap.body.len();
    let records = cap.loop_flow_records();
    let (to, h) = sink("127.0.0.1:0", expected);
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/metrics", l.local_addr().expect("addr"));
    let scrapes = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&scrapes);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { break };
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            // First scrape: before; later ones: after (one record lost, one kernel drop).
            let after = s2.fetch_add(1, Ordering::SeqCst) > 0;
            let (pk, dec, st, dr) = if after {
                (100 + expected as u64, 50 + records, 50 + records - 1, 1)
            } else {
                (100, 50, 50, 0)
            };
            let body = format!(
                "sluice_receive_packets_total{{listener=\"[::]:2055\"}} {pk}\n\
                 sluice_decode_records_total{{kind=\"flow\"}} {dec}\n\
                 sluice_decode_records_total{{kind=\"options\"}} 9\n\
                 sluice_store_records_total {st}\n\
                 sluice_receive_kernel_drops_total{{listener=\"[::]:2055\"}} {dr}\n"
            );
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = bin()
        .arg("replay")
        .arg(&p)
        .args(["--to", &to.to_string(), "--json", "--metrics", &url])
        .output()
        .expect("run binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let c = &v["collector"];
    assert_eq!(c["received_packets"], expected as f64);
    assert_eq!(c["decoded_records"], records as f64);
    assert_eq!(c["stored_records"], (records - 1) as f64);
    assert_eq!(c["kernel_drops"], 1.0);
    assert_eq!(c["pipeline_drops"], 0.0);
    let loss = c["loss_percent"].as_f64().expect("loss");
    assert!((loss - 100.0 / records as f64).abs() < 1e-9, "{loss}");
    assert!(scrapes.load(Ordering::SeqCst) >= 2);
    h.join().expect("sink");
}

/// A stream that redefines a template mid-capture, with data ahead of the first definition:
/// the template datagrams go out before every loop, so every loop decodes like the first.
#[test]
fn template_redefinition_resends_templates_every_loop() {
    use sluice_loadgen::capture::InputDatagram;
    let header = |count: u16, seq: u32| {
        let mut h = vec![0, 9];
        h.extend_from_slice(&count.to_be_bytes());
        h.extend_from_slice(&60_000u32.to_be_bytes());
        h.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        h.extend_from_slice(&seq.to_be_bytes());
        h.extend_from_slice(&7u32.to_be_bytes());
        h
    };
    let set = |id: u16, body: &[u8]| {
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    };
    let template = |fields: &[(u16, u16)]| {
        let mut t = vec![1, 0];
        t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (id, len) in fields {
            t.extend_from_slice(&id.to_be_bytes());
            t.extend_from_slice(&len.to_be_bytes());
        }
        set(0, &t)
    };
    // Definition A: 8-byte records; B: 12-byte records with the same id.
    let a = template(&[(8, 4), (2, 4)]);
    let b = template(&[(12, 4), (2, 4), (1, 4)]);
    let mut d1 = header(2, 1);
    d1.extend(set(256, &[1u8; 16])); // two A records, ahead of A
    let mut d2 = header(1, 2);
    d2.extend(a);
    let mut d3 = header(4, 3);
    d3.extend(b);
    d3.extend(set(256, &[2u8; 36])); // three B records
    let src = SocketAddr::from(([192, 0, 2, 1], 50000));
    let input = [d1, d2, d3]
        .into_iter()
        .map(|payload| InputDatagram {
            src,
            frame: 0,
            payload,
        })
        .collect();
    let mut cap = Capture::from_datagrams(input, 0).expect("loads");
    assert!(cap.preamble_each_loop);
    assert_eq!(cap.loop_flow_records(), 5);
    let loops = 3;
    let render = |cap: &Capture| {
        let start = wall_clock().0;
        let mut gen = Generator::new(cap, 2, start);
        let total = gen.schedule().total(loops);
        let mut got = Vec::new();
        for i in 0..total {
            for e in 0..2 {
                let mut buf = Vec::new();
                gen.render(e, (start + i as i64, 0), &mut buf);
                got.push((SocketAddr::from(([127, 0, 0, 1], 40000 + e as u16)), buf));
            }
        }
        got
    };
    let got = render(&cap);
    assert_eq!(
        got.len() as u64,
        2 * loops * (cap.preamble.len() + 3) as u64
    );
    let (dec, flows) = decode_all(&got);
    assert_eq!(flows, 2 * loops * 5);
    assert_clean_decode(&dec, "redefinition");
    assert_sequences(&got);
    // Control: with the templates sent only once, loops 2 and 3 misdecode the first data set.
    cap.preamble_each_loop = false;
    let (_, flows) = decode_all(&render(&cap));
    assert_ne!(flows, 2 * loops * 5);
}

/// Damaged datagrams (bit flips, random bytes, cuts) load and render without a panic.
#[test]
fn damaged_datagrams_never_panic() {
    use sluice_decode::pcap::PcapReader;
    use sluice_loadgen::capture::InputDatagram;
    let mut originals = Vec::new();
    for rel in [
        "generated/pmacctd_nfprobe_v9_sampling.pcap",
        "generated/softflowd_ipfix.pcap",
        "generated/pmacctd_nfprobe_v5.pcap",
        "netflow9/nprobe_and_softflowd_two_exporters.pcap",
    ] {
        let p = Path::new(CAPTURES).join(rel);
        let Ok(mut r) = PcapReader::open(&p) else {
            continue;
        };
        r.for_each_udp(|d| originals.push((d.src, d.payload.to_vec())))
            .expect("walk");
    }
    if originals.is_empty() {
        return;
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..400 {
        let input: Vec<InputDatagram> = originals
            .iter()
            .map(|(src, p)| {
                let mut p = p.clone();
                match round % 3 {
                    0 => {
                        for _ in 0..4 {
                            let i = (rnd() % p.len() as u64) as usize;
                            p[i] = rnd() as u8;
                        }
                    }
                    1 => {
                        // Damage the header and the first set header, where lengths live.
                        let i = (rnd() % p.len().min(28) as u64) as usize;
                        p[i] ^= 1 << (rnd() % 8);
                    }
                    _ => p.truncate((rnd() % (p.len() as u64 + 1)) as usize),
                }
                InputDatagram {
                    src: *src,
                    frame: 0,
                    payload: p,
                }
            })
            .collect();
        let Ok(cap) = Capture::from_datagrams(input, 0) else {
            continue;
        };
        let start = wall_clock().0;
        let mut gen = Generator::new(&cap, 2, start);
        let total = gen.schedule().total(2);
        let mut got = Vec::new();
        for i in 0..total {
            for e in 0..2 {
                let mut buf = Vec::new();
                gen.render(e, (start + i as i64, 0), &mut buf);
                got.push((SocketAddr::from(([127, 0, 0, 1], 40000 + e as u16)), buf));
            }
        }
        let (dec, _) = decode_all(&got);
        for (k, s) in dec.exporters() {
            assert_eq!(s.missing, 0, "round {round}: gap in {k:?}");
        }
    }
}
