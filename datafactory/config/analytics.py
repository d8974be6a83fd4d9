"""Analytics section of the plant config: state taxonomy mapping, shift calendar, tariff, thresholds.

Owned by the analytics service; every field has a default so a plant config may omit the whole section. The
defaults follow docs/analytics.md: the shared state-code table, the demo plant's shift calendar (plant-local
time), the Guangdong time-of-use tariff and ISO 20816-style vibration zones.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from datafactory.config.base import StrictModel

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _validate_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"time of day {value!r} must be 'HH:MM' (00:00–24:00)")
    return value


ClockTime = Annotated[str, AfterValidator(_validate_hhmm)]


def clock_minutes(value: str) -> int:
    """Minutes after midnight of an 'HH:MM' clock time."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


class StateCategory(StrEnum):
    RUNNING = "running"
    REDUCED_SPEED = "reduced_speed"
    STARVED = "starved"
    BLOCKED = "blocked"
    SETUP = "setup"
    UNPLANNED_STOP = "unplanned_stop"
    PLANNED_BREAK = "planned_break"
    PLANNED_NO_ORDER = "planned_no_order"
    PLANNED_MAINTENANCE = "planned_maintenance"
    NO_SHIFT = "no_shift"
    UNKNOWN = "unknown"


class StateCode(StrictModel):
    code: int = Field(description="Raw state/reason code as the PLC reports it (signal meaning machine_state).")
    category: StateCategory = Field(description="Taxonomy class; fixes the ISO 22400-2 time element.")
    reason: str = Field(default="", description="Human label shown in the downtime Pareto.")


DEFAULT_STATE_CODES: tuple[tuple[int, StateCategory, str], ...] = (
    (100, StateCategory.RUNNING, "running"),
    (110, StateCategory.REDUCED_SPEED, "reduced speed"),
    (200, StateCategory.STARVED, "starved"),
    (210, StateCategory.BLOCKED, "blocked"),
    (300, StateCategory.PLANNED_BREAK, "break"),
    (310, StateCategory.PLANNED_NO_ORDER, "no order"),
    (320, StateCategory.PLANNED_MAINTENANCE, "planned maintenance"),
    (330, StateCategory.NO_SHIFT, "no shift"),
    (400, StateCategory.SETUP, "setup / changeover"),
    (500, StateCategory.UNPLANNED_STOP, "jam"),
    (510, StateCategory.UNPLANNED_STOP, "mechanical failure"),
    (520, StateCategory.UNPLANNED_STOP, "electrical failure"),
    (530, StateCategory.UNPLANNED_STOP, "tooling"),
    (540, StateCategory.UNPLANNED_STOP, "quality adjustment"),
)


def _default_state_codes() -> list[StateCode]:
    return [StateCode(code=c, category=k, reason=r) for c, k, r in DEFAULT_STATE_CODES]


class MicrostopConvention(StrEnum):
    AVAILABILITY = "availability"  # microstops are down time (ADOT): an availability loss
    PERFORMANCE = "performance"  # microstops count inside APT: a performance loss


class Shift(StrictModel):
    name: str = Field(description="Shift name shown in reports, e.g. 'day'.", min_length=1)
    start: ClockTime = Field(description="Start, plant-local 'HH:MM'.")
    end: ClockTime = Field(description="End, plant-local 'HH:MM'; at or before start means the next day.")


class Break(StrictModel):
    start: ClockTime = Field(description="Start, plant-local 'HH:MM'.")
    end: ClockTime = Field(description="End, plant-local 'HH:MM'.")
    name: str = Field(default="break", description="Label of the break.")


def _default_shifts() -> list[Shift]:
    return [Shift(name="day", start="08:00", end="20:00"), Shift(name="night", start="20:00", end="08:00")]


def _default_breaks() -> list[Break]:
    return [Break(start="12:00", end="12:30", name="lunch"), Break(start="00:00", end="00:30", name="midnight")]


class ShiftCalendar(StrictModel):
    shifts: list[Shift] = Field(
        default_factory=_default_shifts, description="Shifts, plant-local; a shift belongs to the day it starts."
    )
    breaks: list[Break] = Field(default_factory=_default_breaks, description="Daily planned breaks, plant-local.")
    non_working_weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [6],
        description="Weekdays without shifts (0 = Monday … 6 = Sunday); shifts starting on them do not exist.",
    )
    non_working_dates: list[date] = Field(
        default_factory=list, description="Plant-local dates without shifts (public holidays)."
    )


class TouBand(StrEnum):
    CRITICAL = "critical"
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"


class TouWindow(StrictModel):
    start: ClockTime = Field(description="Start, plant-local 'HH:MM'.")
    end: ClockTime = Field(description="End, plant-local 'HH:MM' (24:00 for midnight).")
    band: TouBand = Field(description="Band applying inside the window.")


def _gd_windows() -> list[TouWindow]:
    return [
        TouWindow(start="00:00", end="08:00", band=TouBand.VALLEY),
        TouWindow(start="10:00", end="12:00", band=TouBand.PEAK),
        TouWindow(start="14:00", end="19:00", band=TouBand.PEAK),
    ]


