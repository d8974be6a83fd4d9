"""The append-only, hash-chained audit trail (table ``audit_log``, migration 0400).

Anyone may call ``record(conn, actor, action, object, details)`` inside their own transaction: config deployments,
registry imports, role changes, open-data exports, backups. The database assigns ``seq``, ``time``, ``prev_hash``
and ``hash = sha256(prev_hash || canonical row)`` in a trigger, so the chain is the same whoever writes it.
``verify`` recomputes every hash in ``seq`` order and reports the first rows that do not fit: a modified row (its
hash no longer matches its content), a deleted row (a gap in ``seq`` and a ``prev_hash`` that points elsewhere).
Deleting the newest rows is only detectable against an anchor kept elsewhere: ``verify`` returns the head hash,
and every backup manifest records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

GENESIS = "0" * 64


def record(
    conn: psycopg.Connection, actor: str, action: str, object: str = "", details: dict[str, Any] | None = None
) -> int:
    """Append one entry in the caller's transaction (committed with it). Returns its ``seq``."""
    # orjson round trip: datetimes, UUIDs, dataclasses become JSON the same way everywhere.
    body = orjson.loads(orjson.dumps(details or {}, default=str))
    row = conn.execute(
        "INSERT INTO audit_log (actor, action, object, details, prev_hash, hash) VALUES (%s, %s, %s, %s, '', '')"
        " RETURNING seq",
        (actor, action, object, Jsonb(body)),
    ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # 'modified', 'deleted_before', 'broken_link'
    detail: str

    def __str__(self) -> str:
        return f"row seq={self.seq}: {self.kind}: {self.detail}"


@dataclass
class Verification:
    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_VERIFY_SQL = """
SELECT seq, prev_hash, hash,
       df_audit_hash(prev_hash, df_audit_canonical(seq, time, actor, action, object, details)) AS recomputed,
       lag(seq) OVER w, lag(hash) OVER w
FROM audit_log WINDOW w AS (ORDER BY seq) ORDER BY seq
"""


def verify(conn: psycopg.Connection, *, max_problems: int = 100) -> Verification:
    """Walk the chain server-side (one streamed pass); collect up to ``max_problems`` problems."""
    result = Verification()
    with conn.cursor(name="df_audit_verify") as cur:
        cur.itersize = 10_000
        cur.execute(_VERIFY_SQL)
        for seq, prev_hash, stored, recomputed, prev_seq, prev_row_hash in cur:
            result.rows += 1
            result.head_seq, result.head_hash = seq, stored
            expected_prev = GENESIS if prev_seq is None else prev_row_hash
            if recomputed != stored:
                result.problems.append(Problem(seq, "modified", "content does not match its stored hash"))
            if seq != (prev_seq or 0) + 1:
                first_missing = (prev_seq or 0) + 1
                result.problems.append(
                    Problem(seq, "deleted_before", f"rows seq={first_missing}..{seq - 1} are missing")
                )
            elif prev_hash != expected_prev:
                result.problems.append(Problem(seq, "broken_link", "prev_hash is not the previous row's hash"))
            if len(result.problems) >= max_problems:
                break
    return result


def head(conn: psycopg.Connection) -> tuple[int, str]:
    """The newest (seq, hash): an anchor to keep outside the database."""
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))
