//! A minimal HTTP/1.1 server for `/metrics` and `/healthz`: one thread, one request per
//! connection, bounded request size and read timeout so a slow or hostile client cannot hold
//! it for long.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

/// Binds and serves until `stop` is set. Returns the bound address.
pub fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    healthy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let h = std::thread::Builder::new()
        .name("sluice-http".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => handle(s, &metrics, &healthy),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok((local, h))
}

fn handle(mut s: TcpStream, metrics: &Metrics, healthy: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let mut n = 0;
    // Read until the end of the request head (or the buffer is full).
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => return,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body): (&str, &str, Vec<u8>) = match (method, path) {
        ("GET", "/metrics") | ("HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET", "/debug/record-age") | ("HEAD", "/debug/record-age") => (
            "200 OK",
            "text/plain; charset=utf-8",
            metrics.render_record_ages(),
        ),
        ("GET", "/healthz") | ("HEAD", "/healthz") => {
            if healthy.load(Ordering::Relaxed) {
                ("200 OK", "text/plain", b"ok\n".to_vec())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    b"starting or stopping\n".to_vec(),
                )
            }
        }
        ("GET", _) | ("HEAD", _) => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n".to_vec(),
        ),
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        let _ = s.write_all(&body);
    }
}
