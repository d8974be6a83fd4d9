"""Grafana alert rules generated from the plants' ``alerting.rules``: the same thresholds as ``alerts run``.

For sites that prefer Grafana's alerting, ``grafana provision`` writes ``alerting/datafactory-rules.yaml``
(Grafana's file provisioning, apiVersion 1): one rule group per plant, one Grafana rule per datafactory rule (three
for an ``ingest`` rule: lag, conflicts and dead letters). Each rule is a SQL query on the platform data source
(``refId A``, format table: every row is one alert instance, its text columns become labels, its one numeric
column the value) and a threshold expression (``refId B``, the condition) whose limit is the rule's own parameter
from the plant config, so there is one source of truth for thresholds. "Now" is ``$__timeTo()`` (the end of the
evaluation's time range) and windows start at ``$__timeFrom()``, so a test can evaluate a query at any instant.

Differences to ``alerts run`` that follow from Grafana's model: a machine-down rule puts its delay into the
threshold (minutes in the down state, from the data's time) instead of Grafana's ``for``; every other rule uses
``for: <for_s>``. Routing, repeats and quiet hours are Grafana's own notification policies, not generated here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from datafactory.alerting_sql import CELL_PATH, GATEWAY_SOURCES, down_codes, down_since
from datafactory.config.alerting import (
    DatasetLateRule,
    GatewayRule,
    IngestRule,
    MachineDownRule,
    OeeBelowRule,
    PdmRule,
    PeakDemandRule,
    Rule,
    SpecificEnergyRule,
)
from datafactory.config.models import PlantConfig
from datafactory.errors import ConfigError
from grafana.datasources import PLATFORM_UID, PlantRef, plant_uid
from grafana.model import PG_TYPE

FOLDER = "datafactory — Alerts"
FOLDER_UID = "df-folder-alerts"  # used by `grafana deploy` (the API needs a folder uid; file provisioning a title)
RULES_FILE = "alerting/datafactory-rules.yaml"
INTERVAL = "1m"  # a multiple of Grafana's 10 s scheduler tick, as its rule validation demands
EXPR_UID = "__expr__"
_MAX_UID = 40


@dataclass(frozen=True, slots=True)
class GrafanaRule:
    """One Grafana rule: its SQL (with Grafana macros), the comparison and limit of its threshold."""

    uid: str
    title: str
    sql: str
    op: str  # gt | lt
    limit: float
    for_s: float
    window_s: float
    rule: Rule
    suffix: str = ""


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _array(values: Iterable[object], cast: str) -> str:
    items = [_lit(v) if isinstance(v, str) else repr(float(v)) for v in values]  # type: ignore[arg-type]
    return f"ARRAY[{', '.join(items)}]::{cast}[]"


def _plant(alias: str, cfg: PlantConfig) -> str:
    return (f"{alias}.plant_id = (SELECT id FROM plants WHERE enterprise = {_lit(cfg.enterprise.id)}"
            f" AND site = {_lit(cfg.site.id)})")


PATH = CELL_PATH
NOW = "$__timeTo()::timestamptz"


def _machine_down(rule: MachineDownRule, cfg: PlantConfig) -> str:
    codes = _array(down_codes(cfg, rule.categories), "float8")
    cells = f"\n  AND {PATH} = ANY({_array(rule.cells, 'text')})" if rule.cells else ""
    return f"""SELECT {PATH} AS subject,
       extract(epoch FROM {NOW} - {down_since("s.id", codes, now=NOW)}) / 60 AS minutes_down
FROM signals s JOIN cells c ON c.id = s.cell_id
CROSS JOIN LATERAL (SELECT x.value FROM samples x WHERE x.signal_id = s.id AND x.time <= {NOW}
                    ORDER BY x.time DESC LIMIT 1) l
