-- Analytics work units: one per plant, claimed by any number of `datafactory analytics run --worker` processes
-- with SELECT … FOR UPDATE SKIP LOCKED (analytics/work.py, docs/operators.md "Analytics workers").
--
-- A round asks every plant to be computed: requested_at is set on all units of the round's scope at once, and a
-- unit is pending while no claim made at or after that time has completed (done_claimed_at < requested_at). A
-- claim is a lease: leased_by holds it until lease_until, which the worker's heartbeat keeps extending; a crashed
-- worker stops extending it, and once it has expired another worker claims the unit again. token counts claims:
-- a worker commits its results only while the unit still carries the token of its own claim, so a worker whose
-- lease was taken over (paused, cut off) cannot overwrite the newer claim's results.
CREATE TABLE IF NOT EXISTS analytics_work (
    plant_id        integer PRIMARY KEY REFERENCES plants(id) ON DELETE CASCADE,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    token           bigint NOT NULL DEFAULT 0,
    leased_by       text,                 -- worker name, host:pid
    lease_until     timestamptz,
    claimed_at      timestamptz,          -- when the current (or last) claim was made
    done_claimed_at timestamptz,          -- claimed_at of the last completed claim
    done_at         timestamptz,
    claims          integer NOT NULL DEFAULT 0,   -- every claim, re-claims after a crash included
    failures        integer NOT NULL DEFAULT 0,
    last_error      text,
    last_seconds    double precision
);
CREATE INDEX IF NOT EXISTS analytics_work_pending ON analytics_work (requested_at, done_claimed_at);
