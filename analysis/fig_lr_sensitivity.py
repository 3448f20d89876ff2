"""Learning-rate, β2 and EWA-τ sensitivity: steps to target (or final loss) vs the hyperparameter, one line per
batch size, for every hyperparameter the sweep varied.

    python analysis/fig_lr_sensitivity.py RESULTS_DIR [--out DIR]
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:2], "--only", "lr-sensitivity", *sys.argv[2:]]))
