"""Loss-to-loss figures: train-to-train, train-to-test and test-to-test scatter with the fitted shifted power
laws y = K·(x − E_x)^κ + E_y (Brandfonbrener et al. 2024), held-out runs marked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from cbs.fit.loss_to_loss_panels import LossToLossSet, short
from cbs.fit.loss_to_loss_table import LossToLossAnalysis
from cbs.plots.style import categorical_colors, new_figure, styled


@dataclass(frozen=True)
class Curve:
    """One fitted pair of losses: which y it is, and the analysis (pairs, fit, held-out)."""

    label: str
    analysis: LossToLossAnalysis


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    ylabel: str
    curves: list[Curve]


def loss_to_loss_panels(fits: LossToLossSet) -> list[Panel]:
    """The panels of the kinds ``fits`` has curves for, titled and labelled (nothing is fitted here)."""
    g, t = fits.x_group, short(fits.test_col)
    labels = {
        "train-to-train": ("Train-to-train", f"x: {g} model,\nown val. loss (nats)", "y: other set, own val. loss (nats)"),
        "train-to-test": ("Train-to-test", f"x: {g} model,\nown val. loss (nats)", "y: same model, test loss (nats)"),
        "test-to-test": ("Test-to-test", f"x: {g} model,\n{t} loss (nats)", f"y: other set, {t} loss (nats)"),
    }  # fmt: skip
    return [
        Panel(*labels[kind], [Curve(label, a) for label, a in curves]) for kind, curves in fits.curves.items()
    ]


@styled
def loss_to_loss_figure(fits: LossToLossSet) -> Figure:
    """One panel per kind (`loss_to_loss_panels`). Per curve: paired losses (``gid="pairs:<p>:<i>"``), the fitted law over the data
    and held-out x (``gid="fit:<p>:<i>"``), held-out runs as stars (``gid="heldout:<p>:<i>"``)."""
    panels = loss_to_loss_panels(fits)
    fig, axes = new_figure(len(panels), height=3.0, width=min(7.0, 2.4 * len(panels) + 0.4))
    for p, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        colors = categorical_colors([c.label for c in panel.curves])
        for i, curve in enumerate(panel.curves):
            a, color = curve.analysis, colors[curve.label]
            ax.plot(a.pairs["x"], a.pairs["y"], "o", ms=2.5, color=color, alpha=0.75, gid=f"pairs:{p}:{i}")
            xs = a.pairs["x"].to_numpy(float)
            if a.holdout is not None and not a.holdout.empty:
                xs = np.concatenate([xs, a.holdout["x"].to_numpy(float)])
                ax.plot(
                    a.holdout["x"],
                    a.holdout["y"],
                    "*",
                    ms=9,
                    color=color,
                    mec="black",
                    mew=0.6,
                    gid=f"heldout:{p}:{i}",
                )
            grid = np.linspace(xs.min(), xs.max(), 200)
            label = f"{curve.label} (κ = {a.fit.kappa:.2f})"
            ax.plot(grid, a.fit.predict(grid), "-", color=color, lw=1.1, label=label, gid=f"fit:{p}:{i}")
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5), fontsize=6.5, ncol=1)
    if any(c.analysis.holdout is not None for p in panels for c in p.curves):
        ax0 = axes[0][0]
        ax0.plot([], [], "*", ms=9, color="0.6", mec="black", mew=0.6, label="held-out run")
        ax0.plot([], [], "o", ms=3, color="0.6", label="paired runs")
        handles, names = ax0.get_legend_handles_labels()
        fig.legend(handles[-2:], names[-2:], loc="outside upper center", ncol=2)
    return fig
