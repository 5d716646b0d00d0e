//! Per-core batches of decoded records, arena-allocated.
//!
//! A receive thread copies each record's bytes into its batch's bump arena (bumpalo) and keeps
//! a small fixed-size item per record; export headers and templates are interned per batch.
//! Full batches go to the store thread over a crossbeam channel and come back on a return
//! channel once written; `reset()` then keeps the arena's memory, so in steady state no
//! allocation happens per record (only when a batch needs more room than ever before).

use std::ptr::NonNull;

use bumpalo::Bump;
use sluice_decode::record::spans_of;
use sluice_decode::{ExportHeader, Record, Template};

/// One record in a batch.
#[derive(Clone, Copy, Debug)]
struct Item {
    header: u32,
    template: u32,
    /// The record's bytes in the batch's arena.
    data: NonNull<[u8]>,
    system_init_ms: Option<i64>,
}

/// A batch of records owned by one core until it is sent.
pub struct Batch {
    arena: Bump,
    items: Vec<Item>,
    headers: Vec<ExportHeader>,
    templates: Vec<Template>,
    /// Which core's free list it returns to.
    pub core: usize,
}

// SAFETY: the `NonNull<[u8]>` items point into `arena`, which the batch owns and moves with it;
// nothing else aliases that memory, and it is only read through `&Batch` (see `for_each`). So
// moving a batch to the store thread is as safe as moving the arena (`Bump: Send`).
unsafe impl Send for Batch {}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("core", &self.core)
            .field("records", &self.items.len())
            .finish()
    }
}

impl Batch {
    /// An empty batch for `core` with room for `records` items.
    pub fn new(core: usize, records: usize) -> Batch {
        Batch {
            arena: Bump::with_capacity(records * 64),
            items: Vec::with_capacity(records),
            headers: Vec::with_capacity(64),
            templates: Vec::with_capacity(16),
            core,
        }
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the batch, keeping its memory.
    pub fn reset(&mut self) {
        self.items.clear();
        self.headers.clear();
        self.templates.clear();
        self.arena.reset();
    }

    /// Copies a record in. Headers and templates are interned against the last one added, which
    /// is what consecutive records of one datagram share.
    pub fn push(&mut self, r: &Record<'_>) {
        let header = match self.headers.last() {
            Some(h) if h == r.header => self.headers.len() - 1,
            _ => {
                self.headers.push(*r.header);
                self.headers.len() - 1
            }
        };
        let uid = r.template.uid;
        let template = match self.templates.iter().rposition(|t| t.uid == uid) {
            Some(i) => i,
            None => {
                // Once per template per batch (not per record): a copy of the compiled
                // template (reference counts only), which keeps its uid.
                self.templates.push(r.template.clone());
                self.templates.len() - 1
            }
        };
        let data = NonNull::from(self.arena.alloc_slice_copy(r.data));
        self.items.push(Item {
            header: header as u32,
            template: template as u32,
            data,
            system_init_ms: r.system_init_ms,
        });
    }

    /// Calls `f` with each record, rebuilt as a [`Record`].
    pub fn for_each<F: FnMut(&Record<'_>)>(&self, scratch: &mut Vec<(u32, u32)>, mut f: F) {
        for it in &self.items {
            let (Some(h), Some(t)) = (
                self.headers.get(it.header as usize),
                self.templates.get(it.template as usize),
            ) else {
                continue;
            };
            // SAFETY: `data` was allocated from `self.arena`, which is not reset while `self`
            // is borrowed, and it was initialised by `alloc_slice_copy`.
            let data: &[u8] = unsafe { it.data.as_ref() };
            let spans: &[(u32, u32)] = if t.fixed_len.is_some() {
                &t.fixed_spans
            } else {
                if spans_of(t, data, scratch).is_none() {
                    continue;
                }
                scratch
            };
            f(&Record {
                header: h,
                template: t,
                data,
                spans,
                system_init_ms: it.system_init_ms,
            });
        }
    }
}
