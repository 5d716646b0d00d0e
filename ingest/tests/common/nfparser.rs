//! Oracle 2: the `netflow_parser` crate (1.0.6), fed the UDP payloads of a capture.
//!
//! * Payloads come from the independent pcap reader in `pcap.rs`, in file order.
//! * One `NetflowParser::default()` per exporter: key = source IP for NetFlow v5/v9,
//!   (source IP, source port) for IPFIX (first two payload bytes = 10). netflow_parser
//!   does not scope v9 templates by Source ID (tshark does), so two source IDs of one
//!   exporter reusing a template ID share one cache entry here.
//! * Only datagrams whose first 16-bit word is 5, 7, 9 or 10 are fed (whatever the
//!   port); everything else (sFlow, BGP/BMP is TCP anyway) is ignored.
//! * Records: v5 flowsets; v9 `FlowSetBody::Data`; IPFIX `Data` and `V9Data`.
//!   Options data (v9 `OptionsData`, IPFIX `OptionsData`/`V9OptionsData`) is not a flow
//!   record: counted in `options_records` only. `NoTemplate` sets are listed in
//!   `undecoded_sets`. Pending-flow replay is off (crate default), like tshark.
//! * Field mapping: the IE number of every record field is known exactly (`V9Field` ->
//!   `u16`, `IPFixField::IANA(..)` matched by variant); reverse (PEN 29305) and other
//!   enterprise fields are ignored; the IE goes through `norm::target_for_ie`.
//!   v5 fields: srcaddr 8, dstaddr 12, nexthop 15, input 10, output 14, dPkts 2,
//!   dOctets 1, srcport 7, dstport 11, tcp_flags 6, prot 4, src_as 16, dst_as 17,
//!   src_mask 9, dst_mask 13.
//! * Values: `Ip4Addr`/`Ip6Addr` -> address text; numbers (any `DataNumber` width) ->
//!   decimal; `ProtocolType` -> its number; `TcpControlBits` -> `u16::from` (note: the
//!   crate keeps only the 9 flag bits NS..FIN of a 2-byte tcpControlBits); a field whose
//!   length does not fit its type arrives as raw bytes -> `0x..` hex.

use super::norm::{hex_bytes, target_for_ie, NormBuilder, NormRecord};
use super::pcap::{read_udp_datagrams, UdpDatagram};
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField};
use netflow_parser::variable_versions::ipfix::FlowSetBody as IpfixBody;
use netflow_parser::variable_versions::v9::FlowSetBody as V9Body;
use netflow_parser::{DataNumber, FieldValue, NetflowPacket, NetflowParser, V9Field};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

/// Everything netflow_parser produced for one capture.
#[derive(Debug, Default)]
pub struct NfOutput {
    /// Flow records (no options data) per 1-based frame number, in wire order.
    pub records: BTreeMap<u64, Vec<NormRecord>>,
    /// Options-data records seen (excluded from `records`).
    pub options_records: usize,
    /// (frame, template id) of data sets left undecoded for lack of a template.
    pub undecoded_sets: Vec<(u64, u16)>,
    /// Parse errors per frame (the crate still returns what it parsed before the error),
    /// and data sets that silently decoded to nothing.
    pub errors: Vec<(u64, String)>,
}

/// Flow records per frame as decoded by netflow_parser (see [`nfparser_decode`]).
pub fn nfparser_records(pcap: &Path) -> BTreeMap<u64, Vec<NormRecord>> {
    nfparser_decode(pcap).records
}

/// Read `pcap` with the test pcap reader and decode it with netflow_parser.
pub fn nfparser_decode(pcap: &Path) -> NfOutput {
    let dgrams = read_udp_datagrams(pcap)
        .unwrap_or_else(|e| panic!("reading {} for netflow_parser: {e}", pcap.display()));
    nfparser_decode_datagrams(&dgrams)
}

