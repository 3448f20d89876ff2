"""S(B) = a + b·B^-α fitted on log S for many step vectors at once (a bootstrap's resamples), and its CBS.

One bounded least-squares problem per row — min Σ_i (log(a + b·B_i^-α) − y_i)², a, b ≥ 0, α in
``ALPHA_BOUNDS`` (or α = 1) — solved together by a projected Levenberg–Marquardt in numpy array operations,
from the same start and in the same scaled variables as `cbs.fit.critical_batch`'s scipy ``least_squares``
fit, to the same optimum within solver tolerance (tests/test_fit_hyperbola.py). The CBS of each row is the
root of B·S(B) = (1 + o)·B_opt·S(B_opt), found for all rows at once by bisection on log B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA_BOUNDS = (0.05, 4.0)
MAX_ITER = 200
TOL = 1e-13  # relative decrease of the cost, and step size in scaled variables, that ends a row
TINY = 1e-300  # floor of the model before its log, as in the scipy fit


@dataclass(frozen=True)
class HyperbolaBatch:
    """Fitted (a, b[, α]) per row and whether each row converged (a row that did not is NaN)."""

    params: np.ndarray  # (rows, 2 or 3)
    converged: np.ndarray  # (rows,) bool


def model(params: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """S(B) = a + b·B^-α for parameter rows (k, 2|3) (α = 1 with two columns) at batch sizes (n,): (k, n)."""
    p = np.atleast_2d(params)
    alpha = p[:, 2:3] if p.shape[1] > 2 else 1.0
    return p[:, 0:1] + p[:, 1:2] * batch[None, :] ** -alpha


def start_and_scale(
    batch: np.ndarray, log_steps: np.ndarray, free_alpha: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the start (a non-negative linear fit of S on 1/B, relative-error weighted; α = 1) and the
    variables' scale (min S, max S·min B[, 1]). Shapes (k, 2|3) each."""
    steps = np.exp(np.atleast_2d(log_steps))
    inv = 1.0 / batch
    w = 1.0 / steps  # design rows (1, 1/B)/S against a target of ones
    s00, s01, s11 = (w * w).sum(1), (w * w * inv).sum(1), (w * w * inv * inv).sum(1)
    t0, t1 = w.sum(1), (w * inv).sum(1)
    det = s00 * s11 - s01 * s01
    start = np.column_stack([(s11 * t0 - s01 * t1) / det, (s00 * t1 - s01 * t0) / det])
    scale = np.column_stack([steps.min(1), steps.max(1) * batch.min()])
    start = np.maximum(np.nan_to_num(start, nan=0.0), 1e-3 * scale)
    if free_alpha:
        ones = np.ones((start.shape[0], 1))
        start, scale = np.hstack([start, ones]), np.hstack([scale, ones])
    return start, scale


def _bounds(dim: int) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = np.zeros(dim), np.full(dim, np.inf)
    if dim > 2:
        lower[2], upper[2] = ALPHA_BOUNDS
    return lower, upper


