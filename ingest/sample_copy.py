"""The two COPY lanes of a batch, each idempotent on redelivery and loud about conflicting values.

``samples`` (float64) and ``samples_typed`` (int64, uint64, bool, string; migration 0600) are written in the
batch's transaction, each by one binary COPY inside a savepoint. Only when that COPY hits a unique violation (a
redelivered or re-sent batch, or two values at one instant) are its rows redone through a temporary staging table
and ``INSERT … ON CONFLICT DO NOTHING``; then every staged row whose (signal, time) holds a *different* stored
row — another value bit for bit, or another quality — is recorded in ``sample_conflicts`` with both values. A
byte-identical redelivery finds its own row and is only a duplicate. So duplicates and conflicts cost speed only
when they occur, and the float64 lane is exactly the COPY it always was.

Typed rows always go through their staging table: one statement then stores the new ones in ``samples_typed``
and their float64 reading in ``samples`` (``_TYPED_INSERT``), so a signal's samples stay visible to everything
that reads numbers from ``samples`` while the exact value lives beside it. The float lane's conflict check
skips keys that hold a typed row (their reading is not a value of its own; the typed lane records them).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from datafactory.contract.sample import datetime_to_us
from datafactory.db.samples import TYPED_COPY_SQL, TypedRow, copy_binary, pack_typed_rows

_FLOAT_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_staging (signal_id int4 NOT NULL, time timestamptz NOT NULL,"
    " value float8, quality int4 NOT NULL) ON COMMIT DELETE ROWS"
)
_FLOAT_STAGING_COPY = "COPY ingest_staging (signal_id, time, value, quality) FROM STDIN (FORMAT BINARY)"
_FLOAT_STAGING_INSERT = (
    "INSERT INTO samples (signal_id, time, value, quality) SELECT signal_id, time, value, quality"
    " FROM ingest_staging ON CONFLICT DO NOTHING"
)
# float8send compares the bits: -0.0 and 0.0 are equal to '=' but different values. Runs after the insert, so a
# staged row that was stored meets itself (no conflict) and a second value at one instant in the same batch meets
# the first.
_FLOAT_CONFLICTS = """
    INSERT INTO sample_conflicts (worker, signal_id, time, value_type, stored_value, stored_quality,
                                  received_value, received_quality)
    SELECT %s, s.signal_id, s.time, 'float64', t.value::text, t.quality, s.value::text, s.quality
    FROM ingest_staging s JOIN samples t ON t.signal_id = s.signal_id AND t.time = s.time
    WHERE (float8send(t.value) IS DISTINCT FROM float8send(s.value) OR t.quality <> s.quality)
      AND NOT EXISTS (SELECT 1 FROM samples_typed x WHERE x.signal_id = s.signal_id AND x.time = s.time)
    ON CONFLICT DO NOTHING
"""
_TYPED_COLUMNS = "signal_id, time, quality, value_type, v_int, v_bool, v_text"
_TYPED_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_staging_typed (signal_id int4 NOT NULL, time timestamptz NOT NULL,"
    ' quality int4 NOT NULL, value_type "char" NOT NULL, v_int int8, v_bool bool, v_text text) ON COMMIT DELETE ROWS'
)
_TYPED_STAGING_COPY = TYPED_COPY_SQL.replace("samples_typed", "ingest_staging_typed")
# New typed rows, and for each a float64 reading in samples (int64/uint64 rounded beyond 2^53, bool 0/1, a
# marker's NULL; strings have none) so every analytics query, roll-up and panel that reads samples.value keeps
# seeing states, counters and gaps. Returns the keys of the rows that were new.
_TYPED_INSERT = f"""
    WITH new AS (
        INSERT INTO samples_typed ({_TYPED_COLUMNS}) SELECT {_TYPED_COLUMNS} FROM ingest_staging_typed
        ON CONFLICT DO NOTHING RETURNING signal_id, time, quality, value_type, v_int, v_bool, v_text
    ), reading AS (
        INSERT INTO samples (signal_id, time, value, quality)
        SELECT signal_id, time,
               CASE value_type WHEN 'i' THEN v_int::float8 WHEN 'u' THEN df_uint64(v_int)::float8
                               WHEN 'b' THEN v_bool::int::float8 END,
               quality
        FROM new WHERE value_type <> 's' OR v_text IS NULL
        ON CONFLICT DO NOTHING
    )
    SELECT signal_id, time FROM new