/// Decode already-extracted datagrams (file order) with one parser per exporter.
pub fn nfparser_decode_datagrams(dgrams: &[UdpDatagram]) -> NfOutput {
    let mut parsers: HashMap<(IpAddr, Option<u16>), NetflowParser> = HashMap::new();
    let mut out = NfOutput::default();
    for d in dgrams {
        let version = match d.payload.get(..2) {
            Some(v) => u16::from_be_bytes([v[0], v[1]]),
            None => continue,
        };
        if !matches!(version, 5 | 7 | 9 | 10) {
            continue;
        }
        let key = (d.src.ip(), (version == 10).then_some(d.src.port()));
        let parser = parsers.entry(key).or_default();
        let result = parser.parse_bytes(&d.payload);
        if let Some(e) = &result.error {
            // the crate's messages embed the whole remaining input; keep them short
            let msg: String = e.to_string().chars().take(200).collect();
            out.errors.push((d.frame, msg));
        }
        let mut recs = Vec::new();
        for pkt in &result.packets {
            packet_records(pkt, d.frame, &mut recs, &mut out);
        }
        if !recs.is_empty() {
            out.records.entry(d.frame).or_default().extend(recs);
        }
    }
    out
}

fn packet_records(pkt: &NetflowPacket, frame: u64, recs: &mut Vec<NormRecord>, out: &mut NfOutput) {
    match pkt {
        NetflowPacket::V5(v5) => {
            for f in &v5.flowsets {
                let mut b = NormBuilder::new();
                let addrs = [(8, f.src_addr), (12, f.dst_addr), (15, f.next_hop)];
                for (ie, a) in addrs {
                    push(&mut b, ie, a.to_string());
                }
                let nums: [(u16, u64); 12] = [
                    (10, f.input.into()),
                    (14, f.output.into()),
                    (2, f.d_pkts.into()),
                    (1, f.d_octets.into()),
                    (7, f.src_port.into()),
                    (11, f.dst_port.into()),
                    (6, f.tcp_flags.into()),
                    (4, f.protocol_number.into()),
                    (16, f.src_as.into()),
                    (17, f.dst_as.into()),
                    (9, f.src_mask.into()),
                    (13, f.dst_mask.into()),
                ];
                for (ie, n) in nums {
                    push(&mut b, ie, n.to_string());
                }
                recs.push(b.finish());
            }
        }
        NetflowPacket::V9(v9) => {
            for fs in &v9.flowsets {
                match &fs.body {
                    V9Body::Data(data) => {
                        empty_set(
                            data.fields.is_empty(),
                            fs.header.flowset_id,
                            fs.header.length,
                            frame,
                            out,
                        );
                        for r in &data.fields {
                            recs.push(v9_record(r));
                        }
                    }
                    V9Body::OptionsData(o) => out.options_records += o.fields.len(),
                    V9Body::NoTemplate(info) => out.undecoded_sets.push((frame, info.template_id)),
                    _ => {}
                }
            }
        }
        NetflowPacket::IPFix(ipfix) => {
            for fs in &ipfix.flowsets {
                match &fs.body {
                    IpfixBody::Data(data) => {
                        empty_set(
                            data.fields.is_empty(),
                            fs.header.header_id,
                            fs.header.length,
                            frame,
                            out,
                        );
                        for r in &data.fields {
                            recs.push(ipfix_record(r));
                        }
                    }
                    IpfixBody::V9Data(data) => {
                        empty_set(
                            data.fields.is_empty(),
                            fs.header.header_id,
                            fs.header.length,
                            frame,
                            out,
                        );
                        for r in &data.fields {
                            recs.push(v9_record(r));
                        }
                    }
                    IpfixBody::OptionsData(o) => out.options_records += o.fields.len(),
                    IpfixBody::V9OptionsData(o) => out.options_records += o.fields.len(),
                    IpfixBody::NoTemplate(info) => {
                        out.undecoded_sets.push((frame, info.template_id))
                    }
                    _ => {}
                }
            }
        }
        NetflowPacket::V7(_) => out
            .errors
            .push((frame, "NetFlow v7 is not mapped by the test harness".into())),
        _ => out
            .errors
            .push((frame, "unknown NetflowPacket variant".into())),
    }
}

