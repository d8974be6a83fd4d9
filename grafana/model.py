"""Typed models of the part of Grafana's dashboard JSON that datafactory emits, and their serialisation.

Dashboards are declared as frozen dataclasses (a dashboard is a tuple of rows, a row a tuple of panels) and turned
into the JSON Grafana provisions with ``to_json``. Layout is computed, not written by hand: panels flow left to
right in Grafana's 24-column grid and wrap, so adding a panel never means re-numbering ``gridPos``.
Only what we use is modelled; ``schema/dashboard.schema.json`` describes the same subset and the tests validate
every generated file against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 39  # Grafana 11.x dashboards; the file provisioner migrates older ones, we emit current
GRID_COLUMNS = 24
PG_TYPE = "grafana-postgresql-datasource"

PanelKind = Literal["timeseries", "stat", "gauge", "bargauge", "table", "barchart", "state-timeline", "piechart"]
QueryFormat = Literal["table", "time_series"]
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DatasourceRef:
    """A data source by uid; ``uid`` may be a template variable such as ``${datasource}``."""

    uid: str
    type: str = PG_TYPE

    def to_json(self) -> Json:
        return {"type": self.type, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class Query:
    """One SQL target. ``sql`` uses Grafana macros ($__timeFilter …) and variables (${machine:csv} …)."""

    sql: str
    format: QueryFormat = "table"
    ref_id: str = "A"

    def to_json(self, ds: DatasourceRef) -> Json:
        return {
            "refId": self.ref_id,
            "datasource": ds.to_json(),
            "editorMode": "code",
            "rawQuery": True,
            "format": self.format,
            "rawSql": _dedent(self.sql),
        }


@dataclass(frozen=True, slots=True)
class Step:
    """A threshold step; the first step's value is always None (the base colour)."""

    value: float | None
    color: str


@dataclass(frozen=True, slots=True)
class Mapping_:
    """A value mapping: an exact value (or a numeric range) shown as text in a colour."""

    text: str
    color: str
    value: str | None = None
    low: float | None = None
    high: float | None = None

    def to_json(self, index: int) -> Json:
        result = {"text": self.text, "color": self.color, "index": index}
        if self.value is not None:
            return {"type": "value", "options": {self.value: result}}
        return {"type": "range", "options": {"from": self.low, "to": self.high, "result": result}}


@dataclass(frozen=True, slots=True)
class Link:
    """A data link (on a panel's values) or a dashboard link (in the top bar)."""

    title: str
    url: str
    tooltip: str = ""

    def data_link(self) -> Json:
        return {"title": self.title, "url": self.url, "targetBlank": False}


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    kind: PanelKind
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    steps: tuple[Step, ...] = ()
    mappings: tuple[Mapping_, ...] = ()
    links: tuple[Link, ...] = ()
    color_mode: str | None = None  # fieldConfig color mode: thresholds, palette-classic, fixed …
    options: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    overrides: tuple[Json, ...] = ()
    interval: str | None = None  # minimum $__interval, e.g. the raw sample period
    max_data_points: int | None = None  # fewer points per series than the panel's pixel width (many series)
    datasource: DatasourceRef | None = None  # None: the dashboard's default


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable. ``kind`` query: ``query`` is SQL returning __value/__text (or one column);
    custom: comma-separated values; datasource: ``query`` is the plugin type and ``regex`` filters names."""

    name: str
    label: str
    kind: Literal["query", "custom", "datasource"]
    query: str
    multi: bool = False
    include_all: bool = False
    regex: str = ""
    refresh: Literal[1, 2] = 1  # 1 on dashboard load, 2 on time range change
    sort: int = 1  # alphabetical ascending

    def to_json(self, ds: DatasourceRef | None) -> Json:
        body: Json = {
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "query": _dedent(self.query) if self.kind == "query" else self.query,
            "multi": self.multi,
            "includeAll": self.include_all,
            "regex": self.regex,
            "hide": 0,
            "skipUrlSync": False,
            "current": {},
            "options": [],
        }
        if self.kind == "query":
            assert ds is not None, f"query variable {self.name} needs a datasource"
            body |= {"datasource": ds.to_json(), "definition": _dedent(self.query), "refresh": self.refresh,
                     "sort": self.sort}
        if self.kind == "datasource":
            body["refresh"] = 1
        return body


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    folder: str  # provisioning folder key: plant | platform | bureau
    description: str
    datasource: DatasourceRef
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    time_from: str = "now-24h"
    refresh: str = "1m"

    def panels(self) -> list[Panel]:
        return [p for row in self.rows for p in row.panels]

    def to_json(self) -> Json:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "browser",
            "editable": False,
            "graphTooltip": 1,  # shared crosshair: a stop on the timeline lines up with the counts below
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "annotations": {"list": []},
            "links": [
                {"title": link.title, "type": "link", "url": link.url, "tooltip": link.tooltip, "icon": "dashboard",
                 "targetBlank": False, "keepTime": True, "includeVars": True, "asDropdown": False, "tags": []}
                for link in self.links
            ],
            "templating": {"list": [v.to_json(self.datasource) for v in self.variables]},
            "panels": _layout(self),
        }


def _layout(dash: Dashboard) -> list[Json]:
    out: list[Json] = []
    y = 0
    next_id = 1
    for row in dash.rows:
        out.append({"type": "row", "id": next_id, "title": row.title, "collapsed": False, "panels": [],
                    "gridPos": {"x": 0, "y": y, "w": GRID_COLUMNS, "h": 1}})
        next_id += 1
        y += 1
        x, row_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_COLUMNS:
                x, y, row_height = 0, y + row_height, 0
            out.append(_panel_json(panel, dash.datasource, next_id, {"x": x, "y": y, "w": panel.width,
                                                                      "h": panel.height}))
            next_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return out


def _panel_json(panel: Panel, default_ds: DatasourceRef, panel_id: int, grid: Json) -> Json:
    ds = panel.datasource or default_ds
    defaults: Json = {"custom": dict(panel.custom), "mappings": [m.to_json(i) for i, m in enumerate(panel.mappings)],
                      "links": [link.data_link() for link in panel.links]}
    if panel.unit is not None:
        defaults["unit"] = panel.unit
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    steps = panel.steps or (Step(None, "green"),)
    defaults["thresholds"] = {"mode": "absolute", "steps": [{"value": s.value, "color": s.color} for s in steps]}
    if panel.color_mode is not None:
        defaults["color"] = {"mode": panel.color_mode}
    body: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "gridPos": grid,
        "datasource": ds.to_json(),
        "targets": [q.to_json(ds) for q in panel.queries],
        "fieldConfig": {"defaults": defaults, "overrides": list(panel.overrides)},
        "options": dict(panel.options),
        "transparent": False,
    }
    if panel.interval is not None:
        body["interval"] = panel.interval
    if panel.max_data_points is not None:
        body["maxDataPoints"] = panel.max_data_points
    return body


def _dedent(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)
