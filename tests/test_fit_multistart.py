"""The batched L-BFGS: every row converges as its own problem, independent of the other rows."""

from __future__ import annotations

import numpy as np

from cbs.fit.multistart import batched_lbfgs


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
