"""The one cell key (cbs.results.cell): what it keeps apart (dataset, optimizer, model, D) and what it pools
(seeds, batch sizes, lr), the same in the sweep plan, the summary, steps-to-target and the CBS fit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from test_fit_cbs_table import _table
from test_sweep_spec import make_dataset, spec_dict

from cbs.config import DataConfig
from cbs.fit import fit_cbs_table, steps_to_target_table
from cbs.results import ResultsStore
from cbs.results.cell import CELL_KEYS, Cell, cell_columns, optimizer_name
from cbs.sweep import parse_spec, plan_sweep, summarize
from cbs.train import resolve_config


def _run(store: ResultsStore, run_id: str, batch: int, losses: list[float], **row: object) -> None:
    """A completed 'tiny' run at D = 1e8 on dataset 'aaa', evaluated every 100 steps; ``row`` overrides."""
    full = {
        "run_id": run_id, "preset": "tiny", "n_params": 10**6, "batch_size": batch, "lr": 1e-3, "beta2": 0.99,
        "ewa_tau": 0.999, "token_budget": 10**8, "tokens": 10**8, "data_tokens": 10**8, "eval_sets": ["val"],
        "status": "completed", "dataset_fingerprint": "aaa", "seed": 0, "best_ewa_eval_loss": min(losses),
        **row,
    }  # fmt: skip
    curve = [{"step": 100 * i, "eval_set": "val", "ewa_eval_loss": x} for i, x in enumerate(losses)]
    store.write_run(full, curve)


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    """Two datasets at the same preset and D (B_opt = 256 sets each one's target), and a second seed of 'aaa'."""
    st = ResultsStore(tmp_path / "results")
    _run(st, "a256", 256, [4.0, 3.0, 2.0])  # target of 'aaa': 2.0, at step 200
    _run(st, "a128", 128, [4.0, 3.0, 2.5, 2.0])  # reaches 2.0 at step 300
    _run(st, "a256s1", 256, [4.0, 2.5, 1.9], seed=1)  # a replicate: the cell's target becomes 1.9
    _run(st, "b256", 256, [4.0, 3.5, 3.0], dataset_fingerprint="bbb")  # target of 'bbb': 3.0
    _run(st, "b128", 128, [4.0, 3.6, 3.0], dataset_fingerprint="bbb")  # reaches 3.0 at step 200
    return st


def test_two_datasets_at_one_preset_and_d_are_two_groups(store):
    table = steps_to_target_table(*store.tables(), b_opt=256)
    by = table.set_index(["dataset", "batch_size"])
    assert sorted(table["dataset"].unique()) == ["aaa", "bbb"]
    assert by.loc[("bbb", 256), "target_loss"] == 3.0  # pooled, 'aaa' would have set 1.9 for both
    assert by.loc[("bbb", 128), "steps_to_target"] == 200.0
    # the fit keeps them apart too, and says which group is which
    steps = pd.concat([_table().assign(dataset="aaa"), _table().assign(dataset="bbb")])
    analysis = fit_cbs_table(steps, n_boot=10)
    assert len(analysis.groups) == 2 * len(_table().groupby(["model", "data_tokens"]))
    assert {g.dataset for g in analysis.groups} == {"aaa", "bbb"}
    assert set(analysis.to_frame()["dataset"]) == {"aaa", "bbb"}
    assert {g["dataset"] for g in analysis.to_dict()["groups"]} == {"aaa", "bbb"}


def test_seeds_are_replicates_of_one_cell(store):
    table = steps_to_target_table(*store.tables(), b_opt=256)
    aaa = table[table["dataset"] == "aaa"].set_index(["batch_size", "seed"])
    assert sorted(aaa.index) == [(128, 0), (256, 0), (256, 1)]  # one group, a row per (B, seed) replicate
    assert (aaa["target_loss"] == 1.9).all()  # the best B_opt loss over both seeds sets the one target
    assert aaa.loc[(256, 1), "run_id"] == "a256s1" and aaa.loc[(256, 1), "steps_to_target"] == 200
    assert aaa.loc[[(128, 0), (256, 0)], "steps_to_target"].isna().all()  # seed 0 never reaches 1.9
    cells = summarize(store.runs()).cells.set_index("dataset")
    assert cells.loc["aaa", "runs"] == 3 and cells.loc["aaa", "seeds"] == 2
    assert cells.loc["bbb", "seeds"] == 1


def test_optimizer_is_part_of_the_cell(store):
    muon = json.dumps({"optim": {"name": "muon"}})
    _run(store, "m256", 256, [4.0, 3.0, 2.2], config_json=muon)
    table = steps_to_target_table(*store.tables(), b_opt=256)
    assert set(table["optimizer"]) == {"adamw", "muon"}
    assert table.set_index("optimizer").loc["muon", "target_loss"] == 2.2
    assert optimizer_name({"config_json": muon}) == "muon"
    assert optimizer_name({"optimizer": "sgd", "config_json": muon}) == "sgd"  # a column wins
    assert optimizer_name({"config_json": "{}"}) == optimizer_name({}) == "adamw"
    # a steps table without the column (e.g. a CSV) is one optimizer, AdamW, to the fit
    assert {g.optimizer for g in fit_cbs_table(_table(), n_boot=5).groups} == {"adamw"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path]:
    return make_dataset(tmp_path_factory.mktemp("a")), make_dataset(tmp_path_factory.mktemp("b"))


def test_sweep_plan_cells_are_the_stored_rows_cells(datasets):
    """The plan's cell of a grid point is the cell `cell_columns` reads back from its stored row; seeds share
    it, a second dataset does not."""
    first, _ = datasets
    spec = parse_spec(
        spec_dict(first, grid={"batch_size": [2, 4], "seed": [0, 1]}, target={"reference_batch_size": 4})
    )
    plan = plan_sweep(spec)
    assert len({t.cell for t in plan.trials}) == 1  # batch size and seed do not make a cell
    t = plan.budget[0]
    run = resolve_config(t.config)
    row = {"preset": run.spec.preset, "n_params": run.spec.n_params, "data_tokens": run.data_tokens,
           "token_budget": run.token_budget, "dataset_fingerprint": run.dataset.fingerprint,
           "config_json": json.dumps(t.config.to_dict())}  # fmt: skip
    read_back = cell_columns(pd.DataFrame([row])).iloc[0]
    assert Cell(**{k: read_back[k] for k in CELL_KEYS}) == t.cell


def test_the_dataset_counts_by_its_fingerprint_not_its_path(datasets):
    """Two copies of one dataset (same fingerprint) are one cell wherever they lie; a folder without a manifest
    counts by its path, so two such folders are two cells."""
    first, second = datasets
    one = plan_sweep(parse_spec(spec_dict(first))).trials[0]
    copy = plan_sweep(parse_spec(spec_dict(second))).trials[0]  # make_dataset is deterministic
    assert one.cell == copy.cell and one.cell.dataset == resolve_config(one.config).dataset.fingerprint
    bare = [
        dataclasses.replace(one.config, data=DataConfig(path=str(p))) for p in (first.parent, second.parent)
    ]
    cells = {Cell.of_config(c, one.n_params, one.data_tokens) for c in bare}
    assert {c.dataset for c in cells} == {str(first.parent), str(second.parent)}
