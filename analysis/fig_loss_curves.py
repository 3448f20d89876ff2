"""Loss curves (raw and EWA eval loss vs steps and tokens, coloured by batch size), one figure per group.

python analysis/fig_loss_curves.py RESULTS_DIR [--out DIR] [--format pdf,png]
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:2], "--only", "loss-curves", *sys.argv[2:]]))