WHERE {_plant('s', cfg)} AND s.meaning = 'machine_state' AND l.value = ANY({codes}){cells}"""


_METRIC = {
    "availability": "sum(o.apt_s) / nullif(sum(o.pbt_s), 0)",
    "performance": "sum(o.ideal_production_s) / nullif(sum(o.apt_s), 0)",
    "quality": "sum(o.good_count) / nullif(sum(o.total_count), 0)",
}
_METRIC["oee"] = f"({_METRIC['availability']}) * ({_METRIC['performance']}) * ({_METRIC['quality']})"


def _oee_below(rule: OeeBelowRule, cfg: PlantConfig) -> str:
    metric = _METRIC[rule.metric.value]
    if rule.window == "shift":  # the newest computed shift of each machine that ended within the last day
        source = f"""(SELECT DISTINCT ON (o.cell_id) o.* FROM oee o WHERE {_plant('o', cfg)} AND o.period = 'shift'
          AND o.time >= $__timeFrom()::timestamptz AND o.time_end <= {NOW} AND o.ideal_cycle_time_s IS NOT NULL
        ORDER BY o.cell_id, o.time DESC)"""
    else:
        source = f"""(SELECT o.* FROM oee o WHERE {_plant('o', cfg)} AND o.period = 'hour'
          AND o.time >= $__timeFrom()::timestamptz AND o.time_end <= {NOW} AND o.ideal_cycle_time_s IS NOT NULL)"""
    return f"""SELECT subject, value FROM (
    SELECT {PATH} AS subject, {metric} AS value
    FROM {source} o JOIN cells c ON c.id = o.cell_id
    GROUP BY c.area, c.line, c.cell
    HAVING sum(o.pbt_s) > 0 AND sum(o.pbt_s) >= {rule.min_planned_h * 3600!r}) m
WHERE value IS NOT NULL"""


def _pdm(rule: PdmRule, cfg: PlantConfig) -> str:
    only = " AND a.severity = 'critical'" if rule.min_severity == "critical" else ""
    return f"""SELECT {PATH} || '/' || coalesce(sp.signal, '') AS subject,
       max(CASE a.severity WHEN 'critical' THEN 2 ELSE 1 END) AS severity_level
FROM alerts a JOIN cells c ON c.id = a.cell_id LEFT JOIN signal_paths sp ON sp.signal_id = a.signal_id
WHERE {_plant('a', cfg)} AND a.status <> 'cleared'{only}
GROUP BY 1"""


def _peak(rule: PeakDemandRule, cfg: PlantConfig) -> str:
    return f"""SELECT 'plant' AS subject, max(e.peak_kw_15min) AS peak_kw
FROM energy_plant e WHERE {_plant('e', cfg)} AND e.period = 'hour' AND e.time >= $__timeFrom()::timestamptz
HAVING max(e.peak_kw_15min) IS NOT NULL"""


def _specific(rule: SpecificEnergyRule, cfg: PlantConfig) -> str:
    return f"""SELECT 'plant' AS subject, max((d.actual_kwh / d.expected_kwh - 1) * 100) AS above_pct
FROM (SELECT * FROM energy_baseline_daily d WHERE {_plant('d', cfg)} AND d.phase = 'reporting'
      ORDER BY d.time DESC LIMIT {rule.days}) d
WHERE d.expected_kwh > 0
HAVING count(*) > 0"""


def _gateway(rule: GatewayRule, cfg: PlantConfig) -> str:
    stale = f"{NOW} - interval '{rule.stale_s!r} seconds'"
    return f"""SELECT 'gateway:' || g.gateway AS subject, 1 AS failed FROM gateway_status g
WHERE {_plant('g', cfg)} AND (NOT g.online OR g.updated_at < {stale})
UNION ALL
SELECT 'gateway:' || g.gateway || '/source:' || src.key, 1 FROM gateway_status g CROSS JOIN LATERAL {GATEWAY_SOURCES}
WHERE {_plant('g', cfg)} AND g.online AND g.updated_at >= {stale}
  AND src.value ->> 'state' = ANY({_array(rule.source_states, 'text')})"""


def _dataset(rule: DatasetLateRule, cfg: PlantConfig) -> str:
    only = f" AND dataset = ANY({_array(rule.datasets, 'text')})" if rule.datasets else ""
    return f"""SELECT 'dataset:' || dataset AS subject, count(*) AS late
