//! AWS VPC Flow Logs records (text format) as records of the event layout
//! ([`crate::event`], dialect [`Dialect::VpcFlow`]).
//!
//! A record is a line of space-separated fields, `-` for a field without a value. Which
//! fields, in which order, is the flow log's format: the default (version 2) format
//!
//! ```text
//! version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
//! ```
//!
//! or a custom one with the version 3-5 fields (`vpc-id`, `subnet-id`, `instance-id`,
//! `tcp-flags`, `type`, `pkt-srcaddr`, `pkt-dstaddr`, `region`, `az-id`, `sublocation-type`,
//! `sublocation-id`, `pkt-src-aws-service`, `pkt-dst-aws-service`, `flow-direction`,
//! `traffic-path`). Files delivered to S3 start with a header line naming the fields; a header
//! line anywhere switches the format for the lines after it. A format can also be given
//! up front ([`VpcDecoder::with_format`]: the names, or the `${name}` string of the flow
//! log's LogFormat). Field names of other versions are accepted and their values ignored
//! (counted once per header in [`VpcStats::unknown_fields`]).
//!
//! Lines exported from CloudWatch Logs carry the event's ingestion time first
//! (`2026-11-22T09:15:01.000Z 2 1234... `): that word is dropped (and used as the record's
//! time if it has no `end` and `start`).
//!
//! NODATA and SKIPDATA records (no traffic, or records the service could not capture) are
//! counted and not emitted. A line with the wrong number of fields, or a value that does not
//! read, is emitted with `event.original` and the parse-failure tag (and whatever did read);
//! nothing is dropped silently.
//!
//! Mapping: addresses, ports, protocol, packets, bytes, TCP flags to the IANA elements;
//! `start`/`end` to flowStart/EndMilliseconds (the record's time is `end`); `flow-direction`
//! also to flowDirection (IE 61) so enrichment's `network.direction` follows it; `action`
//! ACCEPT/REJECT to `event.action` `allow`/`deny` (and as sent in `aws.vpcflow.action`); the
//! account and instance to `cloud.*`; the rest to `aws.vpcflow.*`.

use std::net::{IpAddr, SocketAddr};

use rustc_hash::FxHashMap;

use crate::event::{elem, event_header, Event, EventWriter};
use crate::record::Record;
use crate::template::Dialect;
use crate::time::parse_rfc3339;

/// A field of a flow log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    Version,
    AccountId,
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    VpcId,
    SubnetId,
    InstanceId,
    TcpFlags,
    Type,
    PktSrcAddr,
    PktDstAddr,
    Region,
    AzId,
    SublocationType,
    SublocationId,
    PktSrcAwsService,
    PktDstAwsService,
    FlowDirection,
    TrafficPath,
    /// A field this version does not read.
    Other,
}

const NAMES: &[(&str, Field)] = &[
    ("version", Field::Version),
    ("account-id", Field::AccountId),
    ("interface-id", Field::InterfaceId),
    ("srcaddr", Field::SrcAddr),
    ("dstaddr", Field::DstAddr),
    ("srcport", Field::SrcPort),
    ("dstport", Field::DstPort),
    ("protocol", Field::Protocol),
    ("packets", Field::Packets),
    ("bytes", Field::Bytes),
    ("start", Field::Start),
    ("end", Field::End),
    ("action", Field::Action),
    ("log-status", Field::LogStatus),
    ("vpc-id", Field::VpcId),
    ("subnet-id", Field::SubnetId),
    ("instance-id", Field::InstanceId),
    ("tcp-flags", Field::TcpFlags),
    ("type", Field::Type),
    ("pkt-srcaddr", Field::PktSrcAddr),
    ("pkt-dstaddr", Field::PktDstAddr),
    ("region", Field::Region),
    ("az-id", Field::AzId),
    ("sublocation-type", Field::SublocationType),
    ("sublocation-id", Field::SublocationId),
    ("pkt-src-aws-service", Field::PktSrcAwsService),
    ("pkt-dst-aws-service", Field::PktDstAwsService),
    ("flow-direction", Field::FlowDirection),
    ("traffic-path", Field::TrafficPath),
];

