//! Templates shared between cores, and saved across restarts.
//!
//! SO_REUSEPORT hashes an exporter's 4-tuple to one socket, so normally one core sees all of an
//! exporter's datagrams and its private cache is enough. Two things break that: an exporter
//! that sends options data or templates from another source port (v9 scope ignores the port,
//! so those templates are the same scope yet may land on another core), and a change of the
//! socket set (restart, reload) that moves an exporter to another core.
//!
//! The choice: every core publishes what it learns into one [`SharedTemplates`] (a write lock
//! taken only when a template is new, changed, withdrawn or dropped: rare), and a core that
//! meets a data set whose template it lacks looks there before holding the data (a read lock
//! on a miss only: also rare). Such adoptions are counted as cross-core hits. The same registry
//! is what gets written to disk, so after a restart data decodes without waiting for the
//! exporter's next template refresh.
//!
//! Scope state needed to detect an exporter restart across our own restart (last sysUptime,
//! last sequence number) is saved with the templates.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;

use crate::decoder::ScopeKey;
use crate::template::Template;

/// What is remembered of a scope besides its templates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeMeta {
    /// Last v5/v9 sysUptime seen (ms).
    pub last_uptime: Option<u32>,
    /// Last header sequence number seen.
    pub last_sequence: Option<u32>,
}

#[derive(Default)]
struct Inner {
    templates: FxHashMap<(ScopeKey, u16), Arc<Template>>,
    meta: FxHashMap<ScopeKey, ScopeMeta>,
    generation: u64,
}

/// The registry. Cheap to clone the `Arc` around; see the module docs for the locking rules.
#[derive(Default)]
pub struct SharedTemplates {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for SharedTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTemplates")
            .field("templates", &self.len())
            .finish()
    }
}

const MAGIC: &[u8; 8] = b"SLTPL\0\0\x01";

fn poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    // A core that panicked while holding the lock cannot have left a half-written map entry
    // (inserts and removes are single calls), so the data is still usable.
    e.into_inner()
}

impl SharedTemplates {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(poisoned).templates.len()
    }

    /// Whether it holds no template.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes since creation; a saver compares it with what it last wrote.
    pub fn generation(&self) -> u64 {
        self.inner.read().unwrap_or_else(poisoned).generation
    }

    /// Publishes a template learned (or refreshed with a change) by a core.
    pub fn publish(&self, key: ScopeKey, t: &Arc<Template>) {
        let mut g = self.inner.write().unwrap_or_else(poisoned);
        g.templates.insert((key, t.id), Arc::clone(t));
        g.generation += 1;
    }

    /// A template another core learned, if any.
    pub fn get(&self, key: &ScopeKey, id: u16) -> Option<Arc<Template>> {
        self.inner
            .read()
            .unwrap_or_else(poisoned)
            .templates
            .get(&(*key, id))
            .cloned()
    }

    /// Removes one template, or (with `None`) every template of `options` kind.
    pub fn withdraw(&self, key: &ScopeKey, id: Option<u16>, options: bool) {
        let mut g = self.inner.write().unwrap_or_else(poisoned);
        match id {
            Some(id) => {
                g.templates.remove(&(*key, id));
            }
            None => g
                .templates
                .retain(|(k, _), t| k != key || t.options != options),
        }
        g.generation += 1;
    }

    /// Forgets a scope entirely (its exporter restarted).
    pub fn drop_scope(&self, key: &ScopeKey) {
        let mut g = self.inner.write().unwrap_or_else(poisoned);
        g.templates.retain(|(k, _), _| k != key);
        g.generation += 1;
    }

    /// Saved state of a scope.
    pub fn meta(&self, key: &ScopeKey) -> Option<ScopeMeta> {
        self.inner
            .read()
            .unwrap_or_else(poisoned)
            .meta
            .get(key)
            .copied()
    }

    /// Records a scope's state (called by cores now and then, and before saving).
    pub fn set_meta(&self, key: ScopeKey, meta: ScopeMeta) {
        let mut g = self.inner.write().unwrap_or_else(poisoned);
        if g.meta.get(&key) != Some(&meta) {
            g.meta.insert(key, meta);
        }
    }

    /// Writes the registry to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        {
            let g = self.inner.read().unwrap_or_else(poisoned);
            let mut keys: Vec<&ScopeKey> = g.meta.keys().collect();
            keys.sort();
            buf.extend_from_slice(&(keys.len() as u32).to_be_bytes());
            for k in keys {
                write_key(&mut buf, k);
                let m = g.meta[k];
                write_opt(&mut buf, m.last_uptime);
                write_opt(&mut buf, m.last_sequence);
            }
            let mut ts: Vec<(&(ScopeKey, u16), &Arc<Template>)> = g.templates.iter().collect();
            ts.sort_by_key(|(k, _)| **k);
            buf.extend_from_slice(&(ts.len() as u32).to_be_bytes());
            for ((k, _), t) in ts {
                write_key(&mut buf, k);
                t.write_definition(&mut buf);
            }
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Loads a registry saved by [`SharedTemplates::save`]. A missing file is an empty
    /// registry; a damaged one is an error (the caller logs it and starts empty: templates come
    /// back with the exporters' next refresh).
    pub fn load(path: &Path) -> io::Result<Arc<Self>> {
        let reg = Self::new();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(reg),
            Err(e) => return Err(e),
        };
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {what}", path.display()),
            )
        };
        if bytes.get(..8) != Some(MAGIC) {
            return Err(bad("not a template file"));
        }
        let mut pos = 8;
        let mut inner = Inner::default();
        let n = read_u32(&bytes, &mut pos).ok_or_else(|| bad("truncated"))?;
        for _ in 0..n {
            let k = read_key(&bytes, &mut pos).ok_or_else(|| bad("truncated"))?;
            let last_uptime = read_opt(&bytes, &mut pos).ok_or_else(|| bad("truncated"))?;
            let last_sequence = read_opt(&bytes, &mut pos).ok_or_else(|| bad("truncated"))?;
            inner.meta.insert(
                k,
                ScopeMeta {
                    last_uptime,
                    last_sequence,
                },
            );
        }
        let n = read_u32(&bytes, &mut pos).ok_or_else(|| bad("truncated"))?;
        for _ in 0..n {
            let k = read_key(&bytes, &mut pos).ok_or_else(|| bad("truncated"))?;
            let rest = bytes.get(pos..).ok_or_else(|| bad("truncated"))?;
            let (t, used) = Template::read_definition(rest).map_err(|e| bad(&e.to_string()))?;
            pos += used;
            inner.templates.insert((k, t.id), Arc::new(t));
        }
        *reg.inner.write().unwrap_or_else(poisoned) = inner;
        Ok(reg)
    }
}

