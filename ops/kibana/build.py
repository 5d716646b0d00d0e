#!/usr/bin/env python3
"""Builds sluice-dashboards.ndjson, the Kibana 8 saved objects for Sluice's flow documents.

Kibana stores most of a saved object as JSON strings inside JSON (panelsJSON, layerListJSON,
searchSourceJSON), which nobody can edit by hand; this script is the source and the ndjson
is its output. Run `python3 ops/kibana/build.py` after a change (`--check` only compares).
ingest/tests/ops_kibana.rs checks the output: ids unique, references resolve, every field
used exists in the index template generated from sink/src/schema.rs with a fitting type, and
is non-empty in documents decoded from the shared captures.

Import: Stack Management > Saved objects > Import, or
  curl -X POST 'http://KIBANA:5601/api/saved_objects/_import?overwrite=true' \
       -H 'kbn-xsrf: true' --form file=@ops/kibana/sluice-dashboards.ndjson

Only the standard library; output is deterministic (fixed ids, sorted keys inside strings).
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "sluice-dashboards.ndjson"

DATA_VIEW = "sluice-flows"
# The daily indices sluice-flows-YYYY.MM.DD, and a data stream if it is named sluice-flows-*
# (the index template ops/elasticsearch/ matches that pattern).
DATA_VIEW_TITLE = "sluice-flows-*"

CORE_VERSION = "8.8.0"
TYPE_VERSIONS = {
    "index-pattern": "8.0.0",
    "lens": "8.9.0",
    "map": "8.4.0",
    "search": "8.0.0",
    "dashboard": "8.9.0",
}

# Firewall events (syslog) are the documents that are not flow records.
FIREWALL_QUERY = 'NOT event.action : "netflow_flow"'

objects = []


def js(value):
    """A JSON string as Kibana embeds it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def saved(obj_type, obj_id, attributes, references):
    objects.append(
        {
            "id": obj_id,
            "type": obj_type,
            "attributes": attributes,
            "references": references,
            "coreMigrationVersion": CORE_VERSION,
            "typeMigrationVersion": TYPE_VERSIONS[obj_type],
            "managed": False,
        }
    )
    return obj_id


# ---------------------------------------------------------------------------------------------
# The data view.

saved(
    "index-pattern",
    DATA_VIEW,
    {
        "title": DATA_VIEW_TITLE,
        "name": "Sluice flows",
        "timeFieldName": "@timestamp",
        "fieldFormatMap": js(
            {
                f: {"id": "bytes", "params": {"pattern": "0,0.[0]b"}}
                for f in ("network.bytes", "source.bytes", "destination.bytes")
            }
        ),
        "allowNoIndex": True,
    },
    [],
)

# ---------------------------------------------------------------------------------------------
# Lens columns. Lens calls data types "string", "number", "ip", "date".


class Layer:
    """One Lens data layer: its columns in order, each with a stable id."""

    def __init__(self, vis_id):
        self.vis_id = vis_id
        self.id = f"{vis_id}-layer"
        self.columns = {}
        self.order = []

    def add(self, column):
        cid = f"{self.vis_id}-c{len(self.order)}"
        self.columns[cid] = column
        self.order.append(cid)
        return cid

    def state(self):
        return {
            "columns": self.columns,
            "columnOrder": self.order,
            "incompleteColumns": {},
        }


BYTES_FORMAT = {"id": "bytes", "params": {"decimals": 1}}


def col_sum(field, label, fmt=None):
    params = {"emptyAsNull": True}
    if fmt:
        params["format"] = fmt
    return {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "sum",
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
        "params": params,
    }


def col_bytes(field="network.bytes", label="Bytes"):
    return col_sum(field, label, BYTES_FORMAT)


def col_packets():
    return col_sum("network.packets", "Packets")


def col_count(label="Flows", kql=None):
    c = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "count",
        "sourceField": "___records___",
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": False},
    }
    if kql:
        c["filter"] = {"query": kql, "language": "kuery"}
    return c


