"""In-run gradient noise scale: the estimators on gradients with known moments, the EMA tracker, the probe on
a real backward, and the curve columns of whole runs (on, off, resumed, bad settings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train_run import config, curve

from cbs.config import TrainConfig
from cbs.errors import ConfigError
from cbs.results import ResultsStore
from cbs.train import run_training
from cbs.train.distributed import Ranks
from cbs.train.gns import COLUMNS, GNSTracker, GradientProbe, unbiased_estimates

pytestmark = pytest.mark.usefixtures("one_thread")


def test_estimators_recover_known_gradient_moments():
    """Per-sample gradients G + noise with a known diagonal covariance: the per-step estimators average to
    |G|² and tr Σ. Tolerance: 4 standard errors of the mean over the steps (a fixed seed; a biased
    estimator, e.g. one that forgot the 1/B terms, misses by far more), and those are < 3% of the truth."""
    rng = np.random.default_rng(0)
    dim, b_small, b_big, steps = 40, 4, 16, 6000
    grad = rng.normal(size=dim) * 0.3
    sd = np.linspace(0.2, 1.5, dim)  # Σ = diag(sd²)
    true_grad_sq, true_trace = grad @ grad, np.sum(sd**2)
    samples = grad + sd * rng.standard_normal((steps, b_big, dim))
    g_small = samples[:, :b_small].mean(1)  # nested, as a first micro-batch inside its step
    g_big = samples.mean(1)
    grad_sq, trace = unbiased_estimates((g_small**2).sum(1), (g_big**2).sum(1), b_small, b_big)
    for est, true in ((grad_sq, true_grad_sq), (trace, true_trace)):
        se = est.std(ddof=1) / np.sqrt(steps)
        assert 4 * se < 0.03 * true
        assert abs(est.mean() - true) < 4 * se
    # the naive reading |G_b|² is biased by tr Σ / b_big, far outside the tolerance
    naive = (g_big**2).sum(1).mean()
    assert abs(naive - true_grad_sq) > 10 * grad_sq.std(ddof=1) / np.sqrt(steps)


def test_tracker_bias_corrects_and_takes_the_ratio_of_averages():
    tracker = GNSTracker(decay=0.9, device=torch.device("cpu"))
    empty = tracker.read(Ranks())
    assert empty["b_simple"] is None and empty["grad_sq_small"] is None
    steps = [(5.0, 2.0), (9.0, 3.0), (4.0, 2.5)]
    for small, big in steps:
        tracker.update(torch.tensor(small), torch.tensor(big), 2, 8)
    est = [unbiased_estimates(s, b, 2, 8) for s, b in steps]
    weights = np.array([0.9**2, 0.9, 1.0]) * 0.1 / (1 - 0.9**3)  # bias-corrected EMA weights
    grad_sq = float(weights @ [g for g, _ in est])
    trace = float(weights @ [t for _, t in est])
    out = tracker.read(Ranks())
    assert out["gns_grad_sq"] == pytest.approx(grad_sq, rel=1e-6)
    assert out["gns_trace"] == pytest.approx(trace, rel=1e-6)
    assert out["b_simple"] == pytest.approx(trace / grad_sq, rel=1e-6)
    assert out["grad_sq_small"] == pytest.approx(6.0) and out["grad_sq_big"] == pytest.approx(2.5)
    assert (out["b_small"], out["b_big"]) == (2, 8)
    # one step after a read: the interval means restart, the EMAs go on
    tracker.update(torch.tensor(1.0), torch.tensor(0.5), 4, 16)  # a batch schedule's next stage
    again = tracker.read(Ranks())
    assert again["grad_sq_small"] == 1.0 and again["gns_grad_sq"] != pytest.approx(grad_sq)
    assert (again["b_small"], again["b_big"]) == (4, 16)
    g4, t4 = unbiased_estimates(1.0, 0.5, 4, 16)
    assert again["gns_grad_sq"] == pytest.approx((0.9 * grad_sq * (1 - 0.9**3) + 0.1 * g4) / (1 - 0.9**4))


def test_probe_reads_the_first_micro_batch_gradient():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    x, y = torch.randn(8, 6), torch.randn(8, 1)

    def loss(sl):
        return torch.nn.functional.mse_loss(model(x[sl]), y[sl])

    first = torch.autograd.grad(loss(slice(0, 4)), list(model.parameters()))
    expected_small = sum(float((g**2).sum()) for g in first)
    probe = GradientProbe.for_run(
        model,
        None,
        enabled=True,
        decay=0.5,
        max_batch_size=8,
        micro_batch_size=4,
        device=torch.device("cpu"),
    )
    for i, sl in enumerate((slice(0, 4), slice(4, 8))):
        (loss(sl) / 2).backward()
        probe.after_backward(first=i == 0)
    big = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    probe.end_step(big, 8)
    out = probe.tracker.read(Ranks())
    assert out["grad_sq_small"] == pytest.approx(expected_small, rel=1e-5)
    assert out["grad_sq_big"] == pytest.approx(float(big) ** 2, rel=1e-5)
    # one batch size only (no accumulation, one rank), or switched off: no probe
    common = {"decay": 0.5, "max_batch_size": 8, "device": torch.device("cpu")}
    assert GradientProbe.for_run(model, None, enabled=True, micro_batch_size=8, **common) is None
    assert GradientProbe.for_run(model, None, enabled=False, micro_batch_size=4, **common) is None


def test_runs_with_micro_batches_record_the_noise_scale(corpus, tmp_path):
    on, off = ResultsStore(tmp_path / "on"), ResultsStore(tmp_path / "off")
    seen = []
    run_training(config(corpus, micro_batch_size=2), store=on, on_eval=lambda m, _: seen.append(m))
    run_training(config(corpus, micro_batch_size=2, gns={"enabled": False}), store=off)
    c = on.curves()
    assert (c.b_small == 2).all() and (c.b_big == 8).all()
    assert np.isfinite(c[["grad_sq_small", "grad_sq_big", "gns_trace", "gns_grad_sq"]]).all().all()
    # a smaller batch's gradient is noisier: E|G_s|² - E|G_b|² = tr Σ (1/b_small - 1/b_big) > 0
    assert (c.grad_sq_small > c.grad_sq_big).mean() > 0.5 and (c.gns_trace > 0).all()
    ok = c.gns_grad_sq > 0
    np.testing.assert_allclose(c.b_simple[ok], (c.gns_trace / c.gns_grad_sq)[ok])
    assert c.b_simple[~ok].isna().all()
    assert all(m["b_small"] == 2 for m in seen)
    # GNS off (or one batch size per step): the columns are null, and the run itself is the same
    assert off.curves()[list(COLUMNS)].isna().all().all()
    pd.testing.assert_frame_equal(
        curve(on).drop(columns=list(COLUMNS)), curve(off).drop(columns=list(COLUMNS))
    )
    assert ResultsStore(tmp_path / "on").runs().run_id.tolist() == off.runs().run_id.tolist()


def test_bad_gns_settings_are_refused_and_gns_is_not_in_the_run_id(corpus):
    with pytest.raises(ConfigError, match="gns.ema_decay"):
        config(corpus, gns={"ema_decay": 1.0})
    with pytest.raises(ConfigError, match="gns.emadecay"):
        TrainConfig.from_dict({"gns": {"emadecay": 0.9}})
    assert config(corpus, gns={"enabled": False}).run_id() == config(corpus).run_id()
