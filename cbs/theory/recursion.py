"""Exact expected risk of one-pass mini-batch SGD and of its bias-corrected EWA iterate (docs/theory.md).

With diagonal H and Gaussian x, the diagonals of the error covariances close on themselves:
c = diag E[e eᵀ] of the iterate error e = w − w*, s = diag E[u uᵀ] of the EWA error u = ξ − w*, and the
cross term p = diag E[u eᵀ]. One step with batch B, step γ (α_i = (1−γλ_i)² + γ²λ_i²/B):

    c_i ← α_i c_i + (γ²/B) λ_i (Σ_j λ_j c_j + σ²)
    q_i = (1 − γλ_i) p_i,   p_i ← τ_t q_i + (1−τ_t) c_i′,   s_i ← τ_t² s_i + 2τ_t(1−τ_t) q_i + (1−τ_t)² c_i′

where τ_t = τ(1−τ^t)/(1−τ^{t+1}) makes ξ the bias-corrected EWA (ξ_t = Σ_s (1−τ)τ^{t−s} w_s / (1−τ^t)).
Excess risks: ½Σλ_i c_i (last iterate) and ½Σλ_i s_i (EWA). Every configuration (B, γ, τ) is one row of
float64 arrays of shape (n_configs, dim), propagated together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cbs.errors import ConfigError
from cbs.theory.problem import PowerLawProblem

_DIVERGED = 1e100  # a risk beyond this (or NaN) marks a diverged row, stopped with risk inf


def stable(problem: PowerLawProblem, batch: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """Whether the covariance recursion is contracting (spectral radius < 1) for each (B, γ).

    The step matrix diag(α) + (γ²/B)λλᵀ is non-negative; its Perron root is < 1 iff every α_i < 1 and
    (γ/B) Σ_i λ_i / (2 − γλ_i(1 + 1/B)) < 1 (the secular equation evaluated at 1).
    """
    lam = problem.eigenvalues[None, :]
    batch = np.asarray(batch, dtype=np.float64)[:, None]
    lr = np.asarray(lr, dtype=np.float64)[:, None]
    margin = 2.0 - lr * lam * (1.0 + 1.0 / batch)
    ok = np.all(margin > 0, axis=1)
    with np.errstate(divide="ignore"):
        secular = (lr[:, 0] / batch[:, 0]) * np.sum(lam / np.where(margin > 0, margin, np.inf), axis=1)
    return ok & (secular < 1.0)


@dataclass(frozen=True)
class RiskTrace:
    """Excess risks of n configurations.

    ``final_*``: at each row's last step (``steps``); ``hit_step``: first step whose EWA risk <= target
    (−1 if never, or no target); ``record_*``: risks at ``record_steps`` (NaN where a row had stopped), and
    ``record_grad_sq`` = Σ λ_i² c_i = E|∇L(w_t)|², the expected squared full-gradient norm there.
    """

    steps: np.ndarray  # (n,) steps each row ran
    final_risk: np.ndarray  # (n,) last iterate
    final_ewa_risk: np.ndarray  # (n,)
    hit_step: np.ndarray  # (n,) int
    record_steps: np.ndarray  # (k,)
    record_risk: np.ndarray  # (n, k)
    record_ewa_risk: np.ndarray  # (n, k)
    record_grad_sq: np.ndarray  # (n, k) E|H(w_t − w*)|² of the last iterate


def propagate(
    problem: PowerLawProblem,
    batch: ArrayLike,
    lr: ArrayLike,
    tau: ArrayLike,
    max_steps: ArrayLike,
    *,
    target: float | None = None,
    group: np.ndarray | None = None,
    record_steps: np.ndarray | None = None,
) -> RiskTrace:
    """Propagate the exact risk recursion for configurations (batch[k], lr[k], tau[k]) for max_steps[k] steps.

    With ``target``, a row stops at its first step with EWA risk <= target; with ``group`` too, every row of
    a group stops as soon as one of them hits (only the group's fastest row matters for steps-to-target).
    Rows should be stable (see `stable`); a row whose risk still blows up stops with final risk inf.
    """
    batch, lr, tau = (np.asarray(v, dtype=np.float64).ravel() for v in (batch, lr, tau))
    max_steps = np.asarray(max_steps, dtype=np.int64).ravel()
    n = batch.size
    if not (lr.size == tau.size == max_steps.size == n):
        raise ConfigError("batch, lr, tau and max_steps must have one entry per configuration")
    if n and (
        np.any(batch < 1) or np.any(lr <= 0) or np.any((tau < 0) | (tau >= 1)) or np.any(max_steps < 1)
    ):
        raise ConfigError("need batch >= 1, lr > 0, 0 <= tau < 1 and max_steps >= 1 for every configuration")
    group = np.arange(n) if group is None else np.asarray(group, dtype=np.int64).ravel()
    record_steps = np.zeros(0, np.int64) if record_steps is None else np.asarray(record_steps, np.int64)
    rec_pos = {int(t): j for j, t in enumerate(record_steps)}

    lam = problem.eigenvalues
    half_lam = 0.5 * lam
    sig2 = problem.noise_var
    rows = np.arange(n)  # original index of each working row
    lr_lam = lr[:, None] * lam[None, :]
    alpha = (1.0 - lr_lam) ** 2 + lr_lam**2 / batch[:, None]
    rho = 1.0 - lr_lam
    beta = lr**2 / batch
    c = np.tile(problem.target_sq, (n, 1))
    p, s = c.copy(), c.copy()
    tau_pow = np.ones(n)  # τ^t
    risk = c @ half_lam
    ewa = risk.copy()

    steps = np.zeros(n, np.int64)
    final_risk = np.full(n, np.nan)
    final_ewa = np.full(n, np.nan)
    hit_step = np.full(n, -1, np.int64)
    rec_risk = np.full((n, record_steps.size), np.nan)
    rec_ewa = np.full((n, record_steps.size), np.nan)
    rec_grad_sq = np.full((n, record_steps.size), np.nan)
    lam_sq = lam**2
    if 0 in rec_pos:
        rec_risk[:, rec_pos[0]] = risk
        rec_ewa[:, rec_pos[0]] = ewa
        rec_grad_sq[:, rec_pos[0]] = c @ lam_sq
    group_done = np.zeros(int(group.max()) + 1 if n else 0, bool)
    q = np.empty_like(c)

    with np.errstate(over="ignore", invalid="ignore"):  # diverging rows are caught below
        t = 0
        while rows.size:
            t += 1
            # iterate: c ← α c + β λ (λ·c + σ²)   (risk holds ½λ·c of the previous step)
            np.multiply(c, alpha, out=c)
            c += (beta * (2.0 * risk + sig2))[:, None] * lam[None, :]
            # EWA with bias correction: τ_t = τ(1 − τ^t)/(1 − τ^{t+1})
            tau_w = tau[rows]
            tau_t = tau_w * (1.0 - tau_pow) / (1.0 - tau_pow * tau_w)
            tau_pow *= tau_w
            np.multiply(rho, p, out=q)
            a1 = tau_t[:, None]
            a2 = (1.0 - tau_t)[:, None]
            s *= a1 * a1
            s += (2.0 * a1 * a2) * q + (a2 * a2) * c
            np.multiply(q, a1, out=p)
            p += a2 * c
            risk = c @ half_lam
            ewa = s @ half_lam

            if t in rec_pos:
                rec_risk[rows, rec_pos[t]] = risk
                rec_ewa[rows, rec_pos[t]] = ewa
                rec_grad_sq[rows, rec_pos[t]] = c @ lam_sq
            stop = max_steps[rows] <= t
            bad = ~(ewa < _DIVERGED) | ~(risk < _DIVERGED)
            if target is not None:
                hit = ewa <= target
                hit_step[rows[hit]] = t
                group_done[group[rows[hit]]] = True
                stop |= hit | group_done[group[rows]]
            stop |= bad
            if stop.any():
                idx = rows[stop]
                steps[idx] = t
                final_risk[idx] = np.where(bad[stop], np.inf, risk[stop])
                final_ewa[idx] = np.where(bad[stop], np.inf, ewa[stop])
                keep = ~stop
                rows = rows[keep]
                c, p, s, q = c[keep], p[keep], s[keep], q[keep]
                alpha, rho, beta, tau_pow, risk = (
                    alpha[keep],
                    rho[keep],
                    beta[keep],
                    tau_pow[keep],
                    risk[keep],
                )
    return RiskTrace(steps, final_risk, final_ewa, hit_step, record_steps, rec_risk, rec_ewa, rec_grad_sq)
