//! The running sink: producers (callers of `submit`), a flush timer, bulk workers, the spool
//! thread and the setup thread.
//!
//! ```text
//! submit ─► open batch ─seal─► memory queue (bounded) ──────────► workers (max_in_flight)
//!                        │        full, or spool not empty            ▲   │ give back
//!                        └──────► spill queue ─► spool thread ─replay─┘   ▼ (shutdown, or
//!                                                 (disk segments) ◄───────  items that keep
//!                                                                           failing)
//! ```
//!
//! Order: while the spool holds anything, new batches go to it too, so the cluster receives
//! batches in the order they were sealed (workers take the memory queue, which is older,
//! before the spool). A worker keeps a batch whose whole request fails (cluster down, 429,
//! 5xx) and retries it with jittered exponential backoff until it goes through; the line waits
//! behind it. `submit` never waits on the network: it appends under a short lock and, when
//! both queues are full, drops and counts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    bounded, unbounded, Receiver, RecvTimeoutError, Select, Sender, TrySendError,
};

use super::batch::{Batch, IndexNamer};
use super::bulk::{parse_reply, BULK_PATH};
use super::client::{Body, Client, Method};
use super::config::EsConfig;
use super::deadletter::{DeadLetter, Rejected};
use super::error::{EsError, Full};
use super::gzip::gzip;
use super::metrics::{log_limited, Counters, EsStats};
use super::retry::{classify, seed, Backoff, ItemOutcome};
use super::spool::Spool;
use super::{setup, Doc};

/// What workers and the shutdown path tell the spool thread.
#[derive(Debug)]
enum SpoolMsg {
    /// New data: after everything spooled.
    Append(Batch),
    /// Older than what is spooled: before it.
    Prepend(Batch),
    /// A batch handed out from this segment is settled.
    Ack(u64),
}

#[derive(Debug)]
struct Shared {
    cfg: EsConfig,
    counters: Arc<Counters>,
    client: Client,
    dead: DeadLetter,
    /// Set at the shutdown deadline: workers stop retrying and hand back what they hold.
    aborting: AtomicBool,
    /// Frames in the spool not yet taken by a worker (kept by the spool thread).
    spool_unread: AtomicU64,
    /// Batches in the spill queue (not yet written by the spool thread).
    spill_queued: AtomicU64,
    /// Batches workers hold (taken, not settled): shutdown waits for them.
    held: AtomicU64,
}

impl Shared {
    fn spooling(&self) -> bool {
        self.spool_unread.load(Relaxed) + self.spill_queued.load(Relaxed) > 0
    }
}

#[derive(Debug)]
struct Producer {
    open: Batch,
    namer: IndexNamer,
    seq: u64,
    mem_tx: Option<Sender<Batch>>,
    spill_tx: Option<Sender<Batch>>,
    /// Buffers of batches the workers delivered, for the next batches: a fresh 5 MiB buffer
    /// costs a page fault per 4 KiB on first touch.
    pool: Receiver<Batch>,
}

impl Producer {
    fn new_batch(cfg: &EsConfig) -> Batch {
        Batch::with_capacity(Self::new_batch_bytes(cfg), cfg.batch_docs.min(65_536))
    }

    /// Room for `batch_bytes` and the document that crosses it (encoded in place before its
    /// size is known), so that the buffer does not grow by doubling.
    fn new_batch_bytes(cfg: &EsConfig) -> usize {
        cfg.batch_bytes.min(8 << 20) + (64 << 10)
    }

    /// A reused buffer from the pool, or a new one.
    fn next_batch(&self, cfg: &EsConfig) -> Batch {
        match self.pool.try_recv() {
            Ok(mut b) => {
                b.reset();
                b
            }
            Err(_) => Self::new_batch(cfg),
        }
    }

    /// Seals the open batch and routes it; the documents dropped.
    fn seal(&mut self, shared: &Shared) -> usize {
        if self.open.is_empty() {
            return 0;
        }
        let next = self.next_batch(&shared.cfg);
        let batch = std::mem::replace(&mut self.open, next);
        self.send_sealed(batch, shared)
    }

