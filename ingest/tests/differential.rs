//! `sluice decode` against two independent decoders, record by record, on every NetFlow/IPFIX
//! capture in ../shared/captures: tshark (Wireshark's dissector) and the netflow_parser crate.
//! Compared per capture frame on addresses, ports, protocol, bytes, packets, TCP flags,
//! interfaces, next hop, AS numbers and masks (see common/norm.rs for the element mapping).
//!
//! Divergences are allowed only where listed below with their reason, or by one generic rule:
//! where tshark reports a data set it could not decode for lack of a template (data that came
//! before its template), Sluice holds the data and decodes it once the template arrives, so in
//! that frame Sluice may have more records; every record tshark did decode must still be among
//! Sluice's.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::norm::NormRecord;
use common::{compare, flow_captures, record_count};

type Frames = BTreeMap<u64, Vec<NormRecord>>;

/// How a capture may legitimately differ from an oracle.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Same records (modulo the held-data rule).
    Same,
    /// The oracle decodes records Sluice rejects on purpose.
    OracleOnly,
    /// Sluice decodes records the oracle cannot.
    SluiceOnly,
}

struct Divergence {
    file: &'static str,
    tshark: Expect,
    nfparser: Expect,
    /// Whether `sluice decode` must report errors (exit status 1).
    errors: bool,
    why: &'static str,
}

const DIVERGENCES: &[Divergence] = &[
    Divergence {
        file: "netflow5/invalid/netflow5_invalid01.pcap",
        tshark: Expect::OracleOnly,
        nfparser: Expect::Same,
        errors: true,
        why: "header count 55582 > 30: not a v5 datagram; tshark dissects 30 records anyway, \
              netflow_parser and logstash reject it as we do",
    },
    Divergence {
        file: "netflow5/invalid/netflow5_invalid02.pcap",
        tshark: Expect::OracleOnly,
        nfparser: Expect::Same,
        errors: true,
        why: "header count 163 > 30 and beyond the payload: rejected as by netflow_parser and \
              logstash",
    },
    Divergence {
        file: "netflow9/invalid/netflow9_invalid01.pcap",
        tshark: Expect::SluiceOnly,
        nfparser: Expect::Same,
        errors: false,
        why: "header count 2 but 6 well-formed sets; tshark stops after `count` sets, we frame \
              by set lengths (the count is a record count, RFC 3954 §5.1) and note the mismatch",
    },
    Divergence {
        file: "ipfix/ixia.pcap",
        tshark: Expect::Same,
        nfparser: Expect::SluiceOnly,
        errors: false,
        why: "zero-length variable-length values (legal, RFC 7011 §7) make netflow_parser 1.0.6 \
              drop the whole set; tshark and we decode them",
    },
    Divergence {
        file: "netflow9/ipt_netflow_reduced_size_encoding.pcap",
        tshark: Expect::Same,
        nfparser: Expect::Same,
        errors: true,
        why: "6 data sets whose template was never captured: nobody decodes them; we count them \
              as template_missing",
    },
];

fn sluice_decode(path: &Path) -> (Frames, usize, bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("decode")
        .arg("--annotate")
        .arg(path)
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}: sluice decode failed: {stderr}",
        path.display()
    );
    let docs = common::sluice_doc::parse_ndjson(&String::from_utf8_lossy(&out.stdout));
    let n = docs.len();
    (
        common::sluice_doc::records_by_frame(docs.iter()),
        n,
        out.status.code() == Some(1),
        stderr,
    )
}

/// Compares under the held-data rule: in frames where the oracle left data sets undecoded,
/// Sluice may have extra records but must contain every oracle record.
fn compare_held(
    ours: &Frames,
    theirs: &Frames,
    undecoded: &[(u64, u16)],
    what: &str,
) -> Vec<String> {
    let held_frames: Vec<u64> = undecoded.iter().map(|(f, _)| *f).collect();
    let mut a = ours.clone();
    let mut b = theirs.clone();
    let mut diffs = Vec::new();
    for f in &held_frames {
        let mine = a.remove(f).unwrap_or_default();
        let theirs = b.remove(f).unwrap_or_default();
        let mut rest = mine.clone();
        for r in &theirs {
            match rest.iter().position(|x| x == r) {
                Some(i) => {
                    rest.remove(i);
                }
                None => diffs.push(format!(
                    "{what}: frame {f}: oracle record missing in ours: {r}"
                )),
            }
        }
    }
    diffs.extend(compare(&a, &b, what));
    diffs
}

