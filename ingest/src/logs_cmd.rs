//! Log files: `sluice decode --syslog FILE` and `--vpc FILE` (documents to stdout), and
//! `sluice ingest vpc FILE...` (AWS VPC Flow Logs into the local store and Elasticsearch, as
//! the collector stores flows).
//!
//! Files are read line by line, plain or gzip (told by the gzip magic, whatever the name; S3
//! delivers `.log.gz` and CloudWatch Logs exports `.gz`), or standard input for `-`. A line
//! longer than [`MAX_LINE`] is cut there and counted; the rest of it is skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use sluice_decode::syslog::SyslogDecoder;
use sluice_decode::vpc::VpcDecoder;
use sluice_enrich::Enricher;
use sluice_sink::ecs::EncodeOptions;
use sluice_sink::store::StoreWriter;

use crate::config::Config;
use crate::output::DocWriter;
use crate::run::now_ns;
use crate::Format;

/// Longest line read from a file.
pub const MAX_LINE: usize = 1 << 20;

/// Where records read from files come from: no exporter (documents leave `observer.ip` out).
fn no_source() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
}

/// Opens a file (or stdin for `-`), gunzipping when it starts with the gzip magic.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
    };
    let mut r = BufReader::with_capacity(1 << 16, raw);
    let gz = r.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b]))?;
    Ok(if gz {
        // Concatenated gzip members (as `cat a.gz b.gz` and some uploaders make) are one file.
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    })
}

/// Calls `f` with each line (without its line end; cut to `max` bytes, `true` when it was cut).
pub fn for_each_line(
    mut r: impl BufRead,
    max: usize,
    mut f: impl FnMut(&[u8], bool),
) -> io::Result<()> {
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !line.is_empty() || cut {
                f(&line, cut);
            }
            return Ok(());
        }
        let (take, end) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if take > room {
            cut = true;
        }
        line.extend_from_slice(&buf[..take.min(room)]);
        r.consume(if end { take + 1 } else { take });
        if end {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            f(&line, cut);
            line.clear();
            cut = false;
        }
    }
}

/// The document writer of `decode`, enriching when given an enricher.
fn doc_writer(format: Format, enricher: Option<Arc<Enricher>>) -> DocWriter {
    let out = DocWriter::new(format, EncodeOptions::default());
    match enricher {
        Some(e) => out.with_enricher(e),
        None => out,
    }
}

