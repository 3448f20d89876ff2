"""The batched L-BFGS: every row converges as its own problem, independent of the other rows."""

from __future__ import annotations

import numpy as np

from cbs.fit.multistart import batched_lbfgs, whitening


def _rosenbrock(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a**2) ** 2
    g = np.column_stack([-2 * (1 - a) - 400 * a * (b - a**2), 200 * (b - a**2)])
    return f, g


def test_rows_reach_the_minimum_independently():
    starts = np.random.default_rng(0).uniform(-2, 2, size=(50, 2))
    res = batched_lbfgs(_rosenbrock, starts, max_iter=2000, ftol=1e-15, gtol=1e-10)
    assert res.converged.all()
    assert np.allclose(res.x, 1.0, atol=1e-4)
    alone = batched_lbfgs(_rosenbrock, starts[7:8], max_iter=2000, ftol=1e-15, gtol=1e-10)
    np.testing.assert_array_equal(alone.x[0], res.x[7])  # no row leaks into another


def test_weighted_rows_see_their_own_objective():
    targets = np.array([[0.0, 0.0], [3.0, -1.0], [10.0, 5.0]])

    def quad(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        diff = x - targets[rows]
        return (diff**2).sum(axis=1), 2 * diff

    res = batched_lbfgs(quad, np.zeros((3, 2)), gtol=1e-12)
    np.testing.assert_allclose(res.x, targets, atol=1e-8)


def test_line_search_takes_the_step_one_by_one_halving_would():
    """Evaluating several halvings per call changes how many calls are made, not the steps taken."""
    starts = np.random.default_rng(1).uniform(-2, 2, size=(40, 2))
    calls = {}

    def counted(m: int):
        def fun(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            calls[m] = calls.get(m, 0) + 1
            return _rosenbrock(x, rows)

        return fun

    serial = batched_lbfgs(counted(1), starts, max_iter=300, halvings_per_call=1)
    for m in (3, 8):
        batched = batched_lbfgs(counted(m), starts, max_iter=300, halvings_per_call=m)
        np.testing.assert_array_equal(batched.x, serial.x)
        assert batched.iterations == serial.iterations
        assert calls[m] < calls[1]


def test_whitening_makes_an_ill_conditioned_quadratic_round():
    """On a quadratic whose Hessian has condition 1e8, whitened near its minimum (as the fits do, at an
    optimum), the whitened Hessian is the identity and L-BFGS in whitened coordinates reaches the minimum
    to 1e-8 within a few iterations."""
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    hess = q @ np.diag(np.geomspace(1e-4, 1e4, 5)) @ q.T
    target = rng.normal(size=5)

    def quad(x: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        diff = x - target
        return 0.5 * np.einsum("bi,ij,bj->b", diff, hess, diff), diff @ hess

    white = whitening(quad, target + rng.normal(0, 1e-3, size=5))
    np.testing.assert_allclose(white.t.T @ hess @ white.t, np.eye(5), atol=1e-6)
    starts = white.to_z(rng.normal(size=(10, 5)))
    np.testing.assert_allclose(white.to_x(starts), white.to_x(white.to_z(white.to_x(starts))), atol=1e-12)
    res = batched_lbfgs(white.objective(quad), starts, ftol=1e-14, gtol=1e-12)
    np.testing.assert_allclose(white.to_x(res.x), np.tile(target, (10, 1)), atol=1e-8)
    assert res.iterations <= 5