fn check_capture(path: &Path) -> Vec<String> {
    let rel = path
        .strip_prefix(common::captures_dir())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let div = DIVERGENCES.iter().find(|d| rel.ends_with(d.file));
    let (ours, n_docs, had_errors, stderr) = sluice_decode(path);
    let ts = common::tshark::tshark_decode(path);
    let nf = common::nfparser::nfparser_decode(path);
    let mut problems = Vec::new();
    assert!(
        ts.notes.is_empty(),
        "{rel}: tshark harness notes: {:?}",
        ts.notes
    );
    assert_eq!(n_docs, record_count(&ours));

    let expect_errors = div.is_some_and(|d| d.errors);
    if had_errors != expect_errors {
        problems.push(format!(
            "{rel}: sluice decode exit status says errors={had_errors}, expected {expect_errors}: {stderr}"
        ));
    }
    for (name, oracle, undecoded, expect) in [
        (
            "tshark",
            &ts.records,
            &ts.undecoded_sets,
            div.map_or(Expect::Same, |d| d.tshark),
        ),
        (
            "netflow_parser",
            &nf.records,
            &nf.undecoded_sets,
            div.map_or(Expect::Same, |d| d.nfparser),
        ),
    ] {
        let what = format!("{rel} sluice vs {name}");
        match expect {
            Expect::Same => problems.extend(compare_held(&ours, oracle, undecoded, &what)),
            Expect::OracleOnly => {
                if record_count(&ours) != 0 || record_count(oracle) == 0 {
                    problems.push(format!(
                        "{what}: expected the oracle alone to decode records: ours {}, {name} {}",
                        record_count(&ours),
                        record_count(oracle)
                    ));
                }
            }
            Expect::SluiceOnly => {
                if record_count(oracle) != 0 || record_count(&ours) == 0 {
                    problems.push(format!(
                        "{what}: expected Sluice alone to decode records: ours {}, {name} {}",
                        record_count(&ours),
                        record_count(oracle)
                    ));
                }
            }
        }
    }
    eprintln!(
        "{rel}: sluice {} tshark {} netflow_parser {}",
        record_count(&ours),
        record_count(&ts.records),
        record_count(&nf.records)
    );
    problems
}

fn check_dir(sub: &str, min_files: usize) {
    assert!(
        common::tshark::tshark_available(),
        "tshark is required (apt-get install tshark); the differential test does not skip"
    );
    let files: Vec<_> = flow_captures(&common::captures_dir())
        .into_iter()
        .filter(|p| {
            p.strip_prefix(common::captures_dir())
                .is_ok_and(|r| r.starts_with(sub))
        })
        .collect();
    assert!(
        files.len() >= min_files,
        "{sub}: found {} captures, expected at least {min_files}",
        files.len()
    );
    let mut problems = Vec::new();
    for f in &files {
        problems.extend(check_capture(f));
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_capture_is_covered() {
    // The four directories below cover every NetFlow/IPFIX capture; none may be skipped.
    let all = flow_captures(&common::captures_dir());
    let covered = all
        .iter()
        .filter(|p| {
            let r = p
                .strip_prefix(common::captures_dir())
                .expect("under captures");
            ["netflow5", "netflow9", "ipfix", "generated"]
                .iter()
                .any(|d| r.starts_with(d))
        })
        .count();
    assert_eq!(
        covered,
        all.len(),
        "captures outside the compared directories"
    );
    assert!(
        all.len() >= 73,
        "expected the 73 NetFlow/IPFIX captures, found {}",
        all.len()
    );
    for d in DIVERGENCES {
        assert!(
            all.iter().any(|p| p.ends_with(d.file)),
            "listed divergence for a missing file {}: {}",
            d.file,
            d.why
        );
    }
}

#[test]
fn netflow5_matches_oracles() {
    check_dir("netflow5", 6);
}

#[test]
fn netflow9_matches_oracles() {
    check_dir("netflow9", 30);
}

#[test]
fn ipfix_matches_oracles() {
    check_dir("ipfix", 20);
}

#[test]
fn generated_matches_oracles() {
    check_dir("generated", 13);
}
