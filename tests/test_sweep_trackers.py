"""Experiment trackers: a real tiny sweep logs to TensorBoard event files, an offline W&B run and a local
MLflow file store, each trial named and tagged by its run id and cell; bad tracker names fail before Ray."""

from __future__ import annotations

import pytest
from rich.console import Console
from test_sweep_spec import make_dataset, spec_dict

from cbs.cli import main
from cbs.errors import ConfigError
from cbs.results import ResultsStore
from cbs.sweep import parse_spec, plan_sweep, run_sweep
from cbs.sweep.cluster import ray_session


def test_unknown_tracker_is_refused_in_the_spec_and_the_cli(tmp_path, capsys):
    with pytest.raises(
        ConfigError, match="unknown tracker 'neptune'; known trackers: tensorboard, wandb, mlflow"
    ):
        parse_spec(spec_dict(tmp_path, trackers=["neptune"]))
    assert main(["sweep", "experiments/default.yaml", "--tracker", "comet", "--results", str(tmp_path)]) == 2
    assert "unknown tracker 'comet'" in capsys.readouterr().err
    assert not (tmp_path / ".ray").exists()  # refused before Ray started


@pytest.mark.slow
def test_trackers_write_offline_runs(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = make_dataset(tmp_path)
    spec = parse_spec(
        {
            **spec_dict(data, trackers=["tensorboard", "mlflow"]),
            "grid": {"batch_size": [2, 4], "optim.lr": [1e-2]},
        }
    )
    plan = plan_sweep(spec)
    results = tmp_path / "results"
    with ray_session(num_cpus=2):
        outcome = run_sweep(plan, results, console=Console(quiet=True), trackers=["wandb"])
    ids = {t.run_id for t in plan.trials}
    assert (
        set(outcome.ran) == ids and set(ResultsStore(results).runs()["run_id"]) == ids
    )  # the store is intact
    cells = {t.run_id: t.cell.label for t in plan.trials}

    # TensorBoard: event files per run id, kept outside the Ray folder (removed once the sweep is complete)
    assert not (results / ".ray").exists()
    for run_id in ids:
        assert list((results / "tensorboard" / run_id).glob("*events.out.tfevents.*")), run_id

    # W&B: one offline run per trial
    offline = list((results / "wandb").glob("offline-run-*"))
    assert len(offline) == len(ids)

    # MLflow: a local file store, one run per trial with its run id and cell as tags and the config as params
    mlflow.set_tracking_uri((results / "mlruns").as_uri())
    runs = mlflow.search_runs(experiment_names=["t"], output_format="list")
    assert {r.data.tags["run_id"] for r in runs} == ids
    for r in runs:
        assert r.data.tags["cell"] == cells[r.data.tags["run_id"]]
        assert r.data.params["params/train/batch_size"] in {"2", "4"}
        assert "ewa_eval_loss" in r.data.metrics