def _gd_critical_windows() -> list[TouWindow]:
    return [
        TouWindow(start="11:00", end="12:00", band=TouBand.CRITICAL),
        TouWindow(start="15:00", end="17:00", band=TouBand.CRITICAL),
    ]


def _gd_prices() -> dict[TouBand, float]:
    # Flat price is an illustrative 1–10 kV industrial energy price; peak = 1.7×, valley = 0.38×, critical = 1.25×
    # peak, the ratios of 粤发改价格〔2021〕331号. Replace with the grid company's monthly agency price list.
    return {TouBand.FLAT: 0.65, TouBand.PEAK: 1.105, TouBand.VALLEY: 0.247, TouBand.CRITICAL: 1.38125}


class Tariff(StrictModel):
    currency: str = Field(default="CNY", description="Currency of the prices.")
    prices: dict[TouBand, float] = Field(
        default_factory=_gd_prices, description="Energy price per kWh for each band (every band must be priced)."
    )
    windows: list[TouWindow] = Field(
        default_factory=_gd_windows, description="Daily band windows, plant-local; time outside them is flat."
    )
    critical_windows: list[TouWindow] = Field(
        default_factory=_gd_critical_windows,
        description="Windows that become critical peak on critical-peak days (override the daily windows).",
    )
    critical_months: list[Annotated[int, Field(ge=1, le=12)]] = Field(
        default_factory=lambda: [7, 8, 9], description="Months whose every day is a critical-peak day."
    )
    critical_dates: list[date] = Field(
        default_factory=list, description="Further critical-peak days (e.g. forecast max temperature ≥ 35 °C)."
    )
    source: str = Field(
        default="Guangdong TOU policy 粤发改价格〔2021〕331号: peak 10-12, 14-19; valley 0-8; critical 11-12, 15-17 "
        "in Jul-Sep; ratios peak 1.7, valley 0.38, critical 1.25×peak of flat",
        description="Where the tariff comes from (shown in reports).",
    )

    @model_validator(mode="after")
    def _all_bands_priced(self) -> Tariff:
        missing = [b.value for b in TouBand if b not in self.prices]
        if missing:
            raise ValueError(f"prices is missing band(s) {', '.join(missing)}")
        return self


class VibrationZones(StrictModel):
    ab: float = Field(gt=0, description="Zone A/B boundary, mm/s RMS.")
    bc: float = Field(gt=0, description="Zone B/C boundary (alarm), mm/s RMS.")
    cd: float = Field(gt=0, description="Zone C/D boundary (trip / failure threshold), mm/s RMS.")

    @model_validator(mode="after")
    def _ordered(self) -> VibrationZones:
        if not self.ab < self.bc < self.cd:
            raise ValueError(f"zone boundaries must increase: ab {self.ab} < bc {self.bc} < cd {self.cd}")
        return self


def _default_zones() -> dict[str, VibrationZones]:
    # ISO 20816-3 (ex 10816-3) evaluation zones, velocity RMS 10–1000 Hz.
    return {
        "iso20816_group1_rigid": VibrationZones(ab=2.3, bc=4.5, cd=7.1),
        "iso20816_group1_flexible": VibrationZones(ab=3.5, bc=7.1, cd=11.0),
        "iso20816_group2_rigid": VibrationZones(ab=1.4, bc=2.8, cd=4.5),
        "iso20816_group2_flexible": VibrationZones(ab=2.3, bc=4.5, cd=7.1),
        "generic": VibrationZones(ab=2.3, bc=4.5, cd=7.1),
    }


class MonitoredMeaning(StrEnum):
    VIBRATION = "vibration"
    TEMPERATURE = "temperature"


class RulCalibrationBin(StrictModel):
    p50_below_h: float | None = Field(
        default=None, gt=0, description="Upper edge (hours) of this bin of predicted P50; None = the open last bin."
    )
    lower: float = Field(default=1.0, ge=0, description="Exponent on P10ʳ/P50 (the raw lower half-width, log time).")
    upper: float = Field(default=1.0, ge=0, description="Exponent on P90ʳ/P50 (the raw upper half-width, log time).")
    checks: int = Field(default=0, ge=0, description="Calibration checks the factors come from (for the record).")


# Fitted by `python -m tests.support.rul_trajectories calibrate` on the simulator's bearing model (seeds 101–130,
# analog periods 70 s and 300 s); the coverage on held-out seeds is in docs/analytics.md. A plant with its own
# run-to-failure histories refits these with analytics.rul_calibration.fit.
SIMULATOR_RUL_CALIBRATION: tuple[tuple[float | None, float, float, int], ...] = (
    (12.0, 0.216, 0.0, 549),
    (24.0, 0.289, 0.036, 606),
    (48.0, 0.34, 0.278, 1385),
    (96.0, 0.535, 0.587, 2486),
    (None, 0.935, 0.274, 2168),
)


def _default_rul_calibration() -> list[RulCalibrationBin]:
    return [RulCalibrationBin(p50_below_h=edge, lower=lo, upper=hi, checks=n)
            for edge, lo, hi, n in SIMULATOR_RUL_CALIBRATION]


