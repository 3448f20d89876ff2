"""`cbs figures` and `cbs report` end to end on a small synthetic store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_plots_synthetic import write_store

from cbs.cli import main

GROUPS = ((100_000, 2_000_000), (400_000, 8_000_000), (1_600_000, 32_000_000))  # the Chinchilla line only
FAST = ["--n-boot", "30", "--n-starts", "16"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "results"
    write_store(root, groups=GROUPS, batches=(64, 128, 256, 512, 1024), lrs=(1e-3, 3e-3))
    return root


def test_figures_makes_what_the_store_supports(store, tmp_path, capsys):
    rc = main(["figures", str(store), "--out", str(tmp_path), "--format", "png", *FAST])
    out = capsys.readouterr().out
    assert rc == 0
    assert (tmp_path / "steps-vs-batch.png").stat().st_size > 5_000
    assert (tmp_path / "cbs-scaling.png").stat().st_size > 5_000
    assert not list(tmp_path.glob("*.pdf"))
    # one model size per data size and one data size per model size: the teaser keeps the Chinchilla panel
    assert "panel left out: CBS vs model size: no data size is shared by ≥ 3 fitted model sizes" in out
    assert "skipped  theory: not a `cbs theory` store" in out
    assert "skipped  scaling-law: L(N, D) needs ≥ 6 (model, data size) groups" in out
    # B_noise = 200 < 5·B_opt and the best lr 1e-3 is the bottom of {1e-3, 3e-3}: the fits' warnings are printed
    assert "warning  tiny-100k, D=2e+06: b_opt_floor — B_noise = 200" in out
    assert "warning  tiny-100k, D=2e+06: lr_edge — lr of the fastest run" in out


def test_figures_only_refuses_an_impossible_figure(store, tmp_path, capsys):
    rc = main(["figures", str(store), "--out", str(tmp_path), "--only", "scaling-law", *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    assert "cbs figures: error: scaling-law: L(N, D) needs ≥ 6" in err and err.count("\n") == 1
    assert main(["figures", str(store), "--only", "nope"]) == 2
    assert "unknown figure(s) ['nope']; choose from loss-curves" in capsys.readouterr().err
    assert main(["figures", str(tmp_path / "missing")]) == 2
    assert "no results store" in capsys.readouterr().err


def test_figures_only_writes_the_named_figure_as_pdf_and_png(store, tmp_path):
    assert main(["figures", str(store), "--out", str(tmp_path), "--only", "steps-vs-batch", *FAST]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steps-vs-batch.pdf", "steps-vs-batch.png"]
    assert (tmp_path / "steps-vs-batch.pdf").read_bytes().startswith(b"%PDF")


def test_table_figure_needs_input(capsys):
    assert main(["figures", "scaling-law"]) == 2
    assert "needs --input FILE" in capsys.readouterr().err


def test_report_page_references_existing_figures(store, tmp_path):
    assert main(["report", str(store), "--out", str(tmp_path), "--html", "--format", "png", *FAST]) == 0
    page = (tmp_path / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert len(images) >= 5 and all((tmp_path / img).is_file() for img in images)
    assert "## Critical batch size per group" in page and "## Scaling laws of the CBS" in page
    # the CBS table row of each group holds its fitted value with its interval
    assert re.search(r"\| tiny-400k \| 0\.4 \| 8M \| [0-9.]+ \| 5 \| [^|]+ \| [^|]+ \| 387\.\d \[", page)
    assert "- theory: not a `cbs theory` store" in page
    html = (tmp_path / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert srcs == images
    assert "<table>" in html and "<code>cbs theory</code>" in html and "`" not in html and "|---|" not in html


@pytest.mark.parametrize(
    ("recipe", "made"),
    [("fig_steps_vs_batch.py", "steps-vs-batch.png"), ("fig_cbs_scaling.py", "cbs-scaling.png")],
)
def test_analysis_recipes_make_their_figure(store, tmp_path, monkeypatch, recipe, made):
    import runpy

    script = Path(__file__).resolve().parents[1] / "analysis" / recipe
    argv = [str(script), str(store), "--out", str(tmp_path), "--format", "png", *FAST]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0 and (tmp_path / made).stat().st_size > 5_000
