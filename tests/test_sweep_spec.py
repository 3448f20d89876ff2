"""Sweep specs without Ray: parsing, strict keys, grid expansion, CBS phases, validation errors, dry runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbs.cli import main
from cbs.data import ByteTokenizer, prepare_dataset
from cbs.data.sources import file_documents
from cbs.errors import CbsError, ConfigError
from cbs.model import resolve_model_config
from cbs.protocol import paper_ewa_tau
from cbs.sweep import Resources, load_spec, parse_spec, plan_sweep
from cbs.sweep.cluster import check_resources

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "experiments").glob("*.yaml"))


def make_dataset(root: Path) -> Path:
    """A small byte-level dataset (~400k tokens) prepared from a few local text files."""
    rng = np.random.default_rng(0)
    words = [
        "critical",
        "batch",
        "size",
        "scales",
        "with",
        "data",
        "not",
        "model",
        "loss",
        "step",
        "the",
        "a",
    ]
    for i in range(40):
        (root / f"doc{i}.txt").write_text(" ".join(rng.choice(words, size=2000)) + ".")
    docs = file_documents([str(root / "doc*.txt")])
    return prepare_dataset(
        docs, ByteTokenizer(), root / "tiny", source="test", val_fraction=0.1, progress=False
    ).path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def spec_dict(data: Path, **extra) -> dict:
    base = {
        "model": {"preset": "tiny-16k"},
        "data": {"path": str(data)},
        "token_budget": 16384,
        "device": "cpu",
        "eval": {"n_log": 4, "n_dense": 2, "eval_tokens": 1024},
    }
    spec = {"name": "t", "base": base, "grid": {"batch_size": [2, 4, 8], "optim.lr": [3e-3, 1e-2]}}
    spec.update(extra)
    return spec


def test_grid_expands_to_the_product_with_zip_axes(dataset):
    spec = parse_spec(spec_dict(dataset, zip={"seed": [0, 1], "optim.beta2": [0.99, 0.95]}), default_name="x")
    plan = plan_sweep(spec)
    assert len(plan.trials) == 3 * 2 * 2  # batch × lr × (seed, β2) zipped
    assert {(t.config.seed, t.config.optim.beta2) for t in plan.trials} == {(0, 0.99), (1, 0.95)}
    assert len({t.run_id for t in plan.trials}) == len(plan.trials)
    assert all(Path(t.config.data.path).is_absolute() and t.config.experiment == "t" for t in plan.trials)
    assert all(t.phase == "budget" and t.tokens == 16384 for t in plan.trials)


def test_eval_sets_shorthand_reaches_every_trial(dataset):
    spec = parse_spec(
        spec_dict(dataset, eval_sets=[{"name": "val"}, {"name": "other", "path": str(dataset)}])
    )
    sets = {tuple((e.name, e.path) for e in t.config.data.eval_sets) for t in plan_sweep(spec).trials}
    assert sets == {(("val", None), ("other", str(dataset)))}
    with pytest.raises(ConfigError, match="both at the top level and in base.data"):
        parse_spec(spec_dict(dataset, eval_sets=[{"name": "val"}]) | {"base": {"data": {"eval_sets": []}}})


def test_target_rule_splits_phases_per_cell(dataset):
    spec = parse_spec(spec_dict(dataset, target={"reference_batch_size": 4, "budget_multiple": 3}))
    plan = plan_sweep(spec)
    assert [t.config.batch_size for t in plan.budget] == [4, 4]
    assert sorted(t.config.batch_size for t in plan.pending_target) == [2, 2, 8, 8]
    assert len({t.cell for t in plan.trials}) == 1  # batch and lr do not define the cell
    runs = pd.DataFrame(
        {
            "run_id": [t.run_id for t in plan.budget],
            "status": ["completed", "completed"],
            "best_ewa_eval_loss": [3.5, 3.25],
        }
    )
    targets = plan.targets(runs)
    assert targets == {plan.budget[0].cell: 3.25}
    phase2 = plan.target_trials(targets)
    assert len(phase2) == 4
    for t in phase2:
        c = t.config
        assert (c.target_loss, c.data_tokens, c.token_budget, c.stop_at_target) == (
            3.25,
            16384,
            3 * 16384,
            True,
        )
    assert plan.targets(runs.assign(status=["completed", "failed"])) == {}  # wait for every reference run


def test_unknown_keys_get_a_suggestion(dataset):
    with pytest.raises(ConfigError, match=r"unknown key 'gird'.*did you mean 'grid'"):
        parse_spec(spec_dict(dataset, gird={}))
    bad = spec_dict(dataset)
    bad["grid"]["optim.lrr"] = [1e-3]
    with pytest.raises(ConfigError, match=r"grid\.optim\.lrr.*did you mean 'lr'"):
        parse_spec(bad)
    with pytest.raises(ConfigError, match=r"target.*did you mean 'budget_multiple'"):
        parse_spec(spec_dict(dataset, target={"budget_multiplier": 2}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"batch_size": []}}, r"grid\.batch_size is an empty list"),
        ({"grid": {"optim.lr": [0.0]}}, r"grid\.optim\.lr: lr must be > 0"),
        ({"grid": {"batch_size": [6, 8]}, "micro": 4}, r"grid\.batch_size=6 is not divisible by base\.micro"),
        (
            {"target": {"reference_batch_size": 16}},
            r"reference_batch_size=16 has no run.*add 16 to grid\.batch_size",
        ),
        ({"resources": {"gpus": 1.5}}, r"resources: .*whole number"),
        ({"zip": {"seed": [0, 1], "optim.beta2": [0.9]}}, r"zip\[0\]: zipped lists must have equal lengths"),
    ],
)
def test_impossible_values_name_the_key(dataset, change, message):
    spec = spec_dict(dataset)
    if "micro" in change:
        spec["base"]["micro_batch_size"] = change.pop("micro")
    for key, value in change.items():
        if key == "grid":
            spec["grid"].update(value)
        else:
            spec[key] = value
    with pytest.raises(ConfigError, match=message):
        plan_sweep(parse_spec(spec))


def test_missing_dataset_points_to_cbs_data_prepare(tmp_path):
    spec = parse_spec(spec_dict(tmp_path / "nowhere", target={"reference_batch_size": 4}))
    with pytest.raises(
        ConfigError, match=r"base\.data\.path: dataset .*nowhere does not exist.*cbs data prepare"
    ):
        plan_sweep(spec)
    plan = plan_sweep(
        spec, require_data=False
    )  # dry run / status: a warning, sizes estimated from the preset
    assert "does not exist" in plan.warnings[0] and plan.trials[0].n_params == 14040
    phase2 = plan.target_trials({plan.budget[0].cell: 3.0})  # `cbs status --spec` away from the data
    assert len(phase2) == 4 and {t.config.target_loss for t in phase2} == {3.0}


def test_budget_beyond_the_dataset_is_refused_up_front(dataset):
    spec = spec_dict(dataset, target={"reference_batch_size": 4, "budget_multiple": 1000})
    with pytest.raises(CbsError, match=r"grid point \(batch_size=2"):
        plan_sweep(parse_spec(spec))  # the phase-2 caps (1000 × D) exceed the training split


def test_gpu_request_on_a_cpu_only_cluster():
    nodes = [{"Resources": {"CPU": 2.0}}]
    check_resources(Resources(cpus=1, gpus=0), nodes)
    with pytest.raises(
        ConfigError, match=r"resources\.gpus: 1 GPU per trial, but the Ray cluster has no GPU"
    ):
        check_resources(Resources(cpus=1, gpus=1), nodes)
    with pytest.raises(ConfigError, match=r"no Ray node has 4 CPUs"):
        check_resources(Resources(cpus=4, gpus=0), nodes)


def test_dry_run_prints_the_grid_and_totals(dataset, tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec_dict(dataset, target={"reference_batch_size": 4})))
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 runs (2 budget, 4 stop at the target of b_opt=4, capped at 4×D)" in out
    assert "14,040" in out and "≤65,536" in out  # N of tiny-16k, the phase-2 token cap
    fpt = plan_sweep(load_spec(path)).budget[0].flops_per_token
    tokens = 2 * 16384 + 4 * 4 * 16384  # 2 reference runs to D, 4 others capped at 4 × D
    assert f"at most {tokens:,} tokens and {tokens * fpt:.3g} FLOPs in total" in out


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_specs_pass_dry_run_validation(path, capsys):
    """Every spec in experiments/ parses and plans; without its dataset here, the dry run warns (never skips).
    A single-run TrainConfig there (for `cbs train`) is refused by `cbs sweep` with a pointer to `base:`."""
    if "experiment" in yaml.safe_load(path.read_text()):
        assert main(["sweep", str(path), "--dry-run"]) == 2
        assert "is a TrainConfig for `cbs train`, not a sweep spec" in capsys.readouterr().err
        return
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    spec = load_spec(path)
    plan = plan_sweep(spec, require_data=False)
    assert f"{len(plan.trials)} runs (" in out
    assert all(math.isfinite(t.flops) and t.flops > 0 for t in plan.trials)
    if spec.name.startswith("paper-"):
        assert spec.resources.gpus == 1 and spec.target is not None


def test_shipped_default_spec_is_well_posed():
    """`make sweep` must give a CBS that passes its own diagnostics (issue 10). Without running it, the spec
    keeps the invariants that made it pass: b_opt in the linear regime with b_opt/2 measured, batch sizes
    doubling well past b_opt, a lr bracket at every batch size that holds the target lr strictly inside, a
    target lr interior at b_opt, and an EWA window short against every run (the paper's τ = 0.9995 would
    average over more steps than the small-batch runs take to reach D)."""
    plan = plan_sweep(load_spec(REPO / "experiments" / "default.yaml"), require_data=False)
    b_opt = plan.spec.target.reference_batch_size
    lrs: dict[int, list[float]] = {}
    for t in plan.trials:
        lrs.setdefault(t.config.batch_size, []).append(t.config.optim.lr)
    batches = sorted(lrs)
    assert batches == [batches[0] * 2**i for i in range(len(batches))] and len(batches) >= 6
    assert batches[:2] == [b_opt // 2, b_opt], "S(b_opt/2)/S(b_opt) must be measured (b_opt_not_linear)"
    assert batches[-1] >= 32 * b_opt, "the grid must reach past B_noise ≈ 10·b_opt (cbs_outside_grid)"
    ref = sorted(lrs[b_opt])
    assert len(ref) == 3 and {t.config.optim.lr for t in plan.budget} == set(ref)
    target_lr = ref[1]  # the b_opt runs' middle lr sets the target
    for batch, values in lrs.items():
        assert len(values) >= 3 and len(set(values)) == len(values), batch
        assert min(values) < target_lr < max(values), (
            f"lr bracket at B = {batch} must hold {target_lr} inside"
        )
    for t in plan.trials:
        assert t.data_tokens >= 40 * t.n_params  # D large enough that B_noise >= 5·b_opt
        seq_len = resolve_model_config(t.config.model, vocab_size=256).seq_len
        tau = t.config.ewa_tau if t.config.ewa_tau is not None else paper_ewa_tau(t.config.batch_size)
        data_steps = t.data_tokens / (t.config.batch_size * seq_len)
        assert 1 / (1 - tau) <= 0.1 * data_steps, f"EWA window too long at B = {t.config.batch_size}"


def test_workers_resources_reserve_every_rank_and_reach_each_trial(dataset):
    spec = parse_spec(spec_dict(dataset, resources={"workers": 2, "cpus_per_worker": 1.5}))
    r = spec.resources
    assert (r.trial_cpus, r.trial_gpus) == (3.0, 0.0)
    assert {t.config.parallel.workers for t in plan_sweep(spec).trials} == {2}
    old = parse_spec(spec_dict(dataset, resources={"cpus": 2, "gpus": 0.5})).resources
    assert (old.trial_cpus, old.trial_gpus, old.workers) == (2, 0.5, 1)  # the one-worker form as before
    nodes = [{"Resources": {"CPU": 16.0, "GPU": 8.0}}]
    check_resources(
        Resources(workers=8, gpus_per_worker=1, cpus_per_worker=2), nodes
    )  # the paper's 8-GPU run
    with pytest.raises(ConfigError, match=r"no Ray node has 18 CPUs and 9 GPUs"):
        check_resources(Resources(workers=9, gpus_per_worker=1, cpus_per_worker=2), nodes)


@pytest.mark.parametrize(
    ("resources", "grid", "message"),
    [
        ({"workers": 0}, {}, r"resources\.workers must be >= 1"),
        ({"workers": 2, "cpus": 2}, {}, r"either \{cpus, gpus\}"),
        ({"workers": 2, "gpus_per_worker": 0.5}, {}, r"gpus_per_worker must be a whole number"),
        ({"workers": 4}, {"batch_size": [2, 4]}, r"batch_size=2 must be divisible by parallel\.workers=4"),
    ],
)
def test_bad_workers_resources_are_refused_before_ray(dataset, resources, grid, message):
    spec = spec_dict(dataset, resources=resources)
    spec["grid"].update(grid)
    with pytest.raises(ConfigError, match=message):
        plan_sweep(parse_spec(spec))
