"""Min and max of many linear objectives over one polyhedron {x ≥ 0 : A x = b}, warm-started (HiGHS).

The attacks solve two LPs per protected quantity over the same constraints; passing the model to HiGHS once and
changing only the objective lets each solve start from the last optimal basis, which is what keeps the
whole-history audit within seconds. Callers scale A and b to unit magnitudes (see ``history._solve``).
"""

from __future__ import annotations

import highspy
import numpy as np
from scipy.sparse import csr_matrix

_UNBOUNDED = {highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible}


class IntervalLP:
    def __init__(self, a_eq: csr_matrix | None, b_eq: np.ndarray, columns: int) -> None:
        self.columns = columns
        self.h = highspy.Highs()
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
                return float(self.h.getInfo().objective_function_value)
            if status in _UNBOUNDED:
                return -np.inf
            return None
        finally:
            self.h.changeColsCost(len(idx), idx, np.zeros(len(idx)))

    def interval(self, coefs: dict[int, float]) -> tuple[float | None, float | None]:
        low = self.minimize(coefs)
        neg = self.minimize({i: -c for i, c in coefs.items()})
        return low, (None if neg is None else -neg)
