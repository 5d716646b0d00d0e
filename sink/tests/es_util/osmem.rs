//! osmem-server, an independent in-memory OpenSearch-compatible server (a Go binary shipped in
//! the `osmem-server` PyPI wheel; it reports itself as OpenSearch 3), started on a free
//! loopback port for one test. `OSMEM_SERVER_BIN` may name the binary. Starting fails the
//! test, never skips it, when the server cannot be found.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The osmem-server process; killed (by its own handle) when dropped.
pub struct Osmem {
    child: Child,
    pub url: String,
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn osmem_binary() -> String {
    if let Ok(b) = std::env::var("OSMEM_SERVER_BIN") {
        return b;
    }
    let cmd = "python3 -c 'import osmem_server; print(osmem_server.resolve_binary())'";
    let out = Command::new("python3")
        .args(["-c", "import osmem_server; print(osmem_server.resolve_binary())"])
        .output()
        .unwrap_or_else(|e| panic!("osmem-server not available: `{cmd}` could not run: {e}. Install it: pip install osmem-server"));
    assert!(
        out.status.success(),
        "osmem-server not available: `{cmd}` failed ({}):\n{}{}\nInstall it: pip install osmem-server",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn start_osmem() -> Osmem {
    let bin = osmem_binary();
    let pid = std::process::id().to_string();
    // Port 0: the server picks a free loopback port and prints {"url":...} on stdout. It also
    // exits when this process does (parent pid, and stdin closing).
    let mut child = Command::new(&bin)
        .args(["--addr", "127.0.0.1:0", "--no-ja", "--parent-pid", &pid])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting `{bin} --addr 127.0.0.1:0 --no-ja`: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("osmem-server stdout");
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("osmem-server did not announce itself ({e}): {line:?}"));
    let url = ready["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url in {line}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
    Osmem { child, url }
}
