"""The L(N, D) fit's objective: summed Huber loss of log residuals and its analytic gradient, for many
parameter rows at once.

Chinchilla form  log L̂ = LSE(a − α·log N, b − β·log D, e)
Kaplan form      log L̂ = LSE(β·LSE((α/β)(a − log N), b − log D), e)
with a = log A, b = log B, e = log E. Rows are evaluated in blocks of ``BLOCK`` so that the (rows, points)
temporaries stay in cache; the Chinchilla form shifts each row's exponentials by a bound of its largest
term computed from the parameters alone (one exp per term and point, no elementwise max), and contracts the
gradient with matrix products.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

FORMS = ("chinchilla", "kaplan")
HUBER_DELTA = 1e-3
BLOCK = 128  # parameter rows per block: 128 x 240 points x 8 bytes = 245 kB per temporary

Contract = Callable[[np.ndarray], np.ndarray]  # ψ-weights (k, n) -> gradient (k, 5)


def _lse(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log Σ exp(t) and the softmax weights of each term."""
    top = np.maximum.reduce(terms)
    exps = [np.exp(t - top) for t in terms]
    total = sum(exps)
    return top + np.log(total), [x / total for x in exps]


def _row_max(coef: np.ndarray, offset: np.ndarray, x: np.ndarray) -> np.ndarray:
    """max over points of ``offset − coef·x`` per row, from the extremes of ``x``."""
    return offset - np.where(coef >= 0, coef * x.min(), coef * x.max())


def _chinchilla(p: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> tuple[np.ndarray, Contract]:
    a, b, e, alpha, beta = p.T
    top = np.maximum(np.maximum(_row_max(alpha, a, log_n), _row_max(beta, b, log_d)), e)
    u1 = np.exp((a - top)[:, None] - alpha[:, None] * log_n)  # each term / e^top, all ≤ 1
    u2 = np.exp((b - top)[:, None] - beta[:, None] * log_d)
    u3 = np.exp(e - top)
    total = u1 + u2
    total += u3[:, None]
    pred = np.log(total)
    pred += top[:, None]

    def contract(q: np.ndarray) -> np.ndarray:
        q = q / total  # ψ times d log L̂ / d(term) = ψ·u_i/total
        g = np.empty((p.shape[0], 5))
        g[:, [0, 3]] = (q * u1) @ np.stack([np.ones_like(log_n), -log_n], axis=1)
        g[:, [1, 4]] = (q * u2) @ np.stack([np.ones_like(log_d), -log_d], axis=1)
        g[:, 2] = u3 * q.sum(axis=1)
        return g

    return pred, contract


def _kaplan(p: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> tuple[np.ndarray, Contract]:
    a, b, e, alpha, beta = (p[:, j : j + 1] for j in range(5))
    safe_beta = np.where(beta > 1e-6, beta, np.nan)  # β ≤ 0 is outside the Kaplan form: objective = nan
    an = a - log_n
    inner, (v1, v2) = _lse(alpha / safe_beta * an, b - log_d)
    pred, (wt, we) = _lse(safe_beta * inner, np.broadcast_to(e, (p.shape[0], log_n.size)))
    jac = (wt * v1 * alpha, wt * safe_beta * v2, we, wt * v1 * an, wt * (inner - v1 * alpha * an / safe_beta))

    def contract(q: np.ndarray) -> np.ndarray:
        return np.stack([np.einsum("kn,kn->k", q, j) for j in jac], axis=1)

    return pred, contract


_FORWARD = {"chinchilla": _chinchilla, "kaplan": _kaplan}


def log_prediction(params: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, form: str) -> np.ndarray:
    """log L̂ for parameter rows (k, 5) at points (n,): shape (k, n)."""
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return np.vstack(
            [_FORWARD[form](p[i : i + BLOCK], log_n, log_d)[0] for i in range(0, p.shape[0], BLOCK)]
            or [np.empty((0, log_n.size))]
        )


def huber_objective(
    p: np.ndarray,
    log_n: np.ndarray,
    log_d: np.ndarray,
    log_l: np.ndarray,
    weights: np.ndarray,
    form: str,
    delta: float = HUBER_DELTA,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed Huber loss (δ = ``delta``) of log residuals for rows of ``p`` (k, 5), each point counted
    ``weights`` times — one vector (n,) for every row or one per row (k, n) — and its gradient (k, 5).
    A row whose objective or gradient is not finite gets f = inf and a zero gradient."""
    forward = _FORWARD[form]
    k = p.shape[0]
    f, g = np.empty(k), np.empty((k, 5))
    per_row = weights.ndim == 2
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for lo in range(0, k, BLOCK):
            rows = slice(lo, lo + BLOCK)
            w = weights[rows] if per_row else weights
            r, contract = forward(p[rows], log_n, log_d)
            r -= log_l
            c = np.clip(r, -delta, delta)  # ψ(r); the Huber loss is c·(r − c/2)
            rho = c * (r - 0.5 * c)
            f[rows] = np.einsum("kn,kn->k", rho, w) if per_row else rho @ w
            c *= w
            g[rows] = contract(c)
    bad = ~np.isfinite(f) | ~np.isfinite(g).all(axis=1)
    f[bad] = np.inf
    g[bad] = 0.0
    return f, g
