"""A realistic plant signal mix for storage measurements (not a benchmark itself; used by ``storage`` and
``ingest``).

What a gateway with deadbands and report-by-exception actually stores, per 100 signals:

- 40 quantised analogue values at 1 Hz: temperatures at sensor resolution (0.1 °C), pressures (0.01 bar), a
  random walk that mostly repeats the last value;
- 20 production counters, one sample per increment (a cycle every 4–12 s);
- 20 discrete machine states (codes 0–5) held for minutes, reported on change plus a 60 s heartbeat;
- 10 energy meters (0.01 kWh) every 10 s;
- 10 setpoints changed a few times a day, 60 s heartbeat.

Rows are ``(signal_id, time, value, quality)`` in time order per signal, quality Good, deterministic by seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

Row = tuple[int, datetime, float, int]

KINDS = ("analogue",) * 40 + ("counter",) * 20 + ("state",) * 20 + ("meter",) * 10 + ("setpoint",) * 10


def kind_of(index: int) -> str:
    return KINDS[index % len(KINDS)]


def _analogue(rng: random.Random, start: datetime, seconds: int, index: int) -> Iterator[tuple[datetime, float]]:
    resolution = 0.1 if index % 2 == 0 else 0.01
    level = round(rng.uniform(20, 80) / resolution)
    for s in range(seconds):
        if rng.random() < 0.3:
            level += rng.choice((-1, 1))
        yield start + timedelta(seconds=s), round(level * resolution, 2)


def _counter(rng: random.Random, start: datetime, seconds: int) -> Iterator[tuple[datetime, float]]:
    count, t = rng.randrange(10_000), 0.0
    while t < seconds:
        t += rng.uniform(4, 12)
        count += 1
        yield start + timedelta(seconds=round(t, 3)), float(count)


def _held(rng: random.Random, start: datetime, seconds: int, values: tuple[float, ...],
          hold_s: tuple[int, int]) -> Iterator[tuple[datetime, float]]:
    value, next_change = rng.choice(values), rng.randint(*hold_s)
    for s in range(0, seconds):
        changed = s >= next_change
        if changed:
            value, next_change = rng.choice(values), s + rng.randint(*hold_s)
        if changed or s % 60 == 0:
            yield start + timedelta(seconds=s), value


def _meter(rng: random.Random, start: datetime, seconds: int) -> Iterator[tuple[datetime, float]]:
    kwh = round(rng.uniform(1e4, 1e6), 2)
    for s in range(0, seconds, 10):
        kwh = round(kwh + rng.uniform(0.0, 0.2), 2)
        yield start + timedelta(seconds=s), kwh


def series(index: int, start: datetime, seconds: int, seed: int = 7) -> Iterator[tuple[datetime, float]]:
    rng = random.Random(seed * 1_000_003 + index)
    kind = kind_of(index)
    if kind == "analogue":
        return _analogue(rng, start, seconds, index)
    if kind == "counter":
        return _counter(rng, start, seconds)
    if kind == "state":
        return _held(rng, start, seconds, (0.0, 1.0, 2.0, 3.0, 4.0, 5.0), (120, 1800))
    if kind == "meter":
        return _meter(rng, start, seconds)
    return _held(rng, start, seconds, (180.0, 185.0, 190.0, 200.5), (4 * 3600, 10 * 3600))


def rows(signal_ids: list[int], start: datetime, seconds: int, seed: int = 7) -> Iterator[Row]:
    for index, sig in enumerate(signal_ids):
        for t, value in series(index, start, seconds, seed):
            yield sig, t, value, 0
