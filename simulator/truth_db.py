"""Ground truth into PostgreSQL: the ``sim_truth_*`` tables of migrations 0090 and 0095, keyed by plant.

Writing truth for a time range first deletes what those cells of that plant already have in the range, so a
repeated backfill of the same range leaves one copy, and another plant's truth (even with the same cell paths) is
left alone.
"""

from __future__ import annotations

from datetime import datetime

import orjson
import psycopg

from datafactory.contract.sample import us_to_datetime
from datafactory.db.registry import upsert_plant_from_config
from simulator.layout import PlantLayout
from simulator.plant_config import plant_config
from simulator.truth import GroundTruth

_STATES_COPY = "COPY sim_truth_states (plant_id, cell_path, time, time_end, state_code) FROM STDIN"
_SHIFT_COPY = (
    "COPY sim_truth_shift (plant_id, cell_path, shift_start, shift_end, shift_name, planned_busy_s, apt_s, delay_s,"
    " setup_s, down_s, microstop_s, microstop_count, total_count, good_count, reject_count, energy_kwh) FROM STDIN"
)


def truth_plant(conn: psycopg.Connection, layout: PlantLayout) -> int:
    """The ``plants`` id the simulated layout's truth belongs to (registered like its config would be)."""
    return upsert_plant_from_config(conn, plant_config(layout))


def write_truth(
    conn: psycopg.Connection, plant_id: int, truth: GroundTruth, cell_paths: list[str], *, start: datetime,
    end: datetime,
) -> tuple[int, int, int]:
    """Replace the truth of the plant's ``cell_paths`` in [start, end) with ``truth``. Returns (states, shifts,
    events)."""
    conn.execute(
        "DELETE FROM sim_truth_states WHERE plant_id = %s AND cell_path = ANY(%s) AND time >= %s AND time < %s",
        (plant_id, cell_paths, start, end),
    )
    conn.execute(
        "DELETE FROM sim_truth_shift WHERE plant_id = %s AND cell_path = ANY(%s) AND shift_start >= %s"
        " AND shift_start < %s",
        (plant_id, cell_paths, start, end),
    )
    conn.execute(
        "DELETE FROM sim_truth_events WHERE plant_id = %s AND (cell_path = ANY(%s) OR cell_path = '')"
        " AND time >= %s AND time < %s",
        (plant_id, cell_paths, start, end),
    )
    with conn.cursor() as cur:
        with cur.copy(_STATES_COPY) as copy:
            for s in truth.states:
                copy.write_row(
                    (plant_id, s.cell_path, us_to_datetime(s.start_us), us_to_datetime(s.end_us), s.state_code)
                )
        with cur.copy(_SHIFT_COPY) as copy:
            for h in truth.shifts:
                copy.write_row(
                    (
                        plant_id,
                        h.cell_path,
                        us_to_datetime(h.shift_start_us),
                        us_to_datetime(h.shift_end_us),
                        h.shift_name,
                        h.planned_busy_s,
                        h.apt_s,
                        h.delay_s,
                        h.setup_s,
                        h.down_s,
                        h.microstop_s,
                        h.microstop_count,
                        h.total_count,
                        h.good_count,
                        h.reject_count,
                        h.energy_kwh,
                    )
                )
        cur.executemany(
            "INSERT INTO sim_truth_events (plant_id, kind, cell_path, time, details)"
            " VALUES (%s, %s, %s, %s, %s::jsonb)",
            [(plant_id, e.kind, e.cell_path, us_to_datetime(e.time_us), orjson.dumps(e.details).decode())
             for e in truth.events],
        )
    return len(truth.states), len(truth.shifts), len(truth.events)


class PgEmittedRecorder:
    """Records live emitted samples into ``sim_truth_emitted`` (same interface as ``EmittedRecorder``)."""

    def __init__(self, conn: psycopg.Connection, plant_id: int) -> None:
        self._conn = conn
        self._plant_id = plant_id
        self._pending: list[tuple[int, str, str, datetime, float]] = []

    def add(self, cell_path: str, signal: str, time_us: int, value: float) -> None:
        self._pending.append((self._plant_id, cell_path, signal, us_to_datetime(time_us), value))

    def flush(self) -> None:
        if not self._pending:
            return
        # Through a temporary table so that a repeated run over the same simulated period keeps one copy.
        with self._conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS sim_emitted_in (LIKE sim_truth_emitted) ON COMMIT DELETE ROWS")
            with cur.copy("COPY sim_emitted_in (plant_id, cell_path, signal, time, value) FROM STDIN") as cp:
                for row in self._pending:
                    cp.write_row(row)
            cur.execute("INSERT INTO sim_truth_emitted SELECT * FROM sim_emitted_in ON CONFLICT DO NOTHING")
        self._conn.commit()
        self._pending.clear()

    def close(self) -> None:
        self.flush()
