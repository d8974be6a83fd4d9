"""End-to-end test support: what the simulator emitted, and what the database holds, in the same shape."""

from __future__ import annotations

import psycopg


class MemoryRecorder:
    """The simulator's emitted values in memory, by signal path: what the database must hold afterwards."""

    def __init__(self) -> None:
        self.emitted: dict[str, list[tuple[int, float]]] = {}

    def add(self, cell_path: str, signal: str, time_us: int, value: float) -> None:
        self.emitted.setdefault(f"{cell_path}/{signal}", []).append((time_us, value))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def stored_good(db_url: str, enterprise: str) -> dict[str, list[tuple[int, float]]]:
    """The good samples stored for ``enterprise``, by signal path, as (source time in µs, value) in time order."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """
            SELECT p.area || '/' || p.line || '/' || p.cell || '/' || p.signal,
                   (extract(epoch FROM s.time) * 1000000)::bigint, s.value
            FROM samples s JOIN signal_paths p ON p.signal_id = s.signal_id
            WHERE p.enterprise = %s AND df_quality_severity(s.quality) = 'good'
            ORDER BY 1, 2
            """,
            (enterprise,),
        ).fetchall()
    out: dict[str, list[tuple[int, float]]] = {}
    for key, t, v in rows:
        out.setdefault(key, []).append((int(t), float(v)))
    return out
