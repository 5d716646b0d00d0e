//! `sluice top`: the N largest keys of a time range (talkers, conversations, ports, ASes ...)
//! from the local store or Elasticsearch, as an aligned table, JSON or CSV. What is counted
//! and how ties are broken is in `sluice_sink::top`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use sluice_sink::filter::Filter;
use sluice_sink::store::StoreReader;
use sluice_sink::top::{self as topn, By, IfNames, Key, Order, Row, Top};

use crate::config::Config;
use crate::dump_cmd::{Range, Source};

/// `--format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum TopFormat {
    /// An aligned table for people.
    Table,
    /// One JSON document: totals and ranked rows.
    Json,
    /// A header line and one line per row.
    Csv,
}

/// `--es-aggregation` (how two-field keys are aggregated in Elasticsearch).
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum PairsArg {
    /// multi_terms, else composite when the server does not know multi_terms.
    Auto,
    /// multi_terms only.
    MultiTerms,
    /// composite only.
    Composite,
}

/// Everything `top` was asked.
#[derive(Clone, Debug)]
pub struct Args {
    /// Grouping.
    pub by: By,
    /// Ranking.
    pub order: Order,
    /// Rows.
    pub n: usize,
    /// Time range; neither `--from` nor `--last`: the last 15 minutes.
    pub range: Range,
    /// `--where`.
    pub filter: Option<String>,
    /// Local store or Elasticsearch.
    pub source: Source,
    /// Output.
    pub format: TopFormat,
    /// Two-field aggregation in Elasticsearch.
    pub pairs: PairsArg,
    /// Threads scanning the local store; 0: one per core.
    pub threads: usize,
}

/// What a run read, for the table's footer and the JSON.
struct Meta {
    source: &'static str,
    from_ns: i64,
    to_ns: i64,
    records: Option<u64>,
    seconds: f64,
}

