"""Min and max of many linear objectives over one polyhedron {x ≥ 0 : A x = b}, warm-started (HiGHS).

The attacks solve two LPs per protected quantity over the same constraints; passing the model to HiGHS once and
changing only the objective lets each solve start from the last optimal basis, which is what keeps the
whole-history audit within seconds. Callers scale A and b to unit magnitudes (see ``history._solve``).
"""

from __future__ import annotations

import highspy
import numpy as np
from highspy._core import _Highs
from scipy.sparse import csr_matrix

_UNBOUNDED = {highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible}


class IntervalLP:
    """``keep`` > 0 remembers that many optimal vertices; ``interval(…, enough=…)`` then skips a solve when one of
    them already reaches the wanted bound (any feasible point is an inner bound of the interval)."""

    def __init__(self, a_eq: csr_matrix | None, b_eq: np.ndarray, columns: int, *, keep: int = 0) -> None:
        self.columns = columns
        self.keep = keep
        self.vertices = np.zeros((0, columns))
        # The bare solver: highspy.Highs() adds callbacks and prints a banner to stdout, which would end up in
        # the output of `bureau publish` and `bureau audit`.
        self.h = _Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("presolve", "off")  # keep the basis between objectives
        lp = highspy.HighsLp()
        lp.num_col_ = columns
        lp.col_cost_ = np.zeros(columns)
        lp.col_lower_ = np.zeros(columns)
        lp.col_upper_ = np.full(columns, highspy.kHighsInf)
        if a_eq is not None and a_eq.shape[0] > 0:
            a = csr_matrix(a_eq)
            lp.num_row_ = a.shape[0]
            lp.row_lower_ = np.asarray(b_eq, float)
            lp.row_upper_ = np.asarray(b_eq, float)
            lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
            lp.a_matrix_.num_col_ = columns
            lp.a_matrix_.num_row_ = a.shape[0]
            lp.a_matrix_.start_ = a.indptr.astype(np.int32)
            lp.a_matrix_.index_ = a.indices.astype(np.int32)
            lp.a_matrix_.value_ = a.data.astype(float)
        self.h.passModel(lp)

    def minimize(self, coefs: dict[int, float]) -> float | None:
        """min Σ coef·x: the value, −inf when unbounded, None on numerical trouble."""
        idx = np.array(list(coefs), dtype=np.int32)
        self.h.changeColsCost(len(idx), idx, np.array(list(coefs.values()), float))
        try:
            self.h.run()
            status = self.h.getModelStatus()
            if status == highspy.HighsModelStatus.kOptimal:
                if self.keep:
                    x = np.asarray(self.h.getSolution().col_value, float)[None, :]
                    self.vertices = np.vstack([x, self.vertices[: self.keep - 1]])
                return float(self.h.getInfo().objective_function_value)
            if status in _UNBOUNDED:
                return -np.inf
            return None
        finally:
            self.h.changeColsCost(len(idx), idx, np.zeros(len(idx)))

    def interval(self, coefs: dict[int, float], enough: tuple[float, float] | None = None,
                 ) -> tuple[float | None, float | None]:
        """(min, max) of Σ coef·x; with ``enough`` = (low, high), a side a remembered vertex already reaches is
        answered by that vertex instead of a solve."""
        seen_low = seen_high = None
        if enough is not None and len(self.vertices):
            idx = np.array(list(coefs), dtype=np.int64)
            values = self.vertices[:, idx] @ np.array(list(coefs.values()), float)
            if values.min() <= enough[0]:
                seen_low = float(values.min())
            if values.max() >= enough[1]:
                seen_high = float(values.max())
        low = seen_low if seen_low is not None else self.minimize(coefs)
        if seen_high is not None:
            return low, seen_high
        neg = self.minimize({i: -c for i, c in coefs.items()})
        return low, (None if neg is None else -neg)
