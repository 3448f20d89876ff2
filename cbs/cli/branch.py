"""`cbs branch SPEC --results DIR`: branched-training CBS runs from a store's kept checkpoints (docs/measures.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cbs.cli.options import whole_number
from cbs.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from cbs.sweep.branch import BranchPlan
    from cbs.sweep.plan import Trial


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "branch",
        help="branch runs of a store at k× their batch from kept checkpoints (Merrill et al.; resumable)",
        description="Train the branches of SPEC from the kept checkpoints of the runs in --results, skipping "
        "the branches already stored; run it again to resume. Then print the branched CBS per branch point.",
    )
    p.add_argument("spec", type=Path, help="branch spec (YAML): runs, at, k, delta, lr_rule, epsilon, ema")
    p.add_argument("--results", type=Path, required=True, help="results store written by `cbs sweep`")
    p.add_argument("--address", help="join this Ray cluster (auto, or HEAD_IP:6379); default: a local Ray")
    p.add_argument("--dry-run", action="store_true", help="print the branches (tokens, FLOPs) and exit")
    p.add_argument("--max-concurrent", type=whole_number(1), help="at most this many trials at once")
    p.add_argument("--num-cpus", type=whole_number(1), help="CPUs of the local Ray (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cbs.cli.options import open_store
    from cbs.sweep import run_sweep
    from cbs.sweep.branch import load_branch_spec, plan_branches

    console = Console(soft_wrap=True)
    spec = load_branch_spec(args.spec)
    store = open_store(args.results.absolute(), skip_damaged=True)  # `cbs branch` heals damaged runs
    plan = plan_branches(spec, store, require_data=not args.dry_run)
    if args.dry_run:
        render_branch_plan(plan, console)
        return 0
    outcome = run_sweep(
        plan.sweep_plan(),
        store.root,
        address=args.address,
        max_concurrent=args.max_concurrent,
        num_cpus=args.num_cpus,
        console=console,
    )
    console.print(
        f"branches: {len(outcome.ran)} trained, {len(outcome.skipped)} already stored, "
        f"{len(outcome.missing)} not done",
        highlight=False,
    )
    render_estimates(_estimates(plan, store.root), console)
    if outcome.missing:
        console.print(f"[red]{len(outcome.missing)} branches are not done[/red]: run the same command again")
        return 1
    return 0


def _estimates(plan: BranchPlan, root: Path) -> pd.DataFrame:
    from cbs.fit.branched import branched_table
    from cbs.results import ResultsStore

    store = ResultsStore(root)
    ids = [t.run_id for t in plan.trials]
    runs = store.runs()
    runs = runs[runs.run_id.isin(ids)]
    return branched_table(runs, store.curves(ids), epsilon=plan.spec.epsilon, alpha=plan.spec.ema)


def render_branch_plan(plan: BranchPlan, console: Console) -> None:
    """Every branch with its parent, point, k, batch, lr, steps, tokens and FLOPs; then the totals."""
    from cbs.console import Column, print_fitted_table

    columns = (
        Column("parent"),
        Column("at", justify="right"),
        Column("k", justify="right"),
        Column("batch", justify="right"),
        Column("lr", justify="right"),
        Column("tokens", justify="right"),
        Column("FLOPs", drop=2, justify="right"),
    )
    rows = [_branch_row(t) for t in plan.trials]
    print_fitted_table(
        console, columns, rows, title=f"{len(plan.trials)} branches of {len(plan.parents)} runs"
    )
    tokens = sum(t.tokens for t in plan.trials)
    flops = sum(t.flops for t in plan.trials)
    console.print(
        f"total: {len(plan.trials)} branches, {tokens:,} tokens, {flops:.3g} FLOPs", highlight=False
    )


def _branch_row(t: Trial) -> tuple[str, ...]:
    """A branch trial's row of `render_branch_plan`."""
    branch = t.config.branch
    if branch is None:
        raise ConfigError(f"trial {t.run_id} of a branch plan has no branch point")
    return (
        branch.parent_run_id[:8],
        f"{branch.fraction:g}",
        str(branch.k),
        str(t.config.batch_size),
        f"{t.config.optim.lr:.3g}",
        f"{t.tokens:,}",
        f"{t.flops:.3g}",
    )


def render_estimates(table: pd.DataFrame, console: Console) -> None:
    """The branched CBS per (parent, branch point)."""
    from cbs.console import Column, print_fitted_table

    columns = (
        Column("parent"),
        Column("at", justify="right"),
        Column("B", justify="right"),
        Column("k*", justify="right"),
        Column("B* [interval]", justify="right"),
        Column("tokens", drop=2, justify="right"),
        Column("note", drop=3, wrap=True),
    )
    rows = [
        (
            r.parent_run_id[:8],
            f"{r.branch_fraction:g}",
            str(r.batch_size),
            "-" if r.k_star is None or r.k_star != r.k_star else str(int(r.k_star)),
            "-" if r.cbs != r.cbs else f"{r.cbs:g} [{r.cbs_lo:g}, {r.cbs_hi:g}]",
            f"{r.tokens:,}",
            r.note,
        )
        for r in table.itertuples()
    ]
    print_fitted_table(console, columns, rows, title="branched CBS (Merrill et al. 2025)")
