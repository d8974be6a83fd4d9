"""On TimescaleDB the dashboards' hourly roll-up becomes a continuous aggregate of the same name and columns.

On plain PostgreSQL nothing changes: ``samples_hourly`` stays the table that ``df_rollup_samples_hourly`` fills
after each analytics run (migration 0500). On TimescaleDB the table is replaced by a continuous aggregate with a
refresh policy and real-time aggregation, so dashboards read the same relation name on both servers.
"""

from __future__ import annotations

import psycopg

from datafactory.db import timescale
from datafactory.db.migrate import MigrationContext


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    if ctx.timescale:
        timescale.create_hourly_rollup(conn)
