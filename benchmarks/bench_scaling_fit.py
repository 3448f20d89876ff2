"""Benchmark: cbs's batched multi-start Chinchilla fit against scipy multi-starts, same data, same starts, one run.

Three contenders over the 4500-start grid on the 240 Chinchilla points (the 5 highest losses dropped):
  cbs        ``fit_scaling_law`` (the objective at all 4500 starts, a batched L-BFGS from the 256 lowest, the
             best 8 optima polished by scipy in whitened coordinates); its wall time is the median of 3 runs;
  scipy+grad scipy.optimize.minimize(method="L-BFGS-B", jac=True) per start with the analytic gradient of the
             same summed Huber (δ = 1e-3) of log residuals — the fair baseline;
  scipy FD   the same without a gradient (scipy's finite differences) — labelled as such, it flatters cbs.
Both scipy runs use scipy's default tolerances. Serial scipy over all 4500 starts takes minutes, so
``--baseline-starts K`` times a seeded random subset and extrapolates linearly to 4500 (said in the output).
Prints wall time, objective evaluations (point evaluations, finite-difference ones included), the best
objective of each, the ratios, and how far apart the optima are; then the CPU time of the 1000-resample
bootstrap inside ``fit_scaling_law`` (its ``_bootstrap`` step timed alone) and the load average.

    PYTHONPATH=. python benchmarks/bench_scaling_fit.py [--baseline-starts 450] [--n-boot 1000]
"""

from __future__ import annotations

import os

# One BLAS thread for all contenders: on a busy box, idle-spinning BLAS threads slow scipy's many tiny
# L-BFGS-B calls several-fold, which would flatter the speed-up. Set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from cbs.fit import scaling_law  # noqa: E402
from cbs.fit.scaling_law import ScalingLawFit, fit_scaling_law, huber_objective, start_grid  # noqa: E402
from cbs.fit.scaling_objective import HUBER_DELTA as DELTA  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla" / "svg_extracted_data.csv"


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    df = pd.read_csv(path).sort_values("loss").iloc[:-5]  # Besiroglu et al. drop the 5 highest losses
    n = df["Model Size"].to_numpy(float)
    return n, df["Training FLOP"].to_numpy(float) / (6 * n), df["loss"].to_numpy(float)


def plain_objective_and_grad(
    p: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray
) -> tuple[float, np.ndarray]:
    """Summed Huber (δ = 1e-3) of log residuals of one parameter vector, and its analytic gradient."""
    a, b, e, alpha, beta = p
    t = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = t.max(axis=0)
    w = np.exp(t - top)
    total = w.sum(axis=0)
    r = top + np.log(total) - log_l
    w /= total
    absr = np.abs(r)
    f = np.where(absr <= DELTA, 0.5 * r * r, DELTA * (absr - 0.5 * DELTA)).sum()
    psi = np.clip(r, -DELTA, DELTA)
    pw = psi * w
    grad = np.array([pw[0].sum(), pw[1].sum(), pw[2].sum(), -(pw[0] * log_n).sum(), -(pw[1] * log_d).sum()])
    return float(f), grad


def plain_objective(p: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray) -> float:
    """The objective alone, for scipy's finite differences."""
    return plain_objective_and_grad(p, log_n, log_d, log_l)[0]


@dataclass(frozen=True)
class Timed:
    """One contender over the 4500 starts: wall seconds, objective evaluations, best objective and its point."""

    name: str
    seconds: float
    evaluations: int
    objective: float
    params: np.ndarray
    how: str