"""


def _typed_text(alias: str) -> str:
    return (
        f"CASE {alias}.value_type WHEN 'u' THEN df_uint64({alias}.v_int)::text WHEN 'i' THEN {alias}.v_int::text"
        f" WHEN 'b' THEN {alias}.v_bool::text ELSE {alias}.v_text END"
    )


_TYPED_CONFLICTS = f"""
    INSERT INTO sample_conflicts (worker, signal_id, time, value_type, stored_value, stored_quality,
                                  received_value, received_quality)
    SELECT %s, s.signal_id, s.time,
           CASE s.value_type WHEN 'i' THEN 'int64' WHEN 'u' THEN 'uint64' WHEN 'b' THEN 'bool' ELSE 'string' END,
           {_typed_text("t")}, t.quality, {_typed_text("s")}, s.quality
    FROM ingest_staging_typed s JOIN samples_typed t ON t.signal_id = s.signal_id AND t.time = s.time
    WHERE (t.value_type, t.v_int, t.v_bool, t.v_text, t.quality)
          IS DISTINCT FROM (s.value_type, s.v_int, s.v_bool, s.v_text, s.quality)
    ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class LaneResult:
    stored: int  # rows new in the table
    late: list[tuple[int, int]]  # the late (signal id, time µs) rows among them
    conflicts: int = 0  # rows whose (signal, time) holds a different value: recorded, not stored


def copy_float(
    conn: psycopg.Connection, data: bytes, n: int, late: list[tuple[int, int]], *, worker: str
) -> LaneResult:
    """COPY ``n`` packed float rows into ``samples``; on a duplicate, redo them idempotently and record conflicts."""
    try:
        with conn.transaction():
            copy_binary(conn, data)
        return LaneResult(n, late)
    except psycopg.errors.UniqueViolation:
        pass
    conn.execute(_FLOAT_STAGING_DDL)
    copy_binary(conn, data, table_sql=_FLOAT_STAGING_COPY)
    return _redo(conn, _FLOAT_STAGING_INSERT, _FLOAT_CONFLICTS, late, worker)


def copy_typed(
    conn: psycopg.Connection, rows: list[TypedRow], late: list[tuple[int, int]], *, worker: str
) -> LaneResult:
    """Store typed rows in ``samples_typed`` and their float64 readings in ``samples`` (``_TYPED_INSERT``);
    record conflicts. Through a staging table always: the projection is written only for rows that are new."""
    conn.execute(_TYPED_STAGING_DDL)
    copy_binary(conn, pack_typed_rows(rows), table_sql=_TYPED_STAGING_COPY)
    keys = conn.execute(_TYPED_INSERT).fetchall()
    stored_keys = {(int(sid), datetime_to_us(t)) for sid, t in keys} if late else set()
    conflicts = 0
    if len(keys) < len(rows):  # some (signal, time) already held a row: a duplicate or a conflict
        conn.execute("SET LOCAL extra_float_digits = 3")
        conflicts = conn.execute(_TYPED_CONFLICTS, (worker,)).rowcount
    return LaneResult(len(keys), [x for x in late if x in stored_keys], conflicts)


def _redo(
    conn: psycopg.Connection, insert: str, conflicts_sql: str, late: list[tuple[int, int]], worker: str
) -> LaneResult:
    if late:
        stored_keys = {(int(sid), datetime_to_us(t)) for sid, t in conn.execute(insert + " RETURNING signal_id, time")}
        stored = len(stored_keys)
        # Redelivered rows were already stored (and recorded) the first time: only new late rows count.
        late = [x for x in late if x in stored_keys]
    else:
        stored = conn.execute(insert).rowcount
    conn.execute("SET LOCAL extra_float_digits = 3")  # float8 as text in its shortest exact form
    conflicts = conn.execute(conflicts_sql, (worker,)).rowcount
    return LaneResult(stored, late, conflicts)
