"""L(N, D) fits: known Chinchilla and Kaplan laws are recovered; Besiroglu et al.'s Chinchilla replication
numbers are reproduced from the public points; bad input and non-convergence are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbs.errors import FitError
from cbs.fit import fit_scaling_law

N_GRID, D_GRID = np.meshgrid(np.geomspace(2e7, 2e9, 8), np.geomspace(5e8, 2e11, 8))
N_PTS, D_PTS = N_GRID.ravel(), D_GRID.ravel()


def test_chinchilla_form_recovered_from_synthetic_losses():
    truth = {"E": 1.8, "A": 450.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}
    loss = truth["E"] + truth["A"] / N_PTS ** truth["alpha"] + truth["B"] / D_PTS ** truth["beta"]
    loss *= np.exp(np.random.default_rng(0).normal(0, 0.002, loss.size))
    fit = fit_scaling_law(N_PTS, D_PTS, loss, form="chinchilla", n_starts=600, n_boot=100, seed=0)
    # 0.2% loss noise on 64 points: exponents within 0.02, E within 0.03, A and B (exponentially
    # sensitive to α, β) within a factor 1.6
    assert fit.alpha == pytest.approx(truth["alpha"], abs=0.02)
    assert fit.beta == pytest.approx(truth["beta"], abs=0.02)
    assert pytest.approx(truth["E"], abs=0.03) == fit.E
    assert 1 / 1.6 < fit.A / truth["A"] < 1.6 and 1 / 1.6 < fit.B / truth["B"] < 1.6
    ci = fit.intervals()
    assert ci["alpha"][0] < truth["alpha"] < ci["alpha"][1]
    lo, hi = fit.predict_interval(1e10, 2e11)
    assert lo < fit.predict(1e10, 2e11) < hi
    # compute-optimal allocation: the closed form is the minimum of L along C = 6·N·D
    c = 1e21
    n_opt, d_opt = fit.compute_optimal(c)
    assert 6 * n_opt * d_opt == pytest.approx(c)
    ns = np.geomspace(n_opt / 3, n_opt * 3, 201)
    assert ns[np.argmin(fit.predict(ns, c / (6 * ns)))] == pytest.approx(n_opt, rel=0.02)


def test_kaplan_form_recovered_from_synthetic_losses():
    truth = {"E": 1.5, "A": 8.8e13, "B": 5.4e13, "alpha": 0.076, "beta": 0.103}  # Kaplan et al.'s N_c, D_c
    loss = ((truth["A"] / N_PTS) ** (truth["alpha"] / truth["beta"]) + truth["B"] / D_PTS) ** truth[
        "beta"
    ] + truth["E"]
    fit = fit_scaling_law(N_PTS, D_PTS, loss, form="kaplan", n_starts=600, n_boot=0, seed=0)
    # noise-free: the fit reproduces the losses to 1e-4 relative; the parameters are weakly identified
    # along a ridge (E trades off against the power terms), so check them loosely
    assert np.max(np.abs(fit.predict(N_PTS, D_PTS) / loss - 1)) < 1e-4
    assert fit.alpha == pytest.approx(truth["alpha"], abs=0.02)
    assert fit.beta == pytest.approx(truth["beta"], abs=0.02)
    assert pytest.approx(truth["E"], abs=0.2) == fit.E


def test_chinchilla_replication_matches_besiroglu(shared_data):
    n, d, loss = _chinchilla_points(shared_data)
    fit = fit_scaling_law(n, d, loss, form="chinchilla", n_starts=4500, n_boot=300, seed=0)
    # Besiroglu et al. 2024: E=1.817, A=482.0, B=2085.4, α=0.348, β=0.366 (the points are read off a
    # figure, so α, β within 0.01, E within 0.02, A and B within 10%)
    assert fit.alpha == pytest.approx(0.348, abs=0.01)
    assert fit.beta == pytest.approx(0.366, abs=0.01)
    assert pytest.approx(1.817, abs=0.02) == fit.E
    assert pytest.approx(482.0, rel=0.10) == fit.A
    assert pytest.approx(2085.4, rel=0.10) == fit.B
    # and cbs's own optimum on these points stays where it was (a regression guard for solver changes):
    # the float64 minimum, 1.01827401780060e-3 (the fit before the whitened polish stopped 5.5e-12 above it)
    assert fit.objective == pytest.approx(1.01827401780060e-3, rel=1e-12)
    assert (fit.E, fit.A, fit.B, fit.alpha, fit.beta) == pytest.approx(
        (1.8172, 477.8, 2143.4, 0.3473, 0.3672), rel=2e-4
    )
    ci = fit.intervals()
    for name, (lo, hi) in {"alpha": (0.317, 0.373), "beta": (0.331, 0.415), "E": (1.769, 1.871)}.items():
        assert ci[name][0] < hi and lo < ci[name][1], f"{name} CI {ci[name]} misses theirs ({lo}, {hi})"


def _chinchilla_points(shared_data):
    df = pd.read_csv(shared_data / "chinchilla" / "svg_extracted_data.csv").sort_values("loss").iloc[:-5]
    n = df["Model Size"].to_numpy(float)
    return n, df["Training FLOP"].to_numpy(float) / (6 * n), df["loss"].to_numpy(float)


def _noisy_kaplan_points():
    loss = ((8.8e13 / N_PTS) ** (0.076 / 0.103) + 5.4e13 / D_PTS) ** 0.103 + 1.5
    return N_PTS, D_PTS, loss * np.exp(np.random.default_rng(2).normal(0, 0.002, loss.size))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["chinchilla points", "noisy kaplan"])
def test_searching_the_lowest_starts_finds_the_optimum_of_all(case, shared_data, monkeypatch):
    """Only the ``SEARCHED`` starts of lowest objective are minimised; minimising all 4500 finds the same
    optimum (the Kaplan case is the one where searching 128 found a worse one, 1.3e-8 above)."""
    import cbs.fit.scaling_law as sl

    n, d, loss = _chinchilla_points(shared_data) if case == "chinchilla points" else _noisy_kaplan_points()
    form = "chinchilla" if case == "chinchilla points" else "kaplan"
    pruned = fit_scaling_law(n, d, loss, form=form, n_boot=0)
    monkeypatch.setattr(sl, "SEARCHED", 4500)
    full = fit_scaling_law(n, d, loss, form=form, n_boot=0)
    assert "256 lowest of 4500" in pruned.diagnostics.solver and "4500 lowest" in full.diagnostics.solver
    assert pruned.objective == pytest.approx(full.objective, rel=1e-9)
    np.testing.assert_allclose(pruned.params, full.params, atol=1e-3)


def test_bootstrap_samples_are_the_optima_of_their_resamples():
    """Warm-started from the full-data optimum, each resample reaches the optimum that a full multi-start
    fit of the resampled points (repeated as drawn) finds."""
    from cbs.fit.bootstrap import resample_counts

    truth = (1.8, 450.0, 2000.0, 0.34, 0.37)
    loss = truth[0] + truth[1] / N_PTS ** truth[3] + truth[2] / D_PTS ** truth[4]
    loss *= np.exp(np.random.default_rng(1).normal(0, 0.005, loss.size))
    fit = fit_scaling_law(N_PTS, D_PTS, loss, n_starts=600, n_boot=6, seed=4)
    for counts, sample in zip(resample_counts(loss.size, 6, 4), fit.samples, strict=True):
        idx = np.repeat(np.arange(loss.size), counts.astype(int))
        alone = fit_scaling_law(N_PTS[idx], D_PTS[idx], loss[idx], n_starts=600, n_boot=0)
        np.testing.assert_allclose(sample, alone.params, atol=1e-5)


@pytest.mark.parametrize(
    ("n", "d", "loss", "match"),
    [
        (N_PTS[:5], D_PTS[:5], np.full(5, 3.0), "too few points"),
        (N_PTS, D_PTS, np.where(np.arange(64) == 3, np.nan, 3.0), "non-finite"),
        (np.full(64, 1e8), D_PTS, np.full(64, 3.0), "single value"),
        (N_PTS, D_PTS, np.full(64, -1.0), "must be > 0"),
    ],
)
def test_scaling_law_refusals(n, d, loss, match):
    with pytest.raises(FitError, match=match):
        fit_scaling_law(n, d, loss, n_starts=10, n_boot=0)


def test_unknown_form_refused():
    with pytest.raises(FitError, match="unknown scaling-law form"):
        fit_scaling_law(N_PTS, D_PTS, np.full(64, 3.0), form="power")


def test_non_convergence_is_refused(monkeypatch):
    """When the final L-BFGS-B polish fails, the fit raises instead of returning its last iterate."""
    from scipy.optimize import OptimizeResult

    import cbs.fit.scaling_law as sl

    def failing(fun, x0, **kwargs):
        return OptimizeResult(x=x0, fun=fun(x0)[0], success=False, message="STOP: TOTAL NO. OF ITERATIONS")

    monkeypatch.setattr(sl, "minimize", failing)
    loss = 1.8 + 450.0 / N_PTS**0.34 + 2000.0 / D_PTS**0.37
    with pytest.raises(FitError, match="did not converge"):
        fit_scaling_law(N_PTS, D_PTS, loss, n_starts=20, n_boot=0)


def test_cli_scaling_law_json(shared_data, tmp_path):
    from cbs.cli import main

    out = tmp_path / "sl.json"
    rc = main(["fit", "scaling-law", "--input", str(shared_data / "chinchilla" / "svg_extracted_data.csv"),
               "--n-col", "Model Size", "--flops-col", "Training FLOP", "--loss-col", "loss", "--drop-highest", "5",
               "--n-starts", "1000", "--n-boot", "50", "--predict", "7e10,1.4e12", "--compute", "5.76e23",
               "--json", str(out)])  # fmt: skip
    assert rc == 0
    res = pd.read_json(out, typ="series")
    assert res["n_points"] == 240 and res["alpha"] == pytest.approx(0.348, abs=0.01)
    pred = res["predictions"][0]
    assert pred["loss_ci"][0] < pred["loss"] < pred["loss_ci"][1]
    opt = res["compute_optimal"][0]
    assert 6 * opt["n_opt"] * opt["d_opt"] == pytest.approx(5.76e23)
