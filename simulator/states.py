"""Raw machine state codes reported by the simulated PLCs (fixed by the shared semantics, see docs/simulator.md)."""

from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    RUNNING = 100
    REDUCED_SPEED = 110
    STARVED = 200
    BLOCKED = 210
    BREAK = 300
    NO_ORDER = 310
    PLANNED_MAINTENANCE = 320
    NO_SHIFT = 330
    SETUP = 400
    JAM = 500
    MECHANICAL_FAILURE = 510
    ELECTRICAL_FAILURE = 520
    TOOLING = 530
    QUALITY_ADJUSTMENT = 540


RUNNING_CODES = frozenset({100, 110})
DELAY_CODES = frozenset({200, 210})
PLANNED_CODES = frozenset({300, 310, 320, 330})
SETUP_CODES = frozenset({400})
DOWN_CODES = frozenset({500, 510, 520, 530, 540})

# Unplanned events that interrupt running: (code, weight, duration sampler name). Durations in seconds are drawn
# in machine.py; jams are mostly short (microstops), failures long.
EVENT_WEIGHTS: tuple[tuple[int, float], ...] = (
    (500, 0.50),
    (200, 0.09),
    (210, 0.07),
    (110, 0.09),
    (530, 0.05),
    (540, 0.05),
    (510, 0.04),
    (520, 0.03),
    (400, 0.04),
)