def col_unique(field, label):
    return {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "unique_count",
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": False},
    }


def col_time():
    return {
        "label": "@timestamp",
        "dataType": "date",
        "operationType": "date_histogram",
        "sourceField": "@timestamp",
        "isBucketed": True,
        "scale": "interval",
        "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
    }


def col_terms(field, data_type, order_by, size=10, label=None, secondary=(), other=True):
    params = {
        "size": size,
        "orderBy": {"type": "column", "columnId": order_by},
        "orderDirection": "desc",
        "otherBucket": other,
        "missingBucket": False,
        "parentFormat": {"id": "multi_terms" if secondary else "terms"},
    }
    if secondary:
        params["secondaryFields"] = list(secondary)
    return {
        "label": label or f"Top {size} values of {field}",
        "customLabel": label is not None,
        "dataType": data_type,
        "operationType": "terms",
        "sourceField": field,
        "isBucketed": True,
        "scale": "ordinal",
        "params": params,
    }


def lens(vis_id, title, description, vis_type, layer, visualization, query=""):
    return saved(
        "lens",
        vis_id,
        {
            "title": title,
            "description": description,
            "visualizationType": vis_type,
            "state": {
                "datasourceStates": {"formBased": {"layers": {layer.id: layer.state()}}},
                "visualization": visualization,
                "query": {"query": query, "language": "kuery"},
                "filters": [],
                "adHocDataViews": {},
                "internalReferences": [],
            },
        },
        [
            {
                "type": "index-pattern",
                "id": DATA_VIEW,
                "name": f"indexpattern-datasource-layer-{layer.id}",
            }
        ],
    )


def metric(vis_id, title, description, column, query=""):
    layer = Layer(vis_id)
    m = layer.add(column)
    return lens(
        vis_id,
        title,
        description,
        "lnsMetric",
        layer,
        {"layerId": layer.id, "layerType": "data", "metricAccessor": m},
        query,
    )


def xy(layer, series, x, accessors, split=None, horizontal=False):
    layer_state = {
        "layerId": layer.id,
        "layerType": "data",
        "seriesType": series,
        "xAccessor": x,
        "accessors": accessors,
    }
    if split:
        layer_state["splitAccessor"] = split
    return {
        "preferredSeriesType": series,
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": "hide",
        "fittingFunction": "None",
        "axisTitlesVisibilitySettings": {"x": False, "yLeft": False, "yRight": False},
        "tickLabelsVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
        "gridlinesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
        "layers": [layer_state],
    }


def over_time(vis_id, title, description, value, breakdown=None, size=5, series="area_stacked", query=""):
    """A time series of `value` (a column), optionally split by the top `size` of a field."""
    layer = Layer(vis_id)
    t = layer.add(col_time())
    split = None
    if breakdown:
        field, data_type = breakdown
        # The terms column orders by the value column, added next (ids are positional).
        split = layer.add(col_terms(field, data_type, f"{vis_id}-c2", size=size))
    v = layer.add(value)
    return lens(vis_id, title, description, "lnsXY", layer, xy(layer, series, t, [v], split), query)


def top_bar(vis_id, title, description, field, data_type, size=10, value=None, query=""):
    layer = Layer(vis_id)
    t = layer.add(col_terms(field, data_type, f"{vis_id}-c1", size=size, other=False))
    v = layer.add(value or col_bytes())
    return lens(vis_id, title, description, "lnsXY", layer, xy(layer, "bar_horizontal", t, [v]), query)


