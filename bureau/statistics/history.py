"""Disclosure control across releases: difference cells and the whole-year linear-programming attack.

An intruder keeps every release. Within a calendar year the output family links them: for every cell key k and
consecutive published months t−1, t

    YTD(k, t−1) + output(k, t) − YTD(k, t) = Σ_{e leaving k} ytd_e(t−1) − Σ_{e entering k} ytd_e(t−1)

because an enterprise that stays in k contributes ytd_e(t−1) + x_e(t) − ytd_e(t) = 0. The right-hand side is the
**difference cell** of k at t: its contributors are the enterprises that left (closures, moves, size-class
changes) or entered k with a year-to-date already accumulated. A departure of one firm from a published cell
pair gives its year-to-date exactly. The intruder is assumed to know which enterprise is in which cell in every
month (the business registry is public), so an empty difference cell is a known zero.

The attack (``audit_year``) is the LP an intruder can solve over one year of releases: unknowns are the hidden
monthly and year-to-date cells of every month and, per month, the year-to-date ``z`` of every enterprise whose
cells changed (the only enterprise-level quantities the cross-month identities involve); equalities are every
within-month table relation for both columns, January's YTD = output, and the identity above for every key and
consecutive pair of months. Targets, each with its protection requirement:

* every hidden cell that is primary-sensitive (p %, dominance, minimum frequency), monthly and YTD;
* every sensitive difference cell (the rules applied to the union of leavers and entrants, by |ytd_e(t−1)|);
* every single changer's year-to-date ``z``: it must stay uncertain by at least p·z both ways.

Years are independent (YTD starts again in January; monthly values of other measures are linked only inside a
month, which ``bureau.statistics.sdc`` audits). Months must be published consecutively for the identity to
apply; a gap in the releases breaks the chain (the attack then treats the months on either side as unlinked).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import psycopg
from scipy.sparse import csr_matrix

from bureau.statistics.facts import DIMENSIONS, enterprise_frame
from bureau.statistics.lp import IntervalLP
from bureau.statistics.sdc import Relation, SdcParameters, primary, protection_required

Key = tuple[str, ...]
NO_PARK = "none"
_TINY = 1e-9


def cell_label(key: Key) -> str:
    """'town=石碣镇, size_class=small' ('city' for the all-'*' key)."""
    parts = [f"{d}={v}" for d, v in zip(DIMENSIONS, key, strict=True) if v != "*"]
    return ", ".join(parts) or "city"


@dataclass
class Snapshot:
    """One month as released (which cells' output / YTD are hidden) and as it was (for the targets' truth).

    ``out`` and ``ytd`` hold the released value where published and the true value where hidden; ``members``
    maps each reporting enterprise to the cell keys it belongs to that month.
    """

    month: date
    keys: list[Key]
    relations: list[Relation]
    out: np.ndarray
    ytd: np.ndarray
    out_hidden: np.ndarray
    ytd_hidden: np.ndarray
    out_need: np.ndarray
    ytd_need: np.ndarray
    members: dict[int, frozenset[Key]]
    ent_out: dict[int, float]
    ent_ytd: dict[int, float]
    index: dict[Key, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}


def memberships(facts: pd.DataFrame, groupings: Sequence[Sequence[str]]) -> dict[int, frozenset[Key]]:
    """Enterprise id → the keys of every published cell it falls in (park '' counts as 'none')."""
    frame = facts.assign(park=facts["park"].replace("", NO_PARK))
    cols = {d: frame[d].astype(str).tolist() for d in DIMENSIONS}
    star = ["*"] * len(frame)
    # One column of keys per grouping, built by zipping whole columns (a per-row loop took seconds per month).
    per_grouping = [list(zip(*(cols[d] if d in grouping else star for d in DIMENSIONS), strict=True))
                    for grouping in groupings]
    ids = frame["enterprise_id"].to_numpy(int).tolist()
    return {int(e): frozenset(k) for e, k in zip(ids, zip(*per_grouping, strict=True), strict=True)}


@dataclass(frozen=True)
class DifferenceCell:
    month: date
    key: Key
    leaving: tuple[int, ...]
    entering: tuple[int, ...]
    value: float        # Σ leaving z − Σ entering z
    need: float         # protection requirement of the union (0 = not sensitive)


def changers(prev: Snapshot, cur: Snapshot) -> dict[int, float]:
    """Enterprise → its year-to-date at ``prev.month`` for every enterprise whose cells changed (z > 0 only:
    a newly registered enterprise has a known zero)."""
    out: dict[int, float] = {}
    for e in set(prev.members) | set(cur.members):
        before, after = prev.members.get(e, frozenset()), cur.members.get(e, frozenset())
        if before == after:
            continue
        z = prev.ent_ytd[e] if e in prev.ent_ytd else cur.ent_ytd[e] - cur.ent_out[e]
        if z > _TINY:
            out[e] = z
    return out


def difference_cells(prev: Snapshot, cur: Snapshot, p: SdcParameters) -> list[DifferenceCell]:
    """The difference cell of every key between two consecutive months of one year."""
    z = changers(prev, cur)
    leaving: dict[Key, list[int]] = defaultdict(list)
    entering: dict[Key, list[int]] = defaultdict(list)
    for e in z:
        before, after = prev.members.get(e, frozenset()), cur.members.get(e, frozenset())
        for k in before - after:
            leaving[k].append(e)
        for k in after - before:
            entering[k].append(e)
    cells: list[DifferenceCell] = []
    for k in sorted(set(leaving) | set(entering)):
        contrib = sorted((z[e] for e in (*leaving[k], *entering[k])), reverse=True)
        top = np.array([[contrib[0], contrib[1] if len(contrib) > 1 else 0.0]])
        need = protection_required(np.array([len(contrib)]), np.array([sum(contrib)]), top, p)[0]
        value = sum(z[e] for e in leaving[k]) - sum(z[e] for e in entering[k])
        cells.append(DifferenceCell(cur.month, k, tuple(sorted(leaving[k])), tuple(sorted(entering[k])),
                                    float(value), float(need)))
    return cells


def consecutive(a: date, b: date) -> bool:
    return a.year == b.year and b.month == a.month + 1


@dataclass(frozen=True)
class Exposure:
    """A protected quantity whose feasible interval is narrower than its protection requirement."""

    month: date
    kind: str           # 'output' | 'output_ytd' (hidden cell), 'difference' (difference cell), 'enterprise'
    key: Key            # the cell (for 'enterprise': the first cell the enterprise left or entered)
    enterprise: int | None
    value: float
    low: float
    high: float
    need: float

    @property
    def protected(self) -> bool:
        slack = 1e-6 * max(1.0, abs(self.value))
        return self.high - self.value >= self.need - slack and self.value - self.low >= self.need - slack

    def describe(self) -> str:
        what = {"output": "output", "output_ytd": "year-to-date output",
                "difference": "difference cell (leavers' minus entrants' year-to-date since the month before)",
                "enterprise": f"year-to-date of enterprise #{self.enterprise}, which left or entered the cell",
                }[self.kind]
        return (f"{self.month:%Y-%m} {cell_label(self.key)}: {what} = {self.value:,.2f} can be narrowed to"
                f" [{self.low:,.2f}, {self.high:,.2f}]; it must stay uncertain by ±{self.need:,.2f}")


@dataclass
class _Target:
    month: date
    kind: str
    key: Key
    enterprise: int | None
    coefs: dict[tuple[object, ...], float]
    value: float
    need: float


class _Builder:
    """Rows Σ coef·var = rhs of the year's LP; variables are ('u'|'y', month index, cell) or ('z', month, e)."""

    def __init__(self) -> None:
        self.rows: list[tuple[dict[tuple[object, ...], float], float]] = []

    def add(self, terms: list[tuple[float, tuple[object, ...] | None, float]]) -> None:
        """terms: (sign, variable or None, constant value when the variable is None)."""
        coefs: dict[tuple[object, ...], float] = defaultdict(float)
        rhs = 0.0
        for sign, var, const in terms:
            if var is None:
                rhs -= sign * const
            else:
                coefs[var] += sign
        coefs = {v: c for v, c in coefs.items() if c != 0.0}
        if coefs:
            self.rows.append((coefs, rhs))