FROM dataset_alerts WHERE status <> 'resolved'{only}
GROUP BY dataset"""


def _lag(rule: IngestRule, cfg: PlantConfig) -> str:
    return """SELECT 'worker:' || worker || '/lag' AS subject, lag_s FROM ingest_health WHERE lag_s IS NOT NULL"""


def _conflicts(rule: IngestRule, cfg: PlantConfig) -> str:
    # ingest_health.conflicts_total (migration 0611): different values at a stored (signal, time), per worker.
    return """SELECT 'worker:' || worker || '/conflicts' AS subject, conflicts_total AS conflicts FROM ingest_health"""


def _dead_letters(rule: IngestRule, cfg: PlantConfig) -> str:
    # As in `alerts run`: a row is one distinct letter, its arrivals are summed in `deliveries` (migration 0610).
    return f"""SELECT 'dead-letters' AS subject, coalesce(sum(d.deliveries), 0)::bigint AS dead_letters
FROM dead_letters d WHERE {_plant('d', cfg)} AND d.last_seen >= $__timeFrom()::timestamptz"""


def uid(cfg: PlantConfig, rule_id: str) -> str:
    """Stable, unique per plant and rule, within Grafana's 40 characters."""
    digest = hashlib.sha256(f"{cfg.enterprise.id}/{cfg.site.id}/{rule_id}".encode()).hexdigest()[:10]
    return f"df-{digest}-{re.sub(r'[^a-zA-Z0-9_-]', '-', rule_id)}"[:_MAX_UID]


def rules_of(cfg: PlantConfig) -> list[GrafanaRule]:
    out: list[GrafanaRule] = []
    label = f"{cfg.enterprise.id}/{cfg.site.id}"
    for rule in cfg.alerting.rules:
        if not rule.enabled:
            continue

        def add(sql: str, op: str, limit: float, *, window_s: float = 600, for_s: float = rule.for_s,
                suffix: str = "", r: Rule = rule) -> None:
            rid = r.id + (f"-{suffix}" if suffix else "")
            out.append(GrafanaRule(uid(cfg, rid), f"{label} {rid}", sql, op, limit, for_s, window_s, r, suffix))

        if isinstance(rule, MachineDownRule):
            add(_machine_down(rule, cfg), "gt", rule.for_s / 60, for_s=0)
        elif isinstance(rule, OeeBelowRule):
            window = 86400 if rule.window == "shift" else rule.window_h * 3600
            add(_oee_below(rule, cfg), "lt", rule.target, window_s=window)
        elif isinstance(rule, PdmRule):
            add(_pdm(rule, cfg), "gt", 0)
        elif isinstance(rule, PeakDemandRule):
            add(_peak(rule, cfg), "gt", rule.max_kw, window_s=rule.window_h * 3600)
        elif isinstance(rule, SpecificEnergyRule):
            add(_specific(rule, cfg), "gt", rule.above_pct)
        elif isinstance(rule, GatewayRule):
            add(_gateway(rule, cfg), "gt", 0)
        elif isinstance(rule, DatasetLateRule):
            add(_dataset(rule, cfg), "gt", 0)
        elif isinstance(rule, IngestRule):
            add(_lag(rule, cfg), "gt", rule.max_lag_s, suffix="lag")
            add(_conflicts(rule, cfg), "gt", rule.max_conflicts, suffix="conflicts")
            add(_dead_letters(rule, cfg), "gt", rule.max_dead_letters, window_s=rule.window_s, suffix="dead-letters")
    return out


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m" if s and s % 60 == 0 else f"{s}s"


