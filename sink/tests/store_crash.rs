//! The store under crashes and damage: torn tails at every offset, garbage appended, flipped
//! bytes, future versions, a reader scanning while a writer appends, and a writer process
//! killed with SIGKILL right after `flush` returned.

mod store_util;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sluice_sink::store::{ScanStats, StoreConfig, StoreReader, StoreWriter};
use store_util::*;

/// Ids of every record in the store, in scan order.
fn scan_ids(dir: &Path) -> (Vec<u64>, ScanStats) {
    let r = StoreReader::open(dir).expect("reader");
    let mut ids = Vec::new();
    let st = r
        .scan(i64::MIN, i64::MAX, |rec| ids.push(synth_id(rec)))
        .expect("scan never fails on damaged data");
    (ids, st)
}

/// A store with one segment of `blocks` blocks of `per_block` records (ids 0..), and the
/// segment's length after each block.
fn blocks_store(dir: &Path, blocks: u64, per_block: u64) -> (PathBuf, Vec<u64>) {
    let mut w = StoreWriter::open(StoreConfig {
        block_records: per_block as usize,
        ..config(dir)
    })
    .expect("writer");
    let t = synth_template();
    let mut ends = Vec::new();
    for i in 0..blocks * per_block {
        append_synth(&mut w, &t, T2026 + i as i64 * SEC, i, T2026);
        if (i + 1) % per_block == 0 {
            w.flush().expect("flush");
            let seg = segment_files(dir);
            ends.push(fs::metadata(&seg[0]).expect("meta").len());
        }
    }
    w.close().expect("close");
    let seg = segment_files(dir);
    assert_eq!(seg.len(), 1);
    (seg[0].clone(), ends)
}

/// Removes every segment but `keep`.
fn keep_only(dir: &Path, keep: &Path) {
    for s in segment_files(dir) {
        if s != keep {
            fs::remove_file(s).expect("remove");
        }
    }
}

#[test]
fn torn_tail_at_every_offset_of_the_last_block() {
    let tmp = TempDir::new("torn");
    let (seg, ends) = blocks_store(tmp.path(), 5, 20);
    let full = fs::read(&seg).expect("read");
    let (last_start, last_end) = (ends[3], ends[4]);
    assert_eq!(last_end, full.len() as u64);
    let complete: Vec<u64> = (0..80).collect();
    let t = synth_template();
    for cut in last_start..last_end {
        fs::write(&seg, &full[..cut as usize]).expect("truncate");
        let (ids, st) = scan_ids(tmp.path());
        assert_eq!(ids, complete, "cut at {cut}");
        let torn = u64::from(cut > last_start);
        assert_eq!(
            (st.torn_tails, st.torn_bytes),
            (torn, cut - last_start),
            "cut at {cut}"
        );
        assert_eq!(st.blocks_read, 4);

        // A writer restarted after the crash opens without complaint, leaves the torn
        // segment alone and writes a new one; everything complete is still read.
        let mut w = StoreWriter::open(config(tmp.path())).expect("writer after a crash");
        append_synth(&mut w, &t, T2026 + 500 * SEC, 10_000 + cut, T2026);
        assert_eq!(w.flush().expect("flush"), 1);
        drop(w);
        assert_eq!(
            fs::metadata(&seg).expect("meta").len(),
            cut,
            "torn segment modified"
        );
        let (ids, st) = scan_ids(tmp.path());
        let mut want = complete.clone();
        want.push(10_000 + cut);
        assert_eq!(ids, want, "cut at {cut}");
        assert_eq!(st.torn_tails, torn);
        keep_only(tmp.path(), &seg);
    }
}

#[test]
fn truncation_anywhere_reads_the_complete_blocks_before_it() {
    let tmp = TempDir::new("truncate");
    let (seg, ends) = blocks_store(tmp.path(), 4, 25);
    let full = fs::read(&seg).expect("read");
    for cut in 0..=full.len() {
        fs::write(&seg, &full[..cut]).expect("truncate");
        let (ids, st) = scan_ids(tmp.path());
        let whole = ends.iter().filter(|&&e| e <= cut as u64).count() as u64;
        let want: Vec<u64> = (0..whole * 25).collect();
        assert_eq!(ids, want, "cut at {cut}");
        // An empty file and a header with no block yet are whole segments, just empty ones.
        let at_boundary = cut == 0 || cut == 24 || ends.contains(&(cut as u64));
        assert_eq!(st.torn_tails, u64::from(!at_boundary), "cut at {cut}");
    }
}

