"""The CBS study: B* grows with D, is flat in dim, and `cbs theory` writes a consistent report and store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cbs.cli import main
from cbs.errors import ConfigError
from cbs.fit import fit_power_law, steps_to_target_table
from cbs.results import ResultsStore
from cbs.theory import PowerLawProblem
from cbs.theory.study import default_grid
from cbs.theory.sweep import Grid, steps_to_target

BATCHES = [2**k for k in range(11)]
DATA_SIZES = [256, 512, 1024, 2048, 4096]
DIMS = [4, 16, 32, 64]
ARGS = [
    "theory", "--dim", "32", "--data-sizes", *map(str, DATA_SIZES), "--dims", *map(str, DIMS),
    "--dim-data-size", "512", "--batch-sizes", *map(str, BATCHES), "--n-boot", "200",
]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, ResultsStore]:
    out = tmp_path_factory.mktemp("theory")
    assert main([*ARGS, "--results", str(out / "store"), "--json", str(out / "report.json")]) == 0
    return json.loads((out / "report.json").read_text()), ResultsStore(out / "store")


def test_cbs_grows_with_data_size(study: tuple[dict, ResultsStore]) -> None:
    report, _ = study
    cbs = [row["cbs"] for row in report["cbs_by_data"]]
    assert [row["data_size"] for row in report["cbs_by_data"]] == DATA_SIZES
    assert np.all(np.diff(cbs) > 0), cbs
    assert report["exponent_data_ci"][0] > 0
    # a=2, b=4: corollary 0.5; at these small D the measured exponent is 0.55-0.6 (finite-D corrections,
    # docs/theory.md), so the tolerance is 0.15: it still rejects "no growth" (0) and "linear" (1)
    assert report["exponent_theory"] == pytest.approx(0.5)
    assert abs(report["exponent_data"] - report["exponent_theory"]) < 0.15


def test_json_fields_are_consistent(study: tuple[dict, ResultsStore]) -> None:
    """The report's exponent is the power law of its own B* per D; every B* lies in its interval."""
    report, _ = study
    for key in (
        "exponent_data",
        "exponent_data_ci",
        "exponent_theory",
        "cbs_by_data",
        "cbs_by_dim",
        "seconds",
    ):
        assert key in report
    for row in report["cbs_by_data"] + report["cbs_by_dim"]:
        lo, hi = row["cbs_ci"]
        assert lo <= row["cbs"] <= hi
        assert row["cbs"] == pytest.approx(1.2 * report["b_ref"] + 0.2 * row["b_noise"], rel=1e-9)
    law = fit_power_law(DATA_SIZES, [r["cbs"] for r in report["cbs_by_data"]], n_boot=200, seed=0)
    assert report["exponent_data"] == pytest.approx(law.exponent, rel=1e-9)
    lo, hi = report["exponent_data_ci"]
    assert lo < report["exponent_data"] < hi
    assert report["warnings"] == []  # dim 32 >= 4·k*(4096) = 4·8
    for row in report["cbs_by_data"]:  # the direct reading sits between the grid batches bracketing 1 + o
        batch, steps = np.array(row["batch_sizes"]), np.array(row["steps_to_target"])
        ratio = steps * batch / (steps[0] * batch[0])
        assert ratio[batch <= row["cbs_direct"]].max() <= 1.2 < ratio[batch > row["cbs_direct"]].min()
    assert np.all(np.diff([r["cbs_direct"] for r in report["cbs_by_data"]]) > 0)
    assert report["exponent_data_direct_ci"][0] > 0


def test_report_has_the_exact_and_estimated_noise_scale(study: tuple[dict, ResultsStore]) -> None:
    """`gns`: exact B_simple and the in-run estimator (256 sampled runs, the default) at the largest D, for
    the batch closest to that cell's B*; the estimator within 4 standard errors of the exact EMA'd value."""
    report, _ = study
    gns, last = report["gns"], report["cbs_by_data"][-1]
    assert (gns["dim"], gns["data_size"], gns["n_seeds"]) == (32, DATA_SIZES[-1], 256)
    closest = min(BATCHES[2:], key=lambda b: abs(np.log(b / last["cbs"])))
    assert gns["batch_size"] == closest and gns["b_small"] == closest // 4
    assert gns["steps"][-1] == DATA_SIZES[-1] // closest
    est, se = np.array(gns["b_simple_estimated"]), np.array(gns["b_simple_estimated_se"])
    assert np.all(np.abs(est - np.array(gns["b_simple_exact_ema"])) < 4 * se)
    np.testing.assert_allclose(gns["ratio"], est / np.array(gns["b_simple_exact"]))


def test_bad_gns_seeds_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--gns-seeds", "1"]) == 2
    assert "--gns-seeds 1" in capsys.readouterr().err


def test_cbs_flat_in_dim(study: tuple[dict, ResultsStore]) -> None:
    """Once dim >= 4 k*(D), B* changes by less than 2% across dims (k* = (D/σ²)^{1/b} ≈ 4.8 at D=512)."""
    report, _ = study
    flat = report["dim_flatness"]
    assert flat["dims"] == [d for d in DIMS if d >= 4 * report["effective_dim"]]
    assert len(flat["dims"]) >= 2
    assert flat["relative_change"] < 0.02


