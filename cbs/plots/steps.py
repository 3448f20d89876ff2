"""Steps-to-target vs batch size (log2–log2): measured points, the fitted hyperbola, linear scaling, the CBS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbs.fit import CbsFit, CbsGroup
from cbs.plots.style import human, log2_axis, new_figure, ordered_colors, shared_legend, styled


def group_label(group: CbsGroup) -> str:
    """'tiny-100k (N = 100k), D = 2M' for a (model, data size) group; ', lion' added for optimizers but AdamW."""
    suffix = "" if group.optimizer == "adamw" else f", {group.optimizer}"
    return f"{group.model} (N = {human(group.n_params)}), D = {human(group.data_tokens)}{suffix}"


def batch_grid(batch_sizes: np.ndarray, points: int = 200) -> np.ndarray:
    """Batch sizes for drawing a fitted curve: half an octave beyond the given range on each side."""
    lo, hi = float(np.min(batch_sizes)), float(np.max(batch_sizes))
    return np.geomspace(lo / np.sqrt(2), hi * np.sqrt(2), points)


def fit_span(fit: CbsFit) -> np.ndarray:
    """The batch sizes a group's curves must cover: the measured ones, B_opt and the CBS."""
    return np.append(fit.batch_sizes, [fit.b_opt, fit.cbs])


def linear_scaling(fit: CbsFit, batch: np.ndarray) -> np.ndarray:
    """Perfect linear scaling from the reference batch: S_lin(B) = S(B_opt)·B_opt/B (fitted S)."""
    return fit.predict(fit.b_opt) * fit.b_opt / batch


def warning_label(group: CbsGroup) -> str:
    """' ⚠ lr_edge, b_opt_floor' (the group's warning codes), '' for a group without warnings."""
    return (" ⚠ " + ", ".join(w.code for w in group.warnings)) if group.warnings else ""


def draw_steps(ax: Axes, groups: Sequence[CbsGroup], labels: Sequence[str] | None = None) -> None:
    """Measured steps, fitted hyperbola (``gid="hyperbola:<i>"``), linear scaling from B_opt
    (``gid="linear:<i>"``), the CBS with its interval (``gid="cbs:<i>"``) and the batch sizes that never
    reached the target as open triangles at the top of the axis (``gid="unreached:<i>"``), one colour per
    group; a group's legend entry ends with its warning codes (`warning_label`)."""
    colors = ordered_colors(range(len(groups)))
    labels = [
        label + warning_label(g) for label, g in zip(labels or map(group_label, groups), groups, strict=True)
    ]
    for i, group in enumerate(groups):
        fit, color = group.fitted, colors[i]
        grid = batch_grid(fit_span(fit))
        ax.plot(fit.batch_sizes, fit.steps, "o", color=color, label=labels[i], gid=f"points:{i}")
        if group.unreached_batch_sizes:  # x in data, y at the top of the axes: the "cap" of the plot
            ax.plot(group.unreached_batch_sizes, [0.96] * len(group.unreached_batch_sizes), "^", mfc="none",
                    mec=color, ms=6, mew=1.2, transform=ax.get_xaxis_transform(), gid=f"unreached:{i}")  # fmt: skip
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
    # Legend-only proxies for the line styles shared by every group.
    ax.plot([], [], "-", color="0.3", label="fit $S = a + b/B$")
    ax.plot([], [], ":", color="0.3", label="linear scaling from $B_{opt}$")
    ax.plot([], [], "*", color="0.3", ms=9, label="CBS (±95% CI)")
    if any(g.unreached_batch_sizes for g in groups):
        ax.plot([], [], "^", mfc="none", mec="0.3", ms=6, mew=1.2, label="target not reached (at top)")
    log2_axis(ax, "x")
    log2_axis(ax, "y")
    ax.set_xlabel("Batch size B (sequences)")
    ax.set_ylabel("Steps to target loss")


def draw_relative(ax: Axes, groups: Sequence[CbsGroup]) -> None:
    """Steps divided by the measured steps at each group's smallest batch (``gid="relative:<i>"``), with
    ideal linear scaling from the smallest batch overall (``gid="relative-linear"``)."""
    colors = ordered_colors(range(len(groups)))
    for i, group in enumerate(groups):
        fit = group.fitted
        first = fit.steps[np.argmin(fit.batch_sizes)]
        ax.plot(fit.batch_sizes, fit.steps / first, "o-", color=colors[i], lw=1.0, gid=f"relative:{i}")
    b = np.array(sorted({b for g in groups for b in g.fitted.batch_sizes.tolist()}))
    grid = batch_grid(b)
    ax.plot(
        grid, b.min() / grid, "--", color="0.25", lw=1.0, label="ideal linear scaling", gid="relative-linear"
    )
    log2_axis(ax, "x", b)
    log2_axis(ax, "y")
    ax.set_xlabel("Batch size B (sequences)")
    ax.set_ylabel("Steps / steps at smallest B")


@styled
def steps_vs_batch(groups: Sequence[CbsGroup], *, title: str | None = None) -> Figure:
    """Two panels: steps to target vs batch size (`draw_steps`) and relative to the smallest batch."""
    fig, axes = new_figure(2, width=6.4, height=2.8)
    ax, rel = axes[0]
    draw_steps(ax, groups)
    draw_relative(rel, groups)
    ax.set_title("Steps to target")
    rel.set_title("Relative to the smallest batch")
    fig.legend(*shared_legend([ax, rel]), loc="outside lower center", ncol=3)
    if title:
        fig.suptitle(title)
    return fig
