"""Run a dashboard's variable and panel queries against a database, as Grafana would (see ``grafana.expand``).

Used by the query test and the dashboards benchmark: variables are resolved in dashboard order (a variable may
use the ones before it), with "All" selected for multi-value variables, then every panel query is expanded and
executed. The data source variable is the one exception: it chooses the connection, not SQL text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg

from grafana.expand import VariableValue, expand
from grafana.model import Dashboard, Panel, Query


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard: Dashboard
    panel: Panel
    query: Query

    @property
    def name(self) -> str:
        return f"{self.dashboard.uid}/{self.panel.title}/{self.query.ref_id}"


def panel_queries(dashboards: tuple[Dashboard, ...]) -> Iterator[PanelQuery]:
    for dash in dashboards:
        for panel in dash.panels():
            for query in panel.queries:
                yield PanelQuery(dash, panel, query)


def variable_options(conn: psycopg.Connection, sql: str) -> list[str]:
    """Option values of a query variable: the ``__value`` column if there is one, else the first column."""
    cur = conn.execute(sql)
    names = [c.name for c in cur.description or []]
    index = names.index("__value") if "__value" in names else 0
    return [str(row[index]) for row in cur.fetchall()]


def resolve_variables(conn: psycopg.Connection, dashboard: Dashboard, start: datetime, end: datetime,
                      pick_first: bool = False) -> dict[str, VariableValue]:
    """Every variable's selection: All for multi-value variables (the first option with ``pick_first``), the first
    option for single-value ones. Raises ``LookupError`` when a variable has no option at all."""
    resolved: dict[str, VariableValue] = {}
    for var in dashboard.variables:
        if var.kind == "datasource":
            continue
        if var.kind == "custom":
            options = [v.strip() for v in var.query.split(",") if v.strip()]
        else:
            options = variable_options(conn, expand(var.query, resolved, start, end))
        if not options:
            raise LookupError(f"{dashboard.uid}: variable {var.name} has no options")
        chosen = options if (var.multi or var.include_all) and not pick_first else options[:1]
        resolved[var.name] = VariableValue(tuple(chosen), multi=var.multi or var.include_all)
    return resolved


def expanded_sql(pq: PanelQuery, variables: dict[str, VariableValue], start: datetime, end: datetime) -> str:
    return expand(pq.query.sql, variables, start, end, min_interval=pq.panel.interval,
                  max_data_points=pq.panel.max_data_points)