def to_provisioning(cfg: PlantConfig, r: GrafanaRule) -> dict[str, Any]:
    policy = cfg.alerting.policy
    return {
        "uid": r.uid,
        "title": r.title,
        "condition": "B",
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": int(r.window_s), "to": 0}, "datasourceUid": PLATFORM_UID,
             "model": {"refId": "A", "datasource": {"type": PG_TYPE, "uid": PLATFORM_UID}, "editorMode": "code",
                       "rawQuery": True, "format": "table", "rawSql": r.sql}},
            {"refId": "B", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": EXPR_UID,
             "model": {"refId": "B", "datasource": {"type": EXPR_UID, "uid": EXPR_UID}, "type": "threshold",
                       "expression": "A", "conditions": [{"evaluator": {"type": r.op, "params": [r.limit]}}]}},
        ],
        "noDataState": "OK",  # no row means nothing is wrong (no machine down, no late dataset)
        "execErrState": "Error",
        "for": _duration(r.for_s),
        "annotations": {
            "summary": f"{r.rule.kind} {r.suffix}".strip() + ": {{ $labels.subject }} = {{ $values.A }}",
            "dashboard_url": policy.dashboard_url.rstrip("/"),
        },
        "labels": {"plant": f"{cfg.enterprise.id}/{cfg.site.id}", "rule": r.rule.id, "kind": r.rule.kind,
                   "severity": r.rule.severity.value, "source": "datafactory"},
        "isPaused": False,
    }


def group_name(cfg: PlantConfig) -> str:
    """One rule group per plant; URL-safe, as the API addresses groups by name in the path."""
    return plant_uid(PlantRef(cfg.enterprise.id, cfg.site.id))


def api_group(group: dict[str, Any], folder_uid: str = FOLDER_UID) -> dict[str, Any]:
    """A file-provisioning group as the alerting provisioning API's rule-group body (PUT replaces the group)."""
    rules = [{**r, "folderUID": folder_uid, "ruleGroup": group["name"], "orgID": group["orgId"]}
             for r in group["rules"]]
    return {"title": group["name"], "folderUid": folder_uid, "interval": int(_seconds(group["interval"])),
            "rules": rules}


def document(configs: list[PlantConfig]) -> dict[str, Any]:
    """The rules file. A plant may have several configs (one per gateway): its group holds each rule once, and a
    rule id whose generated rule differs between two of them (parameters, state codes) is a config error."""
    plants: dict[tuple[str, str], tuple[PlantConfig, dict[str, dict[str, Any]]]] = {}
    for cfg in configs:
        first, rules = plants.setdefault((cfg.enterprise.id, cfg.site.id), (cfg, {}))
        for r in rules_of(cfg):
            doc = to_provisioning(first, r)
            if rules.setdefault(r.uid, doc) != doc:
                raise ConfigError(f"{cfg.enterprise.id}/{cfg.site.id}", [(
                    f"alerting.rules[{r.rule.id}]",
                    "differs between two configs of this plant; one plant has one set of alert rules")])
    groups = [{"orgId": 1, "name": group_name(cfg), "folder": FOLDER, "interval": INTERVAL,
               "rules": list(rules.values())} for _, (cfg, rules) in sorted(plants.items()) if rules]
    return {"apiVersion": 1, "groups": groups}


SCHEMA_PATH = "schema/alert-rules.schema.json"


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|[smhdwy])", duration))


def check(doc: dict[str, Any]) -> list[str]:
    """Errors of a rules file: the JSON Schema, then what Grafana's rule validation adds and a schema cannot say
    (the interval a multiple of 10 s, the condition and every expression naming a query of the same rule, uids
    unique in the file)."""
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).parent / SCHEMA_PATH).read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    if errors:
        return errors
    seen: set[str] = set()
    for g in doc["groups"]:
        interval = _seconds(g["interval"])
        if interval <= 0 or interval % 10:
            errors.append(f"group {g['name']}: interval {g['interval']} is not a positive multiple of 10 s")
        for r in g["rules"]:
            if r["uid"] in seen:
                errors.append(f"rule {r['uid']}: uid used twice")
            seen.add(r["uid"])
            refs = [q["refId"] for q in r["data"]]
            if len(set(refs)) != len(refs):
                errors.append(f"rule {r['uid']}: refIds {refs} repeat")
            if r["condition"] not in refs:
                errors.append(f"rule {r['uid']}: condition {r['condition']} is none of the queries {refs}")
            for q in r["data"]:
                expr = q["model"].get("expression")
                if q["datasourceUid"] == EXPR_UID and expr not in refs:
                    errors.append(f"rule {r['uid']}: expression {q['refId']} reads {expr}, which is not a query")
    return errors
