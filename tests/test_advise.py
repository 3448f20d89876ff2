"""`cbs advise`: bundled laws reproduce their published forms, a fitted law is forecast with an interval that
matches its bootstrap, the trade-off follows the hyperbola, and bad input fails before any fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cbs.advise import PlannedRun, from_fit, from_published, published_law, trade_off
from cbs.cli import main
from cbs.errors import ConfigError
from cbs.fit.power_law import fit_joint_power_law, fit_power_law

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n_millions", [85, 151, 302, 604, 1208])
def test_zhang_chinchilla_law_reproduces_the_notebook(tmp_path, n_millions):
    out = tmp_path / "advise.json"
    n = n_millions * 1e6
    assert main(["advise", "--n-params", str(n), "--tokens", str(20 * n), "--json", str(out)]) == 0
    forecasts = {f["law"]: f for f in json.loads(out.read_text())["forecasts"]}
    zhang = forecasts["zhang2024-chinchilla"]
    expected = 93.1968 * n_millions**0.46828  # the authors' notebook coefficients
    assert zhang["batch_size"] == pytest.approx(expected, rel=1e-12)
    assert zhang["batch_tokens"] == pytest.approx(512 * expected, rel=1e-12)
    assert zhang["units"] == "sequences of 512 tokens" and not zhang["extrapolated"]
    # B* = 1.2·256 + 0.2·B_noise (the paper's protocol) read backwards
    assert zhang["b_noise"] == pytest.approx((expected - 1.2 * 256) / 0.2, rel=1e-12)
    assert set(forecasts) == {"zhang2024-chinchilla", "zhang2024-fixed-data", "deepseek2024"}


def test_deepseek_uses_its_flops_per_token_and_converts_tokens_to_sequences():
    run = PlannedRun(n_params=12 * 24 * 2048**2, tokens=1e11, seq_len=4096, n_layers=24, d_model=2048)
    f = from_published(published_law("deepseek2024"), run)
    m = 72 * 24 * 2048**2 + 6 * 24 * 2048 * 4096
    assert f.batch_tokens == pytest.approx(0.2920 * (m * 1e11) ** 0.3271, rel=1e-12)
    assert f.batch_size == pytest.approx(f.batch_tokens / 4096, rel=1e-12)
    assert f.extras["lr_opt"] == pytest.approx(0.3118 * (m * 1e11) ** -0.1250, rel=1e-12)
    assert f.kind == "optimal" and f.trade_off == [] and f.b_noise is None
    assert f.extrapolated  # C ≈ 8.4e20 FLOPs lies past the 3e20 the law was fitted on
    assert any("outside the law's measured range" in w for w in f.warnings)


def test_sequence_length_conversion_keeps_tokens_and_says_so():
    law = published_law("zhang2024-chinchilla")
    at_512 = from_published(law, PlannedRun(151e6, 3.02e9, 512))
    at_2048 = from_published(law, PlannedRun(151e6, 3.02e9, 2048))
    assert at_2048.batch_tokens == pytest.approx(at_512.batch_tokens)
    assert at_2048.batch_size == pytest.approx(at_512.batch_size / 4)
    assert any("sequences of 512 tokens" in w for w in at_2048.warnings)
    assert not any("sequences of 512 tokens" in w for w in at_512.warnings)


def test_trade_off_follows_the_hyperbola():
    rows = trade_off(100.0, 400.0)
    at_4 = rows[-1]  # B = 4·B* = B_noise: twice the minimal steps and twice the minimal samples
    assert at_4["batch_size"] == 400.0
    assert at_4["steps_over_min"] == pytest.approx(2.0) and at_4["samples_over_min"] == pytest.approx(2.0)
    assert [r["batch_size"] for r in rows] == [25.0, 50.0, 100.0, 200.0, 400.0]
    assert trade_off(100.0, None) == []


def _joint_fit_dict(seed: int = 0, n_boot: int = 2000) -> tuple[dict, float, float, float]:
    """A CBS fit dict whose joint law is B* = 0.05·N_M^-0.1·D^0.45 plus 3% noise on a 4×4 (N, D) grid."""
    rng = np.random.default_rng(seed)
    n_m, d = np.meshgrid([1.0, 2.0, 4.0, 8.0], [1e6, 4e6, 1.6e7, 6.4e7])
    n_m, d = n_m.ravel(), d.ravel()
    cbs = 0.05 * n_m**-0.1 * d**0.45 * np.exp(rng.normal(0, 0.03, n_m.size))
    law = fit_joint_power_law({"n_params": n_m, "data_tokens": d}, cbs, n_boot=n_boot, seed=seed)
    fit = {
        "b_opt": 8.0,
        "overhead": 0.2,
        "laws": {"joint": {**law.to_dict(), "variables": ["n_params", "data_tokens"], "form": "joint"}},
        "groups": [
            {"n_params": a * 1e6, "data_tokens": b, "cbs": c} for a, b, c in zip(n_m, d, cbs, strict=True)
        ],
    }
    return fit, 0.05, -0.1, 0.45


def test_fit_forecast_recovers_the_law_and_its_interval_covers_it():
    fit, c, a, b = _joint_fit_dict()
    run = PlannedRun(n_params=3e6, tokens=1e7, seq_len=64)
    f = from_fit(fit, run, 64, "synthetic")
    truth = c * 3.0**a * 1e7**b
    assert f.batch_size == pytest.approx(truth, rel=0.03)  # 3% noise on 16 points, an interior point
    assert f.interval[0] < f.batch_size < f.interval[1]
    assert not f.extrapolated
    far = from_fit(fit, PlannedRun(n_params=3e6, tokens=1e9, seq_len=64), 64, "synthetic")
    assert far.extrapolated and any("D = 1e+09 lies outside" in w for w in far.warnings)


def test_fit_forecast_interval_covers_the_truth_at_its_level():
    """Over 60 noise draws the 95% interval holds the true B* in 85–100% of them (60 Bernoulli(0.95) trials
    fall below 85% with probability < 0.2%)."""
    run = PlannedRun(n_params=3e6, tokens=1e7, seq_len=64)
    hits = []
    for seed in range(60):
        fit, c, a, b = _joint_fit_dict(seed, n_boot=400)
        f = from_fit(fit, run, 64, "synthetic")
        hits.append(f.interval[0] < c * 3.0**a * 1e7**b < f.interval[1])
    assert 0.85 <= np.mean(hits) <= 1.0


def test_covariance_interval_matches_the_bootstrap_band():
    """The JSON carries the law's bootstrap covariance; the normal interval on the log scale it gives agrees
    with the percentile band of the bootstrap samples themselves within 10% of the band's width."""
    rng = np.random.default_rng(1)
    x = np.geomspace(1e5, 1e8, 8)
    y = 0.03 * x**0.4 * np.exp(rng.normal(0, 0.05, x.size))
    law = fit_power_law(x, y, n_boot=4000, seed=1)
    fit = {
        "laws": {"data_tokens": {**law.to_dict(), "variables": ["data_tokens"], "form": "d"}},
        "groups": [],
    }
    f = from_fit(fit, PlannedRun(n_params=1e6, tokens=3e6, seq_len=64), 64, "synthetic")
    lo, hi = law.band(3e6)
    width = float(hi - lo)
    assert f.interval[0] == pytest.approx(float(lo), abs=0.1 * width)
    assert f.interval[1] == pytest.approx(float(hi), abs=0.1 * width)


