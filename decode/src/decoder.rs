//! The stateful NetFlow v5/v9 and IPFIX decoder: one per core, owning that core's template
//! cache.
//!
//! Template scope follows the RFCs: NetFlow v9 templates belong to the exporter address and
//! source id (RFC 3954 §5.1), IPFIX templates to the transport session (exporter address and
//! port, on one collector socket) and observation domain (RFC 7011 §8). [`ScopeKey`] is that
//! scope as a type.
//!
//! Data that arrives before its template is held, bounded per scope, and decoded when the
//! template arrives (exporters refresh templates only every few minutes, and after a collector
//! restart the first data sets would otherwise be lost).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::DecodeError;
use crate::exporter::{
    uptime_restarted, SeqTracker, REORDER_WINDOW_PACKETS, REORDER_WINDOW_RECORDS,
};
use crate::record::{be_uint, spans_of, ExportHeader, Record, MAX_FIELDS};
use crate::shared::{ScopeMeta, SharedTemplates};
use crate::template::{v5_template, Dialect, FieldSpec, Slot, Template};

/// A datagram handed to the decoder.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// Exporter address and source port.
    pub src: SocketAddr,
    /// Receive (or capture) time, ns since the Unix epoch.
    pub receive_time_ns: i64,
    /// UDP payload.
    pub payload: &'a [u8],
    /// Opaque value carried to the records' headers (the pcap frame number in `sluice decode`).
    pub tag: u64,
}

/// Template scope (RFC 3954 §5.1, RFC 7011 §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey {
    /// NetFlow version of the scope (9 or 10).
    pub version: u16,
    /// Exporter address.
    pub addr: IpAddr,
    /// Exporter source port for IPFIX; 0 for v9, whose scope ignores the port.
    pub port: u16,
    /// v9 source id or IPFIX observation domain id.
    pub domain: u32,
}

/// Per-scope bounds. They keep a hostile or broken exporter from exhausting memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Scopes (exporter x domain) tracked at once; new ones beyond are refused and counted.
    pub max_scopes: usize,
    /// Templates per scope.
    pub max_templates: usize,
    /// Fields per template.
    pub max_fields: usize,
    /// Bytes of data sets held per scope while waiting for their template.
    pub max_held_bytes: usize,
    /// Data sets held per scope.
    pub max_held_sets: usize,
    /// Entries in each options-derived table (samplers, interfaces) per scope.
    pub max_table_entries: usize,
    /// Fields of all cached templates together, over all scopes of this decoder: the bound
    /// on template memory whatever the mix of exporters and templates (a compiled field is
    /// about 100 bytes).
    pub max_total_template_fields: usize,
    /// Templates over all scopes of this decoder (each costs about 600 bytes besides its
    /// fields).
    pub max_total_templates: usize,
    /// Bytes held for missing templates over all scopes of this decoder; each held set is
    /// charged its length plus [`HELD_OVERHEAD`].
    pub max_total_held_bytes: usize,
    /// A template not refreshed for this long (ns, by receive time) is dropped; data for it is
    /// held until the exporter sends it again. `None`: templates never expire (`sluice
    /// decode`, whose captures may stitch together packets taken days apart).
    pub template_timeout_ns: Option<i64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_scopes: 16_384,
            max_templates: 1_024,
            max_fields: MAX_FIELDS,
            max_held_bytes: 256 * 1024,
            max_held_sets: 256,
            max_table_entries: 4_096,
            max_total_template_fields: 250_000,
            max_total_templates: 50_000,
            max_total_held_bytes: 32 << 20,
            // Exporters refresh templates every few minutes (RFC 7011 §8.4 leaves the period
            // to them; Cisco's default is 30 min for v9): two hours means "gone".
            template_timeout_ns: Some(2 * 3600 * 1_000_000_000),
        }
    }
}

/// Interface name and description learned from options data (IE 82/83).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// interfaceName.
    pub name: Option<Box<str>>,
    /// interfaceDescription.
    pub description: Option<Box<str>>,
}

/// What options data told about one scope; read by enrichment.
#[derive(Clone, Debug, Default)]
pub struct ScopeTables {
    /// systemInitTimeMilliseconds (IE 160).
    pub system_init_ms: Option<i64>,
    /// Sampler/selector id -> sampling interval (one in N packets). Key `u64::MAX` holds an
    /// interval announced without a sampler id.
    pub samplers: FxHashMap<u64, u32>,
    /// Interface index -> names.
    pub interfaces: FxHashMap<u32, InterfaceInfo>,
}

/// Sets an options-data text (`None`: the template has no such field) unless it is already
/// that text. Invalid UTF-8 is kept lossily.
fn set_text(slot: &mut Option<Box<str>>, new: Option<&[u8]>) {
    let same = match (slot.as_deref(), new) {
        (Some(old), Some(b)) => old.as_bytes() == b,
        (None, None) => true,
        _ => false,
    };
    if !same {
        *slot = new.map(|b| Box::from(String::from_utf8_lossy(b).as_ref()));
    }
}

