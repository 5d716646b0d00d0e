//! The Kibana saved objects of `ops/kibana/` checked without a Kibana: ids unique, every
//! reference (saved-object references and the names Lens, Maps, saved searches and
//! dashboards use to point into them) resolves, the nine dashboards exist, and every field a
//! visualization, map, search or query uses is in the index template generated from the field
//! table (`sink/src/schema.rs`) with a type that fits its use, and is non-empty in the
//! documents `sluice decode` makes from the shared captures (GeoIP/AS enrichment from the
//! MaxMind test databases in ../shared/geoip, an exporter named in a config).
//!
//! Fields of the firewall events (the syslog work) that the field table does not have yet
//! are listed in [`PENDING`]; only the Firewall dashboard may use them, and the test fails as
//! soon as one of them reaches the field table, so the list cannot go stale.
//!
//! The unit tests at the end mutate the shipped objects and show each check failing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// Fields a dashboard may use before they are in the field table (none now: the firewall
/// syslog parsers brought `rule.name` and `observer.*`). Only the Firewall dashboard may use
/// such fields, and the check fails once one reaches the table, so the list cannot go stale.
const PENDING: &[&str] = &[];

/// The dashboard allowed to use [`PENDING`] fields, with the objects it shows.
const FIREWALL_DASHBOARD: &str = "sluice-firewall";

/// The dashboards the project promises (issue 8).
const REQUIRED_DASHBOARDS: &[&str] = &[
    "Sluice: Overview",
    "Sluice: Top-N",
    "Sluice: Conversation partners",
    "Sluice: Traffic over time",
    "Sluice: Geo",
    "Sluice: Autonomous systems",
    "Sluice: Exporters and interfaces",
    "Sluice: Flow records",
    "Sluice: Firewall",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ndjson_path() -> PathBuf {
    root().join("ops/kibana/sluice-dashboards.ndjson")
}

/// The saved objects, one JSON object per line.
fn load(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// Index template fields: dotted path -> Elasticsearch type.
fn template_fields() -> BTreeMap<String, String> {
    fn walk(
        prefix: &str,
        props: &serde_json::Map<String, Value>,
        out: &mut BTreeMap<String, String>,
    ) {
        for (k, v) in props {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let Some(t) = v.get("type").and_then(Value::as_str) {
                out.insert(path.clone(), t.to_owned());
            }
            if let Some(p) = v.get("properties").and_then(Value::as_object) {
                walk(&path, p, out);
            }
        }
    }
    let t: Value = serde_json::from_str(&sluice_sink::schema::index_template())
        .expect("the generated index template is JSON");
    let props = t["template"]["mappings"]["properties"]
        .as_object()
        .expect("template properties");
    let mut out = BTreeMap::new();
    walk("", props, &mut out);
    out
}

/// Where a field is used and what the use needs of it.
#[derive(Clone, Debug, PartialEq)]
enum Need {
    /// Any mapped field (columns, tooltips, queries, unique counts).
    Any,
    /// A numeric field (sums, averages).
    Numeric,
    /// A date field (histograms, the time field).
    Date,
    /// A geo_point (map layers).
    Geo,
    /// A terms bucket with the Lens data type given.
    Terms(String),
}

#[derive(Clone, Debug)]
struct Use {
    object: String,
    field: String,
    need: Need,
}

/// Field names in a KQL query: every `name :` outside quotes.
fn kql_fields(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    let mut in_quote = false;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            in_quote = !in_quote;
            i += 1;
            continue;
        }
        if in_quote {
            if c == b'\\' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'@' || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"@_.*".contains(&b[i])) {
                i += 1;
            }
            let word = &q[start..i];
            let mut j = i;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            if j < b.len() && b[j] == b':' {
                out.push(word.to_owned());
            }
            continue;
        }
        i += 1;
    }
    out
}

