"""Protecting a month's release jointly with every earlier release of the year (year-to-date output).

Method: consistent suppression across periods, driven by the whole-year attack of ``bureau.statistics.history``.
The monthly pattern (``sdc.suppress``) is unchanged; on top of it the year-to-date column gets its own, larger
pattern, built so that every quantity an intruder can form by adding and subtracting releases is protected:

1. carry: a year-to-date cell hidden earlier in the year stays hidden (published YTD(t) − output(t) would give
   YTD(t−1) back, and the month's output through it); a cell whose output is hidden has its YTD hidden;
2. primary: the year-to-date of every key whose **difference cell** (leavers' minus entrants' year-to-date since
   the last release) is sensitive under the threshold, dominance or p % rule is hidden — with YTD(t−1) and
   output(t) published, hiding YTD(t) is the only way to hide the difference cell;
3. secondary: relations with a single hidden YTD cell are closed (as within a month), then the LP over all the
   year's releases (hidden cells of every month, changers' year-to-date) is solved; a protected quantity whose
   interval is too narrow gets more YTD cells hidden (its own keys first, then the cheapest partner in one of
   their relations that the intruder cannot already derive) until the audit passes or the rounds run out.

Years are independent: YTD restarts in January. A release the audit still finds exposing is refused by
``publish_month`` (``DisclosureRefused``) with the cell and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import psycopg

from bureau.statistics.facts import DIMENSIONS, enterprise_frame, year_earlier
from bureau.statistics.history import (
    Exposure,
    Key,
    Snapshot,
    audit_year,
    cell_label,
    consecutive,
    difference_cells,
    memberships,
    released_snapshot,
)
from bureau.statistics.sdc import CellTable, SdcParameters, _close_singletons, primary
from datafactory.errors import DataFactoryError


class DisclosureRefused(DataFactoryError):
    """Publishing the month would, together with the earlier releases, expose a protected contribution."""

    def __init__(self, exposure: Exposure, count: int) -> None:
        self.exposure = exposure
        self.count = count
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"refused: {exposure.describe()}{more}; nothing was published")


@dataclass
class YtdProtection:
    hidden: np.ndarray          # YTD hidden per cell (superset of the monthly suppression)
    rounds: int
    exposures: list[Exposure]   # the final audit of the month's targets (empty when protected)


class ReleaseCache:
    """Released snapshots kept between the publications of one session (``bureau publish`` of many months, the
    benchmark), so publishing month t does not rebuild months 1…t−1 from the raw reports again.

    An entry is used only while its month's publication run is the one it was read from (``published_at`` of
    ``bureau_publish_runs``): republishing a month replaces it. The raw reports behind a release must not be
    re-imported during the session (a fresh cache, or none, after an import).
    """

    def __init__(self) -> None:
        self._snaps: dict[tuple[date, object, tuple[object, ...]], Snapshot] = {}

    def get(self, conn: psycopg.Connection, months: Sequence[date], p: SdcParameters) -> list[Snapshot]:
        runs: dict[date, object] = dict(conn.execute(
            "SELECT month, published_at FROM bureau_publish_runs WHERE month = ANY(%s)", (list(months),)).fetchall())
        params = tuple(sorted(p.as_dict().items()))
        out: list[Snapshot] = []
        for m in months:
            key = (m, runs.get(m), params)
            if key not in self._snaps:
                self._snaps = {k: v for k, v in self._snaps.items() if k[0] != m}
                self._snaps[key] = released_snapshot(conn, m, p)
            out.append(self._snaps[key])
        return out


def _snapshots(conn: psycopg.Connection, months: Sequence[date], p: SdcParameters,
               cache: ReleaseCache | None) -> list[Snapshot]:
    if cache is None:
        return [released_snapshot(conn, m, p) for m in months]
    return cache.get(conn, months, p)


def earlier_releases(conn: psycopg.Connection, month: date, p: SdcParameters,
                     cache: ReleaseCache | None = None) -> list[Snapshot]:
    """Released snapshots of the consecutive run of months of ``month``'s year that ends the month before.

    A gap breaks the chain of year-to-date identities, so only the run adjoining ``month`` links to it.
    """
    rows = conn.execute(
        "SELECT DISTINCT month FROM bureau_published_cells WHERE month >= date_trunc('year', %s::date)"
        " AND month < %s ORDER BY month", (month, month)).fetchall()
    run: list[date] = []
    expect = month
    for (m,) in reversed(rows):
        if not consecutive(m, expect):
            break
        run.insert(0, m)
        expect = m
    return _snapshots(conn, run, p, cache)


def month_snapshot(month: date, facts: pd.DataFrame, table: CellTable, *, keys: list[Key],
                   groupings: Sequence[Sequence[str]], out_hidden: np.ndarray, ytd_hidden: np.ndarray,
                   p: SdcParameters) -> Snapshot:
    _, needs = primary(table, p)
    ids = facts["enterprise_id"].to_numpy(int).tolist()
    nonempty = table.count > 0
    return Snapshot(month, keys, table.relations, table.values["output_value"].copy(),
                    table.values["output_ytd"].copy(), out_hidden & nonempty, ytd_hidden & nonempty,
                    needs["output_value"], needs["output_ytd"], memberships(facts, groupings),
                    dict(zip(ids, facts["output_value"].to_numpy(float).tolist(), strict=True)),
                    dict(zip(ids, facts["output_ytd"].fillna(0.0).to_numpy(float).tolist(), strict=True)))


def _derivable(cur: Snapshot, prev: Snapshot | None, changed: set[Key], i: int) -> bool:
    """Whether the intruder gets YTD(k, t) without this cell: output(t) and YTD(t−1) published, nobody moved."""
    k = cur.keys[i]
    if cur.out_hidden[i] or k in changed:
        return False
    if prev is None:
        return cur.month.month == 1
    j = prev.index.get(k)
    return j is None or not prev.ytd_hidden[j]


def protect_year_to_date(earlier: list[Snapshot], cur: Snapshot, table: CellTable, p: SdcParameters) -> YtdProtection:
    """Hide YTD cells of ``cur`` (in place on ``cur.ytd_hidden``) until the year's releases protect everything."""
    nonempty = table.count > 0
    prev = earlier[-1] if earlier and consecutive(earlier[-1].month, cur.month) else None
    hidden = cur.ytd_hidden | cur.out_hidden
    for s in earlier:
        for k in (k for k, j in s.index.items() if s.ytd_hidden[j]):
            if k in cur.index:
                hidden[cur.index[k]] = True
    diffs = difference_cells(prev, cur, p) if prev is not None else []
    changed = {d.key for d in diffs}
    for d in diffs:
        if d.need > 0 and d.key in cur.index:
            hidden[cur.index[d.key]] = True
    need = np.maximum(cur.ytd_need, 1e-9)
    member_of: dict[int, list[int]] = {}
    for r, rel in enumerate(table.relations):
        for c in rel.members:
            member_of.setdefault(c, []).append(r)
    exposures: list[Exposure] = []
    rounds = 0
    while rounds < p.max_audit_rounds:
        rounds += 1
        hidden &= nonempty
        _close_singletons(table, hidden, need, "output_ytd")
        cur.ytd_hidden = hidden.copy()
        exposures = [x for x in audit_year([*earlier, cur], p, months={cur.month}, exact=False) if not x.protected]
        if not exposures:
            break
        before = int(hidden.sum())
        for x in exposures:
            keys = {x.key}
            if x.enterprise is not None:
                moved = (prev.members.get(x.enterprise, frozenset()) if prev else frozenset()) ^ \
                    cur.members.get(x.enterprise, frozenset())
                keys |= set(moved)
            own = [cur.index[k] for k in keys if k in cur.index]
            fresh = [i for i in own if not hidden[i]]
            if fresh:
                hidden[fresh] = True
                continue
            value = table.values["output_ytd"]
            cands = {c for i in own for r in member_of.get(i, []) for c in table.relations[r].members
                     if not hidden[c] and nonempty[c]}
            useful = [c for c in cands if not _derivable(cur, prev, changed, c)]
            if useful or cands:
                hidden[min(useful or cands, key=lambda c: value[c])] = True
        if int(hidden.sum()) == before:
            break  # nothing left to hide that could help: publish_month refuses
    cur.ytd_hidden = hidden & nonempty
    return YtdProtection(cur.ytd_hidden.copy(), rounds, exposures)


