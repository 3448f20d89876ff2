"""`cbs status DIR`: what a results directory holds, and with --spec what its grid still misses."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="summarise a results directory (counts, best loss per cell, tokens saved, missing runs)",
        description="Counts by status, best loss per model × data cell, tokens and FLOPs trained, saved by stopping at "
        "the target and by pruning; with --spec, the grid points not done yet. Exits 1 when runs are damaged (a row or curve file "
        "that cannot be read); `cbs sweep` moves them aside and trains them again.",
    )
    p.add_argument("results", type=Path, help="results directory written by `cbs sweep`")
    p.add_argument("--spec", type=Path, help="the sweep spec, to list the grid points still missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cbs.errors import ResultsError
    from cbs.results import ResultsStore
    from cbs.sweep import load_spec, plan_sweep, render, summarize

    if not args.results.is_dir():
        raise ResultsError(
            f"no results directory {args.results}: run `cbs sweep SPEC --results {args.results}`"
        )
    plan = plan_sweep(load_spec(args.spec), require_data=False) if args.spec else None
    store = ResultsStore(args.results, skip_damaged=True)
    console = Console(soft_wrap=True)
    damaged = store.damaged()
    render(summarize(store.runs(), plan), console)
    for d in damaged:
        console.print(f"[red]damaged[/red] {d.describe()}", highlight=False)
    if damaged:
        console.print(
            f"{len(damaged)} damaged run(s), not counted done. Fix: `cbs sweep SPEC --results {args.results}` "
            f"moves their files to {args.results / 'damaged'} and trains them again",
            highlight=False,
        )
        return 1
    return 0
