"""Writing samples with PostgreSQL binary COPY — shared by ingest and the simulator's backfill.

Two lanes (migration 0600): float64 samples (and value-less markers of float64 signals) go to ``samples``;
int64, uint64, bool and string samples, and the markers of such signals, go to ``samples_typed``
(``TYPED_COPY_SQL``, rows packed by ``pack_typed_rows``), and ingest adds their float64 reading to ``samples``
(every one but a string value), so whatever reads numbers from ``samples`` sees every numeric signal.

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
from psycopg import sql

from datafactory.contract.quality import to_db
from datafactory.contract.sample import us_to_datetime
from datafactory.contract.values import INT64_MAX, SignalType, Value

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


# -- the typed lane: samples_typed ---------------------------------------------------------------------------

TYPED_COPY_SQL = (
    "COPY samples_typed (signal_id, time, quality, value_type, v_int, v_bool, v_text) FROM STDIN (FORMAT BINARY)"
)
# (signal id, time in µs since the Unix epoch, unsigned quality, the signal's declared type, value or None)
TypedRow = tuple[int, int, int, SignalType, Value]
TYPE_CODES = {SignalType.INT64: b"i", SignalType.UINT64: b"u", SignalType.BOOL: b"b", SignalType.STRING: b"s"}
# 7 fields: signal_id int4, time int8, quality int4, value_type "char" (1 byte), then v_int int8, v_bool bool,
# v_text text, of which only the one of the row's kind is present (length -1 = NULL).
_T_INT = struct.Struct(">hiiiqiiiciqii")
_T_BOOL = struct.Struct(">hiiiqiiicii?i")
_T_HEAD = struct.Struct(">hiiiqiiiciii")  # a string's head (its bytes follow), or a marker with all three NULL
_UINT64_WRAP = 1 << 64


def pack_typed_rows(rows: Iterable[TypedRow]) -> bytes:
    """Binary COPY rows (no header) for ``TYPED_COPY_SQL``. A uint64 above 2^63−1 is stored as its two's-complement
    bits (``df_uint64`` reads it back); value None is a marker without a value. Values must already fit their
    declared type (``contract.values.type_problem``)."""
    offset = PG_EPOCH_OFFSET_US
    out = []
    for sid, time_us, quality, declared, value in rows:
        q = quality - 0x100000000 if quality > 0x7FFFFFFF else quality
        code = TYPE_CODES[declared]
        t = time_us - offset
        if value is None:
            out.append(_T_HEAD.pack(7, 4, sid, 8, t, 4, q, 1, code, -1, -1, -1))
        elif code == b"s":
            data = value.encode("utf-8")  # type: ignore[union-attr]
            out.append(_T_HEAD.pack(7, 4, sid, 8, t, 4, q, 1, code, -1, -1, len(data)))
            out.append(data)
        elif code == b"b":
            out.append(_T_BOOL.pack(7, 4, sid, 8, t, 4, q, 1, code, -1, 1, value, -1))
        else:
            bits = value - _UINT64_WRAP if value > INT64_MAX else value  # type: ignore[operator]
            out.append(_T_INT.pack(7, 4, sid, 8, t, 4, q, 1, code, 8, bits, -1, -1))
    return b"".join(out)


# samples also holds the float64 reading of every typed sample that has one (ingest.declared_types): the first
# branch leaves those out, the second gives them with their exact value.
_SAMPLE_VALUES = """
SELECT signal_id, time, quality, 'float64'::text AS value_type, value,
       NULL::numeric AS value_int, NULL::boolean AS value_bool, NULL::text AS value_text
FROM {samples} s
WHERE NOT EXISTS (SELECT 1 FROM {typed} x WHERE x.signal_id = s.signal_id AND x.time = s.time)
UNION ALL
SELECT signal_id, time, quality,
       CASE value_type WHEN 'i' THEN 'int64' WHEN 'u' THEN 'uint64' WHEN 'b' THEN 'bool' ELSE 'string' END,
       CASE value_type WHEN 'i' THEN v_int::float8 WHEN 'u' THEN df_uint64(v_int)::float8
                       WHEN 'b' THEN v_bool::int::float8 END,
       CASE value_type WHEN 'i' THEN v_int::numeric WHEN 'u' THEN df_uint64(v_int) END,
       v_bool, v_text
FROM {typed}
"""


def sample_values_select(samples: str | sql.Composable, typed: str | sql.Composable) -> sql.Composed:
    """The query of the ``sample_values`` view (migration 0600) over the two sample relations: every sample with
    its type, a float8 ``value`` for panels that plot numbers (int64/uint64 rounded beyond 2^53, bool 0/1, NULL
    for strings) and the exact ``value_int`` (numeric), ``value_bool`` and ``value_text``. Also built over the
    plant readers' filtered views (``db.plant_views``) where the tables cannot carry row-level security."""

    def rel(x: str | sql.Composable) -> sql.Composable:
        return sql.Identifier(x) if isinstance(x, str) else x

    return sql.SQL(_SAMPLE_VALUES).format(samples=rel(samples), typed=rel(typed))