#[test]
fn garbage_after_the_last_block_is_ignored() {
    let tmp = TempDir::new("garbage");
    let (seg, ends) = blocks_store(tmp.path(), 3, 30);
    let full = fs::read(&seg).expect("read");
    let all: Vec<u64> = (0..90).collect();
    let mut rng = Rng(77);
    let mut tails: Vec<Vec<u8>> = vec![
        vec![0; 100],
        vec![0xff; 3],
        b"SLBK".to_vec(),
        b"SLBK\x40\x00\x01\x00"
            .iter()
            .copied()
            .chain([0u8; 200])
            .collect(),
        // The header of the first block again, without its payload.
        full[24..24 + 60].to_vec(),
    ];
    for n in [1, 7, 44, 45, 300, 5000] {
        tails.push((0..n).map(|_| rng.next() as u8).collect());
    }
    let t = synth_template();
    for (k, tail) in tails.iter().enumerate() {
        let mut b = full.clone();
        b.extend_from_slice(tail);
        fs::write(&seg, &b).expect("write");
        let (ids, st) = scan_ids(tmp.path());
        assert_eq!(ids, all, "tail {k}");
        assert_eq!(st.torn_tails, 1, "tail {k}");
        assert_eq!(st.torn_bytes, tail.len() as u64, "tail {k}");
        let mut w = StoreWriter::open(config(tmp.path())).expect("writer after garbage");
        append_synth(&mut w, &t, T2026, 5000, T2026);
        w.close().expect("close");
        assert_eq!(scan_ids(tmp.path()).0.len(), 91, "tail {k}");
        keep_only(tmp.path(), &seg);
    }
    let _ = ends;
}

#[test]
fn damaged_blocks_and_segments_are_skipped_and_counted() {
    let tmp = TempDir::new("damage");
    let (seg, ends) = blocks_store(tmp.path(), 3, 30);
    let full = fs::read(&seg).expect("read");
    let second = ends[0] as usize; // start of the second block
    let header_len = usize::from(u16::from_le_bytes([full[second + 4], full[second + 5]]));

    // A flipped payload byte: that block fails its checksum; its header is intact, so the
    // third block is still found.
    let mut b = full.clone();
    b[second + header_len + 5] ^= 0x10;
    fs::write(&seg, &b).expect("write");
    let (ids, st) = scan_ids(tmp.path());
    let want: Vec<u64> = (0..30).chain(60..90).collect();
    assert_eq!(ids, want);
    assert_eq!((st.blocks_corrupt, st.torn_tails), (1, 0));

    // A flipped header byte (its min timestamp): the header checksum fails and nothing after
    // it can be located, so the segment ends there.
    let mut b = full.clone();
    b[second + 26] ^= 0x01;
    fs::write(&seg, &b).expect("write");
    let (ids, st) = scan_ids(tmp.path());
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
    assert_eq!(st.torn_tails, 1);

    // A segment from a future format version is skipped whole, not misread.
    let mut b = full.clone();
    b[8] = 2;
    fs::write(&seg, &b).expect("write");
    let (ids, st) = scan_ids(tmp.path());
    assert!(ids.is_empty());
    assert_eq!(st.segments_unsupported, 1);

    // Not a segment at all.
    let mut b = full.clone();
    b[0] = b'X';
    fs::write(&seg, &b).expect("write");
    let (ids, st) = scan_ids(tmp.path());
    assert!(ids.is_empty());
    assert_eq!(st.segments_corrupt, 1);

    // Empty and header-only files, stray files and directories are harmless.
    fs::write(&seg, b"").expect("write");
    let part = seg.parent().expect("partition dir").to_path_buf();
    fs::write(part.join("seg-00000009.sls"), &full[..10]).expect("write");
    fs::write(part.join("notes.txt"), b"hello").expect("write");
    fs::create_dir_all(tmp.path().join("not-a-partition")).expect("mkdir");
    let (ids, st) = scan_ids(tmp.path());
    assert!(ids.is_empty());
    assert_eq!(st.torn_tails, 1);
    let mut w = StoreWriter::open(config(tmp.path())).expect("writer");
    append_synth(&mut w, &synth_template(), T2026, 7, T2026);
    w.close().expect("close");
    assert_eq!(scan_ids(tmp.path()).0, [7]);
}

