"""Optimizers compared in one (model, data) cell: S(B) per optimizer overlaid, and B* per optimizer."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from cbs.fit import CbsGroup
from cbs.plots.steps import draw_steps
from cbs.plots.style import log2_axis, new_figure, ordered_colors, shared_legend, styled


@styled
def optimizer_overlay(groups: Sequence[CbsGroup], *, title: str | None = None) -> Figure:
    """Two panels for the fitted groups of one cell, one colour per optimizer: steps to target vs batch size
    with each S(B) fit and CBS (`draw_steps`), and the CBS B* per optimizer with its 95% interval
    (``gid="optimizer-cbs:<i>"``)."""
    fig, axes = new_figure(2, width=6.4, height=2.8)
    ax, cbs_ax = axes[0]
    names = [g.optimizer for g in groups]
    draw_steps(ax, groups, labels=names)
    colors = ordered_colors(range(len(groups)))  # the colours of draw_steps
    for i, g in enumerate(groups):
        lo, hi = g.fitted.cbs_ci
        bar = cbs_ax.errorbar(
            [i],
            [g.fitted.cbs],
            yerr=[[g.fitted.cbs - lo], [hi - g.fitted.cbs]],
            fmt="*",
            ms=9,
            color=colors[i],
            capsize=3,
        )
        bar.lines[0].set_gid(f"optimizer-cbs:{i}")
    cbs_ax.set_xticks(range(len(groups)), names)
    cbs_ax.set_xlim(-0.5, len(groups) - 0.5)
    log2_axis(cbs_ax, "y")
    cbs_ax.set_ylabel("CBS B* (sequences, 95% CI)")
    ax.set_title("Steps to target per optimizer")
    cbs_ax.set_title("Critical batch size")
    fig.legend(*shared_legend([ax]), loc="outside lower center", ncol=3)
    if title:
        fig.suptitle(title)
    return fig
