"""Batch samples per cell by size (``gateway.batch_max_samples``) and age (``gateway.batch_max_ms``).

One data message carries many samples of one cell: a batch is handed on as soon as it holds
``max_samples`` samples, or when its oldest sample has waited ``max_ms`` (``flush_due`` is called on a timer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from operator import itemgetter

from datafactory.contract.sample import SampleRow, now_us
from gateway.sources import Reading

FlushFn = Callable[[str, list[SampleRow]], None]
_cell = itemgetter(0)
_sample = itemgetter(1)


class Batcher:
    def __init__(self, *, max_samples: int, max_ms: int, flush: FlushFn) -> None:
        self.max_samples = max_samples
        self.max_s = max_ms / 1000.0
        self._flush = flush
        self._open: dict[str, list[SampleRow]] = {}
        self._since: dict[str, float] = {}
        self.samples_in = 0

    def add(self, readings: list[Reading]) -> None:
        if not readings:
            return
        self.samples_in += len(readings)
        cells = list(map(_cell, readings))
        if cells.count(cells[0]) == len(cells):  # one cell (one device, one poll): no per-sample Python loop
            self._add_run(cells[0], list(map(_sample, readings)))
            return
        open_, since, limit = self._open, self._since, self.max_samples
        now = time.monotonic()
        for cell, sample in readings:
            batch = open_.get(cell)
            if batch is None:
                batch = open_[cell] = []
                since[cell] = now
            batch.append(sample)
            if len(batch) >= limit:
                del open_[cell], since[cell]
                self._flush(cell, batch)

    def add_run(self, cell: str, rows: list[SampleRow]) -> None:
        """Add samples of one cell (a polled source's ``CellRun``): no Python step per sample."""
        self.samples_in += len(rows)
        self._add_run(cell, rows)

    def _add_run(self, cell: str, samples: list[SampleRow]) -> None:
        batch = self._open.get(cell)
        if batch is None:
            batch = self._open[cell] = []
            self._since[cell] = time.monotonic()
        batch.extend(samples)
        limit = self.max_samples
        while len(batch) >= limit:
            full, rest = batch[:limit], batch[limit:]
            del self._open[cell], self._since[cell]
            self._flush(cell, full)
            if not rest:
                return
            batch = self._open[cell] = rest
            self._since[cell] = time.monotonic()

    def flush_due(self) -> None:
        """Hand on every batch whose oldest sample has waited ``max_ms``."""
        deadline = time.monotonic() - self.max_s
        for cell in [c for c, t in self._since.items() if t <= deadline]:
            self._flush(cell, self._open.pop(cell))
            del self._since[cell]

    def flush_all(self) -> None:
        for cell in list(self._open):
            self._flush(cell, self._open.pop(cell))
        self._since.clear()

    def durable_until_us(self) -> int:
        """Wall-clock time before which every reading added has been handed on: now when nothing waits,
        else the arrival of the oldest waiting reading."""
        if not self._since:
            return now_us()
        return now_us() - int((time.monotonic() - min(self._since.values())) * 1e6)
