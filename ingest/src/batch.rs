//! Per-core batches of decoded records, arena-allocated.
//!
//! A receive thread copies each record's bytes into its batch's bump arena (bumpalo) and keeps
//! a small fixed-size item per record; export headers and templates are interned per batch.
//! Full batches go to the store thread over a crossbeam channel and come back on a return
//! channel once written; `reset()` then keeps the arena's memory, so in steady state no
//! allocation happens per record (only when a batch needs more room than ever before).
//!
//! What only the receive thread's decoder knows about a record, its scope's options data
//! (sampler tables, interface names: [`Learned`]), is captured as the record is pushed, so
//! that the store thread can enrich it: a small fixed-size value per record, its texts
//! interned once per batch.

use std::ptr::NonNull;

use bumpalo::Bump;
use sluice_decode::record::spans_of;
use sluice_decode::{ExportHeader, Record, ScopeTables, Template};
use sluice_enrich::{IfTexts, Learned, SamplingSource};
use sluice_sink::store::StringTable;

/// One record in a batch: 32 bytes. What most records lack (a system init time, values
/// learned from options data) is kept beside the items and referenced by index, 0 for none:
/// the receive thread writes, and the store thread reads, an item per record, and at 64 bytes
/// the item store was most of `Batch::push`.
#[derive(Clone, Copy, Debug)]
struct Item {
    header: u32,
    template: u32,
    /// The record's bytes in the batch's arena.
    data: NonNull<[u8]>,
    /// 1 + index in `Batch::sysinits`, or 0 for none.
    system_init: u32,
    /// 1 + index in `Batch::learned`, or 0 for nothing learned.
    learned: u32,
}

const _: () = assert!(size_of::<Item>() == 32);

/// A record's [`Learned`] values, with its texts as references into the batch's strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LearnedItem {
    /// Sampling interval (0: none).
    sampling: u32,
    /// Whether it came from the sampler table (else the scope's id-less interval).
    sampler: bool,
    /// In name, in description, out name, out description.
    ifs: [u32; 4],
}

/// A batch of records owned by one core until it is sent.
pub struct Batch {
    arena: Bump,
    items: Vec<Item>,
    /// System init times of the items that have one (consecutive repeats shared).
    sysinits: Vec<i64>,
    /// Learned values of the items that have any (consecutive repeats shared).
    learned: Vec<LearnedItem>,
    headers: Vec<ExportHeader>,
    templates: Vec<Template>,
    /// Interface texts of the records' [`Learned`] values.
    strings: StringTable,
    /// Last references given per text slot (consecutive records repeat them).
    memo: [u32; 4],
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
            sysinits: Vec::new(),
            learned: Vec::new(),
            headers: Vec::with_capacity(64),
            templates: Vec::with_capacity(16),
            strings: StringTable::default(),
            memo: [0; 4],
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
        self.sysinits.clear();
        self.learned.clear();
        self.headers.clear();
        self.templates.clear();
        self.strings.clear();
        self.memo = [0; 4];
        self.arena.reset();
    }

    /// Copies a record in, with what its scope's options data (`tables`, from
    /// `Decoder::decode_with_tables`) gives it. Headers and templates are interned against the
    /// last one added, which is what consecutive records of one datagram share.
    pub fn push(&mut self, r: &Record<'_>, tables: Option<&ScopeTables>) {
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
        let learned = match tables {
            // No options data from this exporter, or none that tells a flow anything (the
            // usual cases): nothing to look up.
            None => 0,
            Some(t) if t.samplers.is_empty() && t.interfaces.is_empty() => 0,
            Some(t) => {
                let l = Learned::from_tables(Some(t), r.sampler_id(), r.in_if(), r.out_if());
                if l.is_empty() {
                    0
                } else {
                    let l = self.learn(&l);
                    if self.learned.last() != Some(&l) {
                        self.learned.push(l);
                    }
                    self.learned.len() as u32
                }
            }
        };
        let system_init = match r.system_init_ms {
            None => 0,
            Some(v) => {
                if self.sysinits.last() != Some(&v) {
                    self.sysinits.push(v);
                }
                self.sysinits.len() as u32
            }
        };
        self.items.push(Item {
            header: header as u32,
            template: template as u32,
            data,
            system_init,
            learned,
        });
    }

    fn learn(&mut self, l: &Learned<'_>) -> LearnedItem {
        LearnedItem {
            sampling: l.sampling.map_or(0, |s| s.0),
            sampler: l.sampling.is_some_and(|s| s.1 == SamplingSource::Sampler),
            ifs: self
                .strings
                .intern_interfaces(&mut self.memo, l.in_if, l.out_if),
        }
    }

    /// A record's [`Learned`] values back from its item's reference.
    fn learned(&self, r: u32) -> Learned<'_> {
        match (r as usize)
            .checked_sub(1)
            .and_then(|i| self.learned.get(i))
        {
            Some(it) => self.learned_values(it),
            None => Learned::default(),
        }
    }

    fn learned_values(&self, it: &LearnedItem) -> Learned<'_> {
        let source = if it.sampler {
            SamplingSource::Sampler
        } else {
            SamplingSource::Scope
        };
        let s = |r: u32| self.strings.get(r);
        Learned {
            sampling: (it.sampling != 0).then_some((it.sampling, source)),
            in_if: IfTexts {
                name: s(it.ifs[0]),
                description: s(it.ifs[1]),
            },
            out_if: IfTexts {
                name: s(it.ifs[2]),
                description: s(it.ifs[3]),
            },
        }
    }

    /// Calls `f` with each record, rebuilt as a [`Record`].
    pub fn for_each<F: FnMut(&Record<'_>)>(&self, scratch: &mut Vec<(u32, u32)>, mut f: F) {
        self.for_each_learned(scratch, |r, _| f(r));
    }

    /// [`Batch::for_each`], with what the record's scope's options data gave it when it was
    /// pushed.
    pub fn for_each_learned<F: FnMut(&Record<'_>, &Learned<'_>)>(
        &self,
        scratch: &mut Vec<(u32, u32)>,
        mut f: F,
    ) {
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
            f(
                &Record {
                    header: h,
                    template: t,
                    data,
                    spans,
                    system_init_ms: (it.system_init as usize)
                        .checked_sub(1)
                        .and_then(|i| self.sysinits.get(i))
                        .copied(),
                },
                &self.learned(it.learned),
            );
        }
    }
}
