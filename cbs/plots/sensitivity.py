"""Hyperparameter sensitivity: final loss (and steps to target) vs lr, β2 or EWA τ, one line per batch size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from cbs.errors import ResultsError
from cbs.plots.style import human, log_axis, new_figure, ordered_colors, shared_legend, styled


@dataclass(frozen=True)
class Hyperparameter:
    column: str
    label: str
    one_minus: bool  # plot 1 − value on a log axis (β2, τ close to 1)


HYPERPARAMETERS = {
    "lr": Hyperparameter("lr", "Peak learning rate", False),
    "beta2": Hyperparameter("beta2", "1 − Adam β2", True),
    "ewa_tau": Hyperparameter("ewa_tau", "1 − EWA decay τ", True),
}
METRICS = {
    "best_ewa_eval_loss": "Best EWA eval loss\n(nats/token)",
    "steps_to_target": "Steps to target",
}
PANELS_PER_ROW = 3


def varied_groups(runs: pd.DataFrame, column: str) -> list[tuple[tuple[int, int], pd.DataFrame]]:
    """(n_params, data_tokens) groups in which some batch size was run at ≥ 2 values of ``column``."""
    out = []
    for key, group in runs.groupby(["n_params", "data_tokens"], sort=True):
        if (group.groupby("batch_size")[column].nunique() >= 2).any():
            out.append((key, group))
    return out


@styled
def sensitivity(runs: pd.DataFrame, param: str = "lr") -> Figure:
    """Steps to target (or, where no run has them, the best EWA loss) vs ``param``; one panel per group.

    Each batch size is a line (``gid="sens:<metric>:<N>:<D>:<B>"``, x the hyperparameter as plotted), its
    best value ringed; diverged runs are crosses along the top edge (``gid="diverged:<N>:<D>:<B>"``).
    """
    hp = HYPERPARAMETERS[param]
    groups = varied_groups(runs[runs["status"] != "failed"], hp.column)
    if not groups:
        raise ResultsError(f"no batch size was run at two or more values of {hp.column}; sweep {hp.column}")
    # Steps to target where the runs have them (stop-at-target runs make the final loss uninformative).
    metric = "steps_to_target" if runs["steps_to_target"].notna().sum() >= 2 else "best_ewa_eval_loss"
    colors = ordered_colors(runs["batch_size"].tolist())
    ncols = min(PANELS_PER_ROW, len(groups))
    fig, axes = new_figure(ncols, -(-len(groups) // ncols), height=2.1, width=2.1 * ncols + 1.0)
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    for i, ((n, d), group) in enumerate(groups):
        ax = axes.flat[i]
        for batch, runs_b in group.groupby("batch_size"):
            x_all = runs_b[hp.column].to_numpy(float)
            x_all = 1.0 - x_all if hp.one_minus else x_all
            diverged = (runs_b["status"] == "diverged").to_numpy()
            if diverged.any():
                ax.plot(
                    x_all[diverged],
                    np.full(diverged.sum(), 0.97),
                    "x",
                    color=colors[batch],
                    ms=5,
                    transform=ax.get_xaxis_transform(),
                    gid=f"diverged:{n}:{d}:{batch}",
                )
            sub = runs_b.dropna(subset=[metric]).sort_values(hp.column)
            if sub.empty:  # no run of this batch size reached the target
                continue
            x = sub[hp.column].to_numpy(float)
            x = 1.0 - x if hp.one_minus else x
            y = sub[metric].to_numpy(float)
            ax.plot(
                x,
                y,
                "o-",
                color=colors[batch],
                ms=3,
                label=f"B = {batch}",
                gid=f"sens:{metric}:{n}:{d}:{batch}",
            )
            best = int(np.argmin(y))
            ax.plot(x[best], y[best], "o", ms=7, mfc="none", mec=colors[batch], mew=1.2)
        log_axis(ax, "x")
        values = np.unique(group[hp.column].dropna().to_numpy(float))
        if values.size <= 6:  # label the swept values themselves
            ax.xaxis.set_major_locator(FixedLocator((1.0 - values if hp.one_minus else values).tolist()))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        if metric == "steps_to_target":
            log_axis(ax, "y")
        ax.set_xlabel(hp.label)
        if i % ncols == 0:
            ax.set_ylabel(METRICS[metric])
        ax.set_title(f"N = {human(n)}, D = {human(d)}")
    if (runs["status"] == "diverged").any():
        axes[0][0].plot([], [], "x", color="0.3", label="diverged")
    fig.legend(*shared_legend(axes.flat), loc="outside right upper", title="Batch (seqs)")
    return fig
