"""Issue 15's CPU evidence (results/README.md, "Optimizers"): the CBS per optimizer of one cell, and each
optimizer's steps at a common loss relative to AdamW per batch size.

    python analysis/optimizers.py results/optimizers --out results/optimizers/fits

Writes ``cbs.json`` (the `cbs fit cbs` analysis: one group per optimizer, each at its own target R_opt, the
best EWA loss of its own B_opt runs), ``cbs_common_target.json`` (the same at AdamW's target), ``common_target.csv`` (steps to AdamW's target for every optimizer and
batch size, and the ratio to AdamW's steps) and ``summary.md`` (both as tables).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from cbs.atomic import write_text_atomic
from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.fit.tables import to_markdown
from cbs.results import ResultsStore


def common_target(store: str) -> pd.DataFrame:
    """Steps to AdamW's target loss per (optimizer, batch size), and their ratio to AdamW's at that batch."""
    own = steps_to_target_table(*ResultsStore(store).tables())
    target = float(own.loc[own["optimizer"] == "adamw", "target_loss"].iloc[0])
    table = steps_to_target_table(*ResultsStore(store).tables(), target=target)
    steps = table.pivot(index="batch_size", columns="optimizer", values="steps_to_target")
    ratio = steps.div(steps["adamw"], axis=0).add_suffix("/adamw")
    return pd.concat([steps, ratio], axis=1).assign(target_loss=target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    analysis = fit_cbs_table(
        steps_to_target_table(*ResultsStore(args.store).tables()), n_boot=args.n_boot, seed=0
    )
    write_text_atomic(out / "cbs.json", json.dumps(analysis.to_dict(), indent=2, default=str) + "\n")
    frame = analysis.to_frame()
    common = common_target(args.store)
    write_text_atomic(out / "common_target.csv", common.to_csv())
    cols = ["optimizer", "cbs", "cbs_lo", "cbs_hi", "b_noise", "s_min", "unreached_batch_sizes", "warnings"]
    targets = {g.optimizer: g.target_loss for g in analysis.groups}
    frame.insert(1, "target_loss", frame["optimizer"].map(targets))
    at_common = fit_cbs_table(
        steps_to_target_table(
            *ResultsStore(args.store).tables(), target=float(common["target_loss"].iloc[0])
        ),
        n_boot=args.n_boot,
        seed=0,
    )
    write_text_atomic(
        out / "cbs_common_target.json", json.dumps(at_common.to_dict(), indent=2, default=str) + "\n"
    )
    summary = (
        "## CBS per optimizer (own target)\n\n"
        + to_markdown(frame[["target_loss", *cols]], floatfmt=".3g")
        + "\n\n## CBS per optimizer at AdamW's target\n\n"
        + to_markdown(at_common.to_frame()[[*cols, "error"]], floatfmt=".3g")
        + f"\n\n## Steps to AdamW's target ({common['target_loss'].iloc[0]:.4f}) and ratio to AdamW\n\n"
        + to_markdown(common.drop(columns="target_loss").reset_index(), floatfmt=".3g")
        + "\n"
    )
    write_text_atomic(out / "summary.md", summary)
    print(summary)


if __name__ == "__main__":
    main()
