"""Sampled one-pass mini-batch SGD on the power-law problem: the Monte-Carlo check of the exact recursion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbs.theory.problem import PowerLawProblem


@dataclass(frozen=True)
class MonteCarloRisk:
    """Mean and standard error over seeds of the excess risk at ``steps`` (last iterate and EWA iterate)."""

    steps: np.ndarray
    risk_mean: np.ndarray
    risk_se: np.ndarray
    ewa_mean: np.ndarray
    ewa_se: np.ndarray


def simulate_sgd(
    problem: PowerLawProblem,
    batch: int,
    lr: float,
    tau: float,
    n_steps: int,
    *,
    n_seeds: int = 4000,
    seed: int = 0,
) -> MonteCarloRisk:
    """Run ``n_seeds`` independent SGD runs (fresh Gaussian samples each step, float64) in parallel.

    Each run: w ← w − (γ/B) Σ_k x_k (x_k·w − y_k) from w_0 = 0, and the bias-corrected EWA
    ξ_t = Σ_{s≤t} (1−τ)τ^{t−s} w_s / (1 − τ^t) (ξ_0 = w_0); risks ½(w − w*)ᵀH(w − w*) at every step.
    """
    rng = np.random.default_rng(seed)
    lam, w_star = problem.eigenvalues, problem.target
    sqrt_lam = np.sqrt(lam)
    w = np.zeros((n_seeds, problem.dim))
    ema = np.zeros_like(w)  # un-corrected EWA started at 0; ξ = ema / (1 − τ^t)
    risks = np.empty((n_steps + 1, n_seeds))
    ewas = np.empty_like(risks)
    risks[0] = ewas[0] = 0.5 * (w_star**2) @ lam
    for t in range(1, n_steps + 1):
        x = rng.standard_normal((n_seeds, batch, problem.dim)) * sqrt_lam
        noise = problem.sigma * rng.standard_normal((n_seeds, batch))
        resid = np.einsum("rbd,rd->rb", x, w - w_star) - noise
        w = w - (lr / batch) * np.einsum("rbd,rb->rd", x, resid)
        ema = tau * ema + (1.0 - tau) * w
        xi = ema / (1.0 - tau**t)
        risks[t] = 0.5 * ((w - w_star) ** 2) @ lam
        ewas[t] = 0.5 * ((xi - w_star) ** 2) @ lam
    steps = np.arange(n_steps + 1)
    se = np.sqrt(n_seeds)
    return MonteCarloRisk(
        steps, risks.mean(1), risks.std(1, ddof=1) / se, ewas.mean(1), ewas.std(1, ddof=1) / se
    )
