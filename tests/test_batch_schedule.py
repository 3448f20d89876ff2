"""Batch-size schedules: the per-step plan (stage boundaries on whole steps, tokens, lr factors), the Seesaw and
ramp generators, whole runs that follow a schedule and resume bit-identically mid-stage, and refusals."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train_run import train_into

from cbs.config import BatchStage, TrainConfig
from cbs.errors import ConfigError
from cbs.results import ResultsStore
from cbs.train import resolve_config, run_training
from cbs.train.batch_schedule import Seesaw, batch_ramp, plan_batches

pytestmark = pytest.mark.usefixtures("one_thread")
SEQ = 32


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.integers(1, 10_000), st.integers(0, 200_000))
def test_one_stage_plan_is_plain_arithmetic(batch, steps, tokens):
    plan = plan_batches(None, batch, steps * batch * SEQ, SEQ, "sqrt", 1)
    bt = batch * SEQ
    assert plan.steps == steps
    assert plan.tokens_after(steps // 2) == (steps // 2) * bt
    assert plan.step_at_tokens(tokens) == math.ceil(tokens / bt)
    assert plan.steps_within(tokens) == tokens // bt
    assert plan.lr_factor(1) == plan.lr_factor(steps) == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.integers(1, 8), st.integers(0, 10**6))
def test_staged_plan_switches_on_whole_steps(doublings, batch, jitter):
    """Stage k starts at the first step boundary at or after its at_tokens; tokens only grow; the plan's total
    stays within the budget and is less than one last-stage batch short of it."""
    budget = 2_000_000
    stages, b, at = [BatchStage(0, batch)], batch, 0
    for i, d in enumerate(doublings):
        at = at + 50_000 + (jitter * (i + 1)) % 90_000
        b *= 2**d
        stages.append(BatchStage(at, b))
    plan = plan_batches(stages, batch, budget, SEQ, "sqrt", 1)
    for k, s in enumerate(stages):
        start = plan.starts[k]
        assert plan.batch_at(start + 1) == s.batch_size
        assert plan.tokens_after(start) >= s.at_tokens
        if k:
            assert plan.tokens_after(start - 1) < s.at_tokens  # not one step later than needed
        assert plan.lr_factor(start + 1) == pytest.approx((s.batch_size / batch) ** 0.5)
    last = plan.tokens_after(plan.steps)
    assert budget - stages[-1].batch_size * SEQ < last <= budget
    assert all(plan.tokens_after(s) < plan.tokens_after(s + 1) for s in range(0, plan.steps, 7))


def test_seesaw_overrides_give_sqrt_lr_per_cut_for_adam_and_constant_for_sgd(corpus):
    budget = 64 * 256
    for rule, expected in (("adam", [1.0, 0.5**0.5, 0.5]), ("sgd", [1.0, 1.0, 1.0])):
        over = Seesaw(batch_size=8, cuts=(0.5, 0.75), token_budget=budget, rule=rule).overrides()
        cfg = _cfg(corpus, budget, **over)
        run = resolve_config(cfg)
        plan = run.batches
        assert plan.batches == (8, 16, 32)
        from cbs.train.schedule import LRSchedule

        o = run.config.optim
        sched = LRSchedule(o.lr, run.steps, 0, o.schedule, step_cuts=run.lr_cuts, step_factor=o.step_factor)
        for k, start in enumerate(plan.starts):
            step = start + 1
            assert sched.lr_at(step) * plan.lr_factor(step) == pytest.approx(o.lr * expected[k])
        # Seesaw: the same tokens in fewer serial steps than the constant batch
        assert plan.tokens_after(plan.steps) == budget and plan.steps == 32 + 8 + 4


def test_batch_ramp_stages():
    assert batch_ramp(4, [0.25, 0.5], 1000) == [BatchStage(0, 4), BatchStage(250, 8), BatchStage(500, 16)]
    with pytest.raises(ConfigError, match="increasing fractions"):
        batch_ramp(4, [0.5, 0.25], 1000)


def _cfg(corpus: str, budget: int, **over) -> TrainConfig:
    base = {
        "model": {"preset": "tiny-16k", "seq_len": SEQ},
        "data": {"path": corpus},
        "batch_size": 8,
        "token_budget": budget,
        "ewa_tau": 0.9,
        "optim": {"lr": 1e-2, "warmup_steps": 2},
        "eval": {"eval_tokens": 1024, "n_log": 4, "n_dense": 3},
    }
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return TrainConfig.from_dict(base)


def _curve(store: ResultsStore) -> pd.DataFrame:
    timings = ["wall_time_s", "tokens_per_s", "mfu", "peak_memory_bytes"]
    return store.curves().drop(columns=timings).sort_values(["step", "eval_set"]).reset_index(drop=True)


def test_scheduled_run_follows_its_plan_and_resumes_bit_identically_mid_stage(corpus, tmp_path):
    schedule = [{"at_tokens": 0, "batch_size": 8}, {"at_tokens": 2048, "batch_size": 16}]
    cfg = _cfg(corpus, 24 * 256, batch_schedule=schedule, micro_batch_size=4)
    ref = ResultsStore(tmp_path / "ref")
    row = train_into(ref, cfg)
    plan = resolve_config(cfg).batches
    assert plan.starts == (0, 8) and plan.steps == 8 + 8
    assert row["steps"] == 16 and row["tokens"] == 24 * 256
    c = _curve(ref)
    assert (c["tokens"] == [plan.tokens_after(s) for s in c["step"]]).all()
    # the in-run GNS follows the stages: micro-batch 4 against each step's own global batch
    assert (c["b_big"] == [plan.batch_at(s) for s in c["step"]]).all() and (c["b_small"] == 4).all()
    lr_after = c.loc[c["step"] > 8, "lr"]
    assert lr_after.tolist() == pytest.approx(
        [1e-2 * 2**0.5] * len(lr_after)
    )  # the sqrt rule at the doubling

    class Stop(Exception):
        pass

    def stop_inside_stage_two(metrics, write_checkpoint):
        if metrics["step"] >= 10:
            write_checkpoint(tmp_path / "ckpt")
            raise Stop

    with pytest.raises(Stop):
        run_training(cfg, on_eval=stop_inside_stage_two)
    resumed = ResultsStore(tmp_path / "resumed")
    train_into(resumed, cfg, resume_from=tmp_path / "ckpt")
    pd.testing.assert_frame_equal(_curve(ref), _curve(resumed))


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"batch_schedule": [{"at_tokens": 0, "batch_size": 4}]}, "must start with"),
        (
            {"batch_schedule": [{"at_tokens": 0, "batch_size": 8}, {"at_tokens": 1024, "batch_size": 12}]},
            "integer ratio",
        ),
        (
            {
                "batch_schedule": [{"at_tokens": 0, "batch_size": 8}, {"at_tokens": 1024, "batch_size": 16}],
                "micro_batch_size": 8,
                "batch_size": 8,
            },
            None,
        ),
        (
            {"batch_schedule": [{"at_tokens": 0, "batch_size": 8}, {"at_tokens": 99_999, "batch_size": 16}]},
            "before the token budget",
        ),
        ({"batch_lr_rule": "cubic"}, "batch_lr_rule must be one of"),
        ({"optim": {"step_at": [0.5]}}, "set optim.schedule: step"),
        ({"optim": {"schedule": "step", "step_at": [0.7, 0.3]}}, "increasing fractions"),
        (
            {
                "batch_schedule": [
                    {"at_tokens": 0, "batch_size": 8},
                    {"at_tokens": 10, "batch_size": 16},
                    {"at_tokens": 20, "batch_size": 32},
                ]
            },
            "shorter than one of its batches",
        ),
        (
            {
                "batch_schedule": [{"at_tokens": 0, "batch_size": 8}, {"at_tokens": 1024, "batch_size": 4}],
                "micro_batch_size": 8,
            },
            "multiple of 8",
        ),
    ],
)
def test_bad_schedules_fail_before_training(corpus, over, match):
    cfg = _cfg(corpus, 24 * 256, **over)
    if match is None:
        assert resolve_config(cfg).batches.batches == (8, 16)  # a micro-batch of 8 divides 8 and 16
        return
    with pytest.raises(ConfigError, match=match):
        resolve_config(cfg)


def test_run_ids_of_existing_configs_do_not_change():
    """Fields added later (batch schedules, the step decay, the raw-eval cadence, GNS, the optimizer, …) stay out
    of the id at their defaults: a store written before them resumes its runs. The constants are the ids these
    configs had before (cbs at f2301e2); the data path does not exist, so it counts by its name."""
    plain = {"data": {"path": "/nonexistent/stdlib"}}
    assert TrainConfig.from_dict(plain).run_id() == "b1e95eee90aaa4b4"
    tuned = {**plain, "batch_size": 8, "optim": {"lr": 1e-2, "schedule": "cosine"}}
    assert TrainConfig.from_dict(tuned).run_id() == "f662ce282ffa1c32"
    scheduled = {**plain, "batch_schedule": [{"at_tokens": 0, "batch_size": 32}]}
    assert TrainConfig.from_dict(scheduled).run_id() != TrainConfig.from_dict(plain).run_id()


@pytest.mark.parametrize("name", ["lion", "signum", "muon"])
def test_a_schedule_with_an_optimizer_whose_lr_rule_is_undefined_is_refused(corpus, name):
    schedule = [{"at_tokens": 0, "batch_size": 8}, {"at_tokens": 2048, "batch_size": 16}]
    with pytest.raises(ConfigError, match=f"undefined for optim.name='{name}'"):
        resolve_config(_cfg(corpus, 24 * 256, batch_schedule=schedule, optim={"name": name}))
    ok = _cfg(corpus, 24 * 256, batch_schedule=schedule, batch_lr_rule="none", optim={"name": name})
    assert resolve_config(ok).batches.lr_factor(20) == 1.0
