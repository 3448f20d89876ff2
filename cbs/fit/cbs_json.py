"""JSON outputs read back for the figures: a `cbs fit cbs --json` output into the CbsAnalysis that wrote it
(groups, laws, subset laws; nothing refitted), and a `cbs theory --json` output into its steps-to-target table.

The one place that rebuilds CBS results from JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cbs.errors import FitError
from cbs.fit.cbs_laws import CbsAnalysis


def cbs_analysis_from_dict(payload: object, source: str = "the JSON") -> CbsAnalysis:
    """The CbsAnalysis whose ``to_dict()`` is ``payload`` (`CbsAnalysis.from_dict`, checked first): the same groups, fits, laws and subset laws (the
    all-group laws without bootstrap samples, which the JSON does not carry). FitError names what is missing."""
    if not isinstance(payload, dict) or not payload.get("groups"):
        raise FitError(f"{source} has no 'groups' list: it is not a `cbs fit cbs --json` output")
    if "subset_laws" not in payload:
        raise FitError(f"{source} has no 'subset_laws': re-run `cbs fit cbs --json` with this cbs version")
    try:
        return CbsAnalysis.from_dict(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise FitError(
            f"{source} is not a complete `cbs fit cbs --json` output ({type(exc).__name__}: {exc}); "
            "re-run `cbs fit cbs --json` with this cbs version"
        ) from exc


def read_json(path: Path, writer: str) -> object:
    """The JSON at ``path``; FitError naming the command (``writer``) whose output it should be."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FitError(f"cannot read {path} as JSON ({exc}); pass the file `{writer}` wrote") from exc


def load_cbs_analysis(path: Path) -> CbsAnalysis:
    """`cbs_analysis_from_dict` of the JSON file at ``path``; FitError if it cannot be read or is not one."""
    return cbs_analysis_from_dict(read_json(path, "cbs fit cbs --json"), str(path))


@dataclass(frozen=True)
class TheorySettings:
    """The settings of a `cbs theory --json` output that its CBS fit and figure need."""

    overhead: float
    exponent_theory: float | None


def theory_steps_table(path: Path) -> tuple[pd.DataFrame, TheorySettings]:
    """The steps-to-target table of a `cbs theory --json` output (one row per dimension, data size and batch
    size; unreached batch sizes as NaN), for `fit_cbs_table`, and its settings: overhead, exponent_theory."""
    payload = read_json(path, "cbs theory --json")
    if not isinstance(payload, dict) or not payload.get("cbs_by_data"):
        raise FitError(f"{path} has no 'cbs_by_data' list: it is not a `cbs theory --json` output")
    cells = payload["cbs_by_data"]
    rows = [
        {"model": "linreg", "n_params": float(c["dim"]), "data_tokens": float(c["data_size"]),
         "b_opt": float(payload.get("b_ref", 1)), "target_loss": c.get("target_excess_risk"),
         "batch_size": float(b), "steps_to_target": float(s)}
        for c in cells
        for b, s in [*zip(c["batch_sizes"], c["steps_to_target"], strict=True),
                     *((b, np.nan) for b in c.get("unreached_batch_sizes", []))]
    ]  # fmt: skip
    settings = TheorySettings(float(payload.get("overhead", 0.2)), payload.get("exponent_theory"))
    return pd.DataFrame(rows), settings
