"""Rule conditions as SQL over the tables other services write; one query per rule and parameter set.

A condition is what a rule sees right now: (plant, subject) with a value, since when and the facts a message is
written from. Rules whose parameters are equal across plants are evaluated in ONE query for all those plants
(``plant_id = ANY(...)``), which is what keeps a round over a hundred plants within seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

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


@dataclass(frozen=True, slots=True)
class Condition:
    plant_id: int
    subject: str
    since: datetime
    value: float | None = None
    cell_id: int | None = None
    severity: str | None = None  # overrides the rule's when the source says more (PdM escalation)
    facts: dict[str, Any] = field(default_factory=dict)


def group_key(rule: Rule, cfg: PlantConfig) -> str:
    """Rules with the same key share one query: the rule's parameters (and, for machine states, the codes)."""
    params = rule.model_dump_json(exclude={"id", "severity", "for_s", "enabled", "receivers"})
    if isinstance(rule, MachineDownRule):
        params += repr(down_codes(cfg, rule.categories))
    return params


MACHINE_DOWN = f"""
WITH last AS (
    SELECT s.plant_id, s.cell_id, s.id AS signal_id, {CELL_PATH} AS path,
           l.time AS last_time, l.value AS code
    FROM signals s JOIN cells c ON c.id = s.cell_id
    CROSS JOIN LATERAL (SELECT x.time, x.value FROM samples x WHERE x.signal_id = s.id
                        ORDER BY x.time DESC LIMIT 1) l
    WHERE s.plant_id = ANY(%(plants)s) AND s.meaning = 'machine_state' AND l.value = ANY(%(codes)s)
)
SELECT last.plant_id, last.cell_id, last.path, last.code, last.last_time,
       {down_since("last.signal_id", "%(codes)s")} AS since
FROM last
"""


def machine_down(conn: psycopg.Connection, rule: MachineDownRule, plants: dict[int, PlantConfig],
                 now: datetime) -> list[Condition]:
    cfg = next(iter(plants.values()))
    reasons = {float(c.code): c.reason for c in cfg.analytics.state_codes}
    out = []
    rows = conn.execute(MACHINE_DOWN, {"plants": list(plants), "codes": down_codes(cfg, rule.categories)}).fetchall()
    for plant_id, cell_id, path, code, _last, since in rows:
        if rule.cells and path not in rule.cells:
            continue
        out.append(Condition(plant_id, path, since, (now - since).total_seconds() / 60, cell_id,
                             facts={"machine": path, "code": int(code), "reason": reasons.get(code, "")}))
    return out


OEE_ROLLING = f"""
SELECT o.plant_id, o.cell_id, {CELL_PATH} AS path, min(o.time), max(o.time_end),
       sum(o.pbt_s), sum(o.apt_s), sum(o.ideal_production_s), sum(o.good_count), sum(o.total_count), ''
FROM oee o JOIN cells c ON c.id = o.cell_id
WHERE o.plant_id = ANY(%(plants)s) AND o.period = 'hour' AND o.time >= %(start)s AND o.time_end <= %(now)s
  AND o.ideal_cycle_time_s IS NOT NULL
GROUP BY o.plant_id, o.cell_id, c.area, c.line, c.cell
"""
OEE_SHIFT = f"""
SELECT DISTINCT ON (o.cell_id) o.plant_id, o.cell_id, {CELL_PATH}, o.time, o.time_end,
       o.pbt_s, o.apt_s, o.ideal_production_s, o.good_count, o.total_count, o.shift_name
FROM oee o JOIN cells c ON c.id = o.cell_id
WHERE o.plant_id = ANY(%(plants)s) AND o.period = 'shift' AND o.time >= %(start)s AND o.time_end <= %(now)s
  AND o.ideal_cycle_time_s IS NOT NULL
ORDER BY o.cell_id, o.time DESC
"""


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def oee_below(conn: psycopg.Connection, rule: OeeBelowRule, plants: dict[int, PlantConfig],
              now: datetime) -> list[Condition]:
    shift = rule.window == "shift"
    start = now - (timedelta(days=1) if shift else timedelta(hours=rule.window_h))
    rows = conn.execute(OEE_SHIFT if shift else OEE_ROLLING, {"plants": list(plants), "start": start, "now": now})
    out = []
    for plant_id, cell_id, path, t0, t1, pbt, apt, ideal, good, total, shift_name in rows.fetchall():
        if not pbt or pbt < rule.min_planned_h * 3600:
            continue
        a, p, q = _ratio(apt, pbt), _ratio(ideal, apt), _ratio(good, total)
        metrics = {"availability": a, "performance": p, "quality": q,
                   "oee": a * p * q if a is not None and p is not None and q is not None else None}
        value = metrics[rule.metric.value]
        if value is None or value >= rule.target:
            continue
        out.append(Condition(plant_id, path, t0, value, cell_id, facts={
            "machine": path, "metric": rule.metric.value, "target": rule.target, "window_start": t0.isoformat(),
            "window_end": t1.isoformat(), "shift": shift_name}))
    return out


