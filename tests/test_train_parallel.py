"""Data-parallel runs on CPU (gloo), DDP and FSDP2: 2 ranks give the 1-process curve, resume from a 2-rank checkpoint, the
sampler's rank slices, and the bad parallel settings refused before any process starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_train_run import config as run_config
from test_train_run import curve, train_into

from cbs.cli import main
from cbs.config import TrainConfig
from cbs.errors import ConfigError
from cbs.model import build_model
from cbs.results import ResultsStore
from cbs.train import resolve_config, run_training
from cbs.train.distributed import Ranks
from cbs.train.gns import COLUMNS as GNS_COLUMNS

REPO = Path(__file__).resolve().parents[1]
# fp32 on CPU: 2 ranks sum the gradients of the two half-batches in another order than one process does, so
# the curves agree to float rounding, compounded over the steps (observed: 3.5e-7 relative at most)
RTOL = 1e-5
LOSSES = ["train_loss", "eval_loss", "ewa_eval_loss"]
pytestmark = pytest.mark.usefixtures("one_thread")


def config(corpus: str, steps: int = 24, **over) -> TrainConfig:
    """test_train_run's run on micro-4k, 24 steps of batch 8 in micro-batches of 2 (two per rank with 2 ranks:
    DDP syncs on the last)."""
    over = {"model": {"preset": "micro-4k", "seq_len": 32}, "micro_batch_size": 2, **over}
    return run_config(corpus, steps=steps, **over)


def test_ranks_shard_global_batches_in_order():
    starts = np.arange(8)
    slices = [Ranks(rank, 2).shard(starts) for rank in range(2)]
    assert [s.tolist() for s in slices] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert np.concatenate([Ranks(r, 3).shard(np.arange(7)) for r in range(3)]).tolist() == list(range(7))
    assert Ranks().shard(starts).tolist() == starts.tolist()


@pytest.mark.slow
def test_two_ranks_give_the_one_process_curve(corpus, tmp_path, capsys):
    one = ResultsStore(tmp_path / "one")
    row1 = train_into(one, config(corpus))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config(corpus).to_dict()))
    args = [
        "train",
        str(path),
        "--workers",
        "2",
        "--results",
        str(tmp_path / "two"),
        "--checkpoint",
        str(tmp_path / "ck"),
    ]
    assert main(args) == 0
    assert "2 ranks (ddp)" in capsys.readouterr().out
    two = ResultsStore(tmp_path / "two")
    row2 = two.runs().iloc[0]
    assert len(two.runs()) == 1 and row2.run_id == row1["run_id"]  # one row, the same run id
    assert (row2.status, row2.steps) == (row1["status"], row1["steps"]) == ("completed", 24)
    a, b = curve(one), curve(two)
    floats = [*LOSSES, "grad_norm", *GNS_COLUMNS]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    # in-run GNS: one process compares a micro-batch (2) with the batch, 2 ranks a rank's share (4) with it
    assert (a.b_small == 2).all() and (b.b_small == 4).all() and (b.b_big == 8).all()
    assert np.isfinite(b[["grad_sq_small", "gns_trace", "gns_grad_sq"]]).all().all()
    assert (b.grad_sq_small > b.grad_sq_big).mean() > 0.5
    np.testing.assert_allclose(a[LOSSES], b[LOSSES], rtol=RTOL)
    # the gradient norm is a difference-sensitive sum of squares of the same rounding (observed: 3.8e-5)
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=2e-4)
    assert (tmp_path / "ck" / "state.pt").is_file()  # rank 0 wrote the checkpoint through the launcher
    # torchrun, the standard (and multi-node) launcher: the same 2 ranks, the same curve exactly
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd = [*torchrun, "-m", "cbs", "train", str(path), "--workers", "2", "--results", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("2 ranks (ddp)") == 1  # rank 0 alone prints
    pd.testing.assert_frame_equal(curve(ResultsStore(tmp_path / "run")), b)


@pytest.mark.slow
def test_fsdp_two_ranks_give_the_one_process_curve_and_resume(corpus, tmp_path):
    """FSDP2 on 2 gloo ranks: each rank holds half of every weight, its optimizer state and its EWA; the curve
    is the one-process curve within RTOL, and a checkpoint (gathered whole, written by rank 0) resumes on 2
    FSDP ranks to exactly the uninterrupted curve and on 1 process within RTOL, as does a one-process
    checkpoint on 2 FSDP ranks. 33 eval windows: one rank evaluates 17, the other 16, yet both make the 9
    forwards that FSDP's weight gathering needs."""
    evals = {"eval_tokens": 33 * 32, "n_log": 4, "n_dense": 3}
    fsdp = config(corpus, eval=evals, parallel={"workers": 2, "strategy": "fsdp"})
    one, two = ResultsStore(tmp_path / "one"), ResultsStore(tmp_path / "two")
    written = []

    def checkpoint_once(directory: Path):
        def on_eval(metrics, write_checkpoint):
            if metrics["step"] >= 8 and not (directory / "state.pt").exists():
                write_checkpoint(directory)
                written.append(metrics["step"])

        return on_eval

    train_into(one, config(corpus, eval=evals), on_eval=checkpoint_once(tmp_path / "ck1"))
    row = train_into(two, fsdp, on_eval=checkpoint_once(tmp_path / "ck"))
    assert (row["status"], row["steps"], written) == ("completed", 24, [8, 8])
    a, b = curve(one), curve(two)
    floats = [*LOSSES, "grad_norm", *GNS_COLUMNS]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    np.testing.assert_allclose(a[LOSSES], b[LOSSES], rtol=RTOL)
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=2e-4)
    assert b[list(GNS_COLUMNS)].isna().all().all()  # no GNS under FSDP: no rank sees its own gradient
    state = torch.load(tmp_path / "ck" / "state.pt", weights_only=False)
    whole = build_model(resolve_config(fsdp).spec).state_dict()
    assert {k: v.shape for k, v in state["model"].items()} == {k: v.shape for k, v in whole.items()}
    assert [s.shape for s in state["ewa"]["shadow"]] == [v.shape for v in whole.values()]
    again, single = ResultsStore(tmp_path / "again"), ResultsStore(tmp_path / "single")
    train_into(again, fsdp, resume_from=tmp_path / "ck")
    train_into(single, config(corpus, eval=evals), resume_from=tmp_path / "ck")
    pd.testing.assert_frame_equal(curve(again), b)  # same ranks, same reduction order: exact
    np.testing.assert_allclose(curve(single)[LOSSES], a[LOSSES], rtol=RTOL)
    sharded = ResultsStore(tmp_path / "sharded")  # and FSDP resumes a one-process checkpoint
    train_into(sharded, fsdp, resume_from=tmp_path / "ck1")
    np.testing.assert_allclose(curve(sharded)[LOSSES], a[LOSSES], rtol=RTOL)


