"""Steps to target vs batch size (log2-log2) with the S(B) = a + b/B fit, linear scaling and the CBS; and the
relative form (steps / steps at the smallest batch), as in Zhang et al. 2025.

    python analysis/fig_steps_vs_batch.py RESULTS_DIR [--out DIR] [--b-opt 256] [--overhead 0.2]
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:2], "--only", "steps-vs-batch", *sys.argv[2:]]))
