"""Steps-to-target on a tiny hand-made results store: the target rule, the interpolated first crossing on the
primary eval set's EWA loss, the minimum over other hyper-parameters, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cbs.errors import FitError
from cbs.fit import first_crossing, steps_to_target_table
from cbs.results import ResultsStore


def _run(
    store, run_id, batch, lr, steps, ewa, *, preset="tiny", data_tokens=10**8, target=None, budget=10**8,
    reference=None, optimizer=None, seed=None,
):  # fmt: skip
    row = {
        "run_id": run_id, "preset": preset, "n_params": 10**6, "batch_size": batch, "lr": lr,
        "beta2": 0.99, "ewa_tau": 0.999, "token_budget": budget, "data_tokens": data_tokens,
        "eval_sets": ["val", "other"], "target_loss": target, "status": "completed",
        "reference_batch_size": reference, "optimizer": optimizer, "seed": seed,
    }  # fmt: skip
    curve = []
    for s, loss in zip(steps, ewa, strict=True):
        # raw-weight loss is worse, and the secondary set is far lower: neither may be used
        curve.append({"step": s, "eval_set": "val", "ewa_eval_loss": loss, "eval_loss": loss + 0.5})
        curve.append({"step": s, "eval_set": "other", "ewa_eval_loss": 0.1, "eval_loss": 0.1})
    store.write_run(row, curve)


@pytest.fixture
def store(tmp_path):
    st = ResultsStore(tmp_path / "results")
    _run(st, "b256a", 256, 1e-3, [0, 100, 200, 300], [4.0, 3.0, 2.5, 2.0])  # best at B_opt: target 2.0
    _run(st, "b256b", 256, 3e-3, [0, 100, 200, 300], [4.0, 2.8, 2.2, 2.1])  # never reaches 2.0
    _run(st, "b128", 128, 1e-3, [0, 200, 400, 600], [4.0, 3.0, 2.4, 1.9])  # 400 + 0.4/0.5·200 = 560
    _run(st, "b512a", 512, 1e-3, [0, 50, 100, 150], [4.0, 2.6, 2.1, 1.95])  # 100 + 0.1/0.15·50 = 133.3
    _run(st, "b512b", 512, 2e-3, [0, 50, 100, 150], [4.0, 2.5, 1.9, 1.8])  # 50 + 0.5/0.6·50 = 91.67
    _run(st, "b1024", 1024, 1e-3, [0, 25, 50], [4.0, 3.0, 2.5])  # never reached
    # a second group: its runs share a target_loss, and data_tokens is null so token_budget groups them
    for batch, s in ((64, 40.0), (256, 20.0)):
        _run(st, f"g2_{batch}", batch, 1e-3, [0, s, 2 * s], [3.0, 2.0, 1.0], preset="small", data_tokens=None,
             target=1.5, budget=5 * 10**7)  # fmt: skip
    return st


def test_first_crossing_interpolates_between_evaluations():
    steps, losses = np.array([0.0, 10.0, 20.0, 30.0]), np.array([4.0, 3.0, 2.5, 2.0])
    assert first_crossing(steps, losses, 2.75) == pytest.approx(15.0)
    assert first_crossing(steps, losses, 2.0) == pytest.approx(30.0)
    assert first_crossing(steps, losses, 5.0) == 0.0  # already below at the first evaluation
    assert math.isnan(first_crossing(steps, losses, 1.0))


def test_table_from_store(store):
    table = steps_to_target_table(*store.tables(), b_opt=256)
    tiny = table[table["model"] == "tiny"].set_index("batch_size")
    assert (tiny["target_loss"] == 2.0).all()
    assert tiny.loc[128, "steps_to_target"] == pytest.approx(560.0)
    assert tiny.loc[256, "steps_to_target"] == pytest.approx(300.0)
    assert tiny.loc[256, "run_id"] == "b256a"
    assert tiny.loc[512, "steps_to_target"] == pytest.approx(91.0 + 2.0 / 3.0)  # the faster lr wins
    assert tiny.loc[512, "lr"] == 2e-3 and tiny.loc[512, "run_id"] == "b512b"
    assert math.isnan(tiny.loc[1024, "steps_to_target"]) and pd.isna(tiny.loc[1024, "run_id"])
    small = table[table["model"] == "small"].set_index("batch_size")
    assert (small["data_tokens"] == 5 * 10**7).all()  # token_budget stands in for a null data_tokens
    assert (small["target_loss"] == 1.5).all()  # the runs' shared target_loss, not the B_opt rule
    assert small.loc[64, "steps_to_target"] == pytest.approx(60.0)  # 40 + 0.5/1.0·40
    # the fit takes tables, never a store or a path: a path is a TypeError that names the adapter
    with pytest.raises(TypeError, match=r"ResultsStore\(path\)\.tables\(\)"):
        steps_to_target_table(str(store.root), store.curves())


def test_explicit_targets_and_eval_set(store):
    table = steps_to_target_table(*store.tables(), target=2.5)
    assert table.set_index(["model", "batch_size"]).loc[("tiny", 256), "steps_to_target"] == pytest.approx(
        100 + 0.3 / 0.6 * 100  # b256b: 2.8 → 2.2 crosses 2.5 first
    )
    other = steps_to_target_table(*store.tables(), target=2.5, eval_set="other")
    assert (other["steps_to_target"] == 0.0).all()


def test_b_opt_rule_needs_a_b_opt_run(store):
    with pytest.raises(FitError, match="no evaluated run at B_opt=512"):
        steps_to_target_table(*store.tables(), b_opt=512, target="b-opt")  # group "small" has no 512 run


def test_empty_store_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FitError, match="no runs"):
        steps_to_target_table(*ResultsStore(tmp_path / "empty").tables())


def test_reference_batch_comes_from_the_runs_unless_given(tmp_path):
    """A sweep records each cell's B_opt; the table (and so `cbs fit cbs`) uses it, --b-opt overrides it."""
    st = ResultsStore(tmp_path / "results")
    for batch, loss_at_end in ((64, 2.0), (128, 1.8), (256, 1.9)):
        _run(st, f"r{batch}", batch, 1e-3, [0, 100, 200], [4.0, 3.0, loss_at_end], reference=128)
    recorded = steps_to_target_table(*st.tables())
    assert (recorded["b_opt"] == 128).all() and (recorded["target_loss"] == 1.8).all()
    given = steps_to_target_table(*st.tables(), b_opt=256)
    assert (given["b_opt"] == 256).all() and (given["target_loss"] == 1.9).all()


