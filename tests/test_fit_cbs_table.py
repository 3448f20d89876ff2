"""Per-group CBS fits and the CBS laws across groups (from a table, and through `cbs fit cbs`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cbs.cli import main
from cbs.errors import FitError
from cbs.fit import fit_cbs_table

BATCHES = [64, 128, 256, 512, 1024, 2048]
N_M = [50.0, 100.0, 200.0, 400.0]  # millions
D = [1e9, 2e9, 4e9]


def _cbs_truth(n_m: float, d: float) -> float:
    return 0.02 * n_m**0.1 * d**0.5  # a joint law with exponents 0.1 (N) and 0.5 (D)


def _table(n_values=N_M, d_values=D) -> pd.DataFrame:
    rows = []
    for n_m in n_values:
        for d in d_values:
            a = 2000.0
            b = (_cbs_truth(n_m, d) - 1.2 * 256) * a / 0.2  # so that (1+o)·B_opt + o·b/a = truth
            for batch in BATCHES:
                rows.append({"model": f"m{n_m:g}", "n_params": n_m * 1e6, "data_tokens": d, "batch_size": batch,
                             "steps_to_target": a + b / batch})  # fmt: skip
    return pd.DataFrame(rows)


def test_groups_and_laws_recovered():
    analysis = fit_cbs_table(_table(), n_boot=50, seed=0)
    assert len(analysis.groups) == 12
    for g in analysis.groups:
        assert g.fit.cbs == pytest.approx(_cbs_truth(g.n_params / 1e6, g.data_tokens), rel=1e-6)
    joint = analysis.laws["joint"]
    assert joint.exponents["n_params"] == pytest.approx(0.1, abs=1e-6)
    assert joint.exponents["data_tokens"] == pytest.approx(0.5, abs=1e-6)
    assert joint.coefficient == pytest.approx(0.02, rel=1e-5)
    # on a balanced grid the one-variable laws see the same exponents
    assert analysis.laws["n_params"].exponent == pytest.approx(0.1, abs=1e-6)
    assert analysis.laws["data_tokens"].exponent == pytest.approx(0.5, abs=1e-6)
    out = analysis.to_dict()
    assert out["units"]["n_params"].startswith("millions")
    assert {
        "model",
        "n_params",
        "data_tokens",
        "cbs",
        "cbs_ci",
        "s_min",
        "b_noise",
        "a",
        "b",
        "alpha_variant",
    } <= set(out["groups"][0])
    assert analysis.to_frame().shape[0] == 12


def test_several_rows_per_batch_size_count_as_their_minimum():
    tab = _table([50.0], [1e9])
    slower = tab.assign(steps_to_target=tab["steps_to_target"] * 1.5, lr=3e-3)  # a worse lr at every B
    one = fit_cbs_table(tab, n_boot=0).groups[0].fit
    both = fit_cbs_table(pd.concat([slower, tab]), n_boot=0).groups[0].fit
    assert both.n_points == len(BATCHES) and both.cbs == pytest.approx(one.cbs, rel=1e-12)


def test_laws_absent_with_reasons_at_fixed_data_and_chinchilla_scaling():
    fixed = fit_cbs_table(_table(d_values=[3.07e9]), n_boot=20)
    assert set(fixed.laws) == {"n_params"}
    assert fixed.to_dict()["laws"]["n_params"]["at_fixed_data_tokens"] == 3.07e9
    assert "data_tokens" in fixed.laws_absent and "joint" in fixed.laws_absent
    # D ∝ N (Chinchilla-scaled budgets): the joint law is not identifiable
    tab = pd.concat([_table([n], [20 * n * 1e6]) for n in N_M])
    scaled = fit_cbs_table(tab, n_boot=20)
    assert "n_params" in scaled.laws and "D ∝ N" in scaled.laws_absent["joint"]


def test_unreached_batch_sizes_and_failed_groups_are_reported():
    tab = _table([50.0, 100.0, 200.0], [1e9])
    tab.loc[(tab["model"] == "m50") & (tab["batch_size"] == 2048), "steps_to_target"] = np.nan
    tab.loc[tab["model"] == "m100", "steps_to_target"] = np.nan
    analysis = fit_cbs_table(tab, n_boot=20)
    by_model = {g.model: g for g in analysis.groups}
    assert by_model["m50"].fit is not None and by_model["m50"].unreached_batch_sizes == [2048.0]
    assert by_model["m100"].fit is None and "never reached" in by_model["m100"].error
    assert by_model["m50"].fitted is by_model["m50"].fit
    with pytest.raises(FitError, match="m100.*has no S\\(B\\) fit: .*never reached"):
        by_model["m100"].fitted  # noqa: B018
    tab["steps_to_target"] = np.nan
    with pytest.raises(FitError, match="no group could be fitted.*never reached"):
        fit_cbs_table(tab, n_boot=20)


def test_missing_columns_refused():
    with pytest.raises(FitError, match=r"needs column\(s\) \['steps_to_target'\]"):
        fit_cbs_table(_table().drop(columns="steps_to_target"))


def test_cli_fit_cbs_from_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: every column of the table is shown
    src = tmp_path / "steps.csv"
    _table().to_csv(src, index=False)
    out_json, out_csv, out_md = tmp_path / "cbs.json", tmp_path / "cbs.csv", tmp_path / "cbs.md"
    rc = main(["fit", "cbs", "--input", str(src), "--n-boot", "30", "--json", str(out_json), "--csv", str(out_csv),
               "--markdown", str(out_md)])  # fmt: skip
    assert rc == 0
    payload = json.loads(out_json.read_text())
    assert set(payload["laws"]) == {"n_params", "data_tokens", "joint"}
    assert payload["laws"]["joint"]["exponents"]["data_tokens"] == pytest.approx(0.5, abs=1e-6)
    assert len(pd.read_csv(out_csv)) == 12 and "| model |" in out_md.read_text()
    out = capsys.readouterr().out
    assert "(M params)" in out and "left out" not in out


def test_cli_refuses_store_and_input_together(tmp_path, capsys):
    src = tmp_path / "steps.csv"
    _table().to_csv(src, index=False)
    assert main(["fit", "cbs", str(tmp_path), "--input", str(src)]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_fit_cbs_from_store(tmp_path):
    """End to end: a store whose loss curves fall linearly and cross the target at S(B) = a + b/B."""
    from cbs.results import ResultsStore

    store = ResultsStore(tmp_path / "res")
    a, b, target = 400.0, 2.0e5, 3.0
    for batch in BATCHES:
        s_b = a + b / batch
        steps = np.arange(0.0, 2 * s_b, s_b / 7.3)  # evaluations that do not land on the crossing
        if batch == 256:  # the B_opt run ends exactly at the target: its best loss sets it
            steps = np.append(steps[steps < s_b], s_b)
        losses = 6.0 - (6.0 - target) * steps / s_b
        for lr, worse in ((1e-3, 0.0), (3e-3, 0.2)):  # a worse lr that must not win
            row = {"run_id": f"r{batch}_{lr}", "preset": "p", "n_params": 10**7, "batch_size": batch, "lr": lr,
                   "data_tokens": 10**9, "eval_sets": ["val"], "status": "completed"}  # fmt: skip
            curve = [{"step": int(round(s)), "eval_set": "val", "ewa_eval_loss": loss + worse} for s, loss in
                     zip(steps, losses, strict=True)]  # fmt: skip
            store.write_run(row, curve)
    out, steps_csv = tmp_path / "cbs.json", tmp_path / "steps.csv"
    assert (
        main(
            [
                "fit",
                "cbs",
                str(store.root),
                "--n-boot",
                "30",
                "--json",
                str(out),
                "--steps-csv",
                str(steps_csv),
            ]
        )
        == 0
    )
    group = json.loads(out.read_text())["groups"][0]
    # evaluation steps are rounded to integers, so S(B) is recovered to ~0.1%
    assert group["cbs"] == pytest.approx(1.2 * 256 + 0.2 * b / a, rel=0.01)
    assert group["target_loss"] == pytest.approx(target, abs=1e-3)
    table = pd.read_csv(steps_csv)
    assert (table["lr"] == 1e-3).all()


def test_cli_reports_a_target_never_reached(tmp_path, capsys):
    tab = _table([50.0], [1e9]).assign(steps_to_target=np.nan)
    src = tmp_path / "steps.parquet"
    tab.to_parquet(src)
    assert main(["fit", "cbs", "--input", str(src), "--n-boot", "0"]) == 2
    assert "target never reached" in capsys.readouterr().err


def test_groups_and_laws_are_per_optimizer():
    adamw, lion = _table(), _table()
    lion["steps_to_target"] += 1000.0  # a larger S_min: a smaller noise scale, another CBS
    table = pd.concat([adamw, lion.assign(optimizer="lion")])  # adamw rows without an optimizer value
    analysis = fit_cbs_table(table, n_boot=20, seed=0)
    assert len(analysis.groups) == 24
    assert {g.optimizer for g in analysis.groups} == {"adamw", "lion"}
    alone = fit_cbs_table(_table(), n_boot=20, seed=0)
    assert analysis.laws["joint"].exponents == alone.laws["joint"].exponents  # lion's groups stay out
    assert analysis.laws["joint/lion"].exponents != alone.laws["joint"].exponents
    assert [g["group"] for g in analysis.law_warnings("n_params/lion")] == [
        g.label for g in analysis.groups if g.optimizer == "lion" and g.warnings for _ in g.warnings
    ]
    out = analysis.to_dict()
    assert (
        out["laws"]["n_params/lion"]["optimizer"] == "lion"
        and out["laws"]["n_params"]["optimizer"] == "adamw"
    )
    assert set(analysis.to_frame()["optimizer"]) == {"adamw", "lion"}
    assert "optimizer" in analysis.report(width=200) and "optimizer" not in alone.report(width=200)
    lion_n = next(line for line in analysis.law_lines() if line.startswith("lion: B*") and "·N^" in line)
    assert "with N (millions)" in lion_n and f"{analysis.laws['n_params/lion'].exponent:.3f}" in lion_n
    again = type(analysis).from_dict(json.loads(json.dumps(out, default=str)))
    assert [g.optimizer for g in again.groups] == [g.optimizer for g in analysis.groups]
