"""The three CBS measures on the same runs (results/README.md, "Three measures of the CBS on the same runs"):
print the measure × cell table with each value's ratio to the steps-to-target B* and each measure's cost as a
share of the cell's grid, the branched losses per k, and the B_simple of every batch size at the target.

    cbs fit measures results/measures --n-boot 1000 --json results/measures/fits/measures.json
    cbs fit cbs results/measures --json results/measures/fits/all.json      # B_noise = b/a per cell
    python analysis/measures.py results/measures [--compare results/cpu-cbs]

Every row of the first table, B_simple included (with the run it was read from and its range over
[s*/2, 2·s*]), is read from the `cbs fit measures` JSON; the B_simple of every batch size is read the same way
(`cbs.fit.measures`), to show its spread against the fit's B_noise = b/a.
``--compare`` matches this store's runs with another store's by (model, D, B, lr) and prints how far their EWA
eval losses differ at the steps both evaluated (micro-batching is gradient accumulation: only fp rounding differs).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from cbs.fit import steps_to_target_table
from cbs.fit.branched import branched_table
from cbs.fit.measures import _read_b_simple  # the one reading of B_simple at a run's target
from cbs.fit.steps_to_target import GROUP_KEYS
from cbs.results import ResultsStore, without_branches
from cbs.results.cell import with_cells

MATCH_KEYS = ["preset", "data_tokens", "batch_size", "lr"]


def b_simple_at_target(steps: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame) -> dict[tuple, dict]:
    """Per cell (GROUP_KEYS tuple), batch size -> the B_simple of its fastest run that reached the target, read
    as `cbs fit measures` reads the cell's one value (`cbs.fit.measures`: first evaluation at or after the target
    step); batch sizes that logged none there are left out."""
    out: dict[tuple, dict] = {}
    reached = steps[steps["run_id"].notna()].sort_values(["batch_size", "steps_to_target"])
    for key, grp in reached.groupby(GROUP_KEYS, sort=True):
        cell = runs[runs["run_id"].isin(grp["run_id"])]
        found = {}
        for row in grp.drop_duplicates("batch_size").itertuples():
            read = _read_b_simple(row, cell, curves, reference=False)
            if read is not None:
                found[int(row.batch_size)] = read
        out[key] = found
    return out


def _fmt(value: float, lo: float | None = None, hi: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if lo is None or hi is None or not (math.isfinite(lo) or math.isfinite(hi)):
        return f"{value:.3g}"
    show = [f"{x:.3g}" if math.isfinite(x) else "∞" for x in (lo, hi)]
    return f"{value:.3g} [{show[0]}, {show[1]}]"


def _num(x: object) -> float:
    return math.nan if x is None else float(x)


def measures_markdown(rows: list[dict]) -> str:
    """The measure × cell table: value [interval], ratio to the steps-to-target B*, tokens and CPU seconds
    (wall seconds summed over 1-CPU runs) and their shares of the cell's grid."""
    lines = [
        "| D (tokens) | measure | B (seqs) [interval] | / B* | tokens | share of grid | CPU s | share of grid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, grp in pd.DataFrame(rows).groupby(GROUP_KEYS, sort=True):
        grid = grp[grp["measure"] == "steps-to-target"].iloc[0]
        b_star = _num(grid["value"])
        for r in grp.itertuples():
            value, lo, hi, tokens, wall = (
                _num(r.value),
                _num(r.lo),
                _num(r.hi),
                int(r.tokens),
                _num(r.wall_time_s),
            )
            label = f"b_simple ({r.note.split(';')[0]})" if r.measure == "b_simple" and r.note else r.measure
            ratio = value / b_star if math.isfinite(value) and math.isfinite(b_star) else math.nan
            lines.append(
                f"| {int(r.data_tokens):,} | {label} | {_fmt(value, lo, hi)} | {_fmt(ratio)} | {tokens:,} | "
                f"{tokens / int(grid['tokens']):.1%} | {wall:.0f} | {wall / _num(grid['wall_time_s']):.1%} |"
            )
    return "\n".join(lines)


def branched_markdown(runs: pd.DataFrame, curves: pd.DataFrame, epsilon: float, alpha: float) -> str:
    """Per parent and branch point: the smoothed loss at Δ of each k, k* and B*."""
    table = branched_table(runs, curves, epsilon=epsilon, alpha=alpha)
    d = with_cells(runs).set_index("run_id")["data_tokens"]
    lines = [
        "| D (tokens) | at (step) | smoothed loss at Δ, k = "
        + ", ".join(str(k) for k in (table["ks"].iloc[0] if len(table) else []))
        + " | k* | B* [interval] |",
        "|---|---|---|---|---|",
    ]
    table["data_tokens"] = [int(d[p]) for p in table["parent_run_id"]]
    for r in table.sort_values(["data_tokens", "branch_fraction"]).itertuples():
        losses = ", ".join(f"{x:.3f}" for x in r.losses.values())
        lines.append(
            f"| {r.data_tokens:,} | {r.branch_fraction:g} ({r.branch_step}) | {losses} | "
            f"{_fmt(_num(r.k_star))} | {_fmt(_num(r.cbs), _num(r.cbs_lo), _num(r.cbs_hi))} |"
        )
    return "\n".join(lines)


def simple_markdown(simple: dict[tuple, dict], b_noise: dict[float, tuple]) -> str:
    """B_simple at the target of every batch size's fastest run (a property of the point in training, so it
    should not depend on B), their median, and the steps-to-target fit's B_noise = b/a with its interval
    (``b_noise``: D -> (value, lo, hi), from `cbs fit cbs`)."""
    sizes = sorted({b for found in simple.values() for b in found})
    head = " | ".join(f"B={b}" for b in sizes)
    lines = [f"| D (tokens) | {head} | median | B_noise = b/a |", "|---" * (len(sizes) + 3) + "|"]
    for key, found in simple.items():
        d = key[GROUP_KEYS.index("data_tokens")]
        values = {b: m.value for b, m in found.items()}
        median = float(pd.Series(list(values.values())).median()) if values else math.nan
        cells = " | ".join(_fmt(values.get(b, math.nan)) for b in sizes)
        lines.append(f"| {int(d):,} | {cells} | {_fmt(median)} | {_fmt(*b_noise.get(d, (math.nan,)))} |")
    return "\n".join(lines)


def compare_markdown(mine: ResultsStore, other: ResultsStore) -> str:
    """Per batch size, over the runs both stores trained (same model, D, B, lr) at the steps both evaluated:
    the largest |Δ EWA eval loss| over the first three evaluations, the median step where |Δ| first exceeds
    1e-4 (rounding differences grow over training) and the largest |Δ| over the whole run."""
    a, b = (with_cells(without_branches(s.runs())) for s in (mine, other))
    pairs = a.merge(b, on=MATCH_KEYS, suffixes=("", "_o"))[[*MATCH_KEYS, "run_id", "run_id_o"]]
    if pairs.empty:
        return "no runs in common"
    ca, cb = mine.curves(pairs["run_id"]), other.curves(pairs["run_id_o"])
    rows = []
    for p in pairs.itertuples():
        x = ca[ca["run_id"] == p.run_id][["step", "eval_set", "ewa_eval_loss"]]
        y = cb[cb["run_id"] == p.run_id_o][["step", "eval_set", "ewa_eval_loss"]]
        both = x.merge(y, on=["step", "eval_set"], suffixes=("", "_o")).dropna().sort_values("step")
        diff = (both["ewa_eval_loss"] - both["ewa_eval_loss_o"]).abs()
        apart = both["step"][diff > 1e-4]
        rows.append(
            {
                "batch_size": p.batch_size,
                "first": diff.iloc[:3].max(),
                "apart": apart.iloc[0] if len(apart) else math.nan,
                "whole": diff.max(),
            }
        )
    t = (
        pd.DataFrame(rows)
        .groupby("batch_size")
        .agg(
            runs=("first", "size"), first=("first", "max"), apart=("apart", "median"), whole=("whole", "max")
        )
    )
    lines = [
        "| B | runs in both | max abs Δ EWA eval loss, first 3 evals | median step with abs Δ > 1e-4 | max abs Δ, whole run |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {b} | {int(r.runs)} | {r.first:.2g} | {_fmt(r.apart)} | {r.whole:.2g} |" for b, r in t.iterrows()
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", type=Path, help="results store (its fits/measures.json from `cbs fit measures`)")
    ap.add_argument(
        "--measures", type=Path, help="the `cbs fit measures` JSON (default STORE/fits/measures.json)"
    )
    ap.add_argument(
        "--compare", type=Path, help="another store with the same cells, trained without micro-batches"
    )
    ap.add_argument("--epsilon", type=float, default=0.01, help="branched: tolerance in nats (as the fit's)")
    ap.add_argument("--ema", type=float, default=0.5, help="branched: EMA weight (as the fit's)")
    args = ap.parse_args()
    path = args.measures or args.store / "fits" / "measures.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `cbs fit measures {args.store} --json {path}` first")
    rows = json.loads(path.read_text())["measures"]
    store = ResultsStore(args.store)
    runs, curves = store.tables()
    steps = steps_to_target_table(runs, curves)
    simple = b_simple_at_target(steps, runs, curves)
    print("## Three measures per cell\n")
    print(measures_markdown(rows))
    print("\n## Branched: smoothed loss at Δ per k\n")
    print(branched_markdown(runs, curves, args.epsilon, args.ema))
    print(
        "\n## B_simple at the target, best run of each batch size (B_noise: `cbs fit cbs`, fits/all.json)\n"
    )
    fits = args.store / "fits" / "all.json"
    groups = json.loads(fits.read_text())["groups"] if fits.is_file() else []
    b_noise = {g["data_tokens"]: (_num(g["b_noise"]), *map(_num, g["b_noise_ci"])) for g in groups}
    print(simple_markdown(simple, b_noise))
    if args.compare:
        print(f"\n## Same runs, micro-batched ({args.store}) vs whole-batch ({args.compare})\n")
        print(compare_markdown(store, ResultsStore(args.compare)))


if __name__ == "__main__":
    main()
