"""The train-to-train κ/K table of Brandfonbrener et al. 2024 on their released runs, with cbs's defaults:
for every ordered pair of training sets, y = K·(x − E_x)^κ + E_y between the two sets' own validation losses
of models paired on (N, D), E from Kaplan-form L(N, D) fits (one per set, shared), joint-bootstrap intervals.

    python analysis/table_loss_to_loss.py [SWEEP_CSV] [--form kaplan|chinchilla] [--n-boot 1000] [--csv OUT]

Prints a Markdown table; 1.5–5 min on one core (six 4500-start fits, 30 joint bootstraps of ≈2 s).
"""

import argparse
from pathlib import Path

import pandas as pd

from cbs.fit.loss_to_loss_table import Columns, fit_loss_to_loss_table
from cbs.fit.tables import to_markdown

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "loss_to_loss" / "sweep.csv"


def train_to_train(table: pd.DataFrame, form: str, n_boot: int) -> pd.DataFrame:
    """One row per ordered pair (x set, y set) with κ, K, E_x, E_y and their joint 95% intervals."""
    groups = sorted(table["data"].astype(str).unique())
    cache: dict = {}
    rows = []
    for gx in groups:
        for gy in (g for g in groups if g != gx):
            cols = Columns("data", "params", "tokens", gx, "val_loss", gy, "val_loss")
            res = fit_loss_to_loss_table(table, cols, form=form, n_boot=n_boot, law_cache=cache)
            f, j = res.fit, res.joint
            rows.append({"x": gx, "y": gy, "pairs": f.n_points, "kappa": f.kappa, "kappa_lo": j.kappa_ci[0],
                         "kappa_hi": j.kappa_ci[1], "K": f.K, "K_lo": j.K_ci[0], "K_hi": j.K_ci[1],
                         "E_x": f.E_x, "E_y": f.E_y, "r2": f.r2})  # fmt: skip
    return pd.DataFrame(rows)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", nargs="?", type=Path, default=DATA)
    p.add_argument("--form", choices=("kaplan", "chinchilla"), default="kaplan")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--csv", type=Path)
    args = p.parse_args()
    out = train_to_train(pd.read_csv(args.sweep), args.form, args.n_boot)
    if args.csv:
        out.to_csv(args.csv, index=False)
    print(to_markdown(out, floatfmt=".3f"))
