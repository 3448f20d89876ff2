"""The experiment cell: the one key that groups runs for a target loss, a sweep summary and a CBS fit.

A cell is (model, N, D, dataset, optimizer). ``model`` is the resolved model label (`cbs.presets.model_label`:
the preset's name, or ``custom(d…-l…-h…-s…)`` where a shape field differs from the preset), so the resolved
shape is part of the key; ``dataset`` is the prepared dataset's fingerprint (its path where it has none), so
two datasets never share a cell. Everything else a run varies (batch size, lr, β2, τ, schedule, ...) is
minimised over within the cell. Seeds are replicates: runs of one cell that differ only in their seed belong
to the same cell (the seed is not in the key), so a cell's target and best loss are taken over all its seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from cbs.config import TrainConfig, dataset_identity
from cbs.presets import model_label

DEFAULT_OPTIMIZER = "adamw"
CELL_KEYS = ["model", "n_params", "data_tokens", "dataset", "optimizer"]  # the Cell fields, as table columns


@dataclass(frozen=True)
class Cell:
    """One experiment cell (see the module docstring); hashable, so it keys the targets of a sweep plan."""

    model: str
    n_params: int
    data_tokens: int
    dataset: str
    optimizer: str = DEFAULT_OPTIMIZER

    @classmethod
    def of_config(cls, config: TrainConfig, n_params: int, data_tokens: int) -> Cell:
        """The cell of a grid point's config, given its resolved N and D (no training, no data read beyond
        the dataset manifest)."""
        identity = dataset_identity(config.data.path) or ""
        return cls(
            model=model_label(config.model),
            n_params=int(n_params),
            data_tokens=int(data_tokens),
            dataset=identity.removeprefix("fingerprint:"),
            optimizer=str(getattr(config.optim, "name", None) or DEFAULT_OPTIMIZER),
        )

    @property
    def id(self) -> str:
        """A short stable id of the cell, safe in file names (a hash of its fields)."""
        blob = json.dumps([self.model, self.n_params, self.data_tokens, self.dataset, self.optimizer])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """'micro-4k, D=71280': the cell in one short phrase (dataset and optimizer where they are not the
        default)."""
        extra = "" if self.optimizer == DEFAULT_OPTIMIZER else f", {self.optimizer}"
        return f"{self.model}, D={self.data_tokens:g}{extra}"


def optimizer_name(row: Mapping[str, object]) -> str:
    """The optimizer of a runs-table row: its ``optimizer`` column, else ``optim.name`` in its ``config_json``,
    else "adamw" (runs stored before optimizers were selectable)."""
    name = row.get("optimizer")
    if isinstance(name, str) and name:
        return name
    raw = row.get("config_json")
    if isinstance(raw, str) and raw:
        try:
            optim = json.loads(raw).get("optim") or {}
        except (json.JSONDecodeError, AttributeError):
            optim = {}
        if isinstance(optim, dict) and optim.get("name"):
            return str(optim["name"])
    return DEFAULT_OPTIMIZER


def cell_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """The CELL_KEYS columns of a runs table (ResultsStore.runs()), index aligned with ``runs``: ``model`` is the
    preset label (N as text where a row has none), ``data_tokens`` falls back to the token budget, ``dataset`` to
    the dataset path where no fingerprint is recorded."""
    if runs.empty:
        return pd.DataFrame({key: pd.Series(dtype=object) for key in CELL_KEYS}, index=runs.index)
    dataset = (
        runs["dataset_fingerprint"] if "dataset_fingerprint" in runs else pd.Series(None, index=runs.index)
    )
    if "dataset" in runs:
        dataset = dataset.fillna(runs["dataset"])
    return pd.DataFrame(
        {
            "model": runs["preset"].fillna(runs["n_params"].astype(str)),
            "n_params": runs["n_params"],
            "data_tokens": runs["data_tokens"].fillna(runs["token_budget"]),
            "dataset": dataset.fillna(""),
            "optimizer": [optimizer_name(row) for row in runs.to_dict("records")],
        },
        index=runs.index,
    )


def with_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of a runs table with its CELL_KEYS columns set (``cell_columns``), ready to group by CELL_KEYS; its
    ``dataset`` column then holds the dataset's identity (fingerprint), no longer its path."""
    return runs.assign(**cell_columns(runs))
