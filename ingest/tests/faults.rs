//! Faults a collector meets in production, each with the outcome an operator needs:
//! - the data directory's file system fills up: a clear error in the log, drops counted by
//!   reason, every received record either stored or counted as dropped, and writing resumes
//!   by itself once space returns;
//! - `kill -9` while Elasticsearch is down and documents wait in the disk spool: the next
//!   start replays the spool, and every spooled document reaches the cluster exactly once.

mod common;

#[path = "../../sink/tests/es_util/mod.rs"]
mod es_util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};

/// A tmpfs mounted for the life of the value (the tests run as root, here and in CI).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs at {} failed: the fault tests need root (CI runs as root)",
            at.display()
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` with one file until the kernel says ENOSPC; returns
/// the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 4096];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filling: {e}");
                break;
            }
        }
    }
    n
}

const V9: &str = "generated/pmacctd_nfprobe_v9.pcap";
/// Flow records in [`V9`] (checked against `sluice decode` below).
const V9_RECORDS: f64 = 46.0;

#[test]
fn disk_full_is_reported_counted_and_recovered_from() {
    let dir = TempDir::new("diskfull");
    let _fs = Tmpfs::mount(&dir.0.join("data"), "8m");
    let pcap = common::captures_dir().join(V9);
    let decoded = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("decode")
        .arg(&pcap)
        .output()
        .expect("sluice decode");
    assert_eq!(
        String::from_utf8_lossy(&decoded.stdout).lines().count() as f64,
        V9_RECORDS
    );

    let mut c = Collector::start(&dir.0, &Options::default());
    // A first replay is stored normally: the store works on this file system.
    replay(&pcap, c.netflow_port);
    assert!(
        wait_until(Duration::from_secs(10), || c
            .metric("sluice_store_records_total")
            >= V9_RECORDS),
        "{}",
        c.log_text()
    );

    // Now the disk is full.
    let filler = c.data_dir.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    // The open segment's last page has slack a few blocks still fit in: send until the
    // store says it dropped something (bounded).
    let mut rounds = 0u32;
    while rounds < 400 {
        replay(&pcap, c.netflow_port);
        std::thread::sleep(Duration::from_millis(30));
        rounds += 1;
        if rounds.is_multiple_of(10) && c.metric("sluice_store_dropped_records_total") > 0.0 {
            break;
        }
    }
    let received_full = V9_RECORDS * f64::from(rounds);
    assert!(
        wait_until(Duration::from_secs(15), || {
            c.metric("sluice_store_records_total") + c.metric("sluice_store_dropped_records_total")
                >= V9_RECORDS + received_full
        }),
        "every record received while the disk was full is stored or counted as dropped: stored {}, dropped {}\n{}",
        c.metric("sluice_store_records_total"),
        c.metric("sluice_store_dropped_records_total"),
        c.log_text()
    );
    assert!(
        c.metric("sluice_store_dropped_records_total") > 0.0,
        "a full disk dropped nothing? stored {} errors {}\n{}",
        c.metric("sluice_store_records_total"),
        c.metric("sluice_store_errors_total"),
        c.log_text()
    );
    assert!(
        c.metric("sluice_store_errors_total{reason=\"disk_full\"}") >= 1.0,
        "errors counted under reason disk_full"
    );
    let log = c.log_text();
    assert!(
        log.contains("write failed (disk_full)") && log.contains("No space left on device"),
        "a clear error in the log:\n{log}"
    );
    // Still alive and answering.
    assert!(c.metric("sluice_up") == 1.0);

    // Space returns: writing resumes without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let stored_before = c.metric("sluice_store_records_total");
    let dropped_before = c.metric("sluice_store_dropped_records_total");
    replay(&pcap, c.netflow_port);
    assert!(
        wait_until(Duration::from_secs(10), || c
            .metric("sluice_store_records_total")
            >= stored_before + V9_RECORDS),
        "writing did not resume: {}",
        c.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(5), || c
            .log_text()
            .contains("local store: writing again")),
        "recovery logged: {}",
        c.log_text()
    );
    assert_eq!(
        c.metric("sluice_store_dropped_records_total"),
        dropped_before,
        "no drops after recovery"
    );
    let stored = c.metric("sluice_store_records_total");
    let dropped = c.metric("sluice_store_dropped_records_total");
    assert_eq!(c.stop(), Some(0), "{}", c.log_text());
    // What the counters say was stored is what reads back.
    let docs = c.dump_all(None);
    assert_eq!(docs.len() as f64, stored, "dropped {dropped}");
    assert_eq!(
        stored + dropped,
        V9_RECORDS * f64::from(rounds + 2),
        "every record accounted for"
    );
}

#[test]
fn kill9_with_a_spooled_backlog_replays_it_at_the_next_start() {
    let es = es_util::FakeEs::start();
    es.set_down(true);
    let dir = TempDir::new("spoolkill");
    let opts = Options {
        // Small bulk batches: the memory queue (8 batches) and the workers' retries (4) hold
        // few documents, the rest goes to the disk spool.
        extra: format!(
            "[elasticsearch]\nenabled = true\nurls = [\"{}\"]\nflush_interval = \"100ms\"\nbatch_docs = 10\nmax_in_flight = 4\n",
            es.url()
        ),
        ..Options::default()
    };
    let mut c = Collector::start(&dir.0, &opts);
    let pcap = common::captures_dir().join(V9);
    let rounds = 30;
    for _ in 0..rounds {
        // A fresh socket per round: a new source port makes every document's id new.
        replay(&pcap, c.netflow_port);
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = V9_RECORDS * f64::from(rounds);
    // Wait until the store has everything and the spool stops growing.
    assert!(
        wait_until(Duration::from_secs(20), || c
            .metric("sluice_store_records_total")
            >= sent),
        "{}",
        c.log_text()
    );
    let mut spooled = 0.0;
    assert!(
        wait_until(Duration::from_secs(20), || {
            let now = c.metric("sluice_es_spool_documents");
            let settled = now > 0.0 && now == spooled;
            spooled = now;
            std::thread::sleep(Duration::from_millis(400));
            settled
        }),
        "nothing spooled while the cluster was down: {}",
        c.log_text()
    );
    assert!(
        spooled >= sent / 2.0,
        "most documents wait in the spool ({spooled} of {sent})"
    );
    assert_eq!(es.count(), 0, "the cluster was down");
    c.kill9();

    es.set_down(false);
    c.spawn();
    let want = spooled as usize;
    let got = es.wait_count(want, Duration::from_secs(30));
    assert!(
        got >= want,
        "spool not replayed after kill -9: {got} of {want} spooled documents arrived\n{}",
        c.log_text()
    );
    // Nothing left behind, nothing twice.
    assert!(
        wait_until(Duration::from_secs(10), || c
            .metric("sluice_es_spool_documents")
            == 0.0),
        "spool not drained: {}",
        c.log_text()
    );
    assert_eq!(c.stop(), Some(0), "{}", c.log_text());
    let inner = es.inner();
    assert!(
        inner.creates.values().all(|&n| n == 1),
        "a document was created twice"
    );
    assert!(inner.docs.len() as f64 <= sent);
}
