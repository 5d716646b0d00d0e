//! Elasticsearch credentials reach the cluster and nothing else: given through the
//! environment, they are sent as the `Authorization` header of every request, and neither
//! the secret nor its base64 form appears in the collector's log or in `sluice config check`,
//! also while the cluster fails (connection refused, 503, 429) and errors are being logged.
//! Turning TLS verification off logs a warning. (Its own test binary: it sets environment
//! variables, which other tests running in parallel threads must not see.)

mod common;

#[path = "../../sink/tests/es_util/mod.rs"]
mod es_util;

use std::time::Duration;

use common::collector::{replay, Collector, Options, TempDir};

const USER: &str = "sluice_writer";
const SECRET: &str = "correct-horse-battery-staple-7731";

/// Standard base64 with padding (RFC 4648 §4), written out here so the expected header does
/// not come from the code under test.
fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn credentials_are_sent_but_never_logged() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
    std::env::set_var(sluice_sink::es::ENV_USERNAME, USER);
    std::env::set_var(sluice_sink::es::ENV_PASSWORD, SECRET);

    let es = es_util::FakeEs::start();
    es.set_down(true);
    let dir = TempDir::new("creds");
    let opts = Options {
        extra: format!(
            "[elasticsearch]\nenabled = true\nurls = [\"{}\"]\nflush_interval = \"100ms\"\ntls_verify = false\n",
            es.url()
        ),
        ..Options::default()
    };
    let mut c = Collector::start(&dir.0, &opts);
    let pcap = common::captures_dir().join("generated/pmacctd_nfprobe_v9.pcap");
    replay(&pcap, c.netflow_port);
    // Refused connections for a while, then a cluster that fails whole requests.
    std::thread::sleep(Duration::from_millis(1500));
    es.push_faults([
        es_util::Fault::Unavailable503,
        es_util::Fault::Reject429,
        es_util::Fault::Item429Every(3),
    ]);
    es.set_down(false);
    assert_eq!(
        es.wait_count(46, Duration::from_secs(30)),
        46,
        "{}",
        c.log_text()
    );
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["config", "check"])
        .arg(&c.config)
        .output()
        .expect("sluice config check");
    assert_eq!(c.stop(), Some(0));

    let header = format!("Basic {}", base64(format!("{USER}:{SECRET}").as_bytes()));
    let inner = es.inner();
    assert!(!inner.auth.is_empty(), "no Authorization header was sent");
    assert!(
        inner.auth.iter().all(|a| *a == header),
        "every request carries the configured credentials: {:?}",
        inner.auth.first()
    );
    assert!(
        inner.requests.len() >= 3,
        "the cluster's failures were met: {:?}",
        inner.requests
    );
    drop(inner);

    let log = c.log_text();
    let mut shown = String::from_utf8_lossy(&check.stdout).into_owned();
    shown.push_str(&String::from_utf8_lossy(&check.stderr));
    shown.push_str(&log);
    let b64 = base64(format!("{USER}:{SECRET}").as_bytes());
    for secret in [SECRET, b64.as_str(), &SECRET[..12]] {
        assert!(
            !shown.contains(secret),
            "a credential ({secret}) was printed:\n{shown}"
        );
    }
    assert!(
        log.contains("WARNING: elasticsearch.tls_verify = false"),
        "turning TLS verification off is logged: {log}"
    );
}
