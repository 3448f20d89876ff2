"""CPU stand-ins for settings that otherwise only run on a GPU: torch.compile vs eager, bf16 autocast vs fp32,
and deterministic algorithms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_run import train_into
from torch._dynamo.eval_frame import OptimizedModule

from cbs.config import TrainConfig
from cbs.results import ResultsStore
from cbs.train import Trainer, resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")

LOSSES = ["train_loss", "eval_loss", "ewa_eval_loss"]


def losses(corpus: str, tmp_path, name: str, on_eval=None, **over) -> pd.DataFrame:
    """The loss curve of 4 steps of micro-4k at seq len 32, batch 4, evaluated at steps 1, 2 and 4."""
    cfg = TrainConfig.from_dict(
        {
            "model": {"preset": "micro-4k", "seq_len": 32},
            "data": {"path": corpus},
            "batch_size": 4,
            "token_budget": 4 * 4 * 32,
            "ewa_tau": 0.9,
            "optim": {"lr": 1e-2, "warmup_steps": 1},
            "eval": {"eval_tokens": 512, "n_log": 3, "n_dense": 0},
            **over,
        }
    )
    store = ResultsStore(tmp_path / name)
    assert train_into(store, cfg, on_eval=on_eval)["status"] == "completed"
    return store.curves().sort_values(["step", "eval_set"]).reset_index(drop=True)[["step", *LOSSES]]


def compile_problem() -> str | None:
    """Why torch.compile cannot run on this CPU build (e.g. no C++ compiler for inductor), or None."""
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(4))
    except Exception as exc:  # inductor raises several types for a missing or broken toolchain
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


@pytest.mark.slow
def test_compiled_training_matches_eager(corpus, tmp_path):
    problem = compile_problem()
    if problem:
        pytest.skip(f"torch.compile does not run on this CPU build: {problem}")
    eager = losses(corpus, tmp_path, "eager")
    compiled = losses(corpus, tmp_path, "compiled", compile=True)
    assert eager.step.tolist() == compiled.step.tolist() == [1, 2, 4]
    # fp32 both ways; inductor fuses and reorders the reductions, so not bit-identical: rtol 1e-4
    np.testing.assert_allclose(compiled[LOSSES], eager[LOSSES], rtol=1e-4)


def test_evaluation_is_compiled_when_training_is(corpus):
    cfg = TrainConfig.from_dict({"model": {"preset": "micro-4k", "seq_len": 32}, "data": {"path": corpus}})
    eager = Trainer(resolve_config(cfg))
    assert (eager.eval_raw, eager.eval_ewa) == (eager.model, eager.ewa_model)
    compiled = Trainer(
        resolve_config(dataclasses.replace(cfg, compile=True))
    )  # compiles lazily: no compiler run
    assert isinstance(compiled.eval_raw, OptimizedModule) and compiled.eval_raw._orig_mod is compiled.model
    assert (
        isinstance(compiled.eval_ewa, OptimizedModule) and compiled.eval_ewa._orig_mod is compiled.ewa_model
    )


def test_bf16_autocast_tracks_fp32(corpus, tmp_path):
    fp32 = losses(corpus, tmp_path, "fp32", dtype="fp32")
    bf16 = losses(corpus, tmp_path, "bf16", dtype="bf16")
    assert not np.array_equal(bf16[LOSSES], fp32[LOSSES])  # autocast did run the matmuls in bf16
    # bf16 keeps 8 mantissa bits (relative rounding 2^-9 ≈ 2e-3 per op); over a few layers and 4 steps the
    # losses (≈ ln 256 ≈ 5.5) stay within 2%, while fp32 runs agree to 1e-6
    np.testing.assert_allclose(bf16[LOSSES], fp32[LOSSES], rtol=2e-2)


def test_deterministic_option_runs_under_deterministic_algorithms(corpus, tmp_path):
    seen = []

    def record(metrics, write_checkpoint):
        seen.append(torch.are_deterministic_algorithms_enabled())

    plain = losses(corpus, tmp_path, "plain", on_eval=record)
    det = losses(corpus, tmp_path, "det", on_eval=record, deterministic=True)
    assert seen == [False] * 3 + [True] * 3  # on only for the run that asked for it
    assert not torch.are_deterministic_algorithms_enabled()  # and restored after it
    pd.testing.assert_frame_equal(det, plain)  # on CPU the default kernels are already deterministic
