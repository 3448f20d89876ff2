"""`cbs fit hparams`: per-budget bowl optima and the laws of B_opt and lr_opt, from tables and a store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cbs.cli import main
from cbs.errors import FitError
from cbs.fit.hparams import (
    NOT_CONVEX,
    ON_EDGE,
    OUTSIDE_GRID,
    RUNS_WITHOUT_LOSS,
    HparamColumns,
    fit_hparam_laws,
)
from cbs.fit.hparams_store import run_hparam_table
from cbs.results import ResultsStore

COMPUTE = [1e17, 1e18, 1e19, 1e20, 1e21]
# DeepSeek LLM (2024): B_opt = 0.2920·C^0.3271 tokens, lr_opt = 0.3118·C^−0.1250
B_LAW, LR_LAW = (0.2920, 0.3271), (0.3118, -0.1250)
COLS = HparamColumns(compute="compute", batch="batch_tokens", lr="lr", loss="loss")


def _bowl(u: np.ndarray, v: np.ndarray, saddle: bool = False) -> np.ndarray:
    """A smooth bowl in u = log B − log B*, v = log lr − log lr* (positive definite unless ``saddle``)."""
    return 0.02 * u**2 + (-1 if saddle else 1) * 0.05 * v**2 + 0.01 * u * v


def _grid(compute=COMPUTE, noise=1e-3, seed=0, shift_b=1.0, saddle=False) -> pd.DataFrame:
    """7 × 7 runs per budget on a grid around (not on) the true optimum; loss = bowl + N(0, noise²)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in compute:
        b_star, lr_star = B_LAW[0] * c ** B_LAW[1], LR_LAW[0] * c ** LR_LAW[1]
        b_grid = 2.0 ** (np.round(np.log2(b_star * shift_b)) + np.arange(-3, 4))
        lr_grid = np.exp(np.round(np.log(lr_star)) + 0.4 * np.arange(-3, 4))
        bb, ll = np.meshgrid(b_grid, lr_grid)
        loss = 3.0 - 0.1 * np.log10(c) + _bowl(np.log(bb / b_star), np.log(ll / lr_star), saddle)
        loss = loss + rng.normal(0.0, noise, loss.shape)
        rows.append(
            pd.DataFrame({"compute": c, "batch_tokens": bb.ravel(), "lr": ll.ravel(), "loss": loss.ravel()})
        )
    return pd.concat(rows, ignore_index=True)


def test_laws_recovered_from_a_noisy_synthetic_grid():
    analysis = fit_hparam_laws(_grid(), COLS, n_boot=200, seed=1)
    assert all(b.optimum.method == "bowl" and not b.warnings for b in analysis.budgets)
    for law, (coef, k) in ((analysis.batch_law, B_LAW), (analysis.lr_law, LR_LAW)):
        # tolerance: ±0.01 in the exponent, ±25% in the coefficient (C spans 1e17–1e21: an exponent error of
        # 0.005 moves log c by 0.005·ln(1e19) ≈ 0.22); the 95% run-bootstrap intervals contain the truth
        assert law.exponents["compute"] == pytest.approx(k, abs=0.01)
        assert law.coefficient == pytest.approx(coef, rel=0.25)
        lo, hi = law.exponent_cis["compute"]
        assert lo < k < hi and hi - lo < 0.05
    for b in analysis.budgets:
        c = b.budget["compute"]
        assert b.b_opt == pytest.approx(B_LAW[0] * c ** B_LAW[1], rel=0.05)
        assert b.lr_opt == pytest.approx(LR_LAW[0] * c ** LR_LAW[1], rel=0.05)
        assert b.b_opt_ci[0] <= b.b_opt <= b.b_opt_ci[1]
    out = analysis.to_dict()
    assert out["batch_law"]["variables"] == ["compute"] and out["lr_law"]["variables"] == ["compute"]
    assert {"coefficient", "coefficient_ci", "exponent", "exponent_ci"} <= set(out["batch_law"])
    assert out["warnings"] == [] and out["joint_laws"] == {}


