"""Writing samples with PostgreSQL binary COPY — shared by ingest and the simulator's backfill.

Rows are ``(signal_id, time, value, quality)`` with ``time`` as a UTC-aware datetime, ``value`` a float or None
(None only for bad-quality markers) and ``quality`` the signed-int32 database form (``contract.quality.to_db``).
Binary COPY with explicit types avoids text formatting and parsing on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime

import psycopg

from datafactory.contract.quality import to_db
from datafactory.contract.sample import us_to_datetime

Row = tuple[int, datetime, float | None, int]
COPY_SQL = "COPY samples (signal_id, time, value, quality) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ["int4", "timestamptz", "float8", "int4"]


def copy_rows(conn: psycopg.Connection, rows: Iterable[Row], *, table_sql: str = COPY_SQL) -> int:
    """COPY rows into ``samples`` (or the table named in ``table_sql``) inside the caller's transaction."""
    n = 0
    with conn.cursor() as cur, cur.copy(table_sql) as copy:
        copy.set_types(COPY_TYPES)
        write = copy.write_row
        for row in rows:
            write(row)
            n += 1
    return n


def rows_from_us(items: Iterable[tuple[int, int, float, int]]) -> Iterator[Row]:
    """Convert ``(signal_id, time_us, value, unsigned quality)`` to COPY rows; NaN becomes NULL."""
    for signal_id, time_us, value, quality in items:
        yield (signal_id, us_to_datetime(time_us), None if math.isnan(value) else value, to_db(quality))
