"""The result interface (`cbs.fit.result`): every fit result round-trips through its JSON, reports its numbers,
and keeps what the solver said — `converged` False when a fit is stopped early."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbs.cli import main
from cbs.fit import fit_cbs, fit_cbs_table, fit_joint_power_law, fit_loss_to_loss, fit_power_law
from cbs.fit.cbs_laws import CbsAnalysis, CbsGroup
from cbs.fit.critical_batch import AlphaVariant, CbsFit
from cbs.fit.diagnostics import FitWarning
from cbs.fit.hparams import HparamAnalysis, HparamColumns, fit_hparam_laws
from cbs.fit.loss_to_loss import LossToLossFit
from cbs.fit.loss_to_loss_table import Columns, LossToLossAnalysis, fit_loss_to_loss_table
from cbs.fit.power_law import JointPowerLawFit, PowerLawFit
from cbs.fit.result import NOT_CONVERGED, FitResult, SolverDiagnostics, as_json, fmt, warnings_from
from cbs.fit.scaling_law import ScalingLawFit, fit_scaling_law
from cbs.fit.tables import write_json
from cbs.theory.result import StudyResult

BATCHES = np.array([32.0, 64, 128, 256, 512, 1024, 2048])


def _steps(a: float = 1000.0, b: float = 64000.0, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    return (a + b / BATCHES) * np.exp(np.random.default_rng(seed).normal(0, noise, BATCHES.size))


def _through_file(result: FitResult, tmp_path: Path) -> dict:
    """The JSON a CLI would write for ``result``, read back."""
    path = tmp_path / "result.json"
    write_json(path, result.to_dict())
    return json.loads(path.read_text())


def _round_trips(result: FitResult, tmp_path: Path) -> FitResult:
    """Assert from_dict(to_dict(r)) == r through a file, and that the reloaded result writes the same JSON."""
    data = _through_file(result, tmp_path)
    back = type(result).from_dict(data)
    assert back == result
    assert as_json(back.to_dict()) == data
    assert isinstance(back, FitResult)
    return back


def _strip(data: object, keys: set[str]) -> object:
    """``data`` without ``keys`` at any depth: a JSON file written before those keys existed."""
    if isinstance(data, dict):
        return {k: _strip(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list):
        return [_strip(v, keys) for v in data]
    return data


NEW_KEYS = {"diagnostics", "params", "log_b_opt", "log_lr_opt", "bowl_warning", "kappa_diagnostics", "pairs"}
NEW_KEYS |= {"coefficient_data", "log_covariance", "dataset", "optimizer"}
NEW_KEYS |= {"n_seeds"}  # seeds as replicates (committed fits predate it)
NEW_KEYS |= {"steps_to_target_cost", "b_simple", "b_simple_note", "branched"}  # the three measures (#13)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
ci = st.tuples(finite, finite)
diagnostics = st.builds(
    SolverDiagnostics,
    solver=st.text(max_size=20),
    converged=st.sampled_from([True, False, None]),
    evaluations=st.integers(0, 10**6),
    message=st.text(max_size=40),
    resamples=st.integers(0, 5000),
    resamples_ok=st.integers(0, 5000),
)


@given(d=diagnostics)
def test_solver_diagnostics_round_trip(d: SolverDiagnostics) -> None:
    assert SolverDiagnostics.from_dict(json.loads(json.dumps(d.to_dict()))) == d


@given(code=st.text(min_size=1, max_size=20), message=st.text(max_size=60),
       values=st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in ("code", "message")),
                              finite | st.integers() | st.text(max_size=10), max_size=4))  # fmt: skip
def test_warnings_round_trip(code: str, message: str, values: dict) -> None:
    warning = FitWarning(code, message, values)
    assert warnings_from(json.loads(json.dumps([warning.to_dict()]))) == [warning]


@given(c=positive, k=finite, cc=ci, kc=ci, n=st.integers(3, 1000), r2=finite, d=diagnostics)
def test_power_law_round_trips(c, k, cc, kc, n, r2, d) -> None:
    fit = PowerLawFit(c, k, cc, kc, n, r2, np.empty((0, 2)), d)
    assert PowerLawFit.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit
    joint = JointPowerLawFit(c, {"N": k, "D": r2}, cc, {"N": kc, "D": cc}, n, r2, np.empty((0, 3)), d)
    assert JointPowerLawFit.from_dict(json.loads(json.dumps(joint.to_dict()))) == joint


@settings(max_examples=50)
@given(a=positive, b=positive, cbs=positive, cis=st.lists(ci, min_size=5, max_size=5), n=st.integers(3, 50),
       alpha=st.none() | positive, d=diagnostics)  # fmt: skip
def test_cbs_fit_round_trips(a, b, cbs, cis, n, alpha, d) -> None:
    variant = None if alpha is None else AlphaVariant(a, b, alpha, cbs, cis[0], cis[1], d)
    fit = CbsFit(a, b, 256.0, 0.2, cbs, *cis[:4], n, 0.01, variant, "fitted", BATCHES, _steps(), d)
    back = CbsFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert back == fit and np.array_equal(back.batch_sizes, fit.batch_sizes)


@given(kappa=positive, k=positive, e_x=positive, e_y=positive, cis=st.lists(ci, min_size=3, max_size=3),
       fitted=st.booleans(), d=diagnostics)  # fmt: skip
def test_loss_to_loss_fit_round_trips(kappa, k, e_x, e_y, cis, fitted, d) -> None:
    e_y_ci = cis[2] if fitted else None
    fit = LossToLossFit(
        kappa, k, e_x, e_y, fitted, 0.9, 0.95, 12, cis[0], cis[1], e_y_ci, np.empty((0, 3)), d
    )
    assert LossToLossFit.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


@given(params=st.lists(finite.filter(lambda v: abs(v) < 50), min_size=5, max_size=5), d=diagnostics)
def test_scaling_law_round_trips(params, d) -> None:
    fit = ScalingLawFit("chinchilla", np.array(params), 1.5, 20, 100, np.empty((0, 5)), d)
    back = ScalingLawFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert back == fit and np.array_equal(back.params, fit.params)  # exact: the raw parameters are kept


# --- results of real fits, through a JSON file ---------------------------------------------------------------


def _cbs_table() -> pd.DataFrame:
    rows = []
    for i, n_m in enumerate([50.0, 100.0, 200.0]):
        for j, d in enumerate([1e9, 2e9, 4e9]):
            steps = _steps(b=(0.01 * n_m**0.1 * d**0.5 - 1.2 * 256) * 2000 / 0.2 / 2, seed=3 * i + j)
            rows += [{"model": f"m{n_m:g}", "n_params": n_m * 1e6, "data_tokens": d, "batch_size": bb,
                      "steps_to_target": s} for bb, s in zip(BATCHES, steps, strict=True)]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cbs_analysis() -> CbsAnalysis:
    return fit_cbs_table(_cbs_table(), n_boot=30, seed=0)


def test_cbs_analysis_round_trips_and_reports_its_numbers(cbs_analysis: CbsAnalysis, tmp_path: Path) -> None:
    back = _round_trips(cbs_analysis, tmp_path)
    assert back.groups[0].fit is not None and back.groups[0].fit.diagnostics.converged is True
    text = cbs_analysis.report(width=200)
    for g in cbs_analysis.groups:
        assert fmt(g.fit.cbs, g.fit.cbs_ci) in text
    for law in cbs_analysis.laws.values():
        assert f"{law.coefficient:.4g}" in text
    assert text == back.report(width=200)  # the reloaded result prints the same report
    assert cbs_analysis.predict(n_params=100.0, data_tokens=2e9) == pytest.approx(
        cbs_analysis.laws["joint"].predict(n_params=100.0, data_tokens=2e9)
    )


def test_cbs_solver_diagnostics_are_kept(cbs_analysis: CbsAnalysis) -> None:
    fit = cbs_analysis.groups[0].fit
    d = fit.diagnostics
    assert d.converged is True and d.evaluations >= 1 and d.message
    assert "least_squares" in d.solver and d.resamples == 30 and 0 < d.resamples_ok <= 30
    assert fit.to_dict()["diagnostics"]["evaluations"] == d.evaluations
    assert cbs_analysis.diagnostics.converged is True
    assert cbs_analysis.diagnostics.evaluations >= sum(
        g.fit.diagnostics.evaluations for g in cbs_analysis.groups
    )


def test_a_fit_stopped_early_says_so() -> None:
    steps = _steps(a=300.0, b=900000.0, noise=0.05)  # far from the linear start: needs several evaluations
    full = fit_cbs(BATCHES, steps, n_boot=0)
    assert full.diagnostics.converged is True and full.diagnostics.evaluations > 1
    stopped = fit_cbs(BATCHES, steps, n_boot=0, max_evaluations=1)
    assert stopped.diagnostics.converged is False and stopped.diagnostics.evaluations == 1
    assert [w.code for w in stopped.warnings] == [NOT_CONVERGED]
    assert "NOT converged" in stopped.report() and NOT_CONVERGED in stopped.report()
    assert stopped.to_dict()["diagnostics"]["converged"] is False


def test_old_json_without_the_new_keys_loads(cbs_analysis: CbsAnalysis, tmp_path: Path) -> None:
    old = _strip(_through_file(cbs_analysis, tmp_path), NEW_KEYS)
    back = CbsAnalysis.from_dict(old)
    assert back.diagnostics.converged is None  # not recorded, not invented
    assert [g.fit.cbs for g in back.groups] == [g.fit.cbs for g in cbs_analysis.groups]
    assert "convergence not recorded" in back.groups[0].fit.report()


# the committed `cbs fit cbs` files (`cbs fit measures` writes {"measures": [rows]}, not an analysis)
COMMITTED_FITS = [
    p
    for p in sorted(Path(__file__).parents[1].glob("results/*/fits/*.json"))
    if "groups" in json.loads(p.read_text())
]


@pytest.mark.parametrize("path", COMMITTED_FITS, ids=str)
def test_committed_fits_load_and_write_back_every_key(path: Path) -> None:
    """Every committed fit (some written before the interface) loads, and writes back each key it had unchanged
    (the keys added since are compared where the file has them, and left out where it has not)."""
    old = json.loads(path.read_text())
    back = as_json(CbsAnalysis.from_dict(old).to_dict())
    assert _strip(back, NEW_KEYS) == _strip(old, NEW_KEYS)


def test_scaling_law_round_trips_with_intervals(tmp_path: Path) -> None:
    n, d = (v.ravel() for v in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5)))
    loss = (1.7 + 400 / n**0.34 + 2000 / d**0.28) * np.exp(np.random.default_rng(0).normal(0, 0.003, n.size))
    fit = fit_scaling_law(n, d, loss, n_starts=200, n_boot=20)
    back = _round_trips(fit, tmp_path)
    assert back.intervals() == fit.intervals() and back.n_boot == 20
    assert (
        fit.diagnostics.converged is True
        and fit.diagnostics.evaluations > 0
        and fit.diagnostics.resamples == 20
    )
    text = fit.report(predict=[(1e9, 1e11)], compute=[1e20])
    assert fmt(fit.E, fit.intervals()["E"]) in text and f"{float(fit.predict(1e9, 1e11)):.4g}" in text
    old = ScalingLawFit.from_dict(_strip(fit.to_dict(), NEW_KEYS))  # E, A, B give the parameters back
    assert old.params == pytest.approx(fit.params, rel=1e-12) and old.diagnostics.converged is None


def _ltl_table() -> pd.DataFrame:
    n, d = (v.ravel() for v in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5)))
    la = 2.0 + 400 / n**0.34 + 2000 / d**0.28
    lb = 0.7 * (la - 2.0) ** 1.2 + 0.8
    loss = np.r_[la, lb] * np.exp(np.random.default_rng(1).normal(0, 0.002, 2 * n.size))
    return pd.DataFrame(
        {"g": ["a"] * n.size + ["b"] * n.size, "n": np.r_[n, n], "d": np.r_[d, d], "loss": loss}
    )


def test_loss_to_loss_analysis_round_trips(tmp_path: Path) -> None:
    cols = Columns("g", "n", "d", "a", "loss", "b", "loss")
    res = fit_loss_to_loss_table(_ltl_table(), cols, form="chinchilla", n_starts=200, n_boot=20)
    back = _round_trips(res, tmp_path)
    assert back.fit == res.fit and back.joint == res.joint and back.columns == cols
    assert back.pairs[["n", "x", "y"]].to_numpy() == pytest.approx(res.pairs[["n", "x", "y"]].to_numpy())
    text = res.report()
    assert "a:loss → b:loss" in text and fmt(res.fit.kappa, res.joint.kappa_ci) in text
    assert res.fit.diagnostics.converged is True and res.law_x.diagnostics.evaluations > 0
    assert res.to_dict()["intervals"]["e_fixed"]["kappa_ci"] == list(res.fit.kappa_ci)
    plain = fit_loss_to_loss(res.pairs["x"], res.pairs["y"], E_x=2.0, fit_E_y=True, n_boot=10)
    assert (
        plain.diagnostics.evaluations > 240 and "minimize_scalar" in plain.diagnostics.solver
    )  # grid + Brent
    assert LossToLossAnalysis.from_dict(_strip(res.to_dict(), NEW_KEYS)).fit.kappa == res.fit.kappa


def test_hparam_analysis_round_trips(tmp_path: Path) -> None:
    rows = []
    rng = np.random.default_rng(0)
    for c in [1e17, 1e18, 1e19, 1e20]:
        b_star, lr_star = 0.29 * c**0.33, 0.31 * c**-0.125
        bb, ll = np.meshgrid(b_star * 2.0 ** np.arange(-3, 4), lr_star * np.exp(0.4 * np.arange(-3, 4)))
        u, v = np.log(bb / b_star), np.log(ll / lr_star)
        loss = 3 + 0.02 * u**2 + 0.05 * v**2 + 0.01 * u * v + rng.normal(0, 1e-3, u.shape)
        rows.append(pd.DataFrame({"C": c, "B": bb.ravel(), "lr": ll.ravel(), "loss": loss.ravel()}))
    analysis = fit_hparam_laws(pd.concat(rows), HparamColumns(compute="C", batch="B"), n_boot=20)
    back = _round_trips(analysis, tmp_path)
    assert back.budgets[0].optimum == analysis.budgets[0].optimum  # exact logs, not log(exp(x))
    text = analysis.report(width=200)
    assert f"{analysis.batch_law.coefficient:.4g}" in text and f"{analysis.lr_law.exponents['C']:.4f}" in text
    assert fmt(analysis.budgets[0].b_opt, analysis.budgets[0].b_opt_ci) in text
    old = HparamAnalysis.from_dict(_strip(analysis.to_dict(), NEW_KEYS))
    assert old.budgets[0].b_opt == pytest.approx(analysis.budgets[0].b_opt, rel=1e-12)


def test_theory_study_round_trips(tmp_path: Path) -> None:
    from cbs.theory.study import StudySpec, default_grid, run_study
    from cbs.theory.sweep import Grid

    grid = default_grid()
    spec = StudySpec(dim=32, data_sizes=(256, 512, 1024), dims=(4, 8), dim_data_size=256, n_boot=20,
                     grid=Grid((1, 2, 4, 8, 16, 32), grid.lrs, grid.taus))  # fmt: skip
    study = run_study(spec)
    back = _round_trips(study, tmp_path)
    assert back.warnings and [w.code for w in back.warnings] == [w.code for w in study.warnings]
    assert study.diagnostics.converged is True and study.cbs_by_data[0]["diagnostics"]["evaluations"] >= 1
    text = study.report()
    assert f"{study.exponent_data:.3f}" in text and "converged" in text
    sizes = np.array([r["data_size"] for r in study.cbs_by_data], float)
    cbs = np.array([r["cbs"] for r in study.cbs_by_data])
    assert study.predict(sizes) == pytest.approx(fit_power_law(sizes, cbs, n_boot=0).predict(sizes))
    old = StudyResult.from_dict(_strip(study.to_dict(), {*NEW_KEYS, "gns"}))
    assert old.diagnostics.converged is None and old.gns is None
    assert back.gns == study.gns and "gradient noise scale B_simple" in text and "GNS check" in text


def test_every_result_has_the_interface(cbs_analysis: CbsAnalysis) -> None:
    power = fit_power_law([1.0, 2.0, 4.0, 8.0], [1.0, 1.9, 4.2, 7.7], n_boot=10)
    joint = fit_joint_power_law(
        {"a": [1, 2, 4, 1, 2, 4], "b": [1, 1, 1, 3, 3, 3]}, [1, 2, 4, 3, 6.5, 11], n_boot=5
    )
    for result in (cbs_analysis, cbs_analysis.groups[0], cbs_analysis.groups[0].fit, power, joint):
        assert isinstance(result, FitResult)
        assert result.intervals() and isinstance(result.report(), str)
        assert isinstance(result.diagnostics, SolverDiagnostics) and isinstance(result.warnings, list)
    assert cbs_analysis.warnings == [w for g in cbs_analysis.groups for w in g.warnings]
    group = cbs_analysis.groups[0]
    assert group.label in group.report() and fmt(group.fit.cbs, group.fit.cbs_ci) in group.report()
    refused = replace(group, fit=None, error="target never reached")
    assert refused.diagnostics.converged is False and "target never reached" in refused.report()
    assert CbsGroup.from_dict(json.loads(json.dumps(group.to_dict()))) == group
    assert power.diagnostics.resamples == 10 and power.diagnostics.converged is True


def test_the_cli_prints_report_and_writes_to_dict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "150")
    table, out = tmp_path / "steps.csv", tmp_path / "cbs.json"
    _cbs_table().to_csv(table, index=False)
    assert main(["fit", "cbs", "--input", str(table), "--n-boot", "30", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    analysis = CbsAnalysis.from_dict(written)
    assert as_json(analysis.to_dict()) == written
    assert printed.rstrip("\n") == analysis.report(width=150)
    same = replace(analysis, overhead=0.3)
    assert same != analysis  # equality compares the numbers