def test_power_lines_form_in_d_with_a_joint_law_in_n_and_d():
    """B_opt depends on D only (Power Lines); the joint law finds N's exponent ≈ 0."""
    tab = _grid(compute=[1e17, 1e18, 1e19, 1e20], noise=5e-4)
    n_of = {c: n for c, n in zip(sorted(tab["compute"].unique()), [1e7, 1e8, 1e7, 1e8], strict=True)}
    tab = tab.assign(n_params=tab["compute"].map(n_of), data_tokens=tab["compute"]).drop(columns="compute")
    cols = HparamColumns(n="n_params", d="data_tokens", batch="batch_tokens")
    analysis = fit_hparam_laws(tab, cols, n_boot=50)
    assert analysis.batch_law.variables == ["data_tokens"]
    assert analysis.batch_law.exponents["data_tokens"] == pytest.approx(B_LAW[1], abs=0.01)
    joint = analysis.joint_laws["batch"]
    assert joint.exponents["n_params"] == pytest.approx(0.0, abs=0.01)
    assert joint.exponents["data_tokens"] == pytest.approx(B_LAW[1], abs=0.01)


def test_optimum_off_grid_and_non_convex_bowls_fall_back_and_warn():
    off = _grid(compute=[1e19], shift_b=32.0, seed=2)  # grid centred 32× above B*: the minimum is off it
    flat = _grid(compute=[1e20], saddle=True, seed=3)
    analysis = fit_hparam_laws(pd.concat([_grid(compute=[1e17, 1e18, 1e21]), off, flat]), COLS, n_boot=20)
    by_c = {b.budget["compute"]: b for b in analysis.budgets}
    assert by_c[1e19].warnings == (OUTSIDE_GRID, ON_EDGE) and by_c[1e19].optimum.method == "grid_argmin"
    assert by_c[1e19].b_opt == off["batch_tokens"].min()  # the best run sits on the grid's edge
    assert by_c[1e20].warnings[0] == NOT_CONVEX and by_c[1e20].optimum.method == "grid_argmin"
    assert by_c[1e17].warnings == ()
    codes = {w["code"]: w["budgets"] for w in analysis.to_dict()["warnings"]}
    assert codes[OUTSIDE_GRID] == [{"compute": 1e19}] and codes[NOT_CONVEX] == [{"compute": 1e20}]
    assert "2 of the 5 optima in the laws are grid argmins, not bowl minima" in analysis.report()


def test_non_finite_losses_are_counted_and_flagged():
    tab = _grid()
    tab["loss"] = tab["loss"].astype(object)
    tab.loc[[0, 1, 2], "loss"] = [np.nan, np.inf, "diverged"]  # runs without a usable loss
    first = fit_hparam_laws(tab, COLS, n_boot=0).budgets[0]
    assert first.n_without_loss == 3 and first.n_runs == 49 and RUNS_WITHOUT_LOSS in first.warnings


def test_bad_input_refused_before_fitting():
    with pytest.raises(FitError, match="at least 3"):
        fit_hparam_laws(_grid(compute=[1e17, 1e18]), COLS)
    with pytest.raises(FitError, match="'lr'"):
        fit_hparam_laws(_grid().assign(lr=0.0), COLS)
    with pytest.raises(FitError, match="band"):
        fit_hparam_laws(_grid(), COLS, band=-1)
    one_lr = _grid().assign(lr=1e-3).drop_duplicates(["compute", "batch_tokens"])
    with pytest.raises(FitError, match="only 0 budget"):
        fit_hparam_laws(one_lr, COLS)


def test_cli_json_markdown_and_exit_2_on_bad_input(tmp_path, capsys):
    src = tmp_path / "runs.csv"
    _grid().to_csv(src, index=False)
    out, md = tmp_path / "hp.json", tmp_path / "hp.md"
    args = ["fit", "hparams", "--input", str(src), "--c-col", "compute", "--b-col", "batch_tokens"]
    assert main([*args, "--n-boot", "20", "--json", str(out), "--markdown", str(md)]) == 0
    payload = json.loads(out.read_text())
    assert payload["batch_law"]["exponent"] == pytest.approx(B_LAW[1], abs=0.01)
    assert payload["lr_law"]["exponent"] == pytest.approx(LR_LAW[1], abs=0.01)
    assert "B_opt = " in md.read_text()
    capsys.readouterr()
    assert main(["fit", "hparams", "--input", str(src), "--c-col", "compute"]) == 2  # no batch_size column
    assert "needs column(s) ['batch_size']" in capsys.readouterr().err
    few = tmp_path / "few.csv"
    _grid(compute=[1e17, 1e18]).to_csv(few, index=False)
    assert main(["fit", "hparams", "--input", str(few), "--c-col", "compute", "--b-col", "batch_tokens"]) == 2
    assert "2 budget(s)" in capsys.readouterr().err
    assert main([*args, "--runs-csv", str(tmp_path / "r.csv")]) == 2  # a store-only option with --input
    assert "--runs-csv" in capsys.readouterr().err


