"""The batched S(B) solver agrees with scipy's least_squares (the reference) and the committed CPU fits.

Tolerance: parameters within 1e-5 relative of the reference and a cost no higher (to 1e-10 relative): with a free
exponent the optimum is a flat valley in (b, α), where both solvers stop ~1e-6 apart at costs equal to 1e-12.
B* of the committed fits, point and interval, within 1e-6 relative. All far below the bootstrap's Monte-Carlo
error (~3%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

from cbs.fit import fit_cbs
from cbs.fit.critical_batch import _fit, cbs_from_params
from cbs.fit.hyperbola import cbs_of, fit_hyperbolas, model

BATCHES = np.array([64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
RTOL = 1e-6
PARAM_RTOL = 1e-5
CPU_FITS = Path(__file__).resolve().parents[1] / "results" / "cpu-cbs" / "fits" / "all.json"


def _noisy(truth: np.ndarray, rows: int, sigma: float, seed: int) -> np.ndarray:
    clean = np.log(truth[0] + truth[1] * BATCHES ** -(truth[2] if truth.size > 2 else 1.0))
    return clean + np.random.default_rng(seed).normal(0, sigma, (rows, BATCHES.size))


@pytest.mark.parametrize(
    "truth",
    [np.array([1500.0, 3.0e6]), np.array([1500.0, 3.0e6, 0.8]), np.array([200.0, 5.0e4, 1.3])],
    ids=["hyperbola", "alpha-0.8", "alpha-1.3"],
)
def test_batched_fits_match_scipy_row_by_row(truth):
    log_steps = _noisy(truth, 40, 0.03, seed=1)
    free = truth.size > 2
    fast = fit_hyperbolas(BATCHES, log_steps, free_alpha=free)
    ref = np.array([_fit(BATCHES, row, free)[0] for row in log_steps])
    assert fast.converged.all()
    np.testing.assert_allclose(fast.params, ref, rtol=PARAM_RTOL)
    cost = lambda p: ((np.log(model(p, BATCHES)) - log_steps) ** 2).sum(1)  # noqa: E731
    assert (cost(fast.params) <= cost(ref) * (1 + 1e-10)).all()
    # and both recover the generating parameters (3% noise on 7 points: loosely)
    np.testing.assert_allclose(np.median(fast.params, axis=0), truth, rtol=0.15)


def test_batched_fit_keeps_a_bound_that_holds():
    # a pure power law S = b·B^-0.7 puts the free-exponent fit on the bound a = 0
    log_steps = np.log(3.0e5 * BATCHES**-0.7)[None, :]
    fast = fit_hyperbolas(BATCHES, log_steps, free_alpha=True)
    ref = _fit(BATCHES, log_steps[0], True)[0]
    assert fast.params[0, 0] == pytest.approx(0.0, abs=1e-4) and ref[0] == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(fast.params[0, 1:], ref[1:], rtol=PARAM_RTOL)


def test_cbs_matches_a_scalar_root_finder():
    rng = np.random.default_rng(3)
    params = np.column_stack([rng.uniform(10, 2000, 50), rng.uniform(1e3, 1e6, 50), rng.uniform(0.3, 3, 50)])
    b_opt, o = 64.0, 0.2

    def reference(p: np.ndarray) -> float:
        s = lambda b: p[0] + p[1] * b ** -p[2]  # noqa: E731
        return np.exp(
            brentq(lambda u: np.exp(u) * s(np.exp(u)) - (1 + o) * b_opt * s(b_opt), np.log(b_opt), 60)
        )

    np.testing.assert_allclose(cbs_of(params, b_opt, o), [reference(p) for p in params], rtol=1e-10)


def test_cbs_with_no_floor():
    # S_min = 0, α < 1: B·S = b·B^(1−α) still grows, so B* = B_opt·(1 + o)^(1/(1−α)) is finite
    assert cbs_from_params(np.array([0.0, 3.0e5, 0.7]), 256, 0.2) == pytest.approx(
        256 * 1.2 ** (1 / 0.3), rel=1e-12
    )
    # α ≥ 1 without a floor: B·S never grows, linear scaling never breaks
    assert cbs_from_params(np.array([0.0, 3.0e5, 1.5]), 256, 0.2) == np.inf
    assert cbs_from_params(np.array([0.0, 3.0e5]), 256, 0.2) == np.inf
    fit = fit_cbs(BATCHES, 3.0e5 * BATCHES**-0.7, b_opt=256, n_boot=50)
    assert fit.alpha_variant.cbs == pytest.approx(256 * 1.2 ** (1 / 0.3), rel=1e-5)


def test_committed_cpu_fits_are_reproduced():
    groups = [g for g in json.loads(CPU_FITS.read_text())["groups"] if g["error"] is None]
    assert len(groups) >= 5
    for g in groups:
        fit = fit_cbs(
            g["batch_sizes"], g["steps_to_target"], b_opt=g["b_opt"], overhead=g["overhead"], n_boot=1000
        )
        assert fit.cbs == pytest.approx(g["cbs"], rel=RTOL)
        # the same resamples, solved to the same optima: the interval too, not just within Monte-Carlo error
        assert fit.cbs_ci == pytest.approx(tuple(g["cbs_ci"]), rel=RTOL)
        assert fit.alpha_variant.cbs == pytest.approx(g["alpha_variant"]["cbs"], rel=RTOL)
        assert fit.alpha_variant.cbs_ci == pytest.approx(tuple(g["alpha_variant"]["cbs_ci"]), rel=RTOL)
