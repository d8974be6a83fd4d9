"""All database I/O of analytics: reading the signal registry, samples and config; writing result tables.

Samples are selected by meaning through ``signal_paths``. Result rows of a window are replaced (DELETE then COPY in
one transaction), which makes re-running a window idempotent. psycopg errors are translated to
``AnalyticsStoreError`` here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg
from pydantic import ValidationError

from datafactory.config.analytics import AnalyticsConfig
from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError

log = logging.getLogger(__name__)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC, where PostgreSQL's binary timestamps count from, in µs


class AnalyticsStoreError(DataFactoryError):
    """Reading or writing the analytics tables failed."""


@dataclass(frozen=True)
class Plant:
    id: int
    enterprise: str
    site: str
    timezone: str


@contextmanager
def session(url: str) -> Iterator[psycopg.Connection]:
    conn = connect(url, application_name="datafactory-analytics")
    try:
        yield conn
    except psycopg.Error as err:
        raise AnalyticsStoreError(f"database error: {str(err).strip()}") from err
    finally:
        conn.close()


def plants(conn: psycopg.Connection, enterprise: str | None = None) -> list[Plant]:
    rows = conn.execute(
        "SELECT id, enterprise, site, timezone FROM plants WHERE %s::text IS NULL OR enterprise = %s ORDER BY id",
        (enterprise, enterprise),
    ).fetchall()
    return [Plant(int(r[0]), r[1], r[2], r[3]) for r in rows]


def analytics_config(conn: psycopg.Connection, plant_id: int) -> AnalyticsConfig:
    """The ``analytics:`` section of the plant's newest deployed config (``plant_configs``), else the defaults."""
    if conn.execute("SELECT to_regclass('plant_configs')").fetchone() == (None,):
        return AnalyticsConfig()
    row = conn.execute(
        "SELECT config -> 'analytics' FROM plant_configs WHERE plant_id = %s ORDER BY received_at DESC LIMIT 1",
        (plant_id,),
    ).fetchone()
    if row is None or row[0] is None:
        return AnalyticsConfig()
    try:
        return AnalyticsConfig.model_validate(row[0])
    except ValidationError as err:
        # The gateway validated this config before deploying; a stale or foreign document must not stop analytics.
        log.warning("plant %s: analytics config is invalid, using defaults: %s", plant_id, err)
        return AnalyticsConfig()


def cells(conn: psycopg.Connection, plant_id: int) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT id, area, line, cell, attributes FROM cells WHERE plant_id = %s ORDER BY id", (plant_id,)
    ).fetchall()
    return pd.DataFrame(rows, columns=["cell_id", "area", "line", "cell", "attributes"])


def signals(conn: psycopg.Connection, plant_id: int) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT signal_id, cell_id, meaning FROM signal_paths WHERE plant_id = %s ORDER BY signal_id", (plant_id,)
    ).fetchall()
    return pd.DataFrame(rows, columns=["signal_id", "cell_id", "meaning"])


def latest_sample_time(conn: psycopg.Connection, signal_ids: list[int]) -> pd.Timestamp | None:
    row = conn.execute(
        "SELECT max(m) FROM unnest(%s::int[]) AS id,"
        " LATERAL (SELECT max(time) AS m FROM samples WHERE signal_id = id) x",
        (signal_ids,),
    ).fetchone()
    return None if row is None or row[0] is None else pd.Timestamp(row[0]).tz_convert("UTC")


def earliest_sample_time(conn: psycopg.Connection, signal_ids: list[int]) -> pd.Timestamp | None:
    row = conn.execute(
        "SELECT min(m) FROM unnest(%s::int[]) AS id,"
        " LATERAL (SELECT min(time) AS m FROM samples WHERE signal_id = id) x",
        (signal_ids,),
    ).fetchone()
    return None if row is None or row[0] is None else pd.Timestamp(row[0]).tz_convert("UTC")


