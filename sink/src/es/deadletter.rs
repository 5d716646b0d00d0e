//! The dead-letter file: documents the cluster rejected for good, one NDJSON line each:
//!
//! ```json
//! {"@timestamp":"2026-11-23T10:00:00.000Z","_index":"sluice-flows-2026.11.23","_id":"<hex>",
//!  "status":400,"error":{"type":"document_parsing_exception","reason":"..."},"document":{...}}
//! ```
//!
//! `@timestamp` is when the document was rejected; `error` is the item's error object as the
//! cluster sent it; `document` is the source as sent (or `document_raw`, a string, when it is
//! not valid JSON). Lines are appended; the file is never rotated by the sink.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;

use super::error::EsError;

/// One rejected document.
#[derive(Debug)]
pub(crate) struct Rejected<'a> {
    pub index: &'a str,
    pub id: &'a str,
    pub status: u16,
    pub error: &'a serde_json::Value,
    pub source: &'a [u8],
}

#[derive(Debug)]
pub(crate) struct DeadLetter {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
}

impl DeadLetter {
    pub fn new(path: PathBuf) -> DeadLetter {
        DeadLetter {
            path,
            file: Mutex::new(None),
        }
    }

    /// Appends the lines and flushes; the number written.
    pub fn write(&self, items: &[Rejected<'_>]) -> Result<usize, EsError> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut buf = Vec::with_capacity(items.iter().map(|r| r.source.len() + 256).sum());
        let mut now = Vec::with_capacity(24);
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        crate::timefmt::write_rfc3339(&mut now, now_ns);
        for r in items {
            buf.extend_from_slice(b"{\"@timestamp\":\"");
            buf.extend_from_slice(&now);
            buf.extend_from_slice(b"\",\"_index\":");
            crate::ecs::write_str(&mut buf, r.index);
            buf.extend_from_slice(b",\"_id\":");
            crate::ecs::write_str(&mut buf, r.id);
            buf.extend_from_slice(b",\"status\":");
            buf.extend_from_slice(itoa::Buffer::new().format(r.status).as_bytes());
            buf.extend_from_slice(b",\"error\":");
            if serde_json::to_writer(&mut buf, r.error).is_err() {
                buf.extend_from_slice(b"null");
            }
            if serde_json::from_slice::<serde::de::IgnoredAny>(r.source).is_ok() {
                buf.extend_from_slice(b",\"document\":");
                buf.extend_from_slice(r.source);
            } else {
                buf.extend_from_slice(b",\"document_raw\":");
                crate::ecs::write_str(&mut buf, &String::from_utf8_lossy(r.source));
            }
            buf.extend_from_slice(b"}\n");
        }
        let mut guard = self
            .file
            .lock()
            .map_err(|_| EsError::io("dead-letter lock", std::io::Error::other("poisoned")))?;
        if guard.is_none() {
            if let Some(parent) = self.path.parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| EsError::io(format!("creating {}", parent.display()), e))?;
                }
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| EsError::io(format!("opening {}", self.path.display()), e))?;
            *guard = Some(BufWriter::new(f));
        }
        let Some(w) = guard.as_mut() else {
            return Ok(0);
        };
        w.write_all(&buf)
            .and_then(|()| w.flush())
            .map_err(|e| EsError::io(format!("writing {}", self.path.display()), e))?;
        Ok(items.len())
    }
}
