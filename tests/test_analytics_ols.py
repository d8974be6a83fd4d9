"""The energy baseline's own OLS (analytics/baseline.py, numpy) against statsmodels, an independent implementation:
coefficients, covariance, p-values, R² and the prediction interval of new days agree on baseline-shaped data
(a few weeks of days, 2–4 regressors, one of them collinear or constant in the last case)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from analytics.baseline import _Ols


@pytest.mark.parametrize("seed,days,k,collinear", [(1, 28, 2, False), (2, 14, 3, False), (3, 60, 4, False),
                                                   (4, 28, 3, True)])
def test_ols_equals_statsmodels(seed: int, days: int, k: int, collinear: bool) -> None:
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(days), rng.uniform(1_000, 6_000, (days, k - 1))])
    if collinear:
        x[:, -1] = 2.5 * x[:, 1]  # degree-days that track output exactly: rank-deficient, as statsmodels' pinv handles
    y = x @ rng.uniform(0.1, 5.0, k) + 800 + rng.normal(0, 150, days)
    names = [f"x{i}" for i in range(k)]
    ours = _Ols.fit(y, x, names)
    ref = sm.OLS(y, x).fit()
    assert np.allclose(ours.params, ref.params, rtol=1e-9, atol=1e-9)
    assert np.allclose(ours.cov, ref.cov_params(), rtol=1e-8, atol=1e-12)
    assert ours.df_resid == int(ref.df_resid)
    assert ours.rsquared == pytest.approx(ref.rsquared, rel=1e-12)
    assert np.allclose(ours.pvalues(), ref.pvalues, rtol=1e-6, atol=1e-12)
    new = np.column_stack([np.ones(5), rng.uniform(1_000, 6_000, (5, k - 1))])
    if collinear:
        new[:, -1] = 2.5 * new[:, 1]
    mean, lo, hi = ours.predict(new, 0.9)
    frame = ref.get_prediction(new).summary_frame(alpha=0.1)
    assert np.allclose(mean, frame["mean"], rtol=1e-10)
    assert np.allclose(lo, frame["obs_ci_lower"], rtol=1e-9)
    assert np.allclose(hi, frame["obs_ci_upper"], rtol=1e-9)
