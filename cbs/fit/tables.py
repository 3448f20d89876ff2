"""Table input and output for the fits: read CSV/Parquet with clear errors, write JSON/CSV/Markdown atomically."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cbs.errors import FitError


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet table (chosen by extension)."""
    path = Path(path)
    if not path.is_file():
        raise FitError(f"input table {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise FitError(f"cannot read {path}: {exc}") from exc
    raise FitError(f"input table {path} must end in .csv or .parquet")


def require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Refuse a table that lacks any of ``columns``, naming the missing ones and those present."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FitError(f"{what} needs column(s) {missing}; the table has {list(table.columns)}")


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


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so no half-written file is ever seen."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
