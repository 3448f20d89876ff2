"""Sampled one-pass mini-batch SGD on the power-law problem: the Monte-Carlo check of the exact recursion, and
the in-run gradient-noise-scale estimator (cbs.train.gns) run on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cbs.theory.problem import PowerLawProblem
from cbs.train.gns import GNSTracker


@dataclass(frozen=True)
class MonteCarloRisk:
    """Mean and standard error over seeds of the excess risk at ``steps`` (last iterate and EWA iterate)."""

    steps: np.ndarray
    risk_mean: np.ndarray
    risk_se: np.ndarray
    ewa_mean: np.ndarray
    ewa_se: np.ndarray


def sgd_steps(
    problem: PowerLawProblem, batch: int, lr: float, n_steps: int, n_seeds: int, seed: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``n_seeds`` independent SGD runs in parallel (fresh Gaussian samples each step, float64), from w_0 = 0.

    Yields (t, w_t, x_t, r_t) for t = 1..n_steps: the samples x_t (seeds, B, dim) of step t, their residuals
    r_t = x·(w_{t−1} − w*) − ε (seeds, B), so that x_k r_k is sample k's gradient at w_{t−1}, and the iterate
    w_t = w_{t−1} − (γ/B) Σ_k x_k r_k (seeds, dim).
    """
    rng = np.random.default_rng(seed)
    w_star, sqrt_lam = problem.target, np.sqrt(problem.eigenvalues)
    w = np.zeros((n_seeds, problem.dim))
    for t in range(1, n_steps + 1):
        x = rng.standard_normal((n_seeds, batch, problem.dim)) * sqrt_lam
        noise = problem.sigma * rng.standard_normal((n_seeds, batch))
        resid = np.einsum("rbd,rd->rb", x, w - w_star) - noise
        w = w - (lr / batch) * np.einsum("rbd,rb->rd", x, resid)
        yield t, w, x, resid


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
    """Risks ½(w − w*)ᵀH(w − w*) of `sgd_steps` runs at every step, of the iterate and of the bias-corrected
    EWA ξ_t = Σ_{s≤t} (1−τ)τ^{t−s} w_s / (1 − τ^t) (ξ_0 = w_0)."""
    lam, w_star = problem.eigenvalues, problem.target
    ema = np.zeros((n_seeds, problem.dim))  # un-corrected EWA started at 0; ξ = ema / (1 − τ^t)
    risks = np.empty((n_steps + 1, n_seeds))
    ewas = np.empty_like(risks)
    risks[0] = ewas[0] = 0.5 * (w_star**2) @ lam
    for t, w, _, _ in sgd_steps(problem, batch, lr, n_steps, n_seeds, seed):
        ema = tau * ema + (1.0 - tau) * w
        xi = ema / (1.0 - tau**t)
        risks[t] = 0.5 * ((w - w_star) ** 2) @ lam
        ewas[t] = 0.5 * ((xi - w_star) ** 2) @ lam
    steps = np.arange(n_steps + 1)
    se = np.sqrt(n_seeds)
    return MonteCarloRisk(
        steps, risks.mean(1), risks.std(1, ddof=1) / se, ewas.mean(1), ewas.std(1, ddof=1) / se
    )


@dataclass(frozen=True)
class MonteCarloGNS:
    """The in-run B_simple of sampled SGD at ``steps``: the ratio of the seed means of the EMA'd tr Σ and
    |G|² estimators (what ``n_seeds`` ranks would report) and its delta-method standard error over seeds."""

    steps: np.ndarray
    b_simple: np.ndarray
    b_simple_se: np.ndarray


def simulate_gns(
    problem: PowerLawProblem,
    batch: int,
    b_small: int,
    lr: float,
    record_steps: np.ndarray,
    *,
    decay: float,
    n_seeds: int,
    seed: int = 0,
) -> MonteCarloGNS:
    """Run `sgd_steps` to the last of ``record_steps`` and feed cbs.train.gns.GNSTracker each step with
    |G_s|² (the first ``b_small`` samples' mean gradient, as a first micro-batch) and |G_b|² (the batch's)."""
    record_steps = np.asarray(record_steps, dtype=np.int64)
    tracker = GNSTracker(decay, torch.device("cpu"), replicas=n_seeds, dtype=torch.float64)
    values, errors = [], []
    wanted = set(record_steps.tolist())
    for t, _, x, resid in sgd_steps(problem, batch, lr, int(record_steps.max()), n_seeds, seed):
        g_small = np.einsum("rbd,rb->rd", x[:, :b_small], resid[:, :b_small]) / b_small
        g_big = np.einsum("rbd,rb->rd", x, resid) / batch
        sq_small, sq_big = (torch.from_numpy((g**2).sum(1)) for g in (g_small, g_big))
        tracker.update(sq_small, sq_big, b_small, batch)
        if t in wanted:
            grad_sq, trace = (v.numpy() for v in tracker.averages())
            ratio = trace.mean() / grad_sq.mean()
            values.append(ratio)
            errors.append((trace - ratio * grad_sq).std(ddof=1) / np.sqrt(n_seeds) / grad_sq.mean())
    order = np.sort(np.unique(record_steps))
    return MonteCarloGNS(order, np.array(values), np.array(errors))
