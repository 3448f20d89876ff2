"""Figures from tables rather than a store: published L(N, D) points, loss-to-loss runs, `cbs fit cbs --json`."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cbs.errors import CbsError, FitError
from cbs.fit import CbsGroup, FitWarning, fit_cbs, fit_scaling_law
from cbs.fit.tables import require_columns, scaling_law_points
from cbs.plots.cbs_scaling import CbsPoint, cbs_scaling, law_panel, select_panels
from cbs.plots.loss_to_loss import loss_to_loss_figure, loss_to_loss_panels, own_columns
from cbs.plots.scaling_law import scaling_law_figure
from cbs.plots.sources import points_from_json
from cbs.plots.theory import theory_figure

EVAL_COLUMN = re.compile(r"eval/.*_val/CrossEntropyLoss")
DEFAULT_TEST_COL = "eval/c4_val/CrossEntropyLoss"


def scaling_law_from_table(
    table: pd.DataFrame,
    *,
    n_col: str = "n_params",
    d_col: str = "data_tokens",
    flops_col: str | None = None,
    loss_col: str = "loss",
    drop_highest: int = 0,
    form: str = "chinchilla",
    n_starts: int = 4500,
    n_boot: int = 1000,
    seed: int = 0,
) -> Figure:
    """Fit L(N, D) to a table as `cbs fit scaling-law` does (D = C/6N with ``flops_col``; the ``drop_highest``
    highest losses left out and drawn as ×) and draw `scaling_law_figure`."""
    points = scaling_law_points(table, n_col=n_col, d_col=d_col, flops_col=flops_col, loss_col=loss_col)
    n, d, loss = (points[c].to_numpy() for c in ("n", "d", "loss"))
    excluded = np.zeros(n.size, bool)
    if drop_highest:
        excluded[np.argsort(loss, kind="stable")[-drop_highest:]] = True
    fit = fit_scaling_law(
        n[~excluded], d[~excluded], loss[~excluded], form=form, n_starts=n_starts, n_boot=n_boot, seed=seed
    )
    return scaling_law_figure(n, d, loss, fit, excluded=excluded)


def loss_to_loss_from_table(
    table: pd.DataFrame,
    *,
    group_col: str = "dataset",
    n_col: str = "n_params",
    d_col: str = "data_tokens",
    x_group: str | None = None,
    x_col: str = "val_loss",
    test_cols: Sequence[str] | None = None,
    test_col: str | None = None,
    holdout: pd.DataFrame | None = None,
    n_starts: int = 4500,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[Figure, list[str]]:
    """The three loss-to-loss panels from a wide table (defaults fit the released sweep.csv once
    ``group_col``, ``n_col``, ``d_col`` name its columns); returns the figure and notes on pairs left out."""
    require_columns(table, [group_col, n_col, d_col, x_col], "a loss-to-loss figure")
    groups = sorted(table[group_col].astype(str).unique())
    x_group = x_group or groups[0]
    if x_group not in groups:
        raise FitError(f"--x-group {x_group!r} is not in column {group_col!r}; it holds {groups}")
    candidates = [c for c in table.columns if EVAL_COLUMN.fullmatch(c)]
    test_cols = list(test_cols) if test_cols else own_columns(table, group_col, x_group, x_col, candidates)
    test_col = test_col or (DEFAULT_TEST_COL if DEFAULT_TEST_COL in table else (test_cols or [None])[0])
    if not test_cols or test_col is None:
        raise FitError(
            "no test-loss columns: pass --test-cols and --test-col naming loss columns of the table"
        )
    require_columns(table, [*test_cols, test_col], "a loss-to-loss figure")
    panels, notes = loss_to_loss_panels(
        table,
        group_col=group_col,
        n_col=n_col,
        d_col=d_col,
        x_group=x_group,
        x_col=x_col,
        test_cols=test_cols,
        test_col=test_col,
        holdout=holdout,
        n_starts=n_starts,
        n_boot=n_boot,
        seed=seed,
    )
    return loss_to_loss_figure(panels), notes


def theory_from_json(path: Path, *, n_boot: int = 1000, seed: int = 0) -> Figure:
    """The theory panel from a `cbs theory --json` output: each D cell's S(B) refitted (least squares, so the
    same a, b as `cbs theory`) from its steps to target; CBS vs D with its law and the corollary's slope."""
    payload = read_json(path)
    cells = payload.get("cbs_by_data") if isinstance(payload, dict) else None
    if not cells:
        raise CbsError(f"{path} has no 'cbs_by_data' list: it is not a `cbs theory --json` output")
    b_ref, overhead = float(payload.get("b_ref", 1)), float(payload.get("overhead", 0.2))
    groups = [
        CbsGroup(
            model="linreg",
            n_params=float(c["dim"]),
            data_tokens=float(c["data_size"]),
            fit=fit_cbs(
                c["batch_sizes"],
                c["steps_to_target"],
                b_opt=b_ref,
                overhead=overhead,
                n_boot=n_boot,
                seed=seed,
            ),
            unreached_batch_sizes=[float(b) for b in c.get("unreached_batch_sizes", [])],
            warnings=[FitWarning(w["code"], w["message"]) for w in c.get("warnings", [])],
        )
        for c in sorted(cells, key=lambda c: c["data_size"])
    ]
    codes = [tuple(w["code"] for w in c.get("warnings", [])) for c in cells]
    points = [
        CbsPoint("linreg", c["dim"], c["data_size"], c["cbs"], *c["cbs_ci"], w)
        for c, w in zip(cells, codes, strict=True)
    ]
    panel = law_panel("CBS vs data size", "D", points, n_boot, seed, unit=1.0)
    return theory_figure(groups, panel, theory_exponent=payload.get("exponent_theory"))


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CbsError(f"cannot read {path} as JSON ({exc})") from exc


def cbs_scaling_from_json(path: Path, *, n_boot: int = 1000, seed: int = 0) -> tuple[Figure, list[str]]:
    """The teaser from a `cbs fit cbs --json` output; returns the figure and the reasons for missing panels."""
    panels, reasons = select_panels(points_from_json(path), n_boot=n_boot, seed=seed)
    if not panels:
        raise FitError(f"{path}: no teaser panel can be drawn: {'; '.join(reasons)}")
    return cbs_scaling(panels), reasons