def donut(vis_id, title, description, field, data_type, size=8, value=None, query=""):
    layer = Layer(vis_id)
    t = layer.add(col_terms(field, data_type, f"{vis_id}-c1", size=size))
    v = layer.add(value or col_bytes())
    return lens(
        vis_id,
        title,
        description,
        "lnsPie",
        layer,
        {
            "shape": "donut",
            "layers": [
                {
                    "layerId": layer.id,
                    "layerType": "data",
                    "primaryGroups": [t],
                    "metrics": [v],
                    "numberDisplay": "percent",
                    "categoryDisplay": "default",
                    "legendDisplay": "default",
                    "nestedLegend": False,
                }
            ],
        },
        query,
    )


def table(vis_id, title, description, groups, values=None, size=20, query=""):
    """A table: one row per top-`size` combination of `groups` [(field, type, label)], the
    first group ordered by the first value column. Several groups become one multi-field
    terms column (a true top list of combinations, not a top list of tops)."""
    layer = Layer(vis_id)
    values = values if values is not None else [col_bytes(), col_packets(), col_count()]
    first_value = f"{vis_id}-c1"
    (field, data_type, label) = groups[0]
    g = layer.add(
        col_terms(
            field,
            data_type,
            first_value,
            size=size,
            label=label,
            secondary=[f for f, _, _ in groups[1:]],
            other=False,
        )
    )
    vs = [layer.add(v) for v in values]
    return lens(
        vis_id,
        title,
        description,
        "lnsDatatable",
        layer,
        {
            "layerId": layer.id,
            "layerType": "data",
            "columns": [{"columnId": c, "isTransposed": False} for c in [g] + vs],
        },
        query,
    )


def heatmap(vis_id, title, description, x_field, y_field, data_type, size=12, query=""):
    layer = Layer(vis_id)
    x = layer.add(col_terms(x_field, data_type, f"{vis_id}-c2", size=size, other=False))
    y = layer.add(col_terms(y_field, data_type, f"{vis_id}-c2", size=size, other=False))
    v = layer.add(col_bytes())
    return lens(
        vis_id,
        title,
        description,
        "lnsHeatmap",
        layer,
        {
            "shape": "heatmap",
            "layerId": layer.id,
            "layerType": "data",
            "xAccessor": x,
            "yAccessor": y,
            "valueAccessor": v,
            "legend": {"isVisible": True, "position": "right", "type": "heatmap_legend"},
            "gridConfig": {
                "type": "heatmap_grid",
                "isCellLabelVisible": False,
                "isYAxisLabelVisible": True,
                "isXAxisLabelVisible": True,
                "isYAxisTitleVisible": False,
                "isXAxisTitleVisible": False,
            },
        },
        query,
    )


def search(search_id, title, description, columns, query=""):
    return saved(
        "search",
        search_id,
        {
            "title": title,
            "description": description,
            "columns": columns,
            "sort": [["@timestamp", "desc"]],
            "grid": {},
            "hideChart": False,
            "isTextBasedQuery": False,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": js(
                    {
                        "query": {"query": query, "language": "kuery"},
                        "filter": [],
                        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
                    }
                )
            },
        },
        [
            {
                "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
                "type": "index-pattern",
                "id": DATA_VIEW,
            }
        ],
    )


# ---------------------------------------------------------------------------------------------
# Maps.


def es_layer(layer_id, label, alpha, source, style):
    """A vector layer over the data view; `source` adds to the source descriptor."""
    descriptor = {
        "id": f"{layer_id}-source",
        "metrics": [{"type": "sum", "field": "network.bytes"}, {"type": "count"}],
        "applyGlobalQuery": True,
        "applyGlobalTime": True,
        "applyForceRefresh": True,
    }
    descriptor.update(source)
    return {
        "id": layer_id,
        "label": label,
        "type": "GEOJSON_VECTOR",
        "visible": True,
        "alpha": alpha,
        "minZoom": 0,
        "maxZoom": 24,
        "joins": [],
        "query": {"query": "", "language": "kuery"},
        "sourceDescriptor": descriptor,
        "style": {"type": "VECTOR", "isTimeAware": True, "properties": style},
    }