fn write_key(buf: &mut Vec<u8>, k: &ScopeKey) {
    buf.extend_from_slice(&k.version.to_be_bytes());
    let v6 = match k.addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    buf.extend_from_slice(&v6.octets());
    buf.extend_from_slice(&k.port.to_be_bytes());
    buf.extend_from_slice(&k.domain.to_be_bytes());
}

fn read_key(b: &[u8], pos: &mut usize) -> Option<ScopeKey> {
    let s = b.get(*pos..*pos + 24)?;
    *pos += 24;
    let mut a = [0u8; 16];
    a.copy_from_slice(&s[2..18]);
    let v6 = Ipv6Addr::from(a);
    let addr = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    Some(ScopeKey {
        version: u16::from_be_bytes([s[0], s[1]]),
        addr,
        port: u16::from_be_bytes([s[18], s[19]]),
        domain: u32::from_be_bytes([s[20], s[21], s[22], s[23]]),
    })
}

fn write_opt(buf: &mut Vec<u8>, v: Option<u32>) {
    match v {
        Some(v) => {
            buf.push(1);
            buf.extend_from_slice(&v.to_be_bytes());
        }
        None => buf.extend_from_slice(&[0; 5]),
    }
}

fn read_opt(b: &[u8], pos: &mut usize) -> Option<Option<u32>> {
    let s = b.get(*pos..*pos + 5)?;
    *pos += 5;
    Some((s[0] == 1).then(|| u32::from_be_bytes([s[1], s[2], s[3], s[4]])))
}

fn read_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let s = b.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Dialect, FieldSpec};

    fn key(port: u16, v6: bool) -> ScopeKey {
        ScopeKey {
            version: 10,
            addr: if v6 {
                "2001:db8::1".parse().expect("addr")
            } else {
                "192.0.2.1".parse().expect("addr")
            },
            port,
            domain: 42,
        }
    }

    fn tpl(id: u16, n: u16) -> Arc<Template> {
        let specs: Vec<FieldSpec> = (1..=n)
            .map(|i| FieldSpec {
                id: i,
                pen: 0,
                len: 4,
            })
            .collect();
        Arc::new(Template::compile(id, Dialect::Ipfix, false, 0, &specs).expect("compiles"))
    }

    #[test]
    fn save_and_load_round_trip() {
        let reg = SharedTemplates::new();
        reg.publish(key(1, false), &tpl(300, 3));
        reg.publish(key(2, true), &tpl(301, 5));
        reg.set_meta(
            key(1, false),
            ScopeMeta {
                last_uptime: Some(77),
                last_sequence: None,
            },
        );
        let dir = std::env::temp_dir().join(format!("sluice-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("templates.bin");
        reg.save(&path).expect("save");
        let back = SharedTemplates::load(&path).expect("load");
        assert_eq!(back.len(), 2);
        assert_eq!(back.get(&key(2, true), 301).as_deref(), Some(&*tpl(301, 5)));
        assert_eq!(
            back.meta(&key(1, false)).and_then(|m| m.last_uptime),
            Some(77)
        );
        // Damage is an error, never a panic; a missing file is an empty registry.
        let bytes = std::fs::read(&path).expect("read");
        for cut in 0..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).expect("write");
            assert!(SharedTemplates::load(&path).is_err(), "cut at {cut}");
        }
        std::fs::remove_file(&path).expect("rm");
        assert!(SharedTemplates::load(&path)
            .expect("missing is empty")
            .is_empty());
        reg.drop_scope(&key(1, false));
        assert!(reg.get(&key(1, false), 300).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
