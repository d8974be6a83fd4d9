"""Store-and-forward: every batch is written to a bounded SQLite file before it is published, and deleted
only when the broker's PUBACK for it arrives. While the broker is unreachable batches accumulate here and
are replayed oldest first when it returns; a gateway killed meanwhile finds them again on restart.

Durability choice — WAL with ``synchronous=NORMAL``: a commit appends to the WAL in the OS page cache without
an fsync, which survives the *process* dying at any instant (SIGKILL, crash, OOM), the failure a gateway sees
in practice. Only an operating-system crash or power cut can lose the commits since the last checkpoint
(at most ``wal_autocheckpoint`` pages, a fraction of a second at full rate). ``FULL`` would fsync every batch,
capping the buffer at the disk's fsync rate — on SD cards and cheap eMMC in edge boxes that is tens per
second, below the batch rate of a busy gateway. Set ``DATAFACTORY_GATEWAY_BUFFER_SYNC=FULL`` to trade speed
for power-cut safety.

The bound (``buffer_max_mb``) is on the stored payload bytes; when a new batch does not fit, the overflow
policy drops the oldest batches or the new one. Every dropped sample is counted (see ``dropped_samples``)
and logged — never silently.

One row holds one batch (hundreds of samples), one transaction per append; the row id doubles as the batch
sequence number in the payload, monotonic across restarts (``AUTOINCREMENT`` never reuses ids).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from datafactory.config.models import OverflowPolicy
from datafactory.contract.payload import MAX_MESSAGE_BYTES, encode_batch
from datafactory.contract.sample import SampleRow

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    samples INTEGER NOT NULL
)
"""
_DROP_LOG_INTERVAL_S = 10.0


class StoredBatch(NamedTuple):
    id: int
    topic: str
    payload: bytes
    samples: int


class Buffer:
    def __init__(self, path: Path, *, max_bytes: int, overflow: OverflowPolicy, gateway: str) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.gateway = gateway
        self.dropped_samples = 0
        self.dropped_batches = 0
        self._conn: sqlite3.Connection | None = None
        self._next_id = 1
        self._bytes = 0
        self._samples = 0
        self._batches = 0
        self._unlogged_drops = 0
        self._last_drop_log = 0.0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        sync = os.environ.get("DATAFACTORY_GATEWAY_BUFFER_SYNC", "NORMAL").upper()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'FULL' else 'NORMAL'}")
        conn.execute(_SCHEMA)
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
        self._next_id = (row[0] if row else 0) + 1
        count, samples, size = conn.execute(
            "SELECT count(*), coalesce(sum(samples), 0), coalesce(sum(length(payload)), 0) FROM batches"
        ).fetchone()
        self._batches, self._samples, self._bytes = count, samples, size
        self._conn = conn
        if count:
            _log.info(
                "buffer %s holds %d batches (%d samples) from before; replaying them first", self.path, count, samples
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("buffer is not open")
        return self._conn

    @property
    def depth_batches(self) -> int:
        return self._batches

    @property
    def depth_samples(self) -> int:
        return self._samples

    @property
    def depth_bytes(self) -> int:
        return self._bytes

    def append(
        self, topic: str, samples: Sequence[SampleRow], *, also: tuple[str, tuple[object, ...]] | None = None
    ) -> int | None:
        """Store one batch; return its id (= its seq), or None if the overflow policy dropped it. ``also`` is
        one more statement committed in the same transaction (the gap ledger's watermark, see gaps.py).

        A batch whose message would exceed the contract's ``MAX_MESSAGE_BYTES`` (long strings) is stored as two
        halves, recursively, so the broker and ingest never refuse what the gateway sends; the size is checked
        once per batch, not per sample.
        """
        batch_id = self._next_id
        payload = encode_batch(samples, gateway=self.gateway, seq=batch_id)
        if len(payload) > MAX_MESSAGE_BYTES and len(samples) > 1:
            half = len(samples) // 2
            first = self.append(topic, samples[:half], also=also)
            second = self.append(topic, samples[half:], also=also)
            return second if second is not None else first
        conn = self.conn
        if self._bytes + len(payload) > self.max_bytes:
            if self.overflow is OverflowPolicy.DROP_NEWEST or len(payload) > self.max_bytes:
                self._count_drop(1, len(samples))
                return None
            self._drop_oldest(len(payload))
        conn.execute("BEGIN")
        try:
            conn.execute(
                "INSERT INTO batches (id, topic, payload, samples) VALUES (?, ?, ?, ?)",
                (batch_id, topic, payload, len(samples)),
            )
            if also is not None:
                conn.execute(*also)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._next_id = batch_id + 1
        self._batches += 1
        self._samples += len(samples)
        self._bytes += len(payload)
        return batch_id

    def _drop_oldest(self, needed: int) -> None:
        conn = self.conn
        freed = batches = samples = 0
        conn.execute("BEGIN")
        for batch_id, size, n in conn.execute("SELECT id, length(payload), samples FROM batches ORDER BY id"):
            if self._bytes - freed + needed <= self.max_bytes:
                break
            conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
            freed += size
            batches += 1
            samples += n
        conn.execute("COMMIT")
        self._bytes -= freed
        self._batches -= batches
        self._samples -= samples
        self._count_drop(batches, samples)

    def _count_drop(self, batches: int, samples: int) -> None:
        self.dropped_batches += batches
        self.dropped_samples += samples
        self._unlogged_drops += samples
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            _log.warning(
                "buffer %s full (%.1f MB): dropped %d samples (%s); %d dropped since start",
                self.path,
                self.max_bytes / 1e6,
                self._unlogged_drops,
                self.overflow.value,
                self.dropped_samples,
            )
            self._unlogged_drops = 0
            self._last_drop_log = now

    def pending(self, after_id: int, limit: int) -> list[StoredBatch]:
        """Up to ``limit`` stored batches with id > ``after_id``, oldest first."""
        rows = self.conn.execute(
            "SELECT id, topic, payload, samples FROM batches WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ).fetchall()
        return [StoredBatch(int(r[0]), str(r[1]), bytes(r[2]), int(r[3])) for r in rows]

    def delete(self, batches: Iterable[StoredBatch]) -> None:
        """Forget batches the broker acknowledged (one transaction for all of them)."""
        items = list(batches)
        if not items:
            return
        conn = self.conn
        conn.execute("BEGIN")
        for b in items:
            # A batch dropped by the overflow policy while in flight is already gone: count it only once.
            if conn.execute("DELETE FROM batches WHERE id = ?", (b.id,)).rowcount:
                self._batches -= 1
                self._samples -= b.samples
                self._bytes -= len(b.payload)
        conn.execute("COMMIT")
