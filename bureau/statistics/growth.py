"""Which same-scope growth rates and indices may be published without giving back a hidden value.

A growth rate g of cell k in month t is Σ_S x(t) / Σ_S x(t−12) − 1 over S, the enterprises of k(t) that reported
a year earlier. With output(k, t) published, it pins one linear combination of output(k, t−12) and of the cell's
**year-on-year difference cell**: the enterprises new since (their x(t)), those in k a year ago but not in S
(their x(t−12)) and those in S that were elsewhere a year ago (their x(t−12)). So a rate is published only when

* the cell is published in both months for the measure (output, YTD output or electricity) — otherwise
  output(t) / (1 + g) gives the hidden year-ago value back, exactly when nobody moved; and
* the year-on-year difference cell is empty or passes the threshold, dominance and p % rules by itself.

A month without a release a year earlier is judged against the pattern that month would have had (the same
primary and secondary suppression, computed now): otherwise rates of many cells, each giving back a year-ago
total, would let an intruder subtract his way to a cell that disclosure control would have hidden.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import psycopg

from bureau.statistics.facts import DIMENSIONS, enterprise_frame, year_earlier
from bureau.statistics.history import Key, memberships
from bureau.statistics.sdc import SdcParameters, protection_required

# ratio → (flag column of "reported a year ago", current value, value a year ago, published column)
RATIOS = {
    "yoy_growth": ("prev_output", "output_value", "output_value"),
    "ytd_growth": ("prev_ytd", "output_ytd", "output_ytd"),
    "electricity_index": ("prev_kwh", "electricity_kwh", "electricity_kwh"),
}

RATIOS_INPUTS = ("output_value", "output_ytd", "electricity_kwh")


def year_ago_published(conn: psycopg.Connection, month: date) -> dict[Key, dict[str, bool]]:
    dims = ", ".join(DIMENSIONS)
    rows = conn.execute(
        f"SELECT DISTINCT ON ({dims}) {dims}, output_value IS NOT NULL, output_ytd IS NOT NULL,"
        f" electricity_kwh IS NOT NULL FROM bureau_published_cells WHERE month = %s ORDER BY {dims}",
        (year_earlier(month),)).fetchall()
    return {tuple(str(v) for v in r[:7]): {"output_value": r[7], "output_ytd": r[8], "electricity_kwh": r[9]}
            for r in rows}


def _would_have_published(facts12: pd.DataFrame, month12: date, p: SdcParameters) -> dict[Key, dict[str, bool]]:
    from bureau.statistics.publish import build, protect  # publish imports this module

    tables = build(facts12, month12)
    _, supp, _ = protect(tables, p)
    keys = [tuple(str(v) for v in r) for r in tables.cells[list(DIMENSIONS)].itertuples(index=False, name=None)]
    return {k: dict.fromkeys(RATIOS_INPUTS, not hidden) for k, hidden in zip(keys, supp.tolist(), strict=True)}


def _difference_needs(facts: pd.DataFrame, facts12: pd.DataFrame, groupings: Sequence[Sequence[str]], *,
                      flag: str, cur_col: str, old_col: str, p: SdcParameters) -> dict[Key, float]:
    mem_t, mem_12 = memberships(facts, groupings), memberships(facts12, groupings)
    ids = facts["enterprise_id"].to_numpy(int).tolist()
    same = dict(zip(ids, facts[flag].notna().tolist(), strict=True))
    cur = dict(zip(ids, facts[cur_col].fillna(0.0).to_numpy(float).tolist(), strict=True))
    ids12 = facts12["enterprise_id"].to_numpy(int).tolist()
    old = dict(zip(ids12, facts12[old_col].fillna(0.0).to_numpy(float).tolist(), strict=True))
    contrib: dict[Key, list[float]] = defaultdict(list)
    for e, keys in mem_t.items():
        for k in keys:
            if not same[e]:
                contrib[k].append(abs(cur[e]))
            elif k not in mem_12.get(e, frozenset()):
                contrib[k].append(abs(old.get(e, 0.0)))
    for e, keys in mem_12.items():
        for k in keys:
            if not (same.get(e, False) and k in mem_t.get(e, frozenset())):
                contrib[k].append(abs(old[e]))
    needs: dict[Key, float] = {}
    for k, values in contrib.items():
        values.sort(reverse=True)
        top = np.array([[values[0], values[1] if len(values) > 1 else 0.0]])
        needs[k] = float(protection_required(np.array([len(values)]), np.array([sum(values)]), top, p)[0])
    return needs


def safe_ratios(conn: psycopg.Connection, month: date, facts: pd.DataFrame, *, keys: list[Key],
                groupings: Sequence[Sequence[str]], published: dict[str, np.ndarray],
                p: SdcParameters) -> dict[str, np.ndarray]:
    """Ratio → per cell whether it may be published (``published``: measure → cell published this month)."""
    facts12 = enterprise_frame(conn, year_earlier(month))
    if facts12.empty:
        return {r: np.zeros(len(keys), dtype=bool) for r in RATIOS}
    ago = year_ago_published(conn, month) or _would_have_published(facts12, year_earlier(month), p)
    out: dict[str, np.ndarray] = {}
    for ratio, (flag, cur_col, old_col) in RATIOS.items():
        needs = _difference_needs(facts, facts12, groupings, flag=flag, cur_col=cur_col, old_col=old_col, p=p)
        out[ratio] = np.array([
            bool(published[cur_col][i]) and ago.get(k, {}).get(cur_col, False) and needs.get(k, 0.0) <= 0
            for i, k in enumerate(keys)], dtype=bool)
    return out
