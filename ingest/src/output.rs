//! Documents to stdout for `decode` and `dump`: encoding into a reused buffer, written in
//! large chunks; a closed pipe (`| head`) ends the output quietly.

use std::io::{self, BufWriter, StdoutLock, Write};

use std::sync::Arc;

use sluice_decode::{Flow, Record, ScopeTables};
use sluice_enrich::{CoreCache, Enriched, Enricher, Kept};
use sluice_sink::ecs::{self, EncodeOptions};

use crate::Format;

/// Encodes records as NDJSON or CSV onto stdout.
pub struct DocWriter {
    out: BufWriter<StdoutLock<'static>>,
    buf: Vec<u8>,
    format: Format,
    opts: EncodeOptions,
    err: Option<io::Error>,
    enrich: Option<(Arc<Enricher>, CoreCache, Box<Enriched>)>,
}

impl std::fmt::Debug for DocWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocWriter")
            .field("format", &self.format)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl DocWriter {
    /// A writer; CSV starts with its header line.
    pub fn new(format: Format, opts: EncodeOptions) -> DocWriter {
        let mut buf = Vec::with_capacity(1 << 16);
        if format == Format::Csv {
            ecs::csv_header(&mut buf);
            buf.push(b'\n');
        }
        DocWriter {
            out: BufWriter::with_capacity(1 << 16, io::stdout().lock()),
            buf,
            format,
            opts,
            err: None,
            enrich: None,
        }
    }

    /// Enriches every record before encoding it.
    pub fn with_enricher(mut self, e: Arc<Enricher>) -> DocWriter {
        let cache = e.cache();
        self.enrich = Some((e, cache, Box::default()));
        self
    }

    /// Whether writing has failed (stop producing).
    pub fn failed(&self) -> bool {
        self.err.is_some()
    }

    /// Encodes one record.
    pub fn record(&mut self, r: &Record<'_>, tables: Option<&ScopeTables>) {
        self.record_with(r, &r.flow(), tables);
    }

    /// Encodes one record whose flow view the caller already has; `tables` are the options
    /// tables of its scope, for enrichment.
    pub fn record_with(&mut self, r: &Record<'_>, flow: &Flow, tables: Option<&ScopeTables>) {
        self.encode(r, flow, |en, cache, out| {
            en.enrich(cache, r, flow, tables, out)
        });
    }

    /// Encodes one stored record: enriched with the values kept with it when it has them
    /// (the store's enrichment columns), else as it is read (without options data).
    pub fn record_kept(&mut self, r: &Record<'_>, flow: &Flow, kept: Option<&Kept<'_>>) {
        self.encode(r, flow, |en, cache, out| match kept {
            Some(k) => en.enrich_kept(cache, r, flow, k, out),
            None => en.enrich(cache, r, flow, None, out),
        });
    }

    fn encode(
        &mut self,
        r: &Record<'_>,
        flow: &Flow,
        enrich: impl FnOnce(&Enricher, &mut CoreCache, &mut Enriched),
    ) {
        if self.err.is_some() {
            return;
        }
        let e = match &mut self.enrich {
            Some((en, cache, out)) if !r.template.options => {
                enrich(en, cache, out);
                Some(&**out)
            }
            _ => None,
        };
        match self.format {
            Format::Ndjson => ecs::encode_json_enriched(&mut self.buf, r, flow, e, &self.opts),
            Format::Csv => ecs::encode_csv(&mut self.buf, r, flow, e),
        }
        self.buf.push(b'\n');
        if self.buf.len() >= 1 << 15 {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.err = Some(e);
            }
            self.buf.clear();
        }
    }

    /// Writes what is left. A reader that went away (broken pipe) is not an error.
    pub fn finish(mut self) -> io::Result<()> {
        if self.err.is_none() {
            if let Err(e) = self.out.write_all(&self.buf).and_then(|_| self.out.flush()) {
                self.err = Some(e);
            }
        }
        match self.err {
            Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(()),
        }
    }
}
