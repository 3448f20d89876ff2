"""Whole training runs on a slice of the offline stdlib corpus: config resolution, determinism, micro-batch
equivalence, stop-at-target, divergence, failure, resume from a checkpoint, and that a tiny model learns."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from cbs.cli import main
from cbs.config import EvalSet, TrainConfig
from cbs.data import ByteTokenizer, prepare_dataset
from cbs.data.sources import stdlib_documents
from cbs.errors import ConfigError, DataError
from cbs.protocol import chinchilla_tokens, paper_beta2, paper_ewa_tau
from cbs.results import RUNS_SCHEMA, ResultsStore
from cbs.train import resolve_config, run_training
from cbs.train.device import set_threads

pytestmark = pytest.mark.usefixtures("one_thread")


def config(corpus: str, steps: int = 12, **over) -> TrainConfig:
    """tiny-16k at seq len 32, batch 8 (256 tokens/step), a small fixed eval set."""
    base = {
        "model": {"preset": "tiny-16k", "seq_len": 32},
        "data": {"path": corpus},
        "batch_size": 8,
        "token_budget": steps * 256,
        "ewa_tau": 0.9,
        "optim": {"lr": 1e-2, "warmup_steps": 3},
        "eval": {"eval_tokens": 1024, "n_log": 4, "n_dense": 3},
    }
    for key, value in over.items():
        section, _, leaf = key.partition("__")
        if leaf:
            base.setdefault(section, {})[leaf] = value
        else:
            base[section] = value
    return TrainConfig.from_dict(base)


def curve(store: ResultsStore) -> pd.DataFrame:
    """The curve without its timings (wall time, tokens/s, MFU, peak memory), which differ run to run."""
    timings = ["wall_time_s", "tokens_per_s", "mfu", "peak_memory_bytes"]
    return store.curves().drop(columns=timings).sort_values(["step", "eval_set"]).reset_index(drop=True)


# --- resolution ------------------------------------------------------------------------------------------------


def test_resolve_fills_the_paper_protocol(corpus):
    cfg = TrainConfig.from_dict({"data": {"path": corpus, "allow_repeat": True}, "batch_size": 16})
    run = resolve_config(cfg)
    n = run.spec.n_params
    assert run.spec.preset == "tiny-64k" and run.spec.vocab_size == 256
    assert run.token_budget == chinchilla_tokens(n) == run.data_tokens
    assert run.steps == run.token_budget // (16 * 128) and run.micro_batch_size == 16
    assert run.beta2 == paper_beta2(16) and run.ewa_tau == paper_ewa_tau(16)
    assert run.warmup_steps == math.ceil(0.25 * chinchilla_tokens(n) / (16 * 128))
    assert resolve_config(run.config) == run  # the resolved config is a fixed point


def test_default_warmup_is_capped_by_the_data_size(corpus):
    run = resolve_config(config(corpus, steps=40, optim={"lr": 1e-3}, data_tokens=4096))
    assert run.warmup_tokens == 0.25 * 4096 == run.warmup_steps * 256


@pytest.mark.parametrize(
    ("over", "error", "match"),
    [
        ({"micro_batch_size": 3}, ConfigError, "divide"),
        ({"optim": {"warmup_steps": 1, "warmup_tokens": 10}}, ConfigError, "only one of optim.warmup"),
        ({"chinchilla_multiple": 1.0}, ConfigError, "only one of token_budget"),
        ({"token_budget": 10}, ConfigError, "below one batch"),
        ({"token_budget": 10**7}, DataError, "allow_repeat"),
        ({"data": {"path": "/nonexistent"}}, DataError, "cbs data prepare"),
        ({"model": {"preset": "huge"}}, ConfigError, "tiny-64k"),
        ({"optim": {"schedule": "linear"}}, ConfigError, "schedule"),
        ({"divergence_check_every": 0}, ConfigError, "divergence_check_every"),
    ],
)
def test_bad_configs_fail_before_training(corpus, over, error, match):
    with pytest.raises(error, match=match):
        resolve_config(config(corpus, **over) if "data" not in over else config(corpus, data=over["data"]))


def test_eval_set_with_another_tokenizer_is_refused(corpus, tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a b c d"] * 10, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    tok.save(str(tmp_path / "tok.json"))
    from cbs.data import load_tokenizer

    prepare_dataset(
        [f"a b {i}" for i in range(100)],
        load_tokenizer(str(tmp_path / "tok.json")),
        tmp_path / "w",
        source="t",
        val_fraction=0.3,
        progress=False,
    )
    cfg = config(
        corpus,
        data={"path": corpus, "eval_sets": [{"name": "val"}, {"name": "w", "path": str(tmp_path / "w")}]},
    )
    with pytest.raises(DataError, match="same --tokenizer"):
        resolve_config(cfg)


# --- runs ------------------------------------------------------------------------------------------------------


def test_run_row_curve_and_determinism(corpus, tmp_path):
    other = tmp_path / "other"
    prepare_dataset(
        (d for i, d in enumerate(stdlib_documents()) if 300 <= i < 340),
        ByteTokenizer(),
        other,
        source="other",
        val_fraction=0.3,
        progress=False,
    )
    cfg = config(
        corpus, data={"path": corpus, "eval_sets": [{"name": "val"}, {"name": "other", "path": str(other)}]}
    )
    a, b = ResultsStore(tmp_path / "a"), ResultsStore(tmp_path / "b")
    row = run_training(cfg, store=a)
    run_training(cfg, store=b)
    assert set(row) == set(RUNS_SCHEMA.names)
    assert row["status"] == "completed" and row["steps"] == 12 and row["tokens"] == 12 * 256
    assert row["eval_sets"] == ["val", "other"] and row["mfu"] is None and row["tokens_per_s"] > 0
    assert row["run_id"] == cfg.run_id() and json.loads(row["config_json"])["optim"]["beta2"] == paper_beta2(
        8
    )
    c = curve(a)
    assert set(c.eval_set) == {"val", "other"} and c.step.max() == 12
    assert row["final_ewa_eval_loss"] == c[(c.step == 12) & (c.eval_set == "val")].ewa_eval_loss.item()
    pd.testing.assert_frame_equal(c, curve(b))  # same config, identical curve (CPU, fp32)
    assert a.runs().run_id.tolist() == [row["run_id"]]


def test_micro_batches_do_not_change_the_result(corpus, tmp_path):
    whole, split = ResultsStore(tmp_path / "w"), ResultsStore(tmp_path / "s")
    run_training(config(corpus), store=whole)
    run_training(config(corpus, micro_batch_size=2), store=split)
    a, b = curve(whole), curve(split)
    np.testing.assert_allclose(
        a[["train_loss", "eval_loss", "ewa_eval_loss"]],
        b[["train_loss", "eval_loss", "ewa_eval_loss"]],
        rtol=1e-4,
    )


def test_stop_at_target(corpus, tmp_path):
    full = run_training(config(corpus, steps=20), store=ResultsStore(tmp_path / "full"))
    c = curve(ResultsStore(tmp_path / "full"))
    c = c[c.eval_set == "val"]
    target = float(c.ewa_eval_loss.iloc[len(c) // 2])
    first_hit = int(c[c.ewa_eval_loss <= target].step.min())
    assert first_hit < full["steps"]
    seen = []
    row = run_training(config(corpus, steps=20, target_loss=target), on_eval=lambda m, _: seen.append(m))
    assert row["status"] == "reached_target" and row["steps_to_target"] == row["steps"] == first_hit
    assert seen[-1]["done"] and seen[-1]["status_so_far"] == "reached_target"
    assert all(m["status_so_far"] == "running" for m in seen[:-1])
    row = run_training(config(corpus, steps=20, target_loss=target, stop_at_target=False))
    assert row["status"] == "completed" and row["steps_to_target"] == first_hit and row["steps"] == 20


def test_divergence_is_a_result(corpus, tmp_path):
    store = ResultsStore(tmp_path)
    row = run_training(
        config(corpus, steps=40, optim={"lr": 50.0, "warmup_steps": 0, "grad_clip": None}), store=store
    )
    assert row["status"] == "diverged" and row["steps"] < 40
    assert store.runs().status.tolist() == ["diverged"]


def test_divergence_is_caught_between_checks(corpus, tmp_path):
    """The loss reaches the host every ``divergence_check_every`` steps, not every step; a diverging lr is still
    caught, at most every − 1 steps late, and stored like any diverged run."""
    cfg = config(corpus, steps=40, optim={"lr": 50.0, "warmup_steps": 0, "grad_clip": None})
    each, every16 = ResultsStore(tmp_path / "1"), ResultsStore(tmp_path / "16")
    first = run_training(dataclasses.replace(cfg, divergence_check_every=1), store=each)
    late = run_training(dataclasses.replace(cfg, divergence_check_every=16), store=every16)
    assert first["status"] == late["status"] == "diverged"
    assert first["steps"] <= late["steps"] < min(40, first["steps"] + 16)
    assert late["final_train_loss"] == first["final_train_loss"]  # the diverging step's loss, found late
    assert every16.runs().status.tolist() == ["diverged"] and list(every16.curves()) == list(each.curves())


def test_curve_has_interval_speed_and_health(corpus, tmp_path):
    store = ResultsStore(tmp_path)
    seen = []
    run_training(
        config(corpus, optim={"lr": 1e-2, "warmup_steps": 3, "grad_clip": 1.0}),
        store=store,
        on_eval=lambda m, _: seen.append(m),
    )
    c = store.curves()
    assert (c.tokens_per_s > 0).all() and c.mfu.isna().all() and c.peak_memory_bytes.isna().all()
    assert np.isfinite(c.grad_norm).all() and (c.grad_norm > 0).all()
    assert all(m["tokens_per_s"] > 0 and m["grad_norm"] > 0 and m["mfu"] is None for m in seen)


def test_failure_is_stored_with_a_store_and_raised_without(corpus, tmp_path):
    def boom(metrics, write_checkpoint):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_training(config(corpus), on_eval=boom)
    row = run_training(config(corpus), store=ResultsStore(tmp_path), on_eval=boom)
    assert row["status"] == "failed" and "boom" in row["error"] and row["steps"] == 1


def test_resume_from_checkpoint_gives_the_same_curve(corpus, tmp_path):
    """In micro-batches of 4, so the in-run GNS (its EMA state checkpointed) is resumed exactly too."""
    cfg = config(corpus, steps=20, micro_batch_size=4)
    ref = ResultsStore(tmp_path / "ref")
    ref_row = run_training(cfg, store=ref)

    class Stop(Exception):
        pass

    def stop_after_step_8(metrics, write_checkpoint):
        if metrics["step"] >= 8:
            write_checkpoint(tmp_path / "ckpt")
            raise Stop

    with pytest.raises(Stop):
        run_training(cfg, on_eval=stop_after_step_8)
    resumed = ResultsStore(tmp_path / "resumed")
    row = run_training(cfg, store=resumed, resume_from=tmp_path / "ckpt")
    pd.testing.assert_frame_equal(curve(ref), curve(resumed))
    assert curve(resumed).b_simple.notna().any()
    assert row["status"] == ref_row["status"] and row["final_ewa_eval_loss"] == ref_row["final_ewa_eval_loss"]
    with pytest.raises(ConfigError, match="different run configuration"):
        run_training(config(corpus, steps=20, seed=1), resume_from=tmp_path / "ckpt")


@pytest.mark.slow
def test_tiny_model_learns_well_below_the_unigram_entropy(corpus):
    from cbs.data import open_dataset

    counts = np.bincount(open_dataset(corpus).tokens("train"), minlength=256).astype(float)
    p = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(p * np.log(p)).sum())  # nats/token, ≈ 3.1 for Python source bytes
    cfg = config(
        corpus,
        steps=300,
        model={"preset": "tiny-16k", "seq_len": 64},
        batch_size=16,
        token_budget=300 * 16 * 64,
        ewa_tau=0.95,
        optim={"lr": 1e-2, "warmup_steps": 30},
        eval={"eval_tokens": 8192, "n_log": 4, "n_dense": 2},
    )
    row = run_training(cfg)
    assert row["status"] == "completed"
    assert row["final_eval_loss"] < unigram_entropy - 0.7, (row["final_eval_loss"], unigram_entropy)
    assert row["final_ewa_eval_loss"] < unigram_entropy - 0.7


def cli_train_args(corpus: str, token_budget: int) -> list[str]:
    """`cbs train` of tiny-16k at seq len 32, batch 8, on the corpus."""
    sets = ["model.preset=tiny-16k", "model.seq_len=32", "batch_size=8", "eval.eval_tokens=256"]
    sets += [f"data.path={corpus}", f"token_budget={token_budget}"]
    return ["train", *(arg for s in sets for arg in ("--set", s))]


def test_cli_train(corpus, tmp_path, capsys):
    args = [
        *cli_train_args(corpus, 1024),
        "--results",
        str(tmp_path / "r"),
        "--checkpoint",
        str(tmp_path / "ck"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "completed" in out and (tmp_path / "ck" / "state.pt").is_file()
    assert f"{torch.get_num_threads()} CPU thread" in out and "torch's default" in out
    assert ResultsStore(tmp_path / "r").runs().steps.tolist() == [4]
    assert main(["train", "--set", "optim.lr=-1", "--set", f"data.path={corpus}"]) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err


def test_cli_train_threads(corpus, capsys):
    """--threads N is applied to torch and printed; 0 is refused at parse time (exit 2), threads unchanged."""
    torch.set_num_threads(2)
    args = cli_train_args(corpus, 256)
    assert main([*args, "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    assert "1 CPU thread (--threads)" in capsys.readouterr().out
    torch.set_num_threads(2)
    for bad in ("0", "-3", "two"):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--threads", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "argument --threads:" in err and "whole number" in err and bad in err
    assert torch.get_num_threads() == 2


def test_set_threads_rejects_zero():
    before = torch.get_num_threads()
    with pytest.raises(ConfigError, match="threads must be a whole number ≥ 1, got 0"):
        set_threads(0)
    assert torch.get_num_threads() == before and set_threads(None) == before


def test_example_config_loads():
    cfg = TrainConfig.from_yaml("configs/train-tiny.yaml")
    assert dataclasses.asdict(cfg)["model"]["preset"] == "tiny-64k" and cfg.data.eval_sets == [EvalSet("val")]


def test_bf16_autocast_path_on_cpu(corpus):
    row = run_training(config(corpus, steps=4, dtype="bf16"))
    assert row["status"] == "completed" and row["dtype"] == "bf16" and math.isfinite(row["final_eval_loss"])


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (bf16 autocast, fused AdamW, compile)"
)
@pytest.mark.parametrize("compile_", [False, True])
def test_cuda_run(corpus, compile_):
    row = run_training(config(corpus, steps=12, device="cuda", compile=compile_))
    assert row["status"] == "completed" and row["dtype"] == "bf16" and row["device"] != "cpu"
    assert row["tokens_per_s"] > 0 and math.isfinite(row["final_ewa_eval_loss"])
