"""L(N, D) on the Chinchilla points Epoch AI extracted (Besiroglu et al. 2024): loss vs D per N with the fitted
surface, iso-FLOP curves and the compute-optimal frontier. D = C/6N; the 5 highest losses are left out.

    python analysis/fig_chinchilla_scaling_law.py [CSV] [--out DIR]
"""

import sys
from pathlib import Path

from cbs.cli import main

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla" / "svg_extracted_data.csv"

if __name__ == "__main__":
    args = sys.argv[1:]
    csv = args.pop(0) if args and not args[0].startswith("-") else str(DEFAULT)
    columns = [
        "--n-col",
        "Model Size",
        "--flops-col",
        "Training FLOP",
        "--loss-col",
        "loss",
        "--drop-highest",
        "5",
    ]
    sys.exit(main(["figures", "scaling-law", "--input", csv, *columns, *args]))
