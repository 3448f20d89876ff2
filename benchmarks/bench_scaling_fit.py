"""Benchmark: cbs's batched multi-start Chinchilla fit against a plain scipy multi-start, same data, same run.

The baseline is what a careful reimplementation of Besiroglu et al. does: for each start of the 4500-point
grid, scipy.optimize.minimize(method="L-BFGS-B") on the summed Huber (δ = 1e-3) of log residuals, with
scipy's finite-difference gradient and default tolerances. Running all 4500 starts serially takes minutes,
so by default a seeded random subset is timed and the time extrapolated linearly to 4500 (said in the
output); ``--baseline-starts 4500`` runs the whole grid.

    PYTHONPATH=. python benchmarks/bench_scaling_fit.py [--baseline-starts 300] [--n-boot 1000]
"""

from __future__ import annotations

import os

# One BLAS thread for both contenders: on a busy box, idle-spinning BLAS threads slow scipy's many tiny
# L-BFGS-B calls several-fold, which would flatter the speed-up. Set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import huber, logsumexp  # noqa: E402

from cbs.fit.scaling_law import fit_scaling_law, start_grid  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla" / "svg_extracted_data.csv"


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    df = pd.read_csv(path).sort_values("loss").iloc[:-5]  # Besiroglu et al. drop the 5 highest losses
    n = df["Model Size"].to_numpy(float)
    return n, df["Training FLOP"].to_numpy(float) / (6 * n), df["loss"].to_numpy(float)


def plain_objective(p: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray) -> float:
    a, b, e, alpha, beta = p
    pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return float(np.sum(huber(1e-3, pred - log_l)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Chinchilla svg_extracted_data.csv")
    parser.add_argument("--baseline-starts", type=int, default=300, help="starts the scipy baseline runs")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the cbs timing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start subset and bootstrap")
    args = parser.parse_args()
    n, d, loss = load(args.data)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)

    grid = start_grid("chinchilla", 4500, args.seed)
    subset = grid[np.random.default_rng(args.seed).permutation(len(grid))[: args.baseline_starts]]
    base, per_start = [], []
    for x0 in subset:
        t0 = time.perf_counter()
        base.append(minimize(plain_objective, x0, args=(log_n, log_d, log_l), method="L-BFGS-B"))
        per_start.append(time.perf_counter() - t0)
    t_sub = float(np.sum(per_start))
    t_base = t_sub * len(grid) / len(subset)
    f_base = min(r.fun for r in base)
    how = (
        "measured" if len(subset) == len(grid) else f"extrapolated from {len(subset)} starts ({t_sub:.1f} s)"
    )
    print(f"points: {n.size}   starts: {len(grid)}")
    print(f"scipy baseline   : {t_base:8.1f} s  ({how}), best objective {f_base:.10g}", flush=True)
    q = np.percentile(per_start, [50, 90, 100])
    print(f"  per start: median {q[0]:.3f} s, 90% {q[1]:.3f} s, max {q[2]:.3f} s", flush=True)

    t0 = time.perf_counter()
    fit = fit_scaling_law(n, d, loss, form="chinchilla", n_starts=4500, n_boot=0, seed=args.seed)
    t_cbs = time.perf_counter() - t0
    t0 = time.perf_counter()
    booted = fit_scaling_law(n, d, loss, form="chinchilla", n_starts=4500, n_boot=args.n_boot, seed=args.seed)
    t_boot = time.perf_counter() - t0 - t_cbs
    f_cbs = plain_objective(fit.params, log_n, log_d, log_l)

    how = (
        "measured" if len(subset) == len(grid) else f"extrapolated from {len(subset)} starts ({t_sub:.1f} s)"
    )
    print(f"cbs batched fit  : {t_cbs:8.2f} s, objective {f_cbs:.10g}")
    print(f"speed-up         : {t_base / t_cbs:8.1f}x")
    print(f"objective (cbs - scipy)/scipy: {(f_cbs - f_base) / f_base:+.2e}  (negative: cbs lower)")
    print(
        f"bootstrap        : {args.n_boot} resamples in {t_boot:.2f} s (fit with bootstrap minus fit without)"
    )
    ci = booted.intervals()
    print(
        f"fit: E={fit.E:.4f} A={fit.A:.1f} B={fit.B:.1f} alpha={fit.alpha:.4f} beta={fit.beta:.4f}; 95% CI "
        + ", ".join(f"{k} {lo:.3g}-{hi:.3g}" for k, (lo, hi) in ci.items())
    )


if __name__ == "__main__":
    main()
