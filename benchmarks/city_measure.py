"""Measuring one window of the city benchmark (``benchmarks.city``): lags, stored rate and CPU per component."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil
import psycopg

LAG_LIMIT_S = 2.0
STORED_MIN = 0.95


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Window:
    plants: int
    flood_factor: int
    seconds: float
    offered_per_s: float
    stored_per_s: float
    workers: int = 1
    lags: dict[int, list[float]] = field(default_factory=dict)  # plant index → lags of its probe samples
    cpu: dict[str, float] = field(default_factory=dict)  # component → fraction of one core
    machine_busy: float = 0.0  # busy cores ÷ cores

    def all_lags(self, *, without: int | None = None) -> list[float]:
        return [lag for plant, lags in self.lags.items() if plant != without for lag in lags]

    @property
    def held(self) -> bool:
        p95 = percentile(self.all_lags(without=0 if self.flood_factor > 1 else None), 0.95)
        return p95 is not None and p95 < LAG_LIMIT_S and self.stored_per_s >= STORED_MIN * self.offered_per_s

    def summary(self) -> dict[str, object]:
        lags = self.all_lags()
        return {
            "plants": self.plants,
            "offered_samples_per_s": round(self.offered_per_s),
            "samples_per_s": round(self.stored_per_s),
            "p50_lag_s": rounded(percentile(lags, 0.5)),
            "p95_lag_s": rounded(percentile(lags, 0.95)),
            "max_lag_s": rounded(max(lags) if lags else None),
            "held": self.held,
            "cpu_core_fraction": {k: round(v, 2) for k, v in self.cpu.items()},
            "machine_busy": round(self.machine_busy, 2),
            "other_load_cores": round(self.other_load, 2),
        }

    @property
    def other_load(self) -> float:
        """Cores busy with processes that are not part of the benchmark (a shared machine's other work)."""
        return max(0.0, self.machine_busy * (os.cpu_count() or 1) - sum(self.cpu.values()))


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class CpuMeter:
    """CPU time of groups of processes between ``start()`` and ``stop()``, as fractions of one core."""

    def __init__(self) -> None:
        self._before: dict[str, dict[int, float]] = {}
        self._t0 = 0.0
        self._machine0: psutil._common.scputimes | None = None

    @staticmethod
    def _times(pids: list[int]) -> dict[int, float]:
        out = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                out[pid] = t.user + t.system
            except psutil.Error:
                continue
        return out

    def start(self, groups: dict[str, list[int]]) -> None:
        self._before = {name: self._times(pids) for name, pids in groups.items()}
        self._t0 = time.monotonic()
        self._machine0 = psutil.cpu_times()

    def stop(self, groups: dict[str, list[int]]) -> tuple[dict[str, float], float]:
        elapsed = time.monotonic() - self._t0
        result = {}
        for name, pids in groups.items():
            after = self._times(pids)
            before = self._before.get(name, {})
            # A process that started inside the window counts from 0.
            result[name] = sum(t - before.get(pid, 0.0) for pid, t in after.items()) / elapsed
        m1 = psutil.cpu_times()
        assert self._machine0 is not None
        busy = sum(m1) - m1.idle - getattr(m1, "iowait", 0.0)
        busy0 = sum(self._machine0) - self._machine0.idle - getattr(self._machine0, "iowait", 0.0)
        return result, (busy - busy0) / elapsed / (os.cpu_count() or 1)


def with_children(pids: list[int]) -> list[int]:
    out = list(pids)
    for pid in pids:
        try:
            out += [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
    return out


def backend_pids(conn: psycopg.Connection, database: str) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
    ).fetchall()
    return [int(r[0]) for r in rows]
