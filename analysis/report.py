"""The reproduction report: one Markdown (and HTML) page with the CBS fits, laws and every figure.

python analysis/report.py RESULTS_DIR [--out DIR]
"""

import sys

from cbs.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:2], "--html", *sys.argv[2:]]))
