"""Theory panel: exact steps to target vs batch size for several data sizes D, and CBS vs D with its power law,
for mini-batch SGD on power-law linear regression (a store written by `cbs theory`).

    python analysis/fig_theory.py THEORY_RESULTS_DIR [--out DIR]
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:2], "--only", "theory", *sys.argv[2:]]))
