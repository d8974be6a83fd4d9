"""Compute one month's published tables, apply disclosure control, and store them for the `bureau` role.

Published tables (each with its margins; '*' = all):
  industry          city → division → group (GB/T 4754-2017 hierarchy)
  town              city → town
  park, size, ownership, above_designated   city → category (enterprises outside a park are park 'none')
  division_above    division × above designated size (规模以上/以下), with both margins and the city total
A town × division cross table is deliberately not published: with a few thousand enterprises most of its
cells fall under the minimum frequency, and the suppression pattern would hide most of the table.
All tables are protected together: a cell that appears in two tables (a division total, a town total, the city
total) is one cell with one suppression decision, so no table can be used to undo another's suppression.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import orjson
import pandas as pd
import psycopg

from bureau.statistics.facts import DIMENSIONS, enterprise_frame
from bureau.statistics.growth import safe_ratios
from bureau.statistics.history import audit_year
from bureau.statistics.platform_energy import sync_platform_energy
from bureau.statistics.releases import (
    DisclosureRefused,
    ReleaseCache,
    earlier_releases,
    keys_of,
    month_snapshot,
    protect_year_to_date,
)
from bureau.statistics.sdc import CellTable, Interval, Relation, SdcParameters, suppress
from bureau.statistics.stats import summarize
from datafactory.errors import DataFactoryError

log = logging.getLogger(__name__)

PROTECTED = ("output_value", "output_ytd", "sales_value", "revenue", "employment", "energy_tce", "electricity_kwh")
LP_MEASURES = PROTECTED
NO_PARK = "none"

# table → list of (coarser grouping, finer grouping)
TABLES: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "industry": [((), ("division",)), (("division",), ("division", "industry_group"))],
    "town": [((), ("town",))],
    "park": [((), ("park",))],
    "size": [((), ("size_class",))],
    "ownership": [((), ("ownership",))],
    "above_designated": [((), ("above_designated",))],
    "division_above": [((), ("division",)), ((), ("above_designated",)),
                       (("division",), ("division", "above_designated")),
                       (("above_designated",), ("division", "above_designated"))],
}


@dataclass
class MonthTables:
    month: date
    cells: pd.DataFrame  # one row per cell: DIMENSIONS ('*' = all), statistics, 'grouping'
    table: CellTable
    membership: dict[str, list[int]]  # table name → cell ids


def _groupings() -> list[tuple[str, ...]]:
    seen: dict[tuple[str, ...], None] = {}
    for pairs in TABLES.values():
        for coarse, fine in pairs:
            seen.setdefault(coarse, None)
            seen.setdefault(fine, None)
    return list(seen)


def _top2(codes: np.ndarray, groups: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest value per group code 0..groups-1 (0 where a group has fewer)."""
    order = np.lexsort((-values, codes))
    sorted_codes, sorted_values = codes[order], values[order]
    starts = np.searchsorted(sorted_codes, np.arange(groups), side="left")
    ends = np.searchsorted(sorted_codes, np.arange(groups), side="right")
    top1 = np.where(ends > starts, sorted_values[np.minimum(starts, len(values) - 1)], 0.0)
    top2 = np.where(ends > starts + 1, sorted_values[np.minimum(starts + 1, len(values) - 1)], 0.0)
    return top1, top2


