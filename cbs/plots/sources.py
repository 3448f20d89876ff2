"""What the figures are drawn from: a results store (fits computed on the fly, once) or fit outputs (JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from cbs.errors import CbsError, FitError, ResultsError
from cbs.fit import (
    CbsAnalysis,
    CbsGroup,
    ScalingLawFit,
    first_crossing,
    fit_cbs_table,
    fit_scaling_law,
    steps_to_target_table,
)
from cbs.plots.cbs_scaling import CbsPoint
from cbs.plots.curves import primary_eval_set
from cbs.protocol import CBS_OVERHEAD
from cbs.results import ResultsStore, without_branches


@dataclass
class StoreSource:
    """A results store and the analysis settings; the tables and fits are computed once, on first use."""

    root: Path | ResultsStore  # a ResultsStore keeps its settings (skip_damaged)
    b_opt: float | None = None  # None: the reference batch the runs record, else the paper's 256
    overhead: float = CBS_OVERHEAD
    target: str | float = "auto"
    n_boot: int = 1000
    seed: int = 0
    n_starts: int = 1000  # multi-start points of the L(N, D) fit
    notes: list[str] = field(default_factory=list)  # groups that could not be fitted, and why

    def __post_init__(self) -> None:
        self.store = self.root if isinstance(self.root, ResultsStore) else ResultsStore(self.root)
        self.root = self.store.root
        if not self.store.root.is_dir():
            raise ResultsError(f"no results store at {self.store.root}: pass the folder `cbs sweep` wrote")

    @cached_property
    def runs(self) -> pd.DataFrame:
        runs = without_branches(self.store.runs())  # `cbs branch` runs are no grid points
        if runs.empty:
            raise ResultsError(f"the results store {self.store.root} has no runs yet; run `cbs sweep` first")
        return runs

    @cached_property
    def curves(self) -> pd.DataFrame:
        return self.store.curves(self.runs["run_id"])

    @cached_property
    def table(self) -> pd.DataFrame:
        """Steps to target per (model, data_tokens, batch_size), as `cbs fit cbs` computes it."""
        return steps_to_target_table((self.runs, self.curves), b_opt=self.b_opt, target=self.target)

    @cached_property
    def analysis(self) -> CbsAnalysis:
        """Per-group S(B) fits and the CBS laws, exactly as `cbs fit cbs` computes them."""
        return fit_cbs_table(
            self.table, b_opt=self.b_opt, overhead=self.overhead, n_boot=self.n_boot, seed=self.seed
        )

    @cached_property
    def groups(self) -> list[CbsGroup]:
        """The groups that have an S(B) fit (the others are listed in ``notes``)."""
        for g in self.analysis.groups:
            if g.fit is None:
                self.notes.append(f"{g.model}, D = {g.data_tokens:g}: no S(B) fit ({g.error})")
        return [g for g in self.analysis.groups if g.fit is not None]

    @cached_property
    def points(self) -> list[CbsPoint]:
        return [
            CbsPoint(
                g.model,
                g.n_params,
                g.data_tokens,
                g.fit.cbs,
                *g.fit.cbs_ci,
                tuple(w.code for w in g.warnings),
            )
            for g in self.groups
        ]

    @cached_property
    def scaling_law(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, ScalingLawFit]:
        """(N, D, loss, fit): the Chinchilla-form L(N, D) fit of the groups' target losses R(N, D).

        FitError where the groups do not span ≥ 2 model sizes and ≥ 2 data sizes (≥ 6 groups)."""
        targets = self.targets()
        n, d = (np.array([k[i] for k in targets]) for i in (0, 1))
        if len(targets) < 6 or np.unique(n).size < 2 or np.unique(d).size < 2:
            raise FitError(
                f"L(N, D) needs ≥ 6 (model, data size) groups spanning ≥ 2 model sizes and ≥ 2 data sizes; the "
                f"store has {len(targets)} group(s), {np.unique(n).size} model size(s), {np.unique(d).size} data size(s)"
            )
        loss = np.array(list(targets.values()))
        fit = fit_scaling_law(
            n, d, loss, n_starts=self.n_starts, n_boot=min(self.n_boot, 200), seed=self.seed
        )
        return n, d, loss, fit

    @cached_property
    def runs_with_steps(self) -> pd.DataFrame:
        """The runs with ``steps_to_target`` recomputed per run against its group's target, by the rule of
        `cbs fit` (first crossing, interpolated; EWA loss where the run logs it); the runs as stored where
        no target can be set."""
        try:
            targets = self.targets()
        except CbsError:
            return self.runs
        curves = self.curves[self.curves["eval_set"] == primary_eval_set(self.runs, self.curves)]
        by_run = dict(tuple(curves.groupby("run_id")))
        steps = []
        for run in self.runs.itertuples():
            c, target = by_run.get(run.run_id), targets.get((float(run.n_params), float(run.data_tokens)))
            if c is None or target is None:
                steps.append(np.nan)
                continue
            loss = c["ewa_eval_loss"] if c["ewa_eval_loss"].notna().any() else c["eval_loss"]
            steps.append(first_crossing(c["step"].to_numpy(float), loss.to_numpy(float), target))
        return self.runs.assign(steps_to_target=steps)

    def targets(self) -> dict[tuple[float, float], float]:
        """Target loss per (n_params, data_tokens)."""
        first = self.table.groupby(["n_params", "data_tokens"])["target_loss"].first()
        return {(float(n), float(d)): float(v) for (n, d), v in first.items()}

    def is_theory(self) -> bool:
        """True for stores written by `cbs theory` (presets ``linreg-…``)."""
        return bool(self.runs["preset"].fillna("").str.startswith("linreg").all())


def points_from_json(path: Path) -> list[CbsPoint]:
    """CBS points from a `cbs fit cbs --json` output (its ``groups`` list)."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CbsError(
            f"cannot read {path} as JSON ({exc}); pass the file `cbs fit cbs --json` wrote"
        ) from exc
    groups = payload.get("groups") if isinstance(payload, dict) else None
    if not groups:
        raise CbsError(f"{path} has no 'groups' list: it is not a `cbs fit cbs --json` output")
    out = []
    for g in groups:
        missing = [k for k in ("n_params", "cbs", "cbs_ci") if k not in g]
        if missing:
            raise CbsError(
                f"{path}: a group lacks {missing}; re-run `cbs fit cbs --json` with this cbs version"
            )
        lo, hi = g["cbs_ci"]
        d = g.get("data_tokens")
        out.append(
            CbsPoint(
                str(g.get("model", g["n_params"])),
                float(g["n_params"]),
                float(d) if d is not None else np.nan,
                float(g["cbs"]),
                float(lo),
                float(hi),
                tuple(str(w.get("code")) for w in g.get("warnings") or []),
            )
        )
    return out
