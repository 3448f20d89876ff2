"""The exact gradient noise scale of the theory testbed: the moment formulas against sampled gradients, and
the in-run estimator (cbs.train.gns) on sampled SGD against the exact value."""

from __future__ import annotations

import numpy as np
import pytest

from cbs.errors import ConfigError
from cbs.theory import PowerLawProblem, propagate
from cbs.theory.noise_scale import expected_trace, noise_scale

PROBLEM = PowerLawProblem(a=2.0, b=4.0, sigma=1.0, dim=16)


def test_moment_formulas_match_sampled_per_sample_gradients():
    """E|G|² and E tr Σ at w_0 = 0 (e = −w*) from the recursion's c_0, against 200k sampled per-sample
    gradients x(xᵀe − ε): within 4 standard errors (and the fourth-moment term |He|² is visible)."""
    exact = propagate(PROBLEM, [1], [0.1], [0.0], [1], record_steps=np.array([0]))
    grad_sq, risk = exact.record_grad_sq[0, 0], exact.record_risk[0, 0]
    trace = expected_trace(PROBLEM, grad_sq, risk)
    rng = np.random.default_rng(0)
    e = -PROBLEM.target
    x = rng.standard_normal((200_000, PROBLEM.dim)) * np.sqrt(PROBLEM.eigenvalues)
    g = x * (x @ e - PROBLEM.sigma * rng.standard_normal(len(x)))[:, None]
    mean = g.mean(0)
    assert np.sum((PROBLEM.eigenvalues * e) ** 2) == pytest.approx(grad_sq, rel=1e-12)
    sq_dev = ((g - mean) ** 2).sum(1)
    se = sq_dev.std(ddof=1) / np.sqrt(len(g))
    assert abs(sq_dev.mean() - trace) < 4 * se
    assert abs(sq_dev.mean() - (trace - grad_sq)) > 4 * se  # without the Gaussian |He|² term: rejected


def test_in_run_estimator_matches_the_exact_noise_scale():
    """B_simple of the in-run estimator over 6000 sampled runs against the exact expectation of the same EMA:
    within 4 standard errors (delta method over seeds) at every recorded step. 4 SE because the 11 steps are
    correlated draws of one fixed-seed sample (about a 1-in-10⁴ miss per step). Those 4 SE are < 30% of the
    value at the first steps (an EMA of one or two 4-sample gradients) and < 10% from step 9 on, so a formula
    off by more than that (e.g. missing σ² or a 1/B term) fails. At the end the EMA has caught up, and the
    estimator matches the instantaneous exact value too."""
    out = noise_scale(PROBLEM, 16, 4, 0.5, 120, decay=0.95, n_seeds=6000, seed=1)
    steps = np.array(out["steps"])
    est, se = np.array(out["b_simple_estimated"]), np.array(out["b_simple_estimated_se"])
    ema, now = np.array(out["b_simple_exact_ema"]), np.array(out["b_simple_exact"])
    assert steps[0] == 1 and steps[-1] == 120
    assert np.all(4 * se < 0.3 * ema) and np.all((4 * se < 0.1 * ema)[steps >= 9])
    z = (est - ema) / se
    assert np.all(np.abs(z) < 4), z.round(2)
    assert abs(est[-1] - now[-1]) < 4 * se[-1] and ema[-1] == pytest.approx(now[-1], rel=1e-2)
    np.testing.assert_allclose(out["ratio_ema"], est / ema)
    # B_simple grows as the iterate approaches w*: the noise σ² tr H stays while |G|² shrinks
    assert now[-1] > 10 * now[0]


def test_bad_noise_scale_settings_are_refused():
    with pytest.raises(ConfigError, match="b_small < batch"):
        noise_scale(PROBLEM, 4, 4, 0.5, 10, decay=0.9, n_seeds=10)
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        noise_scale(PROBLEM, 4, 1, 0.5, 10, decay=0.9, n_seeds=1)
