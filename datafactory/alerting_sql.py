"""The SQL of alert-rule conditions that both evaluators share: ``alerts run`` (``alerting.conditions``, psycopg
parameters, all plants of a rule group at once) and Grafana's generated rules (``grafana.alert_rules``, literals
and Grafana macros, one plant per rule).

Each evaluator shapes its own rows (facts and since-times for the engine, one numeric column per instance for
Grafana); what decides whether a condition holds is written here once, so the two cannot drift apart.
``tests/test_grafana_alert_rules.py`` evaluates both on the same data and checks that they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from datafactory.config.models import PlantConfig

CELL_PATH = "c.area || '/' || c.line || '/' || c.cell"
"""A machine's subject: area/line/cell of ``cells c``."""

GATEWAY_SOURCES = ("jsonb_each(\n    CASE jsonb_typeof(g.status -> 'sources') WHEN 'object' THEN g.status -> 'sources'"
                   " ELSE '{}'::jsonb END) src")
"""The sources a gateway reports in ``gateway_status g`` (key = source name, value ->> 'state'); a status without
a sources object has none."""


def down_codes(cfg: PlantConfig, categories: Sequence[str]) -> list[float]:
    """The machine-state codes of the plant whose category is one of ``categories`` (a machine-down rule's)."""
    return sorted(float(c.code) for c in cfg.analytics.state_codes if c.category.value in categories)


def down_since(signal: str, codes: str, *, now: str | None = None) -> str:
    """When the machine state ``signal`` entered the down codes ``codes`` (an SQL array) and stayed there: the
    first sample after the last one outside them (at or before ``now``, when given)."""
    until = f" AND y.time <= {now}" if now else ""
    return f"""(SELECT min(x.time) FROM samples x WHERE x.signal_id = {signal} AND x.time > coalesce(
           (SELECT max(y.time) FROM samples y WHERE y.signal_id = {signal}{until}
              AND NOT (y.value = ANY({codes}))), '-infinity'))"""
