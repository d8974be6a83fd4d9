"""A worker's counters and the ``ingest_health`` row it refreshes every few seconds.

``samples_per_s`` is measured over the last reporting interval; ``lag_s`` is now minus the newest sample time
stored; ``batch_latency_ms`` is the mean time from a batch's first database statement to its commit over the
interval. Every other column is a total since the worker started (docs/operators.md lists them); the
``dead_letters_by_reason`` object counts dead letters per reason. The writer lanes update the counters under a
lock; readers in other threads see plain ints.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from datafactory.contract.sample import now_us, us_to_datetime
from ingest.batch_writer import BatchResult

# The totals written to ingest_health, in the order ``write`` passes them (migrations 0001 and 0611).
_COUNTERS = (
    "samples_total", "messages_total", "batches_total", "redeliveries", "dead_letters_total", "duplicates_total",
    "conflicts_total", "late_samples_total", "refused_messages_total", "rejected_samples_total",
    "dead_letters_by_reason", "database_failures_total",
)  # fmt: skip


@dataclass
class WorkerStats:
    worker: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    samples_total: int = 0
    messages_total: int = 0
    batches_total: int = 0
    duplicates_total: int = 0
    conflicts_total: int = 0
    late_samples_total: int = 0
    refused_messages_total: int = 0
    rejected_samples_total: int = 0
    redeliveries: int = 0
    database_failures: int = 0
    stopped_reason: str | None = None
    max_batch_messages: int = 0
    newest_us: int | None = None
    dead_letters: Counter[str] = field(default_factory=Counter)
    _latencies_ms: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def dead_letters_total(self) -> int:
        return sum(self.dead_letters.values())

    def record(self, result: BatchResult, *, latency_ms: float, redeliveries: int) -> None:
        with self._lock:
            self._record(result, latency_ms=latency_ms, redeliveries=redeliveries)

    def count_database_failure(self) -> None:
        with self._lock:
            self.database_failures += 1

    def _record(self, result: BatchResult, *, latency_ms: float, redeliveries: int) -> None:
        self.samples_total += result.samples_stored
        self.messages_total += result.messages
        self.batches_total += 1
        self.duplicates_total += result.duplicates
        self.conflicts_total += result.conflicts
        self.late_samples_total += result.late_samples
        self.refused_messages_total += result.refused_messages
        self.rejected_samples_total += result.rejected_samples
        self.redeliveries += redeliveries
        self.max_batch_messages = max(self.max_batch_messages, result.messages)
        self.dead_letters.update(result.dead_letters)
        if result.newest_us is not None and (self.newest_us is None or result.newest_us > self.newest_us):
            self.newest_us = result.newest_us
        self._latencies_ms.append(latency_ms)

    def take_latencies(self) -> list[float]:
        with self._lock:
            taken, self._latencies_ms = self._latencies_ms, []
        return taken


class HealthReporter:
    def __init__(self, stats: WorkerStats, interval_s: float) -> None:
        self.stats = stats
        self.interval_s = interval_s
        self._last_at = time.monotonic()
        self._last_samples = 0
        self._due_at = 0.0  # the first report goes out at once
        self._latency_ms: float | None = None

    def due(self) -> bool:
        return time.monotonic() >= self._due_at

    def write(self, conn: psycopg.Connection) -> None:
        """Upsert this worker's row and commit. Raises ``psycopg.Error`` like any other write."""
        s = self.stats
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-6)
        rate = (s.samples_total - self._last_samples) / elapsed
        latencies = s.take_latencies()
        if latencies:  # an idle interval keeps the last measured latency
            self._latency_ms = sum(latencies) / len(latencies)
        lag = None if s.newest_us is None else (now_us() - s.newest_us) / 1e6
        with s._lock:  # one consistent set of totals
            counters = (
                s.samples_total, s.messages_total, s.batches_total, s.redeliveries, s.dead_letters_total,
                s.duplicates_total, s.conflicts_total, s.late_samples_total, s.refused_messages_total,
                s.rejected_samples_total, Jsonb(dict(s.dead_letters)), s.database_failures,
            )  # fmt: skip
        conn.execute(
            f"INSERT INTO ingest_health (worker, updated_at, started_at, samples_per_s, newest_sample, lag_s,"
            f" batch_latency_ms, stopped_reason, {', '.join(_COUNTERS)})"
            f" VALUES (%s, now(), %s, %s, %s, %s, %s, %s, {', '.join(['%s'] * len(_COUNTERS))})"
            " ON CONFLICT (worker) DO UPDATE SET updated_at = EXCLUDED.updated_at, started_at = EXCLUDED.started_at,"
            " samples_per_s = EXCLUDED.samples_per_s, newest_sample = EXCLUDED.newest_sample, lag_s = EXCLUDED.lag_s,"
            " batch_latency_ms = EXCLUDED.batch_latency_ms, stopped_reason = EXCLUDED.stopped_reason, "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COUNTERS),
            (
                s.worker,
                s.started_at,
                rate,
                None if s.newest_us is None else us_to_datetime(s.newest_us),
                lag,
                self._latency_ms,
                s.stopped_reason,
                *counters,
            ),
        )
        conn.commit()
        self._last_at, self._last_samples = now, s.samples_total
        self._due_at = now + self.interval_s
