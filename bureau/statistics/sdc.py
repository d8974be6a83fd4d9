"""Statistical disclosure control for linked magnitude tables with margins and 2-level hierarchies.

Primary suppression (per cell and per magnitude measure, with contributions x1 ≥ x2 ≥ … summing to X):
  * minimum frequency: fewer than ``min_frequency`` (3) contributors;
  * dominance (n, k) = (2, 85 %): x1 + x2 > k·X;
  * p % rule, p = 10 %: X − x1 − x2 < p·x1 (the second-largest contributor could estimate the largest
    within p %).
Each sensitive cell gets a protection requirement: the distance its value must be able to move, up and down,
in the attacker's feasible interval — p·x1 − (X − x1 − x2) for the p % rule, (x1 + x2)/k − X for dominance, and
at least p·x1 for a cell below the minimum frequency (Hundepool et al., Statistical Disclosure Control, 2012,
ch. 4; the same rules are the defaults of τ-ARGUS).

Secondary suppression over all published tables at once (cells shared by tables, such as a division total or
the city total, are one cell): repeat until stable — in every relation ``total = Σ parts`` with exactly one
suppressed member, suppress the smallest published non-empty part that could cover the requirement (else
the largest, else the total). Then audit with linear programming (HiGHS, warm-started): unknowns are the
suppressed cells (≥ 0), equalities are every relation with the published values substituted; min and max of
each sensitive cell give its feasible interval. An interval narrower than the requirement triggers further
suppression in a relation of that cell, and the audit runs again. Empty cells (no contributors) are structural
zeros and never suppressed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix

from bureau.statistics.lp import IntervalLP


@dataclass(frozen=True)
class SdcParameters:
    min_frequency: int = 3
    dominance_n: int = 2
    dominance_k: float = 0.85
    p_percent: float = 0.10
    max_audit_rounds: int = 25

    def as_dict(self) -> dict[str, float | int]:
        return {"min_frequency": self.min_frequency, "dominance_n": self.dominance_n,
                "dominance_k": self.dominance_k, "p_percent": self.p_percent}


@dataclass(frozen=True)
class Relation:
    total: int
    parts: tuple[int, ...]

    @property
    def members(self) -> tuple[int, ...]:
        return (self.total, *self.parts)


@dataclass
class CellTable:
    """Cells 0..n-1 of one month: per measure the cell values and the contribution statistics."""

    count: np.ndarray  # contributors per cell
    values: dict[str, np.ndarray]  # measure → X
    top: dict[str, np.ndarray]  # measure → array (n, dominance_n) of the largest contributions, 0-padded
    relations: list[Relation] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.count)


def protection_required(count: np.ndarray, total: np.ndarray, top: np.ndarray, p: SdcParameters) -> np.ndarray:
    """Required protection per cell (0 = not sensitive) for one measure."""
    x1 = top[:, 0]
    x2 = top[:, 1] if top.shape[1] > 1 else np.zeros_like(x1)
    topn = top[:, : p.dominance_n].sum(axis=1)
    p_rule = p.p_percent * x1 - (total - x1 - x2)
    dominance = np.where(topn > p.dominance_k * total, topn / p.dominance_k - total, 0.0)
    frequency = np.where((count > 0) & (count < p.min_frequency), p.p_percent * x1, 0.0)
    need = np.maximum.reduce([np.maximum(p_rule, 0.0), dominance, frequency])
    need = np.where(count > 0, need, 0.0)
    # A cell below the minimum frequency is sensitive even when its value is 0.
    sensitive = (need > 0) | ((count > 0) & (count < p.min_frequency))
    return np.where(sensitive, np.maximum(need, 1e-9), 0.0)


def primary(table: CellTable, p: SdcParameters) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    needs = {m: protection_required(table.count, table.values[m], table.top[m], p) for m in table.values}
    sensitive = np.zeros(table.size, dtype=bool)
    for need in needs.values():
        sensitive |= need > 0
    return sensitive, needs


def _pick(candidates: Iterable[int], value: np.ndarray, need: float) -> int | None:
    cands = list(candidates)
    if not cands:
        return None
    covering = [c for c in cands if value[c] >= need]
    if covering:
        return min(covering, key=lambda c: value[c])
    return max(cands, key=lambda c: value[c])


def _close_singletons(table: CellTable, supp: np.ndarray, need: np.ndarray, key_measure: str) -> None:
    """Suppress until no relation has exactly one suppressed member (in place)."""
    value = table.values[key_measure]
    nonempty = table.count > 0
    changed = True
    while changed:
        changed = False
        for rel in table.relations:
            members = rel.members
            hidden = [c for c in members if supp[c]]
            if len(hidden) != 1:
                continue
            lone = hidden[0]
            parts = [c for c in rel.parts if not supp[c] and nonempty[c] and c != lone]
            choice = _pick(parts, value, need[lone])
            if choice is None and not supp[rel.total] and nonempty[rel.total] and rel.total != lone:
                choice = rel.total
            if choice is not None:
                supp[choice] = True
                changed = True


@dataclass(frozen=True)
class Interval:
    cell: int
    measure: str
    value: float
    low: float
    high: float
    need: float

    @property
    def protected(self) -> bool:
        slack = 1e-6 * max(1.0, abs(self.value))
        return self.high - self.value >= self.need - slack and self.value - self.low >= self.need - slack


def _components(table: CellTable, supp: np.ndarray) -> list[tuple[list[int], list[Relation]]]:
    parent = {c: c for c in np.flatnonzero(supp).tolist()}

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    rel_of: list[tuple[Relation, list[int]]] = []
    for rel in table.relations:
        hidden = [c for c in rel.members if supp[c]]
        if not hidden:
            continue
        rel_of.append((rel, hidden))
        for c in hidden[1:]:
            a, b = find(hidden[0]), find(c)
            if a != b:
                parent[a] = b
    groups: dict[int, list[int]] = defaultdict(list)
    for c in parent:
        groups[find(c)].append(c)
    rels: dict[int, list[Relation]] = defaultdict(list)
    for rel, hidden in rel_of:
        rels[find(hidden[0])].append(rel)
    return [(cells, rels[root]) for root, cells in groups.items()]


def audit(
    table: CellTable, supp: np.ndarray, needs: dict[str, np.ndarray], measures: Sequence[str] | None = None,
    *, only_sensitive: bool = True, cache: dict[tuple[frozenset[int], str], list[Interval]] | None = None,
) -> list[Interval]:
    """Feasible interval of every suppressed (sensitive) cell by LP, for each measure.

    ``cache`` (component cells, measure) → intervals lets repeated audits skip components that did not change.
    """
    out: list[Interval] = []
    for cells, rels in _components(table, supp):
        index = {c: i for i, c in enumerate(cells)}
        rows, cols, data = [], [], []
        for r, rel in enumerate(rels):
            for c, sign in ((rel.total, 1.0), *((c, -1.0) for c in rel.parts)):
                if c in index:
                    rows.append(r)
                    cols.append(index[c])
                    data.append(sign)
        a_eq = csr_matrix((data, (rows, cols)), shape=(len(rels), len(cells)))
        for measure in measures or list(table.values):
            cache_key = (frozenset(cells), measure)
            if cache is not None and cache_key in cache:
                out.extend(cache[cache_key])
                continue
            found: list[Interval] = []
            value = table.values[measure]
            need = needs[measure]
            targets = [c for c in cells if need[c] > 0] if only_sensitive else cells
            if not targets:
                if cache is not None:
                    cache[cache_key] = []
                continue
            b_eq = np.zeros(len(rels))
            for r, rel in enumerate(rels):
                known = (value[rel.total] if not supp[rel.total] else 0.0) - sum(
                    value[c] for c in rel.parts if not supp[c]
                )
                b_eq[r] = -known
            # Scale so the solver works near unit magnitudes.
            scale = max(1.0, float(np.max(np.abs(value[cells]))))
            solver = IntervalLP(a_eq, b_eq / scale, len(cells))
            for c in targets:
                lo, hi = solver.interval({index[c]: 1.0})
                # Numerical trouble: assume disclosed (conservative).
                low = float(value[c]) if lo is None else lo * scale
                high = float(value[c]) if hi is None else hi * scale
                found.append(Interval(c, measure, float(value[c]), low, high, float(need[c])))
            if cache is not None:
                cache[cache_key] = found
            out.extend(found)
    return out


def suppress(
    table: CellTable, p: SdcParameters, *, key_measure: str = "output_value", lp_measures: Sequence[str] | None = None,
    forced: np.ndarray | None = None, extra_needs: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Interval]]:
    """Primary and secondary suppression. Returns (primary mask, suppressed mask, final audit intervals).

    ``forced`` marks cells that must be hidden although not sensitive now (e.g. hidden earlier in the year).
    ``extra_needs`` (measure → requirement per cell) adds protection requirements from outside the month, such
    as a sensitive difference cell between this release and the last: such a cell counts as primary.
    """
    sensitive, needs = primary(table, p)
    for measure, extra in (extra_needs or {}).items():
        needs[measure] = np.maximum(needs[measure], np.where(table.count > 0, extra, 0.0))
        sensitive |= needs[measure] > 0
    supp = sensitive.copy()
    if forced is not None:
        supp |= forced & (table.count > 0)
    need_any = np.maximum.reduce(list(needs.values()))
    _close_singletons(table, supp, need_any, key_measure)
    member_of: dict[int, list[Relation]] = defaultdict(list)
    for rel in table.relations:
        for c in rel.members:
            member_of[c].append(rel)
    intervals: list[Interval] = []
    cache: dict[tuple[frozenset[int], str], list[Interval]] = {}
    for _ in range(p.max_audit_rounds):
        intervals = audit(table, supp, needs, lp_measures, cache=cache)
        weak = [iv for iv in intervals if not iv.protected]
        if not weak:
            break
        for iv in weak:
            value = table.values[iv.measure]
            gap = iv.need - min(iv.high - iv.value, iv.value - iv.low)
            best: int | None = None
            for rel in member_of[iv.cell]:
                cands = [c for c in rel.parts if not supp[c] and table.count[c] > 0]
                choice = _pick(cands, value, gap)
                if choice is not None and (best is None or value[choice] < value[best]):
                    best = choice
            if best is None:
                for rel in member_of[iv.cell]:
                    if not supp[rel.total] and table.count[rel.total] > 0:
                        best = rel.total
                        break
            if best is not None:
                supp[best] = True
        _close_singletons(table, supp, need_any, key_measure)
    return sensitive, supp, intervals
