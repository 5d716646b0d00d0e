//! `ops/prometheus/` against Debian's Prometheus: `promtool check config`, `promtool check
//! rules` and the rules' unit tests (`promtool test rules`), each shown to fail on a broken
//! copy; then a real Prometheus server on loopback, with the shipped alert rules loaded,
//! scrapes a running Sluice: its metrics come back from the query API, every rule evaluates
//! without error, every expression of the Grafana dashboard runs, a burst of kernel drops
//! fires SluiceKernelDrops and a killed collector makes SluiceDown pending. The test stops
//! the server itself; every wait is bounded (about 20 s in all).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::collector::{free_tcp_port, Collector, Options, TempDir};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ops_prometheus() -> PathBuf {
    root().join("ops/prometheus")
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_accepts_the_config_the_rules_and_their_unit_tests() {
    let dir = ops_prometheus();
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "sluice.rules.yml"],
        &["test", "rules", "sluice.rules.test.yml"],
    ] {
        let (ok, out) = promtool(args, &dir);
        assert!(ok, "promtool {args:?}:\n{out}");
    }

    // The same checks on broken copies fail.
    let tmp = TempDir::new("promtool");
    let rules = std::fs::read_to_string(dir.join("sluice.rules.yml")).expect("rules");
    let tests = std::fs::read_to_string(dir.join("sluice.rules.test.yml")).expect("tests");
    std::fs::write(tmp.0.join("sluice.rules.test.yml"), &tests).expect("write");
    let broken = rules.replacen("up{job=\"sluice\"} == 0", "up{job=\"sluice\"} == ", 1);
    assert_ne!(broken, rules);
    std::fs::write(tmp.0.join("sluice.rules.yml"), &broken).expect("write");
    let (ok, out) = promtool(&["check", "rules", "sluice.rules.yml"], &tmp.0);
    assert!(!ok, "a rule with a broken expression passed: {out}");
    // A looser threshold keeps the rules valid, but c2's 0.5 % decode errors now alert and
    // the unit test says so.
    let looser = rules.replacen("> 0.01", "> 0.001", 1);
    assert_ne!(looser, rules);
    std::fs::write(tmp.0.join("sluice.rules.yml"), &looser).expect("write");
    let (ok, _) = promtool(&["check", "rules", "sluice.rules.yml"], &tmp.0);
    assert!(ok);
    let (ok, out) = promtool(&["test", "rules", "sluice.rules.test.yml"], &tmp.0);
    assert!(
        !ok && out.contains("SluiceDecodeErrors"),
        "the unit tests did not notice a changed threshold: {out}"
    );
}