def test_report_and_store_agree(study: tuple[dict, ResultsStore], tmp_path: Path) -> None:
    """Every (dim, D) cell is stored once with one target; `cbs fit cbs STORE` reproduces the reported B*."""
    report, store = study
    rows = report["cbs_by_data"] + report["cbs_by_dim"]
    runs = store.runs()
    cells = {(r["dim"], r["data_size"]) for r in rows}
    assert len(runs) == len(cells) * len(BATCHES)
    assert set(zip(runs.n_params, runs.data_tokens, strict=True)) == cells
    assert set(runs.status) <= {"reached_target", "completed"}
    curves = store.curves()
    for _, group in runs.groupby(["n_params", "data_tokens"]):
        assert group.target_loss.nunique() == 1
        for _, run in group[group.status == "reached_target"].iterrows():
            curve = curves[curves.run_id == run.run_id]  # steps_to_target: first stored step at the target
            assert curve.step[curve.ewa_eval_loss <= run.target_loss].min() == run.steps_to_target
            assert (curve.tokens == curve.step * run.batch_size).all()
    assert (runs.reference_batch_size == report["b_ref"]).all()
    table = steps_to_target_table(*store.tables())  # B_ref read from the runs, as `cbs fit cbs` does
    for row in rows:
        cell = table[(table.n_params == row["dim"]) & (table.data_tokens == row["data_size"])].dropna(
            subset=["steps_to_target"]
        )
        assert cell.batch_size.tolist() == row["batch_sizes"]
        np.testing.assert_allclose(cell.steps_to_target, row["steps_to_target"], rtol=1e-12)
        # interpolated crossing lies within the step before the stored integer hit
        hits = runs.set_index("run_id").loc[cell.run_id, "steps_to_target"].to_numpy()
        assert np.all((cell.steps_to_target > hits - 1) & (cell.steps_to_target <= hits))
    out = tmp_path / "fit.json"
    args = [
        "fit",
        "cbs",
        str(store.root),
        "--n-boot",
        "200",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    fitted = {(g["n_params"], g["data_tokens"]): g["cbs"] for g in json.loads(out.read_text())["groups"]}
    for row in rows:
        assert fitted[(row["dim"], row["data_size"])] == pytest.approx(row["cbs"], rel=1e-9)
    assert (runs.ewa_tau < 1).all() and (runs.lr > 0).all()
    assert runs.preset.str.startswith("linreg-a2-b4-s1-dim").all()


def test_coarse_to_fine_matches_the_fine_grid() -> None:
    """The coarse-to-fine search finds the exhaustive √2-γ, ×2-window grid's steps-to-target (±2%)."""
    problem = PowerLawProblem(a=2.0, b=4.0, sigma=1.0, dim=16)
    coarse = default_grid()
    coarse = Grid(tuple(BATCHES[:9]), coarse.lrs, coarse.taus)
    fine = Grid(
        coarse.batch_sizes,
        tuple(2.0 ** (k / 2) for k in range(-24, 3)),
        tuple(1 - 2.0**-k for k in range(10)),
    )
    a, b = steps_to_target(problem, 512, coarse), steps_to_target(problem, 512, fine)
    assert a.target == pytest.approx(b.target, rel=1e-3)
    sa = np.array([r.steps_to_target for r in a.batches], dtype=float)
    sb = np.array([r.steps_to_target for r in b.batches], dtype=float)
    np.testing.assert_allclose(sa, sb, rtol=0.02)


def test_auto_dim_covers_the_effective_dimension() -> None:
    """Without --dim, the D sweep's dim is the smallest power of 2 >= 4·k*(max D) (at least 64)."""
    from cbs.theory.study import StudySpec

    assert StudySpec().dim == 64  # a=2, b=4: k*(2^15) = 13.5
    spec = StudySpec(a=1.5, b=2.5)  # k*(2^15) = 2^6
    assert spec.dim == 256 and spec.dim >= 4 * PowerLawProblem(1.5, 2.5).effective_dim(2**15) * (1 - 1e-12)


def test_store_of_another_problem_is_refused(
    study: tuple[dict, ResultsStore], capsys: pytest.CaptureFixture[str]
) -> None:
    """Writing a = 1.5 runs into the a = 2 store would mix groups: refused before anything runs."""
    _, store = study
    before = len(store.run_ids())
    assert main(["theory", "--a", "1.5", "--results", str(store.root)]) == 2
    assert "already holds theory runs" in capsys.readouterr().err
    assert len(store.run_ids()) == before


def test_a_grid_too_small_for_the_cbs_warns() -> None:
    """Batch sizes up to 32 while B* ≈ 40–500: the fitted k (≈ 1.8 against 0.5) must say it is extrapolated."""
    from cbs.theory.study import StudySpec, run_study

    grid = default_grid()
    spec = StudySpec(dim=32, data_sizes=(256, 512, 1024), dims=(4, 8), dim_data_size=256, n_boot=20,
                     grid=Grid((1, 2, 4, 8, 16, 32), grid.lrs, grid.taus))  # fmt: skip
    report = run_study(spec).to_dict()
    codes = {w["code"]: w for w in report["warnings"]}
    assert set(codes) == {"b_noise_beyond_grid", "exponent_outside_grid"}
    assert codes["b_noise_beyond_grid"]["largest_batch_size"] == 32
    assert codes["exponent_outside_grid"]["data_sizes_outside"] == [256, 512, 1024]
    assert abs(report["exponent_data"] - report["exponent_theory"]) > 0.3  # the number it warns about
    for row in report["cbs_by_data"]:
        assert "cbs_outside_grid" in [w["code"] for w in row["warnings"]] and row["cbs"] > 32


def test_a_grid_without_a_stable_step_size_is_refused() -> None:
    problem = PowerLawProblem(a=2.0, b=4.0, sigma=1.0, dim=16)
    with pytest.raises(ConfigError, match=r"no step size in the grid is stable at B=\[1\.0\]; add smaller"):
        steps_to_target(problem, 512, Grid((1, 2, 4), (1e3,), (0.0,)))