def build(facts: pd.DataFrame, month: date) -> MonthTables:
    facts = facts.assign(park=facts["park"].replace("", NO_PARK))
    frames: list[pd.DataFrame] = []
    for dims in _groupings():
        # summarize() groups with sort=True, so its rows are in group-code order.
        stats = summarize(facts, by=dims)
        codes = (facts.groupby(list(dims), sort=True, observed=True).ngroup().to_numpy() if dims
                 else np.zeros(len(facts), dtype=int))
        groups = len(stats)
        stats["_same"] = np.bincount(codes, weights=facts["prev_output"].notna().to_numpy(float), minlength=groups)
        for measure in PROTECTED:
            top1, top2 = _top2(codes, groups, facts[measure].fillna(0.0).to_numpy(float))
            stats[f"{measure}__1"], stats[f"{measure}__2"] = top1, top2
        for dim in DIMENSIONS:
            if dim not in dims:
                stats[dim] = "*"
        stats["grouping"] = ",".join(dims)
        frames.append(stats)
    cells = pd.concat(frames, ignore_index=True)
    for dim in DIMENSIONS:
        cells[dim] = cells[dim].astype(str)
    key_index = {tuple(row): i for i, row in enumerate(cells[list(DIMENSIONS)].itertuples(index=False, name=None))}
    relations: list[Relation] = []
    seen_relations: set[Relation] = set()
    membership: dict[str, set[int]] = {name: set() for name in TABLES}
    by_grouping = {g: cells.index[cells["grouping"] == ",".join(g)] for g in _groupings()}
    for name, pairs in TABLES.items():
        for coarse, fine in pairs:
            coarse_ids = by_grouping[coarse]
            fine_rows = cells.loc[by_grouping[fine]]
            membership[name].update(coarse_ids.tolist())
            membership[name].update(fine_rows.index.tolist())
            parts_of: dict[tuple[str, ...], list[int]] = {}
            key_cols = [d for d in DIMENSIONS]
            for idx, row in zip(fine_rows.index, fine_rows[key_cols].itertuples(index=False, name=None), strict=True):
                coarse_key = tuple(v if d in coarse else "*" for d, v in zip(DIMENSIONS, row, strict=True))
                parts_of.setdefault(coarse_key, []).append(int(idx))
            for coarse_key, parts in parts_of.items():
                relation = Relation(key_index[coarse_key], tuple(parts))
                if relation not in seen_relations:  # tables share margins, e.g. city = Σ divisions
                    seen_relations.add(relation)
                    relations.append(relation)
    tops = {
        m: np.column_stack([cells[f"{m}__1"].fillna(0.0).to_numpy(float), cells[f"{m}__2"].fillna(0.0).to_numpy(float)])
        for m in PROTECTED
    }
    table = CellTable(
        count=cells["enterprises"].to_numpy(int),
        values={m: cells[m].fillna(0.0).to_numpy(float) for m in PROTECTED},
        top=tops,
        relations=relations,
    )
    return MonthTables(month, cells, table, {k: sorted(v) for k, v in membership.items()})


class NothingToPublish(DataFactoryError):
    """The month has no reports of registered enterprises."""


@dataclass
class PublishResult:
    month: date
    cells: int
    primary: int
    secondary: int
    seconds: float
    intervals: list[Interval]
    ytd_only: int = 0  # cells whose year-to-date alone is hidden to protect the year's releases jointly


def protect(
    tables: MonthTables, params: SdcParameters, hidden_earlier: set[tuple[str, ...]] | None = None
) -> tuple[np.ndarray, np.ndarray, list[Interval]]:
    keys = tables.cells[list(DIMENSIONS)].itertuples(index=False, name=None)
    forced = np.array([tuple(k) in (hidden_earlier or set()) for k in keys], dtype=bool)
    return suppress(tables.table, params, lp_measures=LP_MEASURES, forced=forced)


def hidden_earlier_this_year(conn: psycopg.Connection, month: date) -> set[tuple[str, ...]]:
    """Cells suppressed in an earlier month of the same year.

    They stay hidden for the rest of the year: otherwise this month's published year-to-date minus this month's
    value would reveal last month's suppressed year-to-date, and with it last month's suppressed value.
    """
    rows = conn.execute(
        f"SELECT DISTINCT {', '.join(DIMENSIONS)} FROM bureau_published_cells"
        " WHERE month >= date_trunc('year', %s::date) AND month < %s AND suppression IS NOT NULL",
        (month, month),
    ).fetchall()
    return {tuple(r) for r in rows}


def _published_frame(tables: MonthTables, sensitive: np.ndarray, supp: np.ndarray, *, ytd_hidden: np.ndarray,
                     ratios_ok: dict[str, np.ndarray], p: SdcParameters) -> pd.DataFrame:
    cells = tables.cells.copy()
    kind = pd.Series(None, index=cells.index, dtype=object)
    kind[supp] = "secondary"
    kind[sensitive] = "primary"
    cells["suppression"] = kind
    hidden = supp
    for m in PROTECTED:
        cells[m] = cells[m].where(~hidden)
    # The year-to-date column has its own, larger pattern (bureau.statistics.releases).
    cells["output_ytd"] = cells["output_ytd"].where(~ytd_hidden)
    # Ratios only where their inputs are published in both months and the year-on-year difference cell is safe
    # (bureau.statistics.growth), and whose same-scope subset itself meets the minimum frequency.
    weak_scope = cells["_same"].fillna(0).to_numpy() < p.min_frequency
    for ratio in ("yoy_growth", "ytd_growth", "electricity_index"):
        cells[ratio] = cells[ratio].where(~hidden & ~weak_scope & ratios_ok[ratio])
    cells["energy_intensity"] = cells["energy_intensity"].where(~hidden)
    # The operating rate of one or two connected plants would tell whether a given plant ran.
    cells["operating_rate"] = cells["operating_rate"].where(~hidden & (cells["connected"] >= p.min_frequency))
    rows = []
    for name, ids in tables.membership.items():
        rows.append(cells.loc[ids].assign(table_name=name))
    return pd.concat(rows, ignore_index=True)


