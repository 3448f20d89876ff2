"""The analysis scripts behind the committed results run on the committed store with today's library (they
are not part of the package, so nothing else would notice an API change breaking them)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "results" / "cpu-cbs"
SPECS = [REPO / "experiments" / f"cpu-{name}.yaml" for name in ("chinchilla", "fixed-data", "fixed-model")]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "analysis" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (STORE / "runs").exists(), reason="the committed CPU store is not in this checkout")
def test_cpu_reproduction_refits_the_committed_store(tmp_path):
    out = tmp_path / "fits"
    assert (
        _script("cpu_reproduction").main([str(STORE), *map(str, SPECS), "--n-boot", "20", "--out", str(out)])
        == 0
    )
    committed = {p.stem: json.loads(p.read_text()) for p in (STORE / "fits").glob("cpu-*.json")}
    for name, old in committed.items():
        new = json.loads((out / f"{name}.json").read_text())
        # the point estimates do not depend on the bootstrap: the same B* per group as the committed fit
        assert [g["cbs"] for g in new["groups"]] == pytest.approx([g["cbs"] for g in old["groups"]], rel=1e-9)
    assert "saved by stop-at-target" in (out / "summary.md").read_text()
