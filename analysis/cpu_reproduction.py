"""The CPU reproduction of "CBS scales with data size, not model size" (results/README.md): split one results
store into the paper's three experiments by the cells each spec covers, fit the CBS and its power law per
experiment, and write one JSON per experiment plus a Markdown summary.

    python analysis/cpu_reproduction.py results/cpu-cbs experiments/cpu-chinchilla.yaml \
        experiments/cpu-fixed-data.yaml experiments/cpu-fixed-model.yaml --out results/cpu-cbs/fits

Each experiment's groups are the (model, D) cells of its spec's grid; the fits are those of `cbs fit cbs`
(`steps_to_target_table` + `fit_cbs_table`), so a spec's laws are fitted over its own groups only (the store
pools the shared cells of all three).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.model import ModelSpec, resolve_model_config
from cbs.results import ResultsStore
from cbs.sweep.grid import expand_grid
from cbs.sweep.spec import load_spec

VOCAB = 256  # the byte-level offline corpus


def spec_cells(path: str) -> tuple[str, set[tuple[str, int]]]:
    """The spec's name and its (preset, data tokens D) cells."""
    spec = load_spec(path)
    cells = set()
    for point in expand_grid(spec):
        cfg = point.config
        model: ModelSpec = resolve_model_config(cfg.model, VOCAB)
        budget = cfg.token_budget or round((cfg.chinchilla_multiple or 1.0) * 20 * model.n_params)
        cells.add((cfg.model.preset, int(cfg.data_tokens or budget)))
    return spec.name, cells


def _fmt_ci(value: float | None, ci: list | tuple | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    lo, hi = ci if ci else (None, None)
    show = [f"{x:.{digits}g}" if x is not None and math.isfinite(x) else "∞" for x in (lo, hi)]
    return f"{value:.{digits}g} [{show[0]}, {show[1]}]"


def summary_markdown(fits: dict[str, dict]) -> str:
    """One table of the CBS per group and one of the laws, per experiment."""
    lines = []
    for name, fit in fits.items():
        lines += [
            f"### {name}",
            "",
            "| model | N | D | tokens/param | target | B* (95% CI) | B_noise | S_min | α-variant B* | unreached B | warnings |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g in fit["groups"]:
            tpp = g["data_tokens"] / g["n_params"]
            lines.append(
                f"| {g['model']} | {int(g['n_params']):,} | {g['data_tokens']:,.0f} | {tpp:.1f} | {g['target_loss']:.4f} | "
                f"{_fmt_ci(g.get('cbs'), g.get('cbs_ci'))} | {_fmt_ci(g.get('b_noise'), g.get('b_noise_ci'))} | "
                f"{_fmt_ci(g.get('s_min'), g.get('s_min_ci'))} | "
                f"{_fmt_ci((g.get('alpha_variant') or {}).get('cbs'), (g.get('alpha_variant') or {}).get('cbs_ci'))} | "
                f"{g.get('unreached_batch_sizes') or ''} | {', '.join(w['code'] for w in g.get('warnings', []))} |"
            )
        lines += ["", "| law | coefficient | exponent (95% CI) | R² | points |", "|---|---|---|---|---|"]
        for law_name, law in fit["laws"].items():
            if "exponent" in law:
                exp = _fmt_ci(law["exponent"], law["exponent_ci"])
            else:
                exp = ", ".join(
                    f"{k}: {_fmt_ci(v, law['exponent_cis'][k])}" for k, v in law["exponents"].items()
                )
            lines.append(
                f"| B* vs {law_name} | {law['coefficient']:.4g} | {exp} | {law['r2']:.3f} | {law['n_points']} |"
            )
        for law_name, why in fit["laws_absent"].items():
            lines.append(f"| B* vs {law_name} | — | absent: {why} | | |")
        lines.append("")
    return "\n".join(lines)


def compute_markdown(store: str, cells: dict[str, set[tuple[str, int]]]) -> str:
    """Compute used per experiment and in all (shared cells once), and saved by stopping at the target."""
    runs = pd.read_parquet(Path(store) / "runs")
    runs["D"] = runs["data_tokens"].fillna(runs["token_budget"]).astype(int)
    runs["flops"] = runs["tokens"] * runs["flops_per_token"]
    hit = runs["status"] == "reached_target"
    runs["saved"] = (runs["token_budget"] - runs["tokens"]).where(hit, 0)
    runs["saved_flops"] = runs["saved"] * runs["flops_per_token"]
    lines = [
        "| experiment | runs | tokens trained | FLOPs | CPU time (1 thread) | saved by stop-at-target |",
        "|---|---|---|---|---|---|",
    ]
    subsets = {
        name: [(p, d) in c for p, d in zip(runs["preset"], runs["D"], strict=True)]
        for name, c in cells.items()
    }
    subsets["all (shared cells once)"] = [True] * len(runs)
    for name, keep in subsets.items():
        r = runs[keep]
        share = r["saved"].sum() / r.loc[r["target_loss"].notna(), "token_budget"].sum()
        lines.append(
            f"| {name} | {len(r)} | {r['tokens'].sum():,.0f} | {r['flops'].sum():.3g} | "
            f"{r['wall_time_s'].sum() / 60:.1f} min | {r['saved'].sum():,.0f} tokens "
            f"({share:.0%} of the stop-at-target runs' caps; {r['saved_flops'].sum():.3g} FLOPs) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", help="results store holding the runs of every spec")
    ap.add_argument("specs", nargs="+", help="sweep specs; each one's cells form one experiment")
    ap.add_argument(
        "--b-opt", type=float, help="reference batch size in sequences (default: the one the runs record)"
    )
    ap.add_argument("--overhead", type=float, default=0.2, help="allowed step overhead o (paper: 0.2)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--out", required=True, help="folder for <experiment>.json, steps.csv and summary.md")
    args = ap.parse_args(argv)

    steps = steps_to_target_table(*ResultsStore(args.store).tables(), b_opt=args.b_opt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps.to_csv(out / "steps.csv.tmp", index=False)
    (out / "steps.csv.tmp").replace(out / "steps.csv")
    fits, all_cells = {}, {}
    for path in args.specs:
        name, cells = spec_cells(path)
        all_cells[name] = cells
        keep = [(m, int(d)) in cells for m, d in zip(steps["model"], steps["data_tokens"], strict=True)]
        analysis = fit_cbs_table(steps[keep], b_opt=args.b_opt, overhead=args.overhead, n_boot=args.n_boot)
        fits[name] = analysis.to_dict()
        tmp = out / f"{name}.json.tmp"
        tmp.write_text(json.dumps(fits[name], indent=2, default=float))
        tmp.replace(out / f"{name}.json")
        print(f"{name}: {len(analysis.groups)} groups -> {out / (name + '.json')}")
    tmp = out / "summary.md.tmp"
    tmp.write_text(summary_markdown(fits) + "\n### compute\n\n" + compute_markdown(args.store, all_cells))
    tmp.replace(out / "summary.md")
    print(pd.read_csv(out / "steps.csv").groupby(["model", "data_tokens"]).size().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