def by_bytes(options):
    """A style property sized or coloured by the layer's byte sum."""
    options = dict(options)
    options["field"] = {"name": "sum_of_network.bytes", "origin": "source"}
    options["fieldMetaOptions"] = {"isEnabled": True, "sigma": 3}
    return {"type": "DYNAMIC", "options": options}


def geo_grid_layer(layer_id, label, geo_field, ref_name, color):
    return es_layer(
        layer_id,
        label,
        0.75,
        {
            "type": "ES_GEO_GRID",
            "geoField": geo_field,
            "requestType": "point",
            "resolution": "COARSE",
            "indexPatternRefName": ref_name,
        },
        {
            "fillColor": by_bytes({"color": color, "type": "ORDINAL"}),
            "lineColor": {"type": "STATIC", "options": {"color": "#FFFFFF"}},
            "lineWidth": {"type": "STATIC", "options": {"size": 1}},
            "iconSize": by_bytes({"minSize": 6, "maxSize": 32}),
            "symbolizeAs": {"options": {"value": "circle"}},
            "labelText": {"type": "STATIC", "options": {"value": ""}},
        },
    )


def pew_pew_layer(layer_id, ref_name):
    return es_layer(
        layer_id,
        "Source to destination",
        0.6,
        {
            "type": "ES_PEW_PEW",
            "sourceGeoField": "source.geo.location",
            "destGeoField": "destination.geo.location",
            "indexPatternRefName": ref_name,
        },
        {
            "lineColor": {"type": "STATIC", "options": {"color": "#6092C0"}},
            "lineWidth": by_bytes({"minSize": 1, "maxSize": 10}),
        },
    )


def geo_map(map_id, title, description):
    base = {
        "id": f"{map_id}-basemap",
        "label": None,
        "type": "EMS_VECTOR_TILE",
        "visible": True,
        "alpha": 1,
        "minZoom": 0,
        "maxZoom": 24,
        "sourceDescriptor": {"type": "EMS_TMS", "isAutoSelect": True, "lightModeDefault": "road_map_desaturated"},
        "style": {"type": "EMS_VECTOR_TILE"},
    }
    layers = [
        base,
        pew_pew_layer(f"{map_id}-lines", "layer_1_source_index_pattern"),
        geo_grid_layer(f"{map_id}-src", "Sources (bytes)", "source.geo.location", "layer_2_source_index_pattern", "Blues"),
        geo_grid_layer(f"{map_id}-dst", "Destinations (bytes)", "destination.geo.location", "layer_3_source_index_pattern", "Reds"),
    ]
    refs = [
        {"name": f"layer_{i}_source_index_pattern", "type": "index-pattern", "id": DATA_VIEW}
        for i in (1, 2, 3)
    ]
    return saved(
        "map",
        map_id,
        {
            "title": title,
            "description": description,
            "layerListJSON": js(layers),
            "mapStateJSON": js(
                {
                    "zoom": 1.4,
                    "center": {"lon": 0, "lat": 25},
                    "timeFilters": {"from": "now-24h", "to": "now"},
                    "refreshConfig": {"isPaused": True, "interval": 0},
                    "query": {"query": "", "language": "kuery"},
                    "filters": [],
                    "settings": {"autoFitToDataBounds": False, "showSpatialFilters": True},
                }
            ),
            "uiStateJSON": js({"isLayerTOCOpen": True, "openTOCDetails": []}),
        },
        refs,
    )


# ---------------------------------------------------------------------------------------------
# Dashboards.

DASHBOARD_IDS = {
    "overview": "sluice-overview",
    "topn": "sluice-top-n",
    "partners": "sluice-conversation-partners",
    "time": "sluice-traffic-over-time",
    "geo": "sluice-geo",
    "as": "sluice-autonomous-systems",
    "exporters": "sluice-exporters-interfaces",
    "records": "sluice-flow-records",
    "firewall": "sluice-firewall",
}