def scipy_multistart(name: str, starts: np.ndarray, n_grid: int, data: tuple, gradient: bool) -> Timed:
    """L-BFGS-B from every start (scipy defaults), timed; time and evaluations extrapolated to ``n_grid``."""
    fun = plain_objective_and_grad if gradient else plain_objective
    t0 = time.perf_counter()
    runs = [minimize(fun, x0, args=data, jac=gradient, method="L-BFGS-B") for x0 in starts]
    seconds = time.perf_counter() - t0
    best = min(runs, key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
    scale = n_grid / len(starts)
    how = "measured" if scale == 1 else f"extrapolated from {len(starts)} starts ({seconds:.1f} s)"
    evals = int(sum(r.nfev for r in runs) * scale)
    return Timed(name, seconds * scale, evals, float(best.fun), best.x, how)


def cbs_fit(n: np.ndarray, d: np.ndarray, loss: np.ndarray, seed: int, repeats: int = 3) -> Timed:
    """``fit_scaling_law`` over the 4500-start grid, the median wall time of ``repeats`` runs; its
    evaluations counted in a further, untimed run."""
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fit_scaling_law(n, d, loss, form="chinchilla", n_starts=4500, n_boot=0, seed=seed)
        seconds.append(time.perf_counter() - t0)
    count = [0]

    def counted(p: np.ndarray, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        count[0] += len(p)
        return huber_objective(p, *args, **kwargs)

    scaling_law.huber_objective = counted
    try:
        fit_scaling_law(n, d, loss, form="chinchilla", n_starts=4500, n_boot=0, seed=seed)
    finally:
        scaling_law.huber_objective = huber_objective
    how = f"median of {repeats} runs"
    return Timed("cbs batched", float(np.median(seconds)), count[0], fit.objective, fit.params, how)


def bootstrap_cpu(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, n_boot: int, seed: int
) -> tuple[float, ScalingLawFit]:
    """CPU seconds of the bootstrap step of one ``fit_scaling_law`` call with ``n_boot`` resamples, and the fit."""
    inner = scaling_law._bootstrap
    spent = [0.0]

    def timed(*args: object) -> np.ndarray:
        t0 = time.process_time()
        out = inner(*args)
        spent[0] += time.process_time() - t0
        return out

    scaling_law._bootstrap = timed
    try:
        fit = fit_scaling_law(n, d, loss, form="chinchilla", n_starts=4500, n_boot=n_boot, seed=seed)
    finally:
        scaling_law._bootstrap = inner
    return spent[0], fit


def _load() -> str:
    return "load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Chinchilla svg_extracted_data.csv")
    parser.add_argument("--baseline-starts", type=int, default=450, help="starts each scipy baseline runs")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the cbs timing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start subset and bootstrap")
    args = parser.parse_args()
    if not 1 <= args.baseline_starts <= 4500:
        parser.error(f"--baseline-starts must be in 1..4500, got {args.baseline_starts}")
    n, d, loss = load(args.data)
    data = (np.log(n), np.log(d), np.log(loss))
    p0 = start_grid("chinchilla", 3, args.seed)
    f_ref, g_ref = huber_objective(p0, *data, np.ones(n.size), "chinchilla")
    for i, x in enumerate(p0):  # the baselines minimise exactly cbs's objective
        f, g = plain_objective_and_grad(x, *data)
        np.testing.assert_allclose([f, *g], [f_ref[i], *g_ref[i]], rtol=1e-10, atol=1e-12)

    grid = start_grid("chinchilla", 4500, args.seed)
    subset = grid[np.sort(np.random.default_rng(args.seed).permutation(len(grid))[: args.baseline_starts])]
    print(f"points: {n.size}   starts: {len(grid)}   scipy baselines over {len(subset)} of them", flush=True)
    print(_load(), flush=True)
    ours = cbs_fit(n, d, loss, args.seed)
    rows = [
        ours,
        scipy_multistart("scipy L-BFGS-B, analytic gradient", subset, len(grid), data, gradient=True),
        scipy_multistart("scipy L-BFGS-B, finite differences", subset, len(grid), data, gradient=False),
    ]
    print(f"{'':36s} {'wall s':>9s} {'evaluations':>12s} {'best objective':>18s} {'x cbs time':>10s}")
    for r in rows:
        print(
            f"{r.name:36s} {r.seconds:9.2f} {r.evaluations:12d} {r.objective:18.12g} "
            f"{r.seconds / ours.seconds:9.1f}x  {r.how}"
        )
    for r in rows[1:]:
        print(
            f"optimum vs {r.name}: objective (cbs - scipy)/scipy {(ours.objective - r.objective) / r.objective:+.2e}"
            f" (negative: cbs lower), largest parameter difference {np.abs(ours.params - r.params).max():.2e}"
        )

    cpu, booted = bootstrap_cpu(n, d, loss, args.n_boot, args.seed)
    print(
        f"bootstrap: {args.n_boot} resamples in {cpu:.2f} CPU s (the bootstrap step of fit_scaling_law, one core)"
    )
    ci = booted.intervals()
    print(
        f"fit: E={booted.E:.4f} A={booted.A:.1f} B={booted.B:.1f} alpha={booted.alpha:.4f} beta={booted.beta:.4f}; "
        + "95% CI "
        + ", ".join(f"{k} {lo:.3g}-{hi:.3g}" for k, (lo, hi) in ci.items())
    )
    print(_load())


if __name__ == "__main__":
    main()
