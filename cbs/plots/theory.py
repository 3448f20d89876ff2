"""Theory panel: exact steps to target vs batch size for several data sizes, and the CBS vs D law
(from a `cbs theory` store: mini-batch SGD on power-law linear regression)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from cbs.fit import CbsGroup
from cbs.plots.cbs_scaling import ScalingPanel, draw_panel
from cbs.plots.steps import draw_steps
from cbs.plots.style import OKABE_ITO, human, new_figure, shared_legend, styled


@styled
def theory_figure(groups: Sequence[CbsGroup], panel: ScalingPanel) -> Figure:
    """Left: `draw_steps` for ``groups`` (one dimension, several D). Right: `draw_panel` of CBS vs D."""
    fig, axes = new_figure(2, width=6.6, height=2.9)
    left, right = axes[0]
    draw_steps(left, groups, labels=[f"D = {human(g.data_tokens)}" for g in groups])
    left.set_title(f"Linear regression, dim = {human(groups[0].n_params)}")
    left.set_xlabel("Batch size B (samples)")
    left.set_ylabel("Steps to target risk")
    draw_panel(right, panel, OKABE_ITO[1])
    right.set_xlabel("Data size D (samples)")
    right.set_ylabel("Critical batch size B* (samples)")
    fig.legend(*shared_legend([left, right]), loc="outside right upper")
    return fig
