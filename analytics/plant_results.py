"""Results over a plant's history: predictive-maintenance health with the alert lifecycle, and the ISO 50006
energy baseline. Both are cheap to recompute (hourly buckets, daily rows) so they are refreshed on every run."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import psycopg

from analytics import pdm, store, tables
from analytics.alerts import lifecycle
from analytics.baseline import BaselineError, complete_days, fit_baseline
from datafactory.config.analytics import AnalyticsConfig
from datafactory.contract.meanings import Meaning

log = logging.getLogger(__name__)
RUL_COLUMNS = ["rul_p10_h", "rul_p50_h", "rul_p90_h"]
DRIVERS = ["production", "ideal_production_h"]


def pdm_results(
    conn: psycopg.Connection,
    plant: store.Plant,
    cfg: AnalyticsConfig,
    *,
    signals: pd.DataFrame,
    machine_classes: dict[int, str],
    running: dict[int, pd.DataFrame],
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> dict[str, int]:
    """Health of monitored signals (sampled only while their machine runs) from ``start`` on, and their alerts.

    Buckets before ``start`` come from the stored ``pdm_health`` (their values and RUL are final), so a run reads
    only new samples; EWMA and CUSUM are recomputed over the whole history, which is a few thousand buckets.
    """
    wanted = [m.value for m in cfg.pdm.monitored]
    monitored = signals[signals["meaning"].isin(wanted) & signals["cell_id"].isin(list(running))]
    written = {"pdm_health": 0, "alerts": 0}
    if monitored.empty:
        return written
    cell_of = dict(zip(monitored["signal_id"].astype(int), monitored["cell_id"].astype(int), strict=True))
    meaning_of = dict(zip(monitored["signal_id"].astype(int), monitored["meaning"], strict=True))
    raw = store.samples(conn, list(cell_of), start, end, previous=False)
    prior = store.pdm_history(conn, plant.id, start)
    fresh: dict[int, pd.DataFrame] = {}  # the new health rows per signal
    for sid, cid in cell_of.items():
        new = pdm.bucket_means(raw[raw["signal_id"] == sid], running[cid], cfg.pdm.bucket_minutes)
        new = new[(new["time"] >= start) & (new["time"] < end)]
        old = prior[prior["signal_id"] == sid]
        buckets = pd.concat([old[["time", "time_end", "value"]], new], ignore_index=True)
        if buckets.empty:
            continue
        zones, threshold = None, None
        if meaning_of[sid] == Meaning.VIBRATION.value:
            zones = cfg.pdm.zones.get(machine_classes.get(cid, "generic")) or cfg.pdm.zones.get("generic")
            threshold = cfg.pdm.failure_threshold or (getattr(zones, cfg.pdm.failure_zone) if zones else None)
        h = pdm.health(buckets, cfg.pdm, zones=zones, failure_threshold=threshold, rul_from=start)
        if h["baseline_mean"].isna().all():
            continue
        known = (h["time"] < start).to_numpy()
        if known.any():
            for col in RUL_COLUMNS:
                h.loc[known, col] = old[col].to_numpy(dtype=float)[: int(known.sum())]
        fresh[sid] = h[~known].assign(plant_id=plant.id, cell_id=cid, signal_id=sid)
        episodes = lifecycle(h, cfg.pdm, label=f"signal {sid} (cell {cid}) {meaning_of[sid]}")
        alerts = [{k: getattr(a, k) for k in store.ALERT_COLUMNS} for a in episodes]
        store.sync_alerts(conn, plant_id=plant.id, cell_id=cid, signal_id=sid, kind="pdm_drift", alerts=alerts)
        written["alerts"] += len(episodes)
    if fresh:  # one DELETE and one COPY for every signal with health rows, not one of each per signal
        rows = pd.concat([f for f in fresh.values() if len(f)] or [pd.DataFrame()], ignore_index=True)
        written["pdm_health"] = tables.PDM_HEALTH_TABLE.write(
            conn, rows, where="signal_id = ANY(%s) AND time >= %s", params=(list(fresh), start))
    return written


def baseline_results(
    conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, *, machine_cells: set[int],
    data_start: pd.Timestamp | None, data_end: pd.Timestamp, ambient_signals: list[int],
) -> dict[str, int]:
    """Plant energy — utility meters (cells without a machine_state signal), else all cells — against ideal
    production hours (Σ ideal cycle time × units: a machine draws its power per hour of running, not per unit), and
    heating/cooling degree-days when an ambient temperature signal (one on a cell that is not a machine) exists, per
    plant-local day, for the complete days between ``data_start`` (the first sample) and ``data_end``."""
    e = store.day_energy(conn, plant.id)
    if e.empty:
        return {}
    meters = e[~e["cell_id"].isin(list(machine_cells))]
    e = meters if len(meters) else e
    daily = e.groupby(["time", "time_end"], as_index=False)["kwh"].sum()
    daily = daily.merge(store.day_production(conn, plant.id), on="time", how="left")
    daily[DRIVERS] = daily[DRIVERS].fillna(0.0)
    if ambient_signals:
        temps = store.daily_means(conn, ambient_signals, plant.timezone, daily["time"].min(), daily["time_end"].max())
        daily = daily.merge(temps.rename(columns={"value": "temperature"}), on="time", how="left")
    days = complete_days(daily, data_start, data_end)
    if days.empty:
        return {}
    bc = cfg.baseline
    first = _local_day(bc.baseline_from, plant.timezone) if bc.baseline_from else days["time"].min()
    days = days[days["time"] >= first]
    reporting = (_local_day(bc.baseline_to, plant.timezone) if bc.baseline_to
                 else first + pd.Timedelta(days=bc.baseline_days))
    try:
        result = fit_baseline(days, reporting, bc, driver="ideal_production_h")
    except BaselineError as err:
        log.info("plant %s: no energy baseline yet: %s", plant.id, err)
        return {}
    d = result.daily.rename(columns={"kwh": "actual_kwh"}).assign(plant_id=plant.id)
    row: dict[str, Any] = {
        "plant_id": plant.id, "time": first, "time_end": reporting, "reporting_end": days["time_end"].max(),
        "formula": result.formula, "params": result.params, "pvalues": result.pvalues, "n_days": result.n_days,
        "r2": result.r2, "cv_rmse": result.cv_rmse, "nmbe": result.nmbe, "meets_ashrae14": result.meets_ashrae14,
        "saving_fraction": result.saving_fraction, "saving_kwh": result.saving_kwh,
        "saving_half_width": result.saving_half_width, "saving_fsu": result.saving_fsu,
        "saving_significant": result.saving_significant, "confidence": bc.prediction_interval,
    }
    where, params = "plant_id = %s", (plant.id,)
    return {
        "energy_baseline_daily": tables.BASELINE_DAILY_TABLE.write(conn, d, where=where, params=params),
        "energy_baseline": tables.BASELINE_TABLE.write(conn, pd.DataFrame([row]), where=where, params=params),
    }


def _local_day(day: Any, tz: str) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize(tz).tz_convert("UTC")
