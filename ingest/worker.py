"""An ingest worker: MQTT in, PostgreSQL out, an acknowledgement only after commit.

Two threads: paho's network thread receives and decodes (``mqtt_intake``); the writer thread here batches by
size and time, writes each batch in one transaction (``batch_writer``), commits, then acknowledges the batch's
messages. When the database is slow or down the writer keeps retrying the batch it holds, with backoff; it
takes nothing more, the inbox fills up to the broker's in-flight limit (our Receive Maximum) and the broker
keeps the rest. A crash at any point leaves the uncommitted messages unacknowledged, so they are redelivered,
and the idempotent write makes the redelivery harmless.

``IngestWorker.start()`` raises ``ConnectionLost`` if the broker cannot be reached; the database is connected
(and reconnected) by the writer thread with backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from types import TracebackType
from typing import Self

import psycopg

from datafactory.db.connect import connect
from datafactory.errors import ConnectionLost, ContractError
from ingest.batch_writer import BatchWriter
from ingest.decode import Inbound
from ingest.health import HealthReporter, WorkerStats
from ingest.mqtt_intake import MqttIntake
from ingest.options import IngestOptions

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0
_ATTEMPTS_BEFORE_ISOLATING = 3  # a batch failing this often for a non-connection reason is split up


class IngestWorker:
    def __init__(self, options: IngestOptions) -> None:
        self.options = options
        self.stats = WorkerStats(options.worker)
        self._intake = MqttIntake(options)
        self._writer = BatchWriter(
            worker=options.worker, auto_register=options.auto_register, late_margin_s=options.late_margin_s
        )
        self._health = HealthReporter(self.stats, options.health_interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._failures = 0
        # Received but not yet in a batch, per plant (enterprise, site); None for messages without a topic.
        self._pending: dict[tuple[str, str] | None, deque[Inbound]] = {}
        self._pending_samples = 0

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> None:
        self._thread = threading.Thread(target=self._run, name=f"ingest-writer-{self.options.worker}", daemon=True)
        self._thread.start()
        try:
            self._intake.start(timeout_s)
        except ConnectionLost:
            self._stop.set()
            self._thread.join()
            raise

    def stop(self, *, end_session: bool = False, timeout_s: float = 30.0) -> None:
        """Finish the batch in hand if the database allows, then disconnect; the rest stays with the broker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._intake.stop(end_session=end_session)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- writer thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[Inbound] = []
        while True:
            if not batch:
                if self._stop.is_set():
                    break
                batch = self._collect()
            conn = self._connection()
            if conn is None:
                break  # stopping while the database is away: the batch stays unacknowledged
            try:
                # The first health row also tells operators (and tests) that the subscription is in place.
                if self._health.due() and self._intake.subscribed.is_set():
                    self._health.write(conn)
                if batch:
                    self._write(conn, batch)
                    batch = []
                self._failures = 0
            except Exception as err:  # the top of the writer thread: any failure means roll back and retry
                if not isinstance(err, psycopg.Error):
                    log.exception("unexpected error writing a batch")
                self._failed(conn, err)
                if self._failures >= _ATTEMPTS_BEFORE_ISOLATING and batch:
                    batch = self._isolate(batch)
        self._final_health()
        if self._conn is not None:
            self._conn.close()

    def _collect(self) -> list[Inbound]:
        """Take messages from the inbox into per-plant queues, then build one batch round-robin across plants.

        A flooding plant fills most of the inbox, but each batch takes one message per waiting plant in turn,
        so its share of a batch is capped while others wait and their messages are committed (and acknowledged)
        first; alone, it fills whole batches. Work is per message, never per sample. Messages left in the
        queues are unacknowledged, so a stop or crash leaves them with the broker.
        """
        inbox, pending = self._intake.inbox, self._pending
        if not pending:
            try:
                self._queue(inbox.get(timeout=0.2))
            except queue.Empty:
                return []
        deadline = time.monotonic() + self.options.batch_wait_s
        while self._pending_samples < self.options.batch_samples:
            try:
                msg = inbox.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    msg = inbox.get(timeout=remaining)
                except queue.Empty:
                    break
            self._queue(msg)
        return self._take_round_robin()

    def _queue(self, msg: Inbound) -> None:
        key = None if msg.parsed is None else (msg.parsed.enterprise, msg.parsed.site)
        plant = self._pending.get(key)
        if plant is None:
            plant = self._pending[key] = deque()
        plant.append(msg)
        self._pending_samples += msg.sample_count + 1

    def _take_round_robin(self) -> list[Inbound]:
        batch: list[Inbound] = []
        size = 0
        pending = self._pending
        while pending and size < self.options.batch_samples:
            for key in list(pending):
                plant = pending[key]
                msg = plant.popleft()
                if not plant:
                    del pending[key]
                batch.append(msg)
                size += msg.sample_count + 1
                if size >= self.options.batch_samples:
                    break
        self._pending_samples -= size
        return batch

    def _write(self, conn: psycopg.Connection, batch: list[Inbound]) -> None:
        started = time.perf_counter()
        result = self._writer.write(conn, batch)
        latency_ms = (time.perf_counter() - started) * 1000
        # Committed: only now may the broker forget these messages.
        for msg in batch:
            self._intake.ack(msg)
        self.stats.record(result, latency_ms=latency_ms, redeliveries=sum(1 for m in batch if m.dup))

    def _connection(self) -> psycopg.Connection | None:
        delay = 0.5
        while not self._stop.is_set() or self._conn is not None:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            try:
                self._conn = connect(self.options.database_url, application_name=f"df-ingest-{self.options.worker}")
                log.info("connected to the database")
                return self._conn
            except ConnectionLost as err:
                self._conn = None
                log.warning("database unavailable (%s); retrying in %.1f s", err, delay)
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, _MAX_BACKOFF_S)
        return None

    def _failed(self, conn: psycopg.Connection, err: Exception) -> None:
        """Roll back after a failed write. Only failures with a live connection count towards isolating the
        batch: a lost connection says nothing about the batch's content."""
        self.stats.database_failures += 1
        self._writer.reset()
        if conn.closed or conn.broken or isinstance(err, psycopg.OperationalError):
            log.warning("database connection lost (%s); reconnecting", str(err).strip())
            conn.close()
            self._conn = None
            return
        self._failures += 1
        log.error("batch write failed (attempt %d): %s", self._failures, str(err).strip())
        try:
            conn.rollback()
        except psycopg.Error:
            conn.close()
            self._conn = None
        self._stop.wait(min(0.2 * 2**self._failures, _MAX_BACKOFF_S))

    def _isolate(self, batch: list[Inbound]) -> list[Inbound]:
        """Write a repeatedly failing batch message by message; dead-letter the messages the database refuses."""
        remaining = list(batch)
        while remaining:
            conn = self._connection()
            if conn is None:
                return remaining
            msg = remaining[0]
            try:
                self._write(conn, [msg])
            except psycopg.OperationalError as err:
                self._failed(conn, err)
                continue
            except Exception as err:
                self._failed(conn, err)
                if msg.error is not None and msg.error.reason == "rejected_by_database":
                    # Even its dead letter cannot be written: acknowledge it rather than stall the stream forever.
                    log.error("dropping a message on %s: even its dead letter is refused: %s", msg.topic, err)
                    self._intake.ack(msg)
                    remaining.pop(0)
                    continue
                log.error("dead-lettering a message on %s that the database refuses: %s", msg.topic, err)
                msg.error = ContractError("rejected_by_database", str(err).strip())
                continue
            remaining.pop(0)
        self._failures = 0
        return []

    def _final_health(self) -> None:
        if self._conn is None or self._conn.closed:
            return
        try:
            self._health.write(self._conn)
        except psycopg.Error as err:
            log.warning("could not write the final health row: %s", str(err).strip())
