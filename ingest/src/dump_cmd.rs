//! `sluice dump`: stored flows for a time range, filtered, as NDJSON or CSV: the same
//! documents `sluice decode` prints.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use sluice_enrich::Enricher;
use sluice_sink::ecs::EncodeOptions;
use sluice_sink::filter::{parse_duration, parse_time_arg, Filter};
use sluice_sink::store::StoreReader;

use crate::output::DocWriter;
use crate::run::now_ns;
use crate::Format;

/// Where `dump` reads.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum Source {
    /// The local store.
    Local,
    /// Elasticsearch / OpenSearch.
    Es,
}

/// The time arguments (of `dump` and `top`).
#[derive(Clone, Debug, clap::Args)]
pub struct Range {
    /// Start (RFC 3339, or relative like -15m).
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End, exclusive (RFC 3339, relative, or now). Default: now.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// The last DURATION up to now (e.g. 15m, 2h); instead of --from/--to (`top` defaults to
    /// 15m).
    #[arg(long, conflicts_with = "from")]
    pub last: Option<String>,
}

impl Range {
    /// [from, to) in ns since the epoch.
    pub fn resolve(&self) -> Result<(i64, i64)> {
        resolve(&self.from, &self.to, &self.last)
    }
}

fn resolve(
    from: &Option<String>,
    to: &Option<String>,
    last: &Option<String>,
) -> Result<(i64, i64)> {
    let now = now_ns();
    let to_ns = match to {
        Some(t) => parse_time_arg(t, now).map_err(|e| anyhow!("--to {t:?}: {e}"))?,
        None => now.saturating_add(1),
    };
    let from_ns = match (&from, &last) {
        (Some(f), _) => parse_time_arg(f, now).map_err(|e| anyhow!("--from {f:?}: {e}"))?,
        (None, Some(l)) => {
            let d = parse_duration(l).map_err(|e| anyhow!("--last {l:?}: {e}"))?;
            to_ns.saturating_sub(d as i64)
        }
        (None, None) => return Err(anyhow!("give --last DURATION or --from TIME [--to TIME]")),
    };
    Ok((from_ns, to_ns))
}

/// `dump` from the local store.
pub fn run(
    data_dir: &Path,
    range: Range,
    filter: Option<String>,
    format: Format,
    enricher: Arc<Enricher>,
) -> Result<ExitCode> {
    let (from_ns, to_ns) = range.resolve()?;
    let filter = match &filter {
        Some(f) => Some(Filter::parse(f).map_err(|e| anyhow!("--where {f:?}: {e}"))?),
        None => None,
    };
    let flows = data_dir.join("flows");
    let reader = StoreReader::open(&flows)
        .with_context(|| format!("opening the store in {}", flows.display()))?;
    // The store keeps records as the exporter sent them and, since format 1.1 (`[store]
    // enrich`), the enrichment they got when they arrived (names, geo, AS, sampling, also
    // what the exporter's options data said): that is shown as kept. Records of older blocks
    // are enriched as they are read, with today's config and databases and no options data.
    let mut out = DocWriter::new(format, EncodeOptions::default()).with_enricher(enricher);
    let stats = reader.scan_kept(from_ns, to_ns, |r, kept| {
        if out.failed() || r.template.options {
            return;
        }
        let flow = r.flow();
        if let Some(f) = &filter {
            if !f.matches(&flow, r.header.exporter) {
                return;
            }
        }
        out.record_kept(r, &flow, kept);
    })?;
    out.finish()?;
    // A torn tail is what a crash (or the segment being written right now) leaves: normal.
    // Corrupt or unreadable blocks mean records the store cannot give back: say so, and let
    // the exit status tell scripts.
    let lost = stats.blocks_corrupt
        + stats.blocks_unsupported
        + stats.segments_corrupt
        + stats.segments_unsupported
        + stats.records_skipped;
    if lost > 0 {
        eprintln!(
            "sluice dump: skipped {} corrupt blocks, {} blocks and {} segments of an unsupported format, {} corrupt segments, {} unreadable records",
            stats.blocks_corrupt,
            stats.blocks_unsupported,
            stats.segments_unsupported,
            stats.segments_corrupt,
            stats.records_skipped
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `dump --source es`: the documents as the cluster holds them, read with a point in time and
/// search_after, in @timestamp order; `--where` is sent as query DSL (`es::to_query`).
pub fn run_es(
    cfg: &crate::config::Config,
    range: Range,
    filter: Option<String>,
    format: Format,
) -> Result<ExitCode> {
    use std::io::Write;
    if format != Format::Ndjson {
        return Err(anyhow!("--source es prints NDJSON only"));
    }
    let query = match &filter {
        Some(f) => {
            let parsed = Filter::parse(f).map_err(|e| anyhow!("--where {f:?}: {e}"))?;
            Some(
                sluice_sink::es::to_query(&parsed)
                    .map_err(|e| anyhow!("--where {f:?} cannot be sent to Elasticsearch: {e}"))?,
            )
        }
        None => None,
    };
    let (from_ns, to_ns) = range.resolve()?;
    let es = crate::ship::es_config(cfg)?;
    let docs = sluice_sink::es::dump(&es, from_ns, to_ns, query)
        .map_err(|e| anyhow!("Elasticsearch dump: {e}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for d in docs {
        let d = d.map_err(|e| anyhow!("Elasticsearch dump: {e}"))?;
        if let Err(e) = writeln!(out, "{d}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
