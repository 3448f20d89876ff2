"""The teaser: CBS vs model size (fixed data), vs data size (fixed model), along the Chinchilla line, with
fitted power laws, 95% bands and dashed forecasts. From a results store, or from `cbs fit cbs --json` output.

    python analysis/fig_cbs_scaling.py RESULTS_DIR [--out DIR]
    python analysis/fig_cbs_scaling.py FIT.json [--out DIR]
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    source, rest = sys.argv[1], sys.argv[2:]
    if source.endswith(".json"):
        sys.exit(main(["figures", "cbs-scaling", "--input", source, *rest]))
    sys.exit(main(["figures", source, "--only", "cbs-scaling", *rest]))
