"""L(N, D) figures: loss vs D per model size with the fitted surface, iso-FLOP curves, compute-optimal frontier."""

from __future__ import annotations

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from cbs.fit import ScalingLawFit
from cbs.plots.style import ORDERED_CMAP, log_axis, new_figure, styled

N_BANDS = 6  # model-size bands (panel a) and compute budgets (panels b, c)


def log_bands(values: np.ndarray, k: int = N_BANDS) -> tuple[np.ndarray, np.ndarray]:
    """Split ``values`` into ≤ k equal-width bands in log space: (band index per value, band centres)."""
    logv = np.log10(values)
    if np.ptp(logv) == 0:
        return np.zeros(values.size, int), np.array([values[0]])
    edges = np.linspace(logv.min(), logv.max(), k + 1)
    index = np.clip(np.digitize(logv, edges[1:-1]), 0, k - 1)
    centres = 10 ** ((edges[:-1] + edges[1:]) / 2)
    used = np.unique(index)
    return np.searchsorted(used, index), centres[used]


def _colorbar(fig: Figure, ax, norm: LogNorm, label: str) -> None:
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=ORDERED_CMAP), ax=ax, pad=0.02, aspect=30)
    bar.set_label(label)


@styled
def scaling_law_figure(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, fit: ScalingLawFit, *, excluded: np.ndarray | None = None
) -> Figure:
    """Three panels from points (N, D, L) and their fit; ``excluded`` marks points left out of the fit.

    (a) L vs D, points coloured by N, with L̂(N_band, D) per model-size band (``gid="surface:<i>"``);
    (b) iso-FLOP: L̂(N, C/6N) vs N per compute budget (``gid="isoflop:<i>"``) with its minimum at
        N_opt(C) (``gid="isoflop-opt:<i>"``) and the points within that budget's band;
    (c) the compute-optimal N_opt(C) and D_opt(C) (``gid="frontier-n"`` / ``"frontier-d"``) with the
        lowest-loss point of each budget band.
    """
    n, d, loss = (np.asarray(v, dtype=np.float64) for v in (n, d, loss))
    excluded = np.zeros(n.size, bool) if excluded is None else np.asarray(excluded, bool)
    flops = 6.0 * n * d
    fig, axes = new_figure(3, height=2.7, width=7.0)
    ax_d, ax_iso, ax_opt = axes[0]

    # (a) loss vs D per model-size band
    n_norm = LogNorm(n.min(), n.max())
    band, centres = log_bands(n)
    d_grid = np.geomspace(d.min() / 1.5, d.max() * 1.5, 120)
    ax_d.scatter(
        d[~excluded], loss[~excluded], c=n[~excluded], cmap=ORDERED_CMAP, norm=n_norm, s=9, lw=0, gid="points"
    )
    if excluded.any():
        ax_d.scatter(
            d[excluded],
            loss[excluded],
            marker="x",
            color="0.4",
            s=14,
            lw=0.8,
            label="excluded",
            gid="excluded",
        )
    for i, centre in enumerate(centres):
        ax_d.plot(
            d_grid,
            fit.predict(np.full_like(d_grid, centre), d_grid),
            color=ORDERED_CMAP(n_norm(centre)),
            lw=1.1,
            gid=f"surface:{i}",
        )
    ax_d.set_xlabel("Training tokens D")
    ax_d.set_ylabel("Loss (nats/token)")
    ax_d.set_title("(a) Loss vs data per N")
    log_axis(ax_d, "x")
    log_axis(ax_d, "y")
    _colorbar(fig, ax_d, n_norm, "Model size N (params)")

    # (b) iso-FLOP curves
    c_norm = LogNorm(flops.min(), flops.max())
    c_band, budgets = log_bands(flops)
    n_opt, d_opt = fit.compute_optimal(budgets)
    for i, budget in enumerate(budgets):
        color = ORDERED_CMAP(c_norm(budget))
        members = (c_band == i) & ~excluded
        ax_iso.scatter(n[members], loss[members], color=color, s=9, lw=0)
        n_grid = np.geomspace(n.min() / 2, n.max() * 2, 160)
        ax_iso.plot(
            n_grid, fit.predict(n_grid, budget / (6.0 * n_grid)), color=color, lw=1.1, gid=f"isoflop:{i}"
        )
        ax_iso.plot(
            [n_opt[i]],
            fit.predict(n_opt[i], budget / (6.0 * n_opt[i])),
            "*",
            color=color,
            ms=10,
            mec="black",
            mew=0.5,
            gid=f"isoflop-opt:{i}",
        )
    ax_iso.set_ylim(loss[~excluded].min() * 0.97, np.percentile(loss[~excluded], 98) * 1.02)
    ax_iso.set_xlabel("Model size N (params)")
    ax_iso.set_ylabel("Loss (nats/token)")
    ax_iso.set_title("(b) Iso-FLOP, ★ optimum")
    log_axis(ax_iso, "x")
    log_axis(ax_iso, "y")
    _colorbar(fig, ax_iso, c_norm, "Compute C = 6ND (FLOP)")

    # (c) compute-optimal frontier
    c_grid = np.geomspace(flops.min(), flops.max() * 100, 100)
    frontier_n, frontier_d = fit.compute_optimal(c_grid)
    ax_opt.plot(c_grid, frontier_n, "-", color="#0072B2", label="$N_{opt}$ (params)", gid="frontier-n")
    ax_opt.plot(c_grid, frontier_d, "-", color="#D55E00", label="$D_{opt}$ (tokens)", gid="frontier-d")
    in_band = [np.flatnonzero((c_band == i) & ~excluded) for i in range(budgets.size)]
    best = np.array([idx[np.argmin(loss[idx])] for idx in in_band if idx.size])
    if best.size:
        ax_opt.plot(
            flops[best],
            n[best],
            "o",
            color="#0072B2",
            mfc="none",
            label="lowest-loss N per budget",
            gid="empirical-n",
        )
    ax_opt.axvline(flops.max(), color="0.5", lw=0.8, ls=":")
    ax_opt.set_xlabel("Compute C (FLOP)")
    ax_opt.set_ylabel("Parameters / tokens")
    ax_opt.set_title("(c) Compute-optimal allocation")
    log_axis(ax_opt, "x", powers=True)
    log_axis(ax_opt, "y")
    ax_opt.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.34), fontsize=7, frameon=False
    )  # below: no room inside
    a = fit.alpha / (fit.alpha + fit.beta)
    fig.suptitle(
        f"{fit.form.capitalize()} fit on {fit.n_points} points: E = {fit.E:.3f}, A = {fit.A:.4g}, B = {fit.B:.4g}, "
        f"α = {fit.alpha:.3f}, β = {fit.beta:.3f}\n"
        f"compute-optimal $N_{{opt}} \\propto C^{{{1 - a:.2f}}}$, $D_{{opt}} \\propto C^{{{a:.2f}}}$"
        + ("  (× = excluded)" if excluded.any() else "")
    )
    return fig