def keys_of(cells: pd.DataFrame) -> list[Key]:
    return [tuple(str(v) for v in r) for r in cells[list(DIMENSIONS)].itertuples(index=False, name=None)]


@dataclass(frozen=True)
class RatioExposure:
    """A published growth rate that inverts into a hidden year-ago value."""

    month: date
    ratio: str
    key: Key
    value: float        # the hidden year-ago value
    implied: float      # published value(t) / (1 + g)

    def describe(self) -> str:
        return (f"{self.month:%Y-%m} {cell_label(self.key)}: {self.ratio} inverts into the hidden value of"
                f" {self.month.year - 1}-{self.month.month:02d} = {self.value:,.2f} (implied {self.implied:,.2f})")


_RATIO_INPUT = {"yoy_growth": "output_value", "ytd_growth": "output_ytd"}


def ratio_exposures(conn: psycopg.Connection, month: date) -> list[RatioExposure]:
    """Published growth rates whose year-ago cell is hidden and that give its true value back (within 10⁻⁶)."""
    dims = ", ".join(DIMENSIONS)
    same_cell = f"({', '.join('o.' + d for d in DIMENSIONS)}) = ({', '.join('c.' + d for d in DIMENSIONS)})"
    out: list[RatioExposure] = []
    for ratio, col in _RATIO_INPUT.items():
        rows = conn.execute(
            f"SELECT DISTINCT ON ({dims}) {dims}, c.{col}, c.{ratio} FROM bureau_published_cells c"
            f" WHERE month = %s AND c.{col} IS NOT NULL AND c.{ratio} IS NOT NULL AND c.{ratio} > -1"
            f" AND EXISTS (SELECT 1 FROM bureau_published_cells o WHERE o.month = %s AND o.{col} IS NULL"
            f" AND o.enterprises > 0 AND {same_cell})"
            f" ORDER BY {dims}", (month, year_earlier(month))).fetchall()
        if not rows:
            continue
        from bureau.statistics.publish import build  # publish imports this module

        old = build(enterprise_frame(conn, year_earlier(month)), year_earlier(month))
        truth = dict(zip(keys_of(old.cells), old.table.values[col].tolist(), strict=True))
        for r in rows:
            key = tuple(str(v) for v in r[:7])
            implied = float(r[7]) / (1.0 + float(r[8]))
            hidden = truth.get(key)
            if hidden is not None and abs(implied - hidden) <= 1e-6 * max(1.0, abs(hidden)):
                out.append(RatioExposure(month, ratio, key, hidden, implied))
    return out


@dataclass
class HistoryAudit:
    months: list[date]
    quantities: list[Exposure]       # every protected quantity with its narrowest interval
    ratios: list[RatioExposure]

    @property
    def exposed(self) -> list[Exposure]:
        return [x for x in self.quantities if not x.protected]


def audit_history(conn: psycopg.Connection, p: SdcParameters, cache: ReleaseCache | None = None, *,
                  exact: bool = True) -> HistoryAudit:
    """Replay every release to date: the LP of each year's releases, then every growth rate's inversion.

    ``exact=False`` gives the same verdicts with fewer solves, but a protected quantity's interval is then only
    as wide as the witness that shows it protected (see ``audit_year``)."""
    months = [r[0] for r in conn.execute("SELECT DISTINCT month FROM bureau_published_cells ORDER BY 1")]
    quantities: list[Exposure] = []
    ratios: list[RatioExposure] = []
    for year in sorted({m.year for m in months}):
        snaps = _snapshots(conn, [m for m in months if m.year == year], p, cache)
        quantities += audit_year(snaps, p, exact=exact)
    for m in months:
        ratios += ratio_exposures(conn, m)
    return HistoryAudit(months, quantities, ratios)
