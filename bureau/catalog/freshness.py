"""Freshness monitor: compares each monitored dataset's newest data with its deadline.

Continuous feeds (a plant's raw samples, KPI and energy results) are due again ``max_age`` after their newest
data, so a stopped feed is flagged late within one update period. Monthly datasets hold month M and must hold
M+1 by day ``due_day`` of M+2 (city time, Asia/Shanghai). Each check replaces ``dataset_freshness`` (read by the
platform-health dashboard) and drives ``dataset_alerts``: a late dataset opens one alert, which may be
acknowledged and is resolved when fresh data arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bureau.catalog.entries import Entry, build
from bureau.catalog.specs import DatasetSpec
from datafactory.codes.calendar import add_months

CITY_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Freshness:
    dataset: str
    relation: str
    plant_id: int | None
    frequency: str
    newest: datetime | None
    due: datetime | None
    status: str  # fresh | late | empty
    lag_s: float | None


def _newest(conn: psycopg.Connection, spec: DatasetSpec, relations: dict[str, tuple[str, ...]]) -> datetime | None:
    if spec.plant_id is not None:
        # Per signal the (signal_id, time) key answers max(time) from the index; a plain max would scan.
        row = conn.execute(
            "SELECT max(m) FROM signals s CROSS JOIN LATERAL"
            " (SELECT max(time) AS m FROM samples WHERE signal_id = s.id) x WHERE s.plant_id = %s",
            (spec.plant_id,),
        ).fetchone()
        return None if row is None else _as_time(row[0])
    newest: datetime | None = None
    for relation in spec.relations:
        if spec.time_column not in relations.get(relation, ()):
            continue
        row = conn.execute(
            sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(spec.time_column), sql.Identifier(relation))
        ).fetchone()
        value = None if row is None else _as_time(row[0])
        if value is not None and (newest is None or value > newest):
            newest = value
    return newest


def _as_time(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), CITY_TZ)
    raise TypeError(f"newest data time {value!r} is neither a date nor a timestamp")


def due_after(spec: DatasetSpec, newest: datetime) -> datetime:
    """When newer data than ``newest`` must have arrived."""
    if spec.cadence == "continuous" and spec.max_age is not None:
        return newest + spec.max_age
    month = newest.astimezone(CITY_TZ).date().replace(day=1)
    next_month_due = add_months(month, 2) + timedelta(days=spec.due_day)  # end of day `due_day` of M+2
    return datetime.combine(next_month_due, time(), CITY_TZ)


def assess(spec: DatasetSpec, newest: datetime | None, now: datetime) -> Freshness:
    relation = spec.relations[0]
    if newest is None:
        return Freshness(spec.name, relation, spec.plant_id, spec.frequency, None, None, "empty", None)
    due = due_after(spec, newest)
    lag = (now - due).total_seconds()
    return Freshness(spec.name, relation, spec.plant_id, spec.frequency, newest, due,
                     "late" if lag > 0 else "fresh", lag)


def check(conn: psycopg.Connection, now: datetime | None = None, entries: list[Entry] | None = None
          ) -> list[Freshness]:
    """Assess every monitored dataset, replace ``dataset_freshness`` and open/resolve alerts; commits."""
    now = now or datetime.now(UTC)
    entries = entries if entries is not None else build(conn)
    relations = {rel: tuple(c.name for c in cols) for e in entries for rel, cols in e.columns.items()}
    results = [assess(e.spec, _newest(conn, e.spec, relations), now) for e in entries if e.spec.monitored]
    with conn.transaction():
        conn.execute("DELETE FROM dataset_freshness")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dataset_freshness (dataset, relation, of_plant, frequency, newest, due, status, lag_s,"
                " checked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(f.dataset, f.relation, f.plant_id, f.frequency, f.newest, f.due, f.status, f.lag_s, now)
                 for f in results],
            )
        for f in results:
            _update_alert(conn, f, now)
    return results


def _update_alert(conn: psycopg.Connection, f: Freshness, now: datetime) -> None:
    if f.status == "late":
        conn.execute(
            "INSERT INTO dataset_alerts (dataset, opened_at, newest, due, details) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (dataset) WHERE status <> 'resolved'"
            " DO UPDATE SET newest = EXCLUDED.newest, due = EXCLUDED.due, details = EXCLUDED.details",
            (f.dataset, now, f.newest, f.due, Jsonb({"relation": f.relation, "plant_id": f.plant_id,
                                                     "lag_s": f.lag_s, "frequency": f.frequency})),
        )
    elif f.status == "fresh":
        conn.execute(
            "UPDATE dataset_alerts SET status = 'resolved', resolved_at = %s WHERE dataset = %s"
            " AND status <> 'resolved'",
            (now, f.dataset),
        )


def acknowledge(conn: psycopg.Connection, alert_id: int, by: str, now: datetime | None = None) -> bool:
    """Mark an open alert acknowledged (it still resolves itself when the data is fresh again); commits."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE dataset_alerts SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s"
            " WHERE id = %s AND status = 'open' RETURNING id",
            (now or datetime.now(UTC), by, alert_id),
        ).fetchone()
    return row is not None
