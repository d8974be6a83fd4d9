"""Bearing degradation trajectories from the simulator, with their true failure times, for calibrating and
testing the RUL interval (analytics.rul_calibration) without a database.

One trajectory: a single machining centre (``position`` 1–4 sets its healthy vibration) in a plant of its own, four
to five healthy days, then the simulator's bearing degradation (exponential, 5–10 days to the threshold drawn from
the seed) up to its crossing. Samples count only while the machine runs (the simulator's true running intervals),
averaged per hour, and go through ``analytics.pdm.health`` exactly as the analytics run does. Each hourly check
with an RUL is one row: raw or calibrated (P10, P50, P90) and the true hours left.

    python -m tests.support.rul_trajectories calibrate    # the factors of datafactory.config.analytics
    python -m tests.support.rul_trajectories coverage     # their coverage on held-out seeds
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from analytics import pdm, rul_calibration
from datafactory.config.analytics import PdmConfig
from simulator.layout import SIG_VIBRATION, PlantLayout, machine_spec
from simulator.model import PlantModel, SimOptions
from simulator.states import RUNNING_CODES

THRESHOLD = 7.1
CALIBRATION_SEEDS = range(101, 131)  # never used by the tests
CALIBRATION_PERIODS = (70.0, 300.0)
HELD_OUT_SEEDS = range(1, 21)
EDGES_H = (12.0, 24.0, 48.0, 96.0)
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def trajectory(seed: int, *, period_s: float = 300.0, position: int | None = None) -> pd.DataFrame:
    """Hourly vibration buckets of one simulated degradation and its true crossing time (column ``crossing``)."""
    pos = position or 1 + seed % 4
    machine = machine_spec("machining", "line-1", "cnc-rul", pos)
    layout = PlantLayout((machine,), enterprise="rul", site="bench", timezone="Europe/Berlin")
    onset = START + timedelta(days=4.0 + float(np.random.default_rng(seed).uniform(0.0, 1.0)))
    options = SimOptions(seed=seed, analog_period_s=period_s, bearing_fault_cell=machine.path,
                         bearing_threshold=THRESHOLD, bearing_onset=onset)
    model = PlantModel(layout, options, start=START, end=onset + timedelta(days=11))
    t, v = [], []
    for ti, i, value in model.samples():
        if i == SIG_VIBRATION:
            t.append(ti)
            v.append(value)
    truth = model.truth()
    run = [s for s in truth.states if s.state_code in RUNNING_CODES]
    running = pd.DataFrame({"time": pd.to_datetime([s.start_us for s in run], unit="us", utc=True),
                            "time_end": pd.to_datetime([s.end_us for s in run], unit="us", utc=True)})
    samples = pd.DataFrame({"time": pd.to_datetime(t, unit="us", utc=True), "value": v})
    crossing = next(e.time_us for e in truth.events if e.kind == "bearing_failure_threshold")
    return pdm.bucket_means(samples, running, 60).assign(crossing=pd.Timestamp(crossing, unit="us", tz="UTC"))


def checks(seed: int, *, period_s: float = 300.0, config: PdmConfig | None = None) -> pd.DataFrame:
    """Every hourly RUL check before the crossing: ``rul_p10_h``, ``rul_p50_h``, ``rul_p90_h``, ``true_h``."""
    cfg = config or PdmConfig(failure_threshold=THRESHOLD)
    b = trajectory(seed, period_s=period_s)
    h = pdm.health(b.drop(columns="crossing"), cfg, zones=None, failure_threshold=THRESHOLD)
    true_h = (b["crossing"] - h["time_end"]).dt.total_seconds() / 3600.0
    keep = h["rul_p50_h"].notna() & (true_h > 0)
    out = h.loc[keep, ["time_end", "rul_p10_h", "rul_p50_h", "rul_p90_h"]].assign(true_h=true_h[keep])
    return out.assign(seed=seed, period_s=period_s)


def _checks(args: tuple[int, float, bool]) -> pd.DataFrame:
    seed, period, raw = args
    cfg = PdmConfig(failure_threshold=THRESHOLD, rul_calibration=[]) if raw else None
    return checks(seed, period_s=period, config=cfg)


def many(seeds: Iterable[int], periods: Iterable[float], *, raw: bool, workers: int = 2) -> pd.DataFrame:
    jobs = [(s, p, raw) for s in seeds for p in periods]
    if workers == 1:
        return pd.concat([_checks(j) for j in jobs], ignore_index=True)
    with ProcessPoolExecutor(workers) as pool:
        return pd.concat(list(pool.map(_checks, jobs)), ignore_index=True)


def coverage(c: pd.DataFrame) -> dict[str, float]:
    """Fraction of checks with P10 ≤ true ≤ P90, and of misses below P10 / above P90 (P90 NaN: unbounded)."""
    below, above = _misses(c)
    return {"coverage": float((~below & ~above).mean()), "below_p10": float(below.mean()),
            "above_p90": float(above.mean()), "checks": len(c)}


def _misses(c: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per check: the true RUL fell below P10, above P90 (P90 NaN: unbounded)."""
    p90 = c["rul_p90_h"].fillna(np.inf)
    return c["true_h"] < c["rul_p10_h"], c["true_h"] > p90


def main(argv: list[str]) -> None:
    if argv[:1] == ["calibrate"]:
        bins = rul_calibration.fit(many(CALIBRATION_SEEDS, CALIBRATION_PERIODS, raw=True), EDGES_H)
        print(json.dumps([[b.p50_below_h, b.lower, b.upper, b.checks] for b in bins]))
    elif argv[:1] == ["coverage"]:
        c = many(HELD_OUT_SEEDS, CALIBRATION_PERIODS, raw=False)
        below, above = _misses(c)
        # the mean of "inside" per trajectory is that trajectory's coverage (a plain groupby, no apply)
        per = (~below & ~above).groupby([c["seed"], c["period_s"]]).mean()
        print(json.dumps({**coverage(c), "per_trajectory_min": float(per.min()), "per_trajectory_max":
                          float(per.max()), "trajectories": len(per)}))
    else:
        raise SystemExit("usage: python -m tests.support.rul_trajectories calibrate|coverage")


if __name__ == "__main__":
    main(sys.argv[1:])
