"""Store figures: each renders from a synthetic store, and the arrays behind the artists are the fitted values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_plots_synthetic import GROUPS, LR_SLOWDOWN, make_run, true_cbs, true_params, write_store

from cbs.fit import first_crossing, fit_cbs_table
from cbs.fit.store_fits import StoreFits
from cbs.plots import style
from cbs.plots.cbs_scaling import SCALE, cbs_scaling, select_panels, teaser
from cbs.plots.curves import loss_curves
from cbs.plots.registry import STORE_FIGURES, FigureUnavailable, make_store_figures
from cbs.plots.scaling_law import log_bands, scaling_law_figure
from cbs.plots.sensitivity import sensitivity
from cbs.plots.steps import steps_vs_batch

N_BOOT = 40


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> StoreFits:
    root = tmp_path_factory.mktemp("store")
    write_store(root)
    return StoreFits(root, n_boot=N_BOOT, n_starts=16)


def line(fig, gid):
    found = [a for ax in fig.axes for a in ax.get_lines() if a.get_gid() == gid]
    assert len(found) == 1, f"expected one line with gid {gid!r}, found {len(found)}"
    return found[0]


def test_steps_vs_batch_draws_the_fitted_hyperbola_and_cbs(source):
    groups = source.groups
    assert len(groups) == len(GROUPS)
    fig = steps_vs_batch(groups)
    for i, g in enumerate(groups):
        fit = g.fit
        hyper = line(fig, f"hyperbola:{i}")
        np.testing.assert_allclose(hyper.get_ydata(), fit.predict(hyper.get_xdata()), rtol=1e-12)
        assert (
            hyper.get_xdata().min() < fit.batch_sizes.min()
            and hyper.get_xdata().max() > fit.batch_sizes.max()
        )
        lin = line(fig, f"linear:{i}")
        np.testing.assert_allclose(
            lin.get_ydata(), fit.predict(fit.b_opt) * fit.b_opt / lin.get_xdata(), rtol=1e-12
        )
        star = line(fig, f"cbs:{i}")
        assert star.get_xdata()[0] == fit.cbs and star.get_ydata()[0] == pytest.approx(fit.predict(fit.cbs))
        pts = line(fig, f"points:{i}")
        np.testing.assert_array_equal(pts.get_ydata(), fit.steps)
        rel = line(fig, f"relative:{i}")
        np.testing.assert_allclose(rel.get_ydata(), fit.steps / fit.steps[0])
        # the synthetic S(B) is known: the plotted CBS is the true one within 1% (steps are rounded)
        assert fit.cbs == pytest.approx(true_cbs(g.n_params, g.data_tokens), rel=0.01)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"


def test_teaser_draws_the_fits_subset_laws_with_bands_and_forecasts(source):
    panels, reasons = select_panels(source.analysis)
    assert reasons == [] and [p.law.name for p in panels] == [
        "n_params@data_tokens=8e+06",
        "data_tokens@n_params=400000",
        "n_params@tokens_per_param=20",
    ]
    assert [p.law for p in panels] == [
        next(law for law in source.analysis.subset_laws if law.name == p.law.name) for p in panels
    ]
    fig = cbs_scaling(panels)
    for ax, panel in zip(fig.axes, panels, strict=False):
        fit, scale = panel.law.law, SCALE[panel.law.variable]
        law = next(a for a in ax.get_lines() if a.get_gid() == "law")
        x = law.get_xdata()
        np.testing.assert_allclose(law.get_ydata(), fit.coefficient * (x / scale) ** fit.exponent, rtol=1e-12)
        assert x.min() == pytest.approx(panel.x.min()) and x.max() == pytest.approx(panel.x.max())
        forecast = next(a for a in ax.get_lines() if a.get_gid() == "forecast")
        assert forecast.get_linestyle() == "--" and forecast.get_xdata().max() == pytest.approx(
            10 * panel.x.max()
        )
        np.testing.assert_allclose(forecast.get_ydata(), fit.predict(forecast.get_xdata() / scale))
        band = next(c for c in ax.collections if c.get_gid() == "band")
        lo, hi = fit.band(np.geomspace(panel.x.min(), 10 * panel.x.max(), 5) / scale)
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() <= lo.min() * 1.001 and ys.max() >= hi.max() * 0.999
    # fixed data: the synthetic CBS depends on D only, so its exponent in N is ~0; in D it is positive
    assert abs(panels[0].law.law.exponent) < 0.01 and panels[1].law.law.exponent > 0.05
    at_n = {g.data_tokens: g.fit.cbs for g in source.groups if g.n_params == 400_000}
    np.testing.assert_allclose(sorted(panels[1].cbs), sorted(at_n.values()))


ONE_MODEL = pd.DataFrame(
    [
        {
            "model": "m",
            "n_params": 1e6,
            "data_tokens": d,
            "batch_size": b,
            "steps_to_target": 100 + d / b / 1e4,
        }
        for d in (1e7, 2e7, 4e7)
        for b in (64, 128, 256, 512)
    ]
)


def test_teaser_without_resamples_draws_the_law_and_no_band():
    fig, _ = teaser(fit_cbs_table(ONE_MODEL, n_boot=0))
    assert line(fig, "law") and not [c for c in fig.axes[0].collections if c.get_gid() == "band"]
    assert np.isfinite(fig.axes[0].get_ylim()).all()


def test_teaser_refuses_with_reasons():
    panels, reasons = select_panels(fit_cbs_table(ONE_MODEL, n_boot=N_BOOT))
    assert [p.law.variable for p in panels] == ["data_tokens"]
    assert any("CBS vs model size: no data size is shared by ≥ 3 fitted model sizes" in r for r in reasons)
    assert any("Chinchilla line: fewer than 3 fitted model sizes" in r for r in reasons)


def test_loss_curves_plot_the_stored_curves(source):
    runs = source.runs[(source.runs.n_params == 400_000) & (source.runs.data_tokens == 8_000_000)]
    target = source.targets()[(400_000.0, 8_000_000.0)]
    fig = loss_curves(runs, source.curves, target=target, preferred=set(source.table.run_id))
    best = runs[runs.lr == 1e-3]
    for run in best.itertuples():
        curve = source.curves[source.curves.run_id == run.run_id].sort_values("step")
        ewa = line(fig, f"curve:{run.run_id}:ewa_eval_loss:tokens")
        np.testing.assert_array_equal(ewa.get_xdata(), curve.tokens.to_numpy(float))
        np.testing.assert_array_equal(ewa.get_ydata(), curve.ewa_eval_loss.to_numpy())
        raw = line(fig, f"curve:{run.run_id}:eval_loss:step")
        np.testing.assert_array_equal(raw.get_ydata(), curve.eval_loss.to_numpy())
    targets = [a for ax in fig.axes for a in ax.get_lines() if a.get_gid() == "target"]
    assert len(targets) == 4 and all(t.get_ydata()[0] == target for t in targets)


def test_lr_sensitivity_plots_steps_to_target_per_run(source):
    runs = source.runs_with_steps
    fig = sensitivity(runs, "lr")
    n, d, batch = 400_000, 8_000_000, 128
    a, b = true_params(n, d)
    sens = line(fig, f"sens:steps_to_target:{n}:{d}:{batch}")
    np.testing.assert_allclose(sens.get_xdata(), sorted(LR_SLOWDOWN))
    expected = [round((a + b / batch) * LR_SLOWDOWN[lr]) for lr in sorted(LR_SLOWDOWN)]
    np.testing.assert_allclose(sens.get_ydata(), expected)
    # and the per-run value is the same interpolated crossing `cbs fit` uses
    run = runs[
        (runs.n_params == n) & (runs.data_tokens == d) & (runs.batch_size == batch) & (runs.lr == 1e-3)
    ].iloc[0]
    c = source.curves[source.curves.run_id == run.run_id]
    assert run.steps_to_target == first_crossing(
        c.step.to_numpy(float), c.ewa_eval_loss.to_numpy(), run.target_loss
    )


def test_sensitivity_marks_diverged_runs(tmp_path):
    store = write_store(tmp_path, groups=GROUPS[:1], batches=(64, 256), lrs=(3e-4, 1e-3))
    row, curve = make_run(*GROUPS[0], 64, 3e-3, preset="tiny-100k", eval_set="val")
    row.update(run_id="diverged-run", lr=1e-2, status="diverged", best_ewa_eval_loss=None)
    store.write_run(row, [dict(c, ewa_eval_loss=float("nan"), eval_loss=float("nan")) for c in curve])
    src = StoreFits(tmp_path, n_boot=N_BOOT)
    fig = sensitivity(src.runs_with_steps, "lr")
    n, d = GROUPS[0]
    cross = line(fig, f"diverged:{n}:{d}:64")
    assert cross.get_xdata().tolist() == [1e-2] and cross.get_ydata().tolist() == [0.97]
    assert (
        len(line(fig, f"sens:steps_to_target:{n}:{d}:64").get_xdata()) == 2
    )  # the diverged run has no steps
    assert "diverged" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_scaling_law_figure_draws_the_fit(source):
    n, d, loss, fit = source.scaling_law
    # the synthetic targets follow L = 2 + 20/N^0.3 + 50/D^0.28 exactly
    assert pytest.approx(2.0, rel=0.01) == fit.E and fit.alpha == pytest.approx(0.3, rel=0.02)
    fig = scaling_law_figure(n, d, loss, fit)
    _, n_centres = log_bands(n)
    for i, centre in enumerate(n_centres):
        surf = line(fig, f"surface:{i}")
        np.testing.assert_allclose(surf.get_ydata(), fit.predict(centre, surf.get_xdata()), rtol=1e-12)
    _, budgets = log_bands(6 * n * d)
    n_opt, _ = fit.compute_optimal(budgets)
    for i, budget in enumerate(budgets):
        iso = line(fig, f"isoflop:{i}")
        np.testing.assert_allclose(
            iso.get_ydata(), fit.predict(iso.get_xdata(), budget / (6 * iso.get_xdata()))
        )
        assert line(fig, f"isoflop-opt:{i}").get_xdata()[0] == pytest.approx(n_opt[i])
    frontier = line(fig, "frontier-n")
    np.testing.assert_allclose(frontier.get_ydata(), fit.compute_optimal(frontier.get_xdata())[0])


def test_every_store_figure_is_made_or_skipped_with_a_reason(source, tmp_path):
    made, skipped = make_store_figures(source, tmp_path, list(STORE_FIGURES), ("png",), strict=False)
    families = {m.family for m in made}
    assert families == set(STORE_FIGURES) - {
        "beta2-sensitivity",
        "ewa-tau-sensitivity",
        "theory",
        "optimizers",
        "measures",  # the synthetic runs log no in-run GNS and have no branches
    }
    reasons = {s.name: s.reason for s in skipped}
    assert "single beta2" in reasons["beta2-sensitivity"] and "cbs theory" in reasons["theory"]
    assert "no group has a B_simple value or branched estimate" in reasons["measures"]
    assert "≥ 2 optimizers" in reasons["optimizers"]
    for m in made:
        for path in m.paths:
            assert path.is_file() and path.stat().st_size > 5_000, path
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_requested_figure_the_data_cannot_support_raises(source, tmp_path):
    with pytest.raises(FigureUnavailable, match="theory: not a `cbs theory` store"):
        make_store_figures(source, tmp_path, ["theory"], ("png",), strict=True)
    small = tmp_path / "one-model"
    write_store(small, groups=GROUPS[:1], batches=(64, 256, 1024), lrs=(1e-3,))
    src = StoreFits(small, n_boot=N_BOOT)
    with pytest.raises(FigureUnavailable, match="cbs-scaling: .*CBS vs model size: no data size is shared"):
        make_store_figures(src, tmp_path, ["cbs-scaling"], ("png",), strict=True)
    with pytest.raises(FigureUnavailable, match="lr-sensitivity: every batch size was run at a single lr"):
        make_store_figures(src, tmp_path, ["lr-sensitivity"], ("png",), strict=True)


def test_theory_store_gives_the_theory_panel(tmp_path):
    dim = 100_000
    groups = [(dim, d) for d in (2_000_000, 8_000_000, 32_000_000)]
    write_store(tmp_path, groups=groups, lrs=(1e-3,), preset_prefix="linreg", eval_set="risk")
    src = StoreFits(tmp_path, n_boot=N_BOOT)
    made, _ = make_store_figures(src, tmp_path / "fig", ["theory"], ("png",), strict=True)
    assert made[0].paths[0].stat().st_size > 5_000
    from cbs.plots.theory import theory_from_analysis

    fig = theory_from_analysis(src.analysis)
    (law,) = src.analysis.subset_laws  # one dimension, three data sizes: the law of CBS vs D
    drawn = next(a for a in fig.axes[1].get_lines() if a.get_gid() == "law")
    np.testing.assert_allclose(drawn.get_ydata(), law.law.predict(drawn.get_xdata()))
    assert law.variable == "data_tokens" and law.law.exponent > 0  # the CBS grows with D


def test_save_writes_each_format_atomically(tmp_path):
    fig, axes = style.new_figure()
    axes[0][0].plot([1, 2], [3, 4])
    paths = style.save(fig, tmp_path, "empty", ("pdf", "svg"))
    assert [p.suffix for p in paths] == [".pdf", ".svg"] and all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(Exception, match="unsupported figure format"):
        style.parse_formats("pdf,jpeg")
