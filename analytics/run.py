"""The analytics runner: for one plant and window, read samples, compute every result and replace its rows.

Window alignment: the window start moves back to the start of its hour, so hour rows are always computed from whole
hours; shift, day and month rows are then summed from the stored hour rows (``rollups``) — hours nest in them. A
calendar with shifts that do not start on a whole hour has its shift rows computed from raw samples instead, and the
window then also moves back to the start of the shift it falls in. Intervals are computed up to the plant's newest
sample, never past it: time after the newest sample is not known yet. ``run_plant`` without a start goes from the
watermark (or the earliest time a late write touched) to the newest sample; with a start and end it recomputes that
range (backfill).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import psycopg

from analytics import calendar, store, tables, tariff
from analytics.cell_results import CellSamples, Window, cell_results
from analytics.plant_results import baseline_results, pdm_results
from analytics.rollups import roll_up
from datafactory.config.analytics import AnalyticsConfig, clock_minutes
from datafactory.contract.meanings import Meaning

log = logging.getLogger(__name__)
JOB = "main"
READ_MEANINGS = (Meaning.MACHINE_STATE, Meaning.TOTAL_COUNT, Meaning.GOOD_COUNT, Meaning.REJECT_COUNT,
                 Meaning.ENERGY_KWH, Meaning.POWER_KW, Meaning.PRODUCT)
WINDOW = "plant_id = %s AND time >= %s AND time < %s"


@dataclass
class RunSummary:
    plant_id: int
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    rows: dict[str, int] = field(default_factory=dict)
    no_ideal_cycle_time: list[int] = field(default_factory=list)  # machines (cell ids) given no OEE rows

    def add(self, written: dict[str, int]) -> None:
        for table, n in written.items():
            self.rows[table] = self.rows.get(table, 0) + n


def shifts_on_whole_hours(cfg: AnalyticsConfig, tz: str, at: pd.Timestamp) -> bool:
    """Whether every shift starts and ends on a whole plant-local hour in a whole-hour zone: then shift rows are
    sums of hour rows, like days and months, and a run only recomputes from the start of the current hour."""
    offset = at.tz_convert(tz).utcoffset()
    whole_zone = offset is not None and offset.total_seconds() % 3600 == 0
    return whole_zone and all(clock_minutes(s.start) % 60 == 0 and clock_minutes(s.end) % 60 == 0
                              for s in cfg.calendar.shifts)


def aligned_start(cfg: AnalyticsConfig, tz: str, start: pd.Timestamp) -> pd.Timestamp:
    """The start of the hour containing ``start`` — or of its shift, when shifts are computed from raw samples."""
    hour = start.tz_convert(tz).floor("h", ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    if shifts_on_whole_hours(cfg, tz, start):
        return hour
    shifts = calendar.shift_periods(cfg.calendar, tz, start, start + pd.Timedelta(microseconds=1))
    return min([hour, *shifts["time"]])


def _window(cfg: AnalyticsConfig, tz: str, start: pd.Timestamp, end: pd.Timestamp,
            data_end: pd.Timestamp) -> Window:
    hours = calendar.calendar_periods("hour", tz, start, end)
    periods = {"hour": hours[hours["time"] >= start].reset_index(drop=True)}
    if not shifts_on_whole_hours(cfg, tz, start):
        shifts = calendar.shift_periods(cfg.calendar, tz, start, end)
        periods["shift"] = shifts[shifts["time"] >= start].reset_index(drop=True)
    cover_end = min(max(p["time_end"].max() for p in periods.values() if len(p)), data_end)
    return Window(start, cover_end, periods, tariff.band_intervals(cfg.tariff, tz, start, cover_end))


def run_window(
    conn: psycopg.Connection, plant: store.Plant, start: pd.Timestamp, end: pd.Timestamp,
    cfg: AnalyticsConfig | None = None,
) -> RunSummary:
    """Compute and store everything for [start, end) of one plant, in the caller's transaction."""
    cfg = cfg or store.analytics_config(conn, plant.id)
    summary = RunSummary(plant.id)
    sigs = store.signals(conn, plant.id)
    data_end = store.latest_sample_time(conn, sigs["signal_id"].astype(int).tolist()) if len(sigs) else None
    if data_end is None:
        return summary
    data_end += pd.Timedelta(microseconds=1)
    end = min(end, data_end)
    a = aligned_start(cfg, plant.timezone, start)
    if end <= a:
        return summary
    summary.start, summary.end = a, end
    window = _window(cfg, plant.timezone, a, end, data_end)

    wanted = sigs[sigs["meaning"].isin([m.value for m in READ_MEANINGS])].drop_duplicates(["cell_id", "meaning"])
    lookahead = pd.Timedelta(seconds=cfg.microstop_threshold_s)  # to classify a stop running past the window
    raw = store.samples(conn, wanted["signal_id"].astype(int).tolist(), a, window.cover_end + lookahead)
    by_signal: dict[int, pd.DataFrame] = {int(str(k)): g for k, g in raw.groupby("signal_id")}
    cell_frame = store.cells(conn, plant.id)
    results = {}
    for cid, attrs in zip(cell_frame["cell_id"].astype(int).tolist(), cell_frame["attributes"], strict=True):
        mine = wanted[wanted["cell_id"] == cid]
        samples = CellSamples(cid, dict(attrs or {}), {
            Meaning(m): by_signal.get(int(s), raw.iloc[:0]) for s, m in zip(mine["signal_id"], mine["meaning"],
                                                                           strict=True)})
        results[cid] = cell_results(samples, window, cfg)
    summary.no_ideal_cycle_time = [cid for cid, r in results.items() if r.no_ideal_cycle_time]
    if summary.no_ideal_cycle_time:
        log.warning("plant %s: %d machine(s) with a machine_state signal but no ideal_cycle_time_s attribute get no"
                    " OEE rows (performance needs an ideal cycle time): cells %s", plant.id,
                    len(summary.no_ideal_cycle_time), summary.no_ideal_cycle_time)

    store.trim_intervals(conn, plant.id, a, window.cover_end)
    intervals = _gather({cid: [r.intervals] if r.intervals is not None else [] for cid, r in results.items()},
                        plant.id)
    summary.add({"state_intervals": tables.STATE_INTERVALS_TABLE.write(conn, intervals, where=WINDOW,
                                                                       params=(plant.id, a, window.cover_end))})
    hours: dict[str, pd.DataFrame] = {}  # the hour rows written, which the roll-ups need not read back
    for period in window.periods:
        for table in tables.PER_CELL:
            assert table.cell_field is not None
            rows = _gather({cid: [f for f in getattr(r, table.cell_field) if len(f) and f["period"].iloc[0] == period]
                            for cid, r in results.items()}, plant.id)
            summary.add({table.name: table.write(conn, rows, where=WINDOW + " AND period = %s",
                                                 params=(plant.id, a, end, period))})
            if period == "hour":
                hours[table.name] = rows
    kinds = ("day", "month") if "shift" in window.periods else ("shift", "day", "month")
    summary.add(roll_up(conn, plant, cfg, kinds, start=a, end=end, written=hours))

    running = {cid: r.intervals[r.intervals["category"] == "running"].reset_index(drop=True)
               for cid, r in results.items() if r.intervals is not None}
    classes = {int(c): str((attrs or {}).get("machine_class", "generic"))
               for c, attrs in zip(cell_frame["cell_id"], cell_frame["attributes"], strict=True)}
    summary.add(pdm_results(conn, plant, cfg, signals=sigs, machine_classes=classes, running=running, start=a,
                            end=window.cover_end))
    ambient = sigs[(sigs["meaning"] == Meaning.TEMPERATURE.value) & ~sigs["cell_id"].isin(list(running))]
    data_start = store.earliest_sample_time(conn, sigs["signal_id"].astype(int).tolist())
    summary.add(baseline_results(conn, plant, cfg, machine_cells=set(running), data_start=data_start,
                                 data_end=data_end, ambient_signals=ambient["signal_id"].astype(int).tolist()))
    return summary