COLUMNS = (
    "month", "table_name", *DIMENSIONS, "enterprises", *PROTECTED[:1], "output_ytd", "sales_value", "revenue",
    "employment", "energy_tce", "electricity_kwh", "yoy_growth", "ytd_growth", "electricity_index",
    "energy_intensity", "connected", "operating_rate", "suppression",
)


def _none_if_nan(v: object) -> object:
    if v is None:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def publish_month(conn: psycopg.Connection, month: date, params: SdcParameters | None = None, *,
                  cache: ReleaseCache | None = None) -> PublishResult:
    """Recompute and store the month's published cells (replacing any earlier publication of it).

    ``cache`` keeps the earlier releases' snapshots between calls (publishing months in order in one session)."""
    params = params or SdcParameters()
    started = time.perf_counter()
    sync_platform_energy(conn, month)
    facts = enterprise_frame(conn, month)
    if facts.empty:
        conn.rollback()
        raise NothingToPublish(f"{month:%Y-%m}: no reports of registered enterprises; import reports first")
    tables = build(facts, month)
    sensitive, supp, intervals = protect(tables, params, hidden_earlier_this_year(conn, month))
    keys = keys_of(tables.cells)
    earlier = earlier_releases(conn, month, params, cache)
    cur = month_snapshot(month, facts, tables.table, keys=keys, groupings=_groupings(), out_hidden=supp,
                         ytd_hidden=supp.copy(), p=params)
    ytd = protect_year_to_date(earlier, cur, tables.table, params)
    # The refusal check: every protected quantity of the year, earlier months included, with this release.
    exposed = [x for x in audit_year([*earlier, cur], params, exact=False) if not x.protected]
    if exposed:
        conn.rollback()
        raise DisclosureRefused(exposed[0], len(exposed))
    published = {m: ~supp for m in PROTECTED} | {"output_ytd": ~ytd.hidden}
    ratios_ok = safe_ratios(conn, month, facts, keys=keys, groupings=_groupings(), published=published,
                            p=params)
    frame = _published_frame(tables, sensitive, supp, ytd_hidden=ytd.hidden, ratios_ok=ratios_ok, p=params)
    frame = frame.assign(month=month)
    with conn.transaction():
        conn.execute("DELETE FROM bureau_published_cells WHERE month = %s", (month,))
        with conn.cursor().copy(f"COPY bureau_published_cells ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in frame[list(COLUMNS)].itertuples(index=False, name=None):
                copy.write_row([_none_if_nan(v) for v in row])
        seconds = time.perf_counter() - started
        conn.execute(
            "INSERT INTO bureau_publish_runs (month, cells, primary_suppressed, secondary_suppressed, parameters,"
            " seconds) VALUES (%s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT (month) DO UPDATE SET cells = EXCLUDED.cells,"
            " primary_suppressed = EXCLUDED.primary_suppressed, secondary_suppressed = EXCLUDED.secondary_suppressed,"
            " parameters = EXCLUDED.parameters, seconds = EXCLUDED.seconds, published_at = now()",
            (month, tables.table.size, int(sensitive.sum()), int((supp & ~sensitive).sum()),
             orjson.dumps(params.as_dict()).decode(), seconds),
        )
    conn.commit()  # reading the facts opened the transaction the block above was a savepoint of
    log.info("published %s: %d cells, %d primary, %d secondary suppressions in %.1f s", month, tables.table.size,
             int(sensitive.sum()), int((supp & ~sensitive).sum()), seconds)
    return PublishResult(month, tables.table.size, int(sensitive.sum()), int((supp & ~sensitive).sum()), seconds,
                         intervals, int((ytd.hidden & ~supp).sum()))
