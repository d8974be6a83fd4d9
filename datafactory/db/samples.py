"""Writing samples with PostgreSQL binary COPY — shared by ingest and the simulator's backfill.

Rows are ``(signal_id, time, value, quality)`` with ``time`` as a UTC-aware datetime, ``value`` a float or None
(None only for bad-quality markers) and ``quality`` the signed-int32 database form (``contract.quality.to_db``).
Binary COPY with explicit types avoids text formatting and parsing on both sides.

The hot path (ingest) skips even the per-row ``datetime``: ``ROW``/``ROW_NULL_VALUE`` pack one row of the
PostgreSQL binary COPY format straight from integer microseconds, and ``copy_binary`` sends the packed rows
framed by ``COPY_HEADER``/``COPY_TRAILER``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from datetime import datetime

import numpy as np
import psycopg

from datafactory.contract.quality import to_db
from datafactory.contract.sample import us_to_datetime

Row = tuple[int, datetime, float | None, int]
COPY_SQL = "COPY samples (signal_id, time, value, quality) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ["int4", "timestamptz", "float8", "int4"]

# PostgreSQL timestamps count µs from 2000-01-01 UTC; the contract counts from 1970-01-01 UTC.
PG_EPOCH_OFFSET_US = 946_684_800_000_000
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, no extension
COPY_TRAILER = b"\xff\xff"
# One row: 4 fields, each (length, data): signal_id int4, time int8 (PG epoch), value float8, quality int4.
# Pack as ROW.pack(4, 4, signal_id, 8, time_us - PG_EPOCH_OFFSET_US, 8, value, 4, signed_quality).
ROW = struct.Struct(">hiiiqidii")
# The same with a NULL value (length -1, no data): ROW_NULL_VALUE.pack(4, 4, signal_id, 8, pg_time, -1, 4, q).
ROW_NULL_VALUE = struct.Struct(">hiiiqiii")
# ROW as a packed numpy record, to build many rows from column arrays at once.
ROW_DTYPE = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("signal_id", ">i4"),
        ("l2", ">i4"),
        ("time", ">i8"),
        ("l3", ">i4"),
        ("value", ">f8"),
        ("l4", ">i4"),
        ("quality", ">i4"),
    ]
)
assert ROW_DTYPE.itemsize == ROW.size


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


def pack_rows_us(items: Iterable[tuple[int, int, float, int]]) -> bytes:
    """Binary COPY rows (no header) from ``(signal_id, time_us, value, unsigned quality)``; NaN becomes NULL."""
    pack, pack_null, offset, isnan = ROW.pack, ROW_NULL_VALUE.pack, PG_EPOCH_OFFSET_US, math.isnan
    out = []
    for signal_id, time_us, value, quality in items:
        q = quality - 0x100000000 if quality > 0x7FFFFFFF else quality
        if isnan(value):  # a bad-quality marker without a value
            out.append(pack_null(4, 4, signal_id, 8, time_us - offset, -1, 4, q))
        else:
            out.append(pack(4, 4, signal_id, 8, time_us - offset, 8, value, 4, q))
    return b"".join(out)


def copy_binary(conn: psycopg.Connection, packed_rows: bytes, *, table_sql: str = COPY_SQL) -> None:
    """Send rows packed with ``ROW``/``ROW_NULL_VALUE`` (or ``pack_rows_us``) in one binary COPY."""
    with conn.cursor() as cur, cur.copy(table_sql) as copy:
        copy.write(COPY_HEADER)
        copy.write(packed_rows)
        copy.write(COPY_TRAILER)


def pack_columns(signal_ids: np.ndarray, times_us: np.ndarray, values: np.ndarray, qualities: np.ndarray) -> bytes:
    """Binary COPY rows (no header) from equal-length columns: signal ids, times in µs since the Unix epoch,
    float64 values (NaN becomes NULL) and unsigned 32-bit status codes. No per-row Python objects."""
    null = np.isnan(values)
    has_null = bool(null.any())
    keep = ~null if has_null else slice(None)
    rows = np.empty(len(values[keep]), ROW_DTYPE)
    rows["n"], rows["l1"], rows["l2"], rows["l3"], rows["l4"] = 4, 4, 8, 8, 4
    rows["signal_id"] = signal_ids[keep]
    rows["time"] = times_us[keep] - PG_EPOCH_OFFSET_US
    rows["value"] = values[keep]
    rows["quality"] = qualities[keep].astype(np.int64).astype(np.uint32).view(np.int32)
    data = rows.tobytes()
    if has_null:  # bad-quality markers without a value: few, packed one by one
        data += pack_rows_us(
            zip(
                signal_ids[null].tolist(),
                times_us[null].tolist(),
                values[null].tolist(),
                qualities[null].tolist(),
                strict=True,
            )
        )
    return data
