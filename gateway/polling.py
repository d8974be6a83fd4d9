"""What the polled sources (``modbus``, ``s7``) share: poll groups on their own intervals, report-by-change and
the per-signal normalisers, so each adapter only reads and decodes.

A subclass reads one poll group in ``_poll(group)`` and hands each decoded value to ``_report``; the schedule
here runs every group at its interval from one task. A round that takes longer than its interval is counted in
``overruns`` and the group is read again one interval after it finished: reads never queue up behind a slow
device, and the event loop (publishing, acknowledgements) gets its turn even when the device is fast. With
``report: change`` (the default) a value is published when it or its quality changed, like an OPC-UA
subscription; ``every_poll`` publishes every read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from datafactory.config.signals import SignalBinding
from gateway.normalise import Normaliser
from gateway.sources import Reading


class PolledSource:
    def __init__(self, config: Any, bindings: Sequence[SignalBinding]) -> None:
        """``config`` has ``id``, ``report`` and ``poll_groups`` (name, interval_ms); each binding a ``poll_group``."""
        self.id: str = config.id
        self.config = config
        self._bindings = list(bindings)
        self._normalisers = [Normaliser(b) for b in self._bindings]
        self._cells = [b.cell for b in self._bindings]
        self._last: list[tuple[object, int] | None] = [None] * len(self._bindings)
        self._every_poll = config.report == "every_poll"
        intervals = {g.name: g.interval_ms / 1000 for g in config.poll_groups}
        self._groups: dict[str, tuple[float, list[int]]] = {}
        for i, b in enumerate(self._bindings):
            group = b.poll_group  # type: ignore[attr-defined]
            self._groups.setdefault(group, (intervals[group], []))[1].append(i)
        self.requests = 0
        self.bad_values = 0
        self.overruns = 0
        self.refused: dict[int, int] = {}  # binding index → the device's refusal code, while it refuses

    def bindings(self) -> list[SignalBinding]:
        return list(self._bindings)

    async def _poll(self, group: str) -> list[Reading]:
        """Read every value of ``group`` once; raise ``ConnectionLost`` when the device is gone."""
        raise NotImplementedError

    async def stream(self) -> AsyncIterator[list[Reading]]:
        loop = asyncio.get_running_loop()
        due = dict.fromkeys(self._groups, loop.time())
        while True:
            name = min(due, key=due.__getitem__)
            delay = due[name] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            out = await self._poll(name)
            interval = self._groups[name][0]
            due[name] += interval
            now = loop.time()
            if due[name] < now:  # the round took longer than the interval: skip, never queue up reads
                self.overruns += 1
                due[name] = now + interval
            if out:
                yield out

    def _report(self, i: int, raw: object, quality: int, t: int, out: list[Reading]) -> None:
        """Pass value ``i`` on if it (or its quality) changed, or on every poll with ``report: every_poll``."""
        key = (raw, quality)
        if not self._every_poll and self._last[i] == key:
            return
        self._last[i] = key
        sample = self._normalisers[i].apply(raw, t, quality)
        if sample is not None:
            out.append((self._cells[i], sample))
