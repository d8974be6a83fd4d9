"""Writing one batch of decoded messages in one transaction: samples, registry updates, dead letters, late writes.

Samples go into two lanes by their signals' declared types (``ingest.declared_types``): float64 into ``samples``,
int64/uint64/bool/string into ``samples_typed``, each one binary COPY (``ingest.sample_copy``: idempotent on
redelivery, conflicting values recorded). A value that does not fit its signal's type is dead-lettered.
Database errors propagate to the worker, which rolls back, reconnects if needed and retries the same batch; the
caller acknowledges the batch's MQTT messages only after ``write`` returns (the transaction has committed).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import orjson
import psycopg

from datafactory.contract.sample import Sample, datetime_to_us, us_to_datetime
from datafactory.contract.topics import TopicKind
from datafactory.db import partitions
from datafactory.db.samples import TypedRow, pack_columns
from datafactory.errors import ConfigError
from ingest.dead_letters import DeadLetter, insert_dead_letters
from ingest.declared_types import Mismatch, inferred_types, reading_columns, route_typed, split_float_columns
from ingest.decode import Inbound
from ingest.sample_copy import ColumnBuffer, copy_float, copy_typed
from ingest.signal_cache import SignalCache

log = logging.getLogger(__name__)

NO_DATA_US = -(2**62)  # high-water mark of a signal with no stored sample
_SEED_SQL = "SELECT s, (SELECT max(time) FROM samples WHERE signal_id = s) FROM unnest(%s::int4[]) AS s"
_EPOCH_DATE = date(1970, 1, 1)


@dataclass(slots=True)
class BatchResult:
    messages: int = 0
    samples_stored: int = 0
    duplicates: int = 0
    conflicts: int = 0  # a different value (or quality) at a stored (signal, time): in sample_conflicts
    typed_samples: int = 0  # of samples_stored, those in samples_typed (int64, uint64, bool, string)
    late_samples: int = 0
    newest_us: int | None = None
    dead_letters: Counter[str] = field(default_factory=Counter)
    refused_messages: int = 0  # dead-lettered whole (topic, envelope, size, plant, …)
    rejected_samples: int = 0  # dead-lettered one by one inside otherwise good messages
    examples: dict[str, DeadLetter] = field(default_factory=dict)  # the batch's first dead letter per reason


class BatchWriter:
    """Holds the per-connection caches (signal ids, high-water marks, partition days) of one worker."""

    def __init__(self, *, worker: str, auto_register: bool, late_margin_s: float) -> None:
        self.worker = worker
        self.auto_register = auto_register
        self.late_margin_us = int(late_margin_s * 1e6)
        self.signals = SignalCache()
        self.high_water: dict[int, int] = {}  # signal id → newest stored time (µs)
        self._days_ready: set[int] = set()
        self._partitioned: bool | None = None
        self._type_epoch = 0  # newest signal_type_changes id this writer's caches know of

    def reset(self) -> None:
        """Forget everything learnt inside a transaction that did not commit."""
        self.signals.clear()
        self.high_water.clear()

    def write(self, conn: psycopg.Connection, batch: list[Inbound]) -> BatchResult:
        """Store a batch and commit. Raises ``psycopg.Error`` (caller rolls back and calls ``reset``).

        The samples go in by plain COPY; if one of them is already stored (a redelivery, or a second value at an
        instant) the transaction is rolled back and the batch written again staged (``ingest.sample_copy``)."""
        try:
            return self._write(conn, batch, staged=False)
        except psycopg.errors.UniqueViolation:
            conn.rollback()
            self.reset()  # what this transaction taught the caches is gone with it
            return self._write(conn, batch, staged=True)

    def _write(self, conn: psycopg.Connection, batch: list[Inbound], *, staged: bool) -> BatchResult:
        days: set[int] = set()
        for msg in batch:
            days |= msg.days
        if days:
            self._ensure_partitions(conn, days)
        if any(msg.sample_count for msg in batch):
            self._check_type_changes(conn)
        result = BatchResult(messages=len(batch))
        dead: list[DeadLetter] = []
        acc = ColumnBuffer()
        typed_rows: list[TypedRow] = []
        for msg in batch:
            if msg.error is not None:
                dead.append(self._message_dead_letter(msg, msg.error.reason, msg.error.detail))
            elif msg.ignored or msg.parsed is None:
                continue
            elif msg.parsed.kind is TopicKind.DATA:
                self._collect(conn, msg, acc, typed_rows, dead)
            else:
                self._control(conn, msg, dead)
        pending_high: dict[int, int] = {}
        late: list[tuple[int, int]] = []
        readings: set[tuple[int, int]] = set()
        if typed_rows:
            # First, so the float lane's conflict check finds the typed rows of this batch too.
            typed_rows.sort(key=lambda r: (r[0], r[1]))  # by (signal, time), like the float lane
            texts = [r for r in typed_rows if type(r[4]) is str]  # no reading in samples: late-checked here
            typed_late: list[tuple[int, int]] = []
            if texts:
                tsids = np.fromiter((r[0] for r in texts), np.int32, len(texts))
                ttimes = np.fromiter((r[1] for r in texts), np.int64, len(texts))
                typed_late, pending_high = self._late_and_high_water(conn, tsids, ttimes)
                result.newest_us = int(ttimes.max())
            lane = copy_typed(conn, typed_rows, typed_late, worker=self.worker, staged=staged)
            late += lane.late
            result.samples_stored = result.typed_samples = lane.stored
            result.duplicates = len(typed_rows) - lane.stored - lane.conflicts
            result.conflicts = lane.conflicts
            rows = [r for r in typed_rows if type(r[4]) is not str]
            if rows:
                acc.add(*reading_columns(rows))
                readings = {(r[0], r[1]) for r in rows}
        if acc.count:
            sids, times, values, qualities = acc.arrays()
            float_late, float_high = self._late_and_high_water(conn, sids, times)
            lane = copy_float(
                conn,
                pack_columns(sids, times, values, qualities),
                len(times),
                float_late,
                worker=self.worker,
                readings=readings,
                staged=staged,
            )
            late += lane.late
            for sid, mark in float_high.items():
                pending_high[sid] = max(mark, pending_high.get(sid, mark))
            own = len(times) - len(readings)  # samples of float64 signals; readings were counted as typed
            result.samples_stored += lane.stored - lane.readings_stored
            result.duplicates += own - (lane.stored - lane.readings_stored) - lane.conflicts
            result.conflicts += lane.conflicts
            newest = int(times.max())
            result.newest_us = newest if result.newest_us is None else max(result.newest_us, newest)
        if dead:
            insert_dead_letters(conn, self.worker, dead)  # raises DeadLetterRefused: nothing is acknowledged
            result.dead_letters.update(d.reason for d in dead)
            result.rejected_samples = sum(1 for d in dead if d.sample_index is not None)
            result.refused_messages = len(dead) - result.rejected_samples
            for d in dead:
                result.examples.setdefault(d.reason, d)
        if late:
            self._insert_late_writes(conn, late)
            result.late_samples = len(late)
        conn.commit()
        self.high_water.update(pending_high)  # committed: the new marks are now true
        return result

    # -- samples -------------------------------------------------------------------------------------------

    def _check_type_changes(self, conn: psycopg.Connection) -> None:
        """Forget the cached signals when a declared type changed since the last batch, wherever it changed.

        A meta message reaches one lane of one worker; every other lane and worker would keep checking values
        against the old type. One index lookup per batch tells them all."""
        row = conn.execute("SELECT coalesce(max(id), 0) FROM signal_type_changes").fetchone()
        epoch = int(row[0]) if row else 0
        if epoch != self._type_epoch:
            self.signals.clear()
            self._type_epoch = epoch

    def _collect(
        self,
        conn: psycopg.Connection,
        msg: Inbound,
        acc: ColumnBuffer,
        typed_rows: list[TypedRow],
        dead: list[DeadLetter],
    ) -> None:
        """Add the message's samples (with their signal ids) to the batch's float columns or typed rows, by their
        signals' declared types; dead-letter its rejects and its values of the wrong type."""
        assert msg.parsed is not None and msg.parsed.cell is not None
        for reject in msg.rejects:
            dead.append(self._sample_dead_letter(msg, reject.reason, reject.detail, reject.raw, reject.index))
        names, times, values, qualities = msg.columns
        typed = msg.typed
        if not names and not typed:
            return
        entry = self.signals.cell(conn, msg.parsed.cell, create=self.auto_register)
        if entry is not None and self.auto_register:
            # The memoised id array answers "all registered" for the usual tuple of names with one dict lookup;
            # only a message with some new signal pays for the set of its names.
            known = entry.signals
            if entry.signal_ids(names) is None or any(s.signal not in known for _, s in typed):
                missing = (set(names) | {s.signal for _, s in typed}) - known.keys()
                self.signals.register_missing(conn, entry, missing, inferred_types(typed))
        mismatches: list[Mismatch] = []
        if names:
            sids = None if entry is None else entry.signal_ids(names)
            if sids is None:  # auto-registration is off: keep the known signals' samples, dead-letter the others
                ids: dict[str, int] = entry.signals if entry is not None else {}
                keep = [i for i, name in enumerate(names) if name in ids]
                for i, name in enumerate(names):
                    if name not in ids:
                        raw = [name, int(times[i]), float(values[i]), int(qualities[i])]
                        dead.append(self._unknown_signal(msg, name, raw, i))
                sids = np.fromiter((ids[names[i]] for i in keep), np.int32, len(keep))
                names = tuple(names[i] for i in keep)
                times, values, qualities = times[keep], values[keep], qualities[keep]
            if entry is not None and not entry.all_float(names):
                mask = split_float_columns(
                    entry,
                    names=names,
                    sids=sids,
                    times=times,
                    values=values,
                    qualities=qualities,
                    typed_rows=typed_rows,
                    mismatches=mismatches,
                )
                sids, times, values, qualities = sids[mask], times[mask], values[mask], qualities[mask]
            acc.add(sids, times, values, qualities)
        if typed:
            extra: list[tuple[int, int, float, int]] = []
            unknown: list[tuple[int, Sample]] = []
            if entry is None:
                unknown = typed
            else:
                route_typed(
                    entry, typed=typed, float_extra=extra, typed_rows=typed_rows, mismatches=mismatches, unknown=unknown
                )
            for index, s in unknown:
                dead.append(self._unknown_signal(msg, s.signal, list(s), index))
            if extra:
                sid_x, t_x, v_x, q_x = zip(*extra, strict=True)
                acc.add(np.array(sid_x, np.int32), np.array(t_x, np.int64), np.array(v_x, np.float64), np.array(q_x))
        for m in mismatches:
            detail = m.detail(msg.parsed.cell.key)
            dead.append(self._sample_dead_letter(msg, m.reason, detail, list(m.sample), m.index))

    def _unknown_signal(self, msg: Inbound, name: str, raw: object, index: int) -> DeadLetter:
        detail = f"signal {name!r} is not registered and auto-registration is off"
        return self._sample_dead_letter(msg, "unknown_signal", detail, raw, index)

    def _late_and_high_water(
        self, conn: psycopg.Connection, sids: np.ndarray, times: np.ndarray
    ) -> tuple[list[tuple[int, int]], dict[int, int]]:
        """Late samples (older than their signal's newest stored time by more than the margin) and the signals'
        new high-water marks, to be applied once the batch commits."""
        high = self.high_water
        unique, inverse = np.unique(sids, return_inverse=True)
        unseen = [sid for sid in unique.tolist() if sid not in high]
        if unseen:  # first sight of these signals since start (or since a rollback): ask the database
            for sid, newest in conn.execute(_SEED_SQL, (unseen,)):
                high[sid] = NO_DATA_US if newest is None else datetime_to_us(newest)
        marks = np.array([high[sid] for sid in unique.tolist()], dtype=np.int64)
        late_mask = times < (marks - self.late_margin_us)[inverse]
        late = list(zip(sids[late_mask].tolist(), times[late_mask].tolist(), strict=True)) if late_mask.any() else []
        newest = marks.copy()
        np.maximum.at(newest, inverse, times)
        pending = {sid: mark for sid, mark in zip(unique.tolist(), newest.tolist(), strict=True) if mark > high[sid]}
        return late, pending

    def _ensure_partitions(self, conn: psycopg.Connection, days: set[int]) -> None:
        """Create the daily partitions a batch writes to, each in its own short transaction, once per day."""
        todo = days - self._days_ready
        if not todo:
            return
        if self._partitioned is None:
            self._partitioned = partitions.is_partitioned(conn)
        if self._partitioned:
            existing = set(partitions.existing_partitions(conn))
            tables = partitions.partitioned_tables(conn)
            conn.commit()
            for d in sorted(todo):
                day = _EPOCH_DATE + timedelta(days=d)
                if partitions.day_ready(existing, tables, day):
                    continue
                try:
                    partitions.ensure_partitions(conn, day, day)
                    conn.commit()
                except psycopg.errors.DuplicateTable:
                    conn.rollback()  # another worker created it first
        conn.commit()
        self._days_ready |= todo

    # -- control messages ----------------------------------------------------------------------------------

    def _control(self, conn: psycopg.Connection, msg: Inbound, dead: list[DeadLetter]) -> None:
        """Meta, status or config: each in a savepoint, so content the database refuses is dead-lettered."""
        assert msg.parsed is not None
        try:
            with conn.transaction():
                if msg.meta is not None:
                    assert msg.parsed.cell is not None
                    self.signals.apply_meta(conn, msg.parsed.cell, msg.meta)
                elif msg.status is not None:
                    self._store_status(conn, msg)
                elif msg.config is not None:
                    problem = self._store_config(conn, msg)
                    if problem is not None:
                        dead.append(self._message_dead_letter(msg, *problem))
        except (psycopg.DataError, psycopg.IntegrityError) as err:
            self.signals.clear()  # ids learnt inside the rolled-back savepoint are gone
            dead.append(self._message_dead_letter(msg, "rejected_by_database", str(err).strip()))

    def _store_status(self, conn: psycopg.Connection, msg: Inbound) -> None:
        assert msg.parsed is not None and msg.status is not None and msg.parsed.gateway is not None
        plant_id = self.signals.plant_id(conn, msg.parsed.enterprise, msg.parsed.site)
        conn.execute(
            """
            INSERT INTO gateway_status (plant_id, gateway, online, updated_at, config_version, status)
            VALUES (%s, %s, %s, now(), %s, %s::jsonb)
            ON CONFLICT (plant_id, gateway) DO UPDATE SET online = EXCLUDED.online, updated_at = EXCLUDED.updated_at,
                config_version = EXCLUDED.config_version, status = EXCLUDED.status
            """,
            (
                plant_id,
                msg.parsed.gateway,
                msg.status["online"],
                msg.status.get("config_version") or "",
                orjson.dumps(msg.status).decode(),
            ),
        )

    def _store_config(self, conn: psycopg.Connection, msg: Inbound) -> tuple[str, str] | None:
        """Record a deployed config and the plant attributes it sets; return (reason, detail) if it is refused."""
        from datafactory.config.loader import validate_document  # pydantic models: paid only by config messages
        from datafactory.db import registry

        assert msg.parsed is not None and msg.config is not None
        version, doc = msg.config
        try:
            cfg = validate_document(doc, source=msg.topic)
        except ConfigError as err:
            return "invalid_config", str(err)
        if (cfg.enterprise.id, cfg.site.id) != (msg.parsed.enterprise, msg.parsed.site):
            return "config_mismatch", (
                f"config is for {cfg.enterprise.id}/{cfg.site.id} but was published under"
                f" {msg.parsed.enterprise}/{msg.parsed.site}"
            )
        plant_id = registry.upsert_plant_from_config(conn, cfg)
        conn.execute(
            "INSERT INTO plant_configs (plant_id, gateway, version, config) VALUES (%s, %s, %s, %s::jsonb)"
            " ON CONFLICT (plant_id, gateway, version) DO NOTHING",
            (plant_id, msg.parsed.gateway, version, orjson.dumps(doc).decode()),
        )
        return None

    # -- dead letters and late writes ----------------------------------------------------------------------

    def _message_dead_letter(self, msg: Inbound, reason: str, detail: str) -> DeadLetter:
        return DeadLetter(msg.topic, self._plant_of(msg), reason, detail, msg.payload)

    def _sample_dead_letter(self, msg: Inbound, reason: str, detail: str, raw: object, index: int) -> DeadLetter:
        try:
            payload = orjson.dumps(raw)
        except TypeError:  # e.g. an integer beyond 64 bits
            payload = repr(raw).encode()
        return DeadLetter(msg.topic, self._plant_of(msg), reason, detail, payload, index)

    def _plant_of(self, msg: Inbound) -> int | None:
        if msg.parsed is None:
            return None
        return self.signals.cached_plant_id(msg.parsed.enterprise, msg.parsed.site)

    def _insert_late_writes(self, conn: psycopg.Connection, late: list[tuple[int, int]]) -> None:
        ranges: dict[int, list[int]] = {}
        for sid, t in late:
            r = ranges.get(sid)
            if r is None:
                ranges[sid] = [t, t, 1]
            else:
                r[0], r[1], r[2] = min(r[0], t), max(r[1], t), r[2] + 1
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO late_writes (signal_id, time_from, time_to, samples) VALUES (%s, %s, %s, %s)",
                [(sid, us_to_datetime(lo), us_to_datetime(hi), n) for sid, (lo, hi, n) in ranges.items()],
            )
