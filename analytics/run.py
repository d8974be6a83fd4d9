"""The analytics runner: for one plant and window, read samples, compute every result and replace its rows.

Window alignment: the window start moves back to the start of its hour and of any shift it falls in, so hour and
shift rows are always computed from whole periods; day and month rows are then summed from the stored hour rows
(hours nest in plant-local days and months). Intervals are computed up to the plant's newest sample, never past it:
time after the newest sample is not yet known. ``run`` goes from the watermark (or from the earliest time a late
write touched) to the newest sample; ``backfill`` recomputes an explicit range.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psycopg

from analytics import calendar, counters, energy, oee, pdm, store, tariff
from analytics.alerts import Alert, lifecycle
from analytics.baseline import BaselineError, fit_baseline
from analytics.states import INTERVAL_COLUMNS, state_intervals
from datafactory.config.analytics import AnalyticsConfig
from datafactory.contract.meanings import Meaning

log = logging.getLogger(__name__)
JOB = "main"
OEE_COLUMNS = ["plant_id", "cell_id", "period", "time", "time_end", "shift_name", *oee.SUM_COLUMNS,
               "ideal_cycle_time_s", *oee.RATIO_COLUMNS]
ENERGY_COLUMNS = ["plant_id", "cell_id", "period", "time", "time_end", "shift_name", "kwh", "idle_kwh",
                  *(f"kwh_{b}" for b in tariff.BANDS), "cost", *(f"cost_{b}" for b in tariff.BANDS), "peak_kw_15min",
                  "avg_kw", "load_factor", "tce", "good_count", "sec_kwh_per_unit", "source"]
PDM_COLUMNS = ["plant_id", "cell_id", "signal_id", "time", "time_end", "value", "baseline_mean", "baseline_sd", "ewma",
               "ewma_ucl", "ewma_lcl", "cusum_pos", "cusum_neg", "cusum_h", "we_rule", "drift", "zone",
               "failure_threshold", "rul_p10_h", "rul_p50_h", "rul_p90_h"]
MONITORED = (Meaning.VIBRATION,)


@dataclass
class RunSummary:
    plant_id: int
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


def aligned_start(cfg: AnalyticsConfig, tz: str, start: pd.Timestamp) -> pd.Timestamp:
    hour = start.tz_convert(tz).floor("h", ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    shifts = calendar.shift_periods(cfg.calendar, tz, start, start + pd.Timedelta(microseconds=1))
    return min([hour, *shifts["time"]])


def _signal_ids(sigs: pd.DataFrame, meaning: Meaning) -> dict[int, int]:
    """cell_id → signal_id for a meaning (the first signal when a cell has several)."""
    sel = sigs[sigs["meaning"] == meaning.value].drop_duplicates("cell_id")
    return dict(zip(sel["cell_id"].astype(int), sel["signal_id"].astype(int), strict=True))


def run_window(
    conn: psycopg.Connection,
    plant: store.Plant,
    start: pd.Timestamp,
    end: pd.Timestamp,
    cfg: AnalyticsConfig | None = None,
) -> RunSummary:
    """Compute and store everything for [start, end) of one plant, in one transaction."""
    cfg = cfg or store.analytics_config(conn, plant.id)
    tz = plant.timezone
    summary = RunSummary(plant.id)
    sigs = store.signals(conn, plant.id)
    cell_frame = store.cells(conn, plant.id)
    data_end = store.latest_sample_time(conn, sigs["signal_id"].astype(int).tolist()) if len(sigs) else None
    if data_end is None:
        return summary
    data_end += pd.Timedelta(microseconds=1)
    end = min(end, data_end)
    a = aligned_start(cfg, tz, start)
    if end <= a:
        return summary
    summary.start, summary.end = a, end
    hours = calendar.calendar_periods("hour", tz, a, end)
    hours = hours[hours["time"] >= a].reset_index(drop=True)
    shifts = calendar.shift_periods(cfg.calendar, tz, a, end)
    shifts = shifts[shifts["time"] >= a].reset_index(drop=True)
    cover_end = min(max([hours["time_end"].max(), *shifts["time_end"]]), data_end)
    bands = tariff.band_intervals(cfg.tariff, tz, a, cover_end)
    lookahead = pd.Timedelta(seconds=cfg.microstop_threshold_s)

    state_ids = _signal_ids(sigs, Meaning.MACHINE_STATE)
    ids = {m: _signal_ids(sigs, m) for m in (Meaning.TOTAL_COUNT, Meaning.GOOD_COUNT, Meaning.REJECT_COUNT,
                                               Meaning.ENERGY_KWH, Meaning.POWER_KW)}
    wanted = [*state_ids.values(), *(s for d in ids.values() for s in d.values())]
    raw = store.samples(conn, wanted, a, cover_end + lookahead)
    by_signal = {int(k): g for k, g in raw.groupby("signal_id")}
    empty = raw.iloc[:0]

    def get(signal_id: int | None) -> pd.DataFrame:
        return by_signal.get(signal_id, empty) if signal_id is not None else empty

    all_intervals, oee_rows, energy_rows, downtime_rows = [], [], [], []
    periods = pd.concat([hours.assign(period="hour"), shifts.assign(period="shift")], ignore_index=True)
    for cell in cell_frame.itertuples(index=False):
        cid = int(cell.cell_id)
        attrs = cell.attributes or {}
        intervals = pd.DataFrame(columns=[*INTERVAL_COLUMNS, "continued"])
        if cid in state_ids:
            intervals = state_intervals(get(state_ids[cid]), a, cover_end, cfg)
            all_intervals.append(intervals.assign(cell_id=cid))
            count_incs = {m.value: counters.increments(get(ids[m].get(cid)))
                          for m in (Meaning.TOTAL_COUNT, Meaning.GOOD_COUNT, Meaning.REJECT_COUNT) if cid in ids[m]}
            ict = attrs.get("ideal_cycle_time_s")
            for name, per in (("hour", hours), ("shift", shifts)):
                if per.empty:
                    continue
                rows = oee.machine_oee(intervals, per, count_incs, float(ict) if ict else None)
                oee_rows.append(rows.assign(cell_id=cid, period=name))
                downtime_rows.append(downtime(intervals, per).assign(cell_id=cid, period=name))
        else:
            count_incs = {}
        good = count_incs.get("good_count")
        if good is None and "total_count" in count_incs:
            good = count_incs["total_count"]
        segments, source = _energy_segments(get(ids[Meaning.ENERGY_KWH].get(cid)),
                                            get(ids[Meaning.POWER_KW].get(cid)), cover_end)
        if segments is not None:
            for name, per in (("hour", hours), ("shift", shifts)):
                if per.empty:
                    continue
                rows = energy.cell_energy(segments, per, intervals, bands, cfg.tariff, cfg.kgce_per_kwh, good)
                energy_rows.append(rows.assign(cell_id=cid, period=name, source=source))

    window = "plant_id = %s AND time >= %s AND time < %s"
    intervals_all = pd.concat(all_intervals, ignore_index=True) if all_intervals else None
    store.trim_intervals(conn, plant.id, a)
    if intervals_all is not None:
        intervals_all["plant_id"] = plant.id
        summary.add("state_intervals", store.replace(
            conn, "state_intervals", intervals_all, ["plant_id", "cell_id", *INTERVAL_COLUMNS], window,
            (plant.id, a, cover_end)))
    for period in ("hour", "shift"):
        pw = window + " AND period = %s"
        o = _concat([r for r in oee_rows if r["period"].iloc[0] == period] if oee_rows else [], plant.id)
        summary.add("oee", store.replace(conn, "oee", o, OEE_COLUMNS, pw, (plant.id, a, end, period)))
        d = _concat([r for r in downtime_rows if len(r) and r["period"].iloc[0] == period], plant.id)
        summary.add("downtime", store.replace(conn, "downtime", d, DOWNTIME_COLUMNS, pw, (plant.id, a, end, period)))
        e = _concat([r for r in energy_rows if r["period"].iloc[0] == period] if energy_rows else [], plant.id)
        summary.add("energy", store.replace(conn, "energy", e, ENERGY_COLUMNS, pw, (plant.id, a, end, period)))
    for period in ("day", "month"):
        _roll_up(conn, plant, cfg, period, a, end, summary)
    running = {int(cid): g[g["category"] == "running"].reset_index(drop=True)
               for cid, g in (intervals_all.groupby("cell_id") if intervals_all is not None else [])}
    _pdm(conn, plant, cfg, sigs, cell_frame, running, a, cover_end, summary)
    _baseline(conn, plant, cfg, sigs, data_end, summary)
    return summary


DOWNTIME_COLUMNS = ["plant_id", "cell_id", "period", "time", "time_end", "state_code", "category", "reason",
                    "time_element", "stops", "duration_s", "microstops", "microstop_s"]


def downtime(intervals: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """Loss time inside planned busy time per period and raw code: the Pareto."""
    from analytics.intervals import overlap

    losses = intervals[intervals["time_element"].isin(["adot", "asut", "adet"]) | intervals["microstop"]]
    losses = losses.reset_index(drop=True)
    ov = overlap(losses, periods.reset_index(drop=True))
    if ov.empty:
        return pd.DataFrame(columns=DOWNTIME_COLUMNS[1:])
    iv = losses.iloc[ov["ia"]].reset_index(drop=True)
    fresh = (ov["start"].to_numpy() == iv["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)) & ~iv[
        "continued"].to_numpy(dtype=bool)
    frame = pd.DataFrame({
        "time": periods["time"].array[ov["ib"]], "time_end": periods["time_end"].array[ov["ib"]],
        "state_code": iv["state_code"].astype(int), "category": iv["category"], "reason": iv["reason"],
        "time_element": iv["time_element"], "stops": fresh.astype(int), "duration_s": ov["seconds"],
        "microstops": (fresh & iv["microstop"].to_numpy(dtype=bool)).astype(int),
        "microstop_s": ov["seconds"] * iv["microstop"].to_numpy(dtype=float),
    })
    keys = ["time", "time_end", "state_code", "category", "reason", "time_element"]
    return frame.groupby(keys, as_index=False)[["stops", "duration_s", "microstops", "microstop_s"]].sum()


def _concat(frames: list[pd.DataFrame], plant_id: int) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["plant_id"] = plant_id
    return out


def _energy_segments(meter: pd.DataFrame, power: pd.DataFrame, end: pd.Timestamp) -> tuple[pd.DataFrame | None, str]:
    if len(meter) >= 2:
        return energy.meter_segments(meter), "meter"
    if len(power) >= 1:
        return energy.power_segments(power, end), "power"
    return None, ""


def _roll_up(conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, period: str, a: pd.Timestamp,
             end: pd.Timestamp, summary: RunSummary) -> None:
    """Day/month rows = sums of the stored hour rows of the days/months the window touched."""
    per = calendar.calendar_periods(period, plant.timezone, a, end)
    lo, hi = per["time"].min(), per["time_end"].max()
    o = store.table_rows(conn, f"SELECT cell_id, time, time_end, {', '.join(oee.SUM_COLUMNS)}, ideal_cycle_time_s"
                         " FROM oee WHERE plant_id = %s AND period = 'hour' AND time >= %s AND time < %s",
                         (plant.id, lo, hi), ["cell_id", "time", "time_end", *oee.SUM_COLUMNS, "ideal_cycle_time_s"])
    where = "plant_id = %s AND period = %s AND time >= %s AND time < %s"
    if len(o):
        o = oee.assign_periods(o, per)
        ict = o.groupby("cell_id")["ideal_cycle_time_s"].first()
        rolled = oee.rollup(o, ["cell_id", "time", "shift_name"])
        rolled["ideal_cycle_time_s"] = rolled["cell_id"].map(ict)
        rolled = rolled.assign(plant_id=plant.id, period=period)
    else:
        rolled = pd.DataFrame()
    summary.add("oee", store.replace(conn, "oee", rolled, OEE_COLUMNS, where, (plant.id, period, lo, hi)))
    d = store.table_rows(conn, "SELECT cell_id, time, time_end, state_code, category, reason, time_element, stops,"
                         " duration_s, microstops, microstop_s FROM downtime WHERE plant_id = %s AND period = 'hour'"
                         " AND time >= %s AND time < %s", (plant.id, lo, hi), ["cell_id", *DOWNTIME_COLUMNS[3:]])
    if len(d):
        d = oee.assign_periods(d, per)
        keys = ["cell_id", "time", "time_end", "state_code", "category", "reason", "time_element"]
        d = d.groupby(keys, as_index=False)[["stops", "duration_s", "microstops", "microstop_s"]].sum()
        d = d.assign(plant_id=plant.id, period=period)
    summary.add("downtime", store.replace(conn, "downtime", d, DOWNTIME_COLUMNS, where, (plant.id, period, lo, hi)))
    cols = ["cell_id", "time", "time_end", *energy.ADDITIVE, "peak_kw_15min", "source"]
    e = store.table_rows(conn, f"SELECT {', '.join(cols)} FROM energy WHERE plant_id = %s AND period = 'hour'"
                         " AND time >= %s AND time < %s", (plant.id, lo, hi), cols)
    if len(e):
        e = oee.assign_periods(e, per)
        src = e.groupby("cell_id")["source"].first()
        e = energy.rollup_energy(e, ["cell_id", "time", "shift_name"], cfg.tariff, cfg.kgce_per_kwh)
        e = e.assign(plant_id=plant.id, period=period, source=e["cell_id"].map(src))
    summary.add("energy", store.replace(conn, "energy", e, ENERGY_COLUMNS, where, (plant.id, period, lo, hi)))


def _pdm(conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, sigs: pd.DataFrame,
         cell_frame: pd.DataFrame, running: dict[int, pd.DataFrame], a: pd.Timestamp, end: pd.Timestamp,
         summary: RunSummary) -> None:
    """Health of monitored signals (only while their machine runs) and the alert lifecycle."""
    monitored = sigs[sigs["meaning"].isin([m.value for m in MONITORED]) & sigs["cell_id"].isin(list(running))]
    if monitored.empty:
        return
    minutes = cfg.pdm.bucket_minutes
    raw = store.samples(conn, monitored["signal_id"].astype(int).tolist(), a, end, previous=False)
    parts = [pdm.bucket_means(g, running[int(monitored.loc[monitored["signal_id"] == sid, "cell_id"].iloc[0])],
                              minutes).assign(signal_id=int(sid)) for sid, g in raw.groupby("signal_id")]
    new = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["signal_id", "time", "time_end",
                                                                                   "value"])
    new = new[(new["time"] >= a) & (new["time"] < end)]
    classes = {int(c.cell_id): (c.attributes or {}).get("machine_class", "generic")
               for c in cell_frame.itertuples(index=False)}
    prior_cols = ["signal_id", "time", "time_end", "value", "rul_p10_h", "rul_p50_h", "rul_p90_h"]
    prior = store.table_rows(conn, f"SELECT {', '.join(prior_cols)} FROM pdm_health WHERE plant_id = %s"
                             " AND time < %s ORDER BY signal_id, time", (plant.id, a), prior_cols)
    for sig in monitored.itertuples(index=False):
        sid, cid = int(sig.signal_id), int(sig.cell_id)
        old = prior[prior["signal_id"] == sid]
        buckets = pd.concat([old[["time", "time_end", "value"]], new[new["signal_id"] == sid][
            ["time", "time_end", "value"]]], ignore_index=True)
        if buckets.empty:
            continue
        zones = cfg.pdm.zones.get(classes.get(cid, "generic")) or cfg.pdm.zones.get("generic")
        threshold = cfg.pdm.failure_threshold or (getattr(zones, cfg.pdm.failure_zone) if zones else None)
        h = pdm.health(buckets, cfg.pdm, zones, threshold, rul_from=a)
        if "baseline_mean" not in h or h["baseline_mean"].isna().all():
            continue
        if len(old):
            known = h["time"] < a
            for col in ("rul_p10_h", "rul_p50_h", "rul_p90_h"):
                h.loc[known, col] = old[col].to_numpy()[: int(known.sum())]
        rows = h[h["time"] >= a].assign(plant_id=plant.id, cell_id=cid, signal_id=sid)
        summary.add("pdm_health", store.replace(conn, "pdm_health", rows, PDM_COLUMNS,
                                                "signal_id = %s AND time >= %s", (sid, a)))
        episodes = lifecycle(h, cfg.pdm, label=f"cell {cid} vibration")
        store.sync_alerts(conn, plant.id, cid, sid, "pdm_drift", [_alert_dict(x) for x in episodes])
        summary.add("alerts", len(episodes))


def _alert_dict(alert: Alert) -> dict[str, object]:
    return {k: getattr(alert, k) for k in store.ALERT_COLUMNS}


def _baseline(conn: psycopg.Connection, plant: store.Plant, cfg: AnalyticsConfig, sigs: pd.DataFrame,
              data_end: pd.Timestamp, summary: RunSummary) -> None:
    """Plant energy (utility meters — cells without a machine_state — else all cells) against good units."""
    machine_cells = set(sigs.loc[sigs["meaning"] == Meaning.MACHINE_STATE.value, "cell_id"].astype(int))
    e = store.table_rows(conn, "SELECT cell_id, time, time_end, kwh FROM energy WHERE plant_id = %s AND period = 'day'"
                         " ORDER BY time", (plant.id,), ["cell_id", "time", "time_end", "kwh"])
    o = store.table_rows(conn, "SELECT time, sum(good_count) FROM oee WHERE plant_id = %s AND period = 'day'"
                         " GROUP BY time", (plant.id,), ["time", "production"])
    if e.empty:
        return
    meters = e[~e["cell_id"].isin(machine_cells)]
    e = meters if len(meters) else e
    daily = e.groupby(["time", "time_end"], as_index=False)["kwh"].sum().merge(o, on="time", how="left")
    daily["production"] = daily["production"].fillna(0.0)
    daily = daily[daily["time_end"] <= data_end].reset_index(drop=True)
    if daily.empty:
        return
    bc = cfg.baseline
    first = pd.Timestamp(bc.baseline_from, tz=plant.timezone).tz_convert("UTC") if bc.baseline_from else daily[
        "time"].min()
    daily = daily[daily["time"] >= first]
    rep = (pd.Timestamp(bc.baseline_to, tz=plant.timezone).tz_convert("UTC") if bc.baseline_to
           else first + pd.Timedelta(days=bc.baseline_days))
    try:
        result = fit_baseline(daily, rep, bc)
    except BaselineError as err:
        log.info("plant %s: no energy baseline yet: %s", plant.id, err)
        return
    d = result.daily.rename(columns={"kwh": "actual_kwh"}).assign(plant_id=plant.id)
    cols = ["plant_id", "time", "time_end", "phase", "actual_kwh", "production", "hdd", "cdd", "expected_kwh",
            "pi_low_kwh", "pi_high_kwh", "savings_kwh", "cusum_kwh"]
    summary.add("energy_baseline_daily", store.replace(conn, "energy_baseline_daily", d, cols, "plant_id = %s",
                                                       (plant.id,)))
    base = pd.DataFrame([{
        "plant_id": plant.id, "time": first, "time_end": rep, "reporting_end": daily["time_end"].max(),
        "formula": result.formula, "params": result.params, "pvalues": result.pvalues, "n_days": result.n_days,
        "r2": result.r2, "cv_rmse": result.cv_rmse, "nmbe": result.nmbe, "meets_ashrae14": result.meets_ashrae14,
        "saving_fraction": result.saving_fraction, "saving_kwh": result.saving_kwh,
    }])
    summary.add("energy_baseline", store.replace(conn, "energy_baseline", base, list(base.columns), "plant_id = %s",
                                                 (plant.id,)))


def run_plant(url: str, plant: store.Plant, start: pd.Timestamp | None, end: pd.Timestamp | None,
              cfg: AnalyticsConfig | None = None) -> RunSummary:
    """``start``/``end`` None = incremental: from the watermark (or earliest late write) to the newest sample."""
    with store.session(url) as conn:
        late_ids: list[int] = []
        if start is None:
            late_ids, late_from = store.pending_late_writes(conn, plant.id)
            sig_ids = store.signals(conn, plant.id)["signal_id"].astype(int).tolist()
            start = store.watermark(conn, plant.id, JOB) or store.earliest_sample_time(conn, sig_ids)
            if start is None:
                return RunSummary(plant.id)
            if late_from is not None:
                start = min(start, late_from)
        summary = run_window(conn, plant, start, end or pd.Timestamp.now(tz="UTC"), cfg)
        if summary.end is not None:
            prev = store.watermark(conn, plant.id, JOB)
            store.set_watermark(conn, plant.id, JOB, max(summary.end, prev) if prev is not None else summary.end)
        store.mark_late_writes(conn, late_ids)
        conn.commit()
        return summary
