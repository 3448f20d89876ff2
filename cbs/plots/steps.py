"""Steps-to-target vs batch size (log2–log2): measured points, the fitted hyperbola, linear scaling, the CBS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from cbs.fit import CbsFit
from cbs.plots.style import human, log2_axis, new_figure, ordered_colors, styled


@dataclass(frozen=True)
class CbsGroup:
    """One (model size, data size) cell and its S(B) fit."""

    n_params: float
    data_tokens: float
    fit: CbsFit
    model: str = ""

    @property
    def label(self) -> str:
        name = self.model or f"N = {human(self.n_params)}"
        return f"{name}, D = {human(self.data_tokens)}"


def batch_grid(batch_sizes: np.ndarray, points: int = 200) -> np.ndarray:
    """Batch sizes for drawing a fitted curve: half an octave beyond the measured range on each side."""
    lo, hi = float(np.min(batch_sizes)), float(np.max(batch_sizes))
    return np.geomspace(lo / np.sqrt(2), hi * np.sqrt(2), points)


def linear_scaling(fit: CbsFit, batch: np.ndarray) -> np.ndarray:
    """Perfect linear scaling from the reference batch: S_lin(B) = S(B_opt)·B_opt/B (fitted S)."""
    return fit.predict(fit.b_opt) * fit.b_opt / batch


@styled
def steps_vs_batch(groups: Sequence[CbsGroup], *, title: str | None = None) -> Figure:
    """Two panels: steps to target vs batch size, and steps relative to the smallest batch size.

    Left: measured points, the fitted S(B) = a + b/B (``gid="hyperbola:<i>"``), the linear-scaling line
    through the fitted S(B_opt) (``gid="linear:<i>"``) and the CBS (``gid="cbs:<i>"``) with its interval.
    Right: the same divided by the measured steps at each group's smallest batch, with ideal linear scaling.
    """
    colors = ordered_colors(range(len(groups)))
    fig, axes = new_figure(2, width=6.4, height=2.8)
    ax, rel = axes[0]
    all_batches: set[float] = set()
    for i, group in enumerate(groups):
        fit, color = group.fit, colors[i]
        grid = batch_grid(fit.batch_sizes)
        all_batches.update(fit.batch_sizes.tolist())
        ax.plot(fit.batch_sizes, fit.steps, "o", color=color, label=group.label, gid=f"points:{i}")
        ax.plot(grid, fit.predict(grid), "-", color=color, lw=1.2, gid=f"hyperbola:{i}")
        ax.plot(grid, linear_scaling(fit, grid), ":", color=color, lw=1.0, gid=f"linear:{i}")
        y_cbs = float(fit.predict(fit.cbs))
        lo, hi = fit.cbs_ci
        ax.errorbar(
            [fit.cbs],
            [y_cbs],
            xerr=[[fit.cbs - lo], [hi - fit.cbs]],
            fmt="none",
            ecolor=color,
            lw=1.0,
            capsize=2,
        )
        ax.plot([fit.cbs], [y_cbs], "*", color=color, ms=10, mec="white", mew=0.6, gid=f"cbs:{i}")

        first = fit.steps[np.argmin(fit.batch_sizes)]
        rel.plot(fit.batch_sizes, fit.steps / first, "o-", color=color, lw=1.0, gid=f"relative:{i}")
    b = np.array(sorted(all_batches))
    grid = batch_grid(b)
    rel.plot(
        grid, b.min() / grid, "--", color="0.25", lw=1.0, label="ideal linear scaling", gid="relative-linear"
    )
    # Legend-only proxies for the line styles shared by every group.
    ax.plot([], [], "-", color="0.3", label="fit $S = a + b/B$")
    ax.plot([], [], ":", color="0.3", label="linear scaling from $B_{opt}$")
    ax.plot([], [], "*", color="0.3", ms=9, label="CBS (±95% CI)")
    for a in (ax, rel):
        log2_axis(a, "x", b)
        log2_axis(a, "y")
        a.set_xlabel("Batch size B (sequences)")
    ax.set_ylabel("Steps to target loss")
    rel.set_ylabel("Steps / steps at smallest B")
    ax.set_title("Steps to target")
    rel.set_title("Relative to the smallest batch")
    handles, labels = ax.get_legend_handles_labels()
    rel_h, rel_l = rel.get_legend_handles_labels()
    fig.legend(handles + rel_h[-1:], labels + rel_l[-1:], loc="outside lower center", ncol=3)
    if title:
        fig.suptitle(title)
    return fig