/// `sluice decode --syslog FILE`: one message per line.
pub fn decode_syslog(
    path: &Path,
    format: Format,
    enricher: Option<Arc<Enricher>>,
) -> Result<ExitCode> {
    let input = open_input(path)?;
    let mut out = doc_writer(format, enricher);
    let mut dec = SyslogDecoder::new();
    let mut cut = 0u64;
    let now = now_ns();
    for_each_line(input, MAX_LINE, |line, was_cut| {
        cut += u64::from(was_cut);
        dec.decode(line, no_source(), now, |r| out.record(r, None));
    })
    .with_context(|| format!("reading {}", path.display()))?;
    out.finish()?;
    let st = dec.stats();
    let mut err = io::stderr().lock();
    let mut vendors: Vec<_> = st.messages.iter().collect();
    vendors.sort();
    let by_vendor: Vec<String> = vendors
        .iter()
        .map(|(v, n)| format!("{} {n}", v.as_str()))
        .collect();
    writeln!(
        err,
        "sluice decode: {} syslog messages ({}), {} empty lines, {} lines cut at {} bytes",
        st.total(),
        by_vendor.join(", "),
        st.empty,
        cut,
        MAX_LINE
    )?;
    let mut fails: Vec<_> = st.failures.iter().collect();
    fails.sort();
    for ((v, reason), n) in &fails {
        writeln!(
            err,
            "sluice decode: not parsed ({}, kept with event.original): {reason}: {n}",
            v.as_str()
        )?;
    }
    Ok(if st.failure_total() > 0 || cut > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn vpc_decoder(vpc_format: Option<&str>) -> Result<VpcDecoder> {
    match vpc_format {
        Some(f) => VpcDecoder::with_format(f).map_err(|e| anyhow!("--vpc-format: {e}")),
        None => Ok(VpcDecoder::new()),
    }
}

fn vpc_summary(cmd: &str, dec: &VpcDecoder, cut: u64, extra: &str) -> io::Result<()> {
    let st = dec.stats();
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "sluice {cmd}: {} VPC flow records, {} NODATA and {} SKIPDATA skipped, {} header lines, {} lines cut at {} bytes{extra}",
        st.records, st.nodata, st.skipdata, st.headers, cut, MAX_LINE
    )?;
    if st.unknown_fields > 0 {
        writeln!(
            err,
            "sluice {cmd}: {} header fields not read by this version (values ignored)",
            st.unknown_fields
        )?;
    }
    let mut fails: Vec<_> = st.failures.iter().collect();
    fails.sort();
    for (reason, n) in fails {
        writeln!(
            err,
            "sluice {cmd}: not parsed (kept with event.original): {reason}: {n}"
        )?;
    }
    Ok(())
}

/// `sluice decode --vpc FILE`.
pub fn decode_vpc(
    path: &Path,
    format: Format,
    vpc_format: Option<&str>,
    enricher: Option<Arc<Enricher>>,
) -> Result<ExitCode> {
    let input = open_input(path)?;
    let mut out = doc_writer(format, enricher);
    let mut dec = vpc_decoder(vpc_format)?;
    let mut cut = 0u64;
    let now = now_ns();
    for_each_line(input, MAX_LINE, |line, was_cut| {
        cut += u64::from(was_cut);
        dec.line(line, no_source(), now, |r| out.record(r, None));
    })
    .with_context(|| format!("reading {}", path.display()))?;
    out.finish()?;
    vpc_summary("decode", &dec, cut, "")?;
    Ok(if dec.stats().failure_total() > 0 || cut > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `sluice ingest vpc FILE...`: the records go to the local store (and to Elasticsearch when
/// configured) the way the collector stores flows: `run`'s store settings and shipper. The
/// shipper spools to `<data_dir>/spool-ingest` (not the collector's spool, which a running
/// collector owns); what the cluster did not take by the end waits there for the next
/// `ingest`. Documents have deterministic ids (per file: the record's bytes and position), so
/// ingesting a file again does not duplicate it in Elasticsearch; the local store keeps what
/// it is given.
pub fn ingest_vpc(
    cfg: &Config,
    files: &[std::path::PathBuf],
    vpc_format: Option<&str>,
) -> Result<ExitCode> {
    if files.is_empty() {
        return Err(anyhow!("give at least one file (or - for standard input)"));
    }
    let mut writer = if cfg.store.enabled {
        std::fs::create_dir_all(&cfg.store.data_dir)
            .with_context(|| format!("creating data directory {}", cfg.store.data_dir.display()))?;
        Some(StoreWriter::open(crate::run::store_config(cfg)).context("opening the local store")?)
    } else {
        None
    };
    let mut shipper = if cfg.elasticsearch.enabled {
        let mut es = crate::ship::es_config(cfg)?;
        es.spool_dir = cfg.store.data_dir.join("spool-ingest");
        Some(crate::ship::Shipper::start(es)?)
    } else {
        None
    };
    let keep = writer.is_some() && cfg.store.enrich;
    let whole = shipper.is_some();
    let mut enrich = (keep || shipper.is_some())
        .then(|| crate::run::enricher(&cfg.enrich).map(crate::run::StoreEnrich::new))
        .transpose()?;
    let mut dec = vpc_decoder(vpc_format)?;
    let mut cut = 0u64;
    let mut store_error = None;
    for path in files {
        dec.start_file();
        let input = open_input(path)?;
        let now = now_ns();
        let mut ordinal = 0u32;
        for_each_line(input, MAX_LINE, |line, was_cut| {
            cut += u64::from(was_cut);
            dec.line(line, no_source(), now, |r| {
                // Enriched once, for the store and the shipper alike.
                let flow = r.flow();
                let e = enrich
                    .as_mut()
                    .map(|en| en.run(r, &flow, &sluice_enrich::Learned::default(), whole));
                if let Some(w) = writer.as_mut() {
                    if store_error.is_none() {
                        if let Err(e) = w.append_enriched(r, e.filter(|_| keep), now) {
                            store_error = Some(e);
                        }
                    }
                }
                if let (Some(s), Some(e)) = (shipper.as_mut(), e) {
                    s.push(r, &flow, e, ordinal);
                }
                ordinal = ordinal.wrapping_add(1);
            });
        })
        .with_context(|| format!("reading {}", path.display()))?;
        if let Some(e) = store_error.take() {
            return Err(anyhow!("writing the local store: {e}"));
        }
    }
    let mut extra = String::new();
    if let Some(w) = writer.as_mut() {
        let stored = w.flush().context("flushing the local store")?;
        w.sync().context("syncing the local store")?;
        extra.push_str(&format!(", {stored} stored"));
    }
    if let Some(s) = shipper.take() {
        let st = s.shutdown(Duration::from_secs(60));
        extra.push_str(&format!(
            ", {} delivered to Elasticsearch ({} of them already there), {} waiting in the spool",
            st.docs_shipped, st.docs_duplicate, st.spool_docs
        ));
    }
    vpc_summary("ingest", &dec, cut, &extra)?;
    Ok(if dec.stats().failure_total() > 0 || cut > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_cut() {
        let data = b"one\r\ntwo\n\nthree-is-long\nfour";
        let mut got = Vec::new();
        for_each_line(&data[..], 5, |l, cut| {
            got.push((String::from_utf8_lossy(l).into_owned(), cut))
        })
        .expect("reads");
        let s = |x: &str, c| (x.to_string(), c);
        assert_eq!(
            got,
            vec![
                s("one", false),
                s("two", false),
                s("", false),
                s("three", true),
                s("four", false)
            ]
        );
    }

    #[test]
    fn small_buffers_still_frame() {
        let data = b"abc\ndefgh\n";
        let r = BufReader::with_capacity(2, &data[..]);
        let mut got = Vec::new();
        for_each_line(r, 100, |l, _| got.push(l.to_vec())).expect("reads");
        assert_eq!(got, vec![b"abc".to_vec(), b"defgh".to_vec()]);
    }
}
