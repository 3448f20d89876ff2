"""Theory panel: exact steps to target vs batch size for several data sizes D, and CBS vs D with its power law,
for mini-batch SGD on power-law linear regression (a store written by `cbs theory`).

    python analysis/fig_theory.py THEORY_RESULTS_DIR [--out DIR]
    python analysis/fig_theory.py THEORY.json [--out DIR]       (the output of `cbs theory --json`)
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    source, rest = sys.argv[1], sys.argv[2:]
    if source.endswith(".json"):
        sys.exit(main(["figures", "theory", "--input", source, *rest]))
    sys.exit(main(["figures", source, "--only", "theory", *rest]))