/// netflow_parser returns an empty record list, without any error, when a record of a
/// data set fails to parse (e.g. a zero-length variable-length value): make that visible.
fn empty_set(empty: bool, set_id: u16, set_len: u16, frame: u64, out: &mut NfOutput) {
    // a set of more than header + 3 padding bytes should hold at least one record
    if empty && set_len > 7 {
        out.errors.push((
            frame,
            format!("data set {set_id} ({set_len} bytes) decoded to 0 records, no error reported"),
        ));
    }
}

fn push(b: &mut NormBuilder, ie: u16, value: String) {
    if let Some(t) = target_for_ie(ie) {
        b.push_str(t, &value);
    }
}

fn v9_record(r: &[(V9Field, FieldValue)]) -> NormRecord {
    let mut b = NormBuilder::new();
    for (field, value) in r {
        push(&mut b, u16::from(*field), value_text(value));
    }
    b.finish()
}

fn ipfix_record(r: &[(IPFixField, FieldValue)]) -> NormRecord {
    let mut b = NormBuilder::new();
    for (field, value) in r {
        if let IPFixField::IANA(f) = field {
            if let Some(ie) = iana_ie(f) {
                push(&mut b, ie, value_text(value));
            }
        }
    }
    b.finish()
}

/// IE number of the IANA elements the harness maps (others: `None`).
fn iana_ie(f: &IANAIPFixField) -> Option<u16> {
    use IANAIPFixField as F;
    Some(match f {
        F::OctetDeltaCount => 1,
        F::PacketDeltaCount => 2,
        F::ProtocolIdentifier => 4,
        F::TcpControlBits => 6,
        F::SourceTransportPort => 7,
        F::SourceIpv4address => 8,
        F::SourceIpv4prefixLength => 9,
        F::IngressInterface => 10,
        F::DestinationTransportPort => 11,
        F::DestinationIpv4address => 12,
        F::DestinationIpv4prefixLength => 13,
        F::EgressInterface => 14,
        F::IpNextHopIpv4address => 15,
        F::BgpSourceAsNumber => 16,
        F::BgpDestinationAsNumber => 17,
        F::SourceIpv6address => 27,
        F::DestinationIpv6address => 28,
        F::SourceIpv6prefixLength => 29,
        F::DestinationIpv6prefixLength => 30,
        F::IpNextHopIpv6address => 62,
        F::OctetTotalCount => 85,
        F::PacketTotalCount => 86,
        F::Unknown(n) => *n,
        _ => return None,
    })
}

fn number_text(n: &DataNumber) -> String {
    match n {
        DataNumber::U8(v) => v.to_string(),
        DataNumber::I8(v) => v.to_string(),
        DataNumber::U16(v) => v.to_string(),
        DataNumber::I16(v) => v.to_string(),
        DataNumber::U24(v) => v.to_string(),
        DataNumber::I24(v) => v.to_string(),
        DataNumber::U32(v) => v.to_string(),
        DataNumber::I32(v) => v.to_string(),
        DataNumber::U64(v) => v.to_string(),
        DataNumber::I64(v) => v.to_string(),
        DataNumber::U128(v) => v.to_string(),
        DataNumber::I128(v) => v.to_string(),
        DataNumber::Vec(b) => hex_bytes(b),
    }
}

/// Text of a field value; `NormBuilder::push_str` canonicalises it further.
fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Ip4Addr(a) => a.to_string(),
        FieldValue::Ip6Addr(a) => a.to_string(),
        FieldValue::DataNumber(n) => number_text(n),
        FieldValue::ProtocolType(p) => u8::from(*p).to_string(),
        FieldValue::TcpControlBits(bits, _width) => u16::from(*bits).to_string(),
        FieldValue::Vec(b) => hex_bytes(b),
        other => format!("{other:?}"),
    }
}
