"""Benchmark: what exact pruning and the batch-range rule would have saved on a stored CBS sweep, same answer.

Replays the stored curves of a stop-at-target sweep run without pruning (default: the committed CPU reproduction
``results/cpu-cbs``) under four levels (cbs.sweep.replay): (a) every arm to its cap, (b) stop-at-target (the
store), (c) + exact pruning, (d) + batch sizes past the CBS not run. For each: tokens, FLOPs (6·N·tokens), the
ratio to (b), and whether the steps-to-target table (steps, argmin run, lr/β2/τ) and every group's CBS and
interval equal (b)'s exactly; then the opt-in inexact rules of `cbs sweep` (cbs.sweep.inexact, the same rule
functions the live sweep runs) on top of (d): (e) successive halving across the arms of a (cell, B, seed), (f) a
lower cap, (g) both, each with how many CBS stay inside their (b) interval. Prints a markdown table (the one in
docs/sweep.md).

    PYTHONPATH=. python benchmarks/bench_prune.py [--results results/cpu-cbs] [--n-boot 1000] [--m 2 --cap 2.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.results import ResultsStore
from cbs.sweep.inexact import Halving, LowerCap, PruneOptions, rule_of
from cbs.sweep.replay import LEVELS, UNCHANGED, Replayed, replay

LABELS = {
    "cap": "(a) every arm to its cap",
    "target": "(b) stop at target",
    "prune": "(c) + exact pruning",
    "batch_range": "(d) + batch sizes past the CBS not run",
}

FIT_COLUMNS = ["model", "data_tokens", "cbs", "cbs_lo", "cbs_hi", "s_min", "b_noise", "unreached_batch_sizes"]


def cbs_per_group(r: Replayed, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = steps_to_target_table(r.runs, r.curves)
    fits = fit_cbs_table(table, n_boot=n_boot).to_frame()
    return table, fits[FIT_COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results/cpu-cbs"))
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of each CBS interval")
    parser.add_argument(
        "--eta", type=int, default=Halving.eta, help="successive halving: keep the best 1/eta"
    )
    parser.add_argument("--rungs", type=int, default=Halving.rungs, help="successive halving: rungs")
    parser.add_argument(
        "--m", type=float, default=2.0, help="lower cap: after a batch size that needed > m·D"
    )
    parser.add_argument("--cap", type=float, default=2.5, help="lower cap: cap·D tokens")
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
    halving, lower_cap = Halving(args.eta, args.rungs), LowerCap(args.m, args.cap)
    inexact = {
        f"(e) (d) + successive halving, inexact (η={halving.eta}, {halving.rungs} rungs)": PruneOptions(
            halving
        ),
        f"(f) (d) + lower cap, inexact (cap·D={lower_cap.cap:g}·D after > {lower_cap.m:g}·D)": PruneOptions(
            lower_cap=lower_cap
        ),
        "(g) (d) + both, inexact": PruneOptions(halving, lower_cap),
    }
    shifts = {}
    for label, options in inexact.items():
        options.check(float(runs.token_budget.max() / runs.data_tokens.min()))
        r = replay(runs, curves, "batch_range", options)
        table, cbs = cbs_per_group(r, args.n_boot)
        changed = (table[UNCHANGED] != base_table[UNCHANGED]) & ~(
            table[UNCHANGED].isna() & base_table[UNCHANGED].isna()
        )
        inside = ((cbs.cbs >= base_cbs.cbs_lo) & (cbs.cbs <= base_cbs.cbs_hi)).sum()
        print(
            f"| {label} | {int((r.runs.tokens.fillna(0) > 0).sum())} | {r.tokens:,} | {r.flops:.3g} | "
            f"{r.tokens / base:.3f} | no: {int(changed.any(axis=1).sum())} of {len(table)} rows differ | "
            f"{inside} of {len(cbs)} CBS inside the (b) interval |"
        )
        shifts[label[:3]] = (
            (cbs.cbs / base_cbs.cbs - 1).abs(),
            r.runs.stop_reason.map(rule_of).value_counts(),
        )
    for label, (shift, rules) in shifts.items():
        print(
            f"\n{label} CBS vs (b): largest relative change {shift.max():.1%}, median {shift.median():.1%}; "
            f"runs stopped by an inexact rule: {rules.to_dict()}"
        )
    counts = levels["batch_range"].runs.status.value_counts()
    print(f"\n(d) run statuses: {counts.to_dict()}")
    print(f"CBS per group (b): {base_cbs.to_dict('records')}")


if __name__ == "__main__":
    main()
