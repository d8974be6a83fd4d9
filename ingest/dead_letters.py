"""Writing dead letters: bounded, one row per distinct dead letter, and never silently lost.

A row keeps the first ``DEAD_LETTER_PREFIX_BYTES`` of the payload with the payload's full size and SHA-256, so a
hostile 1 MiB message costs 4 KiB, and a replay can still be checked against the original; a valid message the
database or a setting refused (``REPLAYABLE_REASONS``) is kept whole, for replay. A dead letter that
arrives again (the broker redelivering it, a gateway re-sending it) increments ``deliveries`` and moves
``last_seen`` of its row (``fingerprint``, migration 0610), so a message redelivered forever cannot fill the table.

The insert runs inside the batch's transaction, before anything of the batch is acknowledged. If the database
refuses the dead letters themselves (a revoked privilege, a trigger, a constraint), ``DeadLetterRefused`` is
raised: the worker stops consuming instead of acknowledging a message that is neither stored nor dead-lettered.
A lost connection or a deadlock is not a refusal; those propagate unchanged and the batch is retried.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg

from datafactory.contract.payload import MAX_MESSAGE_BYTES
from datafactory.errors import DataFactoryError

DEAD_LETTER_PREFIX_BYTES = 4096  # payload bytes kept per dead letter (docs/operators.md, docs/contract.md)
# Messages that follow the contract but were refused by the database or by this deployment's settings: they are
# what an operator replays once the cause is fixed, so they are kept whole (they are within the contract's size
# limit; a larger one is cut like any other). Garbage (malformed, oversized, too deep …) keeps only its prefix.
REPLAYABLE_REASONS = frozenset({"rejected_by_database", "foreign_plant", "invalid_config", "config_mismatch"})
DETAIL_MAX_CHARS = 1000  # a detail quotes the offending value; a hostile one must not make the row large

_UPSERT = (
    "INSERT INTO dead_letters (worker, topic, plant_id, reason, detail, payload, sample_index, payload_size,"
    " payload_sha256, fingerprint, deliveries, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
    " ON CONFLICT (fingerprint) DO UPDATE SET deliveries = dead_letters.deliveries + EXCLUDED.deliveries,"
    " last_seen = now()"
)


@dataclass(slots=True)
class DeadLetter:
    topic: str
    plant_id: int | None
    reason: str
    detail: str
    payload: bytes
    sample_index: int | None = None


class DeadLetterRefused(DataFactoryError):
    """The database refused to store dead letters: nothing of the batch may be acknowledged."""


def fingerprint(topic: str, reason: str, sample_index: int | None, payload_sha256: bytes) -> bytes:
    """What makes two dead letters the same one; migration 0610 computes the same for rows it found."""
    index = b"" if sample_index is None else str(sample_index).encode()
    return hashlib.sha256(b"\x00".join((topic.encode(), reason.encode(), index, payload_sha256))).digest()


def _text(value: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; an unstorable topic or detail must never make the dead letter unstorable.
    value = value.replace("\x00", "\\x00")
    return value if len(value) <= limit else value[:limit] + "…"


def _kept(d: DeadLetter) -> bytes:
    if d.reason in REPLAYABLE_REASONS and len(d.payload) <= MAX_MESSAGE_BYTES:
        return d.payload
    return d.payload[:DEAD_LETTER_PREFIX_BYTES]


def insert_dead_letters(conn: psycopg.Connection, worker: str, dead: list[DeadLetter]) -> None:
    """Upsert the batch's dead letters (repeats within the batch folded first). Raises ``DeadLetterRefused``."""
    rows: dict[bytes, tuple[object, ...]] = {}
    times: dict[bytes, int] = {}
    for d in dead:
        digest = hashlib.sha256(d.payload).digest()
        topic = _text(d.topic, 65_535)
        key = fingerprint(topic, d.reason, d.sample_index, digest)
        times[key] = times.get(key, 0) + 1
        if key not in rows:
            rows[key] = (
                worker, topic, d.plant_id, d.reason, _text(d.detail, DETAIL_MAX_CHARS),
                _kept(d), d.sample_index, len(d.payload), digest, key,
            )  # fmt: skip
    try:
        with conn.cursor() as cur:
            # In fingerprint order, so two lanes upserting the same dead letters cannot deadlock each other.
            cur.executemany(_UPSERT, [(*rows[k], times[k]) for k in sorted(rows)])
    except psycopg.Error as err:
        if isinstance(err, psycopg.OperationalError) or (err.sqlstate or "").startswith("40"):
            raise  # the connection, not the dead letters: the worker reconnects and retries the batch
        raise DeadLetterRefused(
            f"the database refuses dead letters ({str(err).strip().splitlines()[0]}): ingest stopped consuming;"
            " nothing unstored was acknowledged and the broker keeps the backlog — make dead_letters writable"
            " again and restart ingest"
        ) from err
