"""Loss-to-loss figures: train-to-train, train-to-test and test-to-test scatter with the fitted shifted power
laws y = K·(x − E_x)^κ + E_y (Brandfonbrener et al. 2024), held-out runs marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cbs.errors import CbsError, FitError
from cbs.fit import fit_scaling_law
from cbs.fit.loss_to_loss_table import Columns, LossToLossAnalysis, fit_loss_to_loss_table
from cbs.fit.tables import Numeric, numeric_columns
from cbs.plots.style import categorical_colors, new_figure, styled

KINDS = ("train-to-train", "train-to-test", "test-to-test")


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


@styled
def loss_to_loss_figure(panels: Sequence[Panel]) -> Figure:
    """One panel per kind. Per curve: paired losses (``gid="pairs:<p>:<i>"``), the fitted law over the data
    and held-out x (``gid="fit:<p>:<i>"``), held-out runs as stars (``gid="heldout:<p>:<i>"``)."""
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


def own_columns(
    table: pd.DataFrame, group_col: str, group: str, x_col: str, candidates: Sequence[str]
) -> list[str]:
    """The candidate columns that are not just ``x_col`` again on ``group``'s rows (its own validation set)."""
    rows = table[table[group_col].astype(str) == group].apply(
        pd.to_numeric, errors="coerce"
    )  # text: checked later
    return [c for c in candidates if c != x_col and not np.allclose(rows[c], rows[x_col], equal_nan=True)]


def loss_to_loss_panels(
    table: pd.DataFrame,
    *,
    group_col: str,
    n_col: str,
    d_col: str,
    x_group: str,
    x_col: str,
    test_cols: Sequence[str],
    test_col: str,
    holdout: pd.DataFrame | None = None,
    n_starts: int = 4500,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[list[Panel], list[str]]:
    """The three panels from a wide table, and notes for pairs that could not be fitted.

    train-to-train: x = ``x_col`` of ``x_group`` models, y = ``x_col`` of each other group's models;
    train-to-test: y = each of ``test_cols`` of the ``x_group`` models;
    test-to-test: x and y = ``test_col`` of ``x_group`` and of each other group's models.
    E_x and E_y come from one L(N, D) fit per (group, column), shared across panels.
    """
    groups = sorted(set(table[group_col].astype(str)) - {x_group})
    shifts: dict[tuple[str, str], float] = {}

    def shift(group: str, col: str) -> float:
        if (group, col) not in shifts:
            mask = (table[group_col].astype(str) == group).to_numpy()
            numbers = [Numeric(n_col), Numeric(d_col), Numeric(col, missing_ok=True)]
            rows = numeric_columns(table, numbers, "the loss-to-loss table", rows=mask)[mask].dropna(
                subset=[col]
            )
            law = fit_scaling_law(rows[n_col], rows[d_col], rows[col], n_starts=n_starts, n_boot=0, seed=seed)
            shifts[group, col] = law.E
        return shifts[group, col]

    notes: list[str] = []

    def curves(specs: list[tuple[str, str, str]]) -> list[Curve]:
        out = []
        for label, y_group, (xc, yc) in specs:
            cols = Columns(group_col, n_col, d_col, x_group, xc, y_group, yc)
            try:
                analysis = fit_loss_to_loss_table(
                    table,
                    cols,
                    E_x=shift(x_group, xc),
                    E_y=shift(y_group, yc),
                    holdout=holdout,
                    n_starts=n_starts,
                    n_boot=n_boot,
                    seed=seed,
                )
            except CbsError as exc:
                notes.append(f"{label}: {exc}")
                continue
            out.append(Curve(label, analysis))
        return out

    panels = [
        Panel(
            "Train-to-train",
            f"x: {x_group} model,\nown val. loss (nats)",
            "y: other set, own val. loss (nats)",
            curves([(g, g, (x_col, x_col)) for g in groups]),
        ),
        Panel(
            "Train-to-test",
            f"x: {x_group} model,\nown val. loss (nats)",
            "y: same model, test loss (nats)",
            curves([(short(c), x_group, (x_col, c)) for c in test_cols]),
        ),
        Panel(
            "Test-to-test",
            f"x: {x_group} model,\n{short(test_col)} loss (nats)",
            f"y: other set, {short(test_col)} loss (nats)",
            curves([(g, g, (test_col, test_col)) for g in groups]),
        ),
    ]
    kept = [p for p in panels if p.curves]
    if not kept:
        raise FitError("no loss-to-loss pair could be fitted: " + "; ".join(notes))
    return kept, notes


def short(column: str) -> str:
    """'eval/c4_val/CrossEntropyLoss' -> 'c4_val'; other names unchanged."""
    parts = column.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "eval" else column
