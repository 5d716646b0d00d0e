//! `sluice top` against an independent count. A real collector stores the flows of several
//! shared captures (NetFlow v5, v9, IPFIX with biflows, from two exporters, one of them with
//! a sampling override) in its local store and ships them to osmem-server (an
//! OpenSearch-compatible server). For each source the test reads every document back with
//! `sluice dump`, sums bytes, packets and flows per key itself, and checks every `--by`
//! and `--order` (and a few `--where` filters, evaluated here by a brute-force predicate)
//! against `sluice top --format json`: the same keys with the same counts, ranked, the same
//! totals and percentages.

mod common;

#[path = "../../sink/tests/es_util/mod.rs"]
mod es_util;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use common::collector::{replay, wait_until, Collector, Options, TempDir};
use serde_json::Value;

const BYS: [&str; 9] = [
    "src",
    "dst",
    "conversation",
    "dport",
    "proto",
    "as",
    "country",
    "exporter",
    "interface",
];
const ORDERS: [&str; 3] = ["bytes", "packets", "flows"];
const ALL_TIME: [&str; 4] = [
    "--from",
    "1971-01-01T00:00:00Z",
    "--to",
    "2200-01-01T00:00:00Z",
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    bytes: u64,
    packets: u64,
    flows: u64,
}

impl Counts {
    fn get(&self, order: &str) -> u64 {
        match order {
            "bytes" => self.bytes,
            "packets" => self.packets,
            _ => self.flows,
        }
    }
}

/// A key as a canonical string: the values of the key, addresses with IPv4-mapped IPv6
/// written as IPv4, joined by `|`.
fn canon(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(match s.parse::<IpAddr>() {
            Ok(a) => a.to_canonical().to_string(),
            Err(_) => s.clone(),
        }),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field<'a>(d: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(d, |v, k| &v[k])
}

/// The keys a document counts toward for `by`, by the rules of `sluice_sink::top` read off
/// the documents themselves.
fn keys_of(d: &Value, by: &str) -> BTreeSet<String> {
    let one = |p: &str| canon(field(d, p)).into_iter().collect::<BTreeSet<_>>();
    let pair = |a: &str, b: &str| match (canon(field(d, a)), canon(field(d, b))) {
        (Some(a), Some(b)) => Some(format!("{a}|{b}")),
        _ => None,
    };
    match by {
        "src" => one("source.ip"),
        "dst" => one("destination.ip"),
        "conversation" => pair("source.ip", "destination.ip").into_iter().collect(),
        "dport" => one("destination.port"),
        "proto" => one("network.iana_number"),
        "as" => one("source.as.number")
            .into_iter()
            .chain(one("destination.as.number"))
            .collect(),
        "country" => one("source.geo.country_iso_code")
            .into_iter()
            .chain(one("destination.geo.country_iso_code"))
            .collect(),
        "exporter" => one("observer.ip"),
        "interface" => pair("observer.ip", "observer.ingress.interface.id")
            .into_iter()
            .chain(pair("observer.ip", "observer.egress.interface.id"))
            .collect(),
        _ => panic!("{by}"),
    }
}

fn counts_of(d: &Value) -> Counts {
    Counts {
        bytes: d["network"]["bytes"].as_u64().unwrap_or(0),
        packets: d["network"]["packets"].as_u64().unwrap_or(0),
        flows: 1,
    }
}

/// Per key, and the total.
fn expected(docs: &[&Value], by: &str) -> (BTreeMap<String, Counts>, Counts) {
    let mut m: BTreeMap<String, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for d in docs {
        let c = counts_of(d);
        total.bytes += c.bytes;
        total.packets += c.packets;
        total.flows += 1;
        for k in keys_of(d, by) {
            let e = m.entry(k).or_default();
            e.bytes += c.bytes;
            e.packets += c.packets;
            e.flows += 1;
        }
    }
    (m, total)
}

/// Per `interface` key, the (name, description) `top` shows, by the rule of
/// `sluice_sink::top` read off the documents: of the most recent flow with either text on
/// that end, then the greatest name, then description. (@timestamp strings compare in time
/// order: one format, UTC. The config gives each interface a single name here; renames and
/// ties are checked in the sink's `store_top` and `es_top` tests.)
fn interface_texts(docs: &[&Value]) -> BTreeMap<String, (Value, Value)> {
    let mut best: BTreeMap<String, (String, Value, Value)> = BTreeMap::new();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    for d in docs {
        let ts = d["@timestamp"].as_str().unwrap_or("").to_owned();
        for end in ["ingress", "egress"] {
            let i = &d["observer"][end]["interface"];
            let (Some(ip), Some(id)) = (canon(&d["observer"]["ip"]), canon(&i["id"])) else {
                continue;
            };
            if i["name"].is_null() && i["alias"].is_null() {
                continue;
            }
            let seen = (ts.clone(), i["name"].clone(), i["alias"].clone());
            let order = |s: &(String, Value, Value)| (s.0.clone(), text(&s.1), text(&s.2));
            let e = best
                .entry(format!("{ip}|{id}"))
                .or_insert_with(|| seen.clone());
            if order(&seen) > order(e) {
                *e = seen;
            }
        }
    }
    best.into_iter().map(|(k, (_, n, a))| (k, (n, a))).collect()
}