def _running(pid: str) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie, dead but not yet reaped by whoever adopted
    it, still has a /proc entry: its state is Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_killed_two_rank_run_resumes_from_its_checkpoint(corpus, tmp_path, strategy):
    """kill -9 of `cbs train --workers 2` ends its ranks too; its checkpoint resumes on 2 ranks (exactly the
    uninterrupted curve) and on 1 process (within RTOL)."""
    cfg = config(corpus, parallel={"strategy": strategy})
    ref = ResultsStore(tmp_path / "ref")
    train_into(ref, config(corpus, parallel={"workers": 2, "strategy": strategy}))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    ckpt = tmp_path / "ckpt" / "state.pt"
    cmd = [
        sys.executable,
        "-m",
        "cbs",
        "train",
        str(path),
        "--workers",
        "2",
        "--checkpoint",
        str(ckpt.parent),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ckpt.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.kill()
    proc.wait()
    assert ckpt.is_file() and ranks, "the run wrote no checkpoint before it finished"
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(pid) for pid in ranks)  # no orphaned rank keeps training
    two, one = ResultsStore(tmp_path / "two"), ResultsStore(tmp_path / "one")
    train_into(two, config(corpus, parallel={"workers": 2, "strategy": strategy}), resume_from=ckpt.parent)
    train_into(one, cfg, resume_from=ckpt.parent)
    pd.testing.assert_frame_equal(curve(ref), curve(two))  # same ranks, same reduction order: exact
    np.testing.assert_allclose(curve(ref)[LOSSES], curve(one)[LOSSES], rtol=RTOL)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"parallel": {"workers": 0}}, "parallel.workers must be >= 1"),
        ({"parallel": {"workers": 3}}, "batch_size=8 must be divisible by parallel.workers=3"),
        ({"parallel": {"workers": 4}, "micro_batch_size": 4}, "2 sequences per rank"),
        ({"parallel": {"workers": 2, "strategy": "zero"}}, "parallel.strategy must be one of"),
        ({"parallel": {"workers": 2, "backend": "nccl"}}, "nccl needs CUDA"),
        ({"parallel": {"workers": 2, "backend": "mpi"}}, "parallel.backend must be one of"),
    ],
)
def test_bad_parallel_settings_fail_before_training(corpus, over, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(config(corpus, device="cpu", **over))


def test_cli_refuses_bad_workers_with_exit_2(corpus, capsys):
    assert main(["train", "--workers", "3", "--set", f"data.path={corpus}", "--set", "batch_size=8"]) == 2
    assert "must be divisible by parallel.workers=3" in capsys.readouterr().err


def test_parallel_does_not_change_the_run_id(corpus):
    assert config(corpus).run_id() == config(corpus, parallel={"workers": 2}).run_id()
    assert (
        resolve_config(config(corpus, micro_batch_size=None, parallel={"workers": 2})).micro_batch_size == 4
    )


@pytest.mark.slow
def test_a_failing_two_rank_run_is_stored_with_a_store_and_raised_without(corpus, tmp_path):
    def boom(metrics, write_checkpoint):
        raise RuntimeError("boom")

    cfg = config(corpus, steps=4, parallel={"workers": 2})
    with pytest.raises(RuntimeError, match="boom"):
        run_training(cfg, on_eval=boom)
    store = ResultsStore(tmp_path)
    row = train_into(store, cfg, on_eval=boom)
    assert row["status"] == "failed" and "boom" in row["error"]
    assert store.runs().status.tolist() == ["failed"]
    with pytest.raises(RuntimeError, match="rank [01] of 2 failed: .*no checkpoint at"):  # every rank fails
        run_training(cfg, resume_from=tmp_path / "nowhere")


def test_mfu_counts_the_peak_of_every_rank(corpus, monkeypatch):
    import cbs.train.loop as loop

    monkeypatch.setattr(loop, "peak_flops", lambda name: 1e12)
    progress = loop.Progress(step=10, train_time_s=2.0)
    mfu = {}
    for workers in (1, 2):
        cfg = config(corpus, parallel={"workers": workers})
        row = loop.runs_row(
            cfg,
            resolve_config(cfg),
            progress,
            started=datetime.now(timezone.utc),
            wall_time_s=3.0,
            error=None,
        )
        mfu[workers] = row["mfu"]
    assert mfu[1] > 0 and mfu[2] == pytest.approx(mfu[1] / 2)  # the same tokens/s on twice the devices


def test_torchrun_with_another_world_size_is_refused(corpus, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"torchrun started 2 processes but parallel\.workers=4"):
        run_training(config(corpus, parallel={"workers": 4}))
