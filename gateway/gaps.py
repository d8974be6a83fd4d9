"""Where the gateway's record of a source has gaps, kept durably so a crash cannot hide one.

The ledger is one table, ``source_marks``, in the store-and-forward SQLite file (same connection, same WAL
durability as the batches). Per source it keeps the signals it delivers, whether it is delivering now
(``connected``), its *watermark* while it is, and the time of the last marker written for it:

* While a source is connected, the watermark is moved forward (``advance``) in the same transaction as every
  batch appended to the buffer — to just after the latest sample time in that batch — and by the runner's
  timer to the time up to which everything received is on disk. So after a SIGKILL, every durable sample of
  the source is strictly before its watermark, and the source was delivering until then.
* At start, a source still marked ``connected`` did not stop cleanly: the runner writes a gap marker for each
  of its signals *at the watermark*, so the database shows the gap from where the record really ends to the
  restart (``recover``). A clean stop writes planned-stop markers and closes the rows; a lost connection writes
  comm-lost markers and closes the row. Either way ``marked_us`` remembers the marker's time.

``Restamper`` carries the second half of the rule: after a marker at M, the first value of each signal that
carries a timestamp at or before M (a value that did not change during the gap, re-read at resubscription)
is also recorded at the time it arrived, so the signal is known again the moment the source is. See
docs/contract.md "Gaps".
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from datafactory.contract.sample import Sample, now_us
from gateway.buffer import Buffer
from gateway.sources import Reading

Signal = tuple[str, str]  # (cell path, signal name)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_marks (
    source TEXT PRIMARY KEY,
    signals TEXT NOT NULL,
    connected INTEGER NOT NULL,
    watermark_us INTEGER NOT NULL,
    marked_us INTEGER
)
"""
ADVANCE_SQL = "UPDATE source_marks SET watermark_us = max(watermark_us, ?) WHERE connected = 1"


@dataclass(frozen=True, slots=True)
class Recovered:
    """A source's state as the previous run left it."""

    source: str
    signals: list[Signal]
    crashed: bool  # still marked connected: the previous run did not stop it cleanly
    mark_us: int  # where the gap starts: the watermark after a crash, else the last marker's time


class GapLedger:
    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.watermark_us = 0

    def recover(self) -> list[Recovered]:
        """Create the table if needed and return every source's state from the previous run."""
        conn = self.buffer.conn
        conn.execute(_SCHEMA)
        out: list[Recovered] = []
        for source, signals, connected, watermark, marked in conn.execute(
            "SELECT source, signals, connected, watermark_us, marked_us FROM source_marks ORDER BY source"
        ):
            pairs = [(str(c), str(s)) for c, s in orjson.loads(signals)]
            crashed = bool(connected)
            mark = int(watermark) if crashed or marked is None else int(marked)
            out.append(Recovered(str(source), pairs, crashed, mark))
        return out

    def connected(self, source: str, signals: Iterable[Signal], t_us: int) -> None:
        """The source delivers from now on; ``signals`` are the ones a crash would leave unmarked."""
        payload = orjson.dumps([list(s) for s in signals])
        self.buffer.conn.execute(
            "INSERT INTO source_marks (source, signals, connected, watermark_us, marked_us) VALUES (?, ?, 1, ?, NULL)"
            " ON CONFLICT (source) DO UPDATE SET signals = excluded.signals, connected = 1,"
            " watermark_us = excluded.watermark_us",
            (source, payload, t_us),
        )

    def signals_changed(self, source: str, signals: Iterable[Signal]) -> None:
        """A source learned signals while connected (Sparkplug births)."""
        payload = orjson.dumps([list(s) for s in signals])
        self.buffer.conn.execute("UPDATE source_marks SET signals = ? WHERE source = ?", (payload, source))

    def advance(self, t_us: int) -> None:
        """Everything every connected source delivered up to ``t_us`` is on disk (timer path)."""
        if t_us > self.watermark_us:
            self.watermark_us = t_us
            self.buffer.conn.execute(ADVANCE_SQL, (t_us,))

    def closed(self, source: str, marked_us: int) -> None:
        """A marker at ``marked_us`` now ends the source's record; no gap is left to mark at the next start."""
        self.buffer.conn.execute(
            "UPDATE source_marks SET connected = 0, marked_us = ? WHERE source = ?", (marked_us, source)
        )

    def forget(self, source: str) -> None:
        """The source left the config."""
        self.buffer.conn.execute("DELETE FROM source_marks WHERE source = ?", (source,))


def markers(signals: Iterable[Signal], t_us: int, quality: int) -> list[Reading]:
    """One marker per signal: no value (NaN in memory, null on the wire) from ``t_us`` on."""
    return [(cell, Sample(signal, t_us, math.nan, quality)) for cell, signal in signals]


RESTAMP_WINDOW_S = 60.0
"""How long after a (re)connect re-read values are expected: a signal the server never reports (a refused item)
must not keep every later reading on the slow path."""


class Restamper:
    """After a marker, records each signal's re-read value at its arrival time as well (see the module doc)."""

    def __init__(self) -> None:
        self._pending: dict[Signal, int] = {}
        self._until = math.inf

    def connected(self, window_s: float = RESTAMP_WINDOW_S) -> None:
        """The source delivers again: its re-read values come within ``window_s``."""
        self._until = time.monotonic() + window_s

    def expect(self, signals: Iterable[Signal], marked_us: int) -> None:
        for key in signals:
            self._pending[key] = marked_us

    def clear(self) -> None:
        self._pending.clear()

    def apply(self, readings: list[Reading]) -> list[Reading]:
        pending = self._pending
        if not pending:  # the steady state: nothing to do per reading
            return readings
        if time.monotonic() > self._until:
            pending.clear()
            return readings
        out: list[Reading] = []
        now = now_us()
        for cell, sample in readings:
            out.append((cell, sample))
            mark = pending.pop((cell, sample.signal), None)
            if mark is not None and sample.time_us <= mark:
                out.append((cell, sample._replace(time_us=max(now, mark + 1))))
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)
