//! `sluice ingest vpc`: VPC Flow Logs files (plain, gzip, CloudWatch Logs export, standard
//! input; default and custom formats; NODATA/SKIPDATA) into the local store, read back with
//! `sluice dump`; and into Elasticsearch, where ingesting a file twice creates nothing twice.

mod common;

#[path = "../../sink/tests/es_util/mod.rs"]
mod es_util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::collector::TempDir;
use serde_json::Value;

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

fn gzip(src: &str, dst: &Path) {
    let f = std::fs::File::create(dst).expect("create");
    let mut z = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    z.write_all(src.as_bytes()).expect("gzip");
    z.finish().expect("gzip end");
}

fn logs() -> PathBuf {
    common::captures_dir().join("../logs")
}

fn ingest(args: &[&Path], extra: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = sluice();
    cmd.args(["ingest", "vpc"]).args(extra).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run sluice ingest");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

fn dump(data: &Path) -> Vec<Value> {
    let out = sluice()
        .arg("dump")
        .arg("--data-dir")
        .arg(data)
        .args([
            "--from",
            "1971-01-01T00:00:00Z",
            "--to",
            "2200-01-01T00:00:00Z",
        ])
        .output()
        .expect("dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn files_of_every_kind_go_to_the_store() {
    let dir = TempDir::new("vpc");
    let data = dir.0.join("data");
    // The custom-format sample, gzipped as S3 delivers it.
    let custom = std::fs::read_to_string(logs().join("vpc-flow-logs-custom.log")).expect("read");
    let custom_gz = dir.0.join("custom.log.gz");
    gzip(&custom, &custom_gz);
    // A CloudWatch Logs export: each line starts with the event's time; gzipped, with a
    // SKIPDATA record and a line that does not parse.
    let cw = "2026-11-22T09:15:01.000Z 2 123456789010 eni-0a1b2c3d4e5f60718 2001:db8::10 2001:db8::20 53000 443 6 5 900 1763800300 1763800360 ACCEPT OK\n\
              2026-11-22T09:15:02.000Z 2 123456789010 eni-0a1b2c3d4e5f60718 - - - - - - - 1763800300 1763800360 - SKIPDATA\n\
              2026-11-22T09:15:03.000Z 2 123456789010 eni-0a1b2c3d4e5f60718 truncated\n";
    let cw_gz = dir.0.join("cloudwatch-export.gz");
    gzip(cw, &cw_gz);
    // Standard input, default format.
    let stdin = "2 123456789010 eni-0123 192.0.2.1 192.0.2.2 1 2 17 3 300 1763800400 1763800460 REJECT OK\n";
    let v2 = logs().join("vpc-flow-logs-v2.log");
    let out = ingest(
        &[&v2, &custom_gz, &cw_gz, Path::new("-")],
        &["--data-dir", data.to_str().expect("utf-8")],
        Some(stdin),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // One record did not parse: stored anyway, and the exit status says so.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("6 VPC flow records, 1 NODATA and 1 SKIPDATA skipped, 1 header lines"),
        "{err}"
    );
    assert!(err.contains("vpc_field_count: 1"), "{err}");
    assert!(err.contains("6 stored"), "{err}");

    let docs = dump(&data);
    assert_eq!(docs.len(), 6);
    let find = |src: &str| {
        docs.iter()
            .find(|d| d["source"]["ip"] == src)
            .unwrap_or_else(|| panic!("no record from {src}"))
    };
    let d = find("10.40.1.10");
    assert_eq!(d["destination"]["port"], 5432);
    assert_eq!(d["event"]["action"], "allow");
    assert_eq!(d["network"]["bytes"], 3021);
    assert_eq!(d["network"]["packets"], 12);
    assert_eq!(d["cloud"]["account"]["id"], "210987654321");
    assert_eq!(d["aws"]["vpcflow"]["interface_id"], "eni-0f1e2d3c4b5a69788");
    assert_eq!(d["event"]["start"], "2025-11-22T08:26:40.000Z");
    assert_eq!(d["@timestamp"], "2025-11-22T08:27:40.000Z");
    assert!(d["observer"]["ip"].is_null(), "files have no exporter");
    let d = find("198.18.77.7");
    assert_eq!(d["event"]["action"], "deny");
    assert_eq!(d["aws"]["vpcflow"]["action"], "REJECT");
    let d = find("10.40.3.3");
    assert_eq!(d["aws"]["vpcflow"]["vpc_id"], "vpc-0f0e0d0c");
    assert_eq!(d["aws"]["vpcflow"]["pkt_dstaddr"], "198.18.99.9");
    assert_eq!(d["cloud"]["instance"]["id"], "i-0aa0bb0cc0dd0ee0f");
    assert_eq!(d["network"]["tcp_flags"], serde_json::json!(["FIN", "SYN"]));
    let d = find("2001:db8::10");
    assert_eq!(d["network"]["type"], "ipv6");
    let d = find("192.0.2.1");
    assert_eq!(d["network"]["transport"], "udp");
    let bad: Vec<&Value> = docs.iter().filter(|d| d["tags"].is_array()).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["error"]["type"], "vpc_field_count");
    assert_eq!(
        bad[0]["event"]["original"],
        "2026-11-22T09:15:03.000Z 2 123456789010 eni-0a1b2c3d4e5f60718 truncated"
    );
    // The CloudWatch time stands in for the missing start/end.
    assert_eq!(bad[0]["@timestamp"], "2026-11-22T09:15:03.000Z");
}

#[test]
fn a_format_without_header_and_bad_input() {
    let dir = TempDir::new("vpcfmt");
    let data = dir.0.join("data");
    let f = dir.0.join("nat-gateway.log");
    std::fs::write(
        &f,
        "- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5\n",
    )
    .expect("write");
    let out = ingest(
        &[&f],
        &[
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--format",
            "${instance-id} ${interface-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr}",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = dump(&data);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["aws"]["vpcflow"]["pkt_dstaddr"], "203.0.113.5");
    assert!(docs[0]["cloud"]["instance"].is_null(), "'-' is no value");
    let out = ingest(&[&f], &["--format", "version nonsense"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
    let out = ingest(&[Path::new("/nonexistent/vpc.log")], &[], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn elasticsearch_gets_each_record_once_however_often_a_file_is_ingested() {
    let es = es_util::FakeEs::start();
    let dir = TempDir::new("vpces");
    let cfg = dir.0.join("sluice.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nenabled = false\ndata_dir = \"{}\"\n\n[elasticsearch]\nenabled = true\nurls = [\"{}\"]\nflush_interval = \"100ms\"\n",
            dir.0.join("data").display(),
            es.url()
        ),
    )
    .expect("config");
    let v5 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vpc-v5.log");
    let c = cfg.to_str().expect("utf-8");
    for round in 0..2 {
        let out = ingest(&[&v5], &["--config", c], None);
        let err = String::from_utf8_lossy(&out.stderr);
        // The file's third record has a bad address: tagged, shipped, exit status 1.
        assert_eq!(out.status.code(), Some(1), "{err}");
        let dup = if round == 0 { 0 } else { 3 };
        assert!(
            err.contains(&format!(
                "3 delivered to Elasticsearch ({dup} of them already there), 0 waiting"
            )),
            "{err}"
        );
    }
    let inner = es.inner();
    assert_eq!(inner.docs.len(), 3);
    assert!(
        inner.creates.values().all(|&n| n == 1),
        "each id created once"
    );
    assert_eq!(inner.conflicts, 3);
    let d = inner
        .docs
        .values()
        .find(|d| d.source["aws"]["vpcflow"]["traffic_path"] == 8)
        .expect("the egress record");
    assert_eq!(d.source["aws"]["vpcflow"]["pkt_dst_aws_service"], "S3");
    assert_eq!(d.source["aws"]["vpcflow"]["sublocation_type"], "outpost");
    assert_eq!(d.source["cloud"]["region"], "ap-southeast-2");
    assert_eq!(d.source["network"]["direction"], "egress");
    assert!(
        d.index.starts_with("sluice-flows-2025.11.22"),
        "{}",
        d.index
    );
}