/// Runs `top` with `cfg` (its store, enrichment and Elasticsearch sections).
pub fn run(cfg: &Config, mut args: Args) -> Result<ExitCode> {
    if args.range.from.is_none() && args.range.last.is_none() {
        args.range.last = Some("15m".into());
    }
    let (from_ns, to_ns) = args.range.resolve()?;
    let filter = match &args.filter {
        Some(f) => Some(Filter::parse(f).map_err(|e| anyhow!("--where {f:?}: {e}"))?),
        None => None,
    };
    let started = Instant::now();
    let (top, records, exit) = match args.source {
        Source::Local => {
            let (top, records, lost) = local(
                cfg,
                &cfg.store.data_dir,
                &args,
                filter.as_ref(),
                from_ns,
                to_ns,
            )?;
            (top, Some(records), lost)
        }
        Source::Es => {
            let query = filter
                .as_ref()
                .map(sluice_sink::es::to_query)
                .transpose()
                .map_err(|e| anyhow!("--where cannot be sent to Elasticsearch: {e}"))?;
            let es = crate::ship::es_config(cfg)?;
            let q = sluice_sink::es::EsTopQuery {
                from_ns,
                to_ns,
                query,
                by: args.by,
                order: args.order,
                n: args.n,
                pairs: match args.pairs {
                    PairsArg::Auto => sluice_sink::es::PairStrategy::Auto,
                    PairsArg::MultiTerms => sluice_sink::es::PairStrategy::MultiTerms,
                    PairsArg::Composite => sluice_sink::es::PairStrategy::Composite,
                },
            };
            let top = sluice_sink::es::top(&es, &q)
                .map_err(|e| anyhow!("Elasticsearch aggregation: {e}"))?;
            (top, None, ExitCode::SUCCESS)
        }
    };
    let meta = Meta {
        source: match args.source {
            Source::Local => "local",
            Source::Es => "es",
        },
        from_ns,
        to_ns,
        records,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = match args.format {
        TopFormat::Table => table(&top, &meta),
        TopFormat::Json => {
            let mut s = serde_json::to_string(&to_json(&top, &meta))?;
            s.push('\n');
            s
        }
        TopFormat::Csv => csv(&top),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(exit)
}

/// The local store: (table, records read, exit status: failure if blocks were unreadable).
fn local(
    cfg: &Config,
    data_dir: &Path,
    args: &Args,
    filter: Option<&Filter>,
    from_ns: i64,
    to_ns: i64,
) -> Result<(Top, u64, ExitCode)> {
    // GeoIP databases are loaded only when the grouping needs them: a full City database
    // takes a while to load, and exporter settings (sampling overrides) are all the other
    // groupings use.
    let mut enrich = cfg.enrich.clone();
    if !matches!(args.by, By::As | By::Country) {
        enrich.geoip_city = None;
        enrich.geoip_asn = None;
    }
    let enricher = crate::run::enricher(&enrich)?;
    let flows = data_dir.join("flows");
    let reader = StoreReader::open(&flows)
        .with_context(|| format!("opening the store in {}", flows.display()))?;
    let q = topn::LocalQuery {
        from_ns,
        to_ns,
        filter,
        by: args.by,
        order: args.order,
        n: args.n,
        threads: match args.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        },
    };
    let (top, st) = topn::top_local(&reader, &q, &enricher)?;
    let lost = st.blocks_corrupt
        + st.blocks_unsupported
        + st.segments_corrupt
        + st.segments_unsupported
        + st.records_skipped;
    let exit = if lost > 0 {
        eprintln!(
            "sluice top: skipped {} corrupt blocks, {} blocks and {} segments of an unsupported format, {} corrupt segments, {} unreadable records",
            st.blocks_corrupt,
            st.blocks_unsupported,
            st.segments_unsupported,
            st.segments_corrupt,
            st.records_skipped
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    Ok((top, st.records, exit))
}

/// Column names of a grouping's key (as in the JSON `key` object and the CSV header).
fn key_columns(by: By) -> &'static [&'static str] {
    match by {
        By::Src => &["source.ip"],
        By::Dst => &["destination.ip"],
        By::Conversation => &["source.ip", "destination.ip"],
        By::Dport => &["destination.port"],
        By::Proto => &["network.iana_number", "network.transport"],
        By::As => &["as.number"],
        By::Country => &["geo.country_iso_code"],
        By::Exporter => &["observer.ip"],
        By::Interface => &["observer.ip", "interface.id"],
    }
}

/// Key values, in [`key_columns`] order.
fn key_values(key: &Key) -> Vec<Value> {
    match key {
        Key::Ip(a) => vec![json!(a.to_string())],
        Key::Pair(s, d) => vec![json!(s.to_string()), json!(d.to_string())],
        Key::Port(p) => vec![json!(p)],
        Key::Proto(p) => vec![
            json!(p.to_string()),
            sluice_enrich::protocol_name(*p).map_or(Value::Null, |n| json!(n)),
        ],
        Key::As(a) => vec![json!(a)],
        Key::Country(c) => vec![json!(&**c)],
        Key::Interface(e, i) => vec![json!(e.to_string()), json!(i)],
    }
}

/// A text that rides along with a key: (JSON and CSV name, table header, its value).
type Text = (&'static str, &'static str, fn(&IfNames) -> Option<&str>);

/// The texts of a grouping's rows, after the key columns: the interface's name and
/// description for `interface` (null in JSON, empty in CSV, `-` in the table when no flow
/// had them).
fn text_columns(by: By) -> &'static [Text] {
    const IF_TEXTS: [Text; 2] = [
        ("interface.name", "name", |n| n.name.as_deref()),
        ("interface.description", "description", |n| {
            n.description.as_deref()
        }),
    ];
    match by {
        By::Interface => &IF_TEXTS,
        _ => &[],
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn to_json(top: &Top, m: &Meta) -> Value {
    let cols = key_columns(top.by);
    let whole = top.total.get(top.order);
    let rows: Vec<Value> = top
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key: serde_json::Map<String, Value> = cols
                .iter()
                .map(|c| (*c).to_owned())
                .zip(key_values(&r.key))
                .collect();
            let mut row = json!({
                "rank": i + 1,
                "key": key,
                "bytes": r.counts.bytes,
                "packets": r.counts.packets,
                "flows": r.counts.flows,
                "percent": percent(r.counts.get(top.order), whole),
            });
            for (name, _, text) in text_columns(top.by) {
                row[*name] = text(&r.names).map_or(Value::Null, |t| json!(t));
            }
            row
        })
        .collect();
    json!({
        "by": top.by.as_str(),
        "order": top.order.as_str(),
        "source": m.source,
        "from": rfc3339(m.from_ns),
        "to": rfc3339(m.to_ns),
        "total": {
            "bytes": top.total.bytes,
            "packets": top.total.packets,
            "flows": top.total.flows,
        },
        "distinct_keys": top.distinct,
        "records_read": m.records,
        "rows": rows,
    })
}

fn rfc3339(ns: i64) -> String {
    let mut b = Vec::new();
    sluice_sink::timefmt::write_rfc3339(&mut b, ns);
    String::from_utf8_lossy(&b).into_owned()
}

/// A CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv(top: &Top) -> String {
    let mut out = String::from("rank,");
    let texts = text_columns(top.by);
    for c in key_columns(top.by).iter().chain(texts.iter().map(|t| &t.0)) {
        out.push_str(c);
        out.push(',');
    }
    out.push_str("bytes,packets,flows,percent\n");
    let whole = top.total.get(top.order);
    for (i, r) in top.rows.iter().enumerate() {
        let _ = write!(out, "{},", i + 1);
        for v in key_values(&r.key) {
            out.push_str(&csv_field(&v));
            out.push(',');
        }
        for (_, _, text) in texts {
            out.push_str(&csv_field(
                &text(&r.names).map_or(Value::Null, |t| json!(t)),
            ));
            out.push(',');
        }
        let _ = writeln!(
            out,
            "{},{},{},{:.3}",
            r.counts.bytes,
            r.counts.packets,
            r.counts.flows,
            percent(r.counts.get(top.order), whole)
        );
    }
    out
}