class PdmConfig(StrictModel):
    monitored: list[MonitoredMeaning] = Field(
        default_factory=lambda: [MonitoredMeaning.VIBRATION],
        description="Signal meanings watched for drift (zones, failure threshold and RUL apply to vibration).",
    )
    bucket_minutes: int = Field(default=60, ge=1, le=1440, description="Health is evaluated on bucket means.")
    baseline_hours: float = Field(
        default=72, gt=0, description="Healthy baseline: the first this-many hours of a signal's data."
    )
    ewma_lambda: float = Field(default=0.2, gt=0, le=1, description="EWMA smoothing weight λ.")
    ewma_l: float = Field(default=3.0, gt=0, description="EWMA control limit width L (in σ of the EWMA).")
    cusum_k: float = Field(default=0.5, ge=0, description="Tabular CUSUM reference value k, in baseline σ.")
    cusum_h: float = Field(default=5.0, gt=0, description="Tabular CUSUM decision interval h, in baseline σ.")
    min_sd_fraction: float = Field(
        default=0.02, ge=0, description="Floor of the baseline σ as a fraction of the baseline mean (flat signals)."
    )
    raise_after: int = Field(default=3, ge=1, description="Consecutive drifting buckets before an alert is raised.")
    clear_after: int = Field(default=6, ge=1, description="Consecutive healthy buckets before an alert is cleared.")
    trend_hours: float = Field(default=240, gt=0, description="Longest window of the trend regression used for RUL.")
    rul_max_hours: float = Field(default=24 * 90, gt=0, description="RUL beyond this is reported as NULL.")
    rul_calibration: list[RulCalibrationBin] = Field(
        default_factory=_default_rul_calibration,
        description="Conformal factors of the RUL interval by predicted P50 (ascending bins); empty = raw interval.",
    )

    @model_validator(mode="after")
    def _ascending_rul_bins(self) -> PdmConfig:
        edges = [b.p50_below_h for b in self.rul_calibration]
        if edges and (edges[-1] is not None or None in edges[:-1] or edges[:-1] != sorted(edges[:-1])):  # type: ignore[type-var]
            raise ValueError("pdm.rul_calibration: bins must ascend by p50_below_h, the last one open (null)")
        return self
    failure_threshold: float | None = Field(
        default=None, gt=0, description="Failure threshold of vibration (mm/s); None = the failure_zone boundary."
    )
    failure_zone: str = Field(
        default="cd", pattern="^(bc|cd)$", description="Zone boundary taken as the failure threshold (bc or cd)."
    )
    zones: dict[str, VibrationZones] = Field(
        default_factory=_default_zones, description="Vibration zones by cell attribute machine_class."
    )


class BaselineConfig(StrictModel):
    baseline_from: date | None = Field(default=None, description="First day of the baseline; None = first data day.")
    baseline_to: date | None = Field(
        default=None, description="First day of the reporting period; None = baseline_from + baseline_days."
    )
    baseline_days: int = Field(default=28, ge=3, description="Length of the baseline when baseline_to is not set.")
    degree_day_base_c: float = Field(default=18.0, description="Base temperature for heating/cooling degree-days.")
    cv_rmse_max: float = Field(
        default=0.20, gt=0, description="ASHRAE Guideline 14 limit on CV(RMSE) of the baseline model (fraction)."
    )
    nmbe_max: float = Field(
        default=0.005, gt=0, description="Limit on |NMBE| of the baseline model (fraction; see docs/analytics.md)."
    )
    prediction_interval: float = Field(default=0.95, gt=0, lt=1, description="Coverage of the prediction interval.")


class AnalyticsConfig(StrictModel):
    """How raw signals become OEE, energy and maintenance results."""

    state_codes: list[StateCode] = Field(
        default_factory=_default_state_codes, description="Raw machine_state code → taxonomy class and reason."
    )
    microstop_threshold_s: float = Field(
        default=120, ge=0, description="Unplanned stops shorter than this are microstops."
    )
    microstops: MicrostopConvention = Field(
        default=MicrostopConvention.AVAILABILITY,
        description="Charge microstops to availability (ADOT, default) or performance (inside APT).",
    )
    calendar: ShiftCalendar = Field(default_factory=ShiftCalendar, description="Shift calendar in plant-local time.")
    tariff: Tariff = Field(default_factory=Tariff, description="Time-of-use electricity tariff.")
    kgce_per_kwh: float = Field(
        default=0.1229, gt=0, description="kg of coal equivalent per kWh of electricity (GB/T 2589 equivalent value)."
    )
    pdm: PdmConfig = Field(default_factory=PdmConfig, description="Predictive maintenance parameters.")
    baseline: BaselineConfig = Field(default_factory=BaselineConfig, description="ISO 50006 energy baseline.")

    @model_validator(mode="after")
    def _unique_codes(self) -> AnalyticsConfig:
        codes = [s.code for s in self.state_codes]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"state_codes lists code(s) {dupes} more than once")
        return self
