"""Pieces of a training run that need no data: EWA, learning-rate schedules, eval schedule, device peaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cbs.config import EvalConfig
from cbs.train.device import peak_flops
from cbs.train.evaluation import eval_steps, loss_sum
from cbs.train.ewa import EWA
from cbs.train.schedule import LRSchedule


def test_ewa_bias_correction_matches_hand_computation():
    model = nn.Linear(2, 1, bias=False)
    ewa = EWA(model, tau=0.5)
    for theta in ([1.0, 2.0], [3.0, 4.0], [5.0, 6.0]):
        with torch.no_grad():
            model.weight.copy_(torch.tensor([theta]))
        ewa.update()
    # ξ3 = 0.125·θ1 + 0.25·θ2 + 0.5·θ3, corrected by 1/(1 − 0.5³): weights 1/7, 2/7, 4/7
    torch.testing.assert_close(ewa.shadow[0], torch.tensor([[0.125 + 0.75 + 2.5, 0.25 + 1.0 + 3.0]]))
    target = nn.Linear(2, 1, bias=False)
    ewa.copy_to(target)
    torch.testing.assert_close(target.weight, torch.tensor([[27 / 7, 34 / 7]]))
    assert ewa.correction == pytest.approx(1 / 0.875)


def test_ewa_of_a_constant_is_the_constant_and_state_roundtrips():
    model = nn.Linear(3, 3, bias=False)
    ewa = EWA(model, tau=0.9995)
    ewa.update()  # one step: the corrected average is θ itself despite τ close to 1
    target = nn.Linear(3, 3, bias=False)
    ewa.copy_to(target)
    torch.testing.assert_close(target.weight, model.weight)
    other = EWA(model, tau=0.9995)
    other.load_state_dict(ewa.state_dict())
    assert other.t == 1 and torch.equal(other.shadow[0], ewa.shadow[0])


def test_constant_schedule_with_linear_warmup():
    s = LRSchedule(lr=1.0, steps=100, warmup_steps=10)
    assert [s.lr_at(k) for k in (1, 5, 10, 11, 100)] == [0.1, 0.5, 1.0, 1.0, 1.0]
    assert LRSchedule(lr=2.0, steps=10, warmup_steps=0).lr_at(1) == 2.0


def test_cosine_and_wsd_schedules():
    cos = LRSchedule(lr=1.0, steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert (
        cos.lr_at(10) == 1.0 and cos.lr_at(60) == pytest.approx(0.55) and cos.lr_at(110) == pytest.approx(0.1)
    )
    wsd = LRSchedule(lr=1.0, steps=100, warmup_steps=10, schedule="wsd", decay_fraction=0.2)
    assert (
        wsd.lr_at(80) == 1.0 and wsd.lr_at(90) == pytest.approx(0.5) and wsd.lr_at(100) == pytest.approx(0.0)
    )


def test_eval_schedule_is_log_spaced_dense_at_the_end_and_ends_at_the_last_step():
    steps = eval_steps(1000, EvalConfig(n_log=10, dense_tail_fraction=0.2, n_dense=11))
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == 1000
    assert [s for s in steps if s >= 800] == list(range(800, 1001, 20))
    assert 10 in steps and 100 in steps  # log-spaced decades
    assert eval_steps(1, EvalConfig()) == [1]
    assert eval_steps(7, EvalConfig(n_log=0, n_dense=0)) == [7]


def test_peak_flops_table():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("cpu") is None


def test_eval_schedule_of_a_capped_run_is_dense_from_its_data_budget_on():
    # a stop-at-target run allowed 4 x D: the dense evaluations start near D (step 250), not near the cap
    cfg = EvalConfig(n_log=10, dense_tail_fraction=0.2, n_dense=12)
    steps = eval_steps(1000, cfg, data_steps=250)
    dense = [s for s in steps if s >= 200]
    assert steps[-1] == 1000 and dense[0] == 200
    assert len(dense) >= 12 and len([s for s in dense if s <= 400]) >= 4  # several evaluations around D
    ratios = np.diff(np.log(dense[1:-1]))  # geometric spacing from D to the cap
    assert ratios.max() < 2 * np.log(1000 / 200) / 11
    assert eval_steps(1000, cfg, data_steps=1000) == eval_steps(1000, cfg)


class MeanToken(nn.Module):
    """A 'model' whose loss is the mean input token; it counts its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return inputs.double().mean()


def test_loss_sum_pads_to_the_forwards_every_rank_makes():
    windows = torch.arange(5 * 3).reshape(5, 3)  # 5 windows: 3 forwards at batch 2
    plain, padded = MeanToken(), MeanToken()
    total = loss_sum(plain, windows, 2)
    assert plain.calls == 3 and total.item() == pytest.approx(sum(w[:-1].double().mean() for w in windows))
    assert loss_sum(padded, windows, 2, forwards=5).item() == total.item()  # dummy forwards count for nothing
    assert padded.calls == 5
    empty = MeanToken()
    assert loss_sum(empty, windows[:0], 2, forwards=2).item() == 0.0 and empty.calls == 2