def test_store_and_its_fit_json_give_the_same_forecast(tmp_path):
    store = REPO / "results" / "cpu-cbs"
    fit_json = tmp_path / "fit.json"
    assert main(["fit", "cbs", str(store), "--json", str(fit_json)]) == 0
    outs = []
    for source in (store, fit_json):
        out = tmp_path / f"{source.name}.advise.json"
        args = ["advise", "--n-params", "6288", "--tokens", "251520", "--seq-len", "64", "--law", "none"]
        assert main([*args, "--from", str(source), "--json", str(out)]) == 0
        outs.append(json.loads(out.read_text())["forecasts"][0])
    assert outs[0]["batch_size"] == pytest.approx(outs[1]["batch_size"], rel=1e-12)
    assert outs[0]["interval"] == pytest.approx(outs[1]["interval"], rel=1e-12)
    assert outs[0]["interval"][0] < outs[0]["batch_size"] < outs[0]["interval"][1]
    assert outs[0]["law"] == "fit:joint"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--law", "kaplan"], "unknown law 'kaplan'; known laws: zhang2024-chinchilla"),
        (["--n-layers", "12"], "give --n-layers and --d-model together"),
        (["--from", "/nonexistent/store"], "does not exist"),
        (["--law", "none"], "nothing to forecast"),
        (["--fit-law", "joint"], "--fit-law needs --from"),
    ],
)
def test_bad_input_is_refused_with_the_fix(capsys, args, message):
    assert main(["advise", "--n-params", "1e8", "--tokens", "2e9", *args]) == 2
    assert message in capsys.readouterr().err


def test_non_positive_size_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["advise", "--n-params", "-5", "--tokens", "2e9"])
    assert exc.value.code == 2
    assert "must be a finite number > 0" in capsys.readouterr().err


def test_unknown_law_name_is_a_config_error():
    with pytest.raises(ConfigError, match="known laws"):
        published_law("nope")
