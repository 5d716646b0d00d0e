//! Oracle 1: tshark (Wireshark's `cflow` dissector), read through `tshark -T json`.
//!
//! How the JSON is read (tshark 4.0.x):
//! * `tshark -n -r FILE -T json --no-duplicate-keys -o cflow.max_template_fields:0
//!   [-d udp.port==P,cflow ...]`. `--no-duplicate-keys` merges repeated keys of one
//!   object into an array; that happens inside a flow record when a template carries an
//!   element twice or carries its RFC 5103 reverse twin (tshark shows PEN-29305 reverse
//!   elements under the forward field name). `max_template_fields:0` lifts the default
//!   60-field limit so large templates are not silently dropped.
//! * `-d`: tshark decodes NetFlow/IPFIX by default only on UDP 2055, 9996 (NetFlow) and
//!   4739 (IPFIX). A first pass (`-T fields -e frame.protocols -e udp.dstport -e
//!   udp.payload`) finds UDP destination ports whose datagrams look like NetFlow v5/v9 or
//!   IPFIX (see [`looks_like_netflow`]) but were not dissected as `cflow`; each gets a
//!   `-d udp.port==P,cflow`. sFlow (6343, payload starts with a 32-bit version) is never
//!   selected.
//! * Record walk: `_source.layers.cflow` -> v5/v1/v7 `"pdu i/n"` objects, or the set
//!   objects (`"FlowSet N [id=T] (K flows)"` in v9, `"Set N [id=T] ..."` in IPFIX,
//!   recognised by their `cflow.flowset_id`) -> `"Flow 1"`, `"Flow 2"`, ... JSON object
//!   order is not relied upon: sets, flows and template fields are ordered by the numbers
//!   in their labels.
//! * Each decoded data set names the frame holding its template (`cflow.template_frame`).
//!   Templates are collected from every frame first, keyed (frame, template id). A set
//!   whose template came from an options-template set (set id 1 in v9, 3 in IPFIX) holds
//!   options data: not flow records, excluded (counted in `options_records`). Sets that
//!   tshark could not decode (no template yet, or never captured) have no
//!   `cflow.template_frame` and are listed in `undecoded_sets`.
//! * Only frames whose outermost UDP payload is `cflow` count (tshark can also decode
//!   IPFIX over TCP; the datagram decoders under test cannot).
//!
//! Field mapping. tshark's JSON does not carry the element number of a record field, so
//! the template decides: for each tshark field name the table below gives the template
//! elements that tshark renders under that name (from `dissect_v9_v10_pdu_data` in
//! epan/dissectors/packet-netflow.c, checked against every shared capture). The k-th
//! value of the name belongs to the k-th such template field; only those with PEN 0 and
//! an IE in `norm::target_for_ie` are kept. If the counts disagree the key is left out
//! and a note is recorded (that would mean this table is wrong for some template).
//!
//! | tshark field                | template elements rendered under it                |
//! |-----------------------------|----------------------------------------------------|
//! | `cflow.octets`              | IE 1 (4 or 8 bytes; also reverse IE 1)             |
//! | `cflow.packets`             | IE 2                                               |
//! | `cflow.protocol`            | IE 4                                               |
//! | `cflow.tcpflags`            | IE 6 (1 byte "0x18", 2 bytes "0x0018")             |
//! | `cflow.srcport`             | IE 7, 180 udpSourcePort, 182 tcpSourcePort         |
//! | `cflow.dstport`             | IE 11, 181 udpDestinationPort, 183 tcpDestinationPort |
//! | `cflow.srcaddr`             | IE 8 of length 4                                   |
//! | `cflow.srcaddrv6`           | IE 27, and IE 8 of length 16                       |
//! | `cflow.dstaddr`             | IE 12 of length 4                                  |
//! | `cflow.dstaddrv6`           | IE 28, and IE 12 of length 16                      |
//! | `cflow.srcmask` / `cflow.dstmask` | IE 9 / IE 13                                 |
//! | `cflow.srcmaskv6` / `cflow.dstmaskv6` | IE 29 / IE 30                            |
//! | `cflow.inputint` / `cflow.outputint` | IE 10 / IE 14                             |
//! | `cflow.nexthop`             | IE 15 of length 4                                  |
//! | `cflow.nexthopv6`           | IE 62, and IE 15 of length 16                      |
//! | `cflow.srcas` / `cflow.dstas` | IE 16 / IE 17                                    |
//! | `cflow.permanent_octets`    | IE 85 octetTotalCount                              |
//! | `cflow.permanent_packets`   | IE 86 packetTotalCount                             |
//!
//! Zero-length template fields are skipped by tshark and so produce nothing. NetFlow v5
//! `pdu` objects use the same names with one value each (srcaddr, dstaddr, nexthop,
//! inputint, outputint, packets, octets, srcport, dstport, tcpflags, protocol, srcas,
//! dstas, srcmask, dstmask) and map to IE 8, 12, 15, 10, 14, 2, 1, 7, 11, 6, 4, 16, 17,
//! 9, 13. Values are strings; flags come as hex (`0x18`) and are written in decimal.

