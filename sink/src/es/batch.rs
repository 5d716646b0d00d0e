//! Bulk batches: NDJSON `create` action and source line pairs in one buffer, with the offsets
//! of each document so that single items can be resent or dead-lettered.

use std::time::Instant;

/// One document's lines inside [`Batch::body`]: the action line is `body[action..source]`,
/// the source line `body[source..end]`; both end with `\n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub action: usize,
    pub source: usize,
    pub end: usize,
}

/// A `_bulk` request body in the making.
#[derive(Debug)]
pub(crate) struct Batch {
    pub body: Vec<u8>,
    pub spans: Vec<Span>,
    /// The spool segment it was read from; acknowledged once the batch is settled.
    pub origin: Option<u64>,
    /// Order of sealing (0 for batches read back from the spool).
    pub seq: u64,
    /// When the first document went in (for the flush timer).
    pub opened: Instant,
}

impl Batch {
    pub fn with_capacity(bytes: usize, docs: usize) -> Batch {
        Batch {
            body: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(docs),
            origin: None,
            seq: 0,
            opened: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn action(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.body[s.action..s.source]
    }

    /// The document, without its newline.
    pub fn source(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.body[s.source..s.end - 1]
    }

    /// Appends one document's action line, then its source line as `write` appends it to
    /// the body (one JSON object): documents are encoded in place, with no copy.
    pub fn push_with(&mut self, index: &str, id: &[u8; 16], write: impl FnOnce(&mut Vec<u8>)) {
        if self.spans.is_empty() {
            self.opened = Instant::now();
        }
        let action = self.body.len();
        self.body.extend_from_slice(b"{\"create\":{\"_index\":\"");
        // Index names are validated to need no JSON escaping.
        self.body.extend_from_slice(index.as_bytes());
        self.body.extend_from_slice(b"\",\"_id\":\"");
        push_hex(&mut self.body, id);
        self.body.extend_from_slice(b"\"}}\n");
        let source = self.body.len();
        write(&mut self.body);
        // A raw line break would split the NDJSON pair. Outside strings it is whitespace and
        // inside strings JSON forbids it, so a space keeps a valid document valid. Encoded
        // documents have no control bytes at all: one vectorised pass finds that out.
        if has_control_byte(&self.body[source..]) {
            for b in &mut self.body[source..] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
        }
        self.body.push(b'\n');
        self.spans.push(Span {
            action,
            source,
            end: self.body.len(),
        });
    }

    /// Removes the last document (both lines).
    pub fn pop(&mut self) {
        if let Some(s) = self.spans.pop() {
            self.body.truncate(s.action);
        }
    }

    /// Empties the batch, keeping its buffers, for reuse.
    pub fn reset(&mut self) {
        self.body.clear();
        self.spans.clear();
        self.origin = None;
        self.seq = 0;
        self.opened = Instant::now();
    }

    /// Copies document `i` of `other` (both lines) into this batch.
    pub fn push_from(&mut self, other: &Batch, i: usize) {
        let s = other.spans[i];
        let base = self.body.len();
        self.body.extend_from_slice(&other.body[s.action..s.end]);
        self.spans.push(Span {
            action: base,
            source: base + (s.source - s.action),
            end: base + (s.end - s.action),
        });
    }

    /// Rebuilds a batch from a body this module wrote (read back from the spool). `None` if
    /// the lines do not pair up.
    pub fn from_body(body: Vec<u8>) -> Option<Batch> {
        let mut spans = Vec::new();
        let mut pos = 0;
        while pos < body.len() {
            let a_end = pos + body[pos..].iter().position(|&b| b == b'\n')? + 1;
            let s_end = a_end + body.get(a_end..)?.iter().position(|&b| b == b'\n')? + 1;
            spans.push(Span {
                action: pos,
                source: a_end,
                end: s_end,
            });
            pos = s_end;
        }
        Some(Batch {
            body,
            spans,
            origin: None,
            seq: 0,
            opened: Instant::now(),
        })
    }

    /// The `_id` of document `i`, from its action line.
    pub fn id(&self, i: usize) -> &str {
        let a = self.action(i);
        let key = b"\"_id\":\"";
        let Some(p) = a.windows(key.len()).position(|w| w == key) else {
            return "";
        };
        let rest = &a[p + key.len()..];
        let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// The `_index` of document `i`, from its action line.
    pub fn index(&self, i: usize) -> &str {
        let a = self.action(i);
        let key = b"\"_index\":\"";
        let Some(p) = a.windows(key.len()).position(|w| w == key) else {
            return "";
        };
        let rest = &a[p + key.len()..];
        let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }
}

/// Whether any byte is below 0x20 (line breaks among them), a chunk at a time so that the
/// compiler can use vector compares.
fn has_control_byte(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(32);
    for c in &mut chunks {
        if c.iter().fold(0xffu8, |m, &x| m.min(x)) < 0x20 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&x| x < 0x20)
}

/// Lower-case hex of `bytes`, appended.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (pair, b) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
    out.extend_from_slice(&text);
}

/// Hex string of a document id: its `_id`.
pub fn id_hex(id: &[u8; 16]) -> String {
    let mut v = Vec::with_capacity(32);
    push_hex(&mut v, id);
    String::from_utf8(v).unwrap_or_default()
}

/// Formats index names from a pattern and a timestamp, caching the last name (documents of
/// one batch nearly always share a day).
#[derive(Debug, Clone)]
pub(crate) struct IndexNamer {
    pattern: String,
    /// Seconds per distinct name: 3600 with `%H`, else 86400.
    period: i64,
    cached: Option<(i64, String)>,
}

impl IndexNamer {
    pub fn new(pattern: &str) -> IndexNamer {
        let period = if pattern.contains("%H") { 3600 } else { 86_400 };
        IndexNamer {
            pattern: pattern.to_owned(),
            period,
            cached: None,
        }
    }

    /// A fixed name (data stream): every timestamp maps to it.
    pub fn fixed(name: &str) -> IndexNamer {
        IndexNamer {
            pattern: name.replace('%', "%%"),
            period: i64::MAX,
            cached: Some((0, name.to_owned())),
        }
    }

    pub fn name(&mut self, ts_ns: i64) -> &str {
        let slot = if self.period == i64::MAX {
            0
        } else {
            ts_ns.div_euclid(1_000_000_000).div_euclid(self.period)
        };
        let hit = matches!(&self.cached, Some((s, _)) if *s == slot);
        if !hit {
            let name = self.name_for(ts_ns);
            self.cached = Some((slot, name));
        }
        self.cached.as_ref().map_or("", |(_, n)| n.as_str())
    }

    /// The name for `ts_ns` (ns since the epoch, UTC).
    pub fn name_for(&self, ts_ns: i64) -> String {
        let mut stamp = Vec::with_capacity(24);
        crate::timefmt::write_rfc3339(&mut stamp, ts_ns);
        // YYYY-MM-DDTHH:MM:SS.sssZ
        let part = |r: std::ops::Range<usize>| std::str::from_utf8(&stamp[r]).unwrap_or("00");
        let mut out = String::with_capacity(self.pattern.len() + 8);
        let mut chars = self.pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('Y') => out.push_str(part(0..4)),
                Some('m') => out.push_str(part(5..7)),
                Some('d') => out.push_str(part(8..10)),
                Some('H') => out.push_str(part(11..13)),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lines() {
        let mut n = IndexNamer::new("sluice-flows-%Y.%m.%d");
        // 2026-03-04T23:59:59Z and one second later.
        let t = 1_772_668_799_000_000_000;
        assert_eq!(n.name(t), "sluice-flows-2026.03.04");
        assert_eq!(n.name(t + 1_000_000_000), "sluice-flows-2026.03.05");
        assert_eq!(
            IndexNamer::new("f-%Y%m%d%H-%%").name_for(t),
            "f-2026030423-%"
        );
        let mut b = Batch::with_capacity(0, 0);
        let id = [0xab; 16];
        b.push_with("i", &id, |body| body.extend_from_slice(b"{\"a\":\n1}"));
        assert_eq!(
            b.action(0),
            br#"{"create":{"_index":"i","_id":"abababababababababababababababab"}}
"#
        );
        assert_eq!(b.source(0), b"{\"a\": 1}");
        assert_eq!(b.id(0), id_hex(&id));
        assert_eq!(b.index(0), "i");
        let c = Batch::from_body(b.body.clone()).expect("pairs");
        assert_eq!(c.len(), 1);
        assert_eq!(c.source(0), b.source(0));
        assert!(Batch::from_body(b"{}\n".to_vec()).is_none());
        // A line break past the first 32-byte chunk is found as well.
        let long = format!("{{\"k\":\"{}\",\r\n\"z\":1}}", "x".repeat(40));
        b.push_with("i", &id, |body| body.extend_from_slice(long.as_bytes()));
        assert_eq!(
            b.source(1),
            format!("{{\"k\":\"{}\",  \"z\":1}}", "x".repeat(40)).as_bytes()
        );
        assert!(!has_control_byte(&[b' '; 100]));
        assert!(has_control_byte(&[[b' '; 64].as_slice(), b"\t"].concat()));
    }
}
