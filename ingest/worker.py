"""An ingest worker: MQTT in, PostgreSQL out, an acknowledgement only after commit.

paho's network thread receives and decodes (``mqtt_intake``). Writer lanes — threads, each with its own
database connection — take batches from the same inbox: each batches by size and time, writes a batch in one
transaction (``batch_writer``), commits, then acknowledges the batch's messages. With two lanes (the default)
one lane prepares and sends its batch while the database is still storing the other's, so the database is
kept busy instead of waiting for Python between batches. When the database is slow or down each lane keeps
retrying the batch it holds, with backoff; it takes nothing more, the inbox fills up to the broker's in-flight
limit (our Receive Maximum) and the broker keeps the rest. A crash at any point leaves the uncommitted messages
unacknowledged, so they are redelivered, and the idempotent write makes the redelivery harmless.

Lanes share one MQTT session, the per-plant queues that batches are built from (under a lock, so fairness
across plants holds for the worker as a whole) and the counters; each lane has its own caches of signal ids
and high-water marks, as separate workers do.

``IngestWorker.start()`` raises ``ConnectionLost`` if the broker cannot be reached; the database is connected
(and reconnected) by each lane with backoff.
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
from ingest.batch_writer import BatchResult, BatchWriter
from ingest.dead_letters import DeadLetterRefused
from ingest.decode import Inbound
from ingest.health import HealthReporter, WorkerStats
from ingest.mqtt_intake import MqttIntake
from ingest.options import IngestOptions
from ingest.repeats import RepeatLog

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0
_ATTEMPTS_BEFORE_ISOLATING = 3  # a batch failing this often for a non-connection reason is split up


class IngestWorker:
    def __init__(self, options: IngestOptions) -> None:
        self.options = options
        self.stats = WorkerStats(options.worker)
        self.repeats = RepeatLog(log)  # repeated problems are logged once per minute with a count
        # Set when the worker must stop consuming (the dead letters themselves are refused); the CLI raises it.
        self.fatal: DeadLetterRefused | None = None
        self._intake = MqttIntake(options, self.repeats)
        self._health = HealthReporter(self.stats, options.health_interval_s)
        self._health_lock = threading.Lock()
        self._stop = threading.Event()
        self._lanes = [_Lane(self, i) for i in range(options.writers)]
        # Received but not yet in a batch, per plant (enterprise, site); None for messages without a topic.
        # Lanes build batches one at a time (``_collect_lock``).
        self._collect_lock = threading.Lock()
        self._pending: dict[tuple[str, str] | None, deque[Inbound]] = {}
        self._pending_samples = 0

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> None:
        for lane in self._lanes:
            lane.start()
        try:
            self._intake.start(timeout_s)
        except ConnectionLost:
            self._stop.set()
            for lane in self._lanes:
                lane.join(timeout_s)
            raise

    def stop(self, *, end_session: bool = False, timeout_s: float = 30.0) -> None:
        """Finish the batches in hand if the database allows, then disconnect; the rest stays with the broker."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for lane in self._lanes:
            lane.join(max(deadline - time.monotonic(), 0.0))
        self._intake.stop(end_session=end_session)
        self.repeats.flush()

    @property
    def running(self) -> bool:
        """True while every writer lane runs: a lane that died unexpectedly means the worker must be restarted."""
        return all(lane.alive for lane in self._lanes)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- batches, shared by the lanes ------------------------------------------------------------------------

    def _collect(self) -> list[Inbound]:
        """Take messages from the inbox into per-plant queues, then build one batch round-robin across plants.

        A flooding plant fills most of the inbox, but each batch takes one message per waiting plant in turn,
        so its share of a batch is capped while others wait and their messages are committed (and acknowledged)
        first; alone, it fills whole batches. Work is per message, never per sample. Messages left in the
        queues are unacknowledged, so a stop or crash leaves them with the broker.
        """
        with self._collect_lock:
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

    def _refused(self, err: DeadLetterRefused) -> None:
        """Stop consuming: the dead letters of the batch in hand cannot be written, so it must not be acknowledged.

        Every lane stops taking batches; what is in the inbox and in flight stays unacknowledged, and the broker
        keeps it (and everything behind it) in the persistent session until ingest is restarted.
        """
        if self.fatal is None:  # not logged here: whoever runs the worker raises it (the CLI: one error line)
            self.fatal = err
            self.stats.stopped_reason = str(err)
        self._stop.set()

    def _log_dead_letters(self, result: BatchResult) -> None:
        for reason, n in result.dead_letters.items():
            example = result.examples[reason]
            topic = example.topic[:200]
            self.repeats.report(
                f"dead_letter:{reason}",
                logging.WARNING,
                f"dead letter {reason} on {topic}: {example.detail[:300]}",
                summary=f"dead letters {reason}",
                latest=f"on {topic}",
                times=n,
            )

    def _write_health(self, conn: psycopg.Connection, *, final: bool = False) -> None:
        """Refresh the health row if it is due (always when ``final``); one lane at a time."""
        with self._health_lock:
            if final or (self._health.due() and self._intake.subscribed.is_set()):
                self._health.write(conn)


