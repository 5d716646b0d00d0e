//! The field table: every field a Sluice flow document can carry, with its Elasticsearch type
//! and description. It drives the document encoder ([`crate::ecs`]), the CSV columns, the
//! index template under `ops/elasticsearch/` and `docs/fields.md`; tests fail when they drift.
//!
//! Two parts: the ECS fields below, and one `netflow.<name>` field per known information
//! element (from `sluice_decode::ie`). Log events (firewall syslog, VPC Flow Logs; records of
//! `sluice_decode::event`) use the ECS part only: the rows marked `event_only` carry their
//! Sluice elements and are skipped unread for flows. Unknown elements are `netflow.enterprise_<pen>_<id>`
//! (hex strings), covered by a dynamic template.

use sluice_decode::event::elem;
use sluice_decode::ie::{self, IeType};

/// Elasticsearch field types we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EsType {
    /// `date`.
    Date,
    /// `ip`.
    Ip,
    /// `keyword`.
    Keyword,
    /// `long`.
    Long,
    /// `double`.
    Double,
    /// `boolean`.
    Boolean,
    /// `geo_point` (for `*.geo.location`).
    GeoPoint,
}

impl EsType {
    /// The mapping type name.
    pub fn as_str(self) -> &'static str {
        match self {
            EsType::Date => "date",
            EsType::Ip => "ip",
            EsType::Keyword => "keyword",
            EsType::Long => "long",
            EsType::Double => "double",
            EsType::Boolean => "boolean",
            EsType::GeoPoint => "geo_point",
        }
    }
}

/// Where the encoder takes a field's value from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Getter {
    Timestamp,
    EventKind,
    EventCategory,
    EventType,
    EventAction,
    EventStart,
    EventEnd,
    EventDuration,
    SourceIp,
    SourcePort,
    SourceBytes,
    SourcePackets,
    SourceLocality,
    SourceNatIp,
    SourceNatPort,
    SourceAsNumber,
    SourceAsOrg,
    SourceContinent,
    SourceCountryIso,
    SourceCountryName,
    SourceCity,
    SourceLocation,
    DestinationIp,
    DestinationPort,
    DestinationBytes,
    DestinationPackets,
    DestinationLocality,
    DestinationNatIp,
    DestinationNatPort,
    DestinationAsNumber,
    DestinationAsOrg,
    DestinationContinent,
    DestinationCountryIso,
    DestinationCountryName,
    DestinationCity,
    DestinationLocation,
    NetworkType,
    NetworkIanaNumber,
    NetworkTransport,
    NetworkProtocol,
    NetworkDirection,
    NetworkCommunityId,
    NetworkTcpFlags,
    NetworkSamplingInterval,
    NetworkBytes,
    NetworkPackets,
    ObserverIp,
    ObserverName,
    IngressIfId,
    IngressIfName,
    IngressIfAlias,
    EgressIfId,
    EgressIfName,
    EgressIfAlias,
    ExporterAddress,
    ExporterVersion,
    ExporterProtocol,
    ExporterSourceId,
    ExporterUptime,
    ExporterTimestamp,
    NetflowType,
    /// A Sluice element of a log event (`sluice_decode::event::elem`), read as its kind says.
    Elem(u16),
    SourceMac,
    DestinationMac,
    IcmpType,
    IcmpCode,
    CloudProvider,
    Tags,
}

/// One ECS (or Sluice-defined) field.
#[derive(Clone, Copy, Debug)]
pub struct EcsField {
    /// Dotted path.
    pub path: &'static str,
    /// Elasticsearch type.
    pub es: EsType,
    /// Whether it is a column of `--format csv`.
    pub csv: bool,
    /// Value source.
    pub get: Getter,
    /// What it means.
    pub doc: &'static str,
    /// Only log events (syslog, VPC Flow Logs) have it: flow documents skip it unread.
    pub event_only: bool,
}

