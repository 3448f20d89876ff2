"""The exact expected gradient noise scale of one-pass SGD on power-law regression (docs/theory.md), beside
the in-run estimator (cbs.train.gns) run on sampled SGD.

Per-sample gradient at w (e = w − w*): g = x(xᵀe − ε), mean G = He. With Gaussian x (Isserlis) and diagonal H,

    E[|G|²]  = Σ λ_i² c_i,        E[tr Σ] = Σ λ_i² c_i + (Σ λ_i c_i + σ²) Σ λ_i,

from the diagonal c = diag E[eeᵀ] that the exact recursion tracks; B_simple = E[tr Σ] / E[|G|²].
"""

from __future__ import annotations

import numpy as np
import torch

from cbs.errors import ConfigError
from cbs.theory.montecarlo import simulate_gns
from cbs.theory.problem import PowerLawProblem
from cbs.theory.recursion import propagate
from cbs.train.gns import GNSTracker


def expected_trace(problem: PowerLawProblem, grad_sq: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """E[tr Σ] of the per-sample gradient at iterates with E|G|² = ``grad_sq`` and excess risk ``risk``
    (½ Σ λ_i c_i): E|G|² + (2·risk + σ²)·tr H."""
    return grad_sq + (2.0 * risk + problem.noise_var) * problem.eigenvalues.sum()


def record_steps(n_steps: int, n_points: int = 12) -> np.ndarray:
    """About ``n_points`` log-spaced steps in 1..n_steps, the last one included."""
    return np.unique(np.geomspace(1, n_steps, n_points).round().astype(np.int64))


def noise_scale(
    problem: PowerLawProblem,
    batch: int,
    b_small: int,
    lr: float,
    n_steps: int,
    *,
    decay: float,
    n_seeds: int,
    seed: int = 0,
) -> dict[str, object]:
    """Exact and in-run B_simple over one-pass SGD (batch ``batch``, step ``lr``, ``n_steps`` steps).

    ``b_simple_exact``: E[tr Σ]/E|G|² at the iterate each recorded step's gradient is taken at;
    ``b_simple_exact_ema``: the exact expectation of what the estimator reports (the same bias-corrected EMA
    over steps of the exact moments: it lags the instantaneous value by about 1/(1 − decay) steps);
    ``b_simple_estimated`` (± ``_se`` over seeds): cbs.train.gns on ``n_seeds`` sampled runs, G_s the first
    ``b_small`` samples of each batch.
    """
    if not 1 <= b_small < batch:
        raise ConfigError(f"the GNS needs 1 <= b_small < batch, got b_small={b_small}, batch={batch}")
    if n_seeds < 2:
        raise ConfigError(f"n_seeds={n_seeds}: the estimator's standard error needs at least 2 seeds")
    steps = record_steps(n_steps)
    # step t's gradient is taken at w_{t−1}: record the moments of iterates 0..n−1
    exact = propagate(problem, [batch], [lr], [0.0], [n_steps], record_steps=np.arange(n_steps))
    grad_sq = exact.record_grad_sq[0]
    trace = expected_trace(problem, grad_sq, exact.record_risk[0])
    # the exact expected readings: E|G_B|² = |G|² + tr Σ / B through the same tracker
    tracker = GNSTracker(decay, torch.device("cpu"), dtype=torch.float64)
    smoothed = []
    for t in range(1, n_steps + 1):
        g, tr = grad_sq[t - 1], trace[t - 1]
        tracker.update(torch.tensor(g + tr / b_small), torch.tensor(g + tr / batch), b_small, batch)
        if t in steps:
            ema_grad_sq, ema_trace = tracker.averages()
            smoothed.append(float(ema_trace / ema_grad_sq))
    mc = simulate_gns(problem, batch, b_small, lr, steps, decay=decay, n_seeds=n_seeds, seed=seed)
    exact_now = trace[steps - 1] / grad_sq[steps - 1]
    return {
        "batch_size": batch,
        "b_small": b_small,
        "lr": lr,
        "ema_decay": decay,
        "n_seeds": n_seeds,
        "steps": steps.tolist(),
        "b_simple_exact": exact_now.tolist(),
        "b_simple_exact_ema": smoothed,
        "b_simple_estimated": mc.b_simple.tolist(),
        "b_simple_estimated_se": mc.b_simple_se.tolist(),
        "ratio": (mc.b_simple / exact_now).tolist(),
        "ratio_ema": (mc.b_simple / np.array(smoothed)).tolist(),
    }