/// What holding one data set costs besides its bytes (its header copy and queue slot), so
/// that many tiny held sets are bounded as well as a few large ones.
pub const HELD_OVERHEAD: usize = 96;

struct Held {
    template_id: u16,
    header: ExportHeader,
    body: Box<[u8]>,
}

struct Entry {
    t: Arc<Template>,
    /// Receive time of the last announcement, for expiry.
    refreshed_ns: i64,
}

#[derive(Default)]
struct Scope {
    key: Option<ScopeKey>,
    templates: FxHashMap<u16, Entry>,
    held: VecDeque<Held>,
    held_bytes: usize,
    tables: ScopeTables,
    seq: SeqTracker,
    last_uptime: Option<u32>,
    last_sequence: Option<u32>,
    restarts: u64,
}

impl Scope {
    /// Forgets what a restarted exporter told us before.
    fn reset(&mut self) {
        let restarts = self.restarts + 1;
        *self = Scope {
            key: self.key,
            restarts,
            ..Scope::default()
        };
    }
}

/// Per-exporter-scope figures for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExporterStatus {
    /// Sequence units (v9: packets; v5 and IPFIX: records) the exporter sent that never came.
    pub missing: u64,
    /// Sequence units received.
    pub received: u64,
    /// Times the exporter was seen to restart.
    pub restarts: u64,
    /// Templates cached.
    pub templates: usize,
}

/// Counters of one decoder. `errors` counts by [`DecodeError::reason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Datagrams seen.
    pub datagrams: u64,
    /// Flow records emitted.
    pub flow_records: u64,
    /// Options records emitted.
    pub options_records: u64,
    /// Template and options template records learned (new or changed).
    pub templates_learned: u64,
    /// Templates withdrawn (RFC 7011 §8.1).
    pub templates_withdrawn: u64,
    /// Data sets held for a template.
    pub sets_held: u64,
    /// Records decoded from held sets once their template came.
    pub held_records_decoded: u64,
    /// v9 datagrams whose header count (records of all kinds, RFC 3954 §5.1) disagrees with
    /// what they hold. Many exporters get it wrong, so it is noted, not an error; the sets are
    /// decoded by their lengths.
    pub v9_count_mismatch: u64,
    /// Exporter restarts detected (templates of that scope dropped).
    pub exporter_restarts: u64,
    /// Templates dropped for not being refreshed in time.
    pub templates_expired: u64,
    /// Templates adopted from another core (or from the saved set) on a miss.
    pub cross_core_hits: u64,
    /// Templates dropped to make room when the total template budget was full.
    pub templates_evicted: u64,
    /// Errors by reason.
    pub errors: FxHashMap<&'static str, u64>,
}

impl DecodeStats {
    fn error(&mut self, e: DecodeError) {
        *self.errors.entry(e.reason()).or_default() += 1;
    }

    /// Sum of all error counts.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The decoder. Not shared between threads: each core owns one.
#[derive(Default)]
pub struct Decoder {
    /// Scopes by index; `index` maps keys to positions and `last` remembers the most recent
    /// lookup, since consecutive datagrams mostly come from the same exporter. Scopes are never
    /// removed (a restarted exporter's scope is reset in place), so indexes stay valid.
    scopes: Vec<Scope>,
    index: FxHashMap<ScopeKey, u32>,
    last: Option<(ScopeKey, u32)>,
    limits: Limits,
    stats: DecodeStats,
    spans: Vec<(u32, u32)>,
    specs: Vec<FieldSpec>,
    /// Template and data records seen in the current datagram (for the v9 count check).
    records_in_datagram: u64,
    /// Fields of all cached templates (see `Limits::max_total_template_fields`).
    total_fields: usize,
    /// Templates cached over all scopes.
    total_templates: usize,
    /// State of the eviction's random choice.
    evict_rng: u64,
    /// Bytes held over all scopes.
    total_held: usize,
    /// Data records (flow and options) decoded from the current datagram's own sets.
    data_records_in_datagram: u64,
    shared: Option<Arc<SharedTemplates>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("scopes", &self.scopes.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// A decoder that publishes templates to, and adopts them from, a registry shared with the
    /// other cores (see [`crate::shared`]).
    pub fn with_shared(limits: Limits, shared: Arc<SharedTemplates>) -> Self {
        Decoder {
            limits,
            shared: Some(shared),
            ..Decoder::default()
        }
    }

    /// Per-scope figures (loss, restarts, templates).
    pub fn exporters(&self) -> impl Iterator<Item = (&ScopeKey, ExporterStatus)> + '_ {
        self.scopes.iter().filter_map(|s| {
            Some((
                s.key.as_ref()?,
                ExporterStatus {
                    missing: s.seq.missing(),
                    received: s.seq.received(),
                    restarts: s.restarts,
                    templates: s.templates.len(),
                },
            ))
        })
    }