def _store_run(
    store, run_id, batch, status, tokens_end, schedule="constant", budget=1000, lr=1e-3, d=1000, at_d=None
):
    """One run of D = ``d`` tokens whose EWA loss falls linearly in tokens (or is ``at_d`` throughout)."""
    row = {"run_id": run_id, "preset": "m", "n_params": 10, "flops_per_token": 60.0, "batch_size": batch,
           "batch_tokens": 10 * batch, "lr": lr, "schedule": schedule, "token_budget": budget,
           "data_tokens": d, "status": status, "tokens": tokens_end, "eval_sets": ["val"]}  # fmt: skip
    tokens = np.array([0.25, 0.5, 0.8, 1.25, 2.0]) * d
    curve = [{"step": int(t), "tokens": int(t), "eval_set": "val", "eval_loss": 9.0,
              "ewa_eval_loss": 10.0 - t / 1000 if at_d is None else at_d} for t in tokens[tokens <= tokens_end]]  # fmt: skip
    store.write_run(row, curve)


def test_store_runs_count_when_their_loss_at_d_is_a_d_token_runs(tmp_path):
    store = ResultsStore(tmp_path / "store")
    _store_run(store, "past", 1, "reached_target", 2000, budget=4000)  # constant lr, trained past D
    _store_run(store, "short", 2, "reached_target", 800, budget=4000)  # stopped before D: censored
    _store_run(store, "cosine", 1, "completed", 2000, schedule="cosine", budget=2000)  # decays to 2D, not D
    _store_run(store, "exact", 30, "completed", 800, budget=1000)  # 300-token steps: ends within a step of D
    t = run_hparam_table(*store.tables()).set_index("run_id")
    d_loss = np.interp(np.log(1000), np.log([800, 1250]), [9.2, 8.75])
    assert t.loc["past", "loss"] == pytest.approx(d_loss)
    assert np.isnan(t.loc["short", "loss"]) and "censored" in t.loc["short", "loss_note"]
    assert np.isnan(t.loc["cosine", "loss"]) and "cosine" in t.loc["cosine", "loss_note"]
    assert t.loc["exact", "loss"] == pytest.approx(9.2)
    assert (t["compute"] == 60.0 * 1000).all() and len(t) == 4


def test_cli_on_a_store_fits_the_laws_in_d_and_writes_the_runs_table(tmp_path):
    store = ResultsStore(tmp_path / "store")
    for d in (1e3, 4e3, 16e3):  # B_opt = D^0.5 / 2, lr_opt = 1e-3 at every D
        for i, b in enumerate((4, 16, 64)):
            for j, lr in enumerate((3e-4, 1e-3, 3e-3)):
                loss = 3.0 + _bowl(np.log(b / (d**0.5 / 2)), np.log(lr / 1e-3))
                _store_run(store, f"{d:g}-{i}{j}", b, "completed", 2 * d, lr=lr, d=d, budget=2 * d, at_d=loss)
    runs_csv, out = tmp_path / "runs.csv", tmp_path / "hp.json"
    args = [
        "fit",
        "hparams",
        str(store.root),
        "--n-boot",
        "0",
        "--runs-csv",
        str(runs_csv),
        "--json",
        str(out),
    ]
    assert main(args) == 0
    law = json.loads(out.read_text())["batch_law"]
    assert law["variables"] == ["data_tokens"] and law["exponent"] == pytest.approx(0.5, abs=1e-6)
    assert len(pd.read_csv(runs_csv)) == 27
