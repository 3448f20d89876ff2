"""Theory panel: exact steps to target vs batch size for several data sizes, and the CBS vs D law
(from a `cbs theory` store: mini-batch SGD on power-law linear regression)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from cbs.errors import FitError
from cbs.fit import CbsAnalysis, CbsGroup
from cbs.fit.cbs_laws import MIN_DISTINCT
from cbs.plots.cbs_scaling import ScalingPanel, draw_panel, law_panel, widest_law
from cbs.plots.steps import draw_steps
from cbs.plots.style import OKABE_ITO, human, new_figure, shared_legend, styled


@styled
def theory_figure(
    groups: Sequence[CbsGroup], panel: ScalingPanel, *, theory_exponent: float | None = None
) -> Figure:
    """Left: `draw_steps` for ``groups`` (one dimension, several D). Right: `draw_panel` of CBS vs D, and, if
    given, the corollary's slope B* ∝ D^k through the fitted law at the geometric middle of the data
    (``gid="corollary"``)."""
    fig, axes = new_figure(2, width=6.6, height=2.9)
    left, right = axes[0]
    draw_steps(left, groups, labels=[f"D = {human(g.data_tokens)}" for g in groups])
    left.set_title(f"Linear regression, dim = {human(groups[0].n_params)}")
    left.set_xlabel("Batch size B (samples)")
    left.set_ylabel("Steps to target risk")
    draw_panel(right, panel, OKABE_ITO[1])
    if theory_exponent is not None:
        mid = float(np.sqrt(panel.x.min() * panel.x.max()))
        x = np.geomspace(panel.x.min(), panel.x.max() * 10, 50)
        y = panel.predict(mid) * (x / mid) ** theory_exponent
        right.plot(
            x,
            y,
            ":",
            color="0.2",
            lw=1.2,
            label=f"corollary slope k = {theory_exponent:.3g}",
            gid="corollary",
        )
    right.set_xlabel("Data size D (samples)")
    right.set_ylabel("Critical batch size B* (samples)")
    fig.legend(*shared_legend([left, right]), loc="outside right upper")
    return fig


def theory_from_analysis(analysis: CbsAnalysis, *, theory_exponent: float | None = None) -> Figure:
    """`theory_figure` of the dimension with the most fitted data sizes: its groups' S(B) and the fit's law of
    CBS vs D there (FitError when no dimension has ≥ MIN_DISTINCT of them)."""
    law = widest_law(analysis.subset_laws, "data_tokens", "n_params")
    if law is None:
        raise FitError(f"no dimension is shared by ≥ {MIN_DISTINCT} fitted data sizes")
    fitted = [g for g in analysis.groups if g.fit is not None]
    groups = sorted((g for g in fitted if g.n_params == law.fixed["n_params"]), key=lambda g: g.data_tokens)
    panel = law_panel("CBS vs data size", law, fitted)
    return theory_figure(groups, panel, theory_exponent=theory_exponent)
