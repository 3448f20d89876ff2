"""Table input and output for the fits: read CSV/Parquet with clear errors, write JSON/CSV/Markdown atomically."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cbs.atomic import write_text_atomic
from cbs.errors import FitError

if TYPE_CHECKING:
    from cbs.fit.scaling_law import ScalingLawFit

# Cells that mean "no value" where a column allows one (e.g. a target never reached); elsewhere they are named.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none"})


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet table (chosen by extension). CSV cells are kept as written except empty ones (NaN), so
    that `numeric_columns` can name a text such as 'n/a' in a numeric column instead of guessing what it meant.
    Raises FitError on a missing, unreadable or empty file."""
    path = Path(path)
    if not path.is_file():
        raise FitError(f"input table {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise FitError(f"input table {path} is empty: it needs a header row and one row per run") from None
    except (OSError, ValueError) as exc:
        raise FitError(f"cannot read {path}: {exc}") from exc
    raise FitError(f"input table {path} must end in .csv or .parquet")


def require_run_tables(runs: object, curves: object, what: str) -> None:
    """TypeError unless ``runs`` and ``curves`` are DataFrames: the fits take tables, and
    ``ResultsStore(path).tables()`` reads them from a store."""
    if not (isinstance(runs, pd.DataFrame) and isinstance(curves, pd.DataFrame)):
        raise TypeError(
            f"{what} takes the runs and curves DataFrames, got {type(runs).__name__} and "
            f"{type(curves).__name__}; pass *ResultsStore(path).tables()"
        )
    if runs.empty:
        raise FitError("the results store has no runs; run a sweep first")


def require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Refuse a table that lacks any of ``columns``, naming the missing ones and those present."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FitError(
            f"{what} needs column(s) {missing}; the table has {list(map(str, table.columns))} "
            "(rename the column, or name it with the command's --*-col option)"
        )


@dataclass(frozen=True)
class Numeric:
    """How `numeric_columns` checks one column: ``positive`` (> 0: N, D, FLOPs, losses, batch sizes),
    ``missing_ok`` (an empty or NA cell means "no value", e.g. a target never reached) and ``finite``
    (±inf refused)."""

    name: str
    positive: bool = True
    missing_ok: bool = False
    finite: bool = True


def numeric_columns(
    table: pd.DataFrame, columns: Sequence[Numeric], what: str, rows: Sequence[bool] | None = None
) -> pd.DataFrame:
    """A copy of ``table`` with ``columns`` as float64, every cell checked.

    Raises FitError, before any fitting, on a table without rows, a missing column (listing those present) or
    the first bad cell: text that is not a number, a missing value where one is needed, ±inf where refused, or ≤ 0
    in a ``positive`` column. The message names the column, the data row (1 = the first row under the header)
    and the value as written. ``rows`` (a boolean mask) limits the checks to those rows; the others are
    converted as far as they are numbers (NaN otherwise)."""
    require_columns(table, [c.name for c in columns], what)
    if table.empty:
        raise FitError(f"{what} has no data rows: add one row per run under the header")
    checked = np.ones(len(table), bool) if rows is None else np.asarray(rows, bool)
    out = table.copy()
    for col in columns:
        raw = table[col.name]
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        number = values.notna().to_numpy()
        v = values.to_numpy()
        missing = raw.isna().to_numpy() | (
            ~number & raw.astype(str).str.strip().str.lower().isin(MISSING_MARKERS).to_numpy()
        )
        reasons = np.select(
            [
                ~number & ~(missing & col.missing_ok),
                number & col.finite & ~np.isfinite(v),
                number & col.positive & (v <= 0),
            ],
            ["is not a number", "is not a finite number", "must be a number > 0"],
            "",
        )
        bad = np.flatnonzero((reasons != "") & checked)
        if bad.size:
            i = int(bad[0])
            more = f" ({bad.size - 1} more row{'s' * (bad.size > 2)} like it)" if bad.size > 1 else ""
            raise FitError(
                f"column {col.name!r}, data row {i + 1} of {what} (1 = first row under the header): "
                f"{_cell(raw.iloc[i])} {reasons[i]} — fix the table or drop the row{more}"
            )
        out[col.name] = values
    return out


def _cell(value: object) -> str:
    """A cell as the user wrote it: 'n/a', 'abc', -3, inf; an empty cell in words."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "an empty cell"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return "an empty cell"
        try:
            float(text)
        except ValueError:
            return repr(value)
        return text
    return format(value, "g") if isinstance(value, (float, np.floating)) else str(value)


def json_safe(obj: object) -> object:
    """Plain JSON types: numpy scalars/arrays to Python, non-finite floats (e.g. an unbounded CI) to null."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def write_json(path: str | Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


def to_markdown(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency); a `|` inside a cell is escaped."""

    def cell(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if not math.isfinite(v) else format(float(v), floatfmt)
        return "" if v is None else str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def scaling_law_points(
    table: pd.DataFrame,
    *,
    n_col: str,
    d_col: str,
    flops_col: str | None,
    loss_col: str,
    drop_highest: int = 0,
) -> pd.DataFrame:
    """Columns ``n``, ``d``, ``loss``, ``excluded`` of an L(N, D) table, in the table's row order: D = C/(6N)
    where ``flops_col`` names the training FLOP C; ``excluded`` marks the ``drop_highest`` highest losses (ties:
    the later row), which `fit_scaling_law_points` leaves out. Every cell is checked finite and > 0
    (`numeric_columns`); FitError if dropping would leave fewer than the fit's 6 points."""
    source = flops_col or d_col
    checked = numeric_columns(
        table, [Numeric(n_col), Numeric(source), Numeric(loss_col)], "the scaling-law table"
    )
    if drop_highest < 0 or (drop_highest and len(checked) - drop_highest < 6):
        raise FitError(
            f"--drop-highest {drop_highest} leaves {len(checked) - drop_highest} of {len(checked)} points; "
            "L(N, D) needs at least 6: drop fewer"
        )
    n = checked[n_col]
    d = checked[source] / (6.0 * n) if flops_col else checked[source]
    loss = checked[loss_col]
    excluded = np.zeros(len(loss), bool)
    if drop_highest:
        excluded[np.argsort(loss.to_numpy(), kind="stable")[-drop_highest:]] = True
    return pd.DataFrame({"n": n, "d": d, "loss": loss, "excluded": excluded})


def fit_scaling_law_points(points: pd.DataFrame, **options: Any) -> ScalingLawFit:
    """`fit_scaling_law` of the points of `scaling_law_points` that are not ``excluded`` (``options``: form,
    n_starts, n_boot, seed): the one L(N, D) fit of a table that `cbs fit scaling-law` and its figure share."""
    from cbs.fit.scaling_law import fit_scaling_law

    kept = points[~points["excluded"]]
    return fit_scaling_law(kept["n"].to_numpy(), kept["d"].to_numpy(), kept["loss"].to_numpy(), **options)
