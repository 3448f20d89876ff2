"""At 80 columns (and narrower) the live progress line keeps its ETA and the result tables keep every model
name and key number whole, leaving out less important columns instead (and saying so)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from test_plots_synthetic import write_store
from test_sweep_spec import spec_dict

from cbs.cli import main
from cbs.console import Column, fitted_line, fitted_table
from cbs.sweep import parse_spec, plan_sweep, render_plan
from cbs.sweep.progress import SweepProgress

GROUPS = ((100_000, 2_000_000), (400_000, 8_000_000))
PREFIX = "custom-wide-model"  # names like custom-wide-model-100k: 22 characters


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("width") / "results"
    write_store(
        root, groups=GROUPS, batches=(64, 128, 256, 512, 1024), lrs=(1e-3, 3e-3), preset_prefix=PREFIX
    )
    return root


def names() -> list[str]:
    return [f"{PREFIX}-{n // 1000}k" for n, _ in GROUPS]


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_status_table_keeps_model_names(store, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", str(store)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("┏") : out.rindex("┘") + 1]
    assert widest(table) <= 80
    for name in names():
        assert re.search(rf"│ {name} +│", table), name
    assert "…" not in table


def test_fit_cbs_table_keeps_names_and_intervals(store, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["fit", "cbs", str(store), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("┏") : out.rindex("┘") + 1]
    assert widest(table) <= 80 and "…" not in table
    for name in names():
        # the name and B* with its whole interval on the group's row
        assert re.search(rf"│ {name} +│ .*│ +[0-9.]+ \[[0-9.]+, [0-9.]+\] │", table), name
    assert "left out at 80 columns: " in out and "α (free)" in out
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["fit", "cbs", str(store), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "left out" not in out and "(M params)" in out and "(free)" in out


@pytest.mark.parametrize("width", [80, 50])
def test_dry_run_plan_keeps_presets_and_batches(tmp_path, width):
    plan = plan_sweep(parse_spec(spec_dict(tmp_path / "no-data")), require_data=False)
    buf = io.StringIO()
    render_plan(plan, Console(file=buf, width=width, soft_wrap=True))
    out = buf.getvalue()
    table = out[out.index("┏") : out.rindex("┘") + 1]
    assert widest(table) <= width and "…" not in table
    rows = [line for line in table.splitlines() if line.startswith("│ budget")]
    assert len(rows) == len(plan.trials)
    for row, t in zip(rows, plan.trials, strict=True):
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[1] == t.config.model.preset and str(t.config.batch_size) in cells
        assert f"{t.config.optim.lr:g}" in cells


def test_fitted_table_drops_the_least_important_column_first():
    columns = (Column("name"), Column("b", drop=1), Column("c", drop=2), Column("d", drop=3))
    rows = [("a-rather-long-model-name", "1" * 10, "2" * 10, "3" * 10)]
    console = Console(file=io.StringIO(), width=55)
    table, dropped = fitted_table(console, columns, rows)
    assert [c.header for c in table.columns] == ["name", "b", "c"] and dropped == ["d"]
    console = Console(file=io.StringIO(), width=20)
    table, dropped = fitted_table(console, columns, rows)
    assert [c.header for c in table.columns] == ["name"] and dropped == ["b", "c", "d"]


def test_fitted_line_keeps_the_first_fields():
    fields = ("trials 3/21 done", "ETA 1m00s", "best 4.1234")
    assert fitted_line(fields, 80) == "trials 3/21 done | ETA 1m00s | best 4.1234"
    assert fitted_line(fields, 30) == "trials 3/21 done | ETA 1m00s"
    assert fitted_line(fields, 5) == "trials 3/21 done"


def progress(console: Console) -> SweepProgress:
    labels = {f"run{i}": f"{PREFIX}-100k B={2**i} lr=0.003 (run{i})" for i in range(21)}
    p = SweepProgress(labels, {r: 1000 for r in labels}, already_done=179, console=console)
    p.start -= 60.0  # one minute in, a third of the tokens trained: ETA 2 minutes
    p.tokens = {f"run{i}": 1000 for i in range(7)}
    p.best = 4.123456
    return p


def test_live_progress_line_keeps_the_eta_at_80_columns():
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, soft_wrap=True)
    p = progress(console)
    trials = [SimpleNamespace(status=s) for s in ["TERMINATED"] * 7 + ["RUNNING"] * 2 + ["PENDING"] * 12]
    p.on_step_end(0, trials)  # starts the live line on a terminal
    assert p.live is not None
    time.sleep(0.1)
    p.on_experiment_end(trials)
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    last = [line for line in re.split(r"[\r\n]", out) if line.strip()][-1]
    assert last.startswith("trials 186/200 done, 2 running, 12 pending | ETA 2m0")
    assert len(last) <= 80


def test_progress_in_a_log_keeps_every_field():
    console = Console(file=io.StringIO(), width=80, soft_wrap=True)  # not a terminal: nothing is dropped
    line = progress(console).line()
    assert "ETA 2m0" in line and "best EWA eval loss 4.1235" in line and "elapsed 1m0" in line
