"""Time-of-use tariff: which band applies when (plant-local), and the cost of energy by band.

Each plant-local day starts flat; the daily windows are painted over it, then on critical-peak days (every day of
the critical months, plus listed dates) the critical windows are painted on top. The default is the Guangdong
tariff documented in ``datafactory.config.analytics.Tariff.source``.
"""

from __future__ import annotations

import itertools

import pandas as pd

from analytics.calendar import local_days, local_instant
from datafactory.config.analytics import Tariff, TouBand, clock_minutes

BANDS = [b.value for b in TouBand]


def is_critical_day(tariff: Tariff, day: pd.Timestamp | object) -> bool:
    month = getattr(day, "month", None)
    return month in tariff.critical_months or day in set(tariff.critical_dates)


def day_bands(tariff: Tariff, critical: bool) -> list[tuple[int, int, str]]:
    """(start minute, end minute, band) covering 0–1440 of one day, adjacent equal bands merged."""
    layers = [(0, 1440, TouBand.FLAT.value)]
    layers += [(clock_minutes(w.start), clock_minutes(w.end), w.band.value) for w in tariff.windows]
    if critical:
        layers += [(clock_minutes(w.start), clock_minutes(w.end), w.band.value) for w in tariff.critical_windows]
    cuts = sorted({0, 1440, *(s for s, _, _ in layers), *(e for _, e, _ in layers)})
    out: list[tuple[int, int, str]] = []
    for a, b in itertools.pairwise(cuts):
        band = next(band for s, e, band in reversed(layers) if s <= a and b <= e)
        if out and out[-1][2] == band:
            out[-1] = (out[-1][0], b, band)
        else:
            out.append((a, b, band))
    return out


def band_intervals(tariff: Tariff, tz: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``time``, ``time_end``, ``band`` covering [start, end) (whole local days, not clipped)."""
    rows = []
    for day in local_days(tz, start, end):
        for a, b, band in day_bands(tariff, is_critical_day(tariff, day)):
            t0, t1 = local_instant(day, a, tz), local_instant(day, b, tz)
            if t1 > start and t0 < end:
                rows.append((t0, t1, band))
    return pd.DataFrame(rows, columns=["time", "time_end", "band"])


def price_of(tariff: Tariff, band: str) -> float:
    return tariff.prices[TouBand(band)]
