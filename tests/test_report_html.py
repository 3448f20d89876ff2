"""`cbs report --html`: the Markdown page rendered as HTML (tables, code, images), not shown raw."""

from __future__ import annotations

import re

import pandas as pd

from cbs.plots.report import Block, to_html_page, to_markdown_page

BLOCKS = [
    Block("p", "Results store `results/default`: 3 runs; see <docs/fit.md>."),
    Block("h2", "Critical batch size per group"),
    Block("table", frame=pd.DataFrame({"model": ["tiny-16k"], "CBS B* (seqs)": [20.5], "note": ["a | b"]})),
    Block("list", items=["theory: not a `cbs theory` store"]),
    Block("figure", text="steps-vs-batch: S vs B", path="figures/steps-vs-batch.png"),
]


def test_html_renders_the_markdown():
    page = to_html_page("cbs report: default", to_markdown_page("cbs report: default", BLOCKS))
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>cbs report: default</title>" in page and "<h1>cbs report: default</h1>" in page
    assert "<h2>Critical batch size per group</h2>" in page
    assert (
        "<code>results/default</code>" in page
        and "<li>theory: not a <code>cbs theory</code> store</li>" in page
    )
    # the table is a table, its cell with a pipe stays one cell, and nothing of the Markdown syntax is left
    assert "<table>" in page and "<th>CBS B* (seqs)</th>" in page
    assert re.search(r"<td>tiny-16k</td>\s*<td>20\.5</td>\s*<td>a \| b</td>", page)
    assert "`" not in page and "|---|" not in page and "```" not in page
    # images keep their path relative to the page (report.html sits beside report.md)
    assert '<img src="figures/steps-vs-batch.png" alt="steps-vs-batch: S vs B"' in page


def test_html_escapes_raw_html_in_text():
    page = to_html_page("t", to_markdown_page("t", [Block("p", "B <script>alert(1)</script> & more")]))
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; more" in page