def _cell_term(s: Snapshot, t: int, i: int | None, col: str) -> tuple[tuple[object, ...] | None, float]:
    if i is None:
        return None, 0.0  # an empty cell: a structural zero
    hidden = s.out_hidden if col == "u" else s.ytd_hidden
    value = s.out if col == "u" else s.ytd
    return ((col, t, i), 0.0) if hidden[i] else (None, float(value[i]))


def audit_year(snaps: Sequence[Snapshot], p: SdcParameters, *, months: set[date] | None = None,
               exact: bool = True) -> list[Exposure]:
    """Feasible interval of every protected quantity over the releases of one year (sorted by month).

    ``months`` limits the targets to those months (the LP always uses every release given). ``exact=False``
    skips an LP when a vertex found for another target already shows the requirement met on that side: the
    verdicts are the same, but a protected quantity's low/high are then only as wide as that witness.
    """
    b = _Builder()
    targets: list[_Target] = []
    truth: dict[tuple[object, ...], float] = {}
    for t, s in enumerate(snaps):
        for col in ("u", "y"):
            value = s.out if col == "u" else s.ytd
            hidden = s.out_hidden if col == "u" else s.ytd_hidden
            for i in np.flatnonzero(hidden).tolist():
                truth[(col, t, i)] = float(value[i])
            for rel in s.relations:
                b.add([(1.0, *_cell_term(s, t, rel.total, col)),
                       *((-1.0, *_cell_term(s, t, c, col)) for c in rel.parts)])
        if s.month.month == 1:
            for i in range(len(s.keys)):
                b.add([(1.0, *_cell_term(s, t, i, "y")), (-1.0, *_cell_term(s, t, i, "u"))])
        if t > 0 and consecutive(snaps[t - 1].month, s.month):
            prev = snaps[t - 1]
            z = changers(prev, s)
            for e, v in z.items():
                truth[("z", t, e)] = v
            diffs = {d.key: d for d in difference_cells(prev, s, p)}
            for k in sorted(set(prev.keys) | set(s.keys)):
                d = diffs.get(k)
                terms = [(1.0, *_cell_term(prev, t - 1, prev.index.get(k), "y")),
                         (1.0, *_cell_term(s, t, s.index.get(k), "u")),
                         (-1.0, *_cell_term(s, t, s.index.get(k), "y"))]
                if d is not None:
                    terms += [(-1.0, ("z", t, e), 0.0) for e in d.leaving]
                    terms += [(1.0, ("z", t, e), 0.0) for e in d.entering]
                b.add(terms)
            if months is None or s.month in months:
                for d in diffs.values():
                    if d.need > 0:
                        dcoefs: dict[tuple[object, ...], float] = {("z", t, e): 1.0 for e in d.leaving}
                        dcoefs |= {("z", t, e): -1.0 for e in d.entering}
                        targets.append(_Target(s.month, "difference", d.key, None, dcoefs, d.value, d.need))
                for e, v in z.items():
                    moved = (prev.members.get(e, frozenset()) ^ s.members.get(e, frozenset()))
                    targets.append(_Target(s.month, "enterprise", min(moved), e, {("z", t, e): 1.0}, v,
                                           p.p_percent * v))
        if months is None or s.month in months:
            for col, kind, hidden, need, value in (("u", "output", s.out_hidden, s.out_need, s.out),
                                                   ("y", "output_ytd", s.ytd_hidden, s.ytd_need, s.ytd)):
                for i in np.flatnonzero(hidden & (need > 0)).tolist():
                    targets.append(_Target(s.month, kind, s.keys[i], None, {(col, t, i): 1.0}, float(value[i]),
                                           float(need[i])))
    return _solve(b.rows, targets, truth, exact=exact)


