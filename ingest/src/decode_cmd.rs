//! `sluice decode`: a capture through the live decoder, documents to stdout.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use sluice_decode::pcap::PcapReader;
use sluice_decode::sflow::{is_sflow_v5, SflowDecoder};
use sluice_decode::{Datagram, Decoder, Limits};
use sluice_enrich::Enricher;
use sluice_sink::ecs::EncodeOptions;

use crate::output::DocWriter;
use crate::Format;

pub fn run(
    path: &Path,
    format: Format,
    annotate: bool,
    include_options: bool,
    enricher: Option<Arc<Enricher>>,
) -> Result<ExitCode> {
    let mut reader = PcapReader::open(path)?;
    // A capture may stitch together packets taken days apart: templates do not expire here.
    let mut decoder = Decoder::new(Limits {
        template_timeout_ns: None,
        ..Limits::default()
    });
    let mut sflow = SflowDecoder::default();
    // Counter samples are documents of their own (event.kind: metric).
    sflow.set_counter_records(true);
    let mut out = DocWriter::new(format, EncodeOptions { annotate });
    if let Some(e) = enricher {
        out = out.with_enricher(e);
    }
    let mut datagram_errors = 0u64;
    let mut truncated = 0u64;
    let pstats = reader.for_each_udp(|udp| {
        if udp.truncated {
            truncated += 1;
        }
        let dg = Datagram {
            src: udp.src,
            receive_time_ns: udp.ts_nanos,
            payload: &udp.payload,
            tag: udp.frame,
        };
        // sFlow starts with a 32-bit version 5; NetFlow/IPFIX with a 16-bit 5, 9 or 10.
        let r = if is_sflow_v5(dg.payload) {
            sflow.decode(&dg, |rec| out.record(rec, None), |_| {})
        } else {
            decoder.decode_with_tables(&dg, |rec, tables| {
                if !rec.template.options || include_options {
                    out.record(rec, tables);
                }
            })
        };
        if r.is_err() {
            datagram_errors += 1;
        }
    })?;
    let held = decoder.finish();
    out.finish()?;
    let st = decoder.stats();
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "sluice decode: {} frames, {} udp datagrams, {} flow records, {} options records, {} templates learned, {} held records decoded",
        pstats.frames,
        pstats.udp,
        st.flow_records,
        st.options_records,
        st.templates_learned,
        st.held_records_decoded
    )?;
    let sf = sflow.stats();
    if sf.datagrams > 0 {
        writeln!(
            err,
            "sluice decode: sFlow: {} datagrams, {} flow samples, {} discard samples, {} counter samples",
            sf.datagrams, sf.flow_samples, sf.discard_samples, sf.counter_samples
        )?;
    }
    if pstats.malformed > 0 || truncated > 0 {
        writeln!(
            err,
            "sluice decode: capture: {} malformed frames, {truncated} datagrams cut by the snap length",
            pstats.malformed
        )?;
    }
    let mut reasons: Vec<_> = st.errors.iter().chain(sf.errors.iter()).collect();
    reasons.sort();
    for (reason, n) in &reasons {
        writeln!(err, "sluice decode: error {reason}: {n}")?;
    }
    if held > 0 {
        writeln!(
            err,
            "sluice decode: {held} data sets never saw their template (counted as template_missing)"
        )?;
    }
    let sflow_errors: u64 = sf.errors.values().sum();
    let failed = st.error_total() > 0 || sflow_errors > 0 || datagram_errors > 0 || truncated > 0;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