macro_rules! f {
    ($path:literal, $es:ident, $csv:literal, $get:ident, $doc:literal) => {
        EcsField {
            path: $path,
            es: EsType::$es,
            csv: $csv,
            get: Getter::$get,
            doc: $doc,
            event_only: false,
        }
    };
}

/// A field of log events only; `$get` a Getter or `elem::NAME` of a Sluice element.
macro_rules! ev {
    ($path:literal, $es:ident, elem::$id:ident, $doc:literal) => {
        EcsField {
            path: $path,
            es: EsType::$es,
            csv: false,
            get: Getter::Elem(elem::$id),
            doc: $doc,
            event_only: true,
        }
    };
    ($path:literal, $es:ident, $get:ident, $doc:literal) => {
        EcsField {
            path: $path,
            es: EsType::$es,
            csv: false,
            get: Getter::$get,
            doc: $doc,
            event_only: true,
        }
    };
}

/// The ECS part of the document, in emission order (objects are contiguous).
pub const ECS_FIELDS: &[EcsField] = &[
    f!("@timestamp", Date, true, Timestamp, "Export time from the packet header (receive time when the header has none)."),
    ev!("tags", Keyword, Tags, "Log events: `[\"sluice_parse_failure\"]` when the line was not (fully) parsed."),
    f!("event.kind", Keyword, false, EventKind, "`event`; `metric` for sFlow counter samples."),
    f!("event.category", Keyword, false, EventCategory, "Always `[\"network\"]`."),
    f!("event.type", Keyword, false, EventType, "`[\"connection\"]`; log events add `allowed` or `denied` by their action; `[\"info\"]` for sFlow counter samples."),
    f!("event.action", Keyword, false, EventAction, "`netflow_flow` for flow records; `sflow_counters` for sFlow counter samples; for log events the firewall's verdict: `allow`, `deny`, `drop`, `reject` (netfilter, ASA, VPC Flow Logs ACCEPT/REJECT), or PAN-OS's action as written (`reset-both`, `alert`, ...)."),
    f!("event.start", Date, true, EventStart, "Flow start (absolute UTC, from the record's time elements; export time if it has none)."),
    f!("event.end", Date, true, EventEnd, "Flow end (absolute UTC)."),
    f!("event.duration", Long, true, EventDuration, "end - start in nanoseconds."),
    ev!("event.dataset", Keyword, elem::DATASET, "Log events: the parser that read the line: `netfilter`, `cisco.asa`, `panw.panos`, `aws.vpcflow`, `syslog` (none did)."),
    ev!("event.code", Keyword, elem::CODE, "Log events: the vendor's message id (Cisco ASA `106023`, ...)."),
    ev!("event.severity", Long, elem::SEVERITY, "Log events: the vendor's severity (Cisco ASA level 0-7)."),
    ev!("event.reason", Keyword, elem::REASON, "Log events: why (ASA teardown reason, `DNS Query`, PAN-OS session end reason, ...)."),
    ev!("event.original", Keyword, elem::ORIGINAL, "Log events: the line as received (syslog always; VPC Flow Logs only when it did not parse)."),
    f!("source.ip", Ip, true, SourceIp, "Source address (IE 8 or 27)."),
    f!("source.port", Long, true, SourcePort, "Source transport port (IE 7, 180 or 182)."),
    f!("source.bytes", Long, false, SourceBytes, "Bytes from source to destination when the record is a biflow (RFC 5103) or NSEL initiator/responder pair."),
    f!("source.packets", Long, false, SourcePackets, "Packets from source to destination for biflows."),
    f!("source.locality", Keyword, false, SourceLocality, "Address class: public, private (RFC 1918), cgnat, loopback, link_local, multicast, ula, documentation, ... (enrichment)."),
    ev!("source.mac", Keyword, SourceMac, "Log events: source MAC address (netfilter `MAC=`), as ECS writes it: `00-00-5E-00-53-01`."),
    ev!("source.user.name", Keyword, elem::SOURCE_USER, "Log events: PAN-OS source user."),
    f!("source.nat.ip", Ip, false, SourceNatIp, "Address after NAT (IE 225/226, 281/282, NSEL 40001-40002)."),
    f!("source.nat.port", Long, false, SourceNatPort, "Port after NAT (IE 227/228, NSEL 40003-40004)."),
    f!("source.as.number", Long, false, SourceAsNumber, "Autonomous system (GeoIP ASN database, else the record's BGP AS)."),
    f!("source.as.organization.name", Keyword, false, SourceAsOrg, "AS organization (GeoIP ASN database)."),
    f!("source.geo.continent_name", Keyword, false, SourceContinent, "Continent (GeoIP city/country database)."),
    f!("source.geo.country_iso_code", Keyword, false, SourceCountryIso, "Country ISO code."),
    f!("source.geo.country_name", Keyword, false, SourceCountryName, "Country name."),
    f!("source.geo.city_name", Keyword, false, SourceCity, "City name."),
    f!("source.geo.location", GeoPoint, false, SourceLocation, "Latitude and longitude."),
    f!("destination.ip", Ip, true, DestinationIp, "Destination address (IE 12 or 28)."),
    f!("destination.port", Long, true, DestinationPort, "Destination transport port (IE 11, 181 or 183)."),
    f!("destination.bytes", Long, false, DestinationBytes, "Bytes from destination to source (reverse direction of a biflow)."),
    f!("destination.packets", Long, false, DestinationPackets, "Packets from destination to source (biflows)."),
    f!("destination.locality", Keyword, false, DestinationLocality, "Address class: public, private (RFC 1918), cgnat, loopback, link_local, multicast, ula, documentation, ... (enrichment)."),
    ev!("destination.mac", Keyword, DestinationMac, "Log events: destination MAC address (netfilter `MAC=`)."),
    ev!("destination.user.name", Keyword, elem::DESTINATION_USER, "Log events: PAN-OS destination user."),
    f!("destination.nat.ip", Ip, false, DestinationNatIp, "Address after NAT (IE 225/226, 281/282, NSEL 40001-40002)."),
    f!("destination.nat.port", Long, false, DestinationNatPort, "Port after NAT (IE 227/228, NSEL 40003-40004)."),
    f!("destination.as.number", Long, false, DestinationAsNumber, "Autonomous system (GeoIP ASN database, else the record's BGP AS)."),
    f!("destination.as.organization.name", Keyword, false, DestinationAsOrg, "AS organization (GeoIP ASN database)."),
    f!("destination.geo.continent_name", Keyword, false, DestinationContinent, "Continent (GeoIP city/country database)."),
    f!("destination.geo.country_iso_code", Keyword, false, DestinationCountryIso, "Country ISO code."),
    f!("destination.geo.country_name", Keyword, false, DestinationCountryName, "Country name."),
    f!("destination.geo.city_name", Keyword, false, DestinationCity, "City name."),
    f!("destination.geo.location", GeoPoint, false, DestinationLocation, "Latitude and longitude."),
    f!("network.type", Keyword, false, NetworkType, "`ipv4` or `ipv6`."),
    f!("network.iana_number", Keyword, true, NetworkIanaNumber, "IP protocol number (IE 4), as a string per ECS."),
    f!("network.transport", Keyword, true, NetworkTransport, "IP protocol name (lower-case IANA keyword)."),
    f!("network.protocol", Keyword, false, NetworkProtocol, "Service of the server's port (`https`, `dns`, ...; enrichment)."),
    f!("network.direction", Keyword, false, NetworkDirection, "`ingress`/`egress` from the exporter, else `inbound`, `outbound`, `internal`, `external` from the addresses (enrichment)."),
    f!("network.community_id", Keyword, false, NetworkCommunityId, "Community ID v1 flow hash."),
    f!("network.tcp_flags", Keyword, false, NetworkTcpFlags, "TCP flags seen (`SYN`, `ACK`, ...)."),
    f!("network.sampling_interval", Long, false, NetworkSamplingInterval, "Sampling interval applied to bytes/packets (1 in N): record, sampler table, or per-exporter config."),
    f!("network.bytes", Long, true, NetworkBytes, "Bytes of the flow (both directions for biflows), scaled by the sampling interval; the raw count stays in `netflow.*`."),
    f!("network.packets", Long, true, NetworkPackets, "Packets of the flow (both directions for biflows), scaled by the sampling interval."),
    ev!("network.application", Keyword, elem::APPLICATION, "Log events: application as the firewall identified it (PAN-OS App-ID)."),
    ev!("icmp.type", Long, IcmpType, "Log events: ICMP/ICMPv6 type."),
    ev!("icmp.code", Long, IcmpCode, "Log events: ICMP/ICMPv6 code."),
    ev!("rule.id", Keyword, elem::RULE_ID, "Log events: rule number (EdgeOS `[RULESET-RULE-ACTION]` prefix: the RULE, a number or `default`)."),
    ev!("rule.name", Keyword, elem::RULE_NAME, "Log events: the rule or rule set that matched: EdgeOS ruleset, netfilter log prefix, ASA access-group / access-list, PAN-OS rule name."),
    f!("observer.ip", Ip, true, ObserverIp, "Exporter address."),
    f!("observer.name", Keyword, false, ObserverName, "Exporter name (config)."),
    ev!("observer.hostname", Keyword, elem::OBSERVER_HOSTNAME, "Log events: the device's name (syslog HOSTNAME; PAN-OS device name)."),
    ev!("observer.vendor", Keyword, elem::OBSERVER_VENDOR, "Log events: `Ubiquiti`, `Linux`, `Cisco`, `Palo Alto Networks`, `AWS`."),
    ev!("observer.product", Keyword, elem::OBSERVER_PRODUCT, "Log events: `EdgeOS`, `netfilter`, `ASA`, `FTD`, `PAN-OS`, `VPC Flow Logs`."),
    ev!("observer.type", Keyword, elem::OBSERVER_TYPE, "Log events: `firewall`."),
    ev!("observer.serial_number", Keyword, elem::OBSERVER_SERIAL, "Log events: PAN-OS serial number."),
    f!("observer.ingress.interface.id", Keyword, false, IngressIfId, "Input interface index."),
    f!("observer.ingress.interface.name", Keyword, false, IngressIfName, "Input interface name (options data IE 82, or config; log events: the log's, e.g. netfilter `IN=`, ASA interface of the source side)."),
    f!("observer.ingress.interface.alias", Keyword, false, IngressIfAlias, "Input interface description (options data IE 83, or config)."),
    ev!("observer.ingress.zone", Keyword, elem::INGRESS_ZONE, "Log events: PAN-OS source zone."),
    f!("observer.egress.interface.id", Keyword, false, EgressIfId, "Output interface index."),
    f!("observer.egress.interface.name", Keyword, false, EgressIfName, "Output interface name (log events: netfilter `OUT=`, ASA interface of the destination side, PAN-OS outbound interface)."),
    f!("observer.egress.interface.alias", Keyword, false, EgressIfAlias, "Output interface description."),
    ev!("observer.egress.zone", Keyword, elem::EGRESS_ZONE, "Log events: PAN-OS destination zone."),
    ev!("log.syslog.priority", Long, elem::SYSLOG_PRIORITY, "Syslog PRI (facility * 8 + severity)."),
    ev!("log.syslog.hostname", Keyword, elem::SYSLOG_HOSTNAME, "Syslog HOSTNAME."),
    ev!("log.syslog.appname", Keyword, elem::SYSLOG_APPNAME, "Syslog APP-NAME (RFC 5424) or tag (RFC 3164)."),
    ev!("log.syslog.procid", Keyword, elem::SYSLOG_PROCID, "Syslog PROCID, or the tag's `[pid]`."),
    ev!("log.syslog.msgid", Keyword, elem::SYSLOG_MSGID, "Syslog MSGID (RFC 5424)."),
    ev!("log.syslog.version", Long, elem::SYSLOG_VERSION, "Syslog VERSION (RFC 5424: 1; absent for RFC 3164)."),
    ev!("log.syslog.facility.code", Long, elem::SYSLOG_FACILITY, "Syslog facility."),
    ev!("log.syslog.severity.code", Long, elem::SYSLOG_SEVERITY, "Syslog severity."),
    ev!("cloud.provider", Keyword, CloudProvider, "VPC Flow Logs: `aws`."),
    ev!("cloud.region", Keyword, elem::VPC_REGION, "VPC Flow Logs `region`."),
    ev!("cloud.account.id", Keyword, elem::VPC_ACCOUNT_ID, "VPC Flow Logs `account-id`."),
    ev!("cloud.instance.id", Keyword, elem::VPC_INSTANCE_ID, "VPC Flow Logs `instance-id`."),
    ev!("aws.vpcflow.version", Long, elem::VPC_VERSION, "VPC Flow Logs `version`."),
    ev!("aws.vpcflow.interface_id", Keyword, elem::VPC_INTERFACE_ID, "VPC Flow Logs `interface-id`."),
    ev!("aws.vpcflow.vpc_id", Keyword, elem::VPC_VPC_ID, "VPC Flow Logs `vpc-id`."),
    ev!("aws.vpcflow.subnet_id", Keyword, elem::VPC_SUBNET_ID, "VPC Flow Logs `subnet-id`."),
    ev!("aws.vpcflow.type", Keyword, elem::VPC_TYPE, "VPC Flow Logs `type` (`IPv4`, `IPv6`, `EFA`)."),
    ev!("aws.vpcflow.pkt_srcaddr", Ip, elem::VPC_PKT_SRCADDR, "VPC Flow Logs `pkt-srcaddr`."),
    ev!("aws.vpcflow.pkt_dstaddr", Ip, elem::VPC_PKT_DSTADDR, "VPC Flow Logs `pkt-dstaddr`."),
    ev!("aws.vpcflow.az_id", Keyword, elem::VPC_AZ_ID, "VPC Flow Logs `az-id`."),
    ev!("aws.vpcflow.sublocation_type", Keyword, elem::VPC_SUBLOCATION_TYPE, "VPC Flow Logs `sublocation-type`."),
    ev!("aws.vpcflow.sublocation_id", Keyword, elem::VPC_SUBLOCATION_ID, "VPC Flow Logs `sublocation-id`."),
    ev!("aws.vpcflow.pkt_src_aws_service", Keyword, elem::VPC_PKT_SRC_SERVICE, "VPC Flow Logs `pkt-src-aws-service`."),
    ev!("aws.vpcflow.pkt_dst_aws_service", Keyword, elem::VPC_PKT_DST_SERVICE, "VPC Flow Logs `pkt-dst-aws-service`."),
    ev!("aws.vpcflow.flow_direction", Keyword, elem::VPC_FLOW_DIRECTION, "VPC Flow Logs `flow-direction` (`ingress`, `egress`)."),
    ev!("aws.vpcflow.traffic_path", Long, elem::VPC_TRAFFIC_PATH, "VPC Flow Logs `traffic-path` (1-8)."),
    ev!("aws.vpcflow.action", Keyword, elem::VPC_ACTION, "VPC Flow Logs `action` as written (`ACCEPT`, `REJECT`)."),
    ev!("aws.vpcflow.log_status", Keyword, elem::VPC_LOG_STATUS, "VPC Flow Logs `log-status` (`OK`; NODATA/SKIPDATA records are counted, not stored)."),
    ev!("cisco.asa.connection_id", Long, elem::ASA_CONNECTION_ID, "Cisco ASA connection id (302013-302016)."),
    ev!("panw.panos.type", Keyword, elem::PANOS_TYPE, "PAN-OS log type (`TRAFFIC`, `THREAT`, ...)."),
    ev!("panw.panos.subtype", Keyword, elem::PANOS_SUBTYPE, "PAN-OS log subtype (`end`, `deny`, `vulnerability`, ...)."),
    ev!("panw.panos.session_id", Long, elem::PANOS_SESSION_ID, "PAN-OS session id."),
    ev!("panw.panos.category", Keyword, elem::PANOS_CATEGORY, "PAN-OS URL category."),
    ev!("panw.panos.threat.name", Keyword, elem::PANOS_THREAT_NAME, "PAN-OS threat name."),
    ev!("panw.panos.threat.id", Long, elem::PANOS_THREAT_ID, "PAN-OS threat id."),
    ev!("panw.panos.threat.severity", Keyword, elem::PANOS_SEVERITY, "PAN-OS threat severity (`informational` to `critical`)."),
    ev!("panw.panos.threat.direction", Keyword, elem::PANOS_DIRECTION, "PAN-OS threat direction (`client-to-server`, `server-to-client`)."),
    ev!("panw.panos.threat.resource", Keyword, elem::PANOS_MISC, "PAN-OS URL/Filename field of a THREAT log."),
    ev!("error.type", Keyword, elem::PARSE_FAILURE, "Log events: why the line was not (fully) parsed (`unrecognized_format`, `asa_unsupported_message`, `vpc_field_count`, ...)."),
    f!("netflow.exporter.address", Keyword, true, ExporterAddress, "Exporter address and source port, `ip:port`."),
    f!("netflow.exporter.version", Long, true, ExporterVersion, "Export protocol version: 5, 9 or 10 (IPFIX); 5 for sFlow v5."),
    f!("netflow.exporter.protocol", Keyword, false, ExporterProtocol, "`netflow`, `ipfix` or `sflow`."),
    f!("netflow.exporter.source_id", Long, false, ExporterSourceId, "v9 source id, IPFIX observation domain id, v5 engine type << 8 | engine id."),
    f!("netflow.exporter.uptime_millis", Long, false, ExporterUptime, "Exporter sysUptime in ms (v5/v9 header)."),
    f!("netflow.exporter.timestamp", Date, false, ExporterTimestamp, "Export time from the header."),
    f!("netflow.type", Keyword, false, NetflowType, "`netflow_flow` or `netflow_options`."),
];

