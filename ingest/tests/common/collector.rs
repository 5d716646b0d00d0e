//! Starting and stopping a real `sluice run` for black-box tests: a temporary data directory
//! and config, free loopback ports, `/healthz` and `/metrics` over plain HTTP.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free UDP port on loopback (bound and released; good enough for tests).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp 0");
    s.local_addr().expect("addr").port()
}

/// A free TCP port on loopback.
pub fn free_tcp_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp 0");
    s.local_addr().expect("addr").port()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "sluice-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&p).expect("mkdir temp");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running collector.
pub struct Collector {
    pub child: Option<Child>,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub netflow_port: u16,
    pub ipfix_port: u16,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

/// Settings for [`Collector::start`].
#[derive(Clone, Debug)]
pub struct Options {
    pub workers: usize,
    pub recv_buffer: String,
    pub flush_interval: String,
    pub extra: String,
    /// Appended to the `[store]` table (e.g. `enabled = false`).
    pub store_extra: String,
    /// `allow` lists of the netflow and ipfix listeners (TOML array bodies, e.g.
    /// `"\"127.0.0.0/8\""`); empty strings leave them open.
    pub allow: (String, String),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 2,
            recv_buffer: "8MiB".into(),
            flush_interval: "200ms".into(),
            extra: String::new(),
            allow: (String::new(), String::new()),
            store_extra: String::new(),
        }
    }
}

impl Collector {
    /// Writes a config into `dir` (data in `dir/data`) and starts `sluice run`, waiting until
    /// `/healthz` answers.
    pub fn start(dir: &Path, opts: &Options) -> Collector {
        let netflow_port = free_udp_port();
        let ipfix_port = free_udp_port();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
            .parse()
            .expect("addr");
        let data_dir = dir.join("data");
        let config = dir.join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[[listener]]\nname = \"netflow\"\naddress = \"[::]:{netflow_port}\"\nprotocol = \"netflow\"\nallow = [{}]\n\n\
                 [[listener]]\nname = \"ipfix\"\naddress = \"[::]:{ipfix_port}\"\nprotocol = \"netflow\"\nallow = [{}]\n\n\
                 [receive]\nworkers = {}\nrecv_buffer = \"{}\"\n\n\
                 [store]\ndata_dir = \"{}\"\nflush_interval = \"{}\"\n{}\n\n\
                 [metrics]\naddress = \"{metrics}\"\n{}\n",
                opts.allow.0,
                opts.allow.1,
                opts.workers,
                opts.recv_buffer,
                data_dir.display(),
                opts.flush_interval,
                opts.store_extra,
                opts.extra
            ),
        )
        .expect("write config");
        let mut c = Collector {
            child: None,
            config,
            data_dir,
            netflow_port,
            ipfix_port,
            metrics,
            log: dir.join("sluice.log"),
        };
        c.spawn();
        c
    }

    /// (Re)starts the process with the same config and ports.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sluice run");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok((200, _))) = http_get(self.metrics, "/healthz").map(Ok::<_, ()>) {
                return;
            }
            if let Some(ch) = self.child.as_mut() {
                if let Ok(Some(st)) = ch.try_wait() {
                    panic!("sluice run exited at start-up ({st}): {}", self.log_text());
                }
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not become healthy: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Value of a metric line (exact name with labels, e.g.
    /// `sluice_receive_packets_total{listener="netflow"}`), summed if it appears with
    /// several label sets when `name` has no labels.
    pub fn metric(&self, name: &str) -> f64 {
        let (code, body) = http_get(self.metrics, "/metrics").expect("scrape");
        assert_eq!(code, 200);
        metric_value(&body, name)
    }

    /// SIGTERM and wait (clean shutdown); returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut ch = self.child.take()?;
        // kill(1) rather than libc: the tests need no unsafe code.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(ch.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = ch.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = ch.kill();
                panic!("sluice did not stop on SIGTERM: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
    }

    /// `sluice dump` of everything in the store (all time), as JSON documents.
    pub fn dump_all(&self, filter: Option<&str>) -> Vec<serde_json::Value> {
        self.dump_all_with(
            &[OsStr::new("--data-dir"), self.data_dir.as_os_str()],
            filter,
        )
    }

    /// `sluice dump` of everything with `args` choosing the store (`--data-dir DIR`, or
    /// `--config FILE` for the config's store and enrichment settings).
    pub fn dump_all_with(&self, args: &[&OsStr], filter: Option<&str>) -> Vec<serde_json::Value> {
        let mut a: Vec<&OsStr> = vec![OsStr::new("dump")];
        a.extend_from_slice(args);
        a.extend(ALL_TIME.iter().map(OsStr::new));
        if let Some(f) = filter {
            a.extend([OsStr::new("--where"), OsStr::new(f)]);
        }
        sluice_stdout(&a)
            .lines()
            .map(|l| serde_json::from_str(l).expect("dump line is JSON"))
            .collect()
    }
}

/// `--from`/`--to` covering every stored record.
pub const ALL_TIME: [&str; 4] = [
    "--from",
    "1971-01-01T00:00:00Z",
    "--to",
    "2200-01-01T00:00:00Z",
];

/// Runs `sluice ARGS`, checks that it succeeded, returns its standard output.
pub fn sluice_stdout(args: &[&OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice");
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sum of every sample of `name` (with or without labels as given) in a text exposition.
pub fn metric_value(body: &str, name: &str) -> f64 {
    let mut total = 0.0;
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((key, val)) = line.rsplit_once(' ') else {
            continue;
        };
        let matches = if name.contains('{') {
            key == name
        } else {
            key == name || key.starts_with(&format!("{name}{{"))
        };
        if matches {
            total += val.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// GET over HTTP/1.1 on loopback: (status, body), or None if it could not connect.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Sends every UDP payload of a capture to `port` on 127.0.0.1 from one socket; returns how
/// many were sent.
pub fn replay(pcap: &Path, port: u16) -> usize {
    let dgs = super::pcap::read_udp_datagrams(pcap).expect("read capture");
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    for d in &dgs {
        s.send_to(&d.payload, ("127.0.0.1", port)).expect("send");
    }
    dgs.len()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

impl Collector {
    /// `sluice dump` of everything in the store (all time), counting the documents as they
    /// stream by instead of keeping them, for stores too large for [`Collector::dump_all`].
    /// Every line must be a JSON object; one line in 1024 is parsed to be sure. Panics if the
    /// dump fails; returns the count and what dump printed on stderr.
    pub fn dump_count(&self) -> (usize, String) {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("dump")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--from")
            .arg("1971-01-01T00:00:00Z")
            .arg("--to")
            .arg("2200-01-01T00:00:00Z")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sluice dump");
        let mut stderr = child.stderr.take().expect("dump stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().expect("dump stdout");
        let mut n = 0usize;
        for line in std::io::BufReader::with_capacity(1 << 16, stdout).lines() {
            let line = line.expect("dump output is UTF-8");
            assert!(
                line.starts_with('{') && line.ends_with('}'),
                "dump line {} is not a JSON object: {line}",
                n + 1
            );
            if n & 1023 == 0 {
                let v: serde_json::Value = serde_json::from_str(&line).expect("dump line is JSON");
                assert!(v.is_object(), "dump line {} is not a JSON object", n + 1);
            }
            n += 1;
        }
        let status = child.wait().expect("wait for sluice dump");
        let err = err_reader.join().unwrap_or_default();
        assert!(status.success(), "dump failed ({status}): {err}");
        (n, err)
    }
}
