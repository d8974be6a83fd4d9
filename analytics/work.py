"""Analytics workers: per-plant work units in ``analytics_work`` (migration 0800), claimed by any number of
``datafactory analytics run --worker`` processes, on this machine or others, with ``FOR UPDATE SKIP LOCKED``.

A *round* asks every plant (of the worker's enterprise, if it has one) to be computed once, incrementally as
``analytics run`` does: a worker joins the open round or, when none is open, opens one. It then claims pending
units one at a time — longest-running plants first, so a big plant does not start last — and computes each in one
transaction. A claim is a *lease*: a heartbeat thread extends it while the plant is computed; a worker that dies
(SIGKILL, a lost machine) stops extending it, and when it has expired another worker claims the unit again and
computes it from the same watermark (the dead worker's transaction was never committed). The results are committed
together with the unit's completion, and only while the unit still carries the claim's token: a worker whose lease
was taken over (paused, cut off from the database) has its results discarded instead of overwriting the newer
claim's. A round ends when no unit is pending; a one-shot worker waits for units other workers hold, so a unit of
a crashed worker is still computed in this round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from analytics import store
from analytics.run import RunSummary, compute_plant
from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError

log = logging.getLogger(__name__)
LOCK = "datafactory.analytics_work"  # advisory lock serialising round opening
SCOPE = "(%(enterprise)s::text IS NULL OR p.enterprise = %(enterprise)s)"
PENDING = "(u.done_claimed_at IS NULL OR u.done_claimed_at < u.requested_at)"
Report = Callable[[RunSummary, store.Plant, float], None]


@dataclass(frozen=True)
class Claim:
    plant_id: int
    token: int


@dataclass
class WorkerReport:
    computed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)  # leases taken over: results discarded
    wait_s: float = 0.0  # no round was open: seconds until one may be opened


def open_round(conn: psycopg.Connection, enterprise: str | None, every: float | None) -> float:
    """Join the open round, or open one (every unit of the scope pending again) when none is open and — with
    ``every`` — the last one was opened at least ``every`` seconds ago. Returns 0 when a round is open, else the
    seconds until one may be opened. Commits."""
    args = {"enterprise": enterprise}
    try:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK,))
        conn.execute(f"INSERT INTO analytics_work (plant_id) SELECT p.id FROM plants p WHERE {SCOPE}"
                     " ON CONFLICT DO NOTHING", args)
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE {PENDING}), extract(epoch FROM now() - max(u.requested_at))"
            f" FROM analytics_work u JOIN plants p ON p.id = u.plant_id WHERE {SCOPE}", args).fetchone()
        assert row is not None
        waiting, age = int(row[0]), None if row[1] is None else float(row[1])
        if waiting:
            return 0.0
        if every is not None and age is not None and age < every:
            return every - age
        conn.execute(f"UPDATE analytics_work u SET requested_at = now() FROM plants p WHERE p.id = u.plant_id"
                     f" AND {SCOPE}", args)
        return 0.0
    finally:
        conn.commit()  # also releases the advisory lock


def claim(conn: psycopg.Connection, worker: str, enterprise: str | None, lease_s: float) -> Claim | None:
    """Lease one pending unit no live lease holds (skipping units another worker is claiming). Commits."""
    row = conn.execute(
        "UPDATE analytics_work w SET token = w.token + 1, leased_by = %(worker)s, claimed_at = clock_timestamp(),"
        " lease_until = clock_timestamp() + make_interval(secs => %(lease)s), claims = w.claims + 1"
        " WHERE w.plant_id = (SELECT u.plant_id FROM analytics_work u JOIN plants p ON p.id = u.plant_id"
        f" WHERE {SCOPE} AND {PENDING} AND (u.lease_until IS NULL OR u.lease_until < clock_timestamp())"
        " ORDER BY u.last_seconds DESC NULLS FIRST, u.plant_id LIMIT 1 FOR UPDATE OF u SKIP LOCKED)"
        " RETURNING w.plant_id, w.token",
        {"worker": worker, "lease": lease_s, "enterprise": enterprise},
    ).fetchone()
    conn.commit()
    return None if row is None else Claim(int(row[0]), int(row[1]))


def pending(conn: psycopg.Connection, enterprise: str | None) -> int:
    row = conn.execute(f"SELECT count(*) FROM analytics_work u JOIN plants p ON p.id = u.plant_id"
                       f" WHERE {SCOPE} AND {PENDING}", {"enterprise": enterprise}).fetchone()
    conn.commit()
    return int(row[0]) if row else 0


def complete(conn: psycopg.Connection, c: Claim, seconds: float, error: str | None = None) -> bool:
    """Mark the claim's unit done in the caller's transaction; False (nothing changed) when the lease was taken
    over, and the caller must then roll back its results."""
    done = conn.execute(
        "UPDATE analytics_work SET done_claimed_at = claimed_at, done_at = clock_timestamp(), leased_by = NULL,"
        " lease_until = NULL, last_seconds = %s, last_error = %s, failures = failures + %s"
        " WHERE plant_id = %s AND token = %s",
        (seconds, error, 0 if error is None else 1, c.plant_id, c.token),
    )
    return done.rowcount == 1


def release(conn: psycopg.Connection, c: Claim) -> None:
    """Give a claim back unfinished (interrupted), so another worker need not wait for the lease to expire."""
    conn.execute("UPDATE analytics_work SET leased_by = NULL, lease_until = NULL WHERE plant_id = %s AND token = %s",
                 (c.plant_id, c.token))
    conn.commit()


class Heartbeat:
    """Extends the lease of the current claim every third of the lease, on a connection of its own."""

    def __init__(self, url: str, lease_s: float) -> None:
        self._conn = connect(url, application_name="datafactory-analytics-heartbeat", autocommit=True)
        self._lease_s = lease_s
        self._lock = threading.Lock()
        self._current: Claim | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, c: Claim | None) -> None:
        with self._lock:
            self._current = c

    def _run(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            with self._lock:
                c = self._current
                if c is None:
                    continue
                try:
                    kept = self._conn.execute(
                        "UPDATE analytics_work SET lease_until = clock_timestamp() + make_interval(secs => %s)"
                        " WHERE plant_id = %s AND token = %s", (self._lease_s, c.plant_id, c.token)).rowcount
                except psycopg.Error as err:  # the database is away: the lease may expire, the token fences
                    log.warning("cannot extend the lease of plant %s: %s", c.plant_id, str(err).strip())
                    continue
                if not kept:
                    log.warning("the lease of plant %s was taken over by another worker", c.plant_id)
                    self._current = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


def drain(url: str, *, worker: str, enterprise: str | None, lease_s: float, report: Report,
          poll_s: float = 1.0, every: float | None = None) -> WorkerReport:
    """Join or open a round and compute units until none is pending (waiting for units other workers hold)."""
    out = WorkerReport()
    heartbeat = Heartbeat(url, lease_s)
    try:
        with store.session(url) as conn:
            out.wait_s = open_round(conn, enterprise, every)
            if out.wait_s > 0:
                return out
            plants = {p.id: p for p in store.plants(conn, enterprise)}
            while True:
                c = claim(conn, worker, enterprise, lease_s)
                if c is None:
                    if pending(conn, enterprise) == 0:
                        return out
                    time.sleep(poll_s)  # units held by other workers: wait for them, or for their leases to expire
                    continue
                if c.plant_id not in plants:  # a plant registered since the round opened
                    plants = {p.id: p for p in store.plants(conn, enterprise)}
                plant = plants[c.plant_id]
                _compute(url, conn, c, plant, heartbeat=heartbeat, report=report, out=out)
    finally:
        heartbeat.close()


def _compute(url: str, conn: psycopg.Connection, c: Claim, plant: store.Plant, *, heartbeat: Heartbeat,
             report: Report, out: WorkerReport) -> None:
    heartbeat.hold(c)
    t0 = time.perf_counter()
    finished = False
    try:
        summary = compute_plant(conn, plant, None, None)
        seconds = time.perf_counter() - t0
        if complete(conn, c, seconds):
            conn.commit()
            out.computed.append(plant.id)
            report(summary, plant, seconds)
        else:
            conn.rollback()
            out.lost.append(plant.id)
            log.warning("%s/%s: lease taken over by another worker; results discarded", plant.enterprise,
                        plant.site)
        finished = True
    except psycopg.OperationalError:
        raise  # the database is away: nothing to record; the lease expires and the unit is claimed again
    except (DataFactoryError, psycopg.Error) as err:
        # One plant's bad data must not stop the city: recorded on its unit, retried next round, reported at the end.
        conn.rollback()
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.error("%s/%s: analytics failed: %s", plant.enterprise, plant.site, message)
        if complete(conn, c, time.perf_counter() - t0, error=message):
            out.failed[plant.id] = message
        conn.commit()
        finished = True
    finally:
        heartbeat.hold(None)
        if not finished:  # interrupted, or a bug: give the unit back at once
            _give_back(url, conn, c)


def _give_back(url: str, conn: psycopg.Connection, c: Claim) -> None:
    try:
        conn.rollback()
        release(conn, c)
        return
    except psycopg.Error:
        # Interrupted inside a query, the connection is still busy with it: closing it ends the query and its
        # transaction on the server, then a connection of our own gives the claim back.
        conn.close()
    try:
        with connect(url, autocommit=True, application_name="datafactory-analytics") as fresh:
            release(fresh, c)
    except (psycopg.Error, DataFactoryError) as err:
        log.warning("plant %s: could not release the claim (its lease will expire): %s", c.plant_id, err)