def _solve(rows: list[tuple[dict[tuple[object, ...], float], float]], targets: list[_Target],
           truth: dict[tuple[object, ...], float], *, exact: bool = True) -> list[Exposure]:
    variables = sorted(truth, key=repr)
    parent = {v: v for v in variables}

    def find(v: tuple[object, ...]) -> tuple[object, ...]:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for coefs, _ in rows:
        vs = list(coefs)
        for v in vs[1:]:
            a, c = find(vs[0]), find(v)
            if a != c:
                parent[a] = c
    comp_rows: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for r, (coefs, _) in enumerate(rows):
        comp_rows[find(next(iter(coefs)))].append(r)
    comp_vars: dict[tuple[object, ...], list[tuple[object, ...]]] = defaultdict(list)
    for v in variables:
        comp_vars[find(v)].append(v)
    by_comp: dict[tuple[object, ...], list[_Target]] = defaultdict(list)
    for tg in targets:
        by_comp[find(next(iter(tg.coefs)))].append(tg)
    out: list[Exposure] = []
    for root, tgs in by_comp.items():
        cvars = comp_vars[root]
        index = {v: i for i, v in enumerate(cvars)}
        r_ids = comp_rows.get(root, [])
        # Work in units of the component's largest true value: YTD sums of 10^7 万元 (and kWh near 10^10)
        # would otherwise sit far outside HiGHS's absolute tolerances.
        scale = max(1.0, *(abs(truth[v]) for v in cvars))
        data, ri, ci = [], [], []
        rhs = np.zeros(len(r_ids))
        for n, r in enumerate(r_ids):
            row_coefs, row_rhs = rows[r]
            rhs[n] = row_rhs / scale
            for var, coef in row_coefs.items():
                ri.append(n)
                ci.append(index[var])
                data.append(coef)
        a_eq = csr_matrix((data, (ri, ci)), shape=(len(r_ids), len(cvars))) if r_ids else None
        solver = IntervalLP(a_eq, rhs, len(cvars), keep=0 if exact else 64)
        for tg in tgs:
            by_column = {index[var]: coef for var, coef in tg.coefs.items()}
            value, need = tg.value / scale, tg.need / scale
            lo, hi = solver.interval(by_column, None if exact else (value - need, value + need))
            # Numerical trouble: assume the worst (disclosed).
            bounds = [tg.value if lo is None else lo * scale, tg.value if hi is None else hi * scale]
            low, high = bounds
            out.append(Exposure(tg.month, tg.kind, tg.key, tg.enterprise, tg.value, low, high, tg.need))
    return out