    /// Appends one document that `write` encodes in place, sealing what is full; the
    /// documents dropped. A document's size is known only once it is encoded: the one that
    /// takes the open batch past `batch_bytes` opens the next batch instead.
    fn push(
        &mut self,
        shared: &Shared,
        id: &[u8; 16],
        timestamp_ns: i64,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> usize {
        let Producer { open, namer, .. } = self;
        open.push_with(namer.name(timestamp_ns), id, write);
        let mut dropped = 0;
        if self.open.len() > 1 && self.open.body.len() > shared.cfg.batch_bytes {
            dropped += self.seal_but_last(shared);
        }
        dropped + self.seal_if_full(shared)
    }

    /// Seals the open batch if it holds `batch_docs` documents or `batch_bytes` bytes; the
    /// documents dropped.
    fn seal_if_full(&mut self, shared: &Shared) -> usize {
        let cfg = &shared.cfg;
        if self.open.len() >= cfg.batch_docs || self.open.body.len() >= cfg.batch_bytes {
            self.seal(shared)
        } else {
            0
        }
    }

    /// Seals the open batch but its last document, which starts the next batch (it made the
    /// open one exceed `batch_bytes`); the documents dropped.
    fn seal_but_last(&mut self, shared: &Shared) -> usize {
        let mut next = self.next_batch(&shared.cfg);
        next.push_from(&self.open, self.open.len() - 1);
        self.open.pop();
        let batch = std::mem::replace(&mut self.open, next);
        self.send_sealed(batch, shared)
    }

    fn send_sealed(&mut self, mut batch: Batch, shared: &Shared) -> usize {
        self.seq += 1;
        batch.seq = self.seq;
        self.route(batch, shared)
    }

    fn route(&mut self, batch: Batch, shared: &Shared) -> usize {
        let spooling = shared.spooling();
        let mut batch = batch;
        let to_mem = |b: Batch, tx: &Option<Sender<Batch>>| -> Result<(), Batch> {
            match tx {
                Some(tx) => tx.try_send(b).map_err(|e| match e {
                    TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
                }),
                None => Err(b),
            }
        };
        if !spooling {
            match to_mem(batch, &self.mem_tx) {
                Ok(()) => return 0,
                Err(b) => batch = b,
            }
        }
        if let Some(tx) = &self.spill_tx {
            shared.spill_queued.fetch_add(1, Relaxed);
            match tx.try_send(batch) {
                Ok(()) => return 0,
                Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                    shared.spill_queued.fetch_sub(1, Relaxed);
                    batch = b;
                }
            }
        }
        if spooling {
            // The spool's intake is full: better out of order than lost.
            match to_mem(batch, &self.mem_tx) {
                Ok(()) => return 0,
                Err(b) => batch = b,
            }
        }
        let n = batch.len();
        shared.counters.docs_dropped.fetch_add(n as u64, Relaxed);
        log_limited(
            "dropped",
            format_args!("queues full: {n} documents dropped"),
        );
        n
    }
}

/// `submit`'s answer for `n` documents when sealing dropped `dropped` (counting those of
/// earlier calls still in the open batch, hence the cap).
fn dropped_of(dropped: usize, n: usize) -> Result<(), Full> {
    if dropped == 0 {
        Ok(())
    } else {
        Err(Full {
            dropped: dropped.min(n),
        })
    }
}

/// The Elasticsearch/OpenSearch sink. See the module documentation of [`crate::es`].
#[derive(Debug)]
pub struct EsSink {
    shared: Arc<Shared>,
    producer: Arc<Mutex<Producer>>,
    workers: Vec<JoinHandle<Vec<Batch>>>,
    spool_thread: Option<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
    setup_thread: Option<JoinHandle<()>>,
    /// Dropped to stop the flusher and the setup thread.
    stop_tx: Option<Sender<()>>,
    /// Dropped at the shutdown deadline.
    abort_tx: Option<Sender<()>>,
    mem_rx: Receiver<Batch>,
    ctl_tx: Option<Sender<SpoolMsg>>,
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, EsError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| EsError::io(format!("spawning thread {name}"), e))
}

