"""The L(N, D) objective: the summed Huber loss of log residuals of the laws written out directly, its
gradient against finite differences, and rows independent of the blocks they are evaluated in."""

from __future__ import annotations

import numpy as np
import pytest

import cbs.fit.scaling_objective as so

RNG = np.random.default_rng(3)
LOG_N = np.log(np.geomspace(4e7, 1.6e10, 40))
LOG_D = np.log(RNG.permutation(np.geomspace(8e8, 5e11, 40)))
TRUE = {"chinchilla": [6.2, 7.7, 0.6, 0.35, 0.37], "kaplan": [30.0, 31.0, 0.4, 0.08, 0.1]}


def _direct_loss(p: np.ndarray, form: str) -> np.ndarray:
    """L̂ from the law as written, no log-sum-exp."""
    a, b, e, alpha, beta = p
    n, d = np.exp(LOG_N), np.exp(LOG_D)
    if form == "chinchilla":
        return np.exp(e) + np.exp(a) / n**alpha + np.exp(b) / d**beta
    return ((np.exp(a) / n) ** (alpha / beta) + np.exp(b) / d) ** beta + np.exp(e)


def _params(form: str, k: int) -> np.ndarray:
    return np.array(TRUE[form]) + RNG.normal(0, [0.5, 0.5, 0.1, 0.02, 0.02], size=(k, 5))


def _log_loss(form: str) -> np.ndarray:
    return np.log(_direct_loss(np.array(TRUE[form]), form)) + RNG.normal(0, 2e-3, LOG_N.size)


@pytest.mark.parametrize("form", so.FORMS)
@pytest.mark.parametrize("per_row", [False, True])
def test_objective_is_the_summed_huber_of_the_laws_log_residuals(form, per_row):
    p, log_l = _params(form, 30), _log_loss(form)
    w = RNG.integers(0, 3, size=(30, LOG_N.size)).astype(float) if per_row else np.ones(LOG_N.size)
    f, _ = so.huber_objective(p, LOG_N, LOG_D, log_l, w, form)
    for i in range(len(p)):
        r = np.log(_direct_loss(p[i], form)) - log_l
        huber = np.where(np.abs(r) <= 1e-3, 0.5 * r**2, 1e-3 * (np.abs(r) - 0.5e-3))
        assert f[i] == pytest.approx(np.sum((w[i] if per_row else w) * huber), rel=1e-10)


@pytest.mark.parametrize("form", so.FORMS)
def test_gradient_matches_central_differences(form):
    p, log_l, w = _params(form, 10), _log_loss(form), np.ones(LOG_N.size)
    _, g = so.huber_objective(p, LOG_N, LOG_D, log_l, w, form)
    h = 1e-7
    for j in range(5):
        step = np.zeros(5)
        step[j] = h
        fp, _ = so.huber_objective(p + step, LOG_N, LOG_D, log_l, w, form)
        fm, _ = so.huber_objective(p - step, LOG_N, LOG_D, log_l, w, form)
        np.testing.assert_allclose(g[:, j], (fp - fm) / (2 * h), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("form", so.FORMS)
def test_rows_do_not_depend_on_their_block(form, monkeypatch):
    p, log_l = _params(form, 23), _log_loss(form)
    w = RNG.integers(0, 3, size=(23, LOG_N.size)).astype(float)
    monkeypatch.setattr(so, "BLOCK", 5)  # 23 rows: four full blocks and a partial one
    f, g = so.huber_objective(p, LOG_N, LOG_D, log_l, w, form)
    for i in range(len(p)):
        fi, gi = so.huber_objective(p[i : i + 1], LOG_N, LOG_D, log_l, w[i : i + 1], form)
        np.testing.assert_allclose([f[i], *g[i]], [fi[0], *gi[0]], rtol=1e-13, atol=1e-300)
    pred = so.log_prediction(p, LOG_N, LOG_D, form)
    np.testing.assert_allclose(pred, np.log([_direct_loss(x, form) for x in p]), rtol=1e-12)


def test_rows_outside_the_form_get_an_infinite_objective():
    """Kaplan's β divides α: β ≤ 0 is outside the form; the row is infinite with a zero gradient, the
    others unaffected."""
    p = np.array([TRUE["kaplan"], [*TRUE["kaplan"][:4], -0.1]])
    f, g = so.huber_objective(p, LOG_N, LOG_D, _log_loss("kaplan"), np.ones(LOG_N.size), "kaplan")
    assert np.isfinite(f[0]) and np.isinf(f[1]) and not g[1].any()


def test_extreme_chinchilla_predictions_stay_finite_and_exact():
    """Each row's exponentials are shifted by its largest term over the points, so a term spanning 725 nats
    across them (α or β = −121 over log N, log D ranges of 6 and 6.4) neither overflows (e^709 is float64's
    limit) nor swamps the others: log L̂ equals a log-sum-exp taken point by point (to 1e-10: at the far end
    the shifted term is a subnormal e^-725)."""
    p = np.array(
        [[800.0, 7.7, 0.6, -121.0, 0.37], [6.2, 800.0, 0.6, 0.35, -113.0], [6.2, 7.7, 0.6, 0.35, 0.37]]
    )
    terms = np.stack(
        [p[:, [0]] - p[:, [3]] * LOG_N, p[:, [1]] - p[:, [4]] * LOG_D, np.repeat(p[:, [2]], 40, axis=1)]
    )
    np.testing.assert_allclose(
        so.log_prediction(p, LOG_N, LOG_D, "chinchilla"), np.logaddexp.reduce(terms), rtol=1e-10
    )