/// stdout of a `sluice` run that must succeed.
fn stdout_of(args: &[&str]) -> String {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    common::collector::sluice_stdout(&args)
}

fn sluice(args: &[&str]) -> Value {
    let text = stdout_of(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("sluice {args:?}: not JSON ({e}): {text}"))
}

fn ndjson(args: &[&str]) -> Vec<Value> {
    stdout_of(args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Checks one `top --format json` answer against the documents it was computed from.
fn check(what: &str, got: &Value, docs: &[&Value], by: &str, order: &str, n: usize) {
    let (want, total) = expected(docs, by);
    let t = &got["total"];
    assert_eq!(
        t["bytes"].as_u64(),
        Some(total.bytes),
        "{what}: total bytes"
    );
    assert_eq!(
        t["packets"].as_u64(),
        Some(total.packets),
        "{what}: total packets"
    );
    assert_eq!(
        t["flows"].as_u64(),
        Some(total.flows),
        "{what}: total flows"
    );
    if got["source"] == "local" {
        assert_eq!(
            got["distinct_keys"].as_u64(),
            Some(want.len() as u64),
            "{what}: distinct keys"
        );
    }
    let rows = got["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), n.min(want.len()), "{what}: row count");
    let mut best: Vec<u64> = want.values().map(|c| c.get(order)).collect();
    best.sort_unstable_by(|a, b| b.cmp(a));
    let whole = total.get(order);
    let texts = interface_texts(docs);
    let mut seen = BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["rank"].as_u64(), Some(i as u64 + 1), "{what}: rank");
        let key: Vec<String> = r["key"]
            .as_object()
            .expect("key object")
            .iter()
            // The protocol name rides along with the number; the number is the key.
            .filter(|(k, _)| *k != "network.transport")
            .map(|(_, v)| canon(v).unwrap_or_else(|| panic!("{what}: key value {v}")))
            .collect();
        // serde_json keeps object keys sorted: put pairs back in column order.
        let key = match by {
            "conversation" => format!(
                "{}|{}",
                r["key"]["source.ip"].as_str().unwrap_or(""),
                r["key"]["destination.ip"].as_str().unwrap_or("")
            ),
            "interface" => format!(
                "{}|{}",
                r["key"]["observer.ip"].as_str().unwrap_or(""),
                r["key"]["interface.id"]
            ),
            _ => key.join("|"),
        };
        assert!(seen.insert(key.clone()), "{what}: {key} twice");
        let w = want
            .get(&key)
            .unwrap_or_else(|| panic!("{what}: row {key} is not a key of the documents"));
        let c = Counts {
            bytes: r["bytes"].as_u64().expect("bytes"),
            packets: r["packets"].as_u64().expect("packets"),
            flows: r["flows"].as_u64().expect("flows"),
        };
        assert_eq!(c, *w, "{what}: counts of {key}");
        if by == "interface" {
            let (name, description) = texts.get(&key).cloned().unwrap_or_default();
            assert_eq!(r["interface.name"], name, "{what}: name of {key}");
            assert_eq!(
                r["interface.description"], description,
                "{what}: description of {key}"
            );
        }
        // Rank i holds the i-th largest value (keys tied on it may come in either order
        // here; the ranking rule is checked by the unit tests).
        assert_eq!(c.get(order), best[i], "{what}: rank {} of {key}", i + 1);
        let pct = r["percent"].as_f64().expect("percent");
        let want_pct = if whole == 0 {
            0.0
        } else {
            c.get(order) as f64 * 100.0 / whole as f64
        };
        assert!(
            (pct - want_pct).abs() < 1e-9,
            "{what}: percent {pct} vs {want_pct}"
        );
    }
}

/// Sends every UDP payload of a capture to `port` on ::1 (the second exporter).
fn replay_v6(pcap: &std::path::Path, port: u16) -> usize {
    let dgs = common::pcap::read_udp_datagrams(pcap).expect("read capture");
    let s = UdpSocket::bind("[::1]:0").expect("bind ::1");
    for d in &dgs {
        s.send_to(&d.payload, ("::1", port)).expect("send");
    }
    dgs.len()
}

type Pred = fn(&Value) -> bool;

fn proto(d: &Value) -> Option<&str> {
    d["network"]["iana_number"].as_str()
}

fn port(d: &Value, side: &str) -> Option<u64> {
    d[side]["port"].as_u64()
}

/// `--where` expressions and the same selection written out by hand.
const FILTERS: &[(&str, Pred)] = &[
    ("not proto tcp", |d| proto(d) != Some("6")),
    ("src net 89.160.20.112/28 or dst port 80", |d| {
        d["source"]["ip"].as_str().is_some_and(|s| {
            s.starts_with("89.160.20.")
                && s[10..].parse::<u8>().is_ok_and(|x| (112..128).contains(&x))
        }) || port(d, "destination") == Some(80)
    }),
    ("udp and port 1024-65535 and not exporter ::1", |d| {
        proto(d) == Some("17")
            && (port(d, "source").is_some_and(|p| p >= 1024)
                || port(d, "destination").is_some_and(|p| p >= 1024))
            && d["observer"]["ip"] != "::1"
    }),
];

/// Interface texts for exporter ::1: names for ifIndex 0 to 3, descriptions for 0 and 2
/// (an ifIndex without either stays unnamed).
const NAMED_INTERFACES: &str = "interfaces = [\
    { index = 0, name = \"lo0\", description = \"loopback, internal\" },\
    { index = 1, name = \"ge-0/0/1\" },\
    { index = 2, name = \"ge-0/0/2\", description = \"uplink to pop-7\" },\
    { index = 3, name = \"ge-0/0/3\" }]\n";

#[test]
fn top_matches_an_independent_count_in_the_store_and_in_opensearch() {
    let os = es_util::osmem::start_osmem();
    let dir = TempDir::new("top");
    let geo = common::captures_dir().join("../geoip");
    let opts = Options {
        extra: format!(
            "[elasticsearch]\nenabled = true\nurls = [\"{}\"]\nflush_interval = \"200ms\"\n\n\
             [enrich]\ngeoip_city = \"{}\"\ngeoip_asn = \"{}\"\n\n\
             [[enrich.exporter]]\naddress = \"::1\"\nsampling_interval = 3\n{}",
            os.url,
            geo.join("GeoLite2-City-Test.mmdb").display(),
            geo.join("GeoLite2-ASN-Test.mmdb").display(),
            NAMED_INTERFACES
        ),
        ..Options::default()
    };
    let c = Collector::start(&dir.0, &opts);
    let caps = common::captures_dir();
    let mut want = 0;
    for (f, n) in [
        ("generated/pmacctd_nfprobe_v9.pcap", 46),
        ("generated/softflowd_v5.pcap", 30),
        ("netflow9/ubiquiti_edgerouter_mpls.pcap", 16),
    ] {
        replay(&caps.join(f), c.netflow_port);
        want += n;
    }
    for (f, n) in [
        ("generated/softflowd_ipfix.pcap", 46),
        ("generated/softflowd_ipfix_biflow.pcap", 25),
    ] {
        replay(&caps.join(f), c.ipfix_port);
        want += n;
    }
    replay_v6(
        &caps.join("generated/pmacctd_nfprobe_ipfix.pcap"),
        c.ipfix_port,
    );
    want += 46;
    assert!(
        wait_until(Duration::from_secs(15), || c
            .metric("sluice_store_records_total")
            >= want as f64),
        "store: {}",
        c.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || c
            .metric("sluice_es_documents_total{outcome=\"shipped\"}")
            >= want as f64),
        "Elasticsearch: {}",
        c.log_text()
    );
    let data_dir = c.data_dir.display().to_string();
    let config = c.config.display().to_string();

    // The local store.
    let mut dump = vec!["dump", "--config", &config, "--data-dir", &data_dir];
    dump.extend(ALL_TIME);
    // With the config: read-time enrichment (GeoIP, the sampling override) as `top` does it.
    let local = ndjson(&dump);
    assert_eq!(local.len(), want);
    // The test data exercise what it should: both exporters, sampling, biflows, GeoIP.
    assert!(local.iter().any(|d| d["observer"]["ip"] == "::1"));
    assert!(local.iter().any(|d| d["network"]["sampling_interval"] == 3));
    assert!(local.iter().any(|d| !d["destination"]["bytes"].is_null()));
    assert!(local
        .iter()
        .any(|d| !d["source"]["geo"]["country_iso_code"].is_null()));
    let texts = interface_texts(&local.iter().collect::<Vec<_>>());
    assert!(
        texts.keys().any(|k| k.starts_with("::1|")),
        "named interfaces of ::1: {texts:?}"
    );
    let base = |by: &'static str, order: &'static str, n: &'static str| {
        let mut a = vec![
            "top",
            "--config",
            &config,
            "--data-dir",
            &data_dir,
            "--format",
            "json",
        ];
        a.extend(["--by", by, "--order", order, "-n", n]);
        a.extend(ALL_TIME);
        a
    };
    let all: Vec<&Value> = local.iter().collect();
    for by in BYS {
        let (keys, _) = expected(&all, by);
        assert!(
            keys.len() >= 2,
            "{by}: the data have only {} keys",
            keys.len()
        );
        for order in ORDERS {
            let got = sluice(&base(by, order, "5"));
            check(&format!("local {by} {order}"), &got, &all, by, order, 5);
        }
        // The whole table, on one thread and on three (each scanning a third of the blocks).
        for threads in ["1", "3"] {
            let mut a = base(by, "bytes", "1000");
            a.extend(["--threads", threads]);
            let what = format!("local {by} all, {threads} threads");
            check(&what, &sluice(&a), &all, by, "bytes", 1000);
        }
    }
    for (expr, pred) in FILTERS {
        let sel: Vec<&Value> = local.iter().filter(|d| pred(d)).collect();
        assert!(
            !sel.is_empty() && sel.len() < local.len(),
            "{expr} selects a proper subset"
        );
        for by in ["src", "conversation", "as"] {
            let mut a = base(by, "bytes", "1000");
            a.extend(["--where", expr]);
            check(
                &format!("local {by} where {expr}"),
                &sluice(&a),
                &sel,
                by,
                "bytes",
                1000,
            );
        }
    }

    // OpenSearch: every document shipped is searchable, then the same checks.
    let es_dump = |filter: Option<&str>| {
        let mut a = vec!["dump", "--source", "es", "--es", &os.url];
        a.extend(ALL_TIME);
        if let Some(f) = filter {
            a.extend(["--where", f]);
        }
        ndjson(&a)
    };
    let mut remote = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            remote = es_dump(None);
            remote.len() >= want
        }),
        "{} of {want} documents searchable",
        remote.len()
    );
    assert_eq!(remote.len(), want);
    let es = |by: &'static str, order: &'static str, n: &'static str| {
        let mut a = base(by, order, n);
        a.extend(["--source", "es", "--es", &os.url]);
        a
    };
    // Runs go two at a time.
    struct Job<'a> {
        what: String,
        args: Vec<&'a str>,
        docs: Vec<&'a Value>,
        by: &'static str,
        order: &'static str,
        n: usize,
    }
    let mut jobs: Vec<Job<'_>> = Vec::new();
    let all: Vec<&Value> = remote.iter().collect();
    // osmem spends about a millisecond of CPU per document and metric of an aggregation, so
    // each grouping is checked with two of the three orders (every order with several
    // groupings): a 5-row table and the whole table.
    for (i, by) in BYS.into_iter().enumerate() {
        for (order, n) in [(ORDERS[i % 3], 5), (ORDERS[(i + 1) % 3], 1000)] {
            let ns = if n == 5 { "5" } else { "1000" };
            jobs.push(Job {
                what: format!("es {by} {order} -n {n}"),
                args: es(by, order, ns),
                docs: all.clone(),
                by,
                order,
                n,
            });
        }
    }
    // The fallback for servers without multi_terms: composite pages.
    for by in ["conversation", "interface"] {
        let mut args = es(by, "flows", "5");
        args.extend(["--es-aggregation", "composite"]);
        jobs.push(Job {
            what: format!("es composite {by}"),
            args,
            docs: all.clone(),
            by,
            order: "flows",
            n: 5,
        });
    }
    // One grouping per filter here (the local checks above run three each).
    for ((expr, pred), by) in FILTERS.iter().zip(["src", "as", "conversation"]) {
        let sel: Vec<&Value> = remote.iter().filter(|d| pred(d)).collect();
        // `dump --source es --where` sends the same translation.
        assert_eq!(es_dump(Some(expr)).len(), sel.len(), "es dump where {expr}");
        let mut args = es(by, "bytes", "1000");
        args.extend(["--where", expr]);
        jobs.push(Job {
            what: format!("es {by} where {expr}"),
            args,
            docs: sel,
            by,
            order: "bytes",
            n: 1000,
        });
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(j) = jobs.get(i) else { break };
                let got = sluice(&j.args);
                assert_eq!(got["source"], "es", "{}", j.what);
                check(&j.what, &got, &j.docs, j.by, j.order, j.n);
            });
        }
    });
}