class _Lane:
    """One writer thread with its own database connection and its own caches (``BatchWriter``)."""

    def __init__(self, worker: IngestWorker, index: int) -> None:
        self.worker = worker
        self.options = worker.options
        self.index = index
        self.writer = BatchWriter(
            worker=self.options.worker,
            auto_register=self.options.auto_register,
            late_margin_s=self.options.late_margin_s,
        )
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._failures = 0

    def start(self) -> None:
        name = f"ingest-writer-{self.options.worker}-{self.index}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        stop = self.worker._stop
        batch: list[Inbound] = []
        while self.worker.fatal is None:  # after a refusal nothing more is written, let alone acknowledged
            if not batch:
                if stop.is_set():
                    break
                batch = self.worker._collect()
            conn = self._connection()
            if conn is None:
                break  # stopping while the database is away: the batch stays unacknowledged
            try:
                # The first health row also tells operators (and tests) that the subscription is in place.
                self.worker._write_health(conn)
                if batch:
                    self._write(conn, batch)
                    batch = []
                self._failures = 0
            except DeadLetterRefused as err:
                self._rollback(conn)
                self.worker._refused(err)
                break  # the batch stays unacknowledged
            except Exception as err:  # the top of the writer thread: any failure means roll back and retry
                if not isinstance(err, psycopg.Error):
                    log.exception("unexpected error writing a batch")
                self._failed(conn, err)
                if self._failures >= _ATTEMPTS_BEFORE_ISOLATING and batch:
                    batch = self._isolate(batch)
            self.worker.repeats.tick()
        self._final_health()
        if self._conn is not None:
            self._conn.close()

    def _write(self, conn: psycopg.Connection, batch: list[Inbound]) -> None:
        started = time.perf_counter()
        result = self.writer.write(conn, batch)
        latency_ms = (time.perf_counter() - started) * 1000
        # Committed: only now may the broker forget these messages.
        self.worker._intake.ack_many(batch)
        self.worker.stats.record(result, latency_ms=latency_ms, redeliveries=sum(1 for m in batch if m.dup))
        if result.dead_letters:
            self.worker._log_dead_letters(result)

    def _connection(self) -> psycopg.Connection | None:
        delay = 0.5
        stop = self.worker._stop
        while not stop.is_set() or self._conn is not None:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            try:
                app = f"df-ingest-{self.options.worker}"
                self._conn = connect(self.options.database_url, application_name=app)
                log.info("writer %d connected to the database", self.index)
                return self._conn
            except ConnectionLost as err:
                self._conn = None
                log.warning("database unavailable (%s); retrying in %.1f s", err, delay)
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, _MAX_BACKOFF_S)
        return None

    def _failed(self, conn: psycopg.Connection, err: Exception) -> None:
        """Roll back after a failed write. Only failures with a live connection count towards isolating the
        batch: a lost connection says nothing about the batch's content."""
        self.worker.stats.count_database_failure()
        self.writer.reset()
        rolled_back = isinstance(err, psycopg.Error) and (err.sqlstate or "").startswith("40")
        if rolled_back and not (conn.closed or conn.broken):
            # SQLSTATE class 40, a deadlock or serialization failure (psycopg gives each its own class, so the
            # code is the test), e.g. two lanes auto-registering the same new signals of two cells in opposite
            # orders: the database rolled one transaction back; it says nothing about the batch. Retry.
            log.info("batch rolled back by the database (%s); retrying", str(err).strip())
            conn.rollback()
            return
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
        self.worker._stop.wait(min(0.2 * 2**self._failures, _MAX_BACKOFF_S))

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
            except DeadLetterRefused as err:
                # Even its dead letter cannot be written: stop with it (and the rest) unacknowledged, never drop it.
                self._rollback(conn)
                self.worker._refused(err)
                return remaining
            except psycopg.OperationalError as err:
                self._failed(conn, err)
                continue
            except Exception as err:
                self._failed(conn, err)
                log.error("dead-lettering a message on %s that the database refuses: %s", msg.topic[:200], err)
                msg.error = ContractError("rejected_by_database", str(err).strip())
                continue
            remaining.pop(0)
        self._failures = 0
        return []

    def _rollback(self, conn: psycopg.Connection) -> None:
        self.writer.reset()
        try:
            conn.rollback()
        except psycopg.Error:
            conn.close()
            self._conn = None

    def _final_health(self) -> None:
        """Each lane refreshes the row as it stops; the last to stop leaves the final counts."""
        if self._conn is None or self._conn.closed:
            return
        try:
            self.worker._write_health(self._conn, final=True)
        except psycopg.Error as err:
            log.warning("could not write the final health row: %s", str(err).strip())
