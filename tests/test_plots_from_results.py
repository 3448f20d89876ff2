"""Figures draw fit results and never fit: from a `cbs fit cbs --json` output the store is not refitted, no
plot module calls a fitting routine, and the law printed on a figure is the JSON's."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_plots_synthetic import write_store

from cbs.cli import main
from cbs.errors import FitError, ResultsError
from cbs.fit.cbs_json import cbs_analysis_from_dict, load_cbs_analysis
from cbs.fit.store_fits import StoreFits
from cbs.fit.tables import scaling_law_points
from cbs.plots import style
from cbs.plots.registry import STORE_FIGURES, make_store_figures

PLOTS = Path(__file__).resolve().parents[1] / "cbs" / "plots"
FAST = ["--n-boot", "40", "--n-starts", "16"]
# Every routine that fits or optimises: the fit layer's entry points and the scipy solvers under them.
FITTING = {
    "fit_cbs",
    "fit_cbs_table",
    "fit_power_law",
    "fit_joint_power_law",
    "fit_scaling_law",
    "fit_scaling_law_points",
    "fit_loss_to_loss",
    "fit_loss_to_loss_table",
    "fit_loss_to_loss_set",
    "fit_hyperbolas",
    "batched_lbfgs",
    "least_squares",
    "minimize",
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic store (three N × three D) and the JSON `cbs fit cbs --json` wrote of it."""
    root = tmp_path_factory.mktemp("from-results")
    store = root / "store"
    write_store(store)
    assert main(["fit", "cbs", str(store), "--json", str(root / "fit.json"), "--n-boot", "40"]) == 0
    return store, root / "fit.json"


@pytest.fixture
def no_fitting(monkeypatch):
    """Every fitting routine, wherever a cbs module (or scipy.optimize) holds it, raises when called."""

    def refuse(*args, **kwargs):
        raise AssertionError("a figure called a fitting routine")

    modules = [
        m for name, m in list(sys.modules.items()) if name.startswith("cbs.") or name == "scipy.optimize"
    ]
    for module in modules:
        for name in FITTING & set(vars(module)):
            monkeypatch.setattr(module, name, refuse)


def test_every_store_figure_draws_from_a_loaded_fit_without_fitting(
    fitted, tmp_path, no_fitting, monkeypatch
):
    store, path = fitted
    analysis = load_cbs_analysis(path)
    src = StoreFits(store, n_boot=40, n_starts=16, fitted=analysis)
    src.__dict__["scaling_law"] = (np.ones(6), np.ones(6), np.ones(6), None)  # the L(N, D) figure needs a fit
    names = [n for n in STORE_FIGURES if n != "scaling-law"]
    made, skipped = make_store_figures(src, tmp_path, names, ("png",), strict=False)
    assert {m.family for m in made} == {"loss-curves", "steps-vs-batch", "cbs-scaling", "lr-sensitivity"}
    assert src.analysis is analysis
    # the refusal is real: asking the store for a fit of its own fails
    with pytest.raises(AssertionError, match="fitting routine"):
        StoreFits(store, n_boot=40).analysis  # noqa: B018


def test_no_plot_module_imports_a_fitting_routine():
    for module in sorted(PLOTS.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names}
                assert not names & FITTING, f"{module.name} imports {names & FITTING}"
                assert node.module != "scipy.optimize", f"{module.name} imports scipy.optimize"


def test_the_law_on_the_figure_is_the_jsons(fitted, tmp_path, monkeypatch, capsys):
    store, path = fitted
    payload = json.loads(path.read_text())
    drawn = []
    monkeypatch.setattr(style, "save", lambda fig, out, stem, formats: drawn.append(fig) or [])
    capsys.readouterr()
    assert main(["figures", str(store), "--fit", str(path), "--only", "cbs-scaling", *FAST]) == 0
    (fig,) = drawn
    laws = {law["name"]: law for law in payload["subset_laws"]}
    names = ["n_params@data_tokens=8e+06", "data_tokens@n_params=400000", "n_params@tokens_per_param=20"]
    groups = {(g["model"], g["n_params"], g["data_tokens"]): g for g in payload["groups"]}
    for ax, name in zip(fig.axes, names, strict=True):
        law = laws[name]
        (label,) = [t.get_text() for t in ax.texts if "B^*" in t.get_text()]
        assert f"{law['coefficient']:.3g}" in label and f"{{{law['exponent']:.3f}}}" in label
        assert f"[{law['exponent_ci'][0]:.2f}, {law['exponent_ci'][1]:.2f}]" in label
        # the points are the JSON's CBS of the law's groups
        points = next(a for a in ax.get_lines() if a.get_gid() == "points")
        cbs = [groups[(g["model"], g["n_params"], g["data_tokens"])]["cbs"] for g in law["groups"]]
        np.testing.assert_allclose(points.get_ydata(), cbs, rtol=0)
        # the drawn law is the JSON's coefficient and exponent (N in millions, D in tokens)
        curve = next(a for a in ax.get_lines() if a.get_gid() == "law")
        x = curve.get_xdata() / (1e6 if law["variable"] == "n_params" else 1.0)
        np.testing.assert_allclose(curve.get_ydata(), law["coefficient"] * x ** law["exponent"], rtol=1e-12)