    /// Copies each scope's restart-detection state into the shared registry so that it is
    /// saved with the templates. Call now and then (it takes the registry's write lock).
    pub fn publish_meta(&self) {
        if let Some(sh) = &self.shared {
            for s in &self.scopes {
                let Some(k) = s.key else { continue };
                sh.set_meta(
                    k,
                    ScopeMeta {
                        last_uptime: s.last_uptime,
                        last_sequence: s.last_sequence,
                    },
                );
            }
        }
    }

    /// Drops templates not refreshed within the timeout, as of `now_ns`. Returns how many.
    pub fn expire(&mut self, now_ns: i64) -> usize {
        let Some(timeout) = self.limits.template_timeout_ns else {
            return 0;
        };
        let mut n = 0;
        for s in self.scopes.iter_mut() {
            let Some(k) = &s.key else { continue };
            s.templates.retain(|id, e| {
                let keep = now_ns.saturating_sub(e.refreshed_ns) <= timeout;
                if !keep {
                    n += 1;
                    if let Some(sh) = &self.shared {
                        sh.withdraw(k, Some(*id), e.t.options);
                    }
                }
                keep
            });
        }
        self.stats.templates_expired += n as u64;
        self.recount_fields();
        n
    }

    /// Makes room in the template budget by dropping all templates of randomly chosen other
    /// scopes. Random choice is O(1) and fair in the way that matters: an attacker spreading a
    /// template bomb over thousands of exporter scopes holds most scopes, so most evictions
    /// hit its templates; a real exporter that loses its templates sends them again with its
    /// next refresh, and its data is held until then.
    fn evict_for(&mut self, keep: ScopeKey, fits: &dyn Fn(&Decoder) -> bool) {
        for _ in 0..256 {
            if fits(self) || self.scopes.len() < 2 {
                return;
            }
            // xorshift64: cheap, and nothing here needs unpredictability.
            let mut x = self.evict_rng.max(1);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.evict_rng = x;
            let i = (x % self.scopes.len() as u64) as usize;
            let scope = &mut self.scopes[i];
            if scope.key == Some(keep) || scope.templates.is_empty() {
                continue;
            }
            let fields: usize = scope.templates.values().map(|e| e.t.fields.len()).sum();
            let n = scope.templates.len();
            scope.templates.clear();
            self.total_fields -= fields;
            self.total_templates -= n;
            self.stats.templates_evicted += n as u64;
            if let (Some(sh), Some(k)) = (&self.shared, scope.key) {
                sh.drop_scope(&k);
            }
        }
    }

    /// Recomputes the template field total after templates were removed (rare events:
    /// withdrawal, expiry, exporter restart).
    fn recount_fields(&mut self) {
        self.total_fields = self
            .scopes
            .iter()
            .map(|s| {
                s.templates
                    .values()
                    .map(|e| e.t.fields.len())
                    .sum::<usize>()
            })
            .sum();
        self.total_templates = self.scopes.iter().map(|s| s.templates.len()).sum();
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Options-derived tables of a scope.
    pub fn tables(&self, key: &ScopeKey) -> Option<&ScopeTables> {
        self.index
            .get(key)
            .and_then(|&i| self.scopes.get(i as usize))
            .map(|s| &s.tables)
    }

    /// Number of templates cached over all scopes.
    pub fn template_count(&self) -> usize {
        self.scopes.iter().map(|s| s.templates.len()).sum()
    }

    /// Fields of all cached templates (bounded by `Limits::max_total_template_fields`).
    pub fn template_fields(&self) -> usize {
        self.total_fields
    }

    /// Bytes held for missing templates (bounded by `Limits::max_total_held_bytes`).
    pub fn held_bytes(&self) -> usize {
        self.total_held
    }

    /// Number of exporter scopes tracked.
    pub fn scope_count(&self) -> usize {
        self.scopes.len()
    }

    /// Data sets still held for a template (never decoded so far).
    pub fn held_sets(&self) -> usize {
        self.scopes.iter().map(|s| s.held.len()).sum()
    }

    /// Gives up on everything still held (end of a capture, shutdown): each held set is
    /// counted as a `template_missing` error. Returns how many sets were dropped.
    pub fn finish(&mut self) -> u64 {
        let mut n = 0;
        for s in self.scopes.iter_mut() {
            n += s.held.len() as u64;
            s.held.clear();
            s.held_bytes = 0;
            self.total_held = 0;
        }
        if n > 0 {
            *self
                .stats
                .errors
                .entry(DecodeError::TemplateMissing.reason())
                .or_default() += n;
        }
        n
    }

    /// Decodes one datagram, calling `emit` for every record (flow and options records; see
    /// `Template::options`). Errors inside the datagram are counted and decoding goes on with
    /// the next set; an error that makes the whole datagram unusable is also returned.
    pub fn decode<F: FnMut(&Record<'_>)>(
        &mut self,
        dg: &Datagram<'_>,
        mut emit: F,
    ) -> Result<(), DecodeError> {
        self.decode_with_tables(dg, |r, _| emit(r))
    }

    /// Like [`Decoder::decode`], and also hands each record the options-derived tables of its
    /// scope (samplers, interface names), which enrichment needs while the decoder is busy.
    pub fn decode_with_tables<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        dg: &Datagram<'_>,
        mut emit: F,
    ) -> Result<(), DecodeError> {
        self.stats.datagrams += 1;
        let r = match u16_at(dg.payload, 0) {
            Some(5) => self.decode_v5(dg, &mut emit),
            Some(9) => self.decode_v9(dg, &mut emit),
            Some(10) => self.decode_ipfix(dg, &mut emit),
            Some(v) => Err(DecodeError::UnsupportedVersion(v)),
            None => Err(DecodeError::Truncated("header")),
        };
        if let Err(e) = r {
            self.stats.error(e);
        }
        r
    }