PDM = f"""
SELECT a.plant_id, a.cell_id, {CELL_PATH} AS path, coalesce(sp.signal, ''),
       a.time, a.severity, a.message, a.value, a.rul_p50_h
FROM alerts a JOIN cells c ON c.id = a.cell_id LEFT JOIN signal_paths sp ON sp.signal_id = a.signal_id
WHERE a.plant_id = ANY(%(plants)s) AND a.status <> 'cleared' AND (%(min)s = 'warning' OR a.severity = 'critical')
"""


def pdm_alert(conn: psycopg.Connection, rule: PdmRule, plants: dict[int, PlantConfig],
              now: datetime) -> list[Condition]:
    rows = conn.execute(PDM, {"plants": list(plants), "min": rule.min_severity}).fetchall()
    return [Condition(plant_id, f"{path}/{signal}", t, value, cell_id, severity=sev,
                      facts={"machine": path, "signal": signal, "detail": msg, "rul_p50_h": rul})
            for plant_id, cell_id, path, signal, t, sev, msg, value, rul in rows]


PEAK = """
SELECT plant_id, min(time) FILTER (WHERE peak_kw_15min > %(max)s), max(peak_kw_15min)
FROM energy_plant
WHERE plant_id = ANY(%(plants)s) AND period = 'hour' AND time >= %(start)s
GROUP BY plant_id HAVING max(peak_kw_15min) > %(max)s
"""


def peak_demand(conn: psycopg.Connection, rule: PeakDemandRule, plants: dict[int, PlantConfig],
                now: datetime) -> list[Condition]:
    rows = conn.execute(PEAK, {"plants": list(plants), "max": rule.max_kw,
                               "start": now - timedelta(hours=rule.window_h)}).fetchall()
    return [Condition(plant_id, "plant", since, peak, facts={"peak_kw": peak, "max_kw": rule.max_kw})
            for plant_id, since, peak in rows]


SPECIFIC = """
SELECT plant_id, time, actual_kwh, expected_kwh, production FROM (
    SELECT d.*, row_number() OVER (PARTITION BY plant_id ORDER BY time DESC) AS n
    FROM energy_baseline_daily d WHERE plant_id = ANY(%(plants)s) AND phase = 'reporting') x
WHERE n <= %(days)s AND expected_kwh > 0 AND actual_kwh > expected_kwh * (1 + %(pct)s / 100.0)
ORDER BY plant_id, time
"""


def specific_energy(conn: psycopg.Connection, rule: SpecificEnergyRule, plants: dict[int, PlantConfig],
                    now: datetime) -> list[Condition]:
    first: dict[int, Condition] = {}
    for plant_id, t, actual, expected, production in conn.execute(
            SPECIFIC, {"plants": list(plants), "days": rule.days, "pct": rule.above_pct}).fetchall():
        pct = (actual / expected - 1) * 100
        first.setdefault(plant_id, Condition(plant_id, "plant", t, pct, facts={
            "above_pct": pct, "limit_pct": rule.above_pct, "day": t.isoformat(), "actual_kwh": actual,
            "expected_kwh": expected, "production": production}))
    return list(first.values())


