"""Benchmark: what exact pruning and the batch-range rule would have saved on a stored CBS sweep, same answer.

Replays the stored curves of a stop-at-target sweep run without pruning (default: the committed CPU reproduction
``results/cpu-cbs``) under four levels (cbs.sweep.replay): (a) every arm to its cap, (b) stop-at-target (the
store), (c) + exact pruning, (d) + batch sizes past the CBS not run. For each: tokens, FLOPs (6·N·tokens), the
ratio to (b), and whether the steps-to-target table (steps, argmin run, lr/β2/τ) and every group's CBS and
interval equal (b)'s exactly; then (e) (d) + successive halving across the arms of a (cell, B), which is not
exact, with how many CBS stay inside their (b) interval. Prints a markdown table (the one in docs/sweep.md).

    PYTHONPATH=. python benchmarks/bench_prune.py [--results results/cpu-cbs] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.results import ResultsStore
from cbs.sweep.replay import ETA, HALVING, LEVELS, RUNGS, UNCHANGED, Replayed, replay

LABELS = {
    "cap": "(a) every arm to its cap",
    "target": "(b) stop at target",
    "prune": "(c) + exact pruning",
    "batch_range": "(d) + batch sizes past the CBS not run",
}

FIT_COLUMNS = ["model", "data_tokens", "cbs", "cbs_lo", "cbs_hi", "s_min", "b_noise", "unreached_batch_sizes"]


def cbs_per_group(r: Replayed, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = steps_to_target_table((r.runs, r.curves))
    fits = fit_cbs_table(table, n_boot=n_boot).to_frame()
    return table, fits[FIT_COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results/cpu-cbs"))
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of each CBS interval")
    args = parser.parse_args()
    store = ResultsStore(args.results)
    runs = store.runs()
    curves = store.curves(runs.run_id)
    levels = {level: replay(runs, curves, level) for level in LEVELS}
    base_table, base_cbs = cbs_per_group(levels["target"], args.n_boot)
    base = levels["target"].tokens
    print(f"store {args.results}: {len(runs)} runs, {len(base_cbs)} CBS groups\n")
    print("| protocol | runs trained | tokens | FLOPs (6·N·tokens) | vs (b) | same steps table | same CBS |")
    print("|---|---|---|---|---|---|---|")
    for level, r in levels.items():
        table, cbs = cbs_per_group(r, args.n_boot)
        same_table = table[UNCHANGED].equals(base_table[UNCHANGED])
        same_cbs = cbs.equals(base_cbs)
        trained = int((r.runs.tokens.fillna(0) > 0).sum())
        same = ("yes" if same_table else "NO", "yes" if same_cbs else "NO")
        if level == "cap":  # tokens only: the stored curves stop at the target, they cannot be extended
            same = ("(not replayed)", "(not replayed)")
        print(
            f"| {LABELS[level]} | {trained} | {r.tokens:,} | {r.flops:.3g} | {r.tokens / base:.3f} | "
            f"{same[0]} | {same[1]} |"
        )
    halved = replay(runs, curves, HALVING)
    _, cbs = cbs_per_group(halved, args.n_boot)
    inside = ((cbs.cbs >= base_cbs.cbs_lo) & (cbs.cbs <= base_cbs.cbs_hi)).sum()
    print(
        f"| (e) (d) + successive halving, inexact (η={ETA}, {RUNGS} rungs) | "
        f"{int((halved.runs.tokens.fillna(0) > 0).sum())} | {halved.tokens:,} | {halved.flops:.3g} | "
        f"{halved.tokens / base:.3f} | (inexact) | {inside} of {len(cbs)} CBS inside the (b) interval |"
    )
    shift = (cbs.cbs / base_cbs.cbs - 1).abs()
    print(f"\n(e) CBS vs (b): largest relative change {shift.max():.1%}, median {shift.median():.1%}")
    counts = levels["batch_range"].runs.status.value_counts()
    print(f"\n(d) run statuses: {counts.to_dict()}")
    print(f"CBS per group (b): {base_cbs.to_dict('records')}")


if __name__ == "__main__":
    main()
