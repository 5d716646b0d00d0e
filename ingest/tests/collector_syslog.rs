//! Firewall syslog end to end: the shared sample lines and lines of our own sent to a running
//! `sluice run` over UDP, TCP (newline framing and RFC 6587 octet counting) and TLS (RFC 5425),
//! plus util-linux `logger` as a real sender, then read back with `sluice dump`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::collector::{free_tcp_port, free_udp_port, wait_until, Collector, Options, TempDir};
use serde_json::Value;

fn sample(name: &str) -> Vec<String> {
    let p = common::captures_dir().join("../logs").join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A self-signed certificate for 127.0.0.1 (openssl, as a user would make one).
fn make_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=sluice-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (CI installs it)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    (cert, key)
}

fn tls_client(cert: &Path, port: u16) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).expect("client");
    let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect tls");
    rustls::StreamOwned::new(conn, sock)
}

fn octets(msgs: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
    }
    out
}

#[test]
fn syslog_over_udp_tcp_and_tls_is_stored_and_dumped() {
    let dir = TempDir::new("syslog");
    let (udp, tcp, tls) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let (cert, key) = make_cert(&dir.0);
    let opts = Options {
        extra: format!(
            "[[listener]]\nname = \"sl-udp\"\naddress = \"127.0.0.1:{udp}\"\nprotocol = \"syslog\"\n\n\
             [[listener]]\nname = \"sl-tcp\"\naddress = \"127.0.0.1:{tcp}\"\nprotocol = \"syslog\"\ntransport = \"tcp\"\n\n\
             [[listener]]\nname = \"sl-tls\"\naddress = \"127.0.0.1:{tls}\"\nprotocol = \"syslog\"\ntransport = \"tls\"\nmax_line = \"1KiB\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);

    let edge = sample("edgerouter-iptables.log");
    let asa = sample("cisco-asa.log");
    let panos = sample("panos.log");
    // Ours: a line nobody parses, and one longer than the TLS listener's 1 KiB.
    let unknown =
        "<13>Nov 22 10:00:12 backup-host cron[311]: (root) CMD (run-parts /etc/cron.hourly)"
            .to_string();
    let long = format!(
        "<166>Nov 22 2026 10:00:05: %ASA-6-302014: Teardown TCP connection 5001 for outside:203.0.113.80/443 to inside:10.1.1.5/51000 duration 1:02:03 bytes 987654 {}",
        "x".repeat(1500)
    );

    // UDP: one message per datagram.
    let s = UdpSocket::bind("127.0.0.1:0").expect("udp");
    for l in &edge {
        s.send_to(l.as_bytes(), ("127.0.0.1", udp)).expect("send");
    }
    // TCP, newline framing, written in pieces that split lines.
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).expect("tcp");
    let text = format!("{}\n", asa.join("\n"));
    for piece in text.as_bytes().chunks(97) {
        stream.write_all(piece).expect("write");
        stream.flush().expect("flush");
    }
    drop(stream);
    // TCP, octet counting.
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).expect("tcp");
    stream
        .write_all(&octets(&[
            panos[0].clone(),
            panos[1].clone(),
            unknown.clone(),
        ]))
        .expect("write");
    drop(stream);
    // TLS, octet counting.
    let mut t = tls_client(&cert, tls);
    t.write_all(&octets(std::slice::from_ref(&long)))
        .expect("tls write");
    t.conn.send_close_notify();
    t.flush().expect("tls flush");
    drop(t);
    // A client that does not speak TLS to the TLS port: counted, nothing stored.
    let mut plain = TcpStream::connect(("127.0.0.1", tls)).expect("tcp to tls");
    plain
        .write_all(b"<13>this is not a TLS record\n")
        .expect("write");
    drop(plain);
    // util-linux logger: RFC 5424 over TCP with octet counting, RFC 3164 over UDP.
    let logged = "[LAN_IN-30-A]IN=switch0 OUT=eth0 SRC=192.168.10.40 DST=198.18.1.53 LEN=61 PROTO=UDP SPT=40000 DPT=53";
    for args in [
        vec!["--tcp", "--octet-count", "--rfc5424", "--msgid", "FW1"],
        vec!["--udp", "--rfc3164"],
    ] {
        let port = if args[0] == "--tcp" { tcp } else { udp };
        let st = Command::new("logger")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--tag",
                "kernel",
            ])
            .args(&args)
            .arg(logged)
            .status()
            .expect("run logger");
        assert!(st.success());
    }

    let total = edge.len() + asa.len() + panos.len() + 2 + 2;
    assert!(
        wait_until(Duration::from_secs(15), || c
            .metric("sluice_store_records_total")
            >= total as f64),
        "stored {} of {total}: {}",
        c.metric("sluice_store_records_total"),
        c.log_text()
    );
    let docs = c.dump_all(None);
    assert_eq!(docs.len(), total);
    let by_original: BTreeMap<String, &Value> = docs
        .iter()
        .map(|d| {
            (
                d["event"]["original"]
                    .as_str()
                    .expect("original")
                    .to_string(),
                d,
            )
        })
        .collect();
    for l in edge.iter().chain(&asa).chain(&panos).chain([&unknown]) {
        let d = by_original
            .get(l)
            .unwrap_or_else(|| panic!("not stored: {l}"));
        assert_eq!(d["observer"]["ip"], "127.0.0.1");
        assert_eq!(d["netflow"]["exporter"]["protocol"], "syslog");
    }
    // Fields as the lines say.
    let d = by_original[&edge[0]];
    assert_eq!(d["rule"]["name"], "WAN_IN");
    assert_eq!(d["rule"]["id"], "default");
    assert_eq!(d["event"]["action"], "drop");
    assert_eq!(d["source"]["ip"], "198.18.7.21");
    assert_eq!(d["destination"]["port"], 8080);
    assert_eq!(d["network"]["transport"], "tcp");
    assert_eq!(d["observer"]["hostname"], "er-x");
    assert_eq!(d["@timestamp"], "2026-11-22T09:15:01.000Z");
    let d = by_original[&asa[7]];
    assert_eq!(d["event"]["action"], "deny");
    assert_eq!(d["rule"]["name"], "DMZ_OUT");
    assert_eq!(d["source"]["ip"], "172.16.5.5");
    assert_eq!(d["observer"]["ingress"]["interface"]["name"], "dmz");
    let d = by_original[&panos[0]];
    assert_eq!(d["source"]["nat"]["ip"], "198.19.0.30");
    assert_eq!(d["network"]["bytes"], 9120);
    assert_eq!(d["network"]["application"], "web-browsing");
    // Enrichment applies as for flows.
    assert!(d["network"]["community_id"].is_string(), "{d}");
    assert_eq!(d["source"]["locality"], "private");
    let d = by_original[&unknown];
    assert_eq!(d["tags"][0], "sluice_parse_failure");
    assert_eq!(d["error"]["type"], "unrecognized_format");
    assert_eq!(d["log"]["syslog"]["appname"], "cron");
    // The long line: cut at 1 KiB, stored, counted.
    let cut = by_original
        .keys()
        .find(|k| k.len() == 1024 && long.starts_with(k.as_str()))
        .expect("the cut line is stored");
    assert_eq!(by_original[cut]["source"]["ip"], "10.1.1.5");
    // logger's two messages.
    let from_logger: Vec<&&Value> = by_original
        .iter()
        .filter(|(k, _)| k.ends_with(logged))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(from_logger.len(), 2, "{:?}", by_original.keys());
    for d in &from_logger {
        assert_eq!(d["rule"]["name"], "LAN_IN");
        assert_eq!(d["source"]["ip"], "192.168.10.40");
        assert_eq!(d["log"]["syslog"]["appname"], "kernel");
    }
    assert!(from_logger
        .iter()
        .any(|d| d["log"]["syslog"]["msgid"] == "FW1" && d["log"]["syslog"]["version"] == 1));

    // Metrics.
    let m = |n: &str| c.metric(n);
    assert!(wait_until(Duration::from_secs(5), || {
        m("sluice_syslog_received_total{listener=\"sl-udp\"}") == (edge.len() + 1) as f64
            && m("sluice_syslog_received_total{listener=\"sl-tcp\"}")
                == (asa.len() + panos.len() + 1 + 1) as f64
            && m("sluice_syslog_received_total{listener=\"sl-tls\"}") == 1.0
    }));
    assert_eq!(
        m("sluice_syslog_framing_errors_total{listener=\"sl-tls\",reason=\"too_long\"}"),
        1.0
    );
    assert!(wait_until(Duration::from_secs(5), || m(
        "sluice_syslog_framing_errors_total{listener=\"sl-tls\",reason=\"tls\"}"
    ) == 1.0));
    assert_eq!(
        m("sluice_syslog_parse_failures_total{reason=\"unrecognized_format\",vendor=\"unknown\"}"),
        1.0
    );
    assert_eq!(m("sluice_syslog_messages_total{vendor=\"asa\"}"), 9.0);
    assert_eq!(m("sluice_syslog_messages_total{vendor=\"netfilter\"}"), 7.0);
    assert_eq!(
        m("sluice_syslog_connections_total{listener=\"sl-tcp\"}"),
        3.0
    );
    assert_eq!(m("sluice_pipeline_dropped_records_total"), 0.0);
}
