"""``sample_values`` without double rows: ``samples`` also holds the float64 reading of every int64, uint64 and
bool sample (and of typed markers), written by ingest beside the exact row in ``samples_typed`` so analytics,
roll-ups and panels reading ``samples.value`` keep seeing every numeric signal. The view's float64 branch now
leaves out the keys that hold a typed row; the typed branch gives those with their exact value."""

from __future__ import annotations

import psycopg
from psycopg import sql

from datafactory.db.migrate import MigrationContext
from datafactory.db.samples import sample_values_select


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    conn.execute("DROP VIEW IF EXISTS sample_values")
    conn.execute(
        sql.SQL("CREATE VIEW sample_values WITH (security_invoker = true) AS ")
        + sample_values_select("samples", "samples_typed")
    )