/// A Prometheus server started for the test, stopped (SIGTERM, then SIGKILL) on drop.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, target: SocketAddr) -> Server {
        let port = free_tcp_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let rules = ops_prometheus().join("sluice.rules.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: sluice\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    \
                 static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("prometheus (Debian package prometheus; .ci/run installs it)");
        let mut s = Server {
            child: Some(child),
            addr,
            log,
        };
        let ready = s.wait_for("ready", Duration::from_secs(15), |s| {
            s.get("/-/ready").is_some_and(|(code, _)| code == 200)
        });
        assert!(ready, "Prometheus did not become ready: {}", s.log_text());
        if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("Prometheus exited ({st}): {}", s.log_text());
        }
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// HTTP/1.0 GET (so the answer is never chunked): (status, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    }

    /// `GET /api/v1/...` as JSON.
    fn api(&self, path: &str) -> Value {
        let (code, body) = self
            .get(path)
            .unwrap_or_else(|| panic!("no answer to {path}: {}", self.log_text()));
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            code == 200 || v["status"] == "error",
            "{path}: HTTP {code}: {body}"
        );
        v
    }

    /// An instant query: (status, result vector).
    fn query(&self, promql: &str) -> (String, Vec<Value>) {
        let v = self.api(&format!("/api/v1/query?query={}", encode(promql)));
        let status = v["status"].as_str().unwrap_or("").to_owned();
        if status != "success" {
            return (format!("{status}: {}", v["error"]), Vec::new());
        }
        (
            status,
            v["data"]["result"].as_array().cloned().unwrap_or_default(),
        )
    }

    /// The sum of a query's values (0 with no result).
    fn value(&self, promql: &str) -> f64 {
        self.query(promql)
            .1
            .iter()
            .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
            .sum()
    }

    fn alert_state(&self, name: &str, listener: Option<&str>) -> Option<String> {
        let v = self.api("/api/v1/alerts");
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == name
                    && listener.is_none_or(|l| a["labels"]["listener"] == l)
            })
            .and_then(|a| a["state"].as_str().map(str::to_owned))
    }

    fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&Server) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f(self) {
                return true;
            }
            if Instant::now() > deadline {
                eprintln!("gave up waiting for {what}");
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM and wait for a clean exit (SIGKILL after 10 s).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Percent-encoding for a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn burst(port: u16, n: usize) {
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let mut v5 = vec![0, 5, 0, 1];
    v5.extend_from_slice(&[0; 20 + 48]);
    for _ in 0..n {
        tx.send_to(&v5, ("127.0.0.1", port)).expect("send");
    }
    std::thread::sleep(Duration::from_millis(200));
    // The kernel reports its drop count with the next datagram it queues.
    tx.send_to(&v5, ("127.0.0.1", port)).expect("send");
}

#[test]
fn a_real_prometheus_scrapes_sluice_and_evaluates_the_rules() {
    let started = Instant::now();
    let dir = TempDir::new("prometheus");
    // A tiny receive buffer, so that a burst overflows it.
    let opts = Options {
        workers: 1,
        recv_buffer: "1B".into(),
        ..Options::default()
    };
    let mut c = Collector::start(&dir.0, &opts);
    let mut prom = Server::start(&dir.0, c.metrics);

    let up = prom.wait_for("sluice_up == 1", Duration::from_secs(10), |p| {
        p.value("sluice_up{job=\"sluice\"}") == 1.0
    });
    assert!(
        up,
        "sluice_up never reached Prometheus: {}",
        prom.log_text()
    );

    // Real exporter datagrams: pmacct's NetFlow v9 (what EdgeOS and VyOS send), paced so that
    // the tiny buffer holds each one until it is read.
    let capture = common::captures_dir().join("generated/pmacctd_nfprobe_v9.pcap");
    let datagrams = common::pcap::read_udp_datagrams(&capture).expect("read capture");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    for d in &datagrams {
        tx.send_to(&d.payload, ("127.0.0.1", c.netflow_port))
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = datagrams.len() as f64;
    let got = prom.wait_for("the receive counter", Duration::from_secs(10), |p| {
        p.value("sluice_receive_packets_total{listener=\"netflow\"}") >= sent
    });
    assert!(got, "Prometheus never saw {sent} datagrams received");
    let flows = prom.wait_for("decoded flows", Duration::from_secs(10), |p| {
        p.value("sluice_decode_records_total{kind=\"flow\"}") > 0.0
    });
    assert!(flows, "no decoded records in Prometheus");

    // Every rule of the shipped file is loaded and evaluates without error.
    let rules_text =
        std::fs::read_to_string(ops_prometheus().join("sluice.rules.yml")).expect("rules");
    let want = rules_text.matches("- alert:").count();
    let v = prom.api("/api/v1/rules");
    let rules: Vec<&Value> = v["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(rules.len(), want, "{v}");
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} evaluates with an error: {r}",
            r["name"]
        );
    }

    // Every expression of the Grafana dashboard runs (with its variables filled in).
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("ops/grafana/sluice-collector.json"))
            .expect("dashboard"),
    )
    .expect("JSON");
    let mut ran = 0;
    let mut with_data = 0;
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap_or("")
                .replace("$__rate_interval", "15s")
                .replace("$__range", "1m")
                .replace("$instance", ".*");
            let (status, result) = prom.query(&expr);
            assert_eq!(status, "success", "{:?}: {expr}", p["title"]);
            ran += 1;
            with_data += usize::from(!result.is_empty());
        }
    }
    assert!(ran >= 30, "only {ran} dashboard queries");
    eprintln!("{ran} dashboard queries ran, {with_data} returned data");

    // Kernel drops: the first burst creates the listener's drop series, the second raises it;
    // the alert has no `for`, so it fires at the next evaluation.
    burst(c.netflow_port, 50_000);
    let seen = prom.wait_for("the kernel-drop series", Duration::from_secs(10), |p| {
        p.value("sluice_receive_kernel_drops_total{listener=\"netflow\"}") > 0.0
    });
    assert!(seen, "no kernel drops reached Prometheus");
    std::thread::sleep(Duration::from_secs(2));
    burst(c.netflow_port, 50_000);
    let fired = prom.wait_for("SluiceKernelDrops", Duration::from_secs(10), |p| {
        p.alert_state("SluiceKernelDrops", Some("netflow"))
            .as_deref()
            == Some("firing")
    });
    assert!(
        fired,
        "SluiceKernelDrops did not fire: {}",
        prom.api("/api/v1/alerts")
    );

    // The collector dies: up == 0, SluiceDown pending (it fires after 2 minutes).
    c.kill9();
    let pending = prom.wait_for("SluiceDown pending", Duration::from_secs(10), |p| {
        p.alert_state("SluiceDown", None).as_deref() == Some("pending")
    });
    assert!(
        pending,
        "SluiceDown not pending: {}",
        prom.api("/api/v1/alerts")
    );

    let st = prom.stop().expect("the server was running");
    assert!(
        st.success(),
        "Prometheus exited with {st}: {}",
        prom.log_text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
