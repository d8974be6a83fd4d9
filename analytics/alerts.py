"""Alert lifecycle: a degrading signal yields ONE alert that is raised, updated while it lasts, then cleared.

Pure state machine over health rows in time order. An alert is raised after ``raise_after`` consecutive drifting
buckets, updated on every further bucket while active (value, zone, RUL; severity is the worst of the episode),
and cleared after
``clear_after`` consecutive healthy buckets. ``open_alert`` carries an active alert across incremental runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from datafactory.config.analytics import PdmConfig

CRITICAL_RUL_H = 24.0
READ = ("time", "time_end", "drift", "value", "zone", "rul_p10_h", "rul_p50_h", "rul_p90_h", "baseline_mean", "ewma",
        "cusum_pos")


@dataclass
class Alert:
    kind: str
    time: pd.Timestamp
    updated_at: pd.Timestamp
    status: str = "raised"
    severity: str = "warning"
    update_count: int = 0
    time_end: pd.Timestamp | None = None
    message: str = ""
    value: float | None = None
    zone: str | None = None
    rul_p10_h: float | None = None
    rul_p50_h: float | None = None
    rul_p90_h: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # database id once stored


def _severity(row: Any) -> str:
    p50 = row.get("rul_p50_h")
    if row.get("zone") == "D" or (p50 is not None and pd.notna(p50) and p50 < CRITICAL_RUL_H):
        return "critical"
    return "warning"


def _num(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def lifecycle(
    health: pd.DataFrame, config: PdmConfig, *, label: str, open_alert: Alert | None = None, kind: str = "pdm_drift"
) -> list[Alert]:
    """Alerts touched by these health rows (the carried-over open alert first, if any), in time order."""
    alerts: list[Alert] = [open_alert] if open_alert is not None else []
    active = open_alert if open_alert is not None and open_alert.status != "cleared" else None
    run_drift = run_ok = 0
    # Only the columns read below, as Python lists zipped into a dict per bucket: pandas' to_dict of every health
    # column cost more than the state machine (the same Python values: floats, bools, Timestamps, text).
    read = [c for c in READ if c in health]
    ordered = health.sort_values("time")
    for values in zip(*(ordered[c].tolist() for c in read), strict=True):
        row = dict(zip(read, values, strict=True))
        if bool(row["drift"]):
            run_drift, run_ok = run_drift + 1, 0
        else:
            run_drift, run_ok = 0, run_ok + 1
        t = row["time_end"]
        if active is None and run_drift >= config.raise_after:
            active = Alert(kind=kind, time=t, updated_at=t)
            alerts.append(active)
        elif active is not None and run_ok >= config.clear_after:
            active.status, active.time_end, active.updated_at = "cleared", t, t
            active.message = f"{label}: back within its healthy baseline"
            active = None
            continue
        elif active is not None:
            active.status = "updated"
            active.update_count += 1
            active.updated_at = t
        if active is not None:
            active.value, active.zone = _num(row["value"]), row.get("zone")
            active.rul_p10_h, active.rul_p50_h, active.rul_p90_h = (
                _num(row.get("rul_p10_h")), _num(row.get("rul_p50_h")), _num(row.get("rul_p90_h")))
            # The stored severity is the worst the episode reached: a critical alert stays critical while it lasts.
            if _severity(row) == "critical":
                active.severity = "critical"
            rul = f"; RUL P50 {active.rul_p50_h:.0f} h" if active.rul_p50_h is not None else ""
            active.message = (f"{label}: {active.value:.2f} above healthy baseline {row['baseline_mean']:.2f}"
                              f" (zone {active.zone}){rul}")
            active.details = {"baseline_mean": _num(row["baseline_mean"]), "ewma": _num(row["ewma"]),
                              "cusum_pos": _num(row["cusum_pos"])}
    return alerts