def navigation():
    """A Markdown panel linking every dashboard (by value: it has no saved object)."""
    titles = [
        ("overview", "Overview"),
        ("topn", "Top-N"),
        ("partners", "Conversation partners"),
        ("time", "Traffic over time"),
        ("geo", "Geo"),
        ("as", "Autonomous systems"),
        ("exporters", "Exporters and interfaces"),
        ("records", "Flow records"),
        ("firewall", "Firewall"),
    ]
    links = " | ".join(f"[{t}](#/view/{DASHBOARD_IDS[k]})" for k, t in titles)
    return {
        "savedVis": {
            "title": "",
            "description": "",
            "type": "markdown",
            "params": {"fontSize": 12, "openLinksInNewTab": False, "markdown": f"**Sluice** {links}"},
            "uiState": {},
            "data": {"aggs": [], "searchSource": {"query": {"query": "", "language": "kuery"}, "filter": []}},
        },
        "hidePanelTitles": True,
        "enhancements": {},
    }


def dashboard(key, title, description, rows, query=""):
    """`rows`: lists of (object id, object type, width, height); each row fills 48 columns."""
    panels = []
    references = []
    y = 0
    n = 0
    panels.append(
        {
            "version": "8.9.0",
            "type": "visualization",
            "gridData": {"x": 0, "y": 0, "w": 48, "h": 3, "i": "nav"},
            "panelIndex": "nav",
            "embeddableConfig": navigation(),
        }
    )
    y = 3
    for row in rows:
        x = 0
        height = 0
        for obj_id, obj_type, w, h in row:
            n += 1
            index = str(n)
            panels.append(
                {
                    "version": "8.9.0",
                    "type": obj_type,
                    "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                    "panelIndex": index,
                    "embeddableConfig": {"enhancements": {}},
                    "panelRefName": f"panel_{index}",
                }
            )
            references.append({"name": f"{index}:panel_{index}", "type": obj_type, "id": obj_id})
            x += w
            height = max(height, h)
        if x > 48:
            raise SystemExit(f"{title}: a row is {x} columns wide (at most 48)")
        y += height
    return saved(
        "dashboard",
        DASHBOARD_IDS[key],
        {
            "title": title,
            "description": description,
            "panelsJSON": js(panels),
            "optionsJSON": js(
                {"useMargins": True, "syncColors": False, "syncCursor": True, "syncTooltips": False, "hidePanelTitles": False}
            ),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": js({"query": {"query": query, "language": "kuery"}, "filter": []})
            },
        },
        references,
    )


def L(obj_id, w, h):
    return (obj_id, "lens", w, h)


IP, KW, NUM = "ip", "string", "number"

# Shared pieces.
flow_records = search(
    "sluice-search-flow-records",
    "Sluice flow records",
    "Every flow document, newest first.",
    [
        "observer.ip",
        "source.ip",
        "source.port",
        "destination.ip",
        "destination.port",
        "network.transport",
        "network.protocol",
        "network.bytes",
        "network.packets",
        "network.direction",
        "event.duration",
    ],
)
bytes_total = metric("sluice-metric-bytes", "Bytes", "Sum of network.bytes (scaled by sampling).", col_bytes())
packets_total = metric("sluice-metric-packets", "Packets", "Sum of network.packets (scaled by sampling).", col_packets())
flows_total = metric("sluice-metric-flows", "Flow records", "Flow documents in the time range.", col_count())
exporters_total = metric("sluice-metric-exporters", "Exporters", "Distinct exporter addresses.", col_unique("observer.ip", "Exporters"))
top_src_bar = top_bar("sluice-bar-top-sources", "Top sources", "Source addresses by bytes.", "source.ip", IP)
top_dst_bar = top_bar("sluice-bar-top-destinations", "Top destinations", "Destination addresses by bytes.", "destination.ip", IP)
services_donut = donut("sluice-donut-services", "Services", "Bytes by service of the server port (network.protocol).", "network.protocol", KW)
transport_donut = donut("sluice-donut-transport", "Transport protocols", "Bytes by IP protocol.", "network.transport", KW)
direction_donut = donut("sluice-donut-direction", "Direction", "Bytes by flow direction (exporter's, else from address locality).", "network.direction", KW)
bytes_by_transport = over_time(
    "sluice-time-bytes-transport", "Bytes over time by transport", "", col_bytes(), ("network.transport", KW)
)