/// The default (version 2) format.
pub const DEFAULT_FORMAT: &[Field] = &[
    Field::Version,
    Field::AccountId,
    Field::InterfaceId,
    Field::SrcAddr,
    Field::DstAddr,
    Field::SrcPort,
    Field::DstPort,
    Field::Protocol,
    Field::Packets,
    Field::Bytes,
    Field::Start,
    Field::End,
    Field::Action,
    Field::LogStatus,
];

/// Most fields a line may have.
pub const MAX_FIELDS: usize = 64;

/// A field by name (`account-id`, also `account_id` as Parquet and Athena spell it).
fn field_of(name: &str) -> Option<Field> {
    let n = name.trim();
    NAMES
        .iter()
        .find(|(k, _)| {
            k.len() == n.len()
                && k.bytes()
                    .zip(n.bytes())
                    .all(|(a, b)| a == b.to_ascii_lowercase() || (a == b'-' && b == b'_'))
        })
        .map(|&(_, f)| f)
}

/// Whether a word could be a field name (a header line is made of these).
fn name_like(w: &str) -> bool {
    !w.is_empty()
        && w.as_bytes()[0].is_ascii_alphabetic()
        && w.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Counters of one decoder. `failures` counts by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VpcStats {
    /// Records emitted (parsed or tagged).
    pub records: u64,
    /// NODATA records skipped.
    pub nodata: u64,
    /// SKIPDATA records skipped.
    pub skipdata: u64,
    /// Header lines read.
    pub headers: u64,
    /// Field names in headers that this version does not read.
    pub unknown_fields: u64,
    /// Empty lines.
    pub empty: u64,
    /// Records emitted with the parse-failure tag, by reason.
    pub failures: FxHashMap<&'static str, u64>,
}

impl VpcStats {
    /// All records tagged as parse failures.
    pub fn failure_total(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// The VPC Flow Logs decoder: holds the current format.
#[derive(Debug)]
pub struct VpcDecoder {
    /// The format lines are read with until a header line says otherwise.
    base: Vec<Field>,
    format: Vec<Field>,
    stats: VpcStats,
    writer: EventWriter,
    sequence: u32,
}

impl Default for VpcDecoder {
    fn default() -> Self {
        VpcDecoder {
            base: DEFAULT_FORMAT.to_vec(),
            format: DEFAULT_FORMAT.to_vec(),
            stats: VpcStats::default(),
            writer: EventWriter::default(),
            sequence: 0,
        }
    }
}

/// Parses a format: field names separated by spaces, or a LogFormat string
/// (`${version} ${vpc-id} ...`). Unknown names are an error here.
pub fn parse_format(spec: &str) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    for w in spec.split_whitespace() {
        let name = w
            .strip_prefix("${")
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(w);
        out.push(field_of(name).ok_or_else(|| format!("unknown VPC Flow Logs field {name:?}"))?);
    }
    if out.is_empty() {
        return Err("empty VPC Flow Logs format".into());
    }
    if out.len() > MAX_FIELDS {
        return Err(format!("more than {MAX_FIELDS} fields"));
    }
    Ok(out)
}

impl VpcDecoder {
    /// A decoder for the default format (header lines switch it).
    pub fn new() -> Self {
        VpcDecoder::default()
    }

    /// A decoder whose lines have the given format (header lines still switch it).
    pub fn with_format(spec: &str) -> Result<Self, String> {
        let f = parse_format(spec)?;
        Ok(VpcDecoder {
            base: f.clone(),
            format: f,
            ..VpcDecoder::default()
        })
    }

    /// A new file starts: back to the format given at creation, and record numbering (the
    /// export header's sequence, part of document ids) from the start, so that the same file
    /// read again gives the same documents.
    pub fn start_file(&mut self) {
        self.format.clone_from(&self.base);
        self.sequence = 0;
    }

    /// Counters so far.
    pub fn stats(&self) -> &VpcStats {
        &self.stats
    }

    /// Decodes one line, calling `on_record` once for a flow record (not for header lines,
    /// empty lines, NODATA and SKIPDATA). `source` stands for where it came from (the
    /// record's exporter); `receive_ns` is when it was read.
    pub fn line<F: FnMut(&Record<'_>)>(
        &mut self,
        line: &[u8],
        source: SocketAddr,
        receive_ns: i64,
        mut on_record: F,
    ) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if text.is_empty() {
            self.stats.empty += 1;
            return;
        }
        let mut words = [""; MAX_FIELDS];
        let mut n = 0;
        let mut too_many = false;
        for w in text.split_ascii_whitespace() {
            match words.get_mut(n) {
                Some(slot) => {
                    *slot = w;
                    n += 1;
                }
                None => {
                    too_many = true;
                    break;
                }
            }
        }
        let mut words = &words[..n];
        let mut export_time = None;
        if let Some(t) = words.first().and_then(|w| parse_rfc3339(w)) {
            export_time = Some(t);
            words = &words[1..];
        }
        if !too_many
            && words.first().is_some_and(|w| field_of(w).is_some())
            && words.iter().all(|w| name_like(w))
        {
            self.stats.headers += 1;
            self.format.clear();
            for w in words {
                let f = field_of(w).unwrap_or(Field::Other);
                if f == Field::Other {
                    self.stats.unknown_fields += 1;
                }
                self.format.push(f);
            }
            return;
        }
        let mut e = Event::default();
        let failure = if too_many || words.len() != self.format.len() {
            Some("vpc_field_count")
        } else {
            match read_fields(&self.format, words, &mut e) {
                Ok(Status::NoData) => {
                    self.stats.nodata += 1;
                    return;
                }
                Ok(Status::SkipData) => {
                    self.stats.skipdata += 1;
                    return;
                }
                Ok(Status::Ok) => None,
                Err(r) => Some(r),
            }
        };
        e.text(elem::DATASET, "aws.vpcflow");
        e.text(elem::OBSERVER_VENDOR, "AWS");
        e.text(elem::OBSERVER_PRODUCT, "VPC Flow Logs");
        if let Some(r) = failure {
            e.text(elem::ORIGINAL, text);
            e.fail(r);
            *self.stats.failures.entry(r).or_default() += 1;
        }
        self.stats.records += 1;
        self.sequence = self.sequence.wrapping_add(1);
        let time = e
            .end_ms
            .or(e.start_ms)
            .map(|ms| ms.saturating_mul(1_000_000))
            .or(export_time)
            .unwrap_or(receive_ns);
        let header = event_header(source, time, self.sequence, receive_ns);
        self.writer
            .emit(Dialect::VpcFlow, &header, &e, &mut on_record);
    }
}

enum Status {
    Ok,
    NoData,
    SkipData,
}

fn read_fields<'a>(
    format: &[Field],
    words: &[&'a str],
    e: &mut Event<'a>,
) -> Result<Status, &'static str> {
    let mut bad = None;
    let mut status = Status::Ok;
    for (f, &w) in format.iter().zip(words) {
        if w == "-" {
            continue;
        }
        let ip = |w: &str| w.parse::<IpAddr>().ok();
        let mut ok = true;
        match f {
            Field::Version => match w.parse::<u8>() {
                Ok(v) => e.uint(elem::VPC_VERSION, u64::from(v)),
                Err(_) => ok = false,
            },
            Field::AccountId => e.text(elem::VPC_ACCOUNT_ID, w),
            Field::InterfaceId => e.text(elem::VPC_INTERFACE_ID, w),
            Field::SrcAddr => {
                e.src = ip(w);
                ok = e.src.is_some();
            }
            Field::DstAddr => {
                e.dst = ip(w);
                ok = e.dst.is_some();
            }
            Field::SrcPort => {
                e.src_port = w.parse().ok();
                ok = e.src_port.is_some();
            }
            Field::DstPort => {
                e.dst_port = w.parse().ok();
                ok = e.dst_port.is_some();
            }
            Field::Protocol => {
                e.proto = w.parse().ok();
                ok = e.proto.is_some();
            }
            Field::Packets => {
                e.packets = w.parse().ok();
                ok = e.packets.is_some();
            }
            Field::Bytes => {
                e.bytes = w.parse().ok();
                ok = e.bytes.is_some();
            }
            Field::Start | Field::End => match w.parse::<i64>() {
                Ok(s) if (0..=i64::MAX / 1000).contains(&s) => {
                    if *f == Field::Start {
                        e.start_ms = Some(s * 1000);
                    } else {
                        e.end_ms = Some(s * 1000);
                    }
                }
                _ => ok = false,
            },
            Field::Action => {
                e.text(elem::VPC_ACTION, w);
                match w {
                    "ACCEPT" => e.text(elem::ACTION, "allow"),
                    "REJECT" => e.text(elem::ACTION, "deny"),
                    _ => ok = false,
                }
            }
            Field::LogStatus => {
                e.text(elem::VPC_LOG_STATUS, w);
                match w {
                    "OK" => {}
                    "NODATA" => status = Status::NoData,
                    "SKIPDATA" => status = Status::SkipData,
                    _ => ok = false,
                }
            }
            Field::VpcId => e.text(elem::VPC_VPC_ID, w),
            Field::SubnetId => e.text(elem::VPC_SUBNET_ID, w),
            Field::InstanceId => e.text(elem::VPC_INSTANCE_ID, w),
            Field::TcpFlags => {
                e.tcp_flags = w.parse().ok();
                ok = e.tcp_flags.is_some();
            }
            Field::Type => e.text(elem::VPC_TYPE, w),
            Field::PktSrcAddr => match ip(w) {
                Some(a) => e.ip(elem::VPC_PKT_SRCADDR, a),
                None => ok = false,
            },
            Field::PktDstAddr => match ip(w) {
                Some(a) => e.ip(elem::VPC_PKT_DSTADDR, a),
                None => ok = false,
            },
            Field::Region => e.text(elem::VPC_REGION, w),
            Field::AzId => e.text(elem::VPC_AZ_ID, w),
            Field::SublocationType => e.text(elem::VPC_SUBLOCATION_TYPE, w),
            Field::SublocationId => e.text(elem::VPC_SUBLOCATION_ID, w),
            Field::PktSrcAwsService => e.text(elem::VPC_PKT_SRC_SERVICE, w),
            Field::PktDstAwsService => e.text(elem::VPC_PKT_DST_SERVICE, w),
            Field::FlowDirection => {
                e.text(elem::VPC_FLOW_DIRECTION, w);
                e.flow_direction = match w {
                    "ingress" => Some(0),
                    "egress" => Some(1),
                    _ => {
                        ok = false;
                        None
                    }
                };
            }
            Field::TrafficPath => match w.parse::<u8>() {
                Ok(v) => e.uint(elem::VPC_TRAFFIC_PATH, u64::from(v)),
                Err(_) => ok = false,
            },
            Field::Other => {}
        }
        if !ok {
            bad = Some("vpc_bad_value");
        }
    }
    match (status, bad) {
        (Status::Ok, Some(r)) => Err(r),
        (s, _) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SLUICE_PEN;

    fn src() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 0))
    }

    fn text_of(r: &Record<'_>, id: u16) -> String {
        let i = r.template.event_field(SLUICE_PEN, id).expect("field");
        String::from_utf8_lossy(r.field(i)).into_owned()
    }

    // Lines written from the formats in AWS's "Flow log records" documentation.

    #[test]
    fn default_format_and_nodata() {
        let mut d = VpcDecoder::new();
        let mut got = Vec::new();
        for line in [
            "2 123456789010 eni-0a1b2c3d4e5f60718 192.0.2.15 198.51.100.7 443 49152 6 10 5200 1763800000 1763800060 ACCEPT OK",
            "2 123456789010 eni-0a1b2c3d4e5f60718 - - - - - - - 1763800000 1763800060 - NODATA",
            "2 123456789010 eni-0a1b2c3d4e5f60718 - - - - - - - 1763800000 1763800060 - SKIPDATA",
            "",
        ] {
            d.line(line.as_bytes(), src(), 0, |r| {
                let f = r.flow();
                got.push((f.src_ip, f.dst_port, f.bytes, f.packets, f.start_ns, f.end_ns));
                assert_eq!(text_of(r, elem::ACTION), "allow");
                assert_eq!(text_of(r, elem::VPC_INTERFACE_ID), "eni-0a1b2c3d4e5f60718");
                assert_eq!(text_of(r, elem::ORIGINAL), "", "parsed records keep no original");
                assert_eq!(r.header.export_time_ns, 1_763_800_060_000_000_000);
            });
        }
        assert_eq!(
            got,
            vec![(
                Some("192.0.2.15".parse().expect("ip")),
                Some(49152),
                Some(5200),
                Some(10),
                1_763_800_000_000_000_000,
                1_763_800_060_000_000_000
            )]
        );
        let s = d.stats();
        assert_eq!((s.records, s.nodata, s.skipdata, s.empty), (1, 1, 1, 1));
    }

    #[test]
    fn header_switches_format_and_cloudwatch_prefix_is_dropped() {
        let mut d = VpcDecoder::new();
        let mut n = 0;
        d.line(b"version vpc_id srcaddr dstaddr flow-direction traffic-path pkt-dst-aws-service ecs-cluster-name log-status", src(), 0, |_| {
            n += 100
        });
        d.line(
            b"2026-11-22T09:15:01.000Z 5 vpc-0123 10.0.0.5 52.95.1.1 egress 8 S3 - OK",
            src(),
            0,
            |r| {
                n += 1;
                assert_eq!(text_of(r, elem::VPC_VPC_ID), "vpc-0123");
                assert_eq!(text_of(r, elem::VPC_PKT_DST_SERVICE), "S3");
                assert_eq!(text_of(r, elem::VPC_FLOW_DIRECTION), "egress");
                // No start/end: the CloudWatch Logs time.
                assert_eq!(r.header.export_time_ns, 1_795_338_901_000_000_000);
            },
        );
        assert_eq!(n, 1);
        assert_eq!(d.stats().headers, 1);
        assert_eq!(d.stats().unknown_fields, 1);
        d.start_file();
        d.line(b"5 vpc-0123 10.0.0.5", src(), 0, |r| {
            assert_eq!(text_of(r, elem::PARSE_FAILURE), "vpc_field_count");
            assert_eq!(text_of(r, elem::ORIGINAL), "5 vpc-0123 10.0.0.5");
        });
        assert_eq!(d.stats().failure_total(), 1);
    }

    #[test]
    fn bad_values_are_tagged_not_dropped() {
        let mut d = VpcDecoder::new();
        let mut n = 0;
        d.line(
            b"2 1 eni-1 10.0.0.300 10.0.0.2 1 2 6 1 40 1763800000 1763800060 ACCEPT OK",
            src(),
            0,
            |r| {
                n += 1;
                assert_eq!(text_of(r, elem::PARSE_FAILURE), "vpc_bad_value");
                assert_eq!(r.flow().dst_port, Some(2), "what did read is kept");
            },
        );
        assert_eq!(n, 1);
        assert!(parse_format("${version} ${vpc-id} ${srcaddr}").is_ok());
        assert!(parse_format("version bogus").is_err());
    }
}
