"""The optimizer axis: every optimizer trains a tiny run and resumes from a checkpoint bit-identically; config
and spec validation; the run id; SOAP against the paper's update."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from test_train_run import checkpoint_midway, curve, train_into

from cbs.config import TrainConfig
from cbs.errors import ConfigError
from cbs.optim_params import OPTIMIZERS
from cbs.results import ResultsStore
from cbs.sweep.spec import parse_spec
from cbs.train import run_training
from cbs.train.optimizers import build_optimizer, check_available, evaluation_weights, single_optimizer


def config(corpus: str, name: str, steps: int = 8) -> TrainConfig:
    """tiny-16k at seq len 32, batch 4 (128 tokens/step), evaluated at steps 2, 4, 6 and 8."""
    return TrainConfig.from_dict(
        {
            "model": {"preset": "tiny-16k", "seq_len": 32},
            "data": {"path": corpus},
            "batch_size": 4,
            "token_budget": steps * 128,
            "ewa_tau": 0.9,
            "optim": {"name": name, "lr": 3e-3, "warmup_steps": 2, "weight_decay": 0.1},
            "eval": {"eval_tokens": 256, "n_log": 4, "n_dense": 0},
        }
    )


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_and_resumes_bit_identically(name, corpus, tmp_path, one_thread):
    cfg = config(corpus, name)
    ref = ResultsStore(tmp_path / "ref")
    row = train_into(ref, cfg)
    losses = ref.curves()["eval_loss"].to_numpy()
    assert row["optimizer"] == name and ref.runs()["optimizer"].tolist() == [name]
    assert row["status"] == "completed" and losses[-1] < losses[0]  # it learns

    checkpoint_midway(cfg, tmp_path / "ckpt", 4)
    resumed = ResultsStore(tmp_path / "resumed")
    again = train_into(resumed, cfg, resume_from=tmp_path / "ckpt")
    pd.testing.assert_frame_equal(curve(ref), curve(resumed), check_exact=True)
    assert again["final_ewa_eval_loss"] == row["final_ewa_eval_loss"]


def test_optimizers_differ_and_only_their_own_section_changes_the_run_id(corpus):
    ids = {name: config(corpus, name).run_id() for name in OPTIMIZERS}
    assert len(set(ids.values())) == len(OPTIMIZERS)
    lion = config(corpus, "lion")
    lion.optim.soap.precondition_frequency = 5  # not lion's section: same run
    assert lion.run_id() == ids["lion"]
    lion.optim.lion.beta2 = 0.98
    assert lion.run_id() != ids["lion"]


def test_adamw_run_ids_are_those_from_before_the_optimizer_axis(corpus, monkeypatch):
    cfg = config(corpus, "adamw")
    new = cfg.run_id()

    def to_dict_before_the_axis(self):  # the optim section as it was: no name, no per-optimizer sections
        d = dataclasses.asdict(self)
        d["optim"] = {k: v for k, v in d["optim"].items() if k not in (*OPTIMIZERS, "name")}
        return d

    monkeypatch.setattr(TrainConfig, "to_dict", to_dict_before_the_axis)
    assert cfg.run_id() == new


def test_unknown_optimizer_is_refused_listing_the_known_ones(corpus):
    with pytest.raises(ConfigError, match="unknown optimizer optim.name='adam'; known: adamw, lion"):
        TrainConfig.from_dict({"optim": {"name": "adam"}})
    with pytest.raises(ConfigError, match=r"grid.*unknown optimizer optim.name='sgd'"):
        parse_spec({"base": {"data": {"path": corpus}}, "grid": {"optim.name": ["adamw", "sgd"]}})
    with pytest.raises(ConfigError, match="unknown key 'optim.lion.beta'; did you mean"):
        TrainConfig.from_dict({"optim": {"name": "lion", "lion": {"beta": 0.9}}})
    with pytest.raises(ConfigError, match=r"optim.muon.lr_rule must be one of"):
        TrainConfig.from_dict({"optim": {"muon": {"lr_rule": "keller"}}})
    with pytest.raises(ConfigError, match=r"optim.lion.beta2 must be in \[0, 1\)"):
        TrainConfig.from_dict({"optim": {"lion": {"beta2": 1.0}}})


def test_a_missing_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "schedulefree" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"needs the schedulefree package.*pip install 'cbs\[optimizers\]'"):
        check_available("schedule_free_adamw")
    check_available("adamw")  # torch's own needs nothing


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(corpus):
    from cbs.model import build_model, resolve_model_config

    model = build_model(resolve_model_config(TrainConfig().model, 256))
    opt = build_optimizer(model, config(corpus, "muon").optim, 0.95)
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    assert id(model.embed.weight) not in in_muon and id(model.head.weight) not in in_muon
    assert in_muon and all(p.dim() == 2 for g in muon.param_groups for p in g["params"])
    every = {id(p) for g in opt.param_groups for p in g["params"]}
    assert every == {id(p) for p in model.parameters()} and len(every) == sum(1 for _ in model.parameters())
    with pytest.raises(ConfigError, match="chained optimizer.*parallel.strategy=ddp"):
        single_optimizer(opt)  # FSDP's state dicts take one torch optimizer
    assert single_optimizer(adamw) is adamw


def test_schedule_free_evaluates_the_averaged_weights_and_trains_on_y(corpus):
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, config(corpus, "schedule_free_adamw").optim, 0.95)
    for _ in range(3):
        model(torch.randn(4, 3)).square().sum().backward()
        opt.step()
        opt.zero_grad()
    y = model.weight.detach().clone()
    with evaluation_weights(opt):
        x = model.weight.detach().clone()
    assert not torch.equal(x, y) and torch.equal(model.weight, y)  # switched to x and back to y


def _soap_reference(grads: list[torch.Tensor], w0: torch.Tensor, lr: float, b1: float, b2: float, eps: float):
    """SOAP's update from the paper (Vyas et al. 2024, Algorithm 3, with the reference code's conventions: the
    first gradient only initialises the preconditioners, bias-corrected Adam in the eigenbasis of L = E[GGᵀ] and
    R = E[GᵀG] from ``torch.linalg.eigh``, no preconditioner refresh within the steps checked)."""
    g1 = grads[0]
    L, R = (1 - b2) * g1 @ g1.T, (1 - b2) * g1.T @ g1
    QL, QR = torch.linalg.eigh(L)[1], torch.linalg.eigh(R)[1]
    m, v, w = torch.zeros_like(w0), torch.zeros_like(w0), w0.clone()
    for t, g in enumerate(grads[1:], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (QL.T @ g @ QR) ** 2
        n = QL @ ((QL.T @ m @ QR) / (v.sqrt() + eps)) @ QR.T
        w = w - lr * (1 - b2**t) ** 0.5 / (1 - b1**t) * n
    return w


def test_soap_matches_the_papers_update_on_a_small_case():
    import pytorch_optimizer

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 4, dtype=torch.float64))
    w0 = w.detach().clone()
    grads = [torch.randn(4, 4, dtype=torch.float64) for _ in range(6)]
    opt = pytorch_optimizer.SOAP(
        [w], lr=0.01, betas=(0.9, 0.95), weight_decay=0.0, precondition_frequency=100, eps=1e-8
    )
    for g in grads:
        w.grad = g.clone()
        opt.step()
    expected = _soap_reference(grads, w0, 0.01, 0.9, 0.95, 1e-8)
    assert not torch.allclose(expected, w0)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-10, atol=1e-12)


def test_the_optimizers_figure_overlays_s_of_b_and_the_cbs_per_optimizer():
    from types import SimpleNamespace

    import numpy as np

    from cbs.fit import fit_cbs_table
    from cbs.plots.optimizers import optimizer_overlay
    from cbs.plots.registry import STORE_FIGURES, FigureUnavailable

    batches = np.array([1, 2, 4, 8, 16, 32, 64], float)
    rows = [
        {
            "model": "m",
            "n_params": 1e4,
            "data_tokens": 1e5,
            "optimizer": name,
            "batch_size": b,
            "b_opt": 2,
            "steps_to_target": a + 1000.0 / b,
        }  # fmt: skip
        for name, a in (("adamw", 50.0), ("soap", 20.0))
        for b in batches
    ]
    groups = fit_cbs_table(pd.DataFrame(rows), n_boot=20, seed=0).groups
    assert [g.optimizer for g in groups] == ["adamw", "soap"] and groups[1].fit.cbs > groups[0].fit.cbs
    fig = optimizer_overlay(groups)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    for i, g in enumerate(groups):
        assert lines[f"optimizer-cbs:{i}"].get_ydata()[0] == g.fit.cbs
        hyper = lines[f"hyperbola:{i}"]
        np.testing.assert_allclose(hyper.get_ydata(), g.fit.predict(hyper.get_xdata()), rtol=1e-12)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["adamw", "soap"]
    (drawn,) = STORE_FIGURES["optimizers"].build(SimpleNamespace(groups=groups))
    assert drawn.stem == "optimizers_m_D100k"
    with pytest.raises(FigureUnavailable, match="≥ 2 optimizers"):
        STORE_FIGURES["optimizers"].build(SimpleNamespace(groups=groups[:1]))


def test_a_checkpoint_from_before_the_optimizer_axis_resumes(corpus, tmp_path, one_thread):
    from cbs.train.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint

    cfg = config(corpus, "adamw")
    checkpoint_midway(cfg, tmp_path / "ckpt", 4)
    state = torch.load(tmp_path / "ckpt" / STATE_FILE, weights_only=False)
    for key in ("name", *OPTIMIZERS):  # the optim section as written before the axis existed
        state["config"]["optim"].pop(key, None)
    save_checkpoint(tmp_path / "old", {k: v for k, v in state.items() if k != "format_version"})
    row = run_training(cfg, resume_from=tmp_path / "old").row
    assert row["status"] == "completed" and row["steps"] == 8
    lion = dataclasses.asdict(config(corpus, "lion"))
    with pytest.raises(ConfigError, match="different run configuration"):
        load_checkpoint(tmp_path / "old", lion)


def test_each_optimizer_is_its_own_cell_with_its_own_target(corpus):
    from cbs.results.cell import Cell

    def cell_key(cfg):
        return Cell.of_config(cfg, 1000, 10_000)

    adamw = config(corpus, "adamw")
    faster = dataclasses.replace(adamw, optim=dataclasses.replace(adamw.optim, lr=1e-2), batch_size=8)
    assert cell_key(faster) == cell_key(adamw)  # lr and batch size stay within a cell
    keys = {cell_key(config(corpus, name)) for name in OPTIMIZERS}
    assert len(keys) == len(OPTIMIZERS)


def test_the_report_reads_another_optimizers_law_as_its_variable():
    from types import SimpleNamespace

    from cbs.plots.report import held_fixed

    src = SimpleNamespace(
        analysis=SimpleNamespace(fixed_value=lambda other: 1e5 if other == "data_tokens" else None)
    )
    assert held_fixed(src, "n_params/lion") == held_fixed(src, "n_params") == "D = 100k"
    assert held_fixed(src, "data_tokens/soap") == "pooled over N"
