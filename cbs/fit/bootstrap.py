"""Bootstrap helpers shared by the fits: resampling plans, percentile intervals and input checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cbs.errors import FitError

CI_LEVEL = 0.95


def as_finite_array(values: object, name: str, *, positive: bool = False) -> np.ndarray:
    """``values`` as a 1-D float64 array, refusing non-finite (and, if asked, non-positive) entries."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise FitError(
            f"{name} has {int(bad.sum())} non-finite value(s) (NaN or inf) at index {np.flatnonzero(bad)[:5]}; "
            "drop or fix those rows before fitting"
        )
    if positive and (arr <= 0).any():
        raise FitError(f"{name} must be > 0 for a fit on logarithms; found {arr[arr <= 0][:5]}")
    return arr


def require_points(n: int, minimum: int, what: str) -> None:
    """Refuse a fit with fewer than ``minimum`` points."""
    if n < minimum:
        raise FitError(f"too few points to fit {what}: got {n}, need at least {minimum}; measure more points")


def percentile_ci(samples: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """Percentile interval(s) of bootstrap ``samples`` along axis 0: shape (2, ...) = (lower, upper).

    Infinite samples (an unbounded CBS) stay infinite at the ends; no samples give NaN bounds."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape[0] == 0:
        return np.full((2, *samples.shape[1:]), np.nan)
    big = np.finfo(np.float64).max
    tail = 100.0 * (1.0 - level) / 2.0
    out = np.nanpercentile(np.clip(samples, -big, big), [tail, 100.0 - tail], axis=0)
    return np.where(np.abs(out) >= big / 2, np.copysign(np.inf, out), out)


def ci_tuple(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of a 1-D sample as a (lower, upper) tuple of floats."""
    lo, hi = percentile_ci(samples, level)
    return float(lo), float(hi)


def residual_draws(
    fitted: np.ndarray, residuals: np.ndarray, n_params: int, *, n_boot: int, seed: int
) -> np.ndarray:
    """Residual-bootstrap responses for a fixed design: (n_boot, n) rows ``fitted + r*``, ``r*`` drawn with
    replacement from the centred residuals inflated by sqrt(n / (n - p)) for the p fitted parameters. Row i
    is the i-th draw of the seeded stream, so a batched refit sees the resamples a serial one would."""
    n = fitted.size
    scale = np.sqrt(n / max(n - n_params, 1))
    centred = (residuals - residuals.mean()) * scale
    return fitted + np.random.default_rng(seed).choice(centred, size=(max(n_boot, 0), n), replace=True)


def residual_bootstrap(
    fitted: np.ndarray,
    residuals: np.ndarray,
    n_params: int,
    refit: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int,
    seed: int,
) -> np.ndarray:
    """Residual bootstrap (`residual_draws`) refitted one resample at a time.

    ``refit`` maps a response vector to a parameter vector (raising FitError when it cannot; that resample
    is left out). Returns (n_ok, n_params_out) samples; FitError if every resample failed.
    """
    if n_boot <= 0:
        return np.empty((0, np.size(refit(fitted))))  # no resamples: shaped like one refit
    out = []
    for draw in residual_draws(fitted, residuals, n_params, n_boot=n_boot, seed=seed):
        try:
            out.append(refit(draw))
        except FitError:
            continue
    if not out:
        raise FitError("every bootstrap resample failed to fit; the data are too few or degenerate")
    return np.asarray(out, dtype=np.float64)


def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Pairs-bootstrap plan as multiplicities: (n_boot, n) integer counts of each point in each resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), dtype=np.float64)
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)
    return counts