    fn decode_v5<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        dg: &Datagram<'_>,
        emit: &mut F,
    ) -> Result<(), DecodeError> {
        let p = dg.payload;
        if p.len() < 24 {
            return Err(DecodeError::Truncated("v5 header"));
        }
        let count = usize::from(u16_at(p, 2).unwrap_or(0));
        // The v5 format allows at most 30 records per datagram; a count above that (or above
        // what the datagram holds) means the datagram is not v5 at all.
        if count > 30 {
            return Err(DecodeError::InvalidLength("v5 count"));
        }
        if p.len() < 24 + 48 * count {
            return Err(DecodeError::Truncated("v5 records"));
        }
        let secs = i64::from(u32_at(p, 8).unwrap_or(0));
        let nsecs = i64::from(u32_at(p, 12).unwrap_or(0));
        let header = ExportHeader {
            version: 5,
            exporter: dg.src,
            source_id: u32::from(u16_at(p, 20).unwrap_or(0)),
            export_time_ns: secs * 1_000_000_000 + nsecs.min(999_999_999),
            sys_uptime_ms: u32_at(p, 4),
            sequence: u32_at(p, 16).unwrap_or(0),
            receive_time_ns: dg.receive_time_ns,
            sampling_interval: u16_at(p, 22).unwrap_or(0),
            tag: dg.tag,
        };
        let key = ScopeKey {
            version: 5,
            addr: dg.src.ip(),
            port: 0,
            domain: header.source_id,
        };
        self.header_checks(key, &header, REORDER_WINDOW_RECORDS)?;
        if let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) {
            scope
                .seq
                .observe(header.sequence, count as u64, REORDER_WINDOW_RECORDS);
        }
        let t = v5_template();
        for i in 0..count {
            let data = &p[24 + 48 * i..24 + 48 * (i + 1)];
            emit(
                &Record {
                    header: &header,
                    template: t,
                    data,
                    spans: &t.fixed_spans,
                    system_init_ms: None,
                },
                None,
            );
        }
        self.stats.flow_records += count as u64;
        Ok(())
    }

    fn decode_v9<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        dg: &Datagram<'_>,
        emit: &mut F,
    ) -> Result<(), DecodeError> {
        let p = dg.payload;
        if p.len() < 20 {
            return Err(DecodeError::Truncated("v9 header"));
        }
        let header = ExportHeader {
            version: 9,
            exporter: dg.src,
            source_id: u32_at(p, 16).unwrap_or(0),
            export_time_ns: i64::from(u32_at(p, 8).unwrap_or(0)) * 1_000_000_000,
            sys_uptime_ms: u32_at(p, 4),
            sequence: u32_at(p, 12).unwrap_or(0),
            receive_time_ns: dg.receive_time_ns,
            sampling_interval: 0,
            tag: dg.tag,
        };
        let key = ScopeKey {
            version: 9,
            addr: dg.src.ip(),
            port: 0,
            domain: header.source_id,
        };
        self.header_checks(key, &header, REORDER_WINDOW_PACKETS)?;
        if let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) {
            scope
                .seq
                .observe(header.sequence, 1, REORDER_WINDOW_PACKETS);
        }
        self.records_in_datagram = 0;
        let r = self.walk_sets(key, &header, &p[20..], Dialect::V9, emit);
        if u64::from(u16_at(p, 2).unwrap_or(0)) != self.records_in_datagram {
            self.stats.v9_count_mismatch += 1;
        }
        r
    }

    fn decode_ipfix<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        dg: &Datagram<'_>,
        emit: &mut F,
    ) -> Result<(), DecodeError> {
        let p = dg.payload;
        if p.len() < 16 {
            return Err(DecodeError::Truncated("ipfix header"));
        }
        let len = usize::from(u16_at(p, 2).unwrap_or(0));
        if len < 16 {
            return Err(DecodeError::InvalidLength("ipfix message length"));
        }
        if len > p.len() {
            return Err(DecodeError::Truncated("ipfix message"));
        }
        let header = ExportHeader {
            version: 10,
            exporter: dg.src,
            source_id: u32_at(p, 12).unwrap_or(0),
            export_time_ns: i64::from(u32_at(p, 4).unwrap_or(0)) * 1_000_000_000,
            sys_uptime_ms: None,
            sequence: u32_at(p, 8).unwrap_or(0),
            receive_time_ns: dg.receive_time_ns,
            sampling_interval: 0,
            tag: dg.tag,
        };
        let key = ScopeKey {
            version: 10,
            addr: dg.src.ip(),
            port: dg.src.port(),
            domain: header.source_id,
        };
        self.header_checks(key, &header, REORDER_WINDOW_RECORDS)?;
        self.data_records_in_datagram = 0;
        let r = self.walk_sets(key, &header, &p[16..len], Dialect::Ipfix, emit);
        let units = self.data_records_in_datagram;
        if let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) {
            scope
                .seq
                .observe(header.sequence, units, REORDER_WINDOW_RECORDS);
        }
        r
    }

    /// Finds (or creates) the scope and detects an exporter restart from the header: sysUptime
    /// going back (v5/v9), or the sequence number stepping back further than any reordering.
    /// A restarted exporter's templates, held data and tables are dropped rather than
    /// misapplied to what it sends now.
    fn header_checks(
        &mut self,
        key: ScopeKey,
        header: &ExportHeader,
        window: u64,
    ) -> Result<(), DecodeError> {
        let fresh = self.find(&key).is_none();
        let meta = if fresh {
            self.shared.as_ref().and_then(|s| s.meta(&key))
        } else {
            None
        };
        let i = match self.find(&key) {
            Some(i) => i,
            None => {
                self.scope(key)?;
                self.find(&key).ok_or(DecodeError::Limit("scopes"))?
            }
        };
        let scope = &mut self.scopes[i];
        if let Some(m) = meta {
            scope.last_uptime = m.last_uptime;
            scope.last_sequence = m.last_sequence;
        }
        let uptime_back = match (scope.last_uptime, header.sys_uptime_ms) {
            (Some(last), Some(now)) => uptime_restarted(last, now),
            _ => false,
        };
        let seq_back = scope.last_sequence.is_some_and(|last| {
            let back = i64::from(last.wrapping_sub(header.sequence) as i32);
            back > window as i64
        });
        if uptime_back || seq_back {
            let held = scope.held.len() as u64;
            self.total_held -= scope.held_bytes + scope.held.len() * HELD_OVERHEAD;
            scope.reset();
            self.stats.exporter_restarts += 1;
            if held > 0 {
                *self
                    .stats
                    .errors
                    .entry(DecodeError::TemplateMissing.reason())
                    .or_default() += held;
            }
            if let Some(sh) = &self.shared {
                sh.drop_scope(&key);
            }
            self.recount_fields();
        }
        let scope = &mut self.scopes[i];
        scope.last_uptime = header.sys_uptime_ms;
        scope.last_sequence = Some(header.sequence);
        Ok(())
    }

    /// Position of a known scope.
    #[inline]
    fn find(&mut self, key: &ScopeKey) -> Option<usize> {
        if let Some((k, i)) = &self.last {
            if k == key {
                return Some(*i as usize);
            }
        }
        let i = *self.index.get(key)?;
        self.last = Some((*key, i));
        Some(i as usize)
    }

    /// The scope, created if new (bounded by `max_scopes`).
    fn scope(&mut self, key: ScopeKey) -> Result<&mut Scope, DecodeError> {
        let i = match self.find(&key) {
            Some(i) => i,
            None => {
                if self.scopes.len() >= self.limits.max_scopes {
                    return Err(DecodeError::Limit("scopes"));
                }
                let i = self.scopes.len();
                self.scopes.push(Scope {
                    key: Some(key),
                    ..Scope::default()
                });
                self.index.insert(key, i as u32);
                i
            }
        };
        Ok(&mut self.scopes[i])
    }

    /// Walks the sets (v9 "flowsets") of one message body.
    fn walk_sets<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        key: ScopeKey,
        header: &ExportHeader,
        mut body: &[u8],
        dialect: Dialect,
        emit: &mut F,
    ) -> Result<(), DecodeError> {
        self.scope(key)?;
        let (tpl_set, opt_set) = match dialect {
            Dialect::Ipfix => (2u16, 3u16),
            _ => (0, 1),
        };
        while body.len() >= 4 {
            let id = u16_at(body, 0).unwrap_or(0);
            let len = usize::from(u16_at(body, 2).unwrap_or(0));
            if len < 4 {
                // Some exporters (Cisco ACI) pad the datagram with zeros after the last set.
                if body.iter().all(|&b| b == 0) {
                    return Ok(());
                }
                self.stats.error(DecodeError::InvalidLength("set length"));
                return Err(DecodeError::InvalidLength("set length"));
            }
            if len > body.len() {
                self.stats.error(DecodeError::Truncated("set"));
                return Err(DecodeError::Truncated("set"));
            }
            let set = &body[4..len];
            body = &body[len..];
            if id == tpl_set || id == opt_set {
                let now = header.receive_time_ns;
                self.template_set(key, set, dialect, id == opt_set, now, emit);
            } else if id >= 256 {
                self.data_set(key, header, id, set, emit);
            } else {
                // Ids 4..255 (IPFIX) and 2..255 (v9) are reserved: skip the set, keep going.
                self.stats
                    .error(DecodeError::InvalidTemplate("reserved set id"));
            }
        }
        Ok(())
    }

    fn template_set<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        key: ScopeKey,
        mut set: &[u8],
        dialect: Dialect,
        options: bool,
        now_ns: i64,
        emit: &mut F,
    ) {
        let ipfix = dialect == Dialect::Ipfix;
        loop {
            // Anything shorter than a template header is padding (RFC 7011 §3.3.1).
            if set.len() < 4 || set.iter().all(|&b| b == 0) {
                return;
            }
            let tid = u16_at(set, 0).unwrap_or(0);
            let parsed = if ipfix {
                self.parse_ipfix_template(set, options)
            } else {
                self.parse_v9_template(set, options)
            };
            let (consumed, scope_count) = match parsed {
                Ok(Some(v)) => v,
                Ok(None) => {
                    // IPFIX withdrawal: field count 0 (RFC 7011 §8.1). Template id 2 (or 3 in
                    // an options template set) withdraws every template of that kind.
                    self.withdraw(key, tid, options);
                    set = &set[4..];
                    continue;
                }
                Err(e) => {
                    self.stats.error(e);
                    return;
                }
            };
            set = &set[consumed..];
            self.records_in_datagram += 1;
            if tid < 256 {
                self.stats
                    .error(DecodeError::InvalidTemplate("template id below 256"));
                continue;
            }
            if self.specs.len() > self.limits.max_fields {
                self.stats.error(DecodeError::Limit("fields per template"));
                continue;
            }
            // Exporters resend unchanged templates often (every few datagrams): recognise a
            // refresh from the raw field list, without compiling (which allocates).
            if let Some(e) = self
                .find(&key)
                .and_then(|i| self.scopes.get_mut(i))
                .and_then(|s| s.templates.get_mut(&tid))
            {
                let t = &e.t;
                if t.options == options
                    && t.scope_count == scope_count
                    && t.fields.len() == self.specs.len()
                    && t.fields.iter().zip(&self.specs).all(|(f, s)| f.spec == *s)
                {
                    e.refreshed_ns = now_ns;
                    continue;
                }
            }
            match Template::compile(tid, dialect, options, scope_count, &self.specs) {
                // A record of zero bytes would make a data set hold infinitely many.
                Ok(t) if t.min_len == 0 => self
                    .stats
                    .error(DecodeError::InvalidTemplate("zero-length record")),
                Ok(t) => self.learn(key, t, now_ns, emit),
                Err(e) => self.stats.error(e),
            }
        }
    }

    /// Parses one IPFIX template record into `self.specs`. `Ok(None)` is a withdrawal.
    /// Returns (bytes consumed, scope field count).
    fn parse_ipfix_template(
        &mut self,
        b: &[u8],
        options: bool,
    ) -> Result<Option<(usize, u16)>, DecodeError> {
        let count = u16_at(b, 2).ok_or(DecodeError::Truncated("template"))?;
        if count == 0 {
            return Ok(None);
        }
        let (mut pos, scope) = if options {
            let s = u16_at(b, 4).ok_or(DecodeError::Truncated("options template"))?;
            if s > count {
                return Err(DecodeError::InvalidTemplate(
                    "scope count above field count",
                ));
            }
            (6, s)
        } else {
            (4, 0)
        };
        self.specs.clear();
        for _ in 0..count {
            let raw = u16_at(b, pos).ok_or(DecodeError::Truncated("template field"))?;
            let len = u16_at(b, pos + 2).ok_or(DecodeError::Truncated("template field"))?;
            pos += 4;
            let pen = if raw & 0x8000 != 0 {
                let pen = u32_at(b, pos).ok_or(DecodeError::Truncated("template field"))?;
                pos += 4;
                pen
            } else {
                0
            };
            self.specs.push(FieldSpec {
                id: raw & 0x7fff,
                pen,
                len,
            });
        }
        Ok(Some((pos, scope)))
    }

    /// Parses one v9 template or options template record into `self.specs`.
    fn parse_v9_template(
        &mut self,
        b: &[u8],
        options: bool,
    ) -> Result<Option<(usize, u16)>, DecodeError> {
        self.specs.clear();
        if !options {
            let count = u16_at(b, 2).ok_or(DecodeError::Truncated("template"))?;
            if count == 0 {
                return Err(DecodeError::InvalidTemplate("no fields"));
            }
            let mut pos = 4;
            for _ in 0..count {
                let id = u16_at(b, pos).ok_or(DecodeError::Truncated("template field"))?;
                let len = u16_at(b, pos + 2).ok_or(DecodeError::Truncated("template field"))?;
                pos += 4;
                self.specs.push(FieldSpec { id, pen: 0, len });
            }
            return Ok(Some((pos, 0)));
        }
        // RFC 3954 §6.1: lengths are in bytes; each field entry is 4 bytes. The record is
        // padded to a 4-byte boundary.
        let scope_len =
            usize::from(u16_at(b, 2).ok_or(DecodeError::Truncated("options template"))?);
        let opt_len = usize::from(u16_at(b, 4).ok_or(DecodeError::Truncated("options template"))?);
        if scope_len % 4 != 0 || opt_len % 4 != 0 || scope_len + opt_len == 0 {
            return Err(DecodeError::InvalidTemplate("options template lengths"));
        }
        let mut pos = 6;
        for _ in 0..(scope_len + opt_len) / 4 {
            let id = u16_at(b, pos).ok_or(DecodeError::Truncated("options template field"))?;
            let len = u16_at(b, pos + 2).ok_or(DecodeError::Truncated("options template field"))?;
            pos += 4;
            self.specs.push(FieldSpec { id, pen: 0, len });
        }
        let padded = (pos + 3) & !3;
        Ok(Some((padded.min(b.len()), (scope_len / 4) as u16)))
    }

    fn withdraw(&mut self, key: ScopeKey, tid: u16, options: bool) {
        let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) else {
            return;
        };
        let all = (tid == 2 && !options) || (tid == 3 && options);
        if all {
            let before = scope.templates.len();
            scope.templates.retain(|_, e| e.t.options != options);
            self.stats.templates_withdrawn += (before - scope.templates.len()) as u64;
        } else if scope.templates.remove(&tid).is_some() {
            self.stats.templates_withdrawn += 1;
        }
        if let Some(sh) = &self.shared {
            sh.withdraw(&key, (!all).then_some(tid), options);
        }
        self.recount_fields();
    }

    fn learn<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        key: ScopeKey,
        t: Template,
        now_ns: i64,
        emit: &mut F,
    ) {
        let max = self.limits.max_templates;
        let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) else {
            return;
        };
        let tid = t.id;
        let count = scope.templates.len();
        let old_fields = match scope.templates.get_mut(&tid) {
            Some(old) if *old.t == t => {
                old.refreshed_ns = now_ns; // a refresh of what we have
                return;
            }
            Some(old) => old.t.fields.len(),
            None if count >= max => {
                self.stats
                    .error(DecodeError::Limit("templates per exporter"));
                return;
            }
            None => 0,
        };
        let new_template = usize::from(old_fields == 0);
        let fits = |d: &Decoder| {
            d.total_fields - old_fields + t.fields.len() <= d.limits.max_total_template_fields
                && d.total_templates + new_template <= d.limits.max_total_templates
        };
        if !fits(self) {
            self.evict_for(key, &fits);
            if !fits(self) {
                self.stats.error(DecodeError::Limit("templates in total"));
                return;
            }
        }
        let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) else {
            return;
        };
        self.total_fields = self.total_fields - old_fields + t.fields.len();
        self.total_templates += new_template;
        let t = Arc::new(t);
        if let Some(sh) = &self.shared {
            sh.publish(key, &t);
        }
        scope.templates.insert(
            tid,
            Entry {
                t,
                refreshed_ns: now_ns,
            },
        );
        self.stats.templates_learned += 1;
        // Decode whatever was waiting for this template, in arrival order.
        if !scope.held.iter().any(|h| h.template_id == tid) {
            return;
        }
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(scope.held.len());
        for h in scope.held.drain(..) {
            if h.template_id == tid {
                scope.held_bytes -= h.body.len();
                self.total_held -= h.body.len() + HELD_OVERHEAD;
                taken.push(h);
            } else {
                kept.push_back(h);
            }
        }
        scope.held = kept;
        // Held records belong to earlier datagrams: they count as received for the sequence
        // accounting now, not as part of this datagram.
        let own = self.data_records_in_datagram;
        for h in taken {
            let before = self.stats.flow_records + self.stats.options_records;
            self.data_set(key, &h.header, tid, &h.body, emit);
            self.stats.held_records_decoded +=
                self.stats.flow_records + self.stats.options_records - before;
        }
        let late = self.data_records_in_datagram - own;
        self.data_records_in_datagram = own;
        if key.version == 10 {
            if let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) {
                scope.seq.add_received(late);
            }
        }
    }

    fn data_set<F: FnMut(&Record<'_>, Option<&ScopeTables>)>(
        &mut self,
        key: ScopeKey,
        header: &ExportHeader,
        tid: u16,
        set: &[u8],
        emit: &mut F,
    ) {
        let limits = self.limits;
        let Some(scope) = self.find(&key).and_then(|i| self.scopes.get_mut(i)) else {
            return;
        };
        let now = header.receive_time_ns;
        let mut found = match scope.templates.get(&tid) {
            Some(e)
                if limits
                    .template_timeout_ns
                    .is_some_and(|to| now.saturating_sub(e.refreshed_ns) > to) =>
            {
                let options = e.t.options;
                self.total_fields -= e.t.fields.len();
                self.total_templates -= 1;
                scope.templates.remove(&tid);
                self.stats.templates_expired += 1;
                if let Some(sh) = &self.shared {
                    sh.withdraw(&key, Some(tid), options);
                }
                None
            }
            Some(e) => Some(Arc::clone(&e.t)),
            None => None,
        };
        if found.is_none() {
            // Another core (or the saved set) may know it: see `shared`.
            if let Some(t) = self.shared.as_ref().and_then(|sh| sh.get(&key, tid)) {
                if scope.templates.len() < limits.max_templates
                    && self.total_fields + t.fields.len() <= limits.max_total_template_fields
                    && self.total_templates < limits.max_total_templates
                {
                    self.total_fields += t.fields.len();
                    self.total_templates += 1;
                    scope.templates.insert(
                        tid,
                        Entry {
                            t: Arc::clone(&t),
                            refreshed_ns: now,
                        },
                    );
                    self.stats.cross_core_hits += 1;
                    found = Some(t);
                }
            }
        }
        let Some(t) = found else {
            // Hold it for the template (bounded; the oldest goes first).
            if set.len() > limits.max_held_bytes
                || self.total_held + set.len() + HELD_OVERHEAD > limits.max_total_held_bytes
            {
                self.stats.error(DecodeError::Limit("held data"));
                return;
            }
            while scope.held.len() >= limits.max_held_sets
                || scope.held_bytes + set.len() > limits.max_held_bytes
            {
                match scope.held.pop_front() {
                    Some(old) => {
                        scope.held_bytes -= old.body.len();
                        self.total_held -= old.body.len() + HELD_OVERHEAD;
                        self.stats.error(DecodeError::Limit("held data"));
                    }
                    None => break,
                }
            }
            scope.held_bytes += set.len();
            self.total_held += set.len() + HELD_OVERHEAD;
            scope.held.push_back(Held {
                template_id: tid,
                header: *header,
                body: set.into(),
            });
            self.stats.sets_held += 1;
            return;
        };
        let system_init_ms = scope.tables.system_init_ms;
        let mut rest = set;
        let mut n = 0u64;
        while rest.len() >= t.min_len && !rest.is_empty() {
            let len = if let Some(fixed) = t.fixed_len {
                fixed
            } else {
                match spans_of(&t, rest, &mut self.spans) {
                    Some(l) if l > 0 => l,
                    _ => {
                        // A variable-length field runs past the set: the rest may be padding
                        // if it is all zeros, otherwise the record is cut.
                        if !rest.iter().all(|&b| b == 0) {
                            self.stats.error(DecodeError::Truncated("record"));
                        }
                        break;
                    }
                }
            };
            let spans: &[(u32, u32)] = if t.fixed_len.is_some() {
                &t.fixed_spans
            } else {
                &self.spans
            };
            let rec = Record {
                header,
                template: &t,
                data: &rest[..len],
                spans,
                system_init_ms,
            };
            emit(&rec, Some(&scope.tables));
            if t.options {
                Self::absorb_options(scope, &rec, &limits);
            }
            n += 1;
            rest = &rest[len..];
        }
        self.records_in_datagram += n;
        self.data_records_in_datagram += n;
        if t.options {
            self.stats.options_records += n;
        } else {
            self.stats.flow_records += n;
        }
    }

    /// Keeps what an options record tells (system init time, samplers, interface names).
    fn absorb_options(scope: &mut Scope, rec: &Record<'_>, limits: &Limits) {
        let uint = |s: Slot| rec.slot(s).filter(|b| !b.is_empty()).map(be_uint);
        if let Some(v) = uint(Slot::SysInitMs) {
            scope.tables.system_init_ms = Some(v as i64);
        }
        let interval = uint(Slot::SamplingInterval)
            .or_else(|| uint(Slot::SamplerRandomInterval))
            .or_else(|| {
                let p = uint(Slot::SamplingPacketInterval)?;
                let s = uint(Slot::SamplingPacketSpace).unwrap_or(0);
                (p > 0).then(|| p.saturating_add(s) / p)
            });
        if let Some(iv) = interval {
            let id = uint(Slot::SamplerId)
                .or_else(|| uint(Slot::SelectorId))
                .unwrap_or(u64::MAX);
            let t = &mut scope.tables.samplers;
            if t.len() < limits.max_table_entries || t.contains_key(&id) {
                t.insert(id, iv.min(u64::from(u32::MAX)) as u32);
            }
        }
        // Texts up to the first NUL (fixed-width v9 fields are NUL-padded).
        let text = |s: Slot| {
            rec.slot(s)
                .map(|b| b.split(|&c| c == 0).next().unwrap_or(&[]))
        };
        let name = text(Slot::InterfaceName);
        let description = text(Slot::InterfaceDescription);
        if name.is_some() || description.is_some() {
            if let Some(ifindex) = uint(Slot::InIf) {
                let t = &mut scope.tables.interfaces;
                let ifindex = ifindex as u32;
                if let Some(known) = t.get_mut(&ifindex) {
                    // Exporters repeat their interface table every few seconds: a text is
                    // copied only when it changed, so a refresh allocates nothing.
                    set_text(&mut known.name, name);
                    set_text(&mut known.description, description);
                } else if t.len() < limits.max_table_entries {
                    let mut info = InterfaceInfo::default();
                    set_text(&mut info.name, name);
                    set_text(&mut info.description, description);
                    t.insert(ifindex, info);
                }
            }
        }
    }
}
