"""Loss-to-loss (Brandfonbrener et al. 2024): train-to-train, train-to-test and test-to-test scatter of the
released runs with the fitted shifted power laws, the held-out 3.3B runs marked.

    python analysis/fig_loss_to_loss.py [SWEEP_CSV [EXTRAPOLATION_CSV]] [--x-group fineweb-edu-100b] [--out DIR]
"""

import sys
from pathlib import Path

from cbs.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "loss_to_loss"

if __name__ == "__main__":
    args = sys.argv[1:]
    sweep = args.pop(0) if args and not args[0].startswith("-") else str(DATA / "sweep.csv")
    held = args.pop(0) if args and not args[0].startswith("-") else str(DATA / "extrapolation.csv")
    columns = ["--group-col", "data", "--n-col", "params", "--d-col", "tokens", "--x-col", "val_loss"]
    x_group = [] if "--x-group" in args else ["--x-group", "fineweb-edu-100b"]
    sys.exit(
        main(["figures", "loss-to-loss", "--input", sweep, "--holdout", held, *columns, *x_group, *args])
    )
