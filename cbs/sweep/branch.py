"""`cbs branch`: the branched-training phase (Merrill et al. 2025) on Ray Tune, over a results store.

A branch spec names parent runs of the store, the fractions of their training to branch at (each parent must
have kept a checkpoint there: ``keep_checkpoints_at``), the multipliers k and Δ. Each branch is an ordinary run
of the store, trained by the sweep's trial machinery (resumable, kill -9 safe, finished branches skipped),
from the parent's kept checkpoint at batch k·B and lr rule(k)·η(step), constant, for Δ tokens; β2 and the EWA
τ stay the parent's. k = 1 (the parent's batch) is always branched: it is the baseline of the estimate.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cbs.config import BranchFrom, TrainConfig, from_dict, load_yaml
from cbs.errors import ConfigError
from cbs.fit.branched import EMA_ALPHA, EPSILON
from cbs.fit.steps_to_target import GROUP_KEYS
from cbs.results import ResultsStore
from cbs.results.cell import Cell, cell_columns
from cbs.sweep.grid import GridPoint
from cbs.sweep.plan import SweepPlan, Trial
from cbs.sweep.runner import stored_runs
from cbs.sweep.spec import Resources, SweepSpec
from cbs.train.branch import CHECKPOINTS_DIR, kept_dir, kept_root, read_kept

LR_RULES = {"sqrt": math.sqrt, "linear": float}  # sqrt: Adam (Merrill et al.); linear: SGD


@dataclass
class BranchSpec:
    """Which runs to branch from, where, how far and how wide; ``epsilon`` and ``ema`` set the estimate that
    `cbs branch` prints at the end (`cbs fit measures` takes its own)."""

    runs: str | list[str] = (
        "reference"  # "reference": each cell's best run at its reference batch; or run ids
    )
    at: list[float] = field(default_factory=lambda: [0.25, 0.5])  # fractions of the parents' steps
    k: list[int] = field(default_factory=lambda: [2, 4, 8])  # batch multipliers (k = 1 is always added)
    delta: float = 0.05  # Δ: tokens per branch, as a fraction of the parent's token budget
    lr_rule: str = "sqrt"  # sqrt (Adam) | linear (SGD)
    epsilon: float = EPSILON  # nats
    ema: float = EMA_ALPHA  # EMA weight of the previous smoothed loss
    resources: Resources = field(default_factory=Resources)
    max_failures: int = 2
    checkpoint_every: int = 4  # evaluations between trial checkpoints (0: never)


@dataclass
class BranchPlan:
    spec: BranchSpec
    parents: list[str]
    trials: list[Trial]

    def sweep_plan(self) -> SweepPlan:
        """The branches as a one-phase sweep plan (resources, retries and checkpoints of the branch spec), for
        ``cbs.sweep.run_sweep``: it trains those not done in the store and skips the others."""
        s = self.spec
        spec = SweepSpec(
            "branch", resources=s.resources, max_failures=s.max_failures, checkpoint_every=s.checkpoint_every
        )
        return SweepPlan(spec, self.trials, [], {})


def load_branch_spec(path: str | Path) -> BranchSpec:
    """Read and check a branch spec file; ConfigError naming the key and the fix."""
    try:
        return parse_branch_spec(load_yaml(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_branch_spec(data: dict[str, Any]) -> BranchSpec:
    """A checked BranchSpec from a dict (strict keys, the values' ranges)."""
    spec = from_dict(BranchSpec, data)
    bad_k = [k for k in spec.k if k <= 1]
    if not spec.k or bad_k or len(set(spec.k)) != len(spec.k):
        raise ConfigError(
            f"k: give distinct whole multipliers > 1, e.g. [2, 4, 8], got {spec.k} (k = 1, the parent's batch, "
            "is always branched as the baseline)"
        )
    bad_at = [f for f in spec.at if not 0 < f < 1]
    if not spec.at or bad_at:
        raise ConfigError(
            f"at: give fractions of the parents' training in (0, 1), e.g. [0.25, 0.5], got {spec.at}"
        )
    late = max(spec.at)
    if not 0 < spec.delta <= 1 - late:
        raise ConfigError(
            f"delta={spec.delta:g} must be > 0 and at most the {1 - late:g} of the run left after the branch "
            f"point at={late:g} (Δ is a fraction of the parent's token budget); lower delta or at"
        )
    if spec.lr_rule not in LR_RULES:
        raise ConfigError(f"lr_rule must be one of {sorted(LR_RULES)} (sqrt for Adam), got {spec.lr_rule!r}")
    if spec.epsilon <= 0 or not 0 <= spec.ema < 1:
        raise ConfigError(f"epsilon must be > 0 and ema in [0, 1), got {spec.epsilon:g} and {spec.ema:g}")
    return spec


def plan_branches(spec: BranchSpec, store: ResultsStore, require_data: bool = True) -> BranchPlan:
    """Every branch of ``spec`` over the runs of ``store``, each config resolved (with ``require_data``).
    Raises ConfigError/DataError before anything runs: an unknown or unfinished parent, a fraction where a
    parent kept no checkpoint, a Δ under one step at the largest k."""
    runs = stored_runs(store)
    parents = _parents(spec, runs, store.root)
    trials = []
    for pid in parents:
        row = runs.set_index("run_id").loc[pid]
        branch_steps(spec, pid, row, max(spec.k))  # Δ is at least one step at every k
        for fraction in spec.at:
            directory = kept_dir(kept_root(store.root, pid), fraction)
            kept = read_kept(directory)
            if kept is None:
                have = ", ".join(f"{f:g}" for f in _kept_fractions(store.root, pid)) or "none"
                raise ConfigError(
                    f"run {pid} kept no checkpoint at at={fraction:g} (it kept: {have}); train the parents with "
                    f"keep_checkpoints_at: {spec.at} (in the sweep spec's base) or branch at those it kept"
                )
            for k in [1, *sorted(spec.k)]:
                trials.append(_branch_trial(spec, pid, row, kept.step, kept.lr, fraction, k, directory))
    if require_data:
        from cbs.train import resolve_config

        for t in trials:
            resolve_config(t.config)
    return BranchPlan(spec, parents, trials)


def _parents(spec: BranchSpec, runs: pd.DataFrame, root: Path) -> list[str]:
    plain = runs[runs["parent_run_id"].isna()] if "parent_run_id" in runs else runs
    done = plain[plain["status"].isin(("completed", "reached_target"))]
    if spec.runs == "reference":
        ref = done[done["batch_size"] == done["reference_batch_size"]]
        if ref.empty:
            raise ConfigError(
                f"runs: reference: {root} has no finished run at its cell's reference batch size; list the "
                "parent run ids under runs: (`cbs status` shows them)"
            )
        best = (
            ref.sort_values("best_ewa_eval_loss").groupby(GROUP_KEYS[1:] + ["preset"], dropna=False).head(1)
        )
        return sorted(best["run_id"])
    if isinstance(spec.runs, str):
        raise ConfigError(f"runs: give 'reference' or a list of run ids, got {spec.runs!r}")
    for pid in spec.runs:
        if pid not in set(runs["run_id"]):
            raise ConfigError(
                f"runs: {pid} is not a run of {root} ({len(runs)} runs; `cbs status` lists them)"
            )
        if pid not in set(done["run_id"]):
            status = runs.set_index("run_id").loc[pid, "status"]
            raise ConfigError(f"runs: {pid} is {status} (or a branch itself): branch only from finished runs")
    return list(dict.fromkeys(spec.runs))


def _kept_fractions(root: Path, run_id: str) -> list[float]:
    folder = Path(root) / CHECKPOINTS_DIR / run_id
    found = [read_kept(d) for d in sorted(folder.glob("frac-*"))] if folder.is_dir() else []
    return [m.fraction for m in found if m is not None]


def branch_steps(spec: BranchSpec, pid: str, row: pd.Series, k: int) -> int:
    """Steps of Δ at k × the parent's batch (rounded); ConfigError where that is under one step."""
    batch_tokens = k * int(row["batch_size"]) * int(row["seq_len"])
    delta = spec.delta * float(row["token_budget"])
    steps = round(delta / batch_tokens)
    if steps < 1:
        raise ConfigError(
            f"delta={spec.delta:g} gives {delta:.0f} tokens per branch of run {pid}, under one step at k={k} "
            f"({batch_tokens} tokens); raise delta or lower k"
        )
    return steps


def _branch_trial(
    spec: BranchSpec,
    pid: str,
    row: pd.Series,
    step: int,
    lr: float,
    fraction: float,
    k: int,
    checkpoint: Path,
) -> Trial:
    """The branch at ``k`` × the parent's batch from its checkpoint at ``step`` (lr ``lr`` there)."""
    parent = TrainConfig.from_dict(json.loads(row["config_json"]))
    batch, seq = k * parent.batch_size, int(row["seq_len"])
    steps = branch_steps(spec, pid, row, k)
    optim = dataclasses.replace(
        parent.optim,
        lr=lr * LR_RULES[spec.lr_rule](k),
        beta2=float(row["beta2"]),
        schedule="constant",
        warmup_steps=0,
        warmup_tokens=None,
    )
    cfg = dataclasses.replace(
        parent,
        batch_size=batch,
        optim=optim,
        ewa_tau=float(row["ewa_tau"]),
        eval=dataclasses.replace(
            parent.eval, raw_every=1
        ),  # the estimate smooths raw losses: every evaluation
        token_budget=steps * batch * seq,
        chinchilla_multiple=None,
        data_tokens=None,
        target_loss=None,
        reference_batch_size=None,
        keep_checkpoints_at=[],
        branch=BranchFrom(pid, fraction, step, k, str(checkpoint)),
    )
    model, n_params, data_tokens, dataset, optimizer = cell_columns(pd.DataFrame([row])).iloc[0]
    cell = Cell(str(model), int(n_params), int(data_tokens), str(dataset), str(optimizer))  # the parent's
    point = GridPoint({"parent": pid, "at": fraction, "k": k}, cfg)
    tokens = steps * batch * seq
    return Trial(
        point,
        cfg,
        "branch",
        cell,
        int(row["n_params"]),
        tokens,
        float(row["flops_per_token"]),
        tokens,
        batch * seq,
    )
