"""The three CBS measures inside `cbs fit cbs` (cbs.fit.measures): B_simple and its fallback run and interval,
the branched B* per branch point, their costs, the JSON round trip, the `measures` figure drawn from the
result object alone, and a store without GNS (the measure is None with the reason, not an error).

A synthetic store (test_plots_synthetic: S(B) known, no training): one cell, B ∈ {64, …, 2048}, B_opt = 256;
in-run B_simple = 100 + step where a run logs it; branches off the best B_opt run at 0.25 and 0.5 whose
smoothed losses give a known k*.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_plots_synthetic import B_OPT, LRS, SEQ_LEN, make_run

from cbs.cli import main
from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.fit.cbs_laws import CbsAnalysis
from cbs.fit.measure_results import NO_STORE, measures_frame
from cbs.fit.measures import NO_GNS, group_measures
from cbs.fit.result import as_json
from cbs.fit.store_fits import StoreFits
from cbs.fit.tables import write_json
from cbs.plots.measures import measures_figure
from cbs.plots.registry import make_store_figures
from cbs.results import ResultsStore

N, D = 100_000, 2_000_000
BATCHES = (64, 128, 256, 512, 1024, 2048)
FPT = 6.0 * N
BEST_LR = 1e-3  # make_run's fastest lr
PARENT = f"syn-{N}-{D}-{B_OPT}-{BEST_LR:g}"
# branch point -> smoothed-loss offsets per k (EMA 0.5 over two evaluations): k* = 2 at 0.25, 4 at 0.5
BRANCH_LOSS = {0.25: {1: 0.0, 2: 0.005, 4: 0.05}, 0.5: {1: 0.0, 2: 0.002, 4: 0.008}}


def b_simple_of(step: object) -> object:
    return 100.0 + np.asarray(step, dtype=float)


def write_measured_store(root: Path, gns_batches: tuple[int, ...], branches: bool = True) -> ResultsStore:
    """The synthetic grid, B_simple logged by the runs at ``gns_batches``, and (optionally) the branches."""
    store = ResultsStore(root)
    for batch in BATCHES:
        for lr in LRS:
            row, curve = make_run(N, D, batch, lr, preset="tiny-100k", eval_set="val")
            row |= {"flops_per_token": FPT, "wall_time_s": 0.01 * row["steps"]}
            for point in curve:
                point["wall_time_s"] = 0.01 * point["step"]
                if batch in gns_batches:
                    point["b_simple"] = float(b_simple_of(point["step"]))
            store.write_run(row, curve)
    for fraction, offsets in BRANCH_LOSS.items() if branches else ():
        for k, offset in offsets.items():
            run_id = f"branch-{fraction:g}-{k}"
            row = {
                "run_id": run_id,
                "preset": "tiny-100k",
                "n_params": N,
                "data_tokens": D,
                "seq_len": SEQ_LEN,
                "batch_size": k * B_OPT,
                "lr": BEST_LR,
                "eval_sets": ["val"],
                "seed": 0,
                "status": "completed",
                "steps": 4,
                "tokens": 4
                * B_OPT
                * SEQ_LEN,  # the same Δ tokens for every k (k·B over fewer steps, in truth)
                "flops_per_token": FPT,
                "wall_time_s": 1.0 * k,
                "parent_run_id": PARENT,
                "branch_fraction": fraction,
                "branch_step": int(fraction * 100),
                "branch_k": k,
            }
            curve = [
                {"step": s, "tokens": s * k * B_OPT * SEQ_LEN, "eval_set": "val", "eval_loss": 3.0 + offset}
                for s in (2, 4)
            ]
            store.write_run(row, curve)
    return store


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> StoreFits:
    """Reference B_opt = 256 without GNS (one sequence per step, say); B = 64 without; 128 and 512 with."""
    store = write_measured_store(tmp_path_factory.mktemp("store"), gns_batches=(128, 512))
    return StoreFits(store, n_boot=20)


def test_b_simple_falls_back_to_the_smallest_batch_size_that_logged_it(fitted):
    (g,) = fitted.analysis.groups
    s = g.measures.b_simple
    steps = fitted.table.set_index("batch_size")
    assert s.batch_size == 128 and not s.reference and s.run_id == steps.loc[128, "run_id"]
    # read at the first evaluation at or after that run's steps-to-target, with its tokens up to there
    target = steps.loc[128, "steps_to_target"]
    curve = fitted.curves[fitted.curves.run_id == s.run_id].sort_values("step")
    first = curve[curve.step >= target].iloc[0]
    assert s.target_step == target and s.step == first.step and s.value == b_simple_of(first.step)
    assert s.cost.tokens == first.tokens and s.cost.flops == first.tokens * FPT
    # the interval is the range over the evaluations in [s*/2, 2 s*], and brackets the value
    window = curve[(curve.step >= target / 2) & (curve.step <= 2 * target)]
    assert s.ci == (b_simple_of(window.step.min()), b_simple_of(window.step.max()))
    assert s.ci[0] < s.value < s.ci[1] and s.n_evaluations == len(window) >= 2
    why = "the reference B=256 run and B=64 logged no b_simple at or after the target step"
    assert g.measures.b_simple_note == why
    row = measures_frame([g]).iloc[-1]
    assert row.note == f"{s.source}; {why}" and s.source.startswith(
        f"B=128 run {s.run_id[:8]}, step {s.step}"
    )  # says why the reference run was not used


def test_the_reference_run_gives_b_simple_when_it_logged_it(tmp_path):
    store = write_measured_store(tmp_path, gns_batches=(64, 256), branches=False)
    steps = steps_to_target_table(*store.tables())
    ((_, m),) = group_measures(*store.tables(), steps).items()
    assert m.b_simple.reference and m.b_simple.batch_size == B_OPT and m.b_simple_note == ""
    assert m.branched == []


def test_branched_measures_and_costs_per_branch_point(fitted):
    (g,) = fitted.analysis.groups
    m = g.measures
    assert [(b.fraction, b.k_star, b.cbs, b.cbs_ci) for b in m.branched] == [
        (0.25, 2, 2 * B_OPT, (2 * B_OPT, 4 * B_OPT)),
        (0.5, 4, 4 * B_OPT, (4 * B_OPT, math.inf)),
    ]
    runs = fitted.store.runs()
    for b in m.branched:
        mine = runs[runs.branch_fraction == b.fraction]
        assert b.cost.tokens == mine.tokens.sum() and b.cost.wall_time_s == mine.wall_time_s.sum()
        assert b.cost.n_runs == 3 and b.parent_run_id == PARENT and b.batch_size == B_OPT
    grid = runs[runs.parent_run_id.isna()]
    assert m.steps_cost.tokens == grid.tokens.sum() and m.steps_cost.n_runs == len(grid)
    assert m.steps_cost.flops == pytest.approx(grid.tokens.sum() * FPT)


def test_fit_json_carries_the_measures_and_round_trips(fitted, tmp_path):
    analysis = fitted.analysis
    path = tmp_path / "fit.json"
    write_json(path, analysis.to_dict())
    data = json.loads(path.read_text())
    (group,) = data["groups"]
    assert group["b_simple"]["value"] == analysis.groups[0].measures.b_simple.value
    assert group["b_simple"]["ci"] == list(analysis.groups[0].measures.b_simple.ci)
    assert [b["k_star"] for b in group["branched"]] == [2, 4] and group["branched"][1]["cbs_ci"][1] is None
    assert group["steps_to_target_cost"]["tokens"] == analysis.groups[0].measures.steps_cost.tokens
    back = CbsAnalysis.from_dict(data)
    assert back.groups[0].measures == analysis.groups[0].measures
    assert as_json(back.to_dict()) == data
    # the report and its Markdown show measure, value, interval and cost side by side
    for text in (analysis.report(width=200), analysis.markdown()):
        assert (
            "branched@0.25 (B=256)" in text
            and "b_simple" in text
            and f"{group['b_simple']['value']:.4g}" in text
        )


def test_a_steps_table_fit_has_no_measures_and_says_so(fitted):
    analysis = fit_cbs_table(fitted.table, n_boot=20)
    assert analysis.groups[0].measures is None
    assert NO_STORE in analysis.report(width=200) and measures_frame(analysis.groups).empty
    data = analysis.to_dict()["groups"][0]
    assert data["b_simple"] is None and data["branched"] is None and data["b_simple_note"] == NO_STORE
    assert CbsAnalysis.from_dict(analysis.to_dict()).groups[0].measures is None


def test_a_store_without_gns_has_no_b_simple_and_gives_the_reason(tmp_path):
    store = write_measured_store(tmp_path, gns_batches=(), branches=False)
    src = StoreFits(store, n_boot=20)
    (g,) = src.analysis.groups  # no exception: the fit is there, B_simple is not
    assert g.fit is not None and g.measures.b_simple is None and g.measures.b_simple_note == NO_GNS
    row = measures_frame(src.analysis.groups).iloc[-1]
    assert row.measure == "b_simple" and math.isnan(row.value) and row.note == NO_GNS
    made, skipped = make_store_figures(src, tmp_path / "fig", ["measures"], ("png",), strict=False)
    assert made == [] and "no group has a B_simple value or branched estimate" in skipped[0].reason


def test_measures_figure_draws_the_result_object_without_refitting(fitted, tmp_path, monkeypatch):
    data = as_json(fitted.analysis.to_dict())

    def refuse(*args, **kwargs):
        raise AssertionError("the figure must not fit or measure")

    for name in ("group_measures", "fit_cbs_table", "branched_table", "steps_to_target_table"):
        monkeypatch.setattr(f"cbs.fit.measures.{name}", refuse)
    monkeypatch.setattr("cbs.fit.store_fits.fit_store_cbs", refuse)
    src = StoreFits(fitted.store, fitted=CbsAnalysis.from_dict(data))
    made, skipped = make_store_figures(src, tmp_path, ["measures"], ("png",), strict=True)
    assert [m.name for m in made] == ["measures"] and made[0].paths[0].stat().st_size > 0
    (g,) = src.analysis.groups
    fig = measures_figure(src.analysis.groups)
    lines = {a.get_gid(): a for ax in fig.axes for a in ax.get_lines() if a.get_gid()}
    assert lines["steps:0"].get_ydata()[0] == g.fit.cbs
    assert lines["b_noise:0"].get_ydata()[0] == g.fit.b_noise
    s = g.measures.b_simple
    assert lines["b_simple:0"].get_ydata()[0] == s.value
    assert list(lines["b_simple:0:bar"].get_ydata()) == list(s.ci)
    assert lines["branched:0:0.25"].get_ydata()[0] == 2 * B_OPT
    assert list(lines["over-training:0"].get_xdata()) == [0.25, 0.5]
    assert list(lines["over-training:0"].get_ydata()) == [2 * B_OPT, 4 * B_OPT]


def test_cli_fit_cbs_writes_the_measures_to_json_and_markdown(fitted, tmp_path, capsys):
    out, md = tmp_path / "fit.json", tmp_path / "fit.md"
    args = ["fit", "cbs", str(fitted.store.root), "--n-boot", "20", "--json", str(out), "--markdown", str(md)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "three measures" in printed and "branched@0.5 (B=256)" in printed
    (group,) = json.loads(out.read_text())["groups"]
    assert group["b_simple"]["batch_size"] == 128 and len(group["branched"]) == 2
    assert "branched@0.25 (B=256)" in md.read_text()
    figures = tmp_path / "figures"  # the figure from that JSON alone
    assert main(["figures", "measures", "--input", str(out), "--out", str(figures), "--format", "png"]) == 0
    assert (figures / "measures.png").stat().st_size > 5_000
    steps = tmp_path / "steps.parquet"
    fitted.table.to_parquet(steps)
    assert main(["fit", "cbs", "--input", str(steps), "--n-boot", "20"]) == 0
    assert NO_STORE in capsys.readouterr().out


@pytest.mark.slow  # three tiny training runs on the CPU: about 15 s
def test_real_runs_with_micro_batches_give_b_simple_from_the_smallest_gns_batch(tmp_path, one_thread):
    """B_opt = 1 (the CPU specs): one sequence per step logs no GNS; B = 2 and 4 with micro-batches of 1 do, and
    B_simple is read from B = 2 at its target step, as the curves hold it."""
    from test_sweep_spec import make_dataset
    from test_train_run import train_into

    from cbs.config import TrainConfig

    (tmp_path / "data").mkdir()
    data = make_dataset(tmp_path / "data")
    store = ResultsStore(tmp_path / "results")
    for batch in (1, 2, 4):
        cfg = {
            "model": {"preset": "tiny-16k"},
            "data": {"path": str(data)},
            "token_budget": 8192 if batch == 1 else 32768,  # the larger batches get the steps to reach it
            "data_tokens": 8192,
            "device": "cpu",
            "eval": {"n_log": 8, "n_dense": 8, "eval_tokens": 1024},
            "batch_size": batch,
            "micro_batch_size": 1,
            "reference_batch_size": 1,
        }
        train_into(store, TrainConfig.from_dict(cfg))
    runs, curves = store.tables()
    by_batch = runs.set_index("batch_size").run_id
    assert curves[curves.run_id == by_batch[1]].b_simple.isna().all()
    steps = steps_to_target_table(runs, curves)
    ((_, m),) = group_measures(runs, curves, steps).items()
    s = m.b_simple
    assert s.batch_size == 2 and s.run_id == by_batch[2] and "reference B=1" in m.b_simple_note
    own = curves[(curves.run_id == s.run_id) & (curves.step == s.step)]
    assert s.value == own.b_simple.iloc[0] and s.ci[0] <= s.value <= s.ci[1]