/// Elasticsearch type for an information element's abstract type.
pub fn es_type_of(ty: IeType) -> EsType {
    use IeType::*;
    match ty {
        Unsigned8 | Unsigned16 | Unsigned32 | Unsigned64 | Signed8 | Signed16 | Signed32
        | Signed64 => EsType::Long,
        Float32 | Float64 => EsType::Double,
        Boolean => EsType::Boolean,
        DateTimeSeconds | DateTimeMilliseconds | DateTimeMicroseconds | DateTimeNanoseconds => {
            EsType::Date
        }
        Ipv4Address | Ipv6Address => EsType::Ip,
        MacAddress | OctetArray | String | BasicList | SubTemplateList | SubTemplateMultiList => {
            EsType::Keyword
        }
    }
}

/// One row of the complete field list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRow {
    /// Dotted path.
    pub path: String,
    /// Elasticsearch type.
    pub es: EsType,
    /// Description.
    pub doc: String,
}

/// Every field: ECS fields, then `netflow.*` for each known element, sorted by path within the
/// element part. Reverse (RFC 5103) variants of IANA elements are included.
pub fn all_fields() -> Vec<FieldRow> {
    let mut rows: Vec<FieldRow> = ECS_FIELDS
        .iter()
        .map(|f| FieldRow {
            path: f.path.to_string(),
            es: f.es,
            doc: f.doc.to_string(),
        })
        .collect();
    let mut elems: Vec<FieldRow> = Vec::new();
    for d in ie::all() {
        let src = if d.pen == 0 {
            format!("IE {}", d.id)
        } else {
            format!("PEN {} IE {}", d.pen, d.id)
        };
        elems.push(FieldRow {
            path: format!("netflow.{}", d.name),
            es: es_type_of(d.ty),
            doc: src.clone(),
        });
        if d.pen == 0 {
            elems.push(FieldRow {
                path: format!("netflow.reverse_{}", d.name),
                es: es_type_of(d.ty),
                doc: format!("{src}, reverse direction (RFC 5103)"),
            });
        }
    }
    elems.sort_by(|a, b| a.path.cmp(&b.path));
    elems.dedup_by(|a, b| a.path == b.path);
    rows.extend(elems);
    rows
}

