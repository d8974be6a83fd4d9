"""Typed samples: int64, uint64, bool and string values beside the float64 ``samples`` table, and a view of both.

``samples`` (float8) stays exactly as it was: the hot path of every float64 signal. ``samples_typed`` holds the
samples of signals declared int64, uint64, bool or string (``signals.signal_type``), one row per (signal, time)
with its value in the column of its kind. A uint64 is stored as the two's-complement bits of the value in
``v_int`` with ``value_type = 'u'`` (bit-exact, 8 bytes, compresses like any bigint); ``df_uint64`` turns it back
into the exact number. Each row carries its own ``value_type`` so a later change of a signal's declared type
(recorded in ``signal_type_changes``, migration 0601) never re-interprets rows already stored.

``sample_values`` is every sample of both tables with its typed value; ``value`` there is a float8 reading of
any number (int64/uint64 rounded to float64 beyond 2^53, bool as 0/1, string NULL) so panels that plot numbers
work on every signal, and ``value_int``/``value_bool``/``value_text`` are exact.

On TimescaleDB the new table is a hypertable like ``samples`` (``db.timescale``); otherwise it is partitioned by
day like ``samples`` (``db.partitions``), with the same days created.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from datafactory.contract.values import MAX_STRING_BYTES
from datafactory.db import partitions, timescale
from datafactory.db.migrate import MigrationContext
from datafactory.db.samples import sample_values_select

# Column order packs the fixed-width columns without alignment padding.
COLUMNS = f"""
    time       timestamptz NOT NULL,
    signal_id  integer NOT NULL,
    quality    integer NOT NULL DEFAULT 0,
    v_int      bigint,
    value_type "char" NOT NULL CHECK (value_type IN ('i', 'u', 'b', 's')),
    v_bool     boolean,
    v_text     text CHECK (octet_length(v_text) <= {MAX_STRING_BYTES}),
    PRIMARY KEY (signal_id, time),
    CHECK (CASE value_type WHEN 'b' THEN v_int IS NULL AND v_text IS NULL
                           WHEN 's' THEN v_int IS NULL AND v_bool IS NULL
                           ELSE v_bool IS NULL AND v_text IS NULL END)
"""

FUNCTIONS = """
CREATE OR REPLACE FUNCTION df_uint64(bits bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN bits < 0 THEN bits::numeric + 18446744073709551616 ELSE bits::numeric END
$$;
COMMENT ON FUNCTION df_uint64(bigint) IS 'The uint64 whose two''s-complement bits samples_typed.v_int holds';
"""

SIGNAL_TYPE = """
ALTER TABLE signals ADD COLUMN IF NOT EXISTS signal_type text NOT NULL DEFAULT 'float64'
    CHECK (signal_type IN ('float64', 'int64', 'uint64', 'bool', 'string'));
"""


def apply(conn: psycopg.Connection, ctx: MigrationContext) -> None:
    conn.execute(SIGNAL_TYPE)
    conn.execute(FUNCTIONS)
    if ctx.timescale:
        conn.execute(f"CREATE TABLE samples_typed ({COLUMNS})")
        timescale.create_typed_hypertable(conn, ctx.chunk_interval)
    else:
        conn.execute(f"CREATE TABLE samples_typed ({COLUMNS}) PARTITION BY RANGE (time)")
        conn.execute("CREATE TABLE samples_typed_default PARTITION OF samples_typed DEFAULT")
        days = [
            date.fromisoformat(name.removeprefix("samples_p"))
            for name in partitions.existing_partitions(conn)
            if name.startswith("samples_p")
        ]
        if days:  # the same days as samples, so every day a batch writes to is ready in both tables
            partitions.ensure_partitions(conn, min(days), max(days))
        else:
            today = datetime.now(UTC).date()
            partitions.ensure_partitions(conn, today - timedelta(days=1), today + timedelta(days=7))
    conn.execute(
        sql.SQL("CREATE OR REPLACE VIEW sample_values WITH (security_invoker = true) AS ")
        + sample_values_select("samples", "samples_typed")
    )
