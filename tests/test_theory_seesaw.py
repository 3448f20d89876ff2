"""Seesaw on the exact testbed: a step-decay SGD schedule and its batch-growing twin reach the same risk at
equal samples with fewer serial steps; the gap is the O(γ) term the twin does not match, so it shrinks with γ."""

from __future__ import annotations

import json

import pytest

from cbs.cli import main
from cbs.errors import ConfigError
from cbs.theory.problem import PowerLawProblem
from cbs.theory.seesaw import Phase, exact_risk, seesaw_check, seesaw_twin, step_decay

PROBLEM = PowerLawProblem(a=2.0, b=4.0, sigma=1.0, dim=256)


def test_seesaw_matches_step_decay_with_fewer_steps():
    r = seesaw_check(PROBLEM, lr=0.125, batch=1, samples=2**14, cuts=3)
    # equal samples, batches 1, 2, 4, 8 over four equal phases: 4096 + 2048 + 1024 + 512 steps
    assert r["steps_decay"] == 2**14 and r["steps_seesaw"] == 7680
    # the two schedules agree to first order in γ (drift γ/B and noise γ²/B² per sample); the γ²λ²/B term of
    # the Gaussian fourth moment is not matched, which leaves a few per cent at γ = 1/8
    assert r["risk_ratio"] == pytest.approx(1.0, abs=0.05)
    assert r["risk_decay"] < 0.05 * PROBLEM.initial_excess_risk  # both schedules actually learned


def test_seesaw_gap_is_first_order_in_the_step():
    gaps = [seesaw_check(PROBLEM, lr, 1, 2**14, 3)["risk_ratio"] - 1 for lr in (0.25, 0.125, 0.0625)]
    assert all(g > 0 for g in gaps)
    assert gaps[1] / gaps[0] == pytest.approx(0.5, abs=0.1)  # halving γ halves the gap
    assert gaps[2] / gaps[1] == pytest.approx(0.5, abs=0.1)


def test_twins_and_their_rules():
    decay = step_decay(0.2, 2, 3072, 2)
    assert [(p.batch, p.lr) for p in decay] == [(2, 0.2), (2, 0.1), (2, 0.05)]
    assert [(p.batch, p.lr) for p in seesaw_twin(decay, "sgd")] == [(2, 0.2), (4, 0.2), (8, 0.2)]
    adam = seesaw_twin(decay, "adam")
    assert [p.batch for p in adam] == [2, 4, 8]
    assert adam[1].lr == pytest.approx(0.2 / 2**0.5) and adam[2].lr == pytest.approx(0.1)


def test_a_single_phase_is_its_own_twin_and_batch_one_matches_the_risk_recursion():
    phases = step_decay(0.1, 1, 512, 0)
    assert seesaw_twin(phases) == phases
    from cbs.theory.recursion import propagate

    trace = propagate(PROBLEM, [1], [0.1], [0.0], [512])  # τ = 0: the EWA is the last iterate
    assert exact_risk(PROBLEM, phases) == pytest.approx(float(trace.final_risk[0]), rel=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: step_decay(0.1, 1, 1000, 3), "must split into 4 equal phases"),
        (lambda: seesaw_twin([Phase(1, 0.3, 8), Phase(1, 0.2, 8)]), "not 1/integer"),
        (lambda: seesaw_twin([Phase(1, 0.3, 8)], "lion"), "unknown Seesaw rule"),
        (lambda: exact_risk(PROBLEM, [Phase(1, 3.0, 8)]), "unstable"),
    ],
)
def test_bad_schedules_are_refused(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_cli_json(tmp_path, capsys):
    out = tmp_path / "seesaw.json"
    assert main(["theory", "seesaw", "--cuts", "2", "--samples", "3072", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"risk_decay", "risk_seesaw", "steps_decay", "steps_seesaw", "schedule_seesaw"}
    assert r["steps_seesaw"] < r["steps_decay"]
    assert "serial steps saved" in capsys.readouterr().out
