//! Sending a prepared capture as N exporters.
//!
//! Every exporter has its own copy of every stream's state: rewritten id, next sequence
//! number. An exporter's send sequence is the preamble, then the capture in file order,
//! looped ([`Schedule`]); with `preamble_each_loop` the preamble starts every loop. All
//! exporters share one wall-clock "boot" time per stream (their scopes are distinct anyway),
//! set when the run starts. Datagrams are copied and rewritten ([`crate::rewrite`]) as the
//! sender ([`crate::send`]) asks for them.

use std::io;
use std::net::SocketAddr;

use crate::capture::{Capture, CaptureDatagram};
use crate::config::{Rate, Stop};
use crate::rewrite::{rewrite, HeaderValues};
use crate::send::{send, Hooks, Rendered, SendConfig, Source};
pub use crate::send::{wall_clock, Progress, SendStats as ReplayStats};

/// What a run does.
#[derive(Clone, Copy, Debug)]
pub struct ReplayConfig {
    /// Where every datagram goes.
    pub to: SocketAddr,
    pub rate: Rate,
    /// Simulated exporters (>= 1).
    pub exporters: usize,
    pub stop: Stop,
    /// Datagrams per `sendmmsg` call (1..=1024).
    pub batch: usize,
}

/// The rewritten id of `stream` for `exporter`: distinct for every (exporter, stream) pair, so
/// that the collector keeps one template scope and one sequence space per pair even for v9 and
/// v5, whose scopes ignore the source port.
pub fn rewritten_id(exporter: usize, stream: usize, streams: usize) -> u32 {
    (exporter * streams + stream) as u32
}

/// Which datagram comes at each position of an exporter's send sequence.
#[derive(Clone, Copy, Debug)]
pub struct Schedule<'c> {
    cap: &'c Capture,
}

impl<'c> Schedule<'c> {
    pub fn new(cap: &'c Capture) -> Self {
        Schedule { cap }
    }

    /// Datagrams sent once, before the first loop.
    pub fn lead(&self) -> u64 {
        if self.cap.preamble_each_loop {
            0
        } else {
            self.cap.preamble.len() as u64
        }
    }

    /// Datagrams per loop.
    pub fn per_loop(&self) -> u64 {
        let p = if self.cap.preamble_each_loop {
            self.cap.preamble.len()
        } else {
            0
        };
        (p + self.cap.body.len()) as u64
    }

    /// Datagrams one exporter sends in `loops` loops.
    pub fn total(&self, loops: u64) -> u64 {
        self.lead() + loops.saturating_mul(self.per_loop())
    }

    /// Loops completed after `sent` datagrams.
    pub fn loops_done(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.lead()) / self.per_loop().max(1)
    }

    /// The datagram at position `i`.
    pub fn at(&self, i: u64) -> &'c CaptureDatagram {
        let cap = self.cap;
        let lead = self.lead();
        if i < lead {
            return &cap.preamble[i as usize];
        }
        let k = ((i - lead) % self.per_loop().max(1)) as usize;
        if cap.preamble_each_loop {
            if let Some(d) = cap.preamble.get(k) {
                return d;
            }
            return &cap.body[k - cap.preamble.len()];
        }
        &cap.body[k]
    }
}

/// One exporter's position and per-stream sequence numbers.
#[derive(Clone, Debug)]
struct ExporterState {
    pos: u64,
    seq: Vec<u32>,
    ids: Vec<u32>,
}

/// Produces the rewritten datagrams of every exporter; the sender and the tests share it.
#[derive(Debug)]
pub struct Generator<'c> {
    cap: &'c Capture,
    sched: Schedule<'c>,
    exporters: Vec<ExporterState>,
    boot_ms: Vec<i64>,
}

impl<'c> Generator<'c> {
    /// `start_ms`: wall clock at the start of the run. Each stream's boot time is set so that
    /// its uptime starts at the highest uptime its capture shows, so shifted FIRST/LAST values
    /// never go below the originals.
    pub fn new(cap: &'c Capture, exporters: usize, start_ms: i64) -> Self {
        let n = cap.streams.len();
        let boot_ms = cap
            .streams
            .iter()
            .map(|s| start_ms - i64::from(s.max_uptime_ms))
            .collect();
        let exporters = (0..exporters)
            .map(|e| ExporterState {
                pos: 0,
                seq: cap.streams.iter().map(|s| s.first_sequence).collect(),
                ids: (0..n).map(|s| rewritten_id(e, s, n)).collect(),
            })
            .collect();
        Generator {
            cap,
            sched: Schedule::new(cap),
            exporters,
            boot_ms,
        }
    }