def _residuals(x: np.ndarray, batch: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals (k, n) of log S and their Jacobian (k, n, dim) in the unscaled parameters."""
    alpha = x[:, 2:3] if x.shape[1] > 2 else 1.0
    power = batch[None, :] ** -alpha
    m = np.maximum(x[:, 0:1] + x[:, 1:2] * power, TINY)
    cols = [1.0 / m, power / m]
    if x.shape[1] > 2:
        cols.append(-x[:, 1:2] * power * np.log(batch)[None, :] / m)
    return np.log(m) - y, np.stack(cols, axis=2)


def fit_hyperbolas(batch: np.ndarray, log_steps: np.ndarray, free_alpha: bool) -> HyperbolaBatch:
    """Fit S = a + b/B (or a + b·B^-α) to every row of ``log_steps`` (k, n) at batch sizes ``batch`` (n,).

    Guarantees: each converged row is a stationary point of its bounded problem (projected gradient and
    relative cost change below solver tolerance), started where the scipy fit starts."""
    y = np.atleast_2d(np.asarray(log_steps, dtype=np.float64))
    x, scale = start_and_scale(batch, y, free_alpha)
    lower, upper = _bounds(x.shape[1])
    lo, hi = lower / scale, upper / scale  # bounds in scaled variables z = x / scale
    z = x / scale
    r, jac = _residuals(x, batch, y)
    cost = 0.5 * (r * r).sum(1)
    lam = np.full(len(y), 1e-3)
    done = np.zeros(len(y), bool)
    eye = np.eye(x.shape[1])
    for _ in range(MAX_ITER):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        js = jac[act] * scale[act, None, :]
        g = np.einsum("kni,kn->ki", js, r[act])
        h = np.einsum("kni,knj->kij", js, js)
        za = z[act]
        pinned = ((za <= lo[act]) & (g > 0)) | ((za >= hi[act]) & (g < 0))  # bound holds the variable
        free = ~pinned
        mask = free[:, :, None] & free[:, None, :]
        diag = np.einsum("kii->ki", h)
        ridge = np.where(free, lam[act, None] * np.maximum(diag, 1e-12), 1.0)
        damped = np.where(mask, h, 0.0) + ridge[:, :, None] * eye
        step = -np.linalg.solve(damped, np.where(free, g, 0.0)[:, :, None])[:, :, 0]
        z_new = np.clip(za + step, lo[act], hi[act])
        x_new = z_new * scale[act]
        r_new, jac_new = _residuals(x_new, batch, y[act])
        cost_new = 0.5 * (r_new * r_new).sum(1)
        better = cost_new < cost[act]
        keep = act[better]
        moved = np.abs(z_new - za).max(1)
        drop = cost[act] - np.where(better, cost_new, cost[act])
        z[keep], r[keep], jac[keep], cost[keep] = (
            z_new[better],
            r_new[better],
            jac_new[better],
            cost_new[better],
        )
        lam[act] = np.where(better, np.maximum(lam[act] / 3.0, 1e-12), lam[act] * 4.0)
        pg = np.abs(np.where(free, g, 0.0)).max(1)
        small = (better & (drop <= TOL * np.maximum(cost[act], TINY)) & (moved <= 1e-8)) | (pg <= 1e-14)
        done[act] = small | (lam[act] > 1e12)  # no step lowers the cost: a (numerical) minimum
    params = z * scale
    params[~done] = np.nan
    return HyperbolaBatch(params=params, converged=done)


def cbs_of(params: np.ndarray, b_opt: float, overhead: float) -> np.ndarray:
    """B* per parameter row (k, 2|3): the largest B with B·S(B) ≤ (1 + o)·B_opt·S(B_opt) — (1+o)·B_opt + o·b/a
    at α = 1, else the root on log B (B·S is convex in log B), to float precision. inf where B·S(B) never
    reaches the budget (a = 0 and α ≥ 1: linear scaling never breaks). With a = 0 and α < 1 the root is
    B_opt·(1 + o)^(1/(1−α))."""
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    a, b = p[:, 0], p[:, 1]
    alpha = p[:, 2] if p.shape[1] > 2 else np.ones(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = np.where(a > 0, (1 + overhead) * b_opt + overhead * b / a, np.inf)
    budget = (1 + overhead) * b_opt * model(p, np.array([b_opt]))[:, 0]

    def excess(u: np.ndarray) -> np.ndarray:
        return a * np.exp(u) + b * np.exp((1.0 - alpha) * u) - budget

    lo = np.full(len(p), np.log(b_opt))
    hi = lo + 1.0
    for _ in range(200):  # bracket: B·S grows without bound unless a = 0 and α ≥ 1
        short = excess(hi) < 0
        if not short.any():
            break
        hi[short] += 1.0
    reached = excess(hi) >= 0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = excess(mid) < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    root = np.where(reached, np.exp(0.5 * (lo + hi)), np.inf)
    return np.where(alpha == 1.0, closed, root)
