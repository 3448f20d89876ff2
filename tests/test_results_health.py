"""A store that heals: damaged run files are named by run id and path, moved aside by a sweep, and never
dropped silently by the readers (`cbs status`, `cbs fit`, `cbs figures`, `cbs report`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from rich.console import Console
from test_plots_synthetic import write_store
from test_results_store import _curve, _run

from cbs.cli import main
from cbs.results import RUNS_SCHEMA, ResultsStore, atomic_write_parquet
from cbs.results.health import DamagedStoreError
from cbs.results.store import to_table
from cbs.sweep.runner import heal

GROUPS = ((100_000, 2_000_000),)
FAST = ["--n-boot", "20", "--n-starts", "16"]
REPO = Path(__file__).resolve().parents[1]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def two_runs(root: Path) -> ResultsStore:
    store = ResultsStore(root)
    store.write_run(_run("a", 2.0), _curve(3))
    store.write_run(_run("b", 1.5), _curve(2))
    return store


def damage(root: Path, case: str) -> Path:
    """Damage run ``a`` of ``two_runs`` in one of the ways a store is found damaged; returns the file at fault."""
    curve, row = root / "curves" / "a.parquet", root / "runs" / "a.parquet"
    if case == "truncated curve":
        truncate(curve)
        return curve
    if case == "truncated row":
        truncate(row)
        return row
    if case == "missing curve":
        curve.unlink()
        return curve
    if case == "row file without row":
        atomic_write_parquet(to_table([], RUNS_SCHEMA, "runs"), row)
        return row
    raise AssertionError(case)


CASES = {
    "truncated curve": "is not a readable Parquet file",
    "truncated row": "is not a readable Parquet file",
    "missing curve": "is missing",
    "row file without row": "holds no run row",
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_run_is_named_and_never_read_silently(tmp_path, case):
    store = two_runs(tmp_path)
    path = damage(tmp_path, case)
    (found,) = store.damaged()
    assert found.run_id == "a" and found.path == path and CASES[case] in found.problem
    with pytest.raises(DamagedStoreError, match=rf"run a: {re.escape(str(path))} .*--skip-damaged"):
        store.runs()
    with pytest.raises(DamagedStoreError):
        store.curves()
    skipping = ResultsStore(tmp_path, skip_damaged=True)
    assert list(skipping.runs().run_id) == ["b"]
    assert set(skipping.curves().run_id) == {"b"}


def test_a_failed_row_without_curve_is_damaged_too(tmp_path):
    store = two_runs(tmp_path)
    store.write_run({**_run("c", 9.0), "status": "failed"}, [])
    assert store.damaged() == []  # an empty curve is a readable curve
    (tmp_path / "curves" / "c.parquet").unlink()
    assert [d.run_id for d in store.damaged()] == ["c"]


def test_a_curve_without_its_row_is_a_run_to_train_not_damage(tmp_path):
    store = two_runs(tmp_path)
    truncate(tmp_path / "curves" / "a.parquet")
    (tmp_path / "runs" / "a.parquet").unlink()
    assert store.damaged() == [] and list(store.runs().run_id) == ["b"]


def test_heal_moves_the_damaged_run_aside_and_keeps_the_rest(tmp_path):
    store = two_runs(tmp_path)
    truncate(tmp_path / "curves" / "a.parquet")
    row_bytes = (tmp_path / "runs" / "a.parquet").read_bytes()
    untouched = {p: p.read_bytes() for p in tmp_path.rglob("b.parquet")}
    console = Console(record=True, width=200)
    assert [d.run_id for d in heal(store, console)] == ["a"]
    out = console.export_text()
    assert f"damaged run a: {tmp_path / 'curves' / 'a.parquet'} is not a readable Parquet file" in out
    assert "training it again" in out
    (row,) = (tmp_path / "damaged" / "runs").iterdir()
    (curve,) = (tmp_path / "damaged" / "curves").iterdir()
    assert re.fullmatch(r"a\.parquet\.damaged-\d{8}T\d{6}Z", row.name) and row.read_bytes() == row_bytes
    assert curve.name.startswith("a.parquet.damaged-")
    assert store.damaged() == [] and list(store.runs().run_id) == ["b"]  # a is no longer done
    assert {p: p.read_bytes() for p in tmp_path.rglob("b.parquet")} == untouched
    assert heal(store, console) == []


def test_health_check_is_cheap_on_the_committed_store():
    """Footers only: the 240 runs of results/cpu-cbs are checked in well under a second (read-only)."""
    store = ResultsStore(REPO / "results" / "cpu-cbs")
    start = time.perf_counter()
    assert store.damaged() == []
    assert time.perf_counter() - start < 1.0


@pytest.fixture
def synthetic(tmp_path) -> Path:
    root = tmp_path / "results"
    write_store(root, groups=GROUPS, batches=(64, 128, 256, 512, 1024), lrs=(1e-3, 3e-3))
    return root


def _first_run(root: Path) -> str:
    return sorted(p.stem for p in (root / "runs").glob("*.parquet"))[0]


def test_status_exits_1_naming_damaged_runs(synthetic, capsys):
    assert main(["status", str(synthetic)]) == 0
    capsys.readouterr()
    run_id = _first_run(synthetic)
    truncate(synthetic / "curves" / f"{run_id}.parquet")
    assert main(["status", str(synthetic)]) == 1
    out = capsys.readouterr().out
    assert f"damaged run {run_id}: {synthetic / 'curves' / run_id}.parquet is not a readable" in out
    assert "1 damaged run(s), not counted done" in out and "runs: 9 " in out  # 10 stored, 9 readable


def test_fit_names_a_damaged_run_or_skips_it_when_asked(synthetic, capsys):
    run_id = _first_run(synthetic)
    (synthetic / "curves" / f"{run_id}.parquet").unlink()
    assert main(["fit", "cbs", str(synthetic), "--n-boot", "20"]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id}: {synthetic / 'curves' / run_id}.parquet is missing" in err
    assert "--skip-damaged" in err and err.count("\n") == 1
    assert main(["fit", "cbs", str(synthetic), "--n-boot", "20", "--skip-damaged"]) == 0
    err = capsys.readouterr().err
    assert f"warning: --skip-damaged leaves out run {run_id}:" in err


def test_figures_and_report_refuse_a_damaged_store(synthetic, tmp_path, capsys):
    truncate(synthetic / "runs" / f"{_first_run(synthetic)}.parquet")
    out = tmp_path / "figs"
    assert main(["figures", str(synthetic), "--out", str(out), "--format", "png", *FAST]) == 2
    assert "damaged run(s)" in capsys.readouterr().err and not out.exists()
    assert main(["report", str(synthetic), "--out", str(tmp_path / "rep"), "--format", "png", *FAST]) == 2
    assert not (tmp_path / "rep").exists()
    args = ["figures", str(synthetic), "--out", str(out), "--format", "png", "--only", "steps-vs-batch"]
    assert main([*args, *FAST, "--skip-damaged"]) == 0
    assert (out / "steps-vs-batch.png").is_file()


def test_figures_only_writes_nothing_when_one_requested_figure_cannot_be_drawn(synthetic, tmp_path):
    out = tmp_path / "figs"
    only = "steps-vs-batch,scaling-law"  # one group: no L(N, D) fit
    assert main(["figures", str(synthetic), "--out", str(out), "--only", only, *FAST]) == 2
    assert not out.exists() or not list(out.iterdir())


def test_report_leaves_no_partial_files_when_it_fails(synthetic, tmp_path, monkeypatch, capsys):
    from cbs.errors import FitError
    from cbs.plots import report

    def fail(*args, **kwargs):
        raise FitError("boom")

    monkeypatch.setattr(report, "build", fail)  # after every figure was drawn and saved
    out = tmp_path / "rep"
    assert main(["report", str(synthetic), "--out", str(out), "--format", "png", *FAST]) == 2
    assert "boom" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [synthetic]  # no staging folder left either


@pytest.mark.parametrize(
    "command",
    [
        ["fit", "hparams"],
        ["fit", "loss-to-loss", "--x-group", "a", "--x-col", "val", "--y-group", "a", "--y-col", "val"],
    ],
)
def test_other_store_fits_refuse_a_damaged_store_or_skip_it_when_asked(synthetic, command, capsys):
    run_id = _first_run(synthetic)
    (synthetic / "curves" / f"{run_id}.parquet").unlink()
    args = [*command[:2], str(synthetic), *command[2:], "--n-boot", "10"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"run {run_id}: {synthetic / 'curves' / run_id}.parquet is missing" in err and "--skip-damaged" in err
    )
    main([*args, "--skip-damaged"])  # the fit itself may refuse this small store; the damage must not stop it
    err = capsys.readouterr().err
    assert f"warning: --skip-damaged leaves out run {run_id}:" in err and "damaged run(s)" not in err
