"""What a signal means. Analytics, dashboards and the bureau select signals by meaning, never by name."""

from __future__ import annotations

from enum import StrEnum


class Meaning(StrEnum):
    MACHINE_STATE = "machine_state"  # integer state/reason code, mapped by analytics' state taxonomy
    GOOD_COUNT = "good_count"  # cumulative counter of good units
    TOTAL_COUNT = "total_count"  # cumulative counter of all units produced
    REJECT_COUNT = "reject_count"  # cumulative counter of rejected units
    ENERGY_KWH = "energy_kwh"  # cumulative active-energy meter, kWh
    POWER_KW = "power_kw"  # instantaneous active power, kW
    VIBRATION = "vibration"  # vibration velocity RMS, mm/s
    TEMPERATURE = "temperature"  # °C
    PRODUCT = "product"  # integer product code currently produced
    CYCLE_TIME = "cycle_time"  # seconds per unit as reported by the machine
    GENERIC = "generic"


COUNTERS = frozenset({Meaning.GOOD_COUNT, Meaning.TOTAL_COUNT, Meaning.REJECT_COUNT, Meaning.ENERGY_KWH})
