"""Loss-to-loss: recovery of κ, K (and E_y) from synthetic pairs, the refusals, translation of an L(N, D)
law, the Kaplan-form default and the joint bootstrap that refits E, a results-store round trip, and the
FineWeb-Edu → StarCoder fit on the public runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cbs.cli import main
from cbs.errors import FitError
from cbs.fit import fit_loss_to_loss
from cbs.fit.loss_to_loss_table import Columns, final_loss_table, fit_loss_to_loss_table
from cbs.fit.scaling_law import ScalingLawFit, fit_scaling_law, refit_weighted
from cbs.results import ResultsStore

KAPPA, K_TRUE, E_X, E_Y = 1.2, 0.7, 2.0, 0.8


def _pairs(n=60, noise=0.002, seed=0):
    x = E_X + np.geomspace(0.05, 2.0, n)
    y = K_TRUE * (x - E_X) ** KAPPA + E_Y
    return x, y * np.exp(np.random.default_rng(seed).normal(0, noise, n))


def test_kappa_and_k_recovered_with_given_shifts():
    x, y = _pairs()
    fit = fit_loss_to_loss(x, y, E_x=E_X, E_y=E_Y, n_boot=200)
    # 0.2% noise on 60 pairs over 1.6 decades of x − E_x
    assert fit.kappa == pytest.approx(KAPPA, abs=0.02)
    k_fit = fit.K  # (a lower-case name: ruff reads fit.K as a constant)
    assert k_fit == pytest.approx(K_TRUE, rel=0.03)
    assert fit.kappa_ci[0] < KAPPA < fit.kappa_ci[1]
    assert fit.r2 > 0.999
    assert fit.predict(3.0) == pytest.approx(K_TRUE * 1.0**KAPPA + E_Y, rel=0.01)


def test_e_y_fitted_within_bounds():
    x, y = _pairs(noise=0.0005)
    fit = fit_loss_to_loss(x, y, E_x=E_X, fit_E_y=True, n_boot=50)
    assert fit.E_y_fitted and 0 <= fit.E_y < y.min()
    assert fit.E_y == pytest.approx(E_Y, abs=0.05)
    assert fit.kappa == pytest.approx(KAPPA, abs=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"E_x": 2.06, "E_y": E_Y}, "E_x = 2.06 is at or above the smallest loss"),
        ({"E_x": E_X, "E_y": 0.9}, "E_y = 0.9 is at or above"),
        ({"E_x": E_X}, "E_y is needed"),
    ],
)
def test_shift_refusals(kwargs, match):
    x, y = _pairs()
    with pytest.raises(FitError, match=match):
        fit_loss_to_loss(x, y, n_boot=0, **kwargs)


def test_non_finite_and_too_few_refused():
    x, y = _pairs()
    with pytest.raises(FitError, match="non-finite"):
        fit_loss_to_loss(np.append(x, np.nan), np.append(y, 1.0), E_x=E_X, E_y=E_Y)
    with pytest.raises(FitError, match="too few points"):
        fit_loss_to_loss(x[:2], y[:2], E_x=E_X, E_y=E_Y)


def test_translation_of_a_law_matches_composition_where_one_term_dominates():
    law = ScalingLawFit(form="chinchilla", params=np.array([np.log(400.0), np.log(2000.0), np.log(E_X), 0.34, 0.37]),
                        objective=0.0, n_points=10, n_starts=1, samples=np.empty((0, 5)))  # fmt: skip
    x, y = _pairs()
    fit = fit_loss_to_loss(x, y, E_x=E_X, E_y=E_Y, n_boot=0)
    moved = fit.translate(law)
    assert moved.alpha == pytest.approx(fit.kappa * 0.34) and pytest.approx(E_Y) == moved.E
    n = np.geomspace(1e7, 1e10, 5)
    huge_d = 1e40  # the data term vanishes: K·(A/N^α)^κ + E_y is exactly the translated law
    assert moved.predict(n, huge_d) == pytest.approx(fit.predict(law.predict(n, huge_d)), rel=1e-9)
    other = ScalingLawFit(form="chinchilla", params=law.params + np.array([0, 0, 0.5, 0, 0]), objective=0.0,
                          n_points=10, n_starts=1, samples=np.empty((0, 5)))  # fmt: skip
    with pytest.raises(FitError, match="not this fit's E_x"):
        fit.translate(other)


KAPLAN_X = ScalingLawFit(form="kaplan", params=np.array([np.log(1e8), np.log(1e8), np.log(E_X), 0.34, 0.4]),
                         objective=0.0, n_points=36, n_starts=1, samples=np.empty((0, 5)))  # fmt: skip


def _kaplan_table(noise=0.003, seed=0) -> pd.DataFrame:
    """Groups a, b on a 6 × 6 (N, D) grid: a follows KAPLAN_X (losses 2.5-4.3), b = K·(a − E_X)^κ + E_Y,
    each with 0.3% log-normal noise."""
    n, d = (v.ravel() for v in np.meshgrid(np.geomspace(1e7, 1e9, 6), np.geomspace(1e8, 3e10, 6)))
    la = KAPLAN_X.predict(n, d)
    lb = K_TRUE * (la - E_X) ** KAPPA + E_Y
    rng = np.random.default_rng(seed)
    loss = np.r_[la, lb] * np.exp(rng.normal(0, noise, 2 * n.size))
    return pd.DataFrame(
        {"g": ["a"] * n.size + ["b"] * n.size, "n": np.r_[n, n], "d": np.r_[d, d], "loss": loss}
    )


KAPLAN_COLS = Columns("g", "n", "d", "a", "loss", "b", "loss")


def test_kaplan_translation_is_exact():
    x, y = _pairs()
    fit = fit_loss_to_loss(x, y, E_x=E_X, E_y=E_Y, n_boot=0)
    moved = fit.translate(KAPLAN_X)
    assert moved.form == "kaplan" and moved.alpha == pytest.approx(fit.kappa * 0.34)
    n, d = np.geomspace(1e7, 1e10, 5), np.geomspace(1e8, 1e11, 5)  # both terms matter: no approximation
    assert moved.predict(n, d) == pytest.approx(fit.predict(KAPLAN_X.predict(n, d)), rel=1e-10)


def test_refit_weighted_starts_from_the_optimum_and_matches_a_subset_fit():
    t = _kaplan_table()
    a = t[t["g"] == "a"]
    law = fit_scaling_law(a["n"], a["d"], a["loss"], form="kaplan", n_starts=300, n_boot=0)
    keep = (np.arange(len(a)) % 3 != 0).astype(float)  # drop every third run
    same, sub = refit_weighted(law, a["n"], a["d"], a["loss"], np.vstack([np.ones(len(a)), keep]))
    assert same == pytest.approx(law.params, abs=1e-5)
    rows = a[keep > 0]
    direct = fit_scaling_law(rows["n"], rows["d"], rows["loss"], form="kaplan", n_starts=300, n_boot=0)
    assert np.exp(sub[2]) == pytest.approx(direct.E, abs=2e-3)
    with pytest.raises(FitError, match="weights have 5 columns"):
        refit_weighted(law, a["n"], a["d"], a["loss"], np.ones(5))


def test_joint_interval_carries_the_uncertainty_of_e():
    res = fit_loss_to_loss_table(_kaplan_table(), KAPLAN_COLS, n_starts=300, n_boot=200)
    fit, joint = res.fit, res.joint
    assert res.form == "kaplan" and res.interval == "joint" and joint.n_ok == 200
    # the Kaplan-form fits recover the shifts of Kaplan-form data (true 2.0, 0.8) to 0.03
    assert fit.E_x == pytest.approx(E_X, abs=0.03) and fit.E_y == pytest.approx(E_Y, abs=0.03)
    assert fit.kappa == pytest.approx(KAPPA, abs=0.05)
    # the joint interval holds the E-fixed one, is several times wider, and holds the true κ
    lo, hi = fit.kappa_ci
    assert joint.kappa_ci[0] < lo < hi < joint.kappa_ci[1]
    assert joint.kappa_ci[1] - joint.kappa_ci[0] > 3 * (hi - lo)
    assert joint.kappa_ci[0] < KAPPA < joint.kappa_ci[1]
    assert joint.E_x_ci[0] < E_X < joint.E_x_ci[1] and joint.E_y_ci[0] < E_Y < joint.E_y_ci[1]
    # the laws' intervals are the joint refits, row for row with the κ samples
    assert res.law_x.samples.shape == (200, 5)
    assert np.exp(res.law_x.samples[:, 2]) == pytest.approx(joint.samples[:, 2])
    assert res.translated.form == "kaplan" and res.translated.samples.shape == (200, 5)


def test_e_fixed_interval_and_refusals():
    t = _kaplan_table()
    res = fit_loss_to_loss_table(t, KAPLAN_COLS, interval="e-fixed", n_starts=300, n_boot=50)
    assert res.joint is None and res.interval == "e-fixed" and res.law_x.samples.shape[0] == 50
    given = fit_loss_to_loss_table(t, KAPLAN_COLS, E_x=E_X, E_y=E_Y, n_boot=20)  # no E to refit: E-fixed
    assert given.interval == "e-fixed"
    with pytest.raises(FitError, match="unknown interval 'both'"):
        fit_loss_to_loss_table(t, KAPLAN_COLS, interval="both")
    with pytest.raises(FitError, match="unknown scaling-law form 'power'"):
        fit_loss_to_loss_table(t, KAPLAN_COLS, form="power")


def test_law_cache_shares_the_shift_fits_between_pairs():
    t, cache = _kaplan_table(), {}
    ab = fit_loss_to_loss_table(t, KAPLAN_COLS, n_starts=300, n_boot=20, law_cache=cache)
    ba = fit_loss_to_loss_table(t, Columns("g", "n", "d", "b", "loss", "a", "loss"), n_starts=300, n_boot=20,
                                law_cache=cache)  # fmt: skip
    assert len(cache) == 2 and (ba.fit.E_x, ba.fit.E_y) == (ab.fit.E_y, ab.fit.E_x)


def test_cli_json_carries_both_intervals(tmp_path):
    table, out = tmp_path / "runs.csv", tmp_path / "l2l.json"
    _kaplan_table().to_csv(table, index=False)
    rc = main(["fit", "loss-to-loss", "--input", str(table), "--group-col", "g", "--n-col", "n", "--d-col", "d",
               "--x-group", "a", "--x-col", "loss", "--y-group", "b", "--y-col", "loss", "--n-starts", "300",
               "--n-boot", "50", "--json", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["form"] == "kaplan" and res["interval"] == "joint" and res["law_x"]["form"] == "kaplan"
    joint, fixed = res["intervals"]["joint"], res["intervals"]["e_fixed"]
    assert res["kappa_ci"] == joint["kappa_ci"] and res["E_x_ci"] == joint["E_x_ci"]
    assert joint["kappa_ci"][0] < fixed["kappa_ci"][0] < fixed["kappa_ci"][1] < joint["kappa_ci"][1]
    assert joint["n_ok"] == 50 and joint["seconds"] > 0


@pytest.fixture
def l2l_store(tmp_path) -> ResultsStore:
    """Two datasets a, b of five (N, D) models each; b's val_a loss is an exact loss-to-loss map of a's."""
    store = ResultsStore(tmp_path / "res")
    rng = np.random.default_rng(0)
    for ds in ("a", "b"):
        for i, (n, d) in enumerate([(1e6, 1e8), (2e6, 2e8), (4e6, 4e8), (8e6, 8e8), (16e6, 1e9)]):
            xa = E_X + 1.5 / (i + 1)
            la = xa if ds == "a" else K_TRUE * (xa - E_X) ** KAPPA + E_Y
            lb = la + 0.3 + 0.01 * rng.random()
            row = {"run_id": f"{ds}{i}", "dataset": ds, "n_params": int(n), "data_tokens": int(d),
                   "status": "completed", "eval_sets": ["val_a", "val_b"]}  # fmt: skip
            # the EWA loss falls to its final value at the last step; the raw loss is worse throughout
            curve = [{"step": s, "eval_set": es, "ewa_eval_loss": loss + (10 - s) * 0.1, "eval_loss": loss + 1}
                     for s in (0, 10) for es, loss in (("val_a", la), ("val_b", lb))]  # fmt: skip
            store.write_run(row, curve)
    return store


def test_loss_to_loss_from_a_results_store(l2l_store):
    table = final_loss_table(*l2l_store.tables())
    assert set(table.columns) >= {"dataset", "n_params", "data_tokens", "val_a", "val_b"}
    cols = Columns("dataset", "n_params", "data_tokens", "a", "val_a", "b", "val_a")
    fit = fit_loss_to_loss_table(table, cols, E_x=E_X, E_y=E_Y, n_boot=20).fit
    k_fit = fit.K
    assert fit.kappa == pytest.approx(KAPPA, abs=1e-9) and k_fit == pytest.approx(K_TRUE, rel=1e-9)


def test_cli_loss_to_loss_from_a_store(l2l_store, tmp_path):
    out = tmp_path / "l2l.json"
    rc = main(["fit", "loss-to-loss", str(l2l_store.root), "--x-group", "a", "--x-col", "val_a", "--y-group", "b",
               "--y-col", "val_a", "--E-x", str(E_X), "--E-y", str(E_Y), "--n-boot", "10", "--json", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["kappa"] == pytest.approx(KAPPA, abs=1e-9) and res["E_x_source"] == "given"
    assert (
        main(
            [
                "fit",
                "loss-to-loss",
                str(l2l_store.root),
                "--x-group",
                "a",
                "--x-col",
                "val_a",
                "--y-group",
                "b",
                "--y-col",
                "val_a",
                "--E-x",
                "2.5",
                "--E-y",
                str(E_Y),
            ]
        )
        == 2
    )  # fmt: skip  (E_x above a loss)


def test_public_fineweb_edu_to_starcoder(shared_data, tmp_path):
    src = shared_data / "loss_to_loss"
    out = tmp_path / "l2l.json"
    rc = main(["fit", "loss-to-loss", "--input", str(src / "sweep.csv"), "--group-col", "data", "--n-col", "params",
               "--d-col", "tokens", "--x-group", "fineweb-edu-100b", "--x-col", "val_loss", "--y-group", "starcoder",
               "--y-col", "val_loss", "--holdout", str(src / "extrapolation.csv"), "--n-starts", "500",
               "--n-boot", "100", "--json", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    # measured with the full 4500-start Kaplan-form fits (the same optimum from 500 starts): 80 compute-matched
    # pairs, E_x = 1.967, E_y = 0.845, κ = 1.100, R² = 0.998; the held-out 3.3B model's StarCoder loss is
    # predicted within 2.0%
    assert res["n_points"] == 80 and res["form"] == "kaplan"
    assert res["r2"] > 0.99
    assert res["E_x"] == pytest.approx(1.967, abs=1e-3) and res["E_y"] == pytest.approx(0.845, abs=1e-3)
    assert res["kappa"] == pytest.approx(1.100, abs=1e-3)
    assert res["holdout_mean_abs_rel_error"] < 0.05
    assert res["translated_law"]["alpha"] == pytest.approx(res["kappa"] * res["law_x"]["alpha"])
    # refitting E on every resample widens the κ interval several-fold (4500 starts, 1000 resamples:
    # 0.96–1.27 against 1.086–1.113 with E fixed)
    fixed, joint = res["intervals"]["e_fixed"]["kappa_ci"], res["kappa_ci"]
    assert joint[0] < fixed[0] < res["kappa"] < fixed[1] < joint[1]
    assert joint[1] - joint[0] > 5 * (fixed[1] - fixed[0])


def test_public_kaplan_and_chinchilla_shifts_differ_as_the_paper_says(shared_data):
    """The paper's κ/K tables use Kaplan-form E; Chinchilla-form E differ by ≈0.01–0.03 (DESIGN.md). On the
    released runs (4500 starts): FineWeb-Edu 1.967 vs 2.002, StarCoder 0.845 vs 0.863."""
    table = pd.read_csv(shared_data / "loss_to_loss" / "sweep.csv")
    for group, kaplan_e, gap in (("fineweb-edu-100b", 1.967, 0.035), ("starcoder", 0.845, 0.017)):
        rows = table[table["data"] == group]
        e = {form: fit_scaling_law(rows["params"], rows["tokens"], rows["val_loss"], form=form, n_starts=500,
                                   n_boot=0).E for form in ("kaplan", "chinchilla")}  # fmt: skip
        assert e["kaplan"] == pytest.approx(kaplan_e, abs=1e-3)
        assert e["chinchilla"] - e["kaplan"] == pytest.approx(gap, abs=2e-3)


def test_same_group_two_columns_is_train_to_test(shared_data):
    table = pd.read_csv(shared_data / "loss_to_loss" / "sweep.csv")
    cols = Columns("data", "params", "tokens", "fineweb-edu-100b", "val_loss", "fineweb-edu-100b",
                   "eval/c4_val/CrossEntropyLoss")  # fmt: skip
    res = fit_loss_to_loss_table(table, cols, n_starts=500, n_boot=0)
    assert res.fit.n_points == (table["data"] == "fineweb-edu-100b").sum()
    assert res.fit.r2 > 0.95