/// Bytes with an SI unit: `999 B`, `1.2 kB`, `34.5 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut u = 0;
    while v >= 999.95 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Table cells of a key, in [`key_columns`] order, for people.
fn key_cells(key: &Key) -> Vec<String> {
    match key {
        Key::Proto(p) => vec![match sluice_enrich::protocol_name(*p) {
            Some(n) => format!("{n} ({p})"),
            None => p.to_string(),
        }],
        Key::As(a) => vec![format!("AS{a}")],
        k => key_values(k).iter().map(csv_field).collect(),
    }
}

fn key_headers(by: By) -> &'static [&'static str] {
    match by {
        By::Conversation => &["src", "dst"],
        By::Interface => &["exporter", "if"],
        By::Src => &["src"],
        By::Dst => &["dst"],
        By::Dport => &["dport"],
        By::Proto => &["proto"],
        By::As => &["as"],
        By::Country => &["country"],
        By::Exporter => &["exporter"],
    }
}

fn table(top: &Top, m: &Meta) -> String {
    let whole = top.total.get(top.order);
    let heads = key_headers(top.by);
    // Texts no row has are left out: a table of unnamed interfaces looks as before.
    let texts: Vec<&Text> = text_columns(top.by)
        .iter()
        .filter(|(_, _, text)| top.rows.iter().any(|r: &Row| text(&r.names).is_some()))
        .collect();
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(heads.iter().map(|h| (*h).to_owned()));
    header.extend(texts.iter().map(|t| t.1.to_owned()));
    header.extend(["bytes", "packets", "flows", "%"].map(String::from));
    // Numbers right-aligned, keys and their texts left-aligned.
    let left = |col: usize| col >= 1 && col <= heads.len() + texts.len();
    let mut lines: Vec<Vec<String>> = vec![header];
    for (i, r) in top.rows.iter().enumerate() {
        let mut l = vec![(i + 1).to_string()];
        l.extend(key_cells(&r.key));
        l.extend(
            texts
                .iter()
                .map(|t| t.2(&r.names).unwrap_or("-").to_owned()),
        );
        l.push(human_bytes(r.counts.bytes));
        l.push(r.counts.packets.to_string());
        l.push(r.counts.flows.to_string());
        l.push(format!("{:.1}", percent(r.counts.get(top.order), whole)));
        lines.push(l);
    }
    let ncol = lines[0].len();
    let widths: Vec<usize> = (0..ncol)
        .map(|c| {
            lines
                .iter()
                .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "top {} {} by {}, {} to {} ({})\n",
        top.rows.len(),
        top.by,
        top.order,
        rfc3339(m.from_ns),
        rfc3339(m.to_ns),
        if m.source == "es" {
            "Elasticsearch"
        } else {
            "local store"
        }
    );
    for l in &lines {
        let mut line = String::new();
        for (c, cell) in l.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c].saturating_sub(cell.chars().count());
            if left(c) {
                line.push_str(cell);
                if c + 1 < ncol {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let _ = write!(
        out,
        "total: {}, {} packets, {} flows",
        human_bytes(top.total.bytes),
        top.total.packets,
        top.total.flows
    );
    if let Some(d) = top.distinct {
        let _ = write!(out, "; {d} distinct keys");
    }
    if top.by.either_end() {
        out.push_str(" (a flow counts for each end's key: % can add up to more than 100)");
    }
    out.push('\n');
    match m.records {
        Some(r) => {
            let rate = if m.seconds > 0.0 {
                r as f64 / m.seconds
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "read {r} records in {:.2} s ({:.0} records/s)",
                m.seconds, rate
            );
        }
        None => {
            let _ = writeln!(out, "answered in {:.2} s", m.seconds);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(999_960), "1.0 MB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }

    fn conv(src: &str, dst: &str, bytes: u64, packets: u64) -> topn::Row {
        topn::Row {
            key: Key::Pair(src.parse().expect("ip"), dst.parse().expect("ip")),
            counts: topn::Counts {
                bytes,
                packets,
                flows: 1,
            },
            names: topn::IfNames::default(),
        }
    }

    #[test]
    fn table_aligns_columns() {
        let top = Top {
            by: By::Conversation,
            order: Order::Bytes,
            rows: vec![
                conv("10.0.0.1", "2001:db8::1", 3000, 3),
                conv("10.0.0.22", "8.8.8.8", 1000, 1),
            ],
            total: topn::Counts {
                bytes: 4000,
                packets: 4,
                flows: 2,
            },
            distinct: Some(2),
        };
        let t = table(&top, &META);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "rank  src        dst           bytes  packets  flows     %"
        );
        assert_eq!(
            lines[2],
            "   1  10.0.0.1   2001:db8::1  3.0 kB        3      1  75.0"
        );
        assert_eq!(
            lines[3],
            "   2  10.0.0.22  8.8.8.8      1.0 kB        1      1  25.0"
        );
        assert!(lines[4].starts_with("total: 4.0 kB, 4 packets, 2 flows; 2 distinct"));
        let c = csv(&top);
        assert_eq!(
            c.lines().next(),
            Some("rank,source.ip,destination.ip,bytes,packets,flows,percent")
        );
        assert_eq!(
            c.lines().nth(1),
            Some("1,10.0.0.1,2001:db8::1,3000,3,1,75.000")
        );
    }

    fn iface(index: u32, bytes: u64, name: Option<&str>, description: Option<&str>) -> topn::Row {
        topn::Row {
            key: Key::Interface("192.0.2.1".parse().expect("ip"), index),
            counts: topn::Counts {
                bytes,
                packets: 1,
                flows: 1,
            },
            names: IfNames {
                name: name.map(Box::from),
                description: description.map(Box::from),
            },
        }
    }

    fn interfaces(rows: Vec<topn::Row>) -> Top {
        Top {
            by: By::Interface,
            order: Order::Bytes,
            total: topn::Counts {
                bytes: rows.iter().map(|r| r.counts.bytes).sum(),
                packets: 2,
                flows: 2,
            },
            distinct: Some(rows.len() as u64),
            rows,
        }
    }

    const META: Meta = Meta {
        source: "local",
        from_ns: 0,
        to_ns: 1,
        records: Some(2),
        seconds: 0.5,
    };

    #[test]
    fn interface_rows_show_names_and_descriptions() {
        let top = interfaces(vec![
            iface(7, 3000, Some("ge-0/0/7"), Some("uplink, to pop-2")),
            iface(12, 1000, None, None),
            iface(3, 500, None, Some("lab")),
        ]);
        let t = table(&top, &META);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "rank  exporter   if  name      description        bytes  packets  flows     %"
        );
        assert_eq!(
            lines[2],
            "   1  192.0.2.1  7   ge-0/0/7  uplink, to pop-2  3.0 kB        1      1  66.7"
        );
        assert_eq!(
            lines[3],
            "   2  192.0.2.1  12  -         -                 1.0 kB        1      1  22.2"
        );
        assert_eq!(
            lines[4],
            "   3  192.0.2.1  3   -         lab                500 B        1      1  11.1"
        );
        let c: Vec<String> = csv(&top).lines().map(String::from).collect();
        assert_eq!(
            c[0],
            "rank,observer.ip,interface.id,interface.name,interface.description,bytes,packets,flows,percent"
        );
        assert_eq!(
            c[1],
            "1,192.0.2.1,7,ge-0/0/7,\"uplink, to pop-2\",3000,1,1,66.667"
        );
        assert_eq!(c[2], "2,192.0.2.1,12,,,1000,1,1,22.222");
        let j = to_json(&top, &META);
        let rows = j["rows"].as_array().expect("rows");
        assert_eq!(rows[0]["interface.name"], "ge-0/0/7");
        assert_eq!(rows[0]["interface.description"], "uplink, to pop-2");
        assert_eq!(
            rows[0]["key"],
            json!({"observer.ip": "192.0.2.1", "interface.id": 7})
        );
        assert!(rows[1]["interface.name"].is_null());
        assert!(rows[1]["interface.description"].is_null());
        assert_eq!(rows[2]["interface.description"], "lab");
    }

    #[test]
    fn unnamed_interfaces_print_as_before() {
        let top = interfaces(vec![
            iface(7, 3000, None, None),
            iface(12, 1000, None, None),
        ]);
        let t = table(&top, &META);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "rank  exporter   if   bytes  packets  flows     %"
        );
        assert_eq!(
            lines[2],
            "   1  192.0.2.1  7   3.0 kB        1      1  75.0"
        );
        // JSON and CSV keep their columns, empty.
        assert_eq!(
            csv(&top).lines().nth(2),
            Some("2,192.0.2.1,12,,,1000,1,1,25.000")
        );
        let j = to_json(&top, &META);
        assert!(j["rows"][0]["interface.name"].is_null());
        // Other groupings have no such columns.
        let mut other = top.clone();
        other.by = By::Exporter;
        other
            .rows
            .iter_mut()
            .for_each(|r| r.key = Key::Ip("192.0.2.1".parse().expect("ip")));
        let j = to_json(&other, &META);
        assert!(j["rows"][0].get("interface.name").is_none());
    }
}
