"""What a results directory holds: counts by status, best loss per cell, tokens trained and saved by stopping
at the target, and (given the spec) the grid points still missing. Used by `cbs status` and `cbs sweep`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console

from cbs.console import Column, print_fitted_table
from cbs.presets import model_label
from cbs.results import STATUSES, without_branches
from cbs.results.cell import CELL_KEYS, with_cells
from cbs.sweep.inexact import rule_of
from cbs.sweep.plan import SweepPlan
from cbs.sweep.trial import DONE_STATUSES

if TYPE_CHECKING:
    from cbs.sweep.runner import SweepOutcome


@dataclass
class Summary:
    counts: dict[str, int]
    cells: pd.DataFrame  # one row per cell (cbs.results.cell): runs, seeds, best loss, target, reached
    tokens_trained: int
    tokens_saved: int  # token caps not used by runs that stopped at their target
    flops_saved: float
    target_budget_tokens: int  # sum of the token caps of the runs that had a target
    flops_trained: float = 0.0  # 6·N·tokens
    tokens_pruned: int = 0  # token caps not used by pruned / skipped_past_cbs runs (cbs.sweep.prune)
    flops_pruned: float = 0.0
    tokens_inexact: int = 0  # the part of tokens_pruned saved by the opt-in inexact rules (cbs.sweep.inexact)
    inexact_runs: int = 0  # runs those rules stopped
    missing: list[str] = field(default_factory=list)  # labels of planned grid points not done
    waiting: int = 0  # target-phase points whose cell has no target yet
    planned: int = 0  # grid points of the plan (including the waiting ones); 0 without a plan

    @property
    def saved_fraction(self) -> float:
        return self.tokens_saved / self.target_budget_tokens if self.target_budget_tokens else 0.0

    @property
    def to_cap_tokens(self) -> int:
        """Tokens of the same runs under the paper's protocol: every arm to its cap (diverged ones as they are)."""
        return self.tokens_trained + self.tokens_saved + self.tokens_pruned

    @property
    def to_cap_flops(self) -> float:
        """FLOPs of the same runs with every arm to its cap (as ``to_cap_tokens``)."""
        return self.flops_trained + self.flops_saved + self.flops_pruned


def summarize(runs: pd.DataFrame, plan: SweepPlan | None = None) -> Summary:
    """Summarise a runs table (ResultsStore.runs()), optionally against the plan of its spec."""
    counts = {s: int((runs.status == s).sum()) for s in STATUSES}
    stopped = runs[runs.status == "reached_target"]
    saved = (stopped.token_budget - stopped.tokens.fillna(0)).clip(lower=0)
    cut = runs[runs.status.isin(["pruned", "skipped_past_cbs"])]
    pruned = (cut.token_budget - cut.tokens.fillna(0)).clip(lower=0)
    inexact = cut.stop_reason.map(rule_of).notna()
    targeted = runs[runs.target_loss.notna()]
    ok = with_cells(without_branches(runs))  # `cbs branch` runs are no grid points of a cell
    ok = ok[ok.status != "diverged"]
    cells = (
        ok.groupby(CELL_KEYS, dropna=False)
        .agg(
            runs=("run_id", "size"),
            seeds=("seed", "nunique"),
            best_ewa_eval_loss=("best_ewa_eval_loss", "min"),
            target_loss=("target_loss", "min"),
            reached=("status", lambda s: int((s == "reached_target").sum())),
        )
        .reset_index()
        if len(ok)
        else pd.DataFrame(
            columns=[*CELL_KEYS, "runs", "seeds", "best_ewa_eval_loss", "target_loss", "reached"]
        )
    )
    summary = Summary(
        counts=counts,
        cells=cells,
        tokens_trained=int(runs.tokens.fillna(0).sum()),
        tokens_saved=int(saved.sum()),
        flops_saved=_flops(stopped, saved),
        target_budget_tokens=int(targeted.token_budget.fillna(0).sum()),
        flops_trained=_flops(runs, runs.tokens.fillna(0)),
        tokens_pruned=int(pruned.sum()),
        flops_pruned=_flops(cut, pruned),
        tokens_inexact=int(pruned[inexact].sum()),
        inexact_runs=int(inexact.sum()),
    )
    if plan is not None:
        done = set(runs.run_id[runs.status.isin(DONE_STATUSES)])
        targets = plan.targets(runs)
        planned = plan.budget + plan.target_trials(targets)
        summary.missing = [t.point.label() for t in planned if t.run_id not in done]
        summary.waiting = sum(t.cell not in targets for t in plan.pending_target)
        summary.planned = len(planned) + summary.waiting
    return summary


def _flops(runs: pd.DataFrame, tokens: pd.Series) -> float:
    """6·N·tokens summed (N: non-embedding parameters)."""
    return float((6.0 * runs.n_params * tokens).sum())


def best_loss(runs: pd.DataFrame, run_ids: Iterable[str] | None = None) -> float | None:
    """The lowest best EWA eval loss of the runs that did not diverge (of ``run_ids`` only, if given);
    None where there is none."""
    ok = runs[runs.status != "diverged"]
    if run_ids is not None:
        ok = ok[ok.run_id.isin(set(run_ids))]
    best = ok.best_ewa_eval_loss.min()
    return None if pd.isna(best) else float(best)


