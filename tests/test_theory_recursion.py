"""The exact risk recursion: Monte-Carlo agreement, stability criterion, EWA limits, first-hit stopping."""

from __future__ import annotations

import numpy as np
import pytest

from cbs.errors import ConfigError
from cbs.theory import PowerLawProblem, propagate, stable
from cbs.theory.montecarlo import simulate_sgd

PROBLEM = PowerLawProblem(a=1.5, b=2.5, sigma=0.5, dim=6)
CHECK_STEPS = [1, 2, 5, 10, 25, 50, 80]


@pytest.mark.parametrize(
    ("batch", "lr", "tau", "seed"),
    [(1, 0.2, 0.9, 1), (4, 0.5, 0.95, 2), (2, 0.3, 0.0, 3)],
)
def test_recursion_matches_monte_carlo(batch: int, lr: float, tau: float, seed: int) -> None:
    """Exact expected risks (iterate and bias-corrected EWA) lie within 4 standard errors of sampled SGD."""
    n_steps = max(CHECK_STEPS)
    mc = simulate_sgd(PROBLEM, batch, lr, tau, n_steps, n_seeds=4000, seed=seed)
    exact = propagate(PROBLEM, [batch], [lr], [tau], [n_steps], record_steps=np.arange(n_steps + 1))
    for name, ex, mean, se in (
        ("iterate", exact.record_risk[0], mc.risk_mean, mc.risk_se),
        ("EWA", exact.record_ewa_risk[0], mc.ewa_mean, mc.ewa_se),
    ):
        z = (ex[CHECK_STEPS] - mean[CHECK_STEPS]) / se[CHECK_STEPS]
        assert np.all(np.abs(z) < 4), f"{name} risk off by {z.round(2)} standard errors at {CHECK_STEPS}"
    # the check has power: at small B, dropping the fourth-moment term λ_i²c_i/B is rejected at step 1
    wrong = PROBLEM.target_sq * (1 - lr * PROBLEM.eigenvalues) ** 2 + (
        lr**2 / batch
    ) * PROBLEM.eigenvalues * (PROBLEM.eigenvalues @ PROBLEM.target_sq + PROBLEM.noise_var)
    z_wrong = (0.5 * wrong @ PROBLEM.eigenvalues - mc.risk_mean[1]) / mc.risk_se[1]
    if batch <= 2:
        assert abs(z_wrong) > 4


def test_stability_criterion_separates_converging_from_diverging() -> None:
    """Just below the critical step the risk settles; just above it grows without bound."""
    problem = PowerLawProblem(a=2.0, b=3.0, sigma=1.0, dim=32)
    grid = np.geomspace(0.05, 3.0, 4000)
    ok = stable(problem, np.full(grid.size, 4.0), grid)
    critical = grid[np.flatnonzero(ok)[-1]]
    assert ok[: np.flatnonzero(ok)[-1] + 1].all()  # stable exactly below a threshold
    run = propagate(problem, [4, 4], [0.97 * critical, 1.03 * critical], [0.0, 0.0], [20000, 20000])
    assert np.isfinite(run.final_risk[0]) and run.final_risk[0] < 10
    assert not np.isfinite(run.final_risk[1]) or run.final_risk[1] > 1e6


def test_ewa_limits() -> None:
    """τ = 0 makes the EWA the iterate; with σ = 0 and a tiny step the iterate barely moves from w_0 = 0."""
    run = propagate(PROBLEM, [2, 2], [0.3, 1e-9], [0.0, 0.0], [50, 50], record_steps=np.arange(51))
    np.testing.assert_allclose(run.record_ewa_risk[0], run.record_risk[0], rtol=1e-12)
    np.testing.assert_allclose(run.record_risk[1], PROBLEM.initial_excess_risk, rtol=1e-6)


def test_target_stops_at_first_crossing() -> None:
    """hit_step is the first step with EWA risk <= target; a group stops at its fastest row."""
    full = propagate(
        PROBLEM, [1, 1, 8], [0.1, 0.3, 0.8], [0.9, 0.9, 0.5], [400] * 3, record_steps=np.arange(401)
    )
    target = float(np.max(full.record_ewa_risk[:, -1]) * 1.01)  # every row reaches it
    first = [int(np.flatnonzero(row <= target)[0]) for row in full.record_ewa_risk]
    run = propagate(PROBLEM, [1, 1, 8], [0.1, 0.3, 0.8], [0.9, 0.9, 0.5], [400] * 3, target=target)
    np.testing.assert_array_equal(run.hit_step, first)
    grouped = propagate(
        PROBLEM, [1, 1, 8], [0.1, 0.3, 0.8], [0.9, 0.9, 0.5], [400] * 3, target=target, group=[0, 0, 1]
    )
    fastest = int(np.argmin(first[:2]))
    assert grouped.hit_step[fastest] == first[fastest] and grouped.hit_step[2] == first[2]
    assert grouped.steps[1 - fastest] == first[fastest]  # stopped with its group


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="a="):
        PowerLawProblem(a=1.0)
    with pytest.raises(ConfigError, match="tau"):
        propagate(PROBLEM, [1], [0.1], [1.0], [10])
    with pytest.raises(ConfigError, match="one entry"):
        propagate(PROBLEM, [1, 2], [0.1], [0.5], [10])


def test_corollary_exponent() -> None:
    assert PowerLawProblem(a=2, b=4).exponent_theory == pytest.approx(0.5)
    assert PowerLawProblem(a=1.5, b=10).exponent_theory == pytest.approx(1 - 1.5 / 4)  # b capped at 2a+1
    assert PowerLawProblem(a=2, b=1.5).exponent_theory == 0.0  # b <= a: B* does not grow
