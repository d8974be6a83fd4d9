"""Ground truth the simulation accumulates directly, independent of analytics, and the live 'emitted' record.

``ShiftTruth`` holds one machine's ISO 22400 time elements, counts and energy for one worked shift;
``StateInterval`` a true state interval; ``TruthEvent`` a planted event. ``EmittedRecorder`` keeps every value
the live simulator actually emitted (an SQLite file) so end-to-end tests can compare a database against it;
``load_emitted`` reads it back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(slots=True)
class StateInterval:
    cell_path: str
    start_us: int
    end_us: int
    state_code: int


@dataclass(slots=True)
class ShiftTruth:
    cell_path: str
    shift_start_us: int
    shift_end_us: int
    shift_name: str
    planned_busy_s: float = 0.0
    apt_s: float = 0.0
    delay_s: float = 0.0
    setup_s: float = 0.0
    down_s: float = 0.0
    microstop_s: float = 0.0
    microstop_count: int = 0
    total_count: int = 0
    good_count: int = 0
    reject_count: int = 0
    energy_kwh: float = 0.0
    planned_down_s: float = 0.0  # breaks and planned stops inside the shift; not stored, used for checks


@dataclass(slots=True)
class TruthEvent:
    kind: str
    cell_path: str
    time_us: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GroundTruth:
    states: list[StateInterval] = field(default_factory=list)
    shifts: list[ShiftTruth] = field(default_factory=list)
    events: list[TruthEvent] = field(default_factory=list)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS emitted (cell_path TEXT NOT NULL, signal TEXT NOT NULL, time_us INTEGER NOT NULL,
                                    value REAL NOT NULL);
"""


class EmittedSink(Protocol):
    def add(self, cell_path: str, signal: str, time_us: int, value: float) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class TeeRecorder:
    """Sends emitted samples to several sinks (truth file and database)."""

    def __init__(self, *sinks: EmittedSink) -> None:
        self.sinks = sinks

    def add(self, cell_path: str, signal: str, time_us: int, value: float) -> None:
        for s in self.sinks:
            s.add(cell_path, signal, time_us, value)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class EmittedRecorder:
    """Appends emitted samples to an SQLite file; ``flush`` commits (call it about once a second)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(self.path)
        self._conn.executescript(_SCHEMA)
        self._pending: list[tuple[str, str, int, float]] = []

    def add(self, cell_path: str, signal: str, time_us: int, value: float) -> None:
        self._pending.append((cell_path, signal, time_us, value))

    def flush(self) -> None:
        if self._pending:
            self._conn.executemany("INSERT INTO emitted VALUES (?, ?, ?, ?)", self._pending)
            self._pending.clear()
        self._conn.commit()

    def close(self) -> None:
        self.flush()
        self._conn.close()


def load_emitted(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Emitted samples by 'area/line/cell/signal', each a time-ordered list of (time_us, value)."""
    conn = sqlite3.connect(Path(path))
    try:
        rows = conn.execute("SELECT cell_path, signal, time_us, value FROM emitted ORDER BY rowid").fetchall()
    finally:
        conn.close()
    out: dict[str, list[tuple[int, float]]] = {}
    for cell_path, signal, time_us, value in rows:
        out.setdefault(f"{cell_path}/{signal}", []).append((int(time_us), float(value)))
    return out
