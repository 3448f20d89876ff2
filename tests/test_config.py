"""TrainConfig: strict keys, overrides, and a run id that names the data by content, not by location."""

from __future__ import annotations

import shutil

import pytest

from cbs.config import TrainConfig, apply_overrides
from cbs.data import ByteTokenizer, prepare_dataset
from cbs.errors import ConfigError


def _prepare(path, text: str) -> str:
    docs = [f"{text} document {i}\n" * 20 for i in range(40)]
    prepare_dataset(docs, ByteTokenizer(), path, source="test", val_fraction=0.1, progress=False)
    return str(path)


def test_unknown_keys_and_wrong_types_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        TrainConfig.from_dict({"optim": {"lrr": 1e-3}})
    with pytest.raises(ConfigError, match="batch_size must be int"):
        TrainConfig.from_dict({"batch_size": "big"})
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["optim.lr"])
    cfg = TrainConfig.from_dict(
        apply_overrides({}, ["optim.lr=1e-3", "data.eval_sets=[{name: a}, {name: b}]"])
    )
    assert cfg.optim.lr == 1e-3 and [e.name for e in cfg.data.eval_sets] == ["a", "b"]


def test_run_id_names_the_dataset_by_fingerprint_not_location(tmp_path):
    here = _prepare(tmp_path / "a" / "stdlib", "same text")
    moved = tmp_path / "b" / "elsewhere"
    shutil.copytree(here, moved)
    other = _prepare(tmp_path / "c" / "stdlib", "other text")

    def run_id(path: str, **extra) -> str:
        return TrainConfig.from_dict({"data": {"path": path}, **extra}).run_id()

    assert run_id(here) == run_id(str(moved))  # same tokens, another folder: the same run
    assert run_id(here) != run_id(other)  # other tokens: another run
    assert run_id(here) != run_id(here, batch_size=64)
    assert run_id(here) == run_id(here, experiment="x", reference_batch_size=8)  # labels only
    # an eval set on another dataset counts by its fingerprint too
    with_eval = {"data": {"path": here, "eval_sets": [{"name": "val"}, {"name": "o", "path": other}]}}
    moved_other = shutil.copytree(other, tmp_path / "d" / "o")
    moved_eval = {
        "data": {"path": here, "eval_sets": [{"name": "val"}, {"name": "o", "path": str(moved_other)}]}
    }
    assert TrainConfig.from_dict(with_eval).run_id() == TrainConfig.from_dict(moved_eval).run_id()
    # without a prepared dataset there is nothing to fingerprint: the path itself counts
    assert run_id(str(tmp_path / "missing")) != run_id(str(tmp_path / "missing2"))


def test_run_id_is_canonical_in_the_model_preset_fields():
    """Stating a value the preset already has is the same run; a custom size is another run, labelled custom."""
    from cbs.model import resolve_model_config
    from cbs.presets import model_label

    def cfg(**model) -> TrainConfig:
        return TrainConfig.from_dict({"model": {"preset": "tiny-16k", **model}})

    plain = cfg()
    assert cfg(n_heads=2).run_id() == plain.run_id()
    assert cfg(d_model=24, n_layers=2, seq_len=128, mlp_ratio=4).run_id() == plain.run_id()
    assert model_label(cfg(n_heads=2).model) == "tiny-16k"
    custom = cfg(d_model=48, n_heads=3)
    assert custom.run_id() != plain.run_id()
    assert model_label(custom.model) == "custom(d48-l2-h3-s128)"
    assert model_label(cfg(mlp_ratio=2).model) == "custom(d24-l2-h2-s128-m2)"
    assert (
        resolve_model_config(custom.model, 256).preset == "custom(d48-l2-h3-s128)"
    )  # the runs' preset column


def test_run_id_ignores_execution_only_settings():
    base = TrainConfig()
    same = TrainConfig.from_dict({"deterministic": True, "divergence_check_every": 1, "compile": True})
    assert same.run_id() == base.run_id() != TrainConfig.from_dict({"seed": 1}).run_id()