impl EsSink {
    /// Validates the configuration, opens the spool (replaying what an earlier run left) and
    /// starts the threads. The cluster need not be reachable: setup (version check, template,
    /// policy) runs in the background and retries, and documents wait in the queue and the
    /// spool until it is done. Errors are configuration and local disk errors only.
    pub fn start(cfg: EsConfig) -> Result<EsSink, EsError> {
        cfg.validate()?;
        let counters = Arc::new(Counters::default());
        let client = Client::new(&cfg)?;
        let spool = Spool::open(
            &cfg.spool_dir,
            cfg.spool_max_bytes,
            cfg.spool_segment_bytes,
            counters.clone(),
        )?;
        let namer = match &cfg.data_stream {
            Some(ds) => IndexNamer::fixed(ds),
            None => IndexNamer::new(&cfg.index),
        };
        let (mem_tx, mem_rx) = bounded::<Batch>(cfg.queue_batches);
        let (pool_tx, pool_rx) = bounded::<Batch>(cfg.max_in_flight + POOL_BATCHES);
        let (spill_tx, spill_rx) = bounded::<Batch>(cfg.queue_batches.max(16));
        let (ctl_tx, ctl_rx) = unbounded::<SpoolMsg>();
        // Zero capacity: a spooled batch leaves the spool thread only when a worker takes it.
        let (replay_tx, replay_rx) = bounded::<Batch>(0);
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let (abort_tx, abort_rx) = bounded::<()>(0);
        let shared = Arc::new(Shared {
            dead: DeadLetter::new(cfg.dead_letter.clone()),
            cfg,
            counters,
            client,
            aborting: AtomicBool::new(false),
            // Set before any submit: a spool left by an earlier run holds older documents.
            spool_unread: AtomicU64::new(u64::from(spool.has_unread())),
            spill_queued: AtomicU64::new(0),
            held: AtomicU64::new(0),
        });
        let producer = Arc::new(Mutex::new(Producer {
            open: Producer::new_batch(&shared.cfg),
            namer,
            seq: 0,
            mem_tx: Some(mem_tx),
            spill_tx: Some(spill_tx),
            pool: pool_rx,
        }));

        let sh = shared.clone();
        let spool_thread = spawn("es-spool", move || {
            spool_loop(spool, &sh, &spill_rx, &ctl_rx, &replay_tx)
        })?;
        let mut sink = EsSink {
            shared: shared.clone(),
            producer: producer.clone(),
            workers: Vec::new(),
            spool_thread: Some(spool_thread),
            flusher: None,
            setup_thread: None,
            stop_tx: Some(stop_tx),
            abort_tx: Some(abort_tx),
            mem_rx: mem_rx.clone(),
            ctl_tx: Some(ctl_tx.clone()),
        };
        for i in 0..shared.cfg.max_in_flight {
            let worker = Worker {
                shared: shared.clone(),
                ctl: ctl_tx.clone(),
                abort: abort_rx.clone(),
                gz: Vec::new(),
                pool: pool_tx.clone(),
                backoff: Backoff::new(
                    shared.cfg.retry_initial_delay,
                    shared.cfg.retry_max_delay,
                    seed() ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ),
            };
            let (m, r) = (mem_rx.clone(), replay_rx.clone());
            sink.workers
                .push(spawn(&format!("es-bulk-{i}"), move || worker.run(&m, &r))?);
        }
        drop(ctl_tx);
        let (sh, stop) = (shared.clone(), stop_rx.clone());
        sink.flusher = Some(spawn("es-flush", move || {
            flush_loop(&sh, &producer, &stop)
        })?);
        let sh = shared;
        sink.setup_thread = Some(spawn("es-setup", move || setup_loop(&sh, &stop_rx))?);
        Ok(sink)
    }