#[test]
fn random_damage_never_panics_nor_invents_records() {
    let tmp = TempDir::new("fuzz");
    let (seg, _) = blocks_store(tmp.path(), 4, 40);
    let full = fs::read(&seg).expect("read");
    let mut rng = Rng(0xdead_beef);
    for round in 0..1500 {
        let mut b = full.clone();
        match rng.below(4) {
            0 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(b.len() as u64) as usize;
                let n = rng.below(64) as usize;
                b.splice(i..i, (0..n).map(|_| rng.next() as u8));
            }
            2 => {
                let i = rng.below(b.len() as u64) as usize;
                let n = (rng.below(64) as usize).min(b.len() - i);
                b.drain(i..i + n);
            }
            _ => {
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.next() as u8;
                b.truncate(rng.below(b.len() as u64 + 1) as usize);
            }
        }
        fs::write(&seg, &b).expect("write");
        let (ids, _) = scan_ids(tmp.path());
        // Checksums guard every block: what is read is original, in order, never invented.
        assert!(ids.len() <= 160, "round {round}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "round {round}: {ids:?}"
        );
        assert!(ids.iter().all(|&i| i < 160), "round {round}");
    }
}

#[test]
fn a_reader_scans_while_a_writer_appends() {
    let tmp = TempDir::new("concurrent");
    let dir = tmp.path().to_path_buf();
    let cfg = StoreConfig {
        block_records: 100,
        segment_bytes: 16 << 10,
        ..config(&dir)
    };
    const N: u64 = 20_000;
    let writer = std::thread::spawn(move || {
        let mut w = StoreWriter::open(cfg).expect("writer");
        let t = synth_template();
        for i in 0..N {
            append_synth(&mut w, &t, T2026 + i as i64 * 1_000_000, i, T2026);
            if i % 333 == 0 {
                w.flush().expect("flush");
            }
        }
        w.close().expect("close");
    });
    let mut scans = 0;
    let mut last = 0usize;
    while !writer.is_finished() || scans == 0 {
        if !dir.exists() {
            continue;
        }
        let (ids, _) = scan_ids(&dir);
        // Blocks are written in order, so any scan sees a prefix of what was appended, and
        // never less than the previous scan saw.
        assert!(
            ids.iter().enumerate().all(|(k, &i)| k as u64 == i),
            "not a prefix"
        );
        assert!(ids.len() >= last, "{} after {last}", ids.len());
        last = ids.len();
        scans += 1;
    }
    writer.join().expect("writer thread");
    let (ids, st) = scan_ids(&dir);
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    assert_eq!(st.torn_tails, 0);
    assert!(st.segments > 3, "{st:?}");
    println!("{scans} scans during the writes");
}

/// The writer process of `records_flushed_survive_sigkill`; does nothing in a normal run.
#[test]
#[ignore = "child process of records_flushed_survive_sigkill"]
fn child_writer_process() {
    let Ok(dir) = std::env::var("SLUICE_STORE_CHILD_DIR") else {
        return;
    };
    let mut w = StoreWriter::open(config(Path::new(&dir))).expect("child writer");
    let t = synth_template();
    let mut flushed = 0u64;
    for i in 0..1_000_000u64 {
        append_synth(&mut w, &t, T2026 + i as i64 * 1_000_000, i, T2026);
        if i % 37 == 36 {
            flushed += w.flush().expect("child flush");
            println!("flushed {flushed}");
        }
    }
}

#[test]
fn records_flushed_survive_sigkill() {
    let tmp = TempDir::new("sigkill");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_writer_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SLUICE_STORE_CHILD_DIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child writer");
    let out = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(out).lines();
    let mut acked = 0u64;
    let mut scans = 0;
    while acked < 20_000 {
        let Some(Ok(line)) = lines.next() else {
            panic!("child writer ended early after {acked} records");
        };
        let Some(n) = line.strip_prefix("flushed ") else {
            continue;
        };
        acked = n.parse().expect("count");
        if acked.checked_rem(37 * 100) == Some(0) {
            // Another process reading while the writer appends.
            let (ids, _) = scan_ids(tmp.path());
            assert!(ids.len() as u64 >= acked, "{} < {acked}", ids.len());
            assert!(ids.iter().enumerate().all(|(k, &i)| k as u64 == i));
            scans += 1;
        }
    }
    // SIGKILL: no destructor, no flush, no chance to tidy up.
    child.kill().expect("kill");
    let _ = child.wait();
    let (ids, _) = scan_ids(tmp.path());
    assert!(
        ids.len() as u64 >= acked,
        "{} records readable, {acked} acked",
        ids.len()
    );
    assert!(ids.iter().enumerate().all(|(k, &i)| k as u64 == i));
    assert!(scans > 0);
    // And a new writer takes over.
    let mut w = StoreWriter::open(config(tmp.path())).expect("writer after SIGKILL");
    append_synth(&mut w, &synth_template(), T2026, 9_999_999, T2026);
    w.close().expect("close");
    assert_eq!(scan_ids(tmp.path()).0.len(), ids.len() + 1);
}
