"""The loss-to-loss fits of the paper's three panels from one wide table: train-to-train, train-to-test and
test-to-test (Brandfonbrener et al. 2024), each pair fitted as `cbs fit loss-to-loss` fits it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cbs.errors import CbsError, FitError
from cbs.fit.loss_to_loss_table import Columns, LawCache, LossToLossAnalysis, fit_loss_to_loss_table
from cbs.fit.tables import require_columns

KINDS = ("train-to-train", "train-to-test", "test-to-test")
EVAL_COLUMN = re.compile(r"eval/.*_val/CrossEntropyLoss")
DEFAULT_TEST_COL = "eval/c4_val/CrossEntropyLoss"


@dataclass(frozen=True)
class LossToLossSet:
    """Per kind (`KINDS`), the fitted pairs as (label, analysis); ``notes`` name the pairs left out and why."""

    x_group: str
    x_col: str
    test_col: str
    curves: dict[str, list[tuple[str, LossToLossAnalysis]]]
    notes: list[str] = field(default_factory=list)


def own_columns(
    table: pd.DataFrame, group_col: str, group: str, x_col: str, candidates: Sequence[str]
) -> list[str]:
    """The candidate columns that are not just ``x_col`` again on ``group``'s rows (its own validation set)."""
    rows = table[table[group_col].astype(str) == group].apply(
        pd.to_numeric, errors="coerce"
    )  # text: checked later
    return [c for c in candidates if c != x_col and not np.allclose(rows[c], rows[x_col], equal_nan=True)]


def short(column: str) -> str:
    """'eval/c4_val/CrossEntropyLoss' -> 'c4_val'; other names unchanged."""
    parts = column.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "eval" else column


def fit_loss_to_loss_set(
    table: pd.DataFrame,
    *,
    group_col: str = "dataset",
    n_col: str = "n_params",
    d_col: str = "data_tokens",
    x_group: str | None = None,
    x_col: str = "val_loss",
    test_cols: Sequence[str] | None = None,
    test_col: str | None = None,
    **options: Any,
) -> LossToLossSet:
    """Fit every pair of the three kinds (defaults fit the released sweep.csv once ``group_col``, ``n_col``,
    ``d_col`` name its columns). train-to-train: x = ``x_col`` of ``x_group`` models (default: the first
    group), y = ``x_col`` of each other group's; train-to-test: y = each of ``test_cols`` (default: every
    eval/*_val/CrossEntropyLoss column other than the x set's own) of the ``x_group`` models; test-to-test:
    x and y = ``test_col`` of ``x_group`` and of each other group. E_x, E_y come from one L(N, D) fit of
    ``form`` per (group, column), shared by all pairs. ``options`` go to every `fit_loss_to_loss_table` call
    (holdout, form, interval, n_starts, n_boot, seed; its defaults). FitError where no pair can be fitted."""
    require_columns(table, [group_col, n_col, d_col, x_col], "a loss-to-loss figure")
    groups = sorted(table[group_col].astype(str).unique())
    x_group = x_group or groups[0]
    if x_group not in groups:
        raise FitError(f"--x-group {x_group!r} is not in column {group_col!r}; it holds {groups}")
    candidates = [c for c in table.columns if EVAL_COLUMN.fullmatch(c)]
    test_cols = list(test_cols) if test_cols else own_columns(table, group_col, x_group, x_col, candidates)
    test_col = test_col or (
        DEFAULT_TEST_COL if DEFAULT_TEST_COL in table else (test_cols[0] if test_cols else None)
    )
    if not test_cols or test_col is None:
        raise FitError(
            "no test-loss columns: pass --test-cols and --test-col naming loss columns of the table"
        )
    require_columns(table, [*test_cols, test_col], "a loss-to-loss figure")
    others = [g for g in groups if g != x_group]
    specs = {
        "train-to-train": [(g, g, x_col, x_col) for g in others],
        "train-to-test": [(short(c), x_group, x_col, c) for c in test_cols],
        "test-to-test": [(g, g, test_col, test_col) for g in others],
    }
    cache: LawCache = {}
    notes: list[str] = []
    curves: dict[str, list[tuple[str, LossToLossAnalysis]]] = {}
    for kind, pairs in specs.items():
        for label, y_group, xc, yc in pairs:
            cols = Columns(group_col, n_col, d_col, x_group, xc, y_group, yc)
            try:
                analysis = fit_loss_to_loss_table(table, cols, law_cache=cache, **options)
            except CbsError as exc:
                notes.append(f"{kind}, {label}: {exc}")
                continue
            curves.setdefault(kind, []).append((label, analysis))
    if not curves:
        raise FitError("no loss-to-loss pair could be fitted: " + "; ".join(notes))
    return LossToLossSet(x_group, x_col, test_col, curves, notes)