use super::norm::{target_for_ie, NormBuilder, NormRecord};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

const REVERSE_PEN: u32 = 29305;
/// UDP ports tshark 4.0 dissects as NetFlow/IPFIX (2055, 9996, 4739) or sFlow (6343)
/// without being told.
pub const DEFAULT_PORTS: [u16; 4] = [2055, 9996, 4739, 6343];

/// Everything read from tshark for one capture.
#[derive(Debug, Default)]
pub struct TsharkOutput {
    /// Flow records (no options data) per 1-based frame number, in wire order.
    pub records: BTreeMap<u64, Vec<NormRecord>>,
    /// Options-data records seen (excluded from `records`).
    pub options_records: usize,
    /// (frame, set id) of data sets tshark left undecoded for lack of a template.
    pub undecoded_sets: Vec<(u64, u16)>,
    /// The ports passed as `-d udp.port==P,cflow`.
    pub decode_as: Vec<u16>,
    /// Anything unexpected in tshark's output (field-count mismatches, missing templates).
    pub notes: Vec<String>,
}

/// Flow records per frame as decoded by tshark (see [`tshark_decode`]).
pub fn tshark_records(pcap: &Path) -> BTreeMap<u64, Vec<NormRecord>> {
    tshark_decode(pcap).records
}

/// True if a `tshark` binary can be run.
pub fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run_tshark(args: &[String], what: &str) -> Vec<u8> {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run tshark {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: tshark {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Heuristic used to pick `-d` ports: does this UDP payload look like a NetFlow v5,
/// NetFlow v9 or IPFIX export packet?
pub fn looks_like_netflow(p: &[u8]) -> bool {
    let be16 = |at: usize| {
        p.get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    match be16(0) {
        Some(5) => p.len() >= 24 && (p.len() - 24).is_multiple_of(48),
        Some(9) => {
            // header (20) + first flowset header whose length fits
            p.len() >= 24 && be16(22).is_some_and(|l| l >= 4 && l <= p.len() - 20)
        }
        Some(10) => p.len() >= 16 && be16(2) == Some(p.len()),
        _ => false,
    }
}

fn hex_to_bytes(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks_exact(2)
        .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}

/// Is the outermost UDP payload of this frame dissected as `cflow`?
fn outer_udp_is_cflow(protocols: &str) -> bool {
    let parts: Vec<&str> = protocols.split(':').collect();
    match parts.iter().position(|p| *p == "udp") {
        Some(i) => {
            !parts[..i].iter().any(|p| p.starts_with("icmp")) && parts.get(i + 1) == Some(&"cflow")
        }
        None => false,
    }
}

/// First pass: UDP destination ports carrying NetFlow/IPFIX that tshark does not
/// dissect as such by default.
pub fn ports_needing_decode_as(pcap: &Path) -> Vec<u16> {
    let file = pcap.to_string_lossy().into_owned();
    let args: Vec<String> = [
        "-n",
        "-r",
        &file,
        "-T",
        "fields",
        "-E",
        "occurrence=f",
        "-E",
        "separator=\t",
        "-e",
        "frame.protocols",
        "-e",
        "udp.dstport",
        "-e",
        "udp.payload",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_tshark(&args, &file);
    let mut ports = BTreeSet::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let mut it = line.split('\t');
        let (Some(protos), Some(port), Some(payload)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(port) = port.trim().parse::<u16>() else {
            continue;
        };
        if DEFAULT_PORTS.contains(&port) || outer_udp_is_cflow(protos) {
            continue;
        }
        if looks_like_netflow(&hex_to_bytes(payload)) {
            ports.insert(port);
        }
    }
    ports.into_iter().collect()
}

/// Decode `pcap` with tshark and normalise every flow record.
pub fn tshark_decode(pcap: &Path) -> TsharkOutput {
    let file = pcap.to_string_lossy().into_owned();
    let decode_as = ports_needing_decode_as(pcap);
    let mut args: Vec<String> = [
        "-n",
        "-r",
        &file,
        "-o",
        "cflow.max_template_fields:0",
        "-T",
        "json",
        "--no-duplicate-keys",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in &decode_as {
        args.push("-d".into());
        args.push(format!("udp.port=={p},cflow"));
    }
    let out = run_tshark(&args, &file);
    let json: Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{file}: tshark -T json output is not JSON: {e}"));
    let mut res = walk(&json);
    res.decode_as = decode_as;
    res
}

/// The values of a key, with `--no-duplicate-keys` arrays flattened.
fn each(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn num_field(obj: &serde_json::Map<String, Value>, key: &str) -> Option<u64> {
    obj.get(key)
        .and_then(as_text)
        .and_then(|s| s.trim().parse().ok())
}

/// Number after `prefix` in labels like "FlowSet 3 [id=..." / "Flow 12" / "pdu 4/29" /
/// "Field (7/20): ...".
fn label_index(label: &str, prefix: &str) -> Option<u64> {
    let rest = label.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct TField {
    ie: u16,
    pen: u32,
    len: u16,
}

#[derive(Debug)]
enum TKind {
    Data(Vec<TField>),
    Options,
}

/// The tshark field name a template element is rendered under (see module table).
fn tshark_name(f: &TField) -> Option<&'static str> {
    if f.pen != 0 && f.pen != REVERSE_PEN {
        return None;
    }
    if f.len == 0 {
        return None;
    }
    Some(match (f.ie, f.len) {
        (1, _) => "cflow.octets",
        (2, _) => "cflow.packets",
        (4, _) => "cflow.protocol",
        (6, _) => "cflow.tcpflags",
        (7 | 180 | 182, _) => "cflow.srcport",
        (11 | 181 | 183, _) => "cflow.dstport",
        (8, 4) => "cflow.srcaddr",
        (8, 16) | (27, _) => "cflow.srcaddrv6",
        (12, 4) => "cflow.dstaddr",
        (12, 16) | (28, _) => "cflow.dstaddrv6",
        (9, _) => "cflow.srcmask",
        (13, _) => "cflow.dstmask",
        (29, _) => "cflow.srcmaskv6",
        (30, _) => "cflow.dstmaskv6",
        (10, _) => "cflow.inputint",
        (14, _) => "cflow.outputint",
        (15, 4) => "cflow.nexthop",
        (15, 16) | (62, _) => "cflow.nexthopv6",
        (16, _) => "cflow.srcas",
        (17, _) => "cflow.dstas",
        (85, _) => "cflow.permanent_octets",
        (86, _) => "cflow.permanent_packets",
        _ => return None,
    })
}

/// v5 (and v1/v7) `pdu` field -> IE.
const PDU_FIELDS: [(&str, u16); 15] = [
    ("cflow.srcaddr", 8),
    ("cflow.dstaddr", 12),
    ("cflow.nexthop", 15),
    ("cflow.inputint", 10),
    ("cflow.outputint", 14),
    ("cflow.packets", 2),
    ("cflow.octets", 1),
    ("cflow.srcport", 7),
    ("cflow.dstport", 11),
    ("cflow.tcpflags", 6),
    ("cflow.protocol", 4),
    ("cflow.srcas", 16),
    ("cflow.dstas", 17),
    ("cflow.srcmask", 9),
    ("cflow.dstmask", 13),
];

struct Packet<'a> {
    frame: u64,
    cflow: &'a serde_json::Map<String, Value>,
}

fn packets(json: &Value) -> Vec<Packet<'_>> {
    let mut out = Vec::new();
    for pkt in json.as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(layers) = pkt.pointer("/_source/layers").and_then(Value::as_object) else {
            continue;
        };
        let Some(fr) = layers.get("frame").and_then(Value::as_object) else {
            continue;
        };
        let Some(frame) = num_field(fr, "frame.number") else {
            continue;
        };
        let protocols = fr
            .get("frame.protocols")
            .and_then(as_text)
            .unwrap_or_default();
        if !outer_udp_is_cflow(&protocols) {
            continue;
        }
        // the outermost cflow layer comes first if there are several
        let Some(cflow) = layers
            .get("cflow")
            .and_then(|c| each(c).into_iter().next())
            .and_then(Value::as_object)
        else {
            continue;
        };
        out.push(Packet { frame, cflow });
    }
    out
}

/// Set objects of one cflow layer, ordered by the set number in their label.
fn sets(cflow: &serde_json::Map<String, Value>) -> Vec<&serde_json::Map<String, Value>> {
    let mut v: Vec<(u64, usize, &serde_json::Map<String, Value>)> = Vec::new();
    for (k, val) in cflow {
        let idx = label_index(k, "FlowSet ")
            .or_else(|| label_index(k, "Set "))
            .unwrap_or(u64::MAX);
        for (j, o) in each(val).into_iter().enumerate() {
            if let Some(o) = o.as_object() {
                if o.contains_key("cflow.flowset_id") {
                    v.push((idx, j, o));
                }
            }
        }
    }
    v.sort_by_key(|(i, j, _)| (*i, *j));
    v.into_iter().map(|(_, _, o)| o).collect()
}

fn template_fields(t: &serde_json::Map<String, Value>) -> Vec<TField> {
    let mut fields: Vec<(u64, TField)> = Vec::new();
    for (k, v) in t {
        if !k.starts_with("Field (") || k.contains("[Scope]") {
            continue;
        }
        let idx = label_index(k, "Field (").unwrap_or(u64::MAX);
        for f in each(v) {
            let Some(f) = f.as_object() else { continue };
            // v9: template_field_type; IPFIX: template_ipfix_field_type (enterprise bit
            // removed); some vendor PENs use their own *_field_type key
            let ie = f
                .iter()
                .find(|(k, _)| k.starts_with("cflow.template_") && k.ends_with("field_type"))
                .and_then(|(_, v)| as_text(v))
                .and_then(|s| s.trim().parse::<u16>().ok())
                .unwrap_or(u16::MAX);
            let pen = num_field(f, "cflow.template_ipfix_field_pen")
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0);
            let len = num_field(f, "cflow.template_field_length")
                .and_then(|l| u16::try_from(l).ok())
                .unwrap_or(0);
            fields.push((idx, TField { ie, pen, len }));
        }
    }
    fields.sort_by_key(|(i, _)| *i);
    fields.into_iter().map(|(_, f)| f).collect()
}

fn collect_templates(pkts: &[Packet<'_>]) -> HashMap<(u64, u16), TKind> {
    let mut templates = HashMap::new();
    for p in pkts {
        for set in sets(p.cflow) {
            let Some(set_id) = num_field(set, "cflow.flowset_id") else {
                continue;
            };
            let options = match set_id {
                0 | 2 => false,
                1 | 3 => true,
                _ => continue,
            };
            for v in set.values() {
                for t in each(v) {
                    let Some(t) = t.as_object() else { continue };
                    let Some(id) =
                        num_field(t, "cflow.template_id").and_then(|i| u16::try_from(i).ok())
                    else {
                        continue;
                    };
                    let kind = if options {
                        TKind::Options
                    } else {
                        TKind::Data(template_fields(t))
                    };
                    templates.insert((p.frame, id), kind);
                }
            }
        }
    }
    templates
}

fn walk(json: &Value) -> TsharkOutput {
    let pkts = packets(json);
    let templates = collect_templates(&pkts);
    let mut res = TsharkOutput::default();
    for p in &pkts {
        let mut recs = Vec::new();
        // v5 / v1 / v7 records
        let mut pdus: Vec<(u64, &serde_json::Map<String, Value>)> = p
            .cflow
            .iter()
            .filter_map(|(k, v)| Some((label_index(k, "pdu ")?, v.as_object()?)))
            .collect();
        pdus.sort_by_key(|(i, _)| *i);
        for (_, pdu) in pdus {
            let mut b = NormBuilder::new();
            for (name, ie) in PDU_FIELDS {
                let Some(target) = target_for_ie(ie) else {
                    continue;
                };
                for v in pdu.get(name).map(each).unwrap_or_default() {
                    if let Some(s) = as_text(v) {
                        b.push_str(target, &s);
                    }
                }
            }
            recs.push(b.finish());
        }
        // v9 / IPFIX data sets
        for set in sets(p.cflow) {
            let Some(set_id) =
                num_field(set, "cflow.flowset_id").and_then(|i| u16::try_from(i).ok())
            else {
                continue;
            };
            if set_id < 256 {
                continue;
            }
            let Some(tframe) = num_field(set, "cflow.template_frame") else {
                res.undecoded_sets.push((p.frame, set_id));
                continue;
            };
            let mut flows: Vec<(u64, &serde_json::Map<String, Value>)> = set
                .iter()
                .filter_map(|(k, v)| Some((label_index(k, "Flow ")?, v.as_object()?)))
                .collect();
            flows.sort_by_key(|(i, _)| *i);
            match templates.get(&(tframe, set_id)) {
                Some(TKind::Options) => res.options_records += flows.len(),
                Some(TKind::Data(fields)) => {
                    for (fi, flow) in flows {
                        recs.push(map_flow(fields, flow, &mut res.notes, p.frame, set_id, fi));
                    }
                }
                None => res.notes.push(format!(
                    "frame {}: set {set_id} refers to template frame {tframe}, but no template {set_id} was found there; {} records skipped",
                    p.frame,
                    flows.len()
                )),
            }
        }
        if !recs.is_empty() {
            res.records.insert(p.frame, recs);
        }
    }
    res
}

fn map_flow(
    fields: &[TField],
    flow: &serde_json::Map<String, Value>,
    notes: &mut Vec<String>,
    frame: u64,
    set_id: u16,
    flow_idx: u64,
) -> NormRecord {
    // template fields per tshark name, in template order
    let mut producers: BTreeMap<&'static str, Vec<(usize, TField)>> = BTreeMap::new();
    for (pos, f) in fields.iter().enumerate() {
        if let Some(name) = tshark_name(f) {
            producers.entry(name).or_default().push((pos, *f));
        }
    }
    // (template position, target, value) so the builder sees record order
    let mut vals = Vec::new();
    for (name, prods) in &producers {
        let values: Vec<&Value> = flow.get(*name).map(each).unwrap_or_default();
        if values.len() != prods.len() {
            notes.push(format!(
                "frame {frame} set {set_id} flow {flow_idx}: tshark shows {} value(s) of {name} but the template has {} element(s) rendered under that name ({:?}); left out",
                values.len(),
                prods.len(),
                prods.iter().map(|(_, f)| (f.ie, f.pen, f.len)).collect::<Vec<_>>()
            ));
            continue;
        }
        for ((pos, f), v) in prods.iter().zip(values) {
            if f.pen != 0 {
                continue;
            }
            let (Some(target), Some(text)) = (target_for_ie(f.ie), as_text(v)) else {
                continue;
            };
            vals.push((*pos, target, text));
        }
    }
    vals.sort_by_key(|(pos, _, _)| *pos);
    let mut b = NormBuilder::new();
    for (_, target, text) in vals {
        b.push_str(target, &text);
    }
    b.finish()
}