def test_cbs_fit_prints_the_subset_laws_the_figures_draw(fitted, capsys):
    store, path = fitted
    assert main(["fit", "cbs", str(store), "--n-boot", "40"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for law in json.loads(path.read_text())["subset_laws"]:
        assert f"B* = {law['coefficient']:.4g}·" in out and f"^{law['exponent']:.3f} with" in out


def test_the_analysis_round_trips_through_its_json(fitted):
    _, path = fitted
    payload = json.loads(path.read_text())
    again = json.loads(json.dumps(cbs_analysis_from_dict(payload).to_dict()))
    assert again == payload


def test_a_fit_json_of_another_store_or_version_is_refused(fitted, tmp_path, capsys):
    store, path = fitted
    other = tmp_path / "other"
    write_store(other, groups=((100_000, 2_000_000),), batches=(64, 256, 1024), lrs=(1e-3,))
    assert main(["figures", str(other), "--fit", str(path), "--out", str(tmp_path / "f")]) == 2
    assert "that " + str(other) + " has no runs of: pass the JSON `cbs fit cbs` wrote for this store" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "f").exists()
    old = json.loads(path.read_text())
    del old["subset_laws"]
    with pytest.raises(FitError, match="no 'subset_laws': re-run `cbs fit cbs --json`"):
        cbs_analysis_from_dict(old)
    with pytest.raises(ResultsError, match="no runs of"):
        StoreFits(other, fitted=load_cbs_analysis(path))


def test_drop_highest_is_one_stable_preparation():
    table = pd.DataFrame({"n": [1e6] * 4 + [2e6] * 4, "d": [1e9, 2e9, 4e9, 8e9] * 2})
    table["loss"] = [3.0, 2.9, 2.8, 2.7, 3.0, 2.6, 2.5, 2.4]  # two rows tie for the highest loss
    points = scaling_law_points(table, n_col="n", d_col="d", flops_col=None, loss_col="loss", drop_highest=1)
    assert points["excluded"].tolist() == [False, False, False, False, True, False, False, False]
    with pytest.raises(FitError, match="--drop-highest 3 leaves 5 of 8 points"):
        scaling_law_points(table, n_col="n", d_col="d", flops_col=None, loss_col="loss", drop_highest=3)


def test_the_store_l_nd_fit_keeps_every_bootstrap_resample(tmp_path):
    store = write_store(tmp_path / "store")
    fit = StoreFits(store.root, n_boot=250, n_starts=16).scaling_law[3]
    assert len(fit.samples) > 200  # the figures' L(N, D) fit is no longer capped at 200 resamples


def test_report_takes_the_cbs_numbers_from_the_fit_json(fitted, tmp_path):
    store, path = fitted
    payload = json.loads(path.read_text())
    first = payload["groups"][0]  # numbers no fit of the store gives: the page must show them
    first["cbs"], first["cbs_ci"] = first["cbs"] * 1.5, [v * 1.5 for v in first["cbs_ci"]]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(payload))
    out = tmp_path / "report"
    assert (
        main(["report", str(store), "--fit", str(edited), "--out", str(out), "--format", "png", *FAST]) == 0
    )
    page = (out / "report.md").read_text()
    assert f"| {first['cbs']:.4g} [{first['cbs_ci'][0]:.4g}, {first['cbs_ci'][1]:.4g}] |" in page
    assert "CBS fits read from a `cbs fit cbs --json` output, 40 resamples" in page
