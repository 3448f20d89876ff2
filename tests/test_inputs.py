"""Bad inputs end in one clear line and exit 2 (or a typed error), before any fit or Ray: fit tables with text,
NaN/inf or non-positive numbers, missing columns or no rows; empty or grid-less specs, bad targets and options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbs.cli import main
from cbs.errors import FitError
from cbs.fit import fit_cbs_table
from cbs.fit.loss_to_loss_table import Columns, pair_losses
from cbs.fit.tables import Numeric, numeric_columns

ROW = "(1 = first row under the header)"


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of `cbs argv` (argparse's usage errors included)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    return rc, capsys.readouterr().err


def chinchilla_table() -> pd.DataFrame:
    """Six L(N, D) points of a Chinchilla-form law, as a table of objects (any cell may become text)."""
    n = np.array([1e7, 3e7, 1e8, 1e7, 3e7, 1e8])
    d = np.array([1e9, 1e9, 1e9, 1e10, 1e10, 1e10])
    loss = 1.8 + 400 / n**0.34 + 2000 / d**0.37
    return pd.DataFrame({"n_params": n, "data_tokens": d, "flops": 6 * n * d, "loss": loss}).astype(object)


def chinchilla_csv(path: Path, **cells: tuple[int, object]) -> Path:
    """`chinchilla_table` as CSV; ``cells`` puts a raw value at (data row, column), written as text."""
    table = chinchilla_table()
    for column, (row, value) in cells.items():
        table.loc[row - 1, column] = value
    table.to_csv(path, index=False)
    return path


def fit_law(src: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", "scaling-law", "--input", src, "--n-starts", "2", "--n-boot", "0", "--json", out, *extra]


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("loss", "n/a", "'n/a' is not a number"),
        ("loss", "", "an empty cell is not a number"),
        ("n_params", "abc", "'abc' is not a number"),
        ("loss", "-0.5", "-0.5 must be a number > 0"),
        ("data_tokens", "0", "0 must be a number > 0"),
        ("loss", "inf", "inf is not a finite number"),
        ("loss", "nan", "nan is not a number"),
    ],
)
def test_scaling_law_table_names_column_row_and_value(tmp_path, capsys, column, value, words):
    src, out = chinchilla_csv(tmp_path / "t.csv", **{column: (4, value)}), tmp_path / "fit.json"
    rc, err = cli(fit_law(src, out), capsys)
    assert rc == 2
    assert f"column {column!r}, data row 4 of the scaling-law table {ROW}: {words}" in err
    assert "fix the table or drop the row" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_scaling_law_flops_column_is_checked_positive(tmp_path, capsys):
    src, out = chinchilla_csv(tmp_path / "t.csv", flops=(2, "-1e18")), tmp_path / "fit.json"
    rc, err = cli(fit_law(src, out, "--flops-col", "flops"), capsys)
    assert rc == 2 and "column 'flops', data row 2" in err and "must be a number > 0" in err


def test_every_bad_row_is_counted(tmp_path, capsys):
    table = chinchilla_csv(tmp_path / "t.csv")
    frame = pd.read_csv(table).astype(object)
    frame.loc[[1, 3, 4], "loss"] = "?"
    frame.to_csv(table, index=False)
    rc, err = cli(fit_law(table, tmp_path / "o.json"), capsys)
    assert rc == 2 and "data row 2 " in err and "(2 more rows like it)" in err


def test_missing_column_lists_the_columns_present(tmp_path, capsys):
    src = chinchilla_csv(tmp_path / "t.csv")
    rc, err = cli(fit_law(src, tmp_path / "o.json", "--loss-col", "val_loss"), capsys)
    assert rc == 2
    assert (
        "needs column(s) ['val_loss']" in err
        and "the table has ['n_params', 'data_tokens', 'flops', 'loss']" in err
    )


def test_empty_file_and_header_only_table(tmp_path, capsys):
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("n_params,data_tokens,loss\n")
    rc, err = cli(fit_law(empty, tmp_path / "o.json"), capsys)
    assert rc == 2 and "empty.csv is empty" in err
    rc, err = cli(fit_law(header, tmp_path / "o.json"), capsys)
    assert rc == 2 and "the scaling-law table has no data rows" in err


def test_parquet_text_cells_are_named_too(tmp_path, capsys):
    src = tmp_path / "t.parquet"
    pd.read_csv(chinchilla_csv(tmp_path / "t.csv", loss=(3, "two"))).to_parquet(src)
    rc, err = cli(fit_law(src, tmp_path / "o.json"), capsys)
    assert rc == 2 and "column 'loss', data row 3" in err and "'two' is not a number" in err


@pytest.mark.parametrize(
    ("option", "value"), [("--drop-highest", "-1"), ("--n-starts", "0"), ("--n-boot", "x")]
)
def test_count_options_refuse_bad_numbers(tmp_path, capsys, option, value):
    src, out = chinchilla_csv(tmp_path / "t.csv"), tmp_path / "o.json"
    rc, err = cli([*fit_law(src, out), option, value], capsys)
    assert rc == 2 and f"argument {option}:" in err and not out.exists()


def steps_table(**cells: tuple[int, object]) -> pd.DataFrame:
    """A steps-to-target table of one model: S(B) = 100 + 1600/B over B = 4..128."""
    b = np.array([4.0, 8, 16, 32, 64, 128])
    table = pd.DataFrame(
        {
            "model": "m",
            "n_params": 1e6,
            "data_tokens": 1e8,
            "batch_size": b,
            "steps_to_target": 100 + 1600 / b,
        }
    ).astype(object)
    for column, (row, value) in cells.items():
        table.loc[row - 1, column] = value
    return table


def test_cbs_input_names_a_text_step_count(tmp_path, capsys):
    src, out = tmp_path / "steps.csv", tmp_path / "cbs.json"
    steps_table(steps_to_target=(5, "fast")).to_csv(src, index=False)
    rc, err = cli(["fit", "cbs", "--input", src, "--n-boot", "0", "--json", out], capsys)
    assert rc == 2 and "column 'steps_to_target', data row 5 of the steps-to-target table" in err
    assert "'fast' is not a number" in err and not out.exists()


def test_cbs_input_batch_size_must_be_positive(tmp_path, capsys):
    src = tmp_path / "steps.csv"
    steps_table(batch_size=(1, -4)).to_csv(src, index=False)
    rc, err = cli(["fit", "cbs", "--input", src, "--n-boot", "0"], capsys)
    assert rc == 2 and "column 'batch_size', data row 1" in err and "-4 must be a number > 0" in err


def test_cbs_unreached_steps_may_be_empty_na_or_inf():
    table = steps_table(steps_to_target=(6, "n/a"))
    table.loc[4, "steps_to_target"] = np.inf
    analysis = fit_cbs_table(table, b_opt=16, n_boot=0)
    assert analysis.groups[0].unreached_batch_sizes == [64.0, 128.0]
    with pytest.raises(FitError, match=r"column 'n_params', data row 2 .*an empty cell is not a number"):
        fit_cbs_table(steps_table(n_params=(2, None)), b_opt=16, n_boot=0)


def l2l_table() -> pd.DataFrame:
    n = np.array([1e7, 3e7, 1e8, 3e8])
    a = pd.DataFrame({"dataset": "a", "n_params": n, "data_tokens": 20 * n, "loss": 2 + 50 / n**0.3})
    b = a.assign(dataset="b", loss=np.nan, test=1 + 0.9 * (a["loss"] - 1.5) ** 1.1)
    return pd.concat([a, b], ignore_index=True).astype(object)


def test_loss_to_loss_checks_only_the_rows_of_each_side():
    cols = Columns("dataset", "n_params", "data_tokens", "a", "loss", "b", "test")
    assert len(pair_losses(l2l_table(), cols)) == 4  # b's empty 'loss' and a's empty 'test' are not used
    bad = l2l_table()
    bad.loc[6, "test"] = "—"
    with pytest.raises(FitError, match=r"column 'test', data row 7 of the loss-to-loss table .*'—' is not"):
        pair_losses(bad, cols)
    same = l2l_table()  # one column for both groups (test-to-test): each side's cells are named as written
    same.loc[4:, "loss"] = [1.6, "n/a", 1.5, 1.4]
    with pytest.raises(FitError, match=r"column 'loss', data row 6 .*'n/a' is not a number"):
        pair_losses(same, Columns("dataset", "n_params", "data_tokens", "a", "loss", "b", "loss"))


def test_loss_to_loss_cli_names_the_holdout_table_before_fitting(tmp_path, capsys):
    src, held, out = tmp_path / "runs.csv", tmp_path / "held.csv", tmp_path / "l2l.json"
    l2l_table().to_csv(src, index=False)
    bad = l2l_table()
    bad.loc[1, "n_params"] = "big"
    bad.to_csv(held, index=False)
    args = ["fit", "loss-to-loss", "--input", src, "--x-group", "a", "--x-col", "loss", "--y-group", "b"]
    rc, err = cli([*args, "--y-col", "test", "--holdout", held, "--n-starts", "2", "--json", out], capsys)
    assert rc == 2 and "column 'n_params', data row 2 of the holdout table" in err and not out.exists()


def test_hparams_input_names_the_bad_lr(tmp_path, capsys):
    src = tmp_path / "runs.csv"
    pd.DataFrame(
        {
            "n_params": [1e6] * 3,
            "data_tokens": [1e8] * 3,
            "batch_size": [8, 16, 32],
            "lr": [1e-3, "?", 1e-3],
            "loss": 3.0,
        }
    ).to_csv(src, index=False)
    rc, err = cli(["fit", "hparams", "--input", src, "--n-boot", "0"], capsys)
    assert (
        rc == 2
        and "column 'lr', data row 2 of the hyperparameter table" in err
        and "'?' is not a number" in err
    )


def test_numeric_columns_keeps_the_frame_and_converts_text_numbers():
    table = pd.DataFrame({"x": ["1", " 2.5 ", "3e2"], "name": ["a", "b", "c"]})
    out = numeric_columns(table, [Numeric("x")], "a table")
    assert out["x"].tolist() == [1.0, 2.5, 300.0] and out["name"].tolist() == ["a", "b", "c"]
    assert table["x"].tolist() == ["1", " 2.5 ", "3e2"]  # the caller's frame is untouched


# ---- sweep specs and options: one line, exit 2, before Ray ------------------------------------------------


def valid_spec() -> dict:
    return {
        "base": {"model": {"preset": "tiny-16k"}, "data": {"path": "nowhere"}, "device": "cpu"},
        "grid": {"batch_size": [16, 32], "optim.lr": [1e-3, 3e-3]},
        "target": {"reference_batch_size": 16, "budget_multiple": 2},
    }


def sweep(tmp_path: Path, capsys, spec: dict | str, *options: str) -> tuple[int, str]:
    path = tmp_path / "spec.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return cli(["sweep", path, "--dry-run", *options], capsys)


def test_valid_spec_dry_runs(tmp_path, capsys):
    assert sweep(tmp_path, capsys, valid_spec())[0] == 0


def edit(**changes: object) -> dict:
    spec = valid_spec()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = spec
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("", "spec.yaml is empty: a sweep spec needs a base config and a grid"),
        ("# only a comment\n", "spec.yaml is empty"),
        (edit(grid=None, target=None), "no grid (or zip) values, so there is nothing to sweep"),
        (edit(grid={}), "no grid (or zip) values, so there is nothing to sweep"),
        (edit(zip=[{}]), "zip[0] is empty"),
        (edit(target__budget_multiple=0), "target.budget_multiple must be >= 1 (the tokens a run may train"),
        (edit(target__budget_multiple=-2.5), "got -2.5"),
        (edit(target__reference_batch_size=0), "target.reference_batch_size must be a batch size >= 1"),
        (edit(grid__batch_size=[16, -8]), "batch_size must be >= 1, got -8"),
        (edit(grid__batch_size=[16, 0]), "batch_size must be >= 1, got 0"),
        (edit(**{"grid__optim.lr": [1e-3, -1e-3]}), "grid.optim.lr: lr must be > 0"),
        (edit(**{"grid__optim.lr": [0]}), "grid.optim.lr: lr must be > 0"),
        (edit(zip={"seed": [0, 1], "optim.beta2": [0.9]}), "zip[0]: zipped lists must have equal lengths"),
        (edit(grdi={"seed": [0]}), "unknown key 'grdi'; did you mean 'grid'?"),
        (edit(target__budget_multipel=2), "did you mean 'budget_multiple'?"),
    ],
)
def test_bad_spec_is_one_clear_line(tmp_path, capsys, monkeypatch, spec, words):
    monkeypatch.chdir(tmp_path)
    rc, err = sweep(tmp_path, capsys, spec)
    assert rc == 2 and words in err
    assert len(err.strip().splitlines()) == 1 and "TargetRule(" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--num-cpus", "0", "must be a whole number >= 1, got 0"),
        ("--max-concurrent", "0", "must be a whole number >= 1, got 0"),
        ("--max-concurrent", "-3", "must be a whole number >= 1, got -3"),
        ("--num-cpus", "1.5", "'1.5' is not a whole number"),
    ],
)
def test_sweep_count_options_refused_before_ray(tmp_path, capsys, monkeypatch, option, value, words):
    import cbs.sweep

    monkeypatch.setattr(cbs.sweep, "run_sweep", lambda *a, **k: pytest.fail("Ray was started"))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(valid_spec()))
    rc, err = cli(["sweep", path, option, value], capsys)
    assert rc == 2 and f"argument {option}: {words}" in err