dashboard(
    "overview",
    "Sluice: Overview",
    "Traffic totals, top talkers and services from Sluice flow records.",
    [
        [L(bytes_total, 12, 6), L(packets_total, 12, 6), L(flows_total, 12, 6), L(exporters_total, 12, 6)],
        [L(bytes_by_transport, 48, 12)],
        [L(top_src_bar, 16, 14), L(top_dst_bar, 16, 14), L(services_donut, 16, 14)],
        [L(direction_donut, 16, 12), L(transport_donut, 16, 12), ("sluice-map-geo", "map", 16, 12)],
        [(flow_records, "search", 48, 16)],
    ],
)

# Top-N.
dashboard(
    "topn",
    "Sluice: Top-N",
    "Top talkers, services and conversations by bytes.",
    [
        [
            L(table("sluice-table-top-talkers", "Top talkers", "Source addresses by bytes.", [("source.ip", IP, "Source")]), 24, 16),
            L(table("sluice-table-top-listeners", "Top destinations", "Destination addresses by bytes.", [("destination.ip", IP, "Destination")]), 24, 16),
        ],
        [
            L(table("sluice-table-top-services", "Top services", "Service of the server port and the port, by bytes.",
                    [("network.protocol", KW, "Service"), ("destination.port", NUM, "Port")]), 24, 16),
            L(table("sluice-table-top-ports", "Top destination ports", "Transport and destination port, by bytes.",
                    [("network.transport", KW, "Transport"), ("destination.port", NUM, "Port")]), 24, 16),
        ],
        [
            L(table("sluice-table-top-conversations", "Top conversations", "Source and destination address pairs by bytes.",
                    [("source.ip", IP, "Source"), ("destination.ip", IP, "Destination")], size=25), 48, 18),
        ],
    ],
)

# Conversation partners: filter the dashboard on one address to see whom it talks to.
dashboard(
    "partners",
    "Sluice: Conversation partners",
    "Who talks to whom. Add a filter such as source.ip : 192.0.2.10 to see one host's partners.",
    [
        [L(heatmap("sluice-heatmap-partners", "Conversation matrix", "Bytes between the top sources and destinations.",
                   "source.ip", "destination.ip", IP), 48, 18)],
        [
            L(table("sluice-table-partners", "Partners and services", "Address pairs with the destination port, by bytes.",
                    [("source.ip", IP, "Source"), ("destination.ip", IP, "Destination"), ("destination.port", NUM, "Port")],
                    size=50), 32, 18),
            L(table("sluice-table-community-id", "Flows by community ID", "Both directions of a connection share a community ID; exporters that saw it.",
                    [("network.community_id", KW, "Community ID")],
                    values=[col_bytes(), col_count(), col_unique("observer.ip", "Exporters")], size=25), 16, 18),
        ],
        [
            L(table("sluice-table-locality", "Locality pairs", "Traffic between address classes (private, public, cgnat, ...).",
                    [("source.locality", KW, "Source"), ("destination.locality", KW, "Destination")]), 24, 12),
            L(direction_donut, 24, 12),
        ],
    ],
)

