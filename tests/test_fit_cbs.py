"""CBS fits: the hyperbola S = a + b/B and its CBS are recovered from synthetic steps; refusals are typed."""

from __future__ import annotations

import numpy as np
import pytest

from cbs.errors import FitError
from cbs.fit import fit_cbs
from cbs.fit.critical_batch import cbs_from_params

BATCHES = np.array([64, 128, 256, 512, 1024, 2048, 4096], dtype=float)


def test_hyperbola_and_cbs_recovered():
    a, b = 1500.0, 3.0e6  # B_noise = 2000 sequences
    rng = np.random.default_rng(0)
    steps = (a + b / BATCHES) * np.exp(rng.normal(0, 0.02, BATCHES.size))
    fit = fit_cbs(BATCHES, steps, n_boot=300, seed=0)
    truth = 1.2 * 256 + 0.2 * b / a  # 707.2
    assert fit.a == pytest.approx(a, rel=0.1)  # 2% noise on 7 points
    assert fit.b == pytest.approx(b, rel=0.1)
    assert fit.cbs == pytest.approx(truth, rel=0.05)
    assert fit.cbs_ci[0] < truth < fit.cbs_ci[1]
    assert fit.b_noise == pytest.approx(b / a, rel=0.15)
    assert fit.predict(256.0) == pytest.approx(fit.a + fit.b / 256)
    assert fit.alpha_variant is not None
    assert fit.alpha_variant.alpha == pytest.approx(1.0, abs=0.1)
    assert fit.alpha_variant.cbs == pytest.approx(truth, rel=0.1)
    assert set(fit.to_dict()) >= {"cbs", "cbs_ci", "s_min", "b_noise", "a", "b", "alpha_variant"}


def test_cbs_is_where_steps_exceed_linear_scaling_by_the_overhead():
    params = np.array([800.0, 4.0e5])
    cbs = cbs_from_params(params, 256, 0.2)
    s = lambda batch: params[0] + params[1] / batch  # noqa: E731
    # at B*, S(B*)·B* equals (1 + o)·S(B_opt)·B_opt, the definition the closed form encodes
    assert s(cbs) * cbs == pytest.approx(1.2 * s(256) * 256, rel=1e-12)
    # the root finder for a free exponent gives the same B* at α = 1 (a tiny offset forces the numeric path)
    numeric = cbs_from_params(np.array([800.0, 4.0e5, 1.0 + 1e-12]), 256, 0.2)
    assert numeric == pytest.approx(cbs, rel=1e-6)


def test_exact_hyperbola_is_fitted_exactly():
    steps = 1000.0 + 5.0e5 / BATCHES
    fit = fit_cbs(BATCHES, steps, n_boot=20)
    assert fit.a == pytest.approx(1000.0, rel=1e-6)
    assert fit.b == pytest.approx(5.0e5, rel=1e-6)


def test_alpha_variant_needs_four_batch_sizes():
    fit = fit_cbs(BATCHES[:3], 1000.0 + 5.0e5 / BATCHES[:3], n_boot=20)
    assert fit.alpha_variant is None and "4 distinct" in fit.alpha_variant_note


@pytest.mark.parametrize(
    ("batches", "steps", "match"),
    [
        (BATCHES[:2], [100.0, 50.0], "too few points"),
        (BATCHES[:4], [400.0, np.inf, 100.0, 60.0], "non-finite"),
        (BATCHES[:4], [400.0, 0.0, 100.0, 60.0], "must be > 0"),
        (BATCHES, 1.0e6 / BATCHES, "S_min fitted as 0"),  # perfect linear scaling: no CBS in range
    ],
)
def test_cbs_refusals(batches, steps, match):
    with pytest.raises(FitError, match=match):
        fit_cbs(batches, steps, n_boot=10)


def test_unbounded_bootstrap_samples_keep_an_infinite_upper_bound():
    from cbs.fit.bootstrap import percentile_ci

    lo, hi = percentile_ci(np.array([700.0, 710.0, 720.0, np.inf, np.inf, np.inf]))
    assert np.isfinite(lo) and hi == np.inf  # an S_min → 0 resample means "no CBS within reach", not NaN


def test_no_bootstrap_gives_nan_intervals():
    fit = fit_cbs(BATCHES, 1000.0 + 5.0e5 / BATCHES, n_boot=0)
    assert np.isnan(fit.cbs_ci).all() and fit.cbs == pytest.approx(1.2 * 256 + 0.2 * 500.0)