def samples(
    conn: psycopg.Connection, signal_ids: list[int], start: pd.Timestamp, end: pd.Timestamp, *, previous: bool = True
) -> pd.DataFrame:
    """``signal_id``, ``time``, ``value`` in [start, end) — bad quality as NaN — plus, with ``previous``, each
    signal's last sample before ``start`` (the state or meter reading the window starts from)."""
    empty = pd.DataFrame({"signal_id": pd.Series(dtype=np.int64), "time": pd.Series(dtype="datetime64[ns, UTC]"),
                          "value": pd.Series(dtype=float)})
    if not signal_ids:
        return empty
    cols = "signal_id, time, CASE WHEN df_quality_severity(quality) = 'bad' THEN NULL ELSE value END AS v"
    query = f"SELECT {cols} FROM samples WHERE signal_id = ANY(%s) AND time >= %s AND time < %s"
    params: list[Any] = [signal_ids, start, end]
    if previous:
        query += (f" UNION ALL SELECT p.* FROM unnest(%s::int[]) AS id, LATERAL (SELECT {cols} FROM samples"
                  " WHERE signal_id = id AND time < %s ORDER BY time DESC LIMIT 1) p")
        params += [signal_ids, start]
    # Per signal, the server concatenates the binary send forms — 8 bytes of µs since 2000 per time, 8 of IEEE
    # float per value (NULL as NaN: string_agg skips NULLs) — into two bytea values that numpy reads as they are:
    # no number is formatted as text and parsed back, which cost more than the scan itself.
    rows = conn.execute(
        "SELECT signal_id, string_agg(timestamptz_send(time), ''), string_agg(float8send(coalesce(v, 'NaN')), '')"
        f" FROM ({query}) q GROUP BY signal_id", params, binary=True,
    ).fetchall()
    if not rows:
        return empty
    sid = np.concatenate([np.full(len(r[1]) // 8, r[0], dtype=np.int64) for r in rows])
    us = np.concatenate([np.frombuffer(r[1], dtype=">i8") for r in rows]).astype(np.int64) + PG_EPOCH_US
    value = np.concatenate([np.frombuffer(r[2], dtype=">f8") for r in rows]).astype(np.float64)
    order = np.lexsort((us, sid))  # by signal, then time (one sample per signal and time: the primary key)
    return pd.DataFrame({"signal_id": sid[order], "time": pd.to_datetime(us[order], unit="us", utc=True),
                         "value": value[order]})


TIME_COLUMNS = ("time", "time_end")


def table_rows(conn: psycopg.Connection, query: str, params: tuple[Any, ...], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(conn.execute(query, params).fetchall(), columns=columns)
    for col in TIME_COLUMNS:
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _timed_rows(conn: psycopg.Connection, columns: list[str], rest: str, params: tuple[Any, ...]) -> pd.DataFrame:
    """``SELECT columns rest`` with ``time`` and ``time_end`` sent as µs since the epoch: a frame of the same values
    and types as ``table_rows`` builds, without a timezone-aware Python datetime per value and pandas parsing those
    back (most of reading the stored hour rows of a month)."""
    sql = ", ".join(f"(extract(epoch FROM {c}) * 1000000)::int8" if c in TIME_COLUMNS else c for c in columns)
    frame = pd.DataFrame(conn.execute(f"SELECT {sql} {rest}", params).fetchall(), columns=columns)
    for col in TIME_COLUMNS:
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], unit="us", utc=True)
    return frame


def hour_rows(
    conn: psycopg.Connection, table: str, plant_id: int, lo: pd.Timestamp, hi: pd.Timestamp, *, columns: list[str],
    besides: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> pd.DataFrame:
    """Stored hour rows of a result table (``oee``, ``downtime``, ``energy``) in [lo, hi), less those in
    [``besides``) when given."""
    rest = f"FROM {table} WHERE plant_id = %s AND period = 'hour' AND time >= %s AND time < %s"  # code constants
    params: tuple[Any, ...] = (plant_id, lo, hi)
    if besides is not None:
        rest += " AND NOT (time >= %s AND time < %s)"
        params += besides
    return _timed_rows(conn, columns, rest, params)


def pdm_history(conn: psycopg.Connection, plant_id: int, before: pd.Timestamp) -> pd.DataFrame:
    cols = ["signal_id", "time", "time_end", "value", "rul_p10_h", "rul_p50_h", "rul_p90_h"]
    return _timed_rows(conn, cols, "FROM pdm_health WHERE plant_id = %s AND time < %s ORDER BY signal_id, time",
                       (plant_id, before))


def daily_means(
    conn: psycopg.Connection, signal_ids: list[int], tz: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Mean of the signals per plant-local day (``date_bin`` from a local midnight; exact in zones without DST)."""
    origin = pd.Timestamp("2000-01-01", tz=tz).to_pydatetime()
    return table_rows(
        conn,
        "SELECT date_bin('1 day', time, %s) AS day, avg(value) FROM samples WHERE signal_id = ANY(%s)"
        " AND time >= %s AND time < %s AND df_quality_severity(quality) <> 'bad' GROUP BY 1 ORDER BY 1",
        (origin, signal_ids, start, end), ["time", "value"],
    )


def day_energy(conn: psycopg.Connection, plant_id: int) -> pd.DataFrame:
    return table_rows(conn, "SELECT cell_id, time, time_end, kwh FROM energy WHERE plant_id = %s AND period = 'day'"
                      " ORDER BY time", (plant_id,), ["cell_id", "time", "time_end", "kwh"])


def day_production(conn: psycopg.Connection, plant_id: int) -> pd.DataFrame:
    """Good units and ideal production time (hours) per plant-local day, from the day rows of ``oee``."""
    return table_rows(conn, "SELECT time, sum(good_count), sum(ideal_production_s) / 3600.0 FROM oee"
                      " WHERE plant_id = %s AND period = 'day' GROUP BY time", (plant_id,),
                      ["time", "production", "ideal_production_h"])


def _py(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _py(value.item())
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return value


def _utc_text(col: pd.Series) -> np.ndarray:
    """ISO text of UTC timestamps to the microsecond (what PostgreSQL stores), None for NaT: numpy formats a whole
    column at once where ``strftime`` formats each value in Python."""
    us = col.to_numpy(dtype="datetime64[us]")  # a timezone-aware column converts to UTC, truncated to the µs
    text = np.char.add(np.datetime_as_string(us, unit="us"), "+00:00").astype(object)
    text[np.isnat(us)] = None
    return text


# Values of an object column that to_csv writes as they are: text, NULL (None and NaN, as na_rep) and plain numbers.
_AS_IS = {str, float, int, type(None)}


def _csv_ready(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame[columns].copy()
    # Dtypes once, and a column taken out of the frame only when it needs converting: a Series per access cost more
    # than the conversions in the many small frames (a few dozen rows) of an hour's run.
    for col, dtype in out.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = _utc_text(out[col])
        elif dtype.kind == "O":
            values = out[col]
            if set(map(type, values)) <= _AS_IS:  # to_csv writes these as _py's values; a type check per value
                continue  # at C speed instead of a Python call per value (the text columns of every result row)
            out[col] = [orjson.dumps(v).decode() if isinstance(v, dict | list) else _py(v) for v in values]
        elif dtype.kind == "b":
            out[col] = out[col].map({True: "t", False: "f"})
    return out


def replace(
    conn: psycopg.Connection, table: str, frame: pd.DataFrame, *, columns: list[str], where: str,
    params: tuple[Any, ...],
) -> int:
    """DELETE the window's rows (``where``) then COPY ``frame``'s ``columns`` in (CSV); the caller commits."""
    conn.execute(f"DELETE FROM {table} WHERE {where}", params)  # table/where are code constants, never input
    if frame.empty:
        return 0
    data = _csv_ready(frame, columns).to_csv(index=False, header=False, na_rep="\\N").encode()
    command = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv, NULL '\\N')"
    with conn.cursor() as cur, cur.copy(command) as copy:
        copy.write(data)
    return len(frame)


def trim_intervals(conn: psycopg.Connection, plant_id: int, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Cut stored intervals at the edges of a window about to be rewritten: one running past ``start`` ends there,
    one running past ``end`` keeps only its part after ``end`` — no overlap and no gap with the new rows."""
    conn.execute(
        "UPDATE state_intervals SET time_end = %s, duration_s = extract(epoch FROM %s - time)"
        " WHERE plant_id = %s AND time < %s AND time_end > %s",
        (start, start, plant_id, start, start),
    )
    conn.execute(
        "UPDATE state_intervals SET time = %s, duration_s = extract(epoch FROM time_end - %s)"
        " WHERE plant_id = %s AND time >= %s AND time < %s AND time_end > %s",
        (end, end, plant_id, start, end, end),
    )


def refresh_hourly_rollup(
    conn: psycopg.Connection, start: pd.Timestamp, end: pd.Timestamp, *, plant_id: int | None = None
) -> int:
    """Refresh the dashboards' hourly sample roll-up (migration 0500) for the window just computed, so long-range
    raw-signal panels show the same data as short ones — of one plant's signals (migration 0801), which keeps a
    plant's run independent of the city's size and lets workers refresh different plants at once. Returns the rows
    written (0 without the roll-up)."""
    if plant_id is not None and conn.execute(
        "SELECT to_regprocedure('df_rollup_samples_hourly(timestamptz, timestamptz, integer)')"
    ).fetchone() != (None,):
        row = conn.execute("SELECT df_rollup_samples_hourly(%s, %s, %s)",
                           (start.to_pydatetime(), end.to_pydatetime(), plant_id)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    if conn.execute("SELECT to_regproc('df_rollup_samples_hourly')").fetchone() == (None,):
        return 0
    row = conn.execute(
        "SELECT df_rollup_samples_hourly(%s, %s)", (start.to_pydatetime(), end.to_pydatetime())
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def watermark(conn: psycopg.Connection, plant_id: int, job: str) -> pd.Timestamp | None:
    row = conn.execute(
        "SELECT watermark FROM analytics_watermarks WHERE plant_id = %s AND job = %s", (plant_id, job)
    ).fetchone()
    return None if row is None else pd.Timestamp(row[0]).tz_convert("UTC")


def set_watermark(conn: psycopg.Connection, plant_id: int, job: str, at: pd.Timestamp) -> None:
    conn.execute(
        "INSERT INTO analytics_watermarks (plant_id, job, watermark) VALUES (%s, %s, %s)"
        " ON CONFLICT (plant_id, job) DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()",
        (plant_id, job, at.to_pydatetime()),
    )


def pending_late_writes(conn: psycopg.Connection, plant_id: int) -> tuple[list[int], pd.Timestamp | None]:
    """Unprocessed late writes of the plant's signals: their ids and the earliest time they touch."""
    rows = conn.execute(
        "SELECT l.id, l.time_from FROM late_writes l JOIN signals s ON s.id = l.signal_id"
        " WHERE l.processed_at IS NULL AND s.plant_id = %s",
        (plant_id,),
    ).fetchall()
    if not rows:
        return [], None
    return [int(r[0]) for r in rows], pd.Timestamp(min(r[1] for r in rows)).tz_convert("UTC")


def mark_late_writes(conn: psycopg.Connection, ids: list[int]) -> None:
    if ids:
        conn.execute("UPDATE late_writes SET processed_at = now() WHERE id = ANY(%s)", (ids,))


ALERT_COLUMNS = ["kind", "time", "time_end", "status", "severity", "updated_at", "update_count", "message", "value",
                 "zone", "rul_p10_h", "rul_p50_h", "rul_p90_h", "details"]


def sync_alerts(
    conn: psycopg.Connection, *, plant_id: int, cell_id: int, signal_id: int, kind: str, alerts: list[dict[str, Any]]
) -> None:
    """Make the stored alerts of one signal equal ``alerts`` (matched by raise time, so ids stay stable)."""
    keep = [a["time"] for a in alerts]
    conn.execute(
        "DELETE FROM alerts WHERE signal_id = %s AND kind = %s AND NOT (time = ANY(%s))", (signal_id, kind, keep)
    )
    for a in alerts:
        values = [_py(a[c]) for c in ALERT_COLUMNS]
        updated = conn.execute(
            "UPDATE alerts SET " + ", ".join(f"{c} = %s" for c in ALERT_COLUMNS[1:])
            + " WHERE signal_id = %s AND kind = %s AND time = %s",
            (*values[1:], signal_id, kind, values[1]),
        )
        if updated.rowcount == 0:
            conn.execute(
                f"INSERT INTO alerts (plant_id, cell_id, signal_id, {', '.join(ALERT_COLUMNS)})"
                f" VALUES (%s, %s, %s, {', '.join(['%s'] * len(ALERT_COLUMNS))})",
                (plant_id, cell_id, signal_id, *values),
            )