def _gather(frames: dict[int, list[pd.DataFrame]], plant_id: int) -> pd.DataFrame:
    parts = [f.assign(cell_id=cid) for cid, fs in frames.items() for f in fs if len(f)]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).assign(plant_id=plant_id)


def run_plant(url: str, plant: store.Plant, start: pd.Timestamp | None, end: pd.Timestamp | None,
              cfg: AnalyticsConfig | None = None) -> RunSummary:
    """``start`` None = incremental: from the watermark (or earliest late write) to the newest sample."""
    with store.session(url) as conn:
        summary = compute_plant(conn, plant, start, end, cfg)
        conn.commit()
        return summary


def compute_plant(conn: psycopg.Connection, plant: store.Plant, start: pd.Timestamp | None,
                  end: pd.Timestamp | None, cfg: AnalyticsConfig | None = None) -> RunSummary:
    """``run_plant`` in the caller's transaction, which the caller commits (a worker first checks its lease)."""
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
    if summary.start is not None and summary.end is not None:
        summary.add({"samples_hourly": store.refresh_hourly_rollup(conn, summary.start, summary.end,
                                                                   plant_id=plant.id)})
    if summary.end is not None:
        prev = store.watermark(conn, plant.id, JOB)
        store.set_watermark(conn, plant.id, JOB, max(summary.end, prev) if prev is not None else summary.end)
    store.mark_late_writes(conn, late_ids)
    return summary
