//! Seeds the fuzz corpora from capture files: every UDP payload goes to the target of its
//! version, each capture's payloads as one length-prefixed sequence to `stateful`, and the
//! capture itself to `pcap`; and from log files: every `.log` file under the log directories
//! whole and line by line to `vpc` (names starting with `vpc`) or `syslog` (the others).
//!
//! Usage: seed_corpus CAPTURE_DIR CORPUS_DIR [LOG_DIR...]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sluice_decode::pcap::PcapReader;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

fn put(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    std::fs::write(dir.join(format!("{:016x}", h.finish())), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
        return Err("usage: seed_corpus CAPTURE_DIR CORPUS_DIR [LOG_DIR...]".into());
    };
    let dst = Path::new(dst);
    let mut files = Vec::new();
    walk(Path::new(src), &mut files);
    files.sort();
    let mut n = 0;
    for f in &files {
        let bytes = std::fs::read(f)?;
        if bytes.len() <= 64 * 1024 {
            put(&dst.join("pcap"), &bytes)?;
        }
        let mut reader = PcapReader::from_bytes(bytes)?;
        let mut seq = Vec::new();
        let mut io_err = None;
        reader.for_each_udp(|u| {
            let p: &[u8] = &u.payload;
            let target = match p.get(..4) {
                Some([0, 0, 0, 5]) => "sflow",
                _ => match p.get(..2) {
                    Some([0, 5]) => "netflow_v5",
                    Some([0, 9]) => "netflow_v9",
                    Some([0, 10]) => "ipfix",
                    _ => return,
                },
            };
            if let Err(e) = put(&dst.join(target), p) {
                io_err = Some(e);
            }
            if seq.len() + p.len() < 64 * 1024 {
                seq.extend_from_slice(&(p.len() as u16).to_be_bytes());
                seq.push((u.src.port() & 3) as u8);
                seq.extend_from_slice(p);
            }
            n += 1;
        })?;
        if let Some(e) = io_err {
            return Err(e.into());
        }
        if !seq.is_empty() {
            put(&dst.join("stateful"), &seq)?;
        }
    }
    eprintln!("seed_corpus: {n} datagrams from {} captures", files.len());
    let mut lines = 0;
    for logs in args.iter().skip(3) {
        let Ok(rd) = std::fs::read_dir(logs) else {
            eprintln!("seed_corpus: no log directory {logs}");
            continue;
        };
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
        {
            let name = p
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned());
            let target = if name.starts_with("vpc") {
                "vpc"
            } else {
                "syslog"
            };
            let text = std::fs::read(p)?;
            put(&dst.join(target), &text)?;
            for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                put(&dst.join(target), line)?;
                lines += 1;
            }
        }
    }
    eprintln!("seed_corpus: {lines} log lines");
    Ok(())
}