    pub fn schedule(&self) -> Schedule<'c> {
        self.sched
    }

    /// Datagrams exporter `e` has produced.
    pub fn position(&self, e: usize) -> u64 {
        self.exporters.get(e).map_or(0, |x| x.pos)
    }

    /// Appends exporter `e`'s next datagram, rewritten for the wall clock `now`, to `out` and
    /// returns what it is.
    pub fn render(&mut self, e: usize, now: (i64, u32), out: &mut Vec<u8>) -> &'c CaptureDatagram {
        let cap = self.cap;
        let x = &mut self.exporters[e];
        let d = self.sched.at(x.pos);
        let s = d.stream as usize;
        let uptime = (now.0 - self.boot_ms[s]).rem_euclid(1 << 32) as u32;
        let start = out.len();
        out.extend_from_slice(cap.bytes(d));
        let h = HeaderValues {
            source_id: x.ids[s],
            sequence: x.seq[s],
            now_ms: now.0,
            now_subsec_ns: now.1,
            uptime_ms: uptime,
        };
        rewrite(&mut out[start..], d, cap.patches(d), &h);
        x.seq[s] = x.seq[s].wrapping_add(d.seq_units);
        x.pos += 1;
        d
    }
}

/// The generator as a [`Source`]: each exporter sends `per_exporter` datagrams.
struct ReplaySource<'c> {
    gen: Generator<'c>,
    exporters: usize,
    per_exporter: u64,
    max_len: usize,
}

impl Source for ReplaySource<'_> {
    fn exporters(&self) -> usize {
        self.exporters
    }

    fn max_datagram_len(&self) -> usize {
        self.max_len
    }

    fn remaining(&self, e: usize) -> u64 {
        self.per_exporter.saturating_sub(self.gen.position(e))
    }

    fn render(&mut self, e: usize, now: (i64, u32), out: &mut Vec<u8>) -> Rendered {
        let d = self.gen.render(e, now, out);
        Rendered {
            flow_records: d.flow_records,
            options_records: d.options_records,
        }
    }
}

/// Sends the capture as configured. `progress` is called about once a second.
pub fn replay(
    cap: &Capture,
    cfg: &ReplayConfig,
    mut progress: impl FnMut(&Progress),
) -> io::Result<ReplayStats> {
    let mut hooks = Hooks {
        progress: Some(&mut progress),
        ..Hooks::default()
    };
    replay_with(cap, cfg, &mut hooks)
}

/// [`replay`] with any observers.
pub fn replay_with(
    cap: &Capture,
    cfg: &ReplayConfig,
    hooks: &mut Hooks<'_>,
) -> io::Result<ReplayStats> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    if cfg.exporters == 0 {
        return Err(invalid("--exporters must be at least 1".into()));
    }
    let ids = cfg.exporters.saturating_mul(cap.streams.len());
    if cap.streams.iter().any(|s| s.version == 5) && ids > 1 << 16 {
        return Err(invalid(format!(
            "{} exporters x {} streams need {ids} distinct v5 engine ids; at most 65536 fit",
            cfg.exporters,
            cap.streams.len()
        )));
    }
    if u32::try_from(ids).is_err() {
        return Err(invalid("too many exporters".into()));
    }
    let gen = Generator::new(cap, cfg.exporters, wall_clock().0);
    let sched = gen.schedule();
    let (per_exporter, duration) = match cfg.stop {
        Stop::Loops(n) => (sched.total(n.max(1)), None),
        Stop::Duration(d) => (u64::MAX, Some(d)),
    };
    let mut source = ReplaySource {
        gen,
        exporters: cfg.exporters,
        per_exporter,
        max_len: cap.max_datagram_len(),
    };
    let send_cfg = SendConfig {
        to: cfg.to,
        rate: cfg.rate,
        duration,
        batch: cfg.batch,
    };
    let mut stats = send(&mut source, &send_cfg, hooks)?;
    stats.loops = (0..cfg.exporters)
        .map(|e| sched.loops_done(source.gen.position(e)))
        .min()
        .unwrap_or(0);
    Ok(stats)
}