/// `docs/fields.md`, generated from the table.
pub fn fields_markdown() -> String {
    let mut s = String::from(
        "# Flow document fields\n\n\
         Generated from `sink/src/schema.rs` (`sluice fields --markdown`); a test fails when \
         this file and the table differ.\n\n\
         Unknown information elements appear as `netflow.enterprise_<pen>_<id>` (hex string; \
         pen 0 for unknown IANA or NetFlow v9 ids), v9 options scope fields as \
         `netflow.scope_<kind>`; an element a template lists more than once is one key holding an array of its values in record order.\n\n\
         | field | type | description |\n|---|---|---|\n",
    );
    for r in all_fields() {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.path,
            r.es.as_str(),
            r.doc
        ));
    }
    s
}

/// The index template for Elasticsearch 8 and OpenSearch 2/3 (`PUT _index_template/NAME`),
/// generated from the field table: every field mapped with its type (`ip`, `geo_point`,
/// `keyword`, `long`, `double`, `date`, `boolean`), and a dynamic template that maps unknown
/// enterprise elements (`netflow.enterprise_*`, hex strings) and v9 scope fields as keywords.
/// `ops/elasticsearch/sluice-flows.index-template.json` is this output; a test fails when they
/// differ.
pub fn index_template() -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    #[derive(Default)]
    struct Node {
        ty: Option<EsType>,
        children: BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for r in all_fields() {
        let mut n = &mut root;
        for part in r.path.split('.') {
            n = n.children.entry(part.to_string()).or_default();
        }
        n.ty = Some(r.es);
    }
    fn write(out: &mut String, n: &Node, indent: usize) {
        let pad = " ".repeat(indent);
        out.push_str("{\n");
        let mut first = true;
        for (k, c) in &n.children {
            if !first {
                out.push_str(",\n");
            }
            first = false;
            let _ = write!(out, "{pad}  \"{k}\": ");
            match c.ty {
                Some(t) if c.children.is_empty() => {
                    let extra = match t {
                        EsType::Keyword => ", \"ignore_above\": 1024",
                        EsType::Date => ", \"format\": \"strict_date_optional_time||epoch_millis\"",
                        _ => "",
                    };
                    let _ = write!(out, "{{ \"type\": \"{}\"{extra} }}", t.as_str());
                }
                _ => {
                    out.push_str("{ \"properties\": ");
                    write(out, c, indent + 2);
                    out.push_str(" }");
                }
            }
        }
        let _ = write!(out, "\n{pad}}}");
    }
    let mut props = String::new();
    write(&mut props, &root, 6);
    format!(
        r#"{{
  "index_patterns": ["sluice-flows-*"],
  "priority": 200,
  "_meta": {{ "description": "Sluice flow documents; generated from sink/src/schema.rs" }},
  "template": {{
    "settings": {{
      "index.codec": "best_compression",
      "index.refresh_interval": "10s",
      "index.mapping.total_fields.limit": 10000
    }},
    "mappings": {{
      "dynamic_templates": [
        {{ "netflow_enterprise": {{ "path_match": "netflow.enterprise_*", "mapping": {{ "type": "keyword", "ignore_above": 1024 }} }} }},
        {{ "netflow_scope": {{ "path_match": "netflow.scope_*", "mapping": {{ "type": "keyword", "ignore_above": 1024 }} }} }}
      ],
      "properties": {props}
    }}
  }}
}}
"#
    )
}
