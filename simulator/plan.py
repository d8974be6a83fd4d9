"""What the plant model plants in one machine (bearing fault, energy saving, meter reset, a short breakdown)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.states import State


@dataclass(frozen=True, slots=True)
class BearingFault:
    onset_us: int
    crossing_us: int  # when the running vibration trend reaches the threshold
    threshold: float
    steepness: float = 3.0  # exponential shape of the trend between onset and crossing


@dataclass(frozen=True, slots=True)
class MachinePlan:
    """Planted events for one machine, decided by the plant model."""

    saving_at_us: int | None = None
    saving_fraction: float = 0.10
    bearing: BearingFault | None = None
    energy_reset_at_us: int | None = None
    breakdown: PlantedBreakdown | None = None


@dataclass(frozen=True, slots=True)
class PlantedBreakdown:
    """A stop of a known code and length at a known instant: tests can time what follows (alerts) to the second."""

    at_us: int
    duration_us: int
    code: int = State.MECHANICAL_FAILURE
