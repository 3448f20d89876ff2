"""Figures from public tables and fit outputs: Chinchilla L(N, D), loss-to-loss runs, `cbs fit cbs --json`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_plots_synthetic import write_store

from cbs.errors import CbsError
from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.fit.tables import write_json
from cbs.plots.curves import loss_curves
from cbs.plots.loss_to_loss import loss_to_loss_figure, loss_to_loss_panels
from cbs.plots.tables import (
    cbs_scaling_from_json,
    loss_to_loss_from_table,
    scaling_law_from_table,
    theory_from_json,
)


def lines(fig, prefix):
    return [a for ax in fig.axes for a in ax.get_lines() if (a.get_gid() or "").startswith(prefix)]


def test_chinchilla_scaling_law_figure(shared_data):
    table = pd.read_csv(shared_data / "chinchilla" / "svg_extracted_data.csv")
    fig = scaling_law_from_table(
        table,
        n_col="Model Size",
        flops_col="Training FLOP",
        loss_col="loss",
        drop_highest=5,
        n_starts=200,
        n_boot=0,
    )
    excluded = next(c for ax in fig.axes for c in ax.collections if c.get_gid() == "excluded")
    assert len(excluded.get_offsets()) == 5
    assert np.sort(excluded.get_offsets()[:, 1])[0] >= np.sort(table["loss"])[-5]
    # the suptitle carries Besiroglu et al.'s estimates (E = 1.817, α = 0.348, β = 0.366) to the drawn precision
    title = fig.get_suptitle()
    assert "E = 1.817" in title and "α = 0.34" in title and "β = 0.36" in title
    assert len(lines(fig, "isoflop:")) == 6 and lines(fig, "frontier-n")


@pytest.fixture(scope="module")
def sweep_subset(shared_data):
    table = pd.read_csv(shared_data / "loss_to_loss" / "sweep.csv")
    holdout = pd.read_csv(shared_data / "loss_to_loss" / "extrapolation.csv")
    keep = ["fineweb-edu-100b", "proof-pile-2", "starcoder"]
    return table[table["data"].isin(keep)], holdout[holdout["data"].isin(keep)]


def test_loss_to_loss_figure_draws_the_fitted_laws_and_held_out_runs(sweep_subset):
    table, holdout = sweep_subset
    test_cols = ["eval/c4_val/CrossEntropyLoss", "eval/starcoder_val/CrossEntropyLoss"]
    panels, notes = loss_to_loss_panels(
        table,
        group_col="data",
        n_col="params",
        d_col="tokens",
        x_group="fineweb-edu-100b",
        x_col="val_loss",
        test_cols=test_cols,
        test_col="eval/c4_val/CrossEntropyLoss",
        holdout=holdout,
        n_starts=16,
        n_boot=10,
    )
    assert notes == [] and [p.title for p in panels] == ["Train-to-train", "Train-to-test", "Test-to-test"]
    fig = loss_to_loss_figure(panels)
    fw = holdout.set_index("data")
    for p, panel in enumerate(panels):
        assert len(panel.curves) == 2
        for i, curve in enumerate(panel.curves):
            a = curve.analysis
            fit_line = lines(fig, f"fit:{p}:{i}")[0]
            x = fit_line.get_xdata()
            expected = a.fit.K * (x - a.fit.E_x) ** a.fit.kappa + a.fit.E_y
            np.testing.assert_allclose(fit_line.get_ydata(), expected, rtol=1e-12)
            assert 0.7 < a.fit.kappa < 1.7 and a.fit.r2 > 0.95
            pairs = lines(fig, f"pairs:{p}:{i}")[0]
            np.testing.assert_array_equal(pairs.get_xdata(), a.pairs["x"])
            # the held-out 3.3B run is drawn where it is, and the law is drawn out to it
            held = lines(fig, f"heldout:{p}:{i}")[0]
            np.testing.assert_array_equal(held.get_ydata(), a.holdout["y"])
            assert x.min() == pytest.approx(min(a.pairs["x"].min(), a.holdout["x"].min()))
    train_to_train = lines(fig, "heldout:0:")
    assert sorted(h.get_ydata()[0] for h in train_to_train) == pytest.approx(
        sorted([fw.loc["proof-pile-2", "val_loss"], fw.loc["starcoder", "val_loss"]])
    )
    assert all(
        h.get_xdata()[0] == pytest.approx(fw.loc["fineweb-edu-100b", "val_loss"]) for h in train_to_train
    )


def test_loss_to_loss_refuses_an_unknown_group(sweep_subset):
    table, _ = sweep_subset
    with pytest.raises(CbsError, match="'c4' is not in column 'data'"):
        loss_to_loss_from_table(table, group_col="data", n_col="params", d_col="tokens", x_group="c4")


def test_cbs_scaling_from_fit_json(tmp_path):
    store = write_store(tmp_path / "store")
    analysis = fit_cbs_table(steps_to_target_table(store), n_boot=30)
    path = tmp_path / "fit.json"
    write_json(path, analysis.to_dict())
    fig, reasons = cbs_scaling_from_json(path, n_boot=30)
    assert reasons == [] and len(fig.axes) == 3
    points = next(c for c in fig.axes[1].containers)  # errorbar container of the fixed-model panel
    y = np.sort(points.lines[0].get_ydata())
    at_n = sorted(g.fit.cbs for g in analysis.groups if g.n_params == 400_000)
    np.testing.assert_allclose(y, at_n)


def test_cbs_scaling_from_json_refuses_other_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"E": 1.8}')
    with pytest.raises(CbsError, match="not a `cbs fit cbs --json` output"):
        cbs_scaling_from_json(path)


@pytest.fixture(scope="module")
def theory_outputs(tmp_path_factory):
    """A small `cbs theory` run: its results store and its JSON."""
    from cbs.cli import main

    root = tmp_path_factory.mktemp("theory")
    grid = ["--data-sizes", "256", "1024", "4096", "--dims", "8", "16", "--dim-data-size", "256"]
    batches = ["--batch-sizes", *[str(2**k) for k in range(9)]]
    args = ["theory", *grid, *batches, "--n-boot", "20", "--results", str(root / "store"), "--json"]
    assert main([*args, str(root / "theory.json")]) == 0
    return root / "store", root / "theory.json"


def test_theory_figure_from_cbs_theory_json(theory_outputs):
    import json

    _, path = theory_outputs
    payload = json.loads(path.read_text())
    fig = theory_from_json(path, n_boot=20)
    steps_ax, cbs_ax = fig.axes[:2]
    cells = sorted(payload["cbs_by_data"], key=lambda c: c["data_size"])
    for i, cell in enumerate(cells):
        hyper = next(a for a in steps_ax.get_lines() if a.get_gid() == f"hyperbola:{i}")
        a, b = cell["s_min"], cell["b_noise"] * cell["s_min"]  # the hyperbola `cbs theory` fitted
        np.testing.assert_allclose(hyper.get_ydata(), a + b / hyper.get_xdata(), rtol=1e-6)
        star = next(a for a in steps_ax.get_lines() if a.get_gid() == f"cbs:{i}")
        assert star.get_xdata()[0] == pytest.approx(cell["cbs"], rel=1e-6)
    corollary = next(a for a in cbs_ax.get_lines() if a.get_gid() == "corollary")
    x, y = corollary.get_xdata(), corollary.get_ydata()
    slope = np.diff(np.log(y)) / np.diff(np.log(x))
    np.testing.assert_allclose(slope, payload["exponent_theory"])


def test_theory_store_figure_uses_the_recorded_reference_batch(theory_outputs, tmp_path):
    from cbs.plots.registry import make_store_figures
    from cbs.plots.sources import StoreSource

    store, path = theory_outputs
    src = StoreSource(store, n_boot=20)
    assert src.is_theory() and src.analysis.b_opt == 1  # B_ref = 1, as `cbs theory` records it
    made, _ = make_store_figures(src, tmp_path, ["theory"], ("png",), strict=True)
    assert made[0].paths[0].stat().st_size > 5_000
    # its loss curves are excess risks, on a log axis
    runs = src.runs[src.runs.data_tokens == src.runs.data_tokens.max()]
    fig = loss_curves(runs, src.curves, theory=True)
    assert fig.axes[0].get_ylabel().startswith("Excess risk") and fig.axes[0].get_yscale() == "log"
    # the same CBS per data size as `cbs theory` reported
    reported = {c["data_size"]: c["cbs"] for c in __import__("json").loads(path.read_text())["cbs_by_data"]}
    dim = max(c["dim"] for c in __import__("json").loads(path.read_text())["cbs_by_data"])
    ours = {g.data_tokens: g.fit.cbs for g in src.groups if g.n_params == dim}
    assert ours.keys() == reported.keys()
    for d, cbs in reported.items():
        assert ours[d] == pytest.approx(cbs, rel=1e-6)
