//! The field table: every field a Sluice flow document can carry, with its Elasticsearch type
//! and description. It drives the document encoder ([`crate::ecs`]), the CSV columns, the
//! index template under `ops/elasticsearch/` and `docs/fields.md`; tests fail when they drift.
//!
//! Two parts: the ECS fields below, and one `netflow.<name>` field per known information
//! element (from `sluice_decode::ie`). Unknown elements are `netflow.enterprise_<pen>_<id>`
//! (hex strings), covered by a dynamic template.

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
}

macro_rules! f {
    ($path:literal, $es:ident, $csv:literal, $get:ident, $doc:literal) => {
        EcsField {
            path: $path,
            es: EsType::$es,
            csv: $csv,
            get: Getter::$get,
            doc: $doc,
        }
    };
}

/// The ECS part of the document, in emission order (objects are contiguous).
pub static ECS_FIELDS: &[EcsField] = &[
    f!("@timestamp", Date, true, Timestamp, "Export time from the packet header (receive time when the header has none)."),
    f!("event.kind", Keyword, false, EventKind, "`event`; `metric` for sFlow counter samples."),
    f!("event.category", Keyword, false, EventCategory, "Always `[\"network\"]`."),
    f!("event.type", Keyword, false, EventType, "`[\"connection\"]`; `[\"info\"]` for sFlow counter samples."),
    f!("event.action", Keyword, false, EventAction, "`netflow_flow` for flow records; `sflow_counters` for sFlow counter samples."),
    f!("event.start", Date, true, EventStart, "Flow start (absolute UTC, from the record's time elements; export time if it has none)."),
    f!("event.end", Date, true, EventEnd, "Flow end (absolute UTC)."),
    f!("event.duration", Long, true, EventDuration, "end - start in nanoseconds."),
    f!("source.ip", Ip, true, SourceIp, "Source address (IE 8 or 27)."),
    f!("source.port", Long, true, SourcePort, "Source transport port (IE 7, 180 or 182)."),
    f!("source.bytes", Long, false, SourceBytes, "Bytes from source to destination when the record is a biflow (RFC 5103) or NSEL initiator/responder pair."),
    f!("source.packets", Long, false, SourcePackets, "Packets from source to destination for biflows."),
    f!("source.locality", Keyword, false, SourceLocality, "Address class: public, private (RFC 1918), cgnat, loopback, link_local, multicast, ula, documentation, ... (enrichment)."),
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
    f!("observer.ip", Ip, true, ObserverIp, "Exporter address."),
    f!("observer.name", Keyword, false, ObserverName, "Exporter name (config)."),
    f!("observer.ingress.interface.id", Keyword, false, IngressIfId, "Input interface index."),
    f!("observer.ingress.interface.name", Keyword, false, IngressIfName, "Input interface name (options data IE 82, or config)."),
    f!("observer.ingress.interface.alias", Keyword, false, IngressIfAlias, "Input interface description (options data IE 83, or config)."),
    f!("observer.egress.interface.id", Keyword, false, EgressIfId, "Output interface index."),
    f!("observer.egress.interface.name", Keyword, false, EgressIfName, "Output interface name."),
    f!("observer.egress.interface.alias", Keyword, false, EgressIfAlias, "Output interface description."),
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