def invocation_line(outcome: SweepOutcome, summary: Summary, runs: pd.DataFrame) -> str:
    """One line that keeps apart what this invocation did and what the whole store holds, e.g.
    'this invocation: 3 trained (best EWA loss 4.1302), 1 failed, 17 already done | store: 20 of 21 planned
    runs done, best EWA loss 4.1203'. ``summary`` is ``summarize(runs, plan)``."""
    mine = f"this invocation: {len(outcome.ran)} trained"
    if outcome.ran:
        mine += f" (best EWA loss {_num(best_loss(runs, outcome.ran))})"
    if outcome.failed:
        mine += f", {len(outcome.failed)} failed"
    mine += f", {len(outcome.skipped)} already done"
    done = summary.planned - len(summary.missing) - summary.waiting
    return f"{mine} | store: {done} of {summary.planned} planned runs done, best EWA loss {_num(best_loss(runs))}"


def render(summary: Summary, console: Console, max_missing: int = 20) -> None:
    """Print a summary as a few short tables/lines."""
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items())
    console.print(f"runs: {sum(summary.counts.values())} ({counts})")
    if len(summary.cells):
        columns = (
            Column("model"),
            Column("N", drop=4, justify="right"),
            Column("D tokens", justify="right"),
            Column("seeds", drop=5, justify="right"),
            Column("runs", drop=3, justify="right"),
            Column("best EWA\nloss", justify="right"),
            Column("target", drop=1, justify="right"),
            Column("reached", drop=2, justify="right"),
        )
        rows = [
            (
                str(row.model),
                f"{row.n_params:,}",
                f"{row.data_tokens:,}",
                str(row.seeds),
                str(row.runs),
                _num(row.best_ewa_eval_loss),
                _num(row.target_loss),
                str(row.reached),
            )
            for row in summary.cells.itertuples()
        ]
        print_fitted_table(console, columns, rows)
    line = f"tokens trained: {summary.tokens_trained:,} ({summary.flops_trained:.3g} FLOPs = 6·N·tokens)"
    if summary.target_budget_tokens:
        line += (
            f"; saved by stopping at target: {summary.tokens_saved:,} tokens ({summary.saved_fraction:.0%} of "
            f"the target runs' caps, {summary.flops_saved:.3g} FLOPs)"
        )
    if summary.tokens_pruned:
        line += f"; saved by pruning: {summary.tokens_pruned:,} tokens ({summary.flops_pruned:.3g} FLOPs)"
        if summary.tokens_inexact:
            line += f", {summary.tokens_inexact:,} tokens of them by inexact rules"
    if summary.to_cap_tokens:
        line += (
            f"; {summary.tokens_trained / summary.to_cap_tokens:.2f}× the tokens and "
            f"{summary.flops_trained / summary.to_cap_flops:.2f}× the FLOPs of every arm to its cap"
        )
    console.print(line)
    if summary.inexact_runs:
        console.print(
            f"[yellow]inexact:[/yellow] {summary.inexact_runs} runs were stopped by successive halving or a lower "
            "cap, so steps-to-target and CBS may differ from the unpruned protocol's (docs/sweep.md)",
            highlight=False,
        )
    if summary.waiting:
        console.print(f"{summary.waiting} grid points wait for their cell's reference runs (the target)")
    if summary.missing:
        console.print(f"missing grid points: {len(summary.missing)}")
        for label in summary.missing[:max_missing]:
            console.print(f"  {label}", highlight=False)
        if len(summary.missing) > max_missing:
            console.print(f"  ... and {len(summary.missing) - max_missing} more")


def _num(x: float | None) -> str:
    return f"{x:.4f}" if x is not None and not (isinstance(x, float) and math.isnan(x)) else "-"


def render_plan(plan: SweepPlan, console: Console) -> None:
    """The dry-run view of a plan: every run with its size, token cap and FLOPs, then the totals."""
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    columns = (
        Column("phase"),
        Column("preset"),
        Column("N", drop=3, justify="right"),
        Column("batch", justify="right"),
        Column("lr", justify="right"),
        Column("tokens", drop=2, justify="right"),
        Column("FLOPs", drop=4, justify="right"),
        Column("run_id", drop=5),
    )
    rows = []
    for t in plan.trials:
        cap = "≤" if t.phase == "target" else ""
        rows.append(
            (
                t.phase,
                model_label(t.config.model),
                f"{t.n_params:,}",
                str(t.config.batch_size),
                f"{t.config.optim.lr:g}",
                f"{cap}{t.tokens:,}",
                f"{cap}{t.flops:.3g}",
                t.run_id[:8] if t.phase == "budget" else "-",
            )
        )
    print_fitted_table(console, columns, rows, title=f"sweep {plan.spec.name}")
    tokens = sum(t.tokens for t in plan.trials)
    flops = sum(t.flops for t in plan.trials)
    line = f"{len(plan.trials)} runs ({len(plan.budget)} budget"
    if plan.spec.target:
        rule = plan.spec.target
        line += (
            f", {len(plan.pending_target)} stop at the target of b_opt={rule.reference_batch_size}, "
            f"capped at {rule.budget_multiple:g}×D"
        )
    console.print(f"{line}); at most {tokens:,} tokens and {flops:.3g} FLOPs in total", highlight=False)