fn parse_embedded(v: &Value, what: &str, problems: &mut Vec<String>) -> Value {
    match v.as_str().map(serde_json::from_str::<Value>) {
        Some(Ok(x)) => x,
        _ => {
            problems.push(format!("{what}: not a JSON string"));
            Value::Null
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Everything wrong with a set of saved objects, and the fields they use. `fields`: the
/// template's fields; `non_empty`: fields with a value in the decoded corpus; `pending`:
/// fields allowed on the Firewall dashboard although the field table lacks them.
fn problems(
    objects: &[Value],
    fields: &BTreeMap<String, String>,
    non_empty: &BTreeSet<String>,
    pending: &[&str],
) -> (Vec<String>, BTreeSet<String>) {
    let mut p = Vec::new();
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for o in objects {
        let id = str_field(o, "id");
        let ty = str_field(o, "type");
        if id.is_empty() || ty.is_empty() || !o["attributes"].is_object() {
            p.push(format!("object without id, type or attributes: {o}"));
            continue;
        }
        if !["index-pattern", "lens", "map", "search", "dashboard"].contains(&ty) {
            p.push(format!("{id}: unexpected type {ty}"));
        }
        if by_id.insert(id, ty).is_some() {
            p.push(format!("{id}: id used twice"));
        }
    }

    let mut uses: Vec<Use> = Vec::new();
    let mut add = |object: &str, field: &str, need: Need| {
        uses.push(Use {
            object: object.to_owned(),
            field: field.to_owned(),
            need,
        })
    };
    // Objects shown by each dashboard (for the pending-field rule).
    let mut shown_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

    for o in objects {
        let id = str_field(o, "id");
        let ty = str_field(o, "type");
        let a = &o["attributes"];
        let refs: Vec<&Value> = o["references"]
            .as_array()
            .map(|r| r.iter().collect())
            .unwrap_or_default();
        let mut ref_names: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for r in &refs {
            let (name, rty, rid) = (
                str_field(r, "name"),
                str_field(r, "type"),
                str_field(r, "id"),
            );
            if ref_names.insert(name, (rty, rid)).is_some() {
                p.push(format!("{id}: reference name {name} used twice"));
            }
            match by_id.get(rid) {
                Some(t) if *t == rty => {}
                Some(t) => p.push(format!(
                    "{id}: reference {name} to {rty} {rid}, which is a {t}"
                )),
                None => p.push(format!("{id}: reference {name} to missing {rty} {rid}")),
            }
        }
        let mut used_names: BTreeSet<String> = BTreeSet::new();
        let mut need_ref = |name: String, want: &str, p: &mut Vec<String>| {
            match ref_names.get(name.as_str()) {
                Some((t, _)) if *t == want => {}
                Some((t, _)) => p.push(format!("{id}: {name} refers to a {t}, not a {want}")),
                None => p.push(format!("{id}: no reference named {name}")),
            }
            used_names.insert(name);
        };
        match ty {
            "index-pattern" => {
                if str_field(a, "title").is_empty() {
                    p.push(format!("{id}: data view without a title"));
                }
                add(id, str_field(a, "timeFieldName"), Need::Date);
                let formats = parse_embedded(
                    &a["fieldFormatMap"],
                    &format!("{id}: fieldFormatMap"),
                    &mut p,
                );
                for f in formats.as_object().into_iter().flat_map(|m| m.keys()) {
                    add(id, f, Need::Any);
                }
            }
            "lens" => {
                let state = &a["state"];
                let layers = state["datasourceStates"]["formBased"]["layers"].as_object();
                let Some(layers) = layers else {
                    p.push(format!("{id}: no formBased layers"));
                    continue;
                };
                let mut column_ids = BTreeSet::new();
                for (lid, layer) in layers {
                    need_ref(
                        format!("indexpattern-datasource-layer-{lid}"),
                        "index-pattern",
                        &mut p,
                    );
                    let cols = layer["columns"].as_object().cloned().unwrap_or_default();
                    let order: Vec<&str> = layer["columnOrder"]
                        .as_array()
                        .map(|v| v.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if order.len() != cols.len() || order.iter().any(|c| !cols.contains_key(*c)) {
                        p.push(format!("{id}: columnOrder does not list the columns"));
                    }
                    for (cid, c) in &cols {
                        column_ids.insert(cid.clone());
                        let field = str_field(c, "sourceField");
                        let op = str_field(c, "operationType");
                        match op {
                            "count" if field == "___records___" => {}
                            "terms" => {
                                add(id, field, Need::Terms(str_field(c, "dataType").to_owned()));
                                for s in c["params"]["secondaryFields"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                {
                                    add(id, s.as_str().unwrap_or(""), Need::Any);
                                }
                                let by = c["params"]["orderBy"]["columnId"].as_str();
                                if let Some(by) = by {
                                    if !cols.contains_key(by) {
                                        p.push(format!(
                                            "{id}: {cid} is ordered by a missing column {by}"
                                        ));
                                    }
                                }
                            }
                            "sum" | "average" | "min" | "max" | "median" | "percentile" => {
                                add(id, field, Need::Numeric)
                            }
                            "date_histogram" => add(id, field, Need::Date),
                            "unique_count" | "count" | "last_value" => add(id, field, Need::Any),
                            other => {
                                p.push(format!("{id}: {cid}: operation {other} not checked here"))
                            }
                        }
                        if let Some(q) = c["filter"]["query"].as_str() {
                            for f in kql_fields(q) {
                                add(id, &f, Need::Any);
                            }
                        }
                    }
                }
                // Every accessor the chart uses is a column.
                let vis = state["visualization"].to_string();
                for cid in vis.split('"').filter(|s| s.starts_with(&format!("{id}-c"))) {
                    if !column_ids.contains(cid) {
                        p.push(format!("{id}: the chart uses a missing column {cid}"));
                    }
                }
                for f in kql_fields(state["query"]["query"].as_str().unwrap_or("")) {
                    add(id, &f, Need::Any);
                }
            }
            "map" => {
                let layers =
                    parse_embedded(&a["layerListJSON"], &format!("{id}: layerListJSON"), &mut p);
                for layer in layers.as_array().into_iter().flatten() {
                    let sd = &layer["sourceDescriptor"];
                    if let Some(name) = sd["indexPatternRefName"].as_str() {
                        need_ref(name.to_owned(), "index-pattern", &mut p);
                    } else if str_field(sd, "type").starts_with("ES_") {
                        p.push(format!("{id}: an Elasticsearch layer without a data view"));
                    }
                    for key in ["geoField", "sourceGeoField", "destGeoField"] {
                        if let Some(f) = sd[key].as_str() {
                            add(id, f, Need::Geo);
                        }
                    }
                    for m in sd["metrics"].as_array().into_iter().flatten() {
                        if let Some(f) = m["field"].as_str() {
                            let need = if str_field(m, "type") == "sum" {
                                Need::Numeric
                            } else {
                                Need::Any
                            };
                            add(id, f, need);
                        }
                    }
                    for f in sd["tooltipProperties"].as_array().into_iter().flatten() {
                        add(id, f.as_str().unwrap_or(""), Need::Any);
                    }
                    for f in kql_fields(layer["query"]["query"].as_str().unwrap_or("")) {
                        add(id, &f, Need::Any);
                    }
                }
            }
            "search" => {
                let src = parse_embedded(
                    &a["kibanaSavedObjectMeta"]["searchSourceJSON"],
                    &format!("{id}: searchSourceJSON"),
                    &mut p,
                );
                need_ref(
                    str_field(&src, "indexRefName").to_owned(),
                    "index-pattern",
                    &mut p,
                );
                for c in a["columns"].as_array().into_iter().flatten() {
                    add(id, c.as_str().unwrap_or(""), Need::Any);
                }
                for s in a["sort"].as_array().into_iter().flatten() {
                    add(id, s[0].as_str().unwrap_or(""), Need::Any);
                }
                for f in kql_fields(src["query"]["query"].as_str().unwrap_or("")) {
                    add(id, &f, Need::Any);
                }
            }
            "dashboard" => {
                let panels = parse_embedded(&a["panelsJSON"], &format!("{id}: panelsJSON"), &mut p);
                let mut indexes = BTreeSet::new();
                let shown = shown_by.entry(id.to_owned()).or_default();
                for panel in panels.as_array().into_iter().flatten() {
                    let index = str_field(panel, "panelIndex");
                    if !indexes.insert(index.to_owned()) {
                        p.push(format!("{id}: panel index {index} used twice"));
                    }
                    let g = &panel["gridData"];
                    let (x, w) = (g["x"].as_u64().unwrap_or(99), g["w"].as_u64().unwrap_or(99));
                    if x + w > 48 || str_field(g, "i") != index {
                        p.push(format!("{id}: panel {index} has a bad gridData {g}"));
                    }
                    if let Some(rn) = panel["panelRefName"].as_str() {
                        let name = format!("{index}:{rn}");
                        need_ref(name.clone(), str_field(panel, "type"), &mut p);
                        if let Some((_, rid)) = ref_names.get(name.as_str()) {
                            shown.insert((*rid).to_owned());
                        }
                    }
                    // Links of the navigation panel point at dashboards.
                    let md = panel["embeddableConfig"]["savedVis"]["params"]["markdown"]
                        .as_str()
                        .unwrap_or("");
                    for part in md.split("#/view/").skip(1) {
                        let target: String = part.chars().take_while(|c| *c != ')').collect();
                        if by_id.get(target.as_str()) != Some(&"dashboard") {
                            p.push(format!("{id}: link to a missing dashboard {target}"));
                        }
                    }
                }
                let src = parse_embedded(
                    &a["kibanaSavedObjectMeta"]["searchSourceJSON"],
                    &format!("{id}: searchSourceJSON"),
                    &mut p,
                );
                for f in kql_fields(src["query"]["query"].as_str().unwrap_or("")) {
                    add(id, &f, Need::Any);
                }
            }
            _ => {}
        }
        for name in ref_names.keys() {
            if !used_names.contains(*name) {
                p.push(format!("{id}: reference {name} is not used"));
            }
        }
    }

    let titles: BTreeSet<&str> = objects
        .iter()
        .filter(|o| str_field(o, "type") == "dashboard")
        .map(|o| str_field(&o["attributes"], "title"))
        .collect();
    for t in REQUIRED_DASHBOARDS {
        if !titles.contains(t) {
            p.push(format!("dashboard {t:?} is missing"));
        }
    }

    let firewall: BTreeSet<String> = shown_by
        .get(FIREWALL_DASHBOARD)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .chain([FIREWALL_DASHBOARD.to_owned()])
        .collect();
    for f in pending {
        if fields.contains_key(*f) {
            p.push(format!(
                "{f} is in the field table now: remove it from PENDING so that it is checked like every other field"
            ));
        }
        if !uses.iter().any(|u| u.field == *f) {
            p.push(format!("{f} is listed as pending but no object uses it"));
        }
    }
    for u in &uses {
        let Use {
            object,
            field,
            need,
        } = u;
        if field.is_empty() {
            p.push(format!("{object}: a field use without a name"));
            continue;
        }
        if pending.contains(&field.as_str()) && !fields.contains_key(field) {
            if !firewall.contains(object) {
                p.push(format!(
                    "{object}: uses {field}, which only the Firewall dashboard may use before the field table has it"
                ));
            }
            continue;
        }
        let Some(es) = fields.get(field) else {
            p.push(format!("{object}: {field} is not in the index template"));
            continue;
        };
        let fits = match need {
            Need::Any => true,
            Need::Numeric => matches!(es.as_str(), "long" | "double"),
            Need::Date => es == "date",
            Need::Geo => es == "geo_point",
            Need::Terms(lens_type) => {
                let want = match es.as_str() {
                    "ip" => "ip",
                    "keyword" => "string",
                    "long" | "double" => "number",
                    "date" => "date",
                    "boolean" => "boolean",
                    _ => "",
                };
                lens_type == want
            }
        };
        if !fits {
            p.push(format!(
                "{object}: {field} is a {es}, which does not fit {need:?}"
            ));
        }
        if !non_empty.contains(field) {
            p.push(format!(
                "{object}: {field} is empty in every document decoded from the shared captures"
            ));
        }
    }
    p.sort();
    p.dedup();
    (p, uses.into_iter().map(|u| u.field).collect())
}

/// The decoded corpus: the set of field paths that have a value in at least one document,
/// and the number of documents.
struct Corpus {
    non_empty: BTreeSet<String>,
    documents: usize,
}

fn collect_non_empty(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    let empty = match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    if empty {
        return;
    }
    if !prefix.is_empty() {
        out.insert(prefix.to_owned());
    }
    if let Value::Object(m) = v {
        for (k, x) in m {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            collect_non_empty(&path, x, out);
        }
    }
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            // input/ holds the traffic the exporters were fed, not flow exports.
            if e.file_name() != "input" {
                captures(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "pcap") {
            out.push(p);
        }
    }
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let geoip = root().join("../shared/geoip");
        let dir = common::collector::TempDir::new("kibana-corpus");
        // Exporter names come from the config: name the one behind the generated captures.
        let cfg = dir.0.join("enrich.toml");
        std::fs::write(
            &cfg,
            "[[enrich.exporter]]\naddress = \"127.0.0.1\"\nname = \"lab-exporter\"\n",
        )
        .expect("write config");
        let mut files = Vec::new();
        captures(&common::captures_dir(), &mut files);
        files.sort();
        assert!(
            files.len() > 50,
            "expected the shared captures, found {} pcaps",
            files.len()
        );
        let sluice = env!("CARGO_BIN_EXE_sluice");
        let mut runs: Vec<Vec<std::ffi::OsString>> = files
            .iter()
            .map(|f| {
                vec![
                    "decode".into(),
                    "--config".into(),
                    cfg.clone().into(),
                    "--geoip-city".into(),
                    geoip.join("GeoLite2-City-Test.mmdb").into(),
                    "--geoip-asn".into(),
                    geoip.join("GeoLite2-ASN-Test.mmdb").into(),
                    f.into(),
                ]
            })
            .collect();
        // Firewall events from the shared log samples.
        let help = Command::new(sluice)
            .args(["decode", "--help"])
            .output()
            .expect("decode --help");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("--syslog"),
            "sluice decode reads firewall syslog"
        );
        for log in ["edgerouter-iptables.log", "cisco-asa.log", "panos.log"] {
            runs.push(vec![
                "decode".into(),
                "--syslog".into(),
                root().join("../shared/logs").join(log).into(),
            ]);
        }
        let mut non_empty = BTreeSet::new();
        let mut documents = 0;
        for args in runs {
            let out = Command::new(sluice)
                .args(&args)
                .output()
                .expect("run sluice decode");
            // Exit status 1 means some input did not decode (the invalid/ captures); the
            // documents that did are what counts here.
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "sluice decode {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let doc: Value = serde_json::from_str(line).expect("decode prints JSON");
                collect_non_empty("", &doc, &mut non_empty);
                documents += 1;
            }
        }
        Corpus {
            non_empty,
            documents,
        }
    })
}

fn shipped() -> Vec<Value> {
    let text = std::fs::read_to_string(ndjson_path()).expect("read ops/kibana ndjson");
    load(&text).expect("saved objects are JSON lines")
}

fn check(objects: &[Value]) -> Vec<String> {
    problems(objects, &template_fields(), &corpus().non_empty, PENDING).0
}

#[test]
fn shipped_saved_objects_are_consistent_with_the_field_table_and_the_data() {
    let objects = shipped();
    let c = corpus();
    assert!(c.documents > 3000, "only {} documents decoded", c.documents);
    let (p, used) = problems(&objects, &template_fields(), &c.non_empty, PENDING);
    assert!(p.is_empty(), "{} problems:\n{}", p.len(), p.join("\n"));
    // The enrichment the dashboards depend on was really there to be checked.
    for f in [
        "source.geo.location",
        "destination.geo.country_name",
        "destination.as.organization.name",
        "observer.name",
        "observer.ingress.interface.name",
        "network.community_id",
    ] {
        assert!(used.contains(f), "no object uses {f}");
    }
    assert!(used.len() > 40, "only {} fields used", used.len());
    let dashboards = objects.iter().filter(|o| o["type"] == "dashboard").count();
    let lens = objects.iter().filter(|o| o["type"] == "lens").count();
    assert!(
        dashboards >= REQUIRED_DASHBOARDS.len() && lens >= 30,
        "{dashboards} dashboards, {lens} lens"
    );
}

#[test]
fn the_ndjson_is_what_build_py_makes() {
    let out = Command::new("python3")
        .arg(root().join("ops/kibana/build.py"))
        .arg("--check")
        .current_dir(root())
        .output()
        .expect("python3 (ops/kibana/build.py generates the saved objects)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- The checks can fail: each mutation of the shipped objects is caught. -------------------

fn find<'a>(objects: &'a mut [Value], id: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("no object {id}"))
}

fn set_embedded(v: &mut Value, f: impl FnOnce(&mut Value)) {
    let mut inner: Value = serde_json::from_str(v.as_str().expect("embedded JSON")).expect("JSON");
    f(&mut inner);
    *v = Value::String(inner.to_string());
}

fn assert_caught(objects: &[Value], needle: &str) {
    let p = check(objects);
    assert!(
        p.iter().any(|x| x.contains(needle)),
        "expected a problem mentioning {needle:?}, got {p:#?}"
    );
}

fn first_column(o: &mut Value) -> &mut Value {
    let layers = o["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        .as_object_mut()
        .expect("layers");
    let layer = layers.values_mut().next().expect("a layer");
    let cols = layer["columns"].as_object_mut().expect("columns");
    cols.values_mut().next().expect("a column")
}

#[test]
fn a_field_missing_from_the_template_is_caught() {
    let mut o = shipped();
    first_column(find(&mut o, "sluice-table-top-talkers"))["sourceField"] = "source.address".into();
    assert_caught(&o, "source.address is not in the index template");
}

#[test]
fn a_field_without_data_in_the_captures_is_caught() {
    let fields = template_fields();
    let c = corpus();
    let empty = fields
        .iter()
        .find(|(f, t)| t.as_str() == "keyword" && !c.non_empty.contains(*f))
        .map(|(f, _)| f.clone())
        .expect("some keyword field no capture fills");
    let mut o = shipped();
    first_column(find(&mut o, "sluice-table-top-services"))["sourceField"] = empty.clone().into();
    assert_caught(&o, &format!("{empty} is empty in every document"));
}

#[test]
fn a_field_of_the_wrong_type_is_caught() {
    let mut o = shipped();
    // Summing addresses, and a terms column that calls an ip a string.
    let lens = find(&mut o, "sluice-metric-bytes");
    first_column(lens)["sourceField"] = "source.ip".into();
    assert_caught(&o, "source.ip is a ip, which does not fit Numeric");
    let mut o = shipped();
    first_column(find(&mut o, "sluice-table-top-talkers"))["dataType"] = "string".into();
    assert_caught(&o, "source.ip is a ip, which does not fit Terms");
    let mut o = shipped();
    set_embedded(
        &mut find(&mut o, "sluice-map-geo")["attributes"]["layerListJSON"],
        |l| {
            l[2]["sourceDescriptor"]["geoField"] = "source.ip".into();
        },
    );
    assert_caught(&o, "does not fit Geo");
}

#[test]
fn broken_references_are_caught() {
    let mut o = shipped();
    find(&mut o, "sluice-overview")["references"][0]["id"] = "sluice-nothing".into();
    assert_caught(&o, "to missing lens sluice-nothing");

    let mut o = shipped();
    set_embedded(
        &mut find(&mut o, "sluice-top-n")["attributes"]["panelsJSON"],
        |p| {
            p[1]["panelRefName"] = "panel_99".into();
        },
    );
    assert_caught(&o, "no reference named 1:panel_99");

    let mut o = shipped();
    find(&mut o, "sluice-bar-top-sources")["references"][0]["name"] =
        "indexpattern-datasource-layer-x".into();
    assert_caught(
        &o,
        "no reference named indexpattern-datasource-layer-sluice-bar-top-sources-layer",
    );

    let mut o = shipped();
    set_embedded(
        &mut find(&mut o, "sluice-search-flow-records")["attributes"]["kibanaSavedObjectMeta"]
            ["searchSourceJSON"],
        |s| s["indexRefName"] = "elsewhere".into(),
    );
    assert_caught(&o, "no reference named elsewhere");

    let mut o = shipped();
    o.retain(|x| x["id"] != "sluice-geo");
    assert_caught(&o, "link to a missing dashboard sluice-geo");
}

#[test]
fn duplicate_ids_and_missing_dashboards_are_caught() {
    let mut o = shipped();
    let copy = find(&mut o, "sluice-metric-flows").clone();
    o.push(copy);
    assert_caught(&o, "sluice-metric-flows: id used twice");
    let mut o = shipped();
    find(&mut o, "sluice-geo")["attributes"]["title"] = "Sluice: Maps".into();
    assert_caught(&o, "dashboard \"Sluice: Geo\" is missing");
}

#[test]
fn queries_are_checked_too() {
    let mut o = shipped();
    set_embedded(
        &mut find(&mut o, "sluice-firewall")["attributes"]["kibanaSavedObjectMeta"]
            ["searchSourceJSON"],
        |s| s["query"]["query"] = "NOT event.verdict : \"netflow_flow\"".into(),
    );
    assert_caught(&o, "event.verdict is not in the index template");
    assert_eq!(
        kql_fields("a.b : \"x : y\" and not c:1 or (d.e : *)"),
        ["a.b", "c", "d.e"]
    );
}

#[test]
fn pending_fields_are_confined_and_cannot_go_stale() {
    let o = shipped();
    // A firewall field moved into a flow table of addresses is caught by its type.
    let mut moved = o.clone();
    first_column(find(&mut moved, "sluice-table-top-talkers"))["sourceField"] = "rule.name".into();
    assert_caught(&moved, "rule.name is a keyword");
    // A field of the table still listed as pending, and a pending field nobody uses.
    let fields = template_fields();
    let c = corpus();
    let (p, _) = problems(&o, &fields, &c.non_empty, &["source.ip", "rule.id"]);
    assert!(
        p.iter()
            .any(|x| x.contains("source.ip is in the field table now")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|x| x.contains("rule.id is listed as pending but no object uses it")),
        "{p:#?}"
    );
    // The firewall fields are checked like every other: in the template and non-empty in the
    // documents decoded from the firewall log samples.
    for f in ["rule.name", "observer.product", "event.action"] {
        assert!(fields.contains_key(f), "{f} in the index template");
        assert!(
            c.non_empty.contains(f),
            "{f} non-empty in decoded log samples"
        );
    }
}
