"""The fits a results store gives, each made once on first use: what `cbs figures` and `cbs report` draw from.

The plots package draws from a `StoreFits` and never fits; this is where the store meets the fit layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from cbs.errors import CbsError, FitError, ResultsError
from cbs.fit.branched import EMA_ALPHA, EPSILON
from cbs.fit.cbs_laws import CbsAnalysis, CbsGroup
from cbs.fit.measures import fit_store_cbs
from cbs.fit.scaling_law import ScalingLawFit, fit_scaling_law
from cbs.fit.steps_to_target import first_crossing, steps_to_target_table
from cbs.protocol import CBS_OVERHEAD
from cbs.results import ResultsStore, without_branches


def primary_eval_set(runs: pd.DataFrame, curves: pd.DataFrame) -> str:
    """The eval set the runs name first (``eval_sets[0]``), else the most common one in the curves."""
    firsts = [s[0] for s in runs.get("eval_sets", pd.Series(dtype=object)).dropna() if len(s)]
    if firsts:
        return pd.Series(firsts).mode().iloc[0]
    if curves.empty:
        raise ResultsError("the curves dataset is empty: the runs have no evaluation points to plot")
    return curves["eval_set"].mode().iloc[0]


@dataclass
class StoreFits:
    """A results store and the analysis settings; its tables and fits are computed once, on first use. A
    given ``fitted`` analysis (e.g. `cbs.fit.cbs_json.load_cbs_analysis` of `cbs fit cbs --json`) is used
    as the CBS analysis instead of fitting the store again."""

    root: Path | ResultsStore  # a ResultsStore keeps its settings (skip_damaged)
    b_opt: float | None = None  # None: the reference batch the runs record, else the paper's 256
    overhead: float = CBS_OVERHEAD
    target: str | float = "auto"
    n_boot: int = 1000
    seed: int = 0
    n_starts: int = 1000  # multi-start points of the L(N, D) fit
    epsilon: float = EPSILON  # the branched CBS's loss tolerance (nats) and EMA weight (cbs.fit.branched)
    ema: float = EMA_ALPHA
    notes: list[str] = field(default_factory=list)  # groups that could not be fitted, and why
    fitted: CbsAnalysis | None = None

    def __post_init__(self) -> None:
        self.store = self.root if isinstance(self.root, ResultsStore) else ResultsStore(self.root)
        self.root = self.store.root
        if not self.store.root.is_dir():
            raise ResultsError(f"no results store at {self.store.root}: pass the folder `cbs sweep` wrote")
        if self.fitted is not None:
            cells = set(
                zip(self.runs["n_params"].astype(float), self.runs["data_tokens"].astype(float), strict=True)
            )
            foreign = [g.label for g in self.fitted.groups if (g.n_params, g.data_tokens) not in cells]
            if foreign:
                raise ResultsError(
                    f"the fit has groups {foreign} that {self.store.root} has no runs of: pass the JSON "
                    "`cbs fit cbs` wrote for this store"
                )

    @cached_property
    def all_runs(self) -> pd.DataFrame:
        """Every row of the store, `cbs branch` runs included (the branched measure reads them)."""
        return self.store.runs()

    @cached_property
    def runs(self) -> pd.DataFrame:
        runs = without_branches(self.all_runs)  # `cbs branch` runs are no grid points
        if runs.empty:
            raise ResultsError(f"the results store {self.store.root} has no runs yet; run `cbs sweep` first")
        return runs

    @cached_property
    def curves(self) -> pd.DataFrame:
        return self.store.curves(self.runs["run_id"])

    @cached_property
    def table(self) -> pd.DataFrame:
        """Steps to target per (model, data_tokens, batch_size), as `cbs fit cbs` computes it."""
        return steps_to_target_table(self.runs, self.curves, b_opt=self.b_opt, target=self.target)

    @cached_property
    def analysis(self) -> CbsAnalysis:
        """Per-group S(B) fits with their measures (B_simple, branched B*, costs) and the CBS laws, exactly as
        `cbs fit cbs` computes them (or ``fitted``)."""
        if self.fitted is not None:
            return self.fitted
        every = self.all_runs
        branches = every.loc[every["parent_run_id"].notna(), "run_id"]
        curves = pd.concat([self.curves, self.store.curves(branches)]) if len(branches) else self.curves
        return fit_store_cbs(
            every,
            curves,
            self.table,
            b_opt=self.b_opt,
            overhead=self.overhead,
            n_boot=self.n_boot,
            seed=self.seed,
            epsilon=self.epsilon,
            alpha=self.ema,
        )

    @cached_property
    def groups(self) -> list[CbsGroup]:
        """The groups that have an S(B) fit (the others are listed in ``notes``)."""
        for g in self.analysis.groups:
            if g.fit is None:
                self.notes.append(f"{g.model}, D = {g.data_tokens:g}: no S(B) fit ({g.error})")
        return [g for g in self.analysis.groups if g.fit is not None]

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
        fit = fit_scaling_law(n, d, loss, n_starts=self.n_starts, n_boot=self.n_boot, seed=self.seed)
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
        """Target loss per (n_params, data_tokens): the fit's (``fitted``), else the steps table's."""
        if self.fitted is not None:
            return {(g.n_params, g.data_tokens): g.target_loss for g in self.fitted.groups if g.target_loss}
        first = self.table.groupby(["n_params", "data_tokens"])["target_loss"].first()
        return {(float(n), float(d)): float(v) for (n, d), v in first.items()}

    def is_theory(self) -> bool:
        """True for stores written by `cbs theory` (presets ``linreg-…``)."""
        return bool(self.runs["preset"].fillna("").str.startswith("linreg").all())