GATEWAYS = f"""
SELECT plant_id, gateway, online, updated_at, '' AS source, '' AS state FROM gateway_status
WHERE plant_id = ANY(%(plants)s) AND (NOT online OR updated_at < %(stale)s)
UNION ALL
SELECT g.plant_id, g.gateway, g.online, g.updated_at, src.key, src.value ->> 'state'
FROM gateway_status g CROSS JOIN LATERAL {GATEWAY_SOURCES}
WHERE g.plant_id = ANY(%(plants)s) AND g.online AND g.updated_at >= %(stale)s
  AND src.value ->> 'state' = ANY(%(states)s)
"""


def gateway_offline(conn: psycopg.Connection, rule: GatewayRule, plants: dict[int, PlantConfig],
                    now: datetime) -> list[Condition]:
    rows = conn.execute(GATEWAYS, {"plants": list(plants), "stale": now - timedelta(seconds=rule.stale_s),
                                   "states": rule.source_states}).fetchall()
    out = []
    for plant_id, gateway, online, updated_at, source, state in rows:
        subject = f"gateway:{gateway}" + (f"/source:{source}" if source else "")
        out.append(Condition(plant_id, subject, updated_at, facts={
            "gateway": gateway, "source": source, "state": state or ("offline" if not online else "stale"),
            "updated_at": updated_at.isoformat()}))
    return out


DATASETS = "SELECT dataset, opened_at, newest, due FROM dataset_alerts WHERE status <> 'resolved'"


def dataset_late(conn: psycopg.Connection, rule: DatasetLateRule, plants: dict[int, PlantConfig],
                 now: datetime) -> list[Condition]:
    # Catalogue datasets are the bureau's, not one plant's: each plant whose config has the rule is told.
    rows = conn.execute(DATASETS).fetchall()
    return [Condition(plant_id, f"dataset:{ds}", opened, facts={
                "dataset": ds, "newest": newest.isoformat() if newest else None,
                "due": due.isoformat() if due else None})
            for ds, opened, newest, due in rows if not rule.datasets or ds in rule.datasets
            for plant_id in plants]


def ingest(conn: psycopg.Connection, rule: IngestRule, plants: dict[int, PlantConfig],
           now: datetime) -> list[Condition]:
    workers = conn.execute(
        "SELECT worker, updated_at, lag_s, conflicts_total FROM ingest_health WHERE lag_s > %s OR conflicts_total > %s",
        (rule.max_lag_s, rule.max_conflicts)).fetchall()
    # A dead_letters row is one distinct letter; each arrival of it adds to `deliveries` and moves `last_seen`
    # (migration 0610), so the rule sums deliveries of the letters seen in the window, not rows: a message
    # redelivered 500 times is 500 arrivals. The count is cumulative per row, so a letter first seen before the
    # window brings its earlier deliveries with it (an over-count that alerts sooner, never one that hides).
    since = now - timedelta(seconds=rule.window_s)
    dead = conn.execute(
        "SELECT plant_id, sum(deliveries)::bigint, min(greatest(received_at, %s)) FROM dead_letters"
        " WHERE last_seen >= %s AND plant_id = ANY(%s) GROUP BY plant_id HAVING sum(deliveries) > %s",
        (since, since, list(plants), rule.max_dead_letters)).fetchall()
    out = []
    for worker, updated_at, lag, conf in workers:
        for plant_id in plants:
            if lag is not None and lag > rule.max_lag_s:
                out.append(Condition(plant_id, f"worker:{worker}/lag", updated_at, lag,
                                     facts={"worker": worker, "lag_s": lag, "max_lag_s": rule.max_lag_s}))
            if conf is not None and conf > rule.max_conflicts:
                out.append(Condition(plant_id, f"worker:{worker}/conflicts", updated_at, float(conf),
                                     facts={"worker": worker, "conflicts": conf, "max": rule.max_conflicts}))
    for plant_id, count, first in dead:
        out.append(Condition(plant_id, "dead-letters", first, float(count), facts={
            "dead_letters": count, "max": rule.max_dead_letters, "window_s": rule.window_s}))
    return out


Evaluator = Callable[[psycopg.Connection, Any, dict[int, PlantConfig], datetime], list[Condition]]
EVALUATORS: dict[str, Evaluator] = {
    "machine_down": machine_down,
    "oee_below": oee_below,
    "pdm_alert": pdm_alert,
    "peak_demand": peak_demand,
    "specific_energy": specific_energy,
    "gateway_offline": gateway_offline,
    "dataset_late": dataset_late,
    "ingest": ingest,
}