# Traffic over time.
dashboard(
    "time",
    "Sluice: Traffic over time",
    "Bytes, packets and flows over time, by transport, service, direction and exporter protocol.",
    [
        [L(bytes_by_transport, 48, 12)],
        [
            L(over_time("sluice-time-bytes-direction", "Bytes by direction", "", col_bytes(), ("network.direction", KW), series="line"), 24, 12),
            L(over_time("sluice-time-packets-service", "Packets by service", "", col_packets(), ("network.protocol", KW)), 24, 12),
        ],
        [
            L(over_time("sluice-time-flows-protocol", "Flow records by export protocol", "NetFlow, IPFIX and sFlow documents.",
                        col_count(), ("netflow.exporter.protocol", KW), series="bar_stacked"), 24, 12),
            L(over_time("sluice-time-tcp-flags", "TCP flags seen", "Flows carrying each TCP flag.",
                        col_count(kql="network.transport : tcp"), ("network.tcp_flags", KW), size=8, series="line"), 24, 12),
        ],
        [L(over_time("sluice-time-bytes-locality", "Bytes to each destination class", "", col_bytes(), ("destination.locality", KW)), 48, 12)],
    ],
)

# Geo.
geo_map("sluice-map-geo", "Sluice: flows on the map", "Sources, destinations and the lines between them, sized by bytes (GeoIP enrichment).")
dashboard(
    "geo",
    "Sluice: Geo",
    "Where traffic comes from and goes to (needs enrich.geoip_city).",
    [
        [("sluice-map-geo", "map", 48, 22)],
        [
            L(top_bar("sluice-bar-src-countries", "Source countries", "", "source.geo.country_name", KW), 24, 14),
            L(top_bar("sluice-bar-dst-countries", "Destination countries", "", "destination.geo.country_name", KW), 24, 14),
        ],
        [
            L(table("sluice-table-src-cities", "Source cities", "", [("source.geo.country_iso_code", KW, "Country"), ("source.geo.city_name", KW, "City")]), 16, 14),
            L(table("sluice-table-dst-cities", "Destination cities", "", [("destination.geo.country_iso_code", KW, "Country"), ("destination.geo.city_name", KW, "City")]), 16, 14),
            L(donut("sluice-donut-continents", "Destination continents", "", "destination.geo.continent_name", KW), 16, 14),
        ],
    ],
)

# Autonomous systems.
dashboard(
    "as",
    "Sluice: Autonomous systems",
    "Traffic by source and destination AS (GeoIP ASN database, else the record's BGP AS).",
    [
        [
            L(table("sluice-table-src-as", "Source AS", "", [("source.as.number", NUM, "AS"), ("source.as.organization.name", KW, "Organization")]), 24, 16),
            L(table("sluice-table-dst-as", "Destination AS", "", [("destination.as.number", NUM, "AS"), ("destination.as.organization.name", KW, "Organization")]), 24, 16),
        ],
        [L(table("sluice-table-as-pairs", "AS to AS", "", [("source.as.number", NUM, "Source AS"), ("destination.as.number", NUM, "Destination AS")], size=25), 48, 16)],
        [L(over_time("sluice-time-dst-as", "Bytes by destination organization", "", col_bytes(), ("destination.as.organization.name", KW)), 48, 12)],
    ],
)