def released_snapshot(conn: psycopg.Connection, month: date, p: SdcParameters) -> Snapshot:
    """The month as the ``bureau_published_cells`` release shows it, with the raw data behind it for the truth."""
    from bureau.statistics.publish import _groupings, build  # publish does not import this module

    facts = enterprise_frame(conn, month)
    tables = build(facts, month)
    _, needs = primary(tables.table, p)
    keys = [tuple(str(v) for v in r) for r in tables.cells[list(DIMENSIONS)].itertuples(index=False, name=None)]
    dims = ", ".join(DIMENSIONS)
    released = {tuple(r[:7]): (r[7], r[8]) for r in conn.execute(
        f"SELECT DISTINCT ON ({dims}) {dims}, output_value, output_ytd FROM bureau_published_cells"
        f" WHERE month = %s ORDER BY {dims}", (month,)).fetchall()}
    count = tables.table.count
    out = tables.table.values["output_value"].copy()
    ytd = tables.table.values["output_ytd"].copy()
    out_hidden = np.zeros(len(keys), dtype=bool)
    ytd_hidden = np.zeros(len(keys), dtype=bool)
    for i, k in enumerate(keys):
        pub_out, pub_ytd = released.get(k, (None, None))
        out_hidden[i] = pub_out is None and count[i] > 0
        ytd_hidden[i] = pub_ytd is None and count[i] > 0
        if pub_out is not None:
            out[i] = float(pub_out)
        if pub_ytd is not None:
            ytd[i] = float(pub_ytd)
    ids = facts["enterprise_id"].to_numpy(int).tolist()
    return Snapshot(month, keys, tables.table.relations, out, ytd, out_hidden, ytd_hidden, needs["output_value"],
                    needs["output_ytd"], memberships(facts, _groupings()),
                    dict(zip(ids, facts["output_value"].to_numpy(float).tolist(), strict=True)),
                    dict(zip(ids, facts["output_ytd"].to_numpy(float).tolist(), strict=True)))
