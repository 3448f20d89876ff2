"""Warnings and unreached batch sizes are visible where people look: figures, the report's table, JSON input."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from cbs.fit import fit_cbs_table
from cbs.fit.tables import write_json
from cbs.plots.cbs_scaling import cbs_scaling, select_panels
from cbs.plots.report import cbs_table, warning_items
from cbs.plots.sources import points_from_json
from cbs.plots.steps import steps_vs_batch

BATCHES = [8, 16, 32, 64, 128, 256]
NOISE = [1.02, 0.98, 1.01, 0.99, 1.03, 0.97]


def _analysis():
    """Three models: m2 never reaches the target at B = 256 and has its lr on the grid edge at B = 64."""
    rows = []
    for model, n in (("m1", 1e6), ("m2", 2e6), ("m3", 4e6)):
        for batch, eps in zip(BATCHES, NOISE, strict=True):
            unreached = model == "m2" and batch == 256
            rows.append({"model": model, "n_params": n, "data_tokens": 1e8, "b_opt": 16, "batch_size": batch,
                         "steps_to_target": np.nan if unreached else (100 + 32000 / batch) * eps,
                         "lr": 1e-2 if model == "m2" and batch == 64 else 3e-3, "lr_grid_min": 1e-3,
                         "lr_grid_max": 1e-2})  # fmt: skip
    return fit_cbs_table(pd.DataFrame(rows), n_boot=30)


def test_steps_figure_marks_unreached_batch_sizes_and_warnings():
    analysis = _analysis()
    fig = steps_vs_batch(analysis.groups)
    lines = {a.get_gid(): a for a in fig.axes[0].get_lines() if a.get_gid()}
    unreached = lines["unreached:1"]
    assert list(unreached.get_xdata()) == [256.0] and unreached.get_markerfacecolor() == "none"
    assert "unreached:0" not in lines and "unreached:2" not in lines
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("m2") and t.endswith("⚠ lr_edge") for t in labels)
    assert not any(t.startswith("m1") and "⚠" in t for t in labels)
    assert "target not reached (at top)" in labels


def test_scaling_panel_draws_warned_groups_hollow_also_from_json(tmp_path):
    analysis = _analysis()
    path = tmp_path / "fit.json"
    write_json(path, analysis.to_dict())
    assert [w["code"] for w in json.loads(path.read_text())["groups"][1]["warnings"]] == ["lr_edge"]
    points = points_from_json(path)
    assert [p.warnings for p in points] == [(), ("lr_edge",), ()]
    panels, _ = select_panels(points, n_boot=20)
    fig = cbs_scaling(panels)
    (warned,) = [a for a in fig.axes[0].get_lines() if a.get_gid() == "warned"]
    assert list(warned.get_xdata()) == [2e6] and warned.get_markerfacecolor() == "white"


def test_report_table_lists_unreached_batch_sizes_and_warnings():
    src = SimpleNamespace(analysis=_analysis(), is_theory=lambda: False)
    table = cbs_table(src).set_index("model")
    assert table.loc["m2", "target not reached at B (seqs)"] == "256"
    assert table.loc["m2", "warnings"] == "lr_edge" and table.loc["m1", "warnings"] == ""
    (item,) = warning_items(src)
    assert item.startswith("m2, D=1e+08 — lr_edge: lr of the fastest run") and "B = 64 (top 0.01)" in item