# Exporters and interfaces.
dashboard(
    "exporters",
    "Sluice: Exporters and interfaces",
    "Per exporter and interface traffic; names come from options data (IE 82/83) or [[enrich.exporter]] in the config.",
    [
        [
            L(table("sluice-table-exporters", "Exporters", "", [("observer.ip", IP, "Exporter")],
                    values=[col_bytes(), col_count(), col_unique("netflow.exporter.version", "Versions")]), 24, 14),
            L(donut("sluice-donut-exporter-names", "Exporters by name", "", "observer.name", KW), 12, 14),
            L(donut("sluice-donut-export-version", "Export versions", "5, 9, 10 (IPFIX); sFlow counts as 5.", "netflow.exporter.version", NUM,
                    value=col_count()), 12, 14),
        ],
        [L(over_time("sluice-time-exporters", "Bytes by exporter", "", col_bytes(), ("observer.ip", IP)), 48, 12)],
        [
            L(table("sluice-table-ingress-if", "Input interfaces", "",
                    [("observer.ip", IP, "Exporter"), ("observer.ingress.interface.id", KW, "ifIndex")]), 24, 14),
            L(table("sluice-table-egress-if", "Output interfaces", "",
                    [("observer.ip", IP, "Exporter"), ("observer.egress.interface.id", KW, "ifIndex")]), 24, 14),
        ],
        [
            L(table("sluice-table-ingress-if-names", "Input interfaces by name", "",
                    [("observer.ingress.interface.name", KW, "Interface"), ("observer.ingress.interface.alias", KW, "Description")]), 24, 12),
            L(table("sluice-table-egress-if-names", "Output interfaces by name", "",
                    [("observer.egress.interface.name", KW, "Interface"), ("observer.egress.interface.alias", KW, "Description")]), 24, 12),
        ],
        [L(table("sluice-table-sampling", "Sampling", "Sampling interval applied to bytes and packets, per exporter.",
                 [("observer.ip", IP, "Exporter"), ("network.sampling_interval", NUM, "1 in N")],
                 values=[col_count()]), 48, 10)],
    ],
)

# Flow records.
dashboard(
    "records",
    "Sluice: Flow records",
    "The flow documents themselves; add filters to narrow them down.",
    [
        [L(over_time("sluice-time-flow-count", "Flow records", "", col_count(), series="bar_stacked"), 48, 8)],
        [(flow_records, "search", 48, 30)],
    ],
)

# Firewall: syslog events from netfilter/EdgeRouter, Cisco ASA and PAN-OS.
firewall_records = search(
    "sluice-search-firewall",
    "Sluice firewall events",
    "Firewall log events (everything that is not a flow record), newest first.",
    ["observer.ip", "observer.product", "event.action", "rule.name", "source.ip", "source.port", "destination.ip", "destination.port", "network.transport"],
    query=FIREWALL_QUERY,
)
dashboard(
    "firewall",
    "Sluice: Firewall",
    "Firewall events received over syslog: actions, rules, blocked sources, targeted ports.",
    [
        [L(over_time("sluice-time-firewall-actions", "Events by action", "", col_count("Events"), ("event.action", KW),
                     series="bar_stacked", query=FIREWALL_QUERY), 48, 12)],
        [
            L(table("sluice-table-firewall-rules", "Rules", "Events per rule and action.",
                    [("rule.name", KW, "Rule"), ("event.action", KW, "Action")], values=[col_count("Events")], query=FIREWALL_QUERY), 24, 14),
            L(table("sluice-table-firewall-sources", "Sources", "Sources and the actions taken on them.",
                    [("source.ip", IP, "Source"), ("event.action", KW, "Action")], values=[col_count("Events")], query=FIREWALL_QUERY), 24, 14),
        ],
        [
            L(table("sluice-table-firewall-ports", "Targeted ports", "",
                    [("network.transport", KW, "Transport"), ("destination.port", NUM, "Port")], values=[col_count("Events")], query=FIREWALL_QUERY), 24, 12),
            L(table("sluice-table-firewall-observers", "Firewalls", "",
                    [("observer.ip", IP, "Firewall"), ("observer.product", KW, "Product")], values=[col_count("Events")], query=FIREWALL_QUERY), 24, 12),
        ],
        [(firewall_records, "search", 48, 20)],
    ],
    query=FIREWALL_QUERY,
)


def render():
    ids = [o["id"] for o in objects]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate saved object id")
    return "".join(js(o) + "\n" for o in objects)


def main():
    text = render()
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT} is stale: run python3 ops/kibana/build.py")
        return
    if sys.argv[1:]:
        sys.exit("usage: build.py [--check]")
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(objects)} saved objects to {OUT}")


if __name__ == "__main__":
    main()
