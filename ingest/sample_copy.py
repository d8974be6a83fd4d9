"""The two COPY lanes of a batch, each idempotent on redelivery and loud about conflicting values.

``samples`` (float64) and ``samples_typed`` (int64, uint64, bool, string; migration 0600) are written in the
batch's transaction, each by one binary COPY. A COPY that hits a unique violation (a redelivered or re-sent
batch, or two values at one instant) aborts the transaction; the writer rolls back and writes the batch again
``staged``: its rows go through a temporary staging table and ``INSERT … ON CONFLICT DO NOTHING``, then every
staged row whose (signal, time) holds a *different* stored row — another value bit for bit, or another quality
— is recorded in ``sample_conflicts`` with both values. A byte-identical redelivery finds its own row and is
only a duplicate. So duplicates and conflicts cost speed only when they occur, and the float64 lane is exactly
the COPY it always was, without even a savepoint around it (two round trips per batch, each of which a writer
lane pays again in waiting for the interpreter lock).

The float64 reading of a typed sample (``declared_types.reading``) travels in the float lane, so a signal's
samples stay visible to everything that reads numbers from ``samples`` while the exact value lives beside it;
the float lane's conflict check skips keys that hold a typed row (a reading is not a value of its own: the typed
lane records the conflict).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
_TYPED_STAGING_INSERT = (
    f"INSERT INTO samples_typed ({_TYPED_COLUMNS}) SELECT {_TYPED_COLUMNS} FROM ingest_staging_typed"
    " ON CONFLICT DO NOTHING"
)


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
    readings_stored: int = 0  # of ``stored`` (float lane), the float64 readings of typed samples


def copy_float(
    conn: psycopg.Connection,
    data: bytes,
    n: int,
    late: list[tuple[int, int]],
    *,
    worker: str,
    readings: set[tuple[int, int]] | frozenset[tuple[int, int]] = frozenset(),
    staged: bool = False,
) -> LaneResult:
    """COPY ``n`` packed float rows into ``samples`` (a duplicate raises ``UniqueViolation`` and aborts the
    transaction), or with ``staged`` insert them idempotently and record conflicts. ``readings`` are the keys of
    rows that are typed samples' float64 readings (counted apart)."""
    if not staged:
        copy_binary(conn, data)
        return LaneResult(n, late, readings_stored=len(readings))
    conn.execute(_FLOAT_STAGING_DDL)
    copy_binary(conn, data, table_sql=_FLOAT_STAGING_COPY)
    return _redo(conn, _FLOAT_STAGING_INSERT, _FLOAT_CONFLICTS, late, worker, readings=readings)


def copy_typed(
    conn: psycopg.Connection, rows: list[TypedRow], late: list[tuple[int, int]], *, worker: str, staged: bool = False
) -> LaneResult:
    """COPY typed rows into ``samples_typed`` with the float lane's rules (``staged`` as there)."""
    data = pack_typed_rows(rows)
    if not staged:
        copy_binary(conn, data, table_sql=TYPED_COPY_SQL)
        return LaneResult(len(rows), late)
    conn.execute(_TYPED_STAGING_DDL)
    copy_binary(conn, data, table_sql=_TYPED_STAGING_COPY)
    return _redo(conn, _TYPED_STAGING_INSERT, _TYPED_CONFLICTS, late, worker, readings=frozenset())


def _redo(
    conn: psycopg.Connection,
    insert: str,
    conflicts_sql: str,
    late: list[tuple[int, int]],
    worker: str,
    *,
    readings: set[tuple[int, int]] | frozenset[tuple[int, int]],
) -> LaneResult:
    readings_stored = 0
    if late or readings:
        stored_keys = {(int(sid), datetime_to_us(t)) for sid, t in conn.execute(insert + " RETURNING signal_id, time")}
        stored = len(stored_keys)
        # Redelivered rows were already stored (and recorded) the first time: only new late rows count.
        late = [x for x in late if x in stored_keys]
        readings_stored = len(stored_keys & readings)
    else:
        stored = conn.execute(insert).rowcount
    conn.execute("SET LOCAL extra_float_digits = 3")  # float8 as text in its shortest exact form
    conflicts = conn.execute(conflicts_sql, (worker,)).rowcount
    return LaneResult(stored, late, conflicts, readings_stored)


class ColumnBuffer:
    """The batch's samples as the messages' column arrays, concatenated once per batch."""

    __slots__ = ("count", "qualities", "sids", "times", "values")

    def __init__(self) -> None:
        self.count = 0
        self.sids: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.qualities: list[np.ndarray] = []

    def add(self, sids: np.ndarray, times: np.ndarray, values: np.ndarray, qualities: np.ndarray) -> None:
        self.count += len(sids)
        self.sids.append(sids)
        self.times.append(times)
        self.values.append(values)
        self.qualities.append(qualities)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Columns sorted by (signal, time): the primary-key index then grows page by page, not all over."""
        sids = np.concatenate(self.sids)
        times = np.concatenate(self.times)
        order = np.lexsort((times, sids))
        return sids[order], times[order], np.concatenate(self.values)[order], np.concatenate(self.qualities)[order]
