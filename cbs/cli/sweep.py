"""`cbs sweep SPEC`: run a grid of training runs on Ray Tune into a Parquet results store (docs/sweep.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from cbs.results import ResultsStore
    from cbs.sweep import SweepPlan

from cbs.cli.options import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run the grid of a sweep spec on Ray Tune (resumable)",
        description="Run every grid point of SPEC not yet in the results store; run it again to resume.",
    )
    p.add_argument("spec", type=Path, help="sweep spec, e.g. experiments/default.yaml")
    p.add_argument("--results", type=Path, help="results directory (default: results/<spec name>)")
    p.add_argument(
        "--address",
        help="join this Ray cluster (auto, or HEAD_IP:6379; run the driver on a cluster node); "
        "default: RAY_ADDRESS, else a local Ray",
    )
    p.add_argument("--dry-run", action="store_true", help="print the grid (runs, tokens, FLOPs) and exit")
    p.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="train every arm to its target or cap: no pruning of dominated arms, every batch size run "
        "(default: prune; same steps-to-target and CBS, see docs/sweep.md)",
    )
    p.add_argument(
        "--halving",
        action="store_true",
        help="also stop arms by successive halving within each (cell, batch size, seed): INEXACT, the CBS may "
        "differ from the unpruned protocol's (settings: the spec's prune.halving, else eta 3, 2 rungs; "
        "docs/sweep.md)",
    )
    p.add_argument(
        "--max-concurrent",
        type=whole_number(1),
        help="at most this many trials at once (default: as resources allow)",
    )
    p.add_argument(
        "--num-cpus",
        type=whole_number(1),
        help="CPUs of the local Ray started for the sweep (default: all cores)",
    )
    p.add_argument(
        "--tracker",
        action="append",
        default=[],
        metavar="NAME",
        help="also log to tensorboard, wandb or mlflow (repeatable; added to the spec's trackers; "
        "offline by default: docs/sweep.md)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cbs.errors import ConfigError
    from cbs.results import ResultsStore
    from cbs.sweep import (
        invocation_line,
        load_spec,
        plan_sweep,
        render,
        render_plan,
        run_sweep,
        summarize,
    )
    from cbs.sweep.runner import stored_runs
    from cbs.sweep.spec import with_halving

    console = Console(soft_wrap=True)
    from cbs.sweep.trackers import check_trackers

    spec = load_spec(args.spec)
    check_trackers(args.tracker)
    if args.halving and not args.prune:
        raise ConfigError("--halving is a pruning rule: drop --no-prune, or drop --halving")
    if args.halving:
        spec = with_halving(spec)
    plan = plan_sweep(spec, require_data=not args.dry_run)
    results = (args.results or Path("results") / spec.name).absolute()
    if args.dry_run:
        render_plan(plan, console)
        if results.is_dir():
            _print_store_state(plan, ResultsStore(results, skip_damaged=True), console)
        return 0
    console.print(f"sweep {spec.name}: {len(plan.trials)} grid points -> {results}", highlight=False)
    if spec.prune.inexact:
        console.print(
            f"[yellow]inexact:[/yellow] {spec.prune.describe()} "
            + (
                "may stop the arm or batch size that would set S(B): the CBS may differ from the unpruned "
                "protocol's (docs/sweep.md)"
                if args.prune
                else "not applied (--no-prune)"
            ),
            highlight=False,
        )
    try:
        outcome = run_sweep(
            plan,
            results,
            address=args.address,
            max_concurrent=args.max_concurrent,
            num_cpus=args.num_cpus,
            console=console,
            trackers=args.tracker,
            prune=args.prune,
        )
    except KeyboardInterrupt:
        console.print("stopped: run the same command again to resume (stored runs are kept)")
        raise
    runs = stored_runs(ResultsStore(results))
    summary = summarize(runs, plan)
    console.print("[bold]the whole store[/] (this and earlier invocations):")
    render(summary, console)
    console.print(invocation_line(outcome, summary, runs), highlight=False)
    for run_id, error in sorted(outcome.errors.items()):
        console.print(f"[red]trial {run_id} failed[/red]: {error}", highlight=False)
    if summary.missing or summary.waiting:
        console.print(
            f"[red]{len(summary.missing) + summary.waiting} grid points are not done[/red]: run the same command "
            "again to retry failed runs (from their last checkpoint)"
        )
        return 1
    return 0


def _print_store_state(plan: SweepPlan, store: ResultsStore, console: Console) -> None:
    """Dry run: how many grid points the store already holds, how many are left to train, which are damaged."""
    from cbs.sweep.runner import missing_ids

    damaged = store.damaged()
    todo = missing_ids(plan, store.runs())
    console.print(
        f"{store.root}: {len(plan.trials) - len(todo)} of {len(plan.trials)} grid points done, {len(todo)} to "
        f"train"
        + (f" ({len(damaged)} damaged runs would be moved aside and trained again)" if damaged else ""),
        highlight=False,
    )