    /// Takes documents. Never waits on the network: documents are appended to the open batch
    /// (under a short lock); full batches go to the memory queue, or the spool when the queue
    /// is full or the spool already holds data. `Err(Full)` says how many of these documents
    /// were dropped because both were full (also counted in `docs_dropped`).
    pub fn submit(&self, docs: &[Doc<'_>]) -> Result<(), Full> {
        if docs.is_empty() {
            return Ok(());
        }
        self.shared
            .counters
            .docs_submitted
            .fetch_add(docs.len() as u64, Relaxed);
        let Ok(mut p) = self.producer.lock() else {
            return Err(self.drop_all(docs.len()));
        };
        let mut dropped = 0;
        for doc in docs {
            dropped += p.push(&self.shared, &doc.id, doc.timestamp_ns, |body| {
                body.extend_from_slice(doc.json)
            });
        }
        dropped_of(dropped, docs.len())
    }

    /// Counts `n` documents as dropped, the producer's lock being poisoned (a panicked
    /// holder: nothing sensible to append to).
    fn drop_all(&self, n: usize) -> Full {
        self.shared
            .counters
            .docs_dropped
            .fetch_add(n as u64, Relaxed);
        Full { dropped: n }
    }

    /// Takes one document that `write` encodes in place, at the end of the open batch (one
    /// JSON object, appended to the buffer it is given): what [`EsSink::submit`] does for one
    /// document, without copying it. Never waits on the network; `Err(Full)` as for `submit`.
    pub fn push_with(
        &self,
        id: &[u8; 16],
        timestamp_ns: i64,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), Full> {
        self.shared.counters.docs_submitted.fetch_add(1, Relaxed);
        let Ok(mut p) = self.producer.lock() else {
            return Err(self.drop_all(1));
        };
        dropped_of(p.push(&self.shared, id, timestamp_ns, write), 1)
    }

    /// Seals the open batch now (it would otherwise wait for `flush_interval` or a full batch).
    pub fn flush(&self) {
        if let Ok(mut p) = self.producer.lock() {
            p.seal(&self.shared);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EsStats {
        self.shared.counters.snapshot()
    }

    /// Stops taking documents, ships what is queued and spooled until `deadline`, then puts
    /// whatever is left (batches being retried, the memory queue) into the spool, which the
    /// next start replays. Returns the final counters.
    pub fn shutdown(mut self, deadline: Duration) -> EsStats {
        let end = Instant::now() + deadline;
        // 1. No more batches: seal the open one, close the producer side.
        drop(self.stop_tx.take());
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        if let Ok(mut p) = self.producer.lock() {
            p.seal(&self.shared);
            p.mem_tx = None;
            p.spill_tx = None;
        }
        // 2. Drain while the cluster takes data.
        let c = &self.shared.counters;
        while Instant::now() < end {
            let idle = self.mem_rx.is_empty()
                && !self.shared.spooling()
                && c.requests_in_flight.load(Relaxed) == 0;
            if idle && self.workers_idle() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // 3. Deadline (or done): workers hand back what they hold.
        self.shared.aborting.store(true, Relaxed);
        drop(self.abort_tx.take());
        if let Some(h) = self.setup_thread.take() {
            let _ = h.join();
        }
        let mut left: Vec<Batch> = Vec::new();
        for h in self.workers.drain(..) {
            if let Ok(held) = h.join() {
                left.extend(held);
            }
        }
        left.extend(self.mem_rx.try_iter());
        // Batches read from the spool stay in their segment (not acknowledged): the next start
        // replays them. The others go before everything spooled, oldest first.
        left.retain(|b| !b.is_empty());
        left.sort_by_key(|b| std::cmp::Reverse(b.seq));
        if let Some(ctl) = self.ctl_tx.take() {
            for b in left {
                let _ = ctl.send(SpoolMsg::Prepend(b));
            }
        }
        if let Some(h) = self.spool_thread.take() {
            let _ = h.join();
        }
        self.shared.counters.snapshot()
    }

    fn workers_idle(&self) -> bool {
        // A worker between two attempts holds its batch without a request in flight.
        self.shared.held.load(Relaxed) == 0
    }
}

impl Drop for EsSink {
    fn drop(&mut self) {
        // `shutdown` consumed everything; a sink dropped without it stops its threads quickly
        // (what they hold goes to the spool).
        if self.spool_thread.is_some() {
            self.shared.aborting.store(true, Relaxed);
            drop(self.stop_tx.take());
            drop(self.abort_tx.take());
            if let Ok(mut p) = self.producer.lock() {
                p.seal(&self.shared);
                p.mem_tx = None;
                p.spill_tx = None;
            }
            for h in self.workers.drain(..) {
                if let (Ok(held), Some(ctl)) = (h.join(), &self.ctl_tx) {
                    for b in held.into_iter().filter(|b| b.origin.is_none()) {
                        let _ = ctl.send(SpoolMsg::Prepend(b));
                    }
                }
            }
            if let Some(ctl) = &self.ctl_tx {
                for b in self.mem_rx.try_iter() {
                    let _ = ctl.send(SpoolMsg::Append(b));
                }
            }
            drop(self.ctl_tx.take());
            if let Some(h) = self.spool_thread.take() {
                let _ = h.join();
            }
        }
    }
}

fn flush_loop(shared: &Shared, producer: &Mutex<Producer>, stop: &Receiver<()>) {
    let tick =
        (shared.cfg.flush_interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    loop {
        match stop.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Ok(mut p) = producer.lock() else { return };
        if !p.open.is_empty() && p.open.opened.elapsed() >= shared.cfg.flush_interval {
            p.seal(shared);
        }
    }
}

fn setup_loop(shared: &Shared, stop: &Receiver<()>) {
    let c = &shared.counters;
    let mut backoff = Backoff::new(
        shared.cfg.retry_initial_delay,
        shared.cfg.retry_max_delay,
        seed(),
    );
    loop {
        match setup::run(&shared.client, &shared.cfg, c) {
            Ok(_) => {
                c.setup_done.store(true, Relaxed);
                return;
            }
            Err(e) => {
                log_limited("setup_retry", format_args!("setup: {e}; retrying"));
                match stop.recv_timeout(backoff.next_delay()) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        }
    }
}

fn spool_loop(
    mut spool: Spool,
    shared: &Shared,
    spill_rx: &Receiver<Batch>,
    ctl_rx: &Receiver<SpoolMsg>,
    replay_tx: &Sender<Batch>,
) {
    let mut ready: Option<Batch> = None;
    let (mut spill_open, mut ctl_open, mut replay_open) = (true, true, true);
    let apply = |spool: &mut Spool, msg: SpoolMsg| {
        let r = match msg {
            SpoolMsg::Append(b) => spool.append(&b).map_err(|e| (e, b.len())),
            SpoolMsg::Prepend(b) => spool.prepend(&b).map_err(|e| (e, b.len())),
            SpoolMsg::Ack(id) => {
                spool.ack(id);
                Ok(())
            }
        };
        if let Err((e, n)) = r {
            shared.counters.docs_dropped.fetch_add(n as u64, Relaxed);
            log_limited(
                "spool_write",
                format_args!("spool: {e}; {n} documents dropped"),
            );
        }
    };
    while spill_open || ctl_open {
        if ready.is_none() && replay_open && !shared.aborting.load(Relaxed) {
            ready = spool.next_batch();
            // Read but not handed to a worker yet: still waiting, for the gauge.
            if let Some(b) = &ready {
                shared
                    .counters
                    .spool_docs
                    .fetch_add(b.len() as u64, Relaxed);
            }
        }
        shared.spool_unread.store(
            u64::from(spool.has_unread()) + u64::from(ready.is_some()),
            Relaxed,
        );
        let mut sel = Select::new();
        let i_spill = if spill_open {
            Some(sel.recv(spill_rx))
        } else {
            None
        };
        let i_ctl = if ctl_open {
            Some(sel.recv(ctl_rx))
        } else {
            None
        };
        let i_replay = if ready.is_some() && replay_open {
            Some(sel.send(replay_tx))
        } else {
            None
        };
        let Ok(op) = sel.select_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let i = op.index();
        if Some(i) == i_spill {
            match op.recv(spill_rx) {
                Ok(b) => {
                    let r = spool.append(&b);
                    shared.spill_queued.fetch_sub(1, Relaxed);
                    if let Err(e) = r {
                        shared
                            .counters
                            .docs_dropped
                            .fetch_add(b.len() as u64, Relaxed);
                        log_limited(
                            "spool_write",
                            format_args!("spool: {e}; {} documents dropped", b.len()),
                        );
                    }
                }
                Err(_) => spill_open = false,
            }
        } else if Some(i) == i_ctl {
            match op.recv(ctl_rx) {
                Ok(msg) => apply(&mut spool, msg),
                Err(_) => ctl_open = false,
            }
        } else if Some(i) == i_replay {
            if let Some(b) = ready.take() {
                if let Err(e) = op.send(replay_tx, b) {
                    // Workers gone (shutdown): the batch stays in its segment on disk.
                    drop(e.into_inner());
                    replay_open = false;
                }
                spool.publish();
            }
        }
    }
    // Once the control channel closed, no worker is left; what remains is on disk.
    spool.sync();
    shared.spool_unread.store(0, Relaxed);
}

/// Delivered batches kept for their buffers, beyond one per request in flight (so at most
/// `max_in_flight + POOL_BATCHES` times `batch_bytes` of memory besides the queues: 30 MiB
/// with the defaults). A new batch is 5 MiB of fresh pages by default, each faulted in and
/// zeroed by the kernel as the producer writes to it; with the pool sized for the requests in
/// flight, every delivered batch's buffer is used again, where a pool of 2 let the rest go
/// (`perf stat -e page-faults` over one `es_ship` run: 35,200 faults with 2, 24,400 with
/// `max_in_flight + 2`; in that burst most batches are still new).
const POOL_BATCHES: usize = 2;

/// Result of one bulk attempt.
enum Outcome {
    /// Every document is settled.
    Done,
    /// These documents should be sent again; `whole` when the request failed as a whole.
    Retry { batch: Batch, whole: bool },
    /// The request was too large: send the halves.
    Split(Batch, Batch),
}

#[derive(Debug)]
struct Worker {
    shared: Arc<Shared>,
    ctl: Sender<SpoolMsg>,
    abort: Receiver<()>,
    gz: Vec<u8>,
    /// Delivered batches' buffers back to the producer.
    pool: Sender<Batch>,
    backoff: Backoff,
}

impl Worker {
    fn aborting(&self) -> bool {
        self.shared.aborting.load(Relaxed)
    }

    /// Sleeps `d`; `true` if the sink is aborting.
    fn sleep(&self, d: Duration) -> bool {
        !matches!(self.abort.recv_timeout(d), Err(RecvTimeoutError::Timeout)) || self.aborting()
    }

    /// The worker loop; returns the batches it held when the sink aborted.
    fn run(mut self, mem_rx: &Receiver<Batch>, replay_rx: &Receiver<Batch>) -> Vec<Batch> {
        while !self.shared.counters.setup_done.load(Relaxed) {
            if self.sleep(Duration::from_millis(20)) {
                return Vec::new();
            }
        }
        let (mut mem_open, mut replay_open) = (true, true);
        while mem_open || replay_open {
            if self.aborting() {
                return Vec::new();
            }
            // The memory queue first: while the spool holds data, new batches go there, so
            // what waits in memory is older.
            let batch = match mem_rx.try_recv() {
                Ok(b) => Some(b),
                Err(_) => match replay_rx.try_recv() {
                    Ok(b) => Some(b),
                    Err(_) => {
                        let mut sel = Select::new();
                        let im = if mem_open {
                            Some(sel.recv(mem_rx))
                        } else {
                            None
                        };
                        let ir = if replay_open {
                            Some(sel.recv(replay_rx))
                        } else {
                            None
                        };
                        match sel.select_timeout(Duration::from_millis(50)) {
                            Ok(op) if Some(op.index()) == im => {
                                op.recv(mem_rx).map_err(|_| mem_open = false).ok()
                            }
                            Ok(op) if Some(op.index()) == ir => {
                                op.recv(replay_rx).map_err(|_| replay_open = false).ok()
                            }
                            _ => None,
                        }
                    }
                },
            };
            if let Some(b) = batch {
                self.shared.held.fetch_add(1, Relaxed);
                let held = self.process(b);
                self.shared.held.fetch_sub(1, Relaxed);
                if self.aborting() {
                    return held;
                }
            }
        }
        Vec::new()
    }

    /// Ships one batch to the end; returns what it still held when the sink aborted (nothing
    /// for a batch read from the spool: it stays in its segment, unacknowledged, and the next
    /// start replays it; what was delivered meanwhile then comes back as 409).
    fn process(&mut self, batch: Batch) -> Vec<Batch> {
        let origin = batch.origin;
        let seq = batch.seq;
        let started = Instant::now();
        self.backoff.reset();
        let mut work = vec![batch];
        let mut held = Vec::new();
        while let Some(mut b) = work.pop() {
            loop {
                if self.aborting() {
                    held.push(b);
                    break;
                }
                match self.send_once(b) {
                    Outcome::Done => {
                        self.backoff.reset();
                        break;
                    }
                    Outcome::Split(first, second) => {
                        work.push(second);
                        work.push(first);
                        break;
                    }
                    Outcome::Retry { batch, whole } => {
                        let delay = self.backoff.next_delay();
                        let c = &self.shared.counters;
                        c.docs_retried.fetch_add(batch.len() as u64, Relaxed);
                        if !whole && started.elapsed() + delay > self.shared.cfg.retry_max_time {
                            // Items that keep failing while the cluster takes others: to the
                            // back of the spool, so the line moves on.
                            let mut batch = batch;
                            batch.origin = None;
                            if let Err(e) = self.ctl.send(SpoolMsg::Append(batch)) {
                                let n = e.into_inner();
                                if let SpoolMsg::Append(b) = n {
                                    c.docs_dropped.fetch_add(b.len() as u64, Relaxed);
                                }
                            }
                            break;
                        }
                        if self.sleep(delay) {
                            held.push(batch);
                            break;
                        }
                        b = batch;
                    }
                }
            }
        }
        held.extend(work);
        if !held.is_empty() && origin.is_some() {
            return Vec::new();
        }
        for h in &mut held {
            h.seq = seq;
        }
        if let Some(id) = origin {
            let _ = self.ctl.send(SpoolMsg::Ack(id));
        }
        held
    }

    fn send_once(&mut self, b: Batch) -> Outcome {
        let sh = &*self.shared;
        let c = &sh.counters;
        let level = sh.cfg.gzip_level;
        let body: &[u8] = if level > 0 {
            if let Err(e) = gzip(&b.body, level, sh.cfg.gzip_library, &mut self.gz) {
                log_limited("gzip", format_args!("{e}"));
                return Outcome::Retry {
                    batch: b,
                    whole: true,
                };
            }
            &self.gz
        } else {
            &b.body
        };
        c.bulk_requests.fetch_add(1, Relaxed);
        c.requests_in_flight.fetch_add(1, Relaxed);
        let t = Instant::now();
        let result = sh.client.request(
            Method::Post,
            BULK_PATH,
            Some(Body {
                bytes: body,
                content_type: "application/x-ndjson",
                gzipped: level > 0,
            }),
        );
        c.requests_in_flight.fetch_sub(1, Relaxed);
        let sent = body.len() as u64;
        let mut reply = match result {
            Ok(r) => r,
            Err(e) => {
                c.bulk_request_errors.fetch_add(1, Relaxed);
                log_limited(
                    "bulk_transport",
                    format_args!("bulk request: {e}; retrying"),
                );
                return Outcome::Retry {
                    batch: b,
                    whole: true,
                };
            }
        };
        c.observe_latency(t.elapsed());
        c.bytes_sent.fetch_add(sent, Relaxed);
        c.bytes_uncompressed.fetch_add(b.body.len() as u64, Relaxed);
        if !reply.is_success() {
            c.bulk_request_errors.fetch_add(1, Relaxed);
            let err = reply.to_error();
            if err.is_retryable() {
                log_limited("bulk_status", format_args!("bulk request: {err}; retrying"));
                return Outcome::Retry {
                    batch: b,
                    whole: true,
                };
            }
            if reply.status == 413 && b.len() > 1 {
                let half = b.len() / 2;
                let (mut x, mut y) = (
                    Batch::with_capacity(b.body.len() / 2 + 64, half),
                    Batch::with_capacity(b.body.len() / 2 + 64, b.len() - half),
                );
                for i in 0..b.len() {
                    if i < half {
                        x.push_from(&b, i)
                    } else {
                        y.push_from(&b, i)
                    }
                }
                return Outcome::Split(x, y);
            }
            log_limited(
                "bulk_rejected",
                format_args!("bulk request refused for good: {err}; documents dead-lettered"),
            );
            let error = serde_json::json!({"type": format!("http_{}", reply.status), "reason": err.to_string()});
            let all: Vec<usize> = (0..b.len()).collect();
            self.reject(&b, &all, |_| (reply.status, &error));
            return Outcome::Done;
        }
        let items = match parse_reply(&mut reply.body, b.len()) {
            Ok(items) => items,
            Err(e) => {
                c.bulk_request_errors.fetch_add(1, Relaxed);
                log_limited("bulk_protocol", format_args!("{e}; retrying"));
                return Outcome::Retry {
                    batch: b,
                    whole: true,
                };
            }
        };
        let (mut shipped, mut dup) = (0u64, 0u64);
        let mut retry: Option<Batch> = None;
        let mut rejected = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match classify(item.status) {
                ItemOutcome::Created => shipped += 1,
                ItemOutcome::Duplicate => {
                    shipped += 1;
                    dup += 1;
                }
                ItemOutcome::Retry => {
                    retry
                        .get_or_insert_with(|| Batch::with_capacity(b.body.len() / 4, 64))
                        .push_from(&b, i);
                }
                ItemOutcome::Reject => rejected.push(i),
            }
        }
        c.docs_shipped.fetch_add(shipped, Relaxed);
        c.docs_duplicate.fetch_add(dup, Relaxed);
        if !rejected.is_empty() {
            let null = serde_json::Value::Null;
            self.reject(&b, &rejected, |i| {
                (items[i].status, items[i].error.as_ref().unwrap_or(&null))
            });
        }
        match retry {
            Some(mut r) => {
                r.seq = b.seq;
                Outcome::Retry {
                    batch: r,
                    whole: false,
                }
            }
            None => {
                self.recycle(b);
                Outcome::Done
            }
        }
    }

    /// Hands a delivered batch's buffers back to the producer, if they are full-size ones
    /// (not a split or retry batch) and the pool has room.
    fn recycle(&self, b: Batch) {
        if b.body.capacity() >= Producer::new_batch_bytes(&self.shared.cfg) {
            let _ = self.pool.try_send(b);
        }
    }

    fn reject<'e>(
        &self,
        b: &Batch,
        which: &[usize],
        why: impl Fn(usize) -> (u16, &'e serde_json::Value),
    ) {
        let c = &self.shared.counters;
        c.docs_failed.fetch_add(which.len() as u64, Relaxed);
        let entries: Vec<Rejected<'_>> = which
            .iter()
            .map(|&i| {
                let (status, error) = why(i);
                Rejected {
                    index: b.index(i),
                    id: b.id(i),
                    status,
                    error,
                    source: b.source(i),
                }
            })
            .collect();
        match self.shared.dead.write(&entries) {
            Ok(n) => {
                c.docs_dead_lettered.fetch_add(n as u64, Relaxed);
            }
            Err(e) => log_limited("dead_letter", format_args!("dead-letter file: {e}")),
        }
        log_limited(
            "rejected",
            format_args!(
                "{} documents rejected by the cluster (first: {}); see the dead-letter file",
                which.len(),
                which
                    .first()
                    .map(|&i| why(i).1.get("type").and_then(|t| t.as_str()).unwrap_or("?"))
                    .unwrap_or("?")
            ),
        );
    }
}