def test_table_keeps_what_the_diagnostics_need(store):
    """Per batch size: the ends of the lr grid its runs tried, their lowest best and first losses; and so the
    diagnostics flag the lr on the edge (B = 512: 2e-3 of {1e-3, 2e-3}; B = 256: 1e-3 sets the target)."""
    from cbs.fit import diagnose_group

    table = steps_to_target_table(*store.tables(), b_opt=256).query("model == 'tiny'")
    tiny = table.set_index("batch_size")
    assert tiny.loc[512, ["lr_grid_min", "lr_grid_max"]].tolist() == [1e-3, 2e-3]
    assert tiny.loc[128, "lr_grid_min"] == tiny.loc[128, "lr_grid_max"] == 1e-3
    assert tiny.loc[256, "best_loss"] == 2.0 and tiny.loc[1024, "best_loss"] == 2.5
    assert (tiny["initial_loss"] == 4.0).all() and (tiny["beta2_grid_min"] == 0.99).all()
    warnings = diagnose_group(table, None, 256.0)  # the fit itself is refused here (S_min = 0)
    edges = {e["batch_size"]: e for w in warnings if w.code == "lr_edge" for e in w.values["edges"]}
    assert set(edges) == {256.0, 512.0} and edges[512.0]["edge"] == "top"
    assert edges[256.0]["edge"] == "bottom" and edges[256.0]["sets_target"]


def test_optimizers_are_separate_groups_with_their_own_targets(tmp_path):
    st = ResultsStore(tmp_path / "results")
    _run(st, "adam256", 256, 1e-3, [0, 100, 200], [4.0, 3.0, 2.0])  # stored before the axis: no optimizer
    _run(st, "adam512", 512, 1e-3, [0, 50, 100], [4.0, 3.0, 2.0])
    _run(st, "lion256", 256, 1e-3, [0, 50, 100], [4.0, 3.0, 2.5], optimizer="lion")
    _run(st, "lion512", 512, 1e-3, [0, 50, 100], [4.0, 2.5, 2.4], optimizer="lion")
    table = steps_to_target_table(*st.tables(), b_opt=256)
    by = table.set_index(["optimizer", "batch_size"])
    assert sorted(table["optimizer"].unique()) == ["adamw", "lion"]  # the null optimizer reads as adamw
    assert by.loc[("adamw", 256), "target_loss"] == 2.0 and by.loc[("lion", 256), "target_loss"] == 2.5
    assert by.loc[("lion", 512), "steps_to_target"] == pytest.approx(50.0)  # lion's own target, 2.5
