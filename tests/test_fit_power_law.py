"""Power-law fits recover known exponents; bands and intervals cover the truth; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from cbs.errors import FitError
from cbs.fit import fit_joint_power_law, fit_power_law


def test_power_law_recovers_coefficient_and_exponent():
    rng = np.random.default_rng(0)
    x = np.geomspace(10, 1e4, 12)
    y = 93.2 * x**0.47 * np.exp(rng.normal(0, 0.03, x.size))
    fit = fit_power_law(x, y, n_boot=300, seed=1)
    assert fit.exponent == pytest.approx(0.47, abs=0.03)  # 3% log noise over 3 decades
    assert fit.coefficient == pytest.approx(93.2, rel=0.15)
    assert fit.exponent_ci[0] < 0.47 < fit.exponent_ci[1]
    assert fit.coefficient_ci[0] < 93.2 < fit.coefficient_ci[1]
    lo, hi = fit.band(np.array([100.0, 1000.0]))
    truth = 93.2 * np.array([100.0, 1000.0]) ** 0.47
    assert np.all(lo < truth) and np.all(truth < hi)
    assert fit.predict(1.0) == pytest.approx(fit.coefficient)


def test_joint_power_law_recovers_both_exponents():
    rng = np.random.default_rng(2)
    n, d = np.meshgrid(np.geomspace(50, 1200, 5), np.geomspace(1e9, 3e10, 4))
    y = 2e-3 * n**0.1 * d**0.5 * np.exp(rng.normal(0, 0.02, n.shape))
    fit = fit_joint_power_law({"n_params": n.ravel(), "data_tokens": d.ravel()}, y.ravel(), n_boot=300)
    assert fit.exponents["n_params"] == pytest.approx(0.1, abs=0.03)
    assert fit.exponents["data_tokens"] == pytest.approx(0.5, abs=0.03)
    assert fit.exponent_cis["data_tokens"][0] < 0.5 < fit.exponent_cis["data_tokens"][1]


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([1.0, 2.0], [1.0, 2.0], "too few points"),
        ([1.0, 2.0, np.nan], [1.0, 2.0, 3.0], "non-finite"),
        ([1.0, 2.0, 3.0], [1.0, -2.0, 3.0], "must be > 0"),
        ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "degenerate"),
    ],
)
def test_power_law_refusals(x, y, match):
    with pytest.raises(FitError, match=match):
        fit_power_law(x, y, n_boot=10)
