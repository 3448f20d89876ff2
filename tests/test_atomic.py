import json
import os
import stat

import pandas as pd
import pytest
from matplotlib.figure import Figure

from cbs.atomic import atomic_path, atomic_write, write_text_atomic
from cbs.fit.tables import write_csv, write_json
from cbs.plots import style
from cbs.results import ResultsStore
from cbs.train.checkpoint import save_checkpoint


@pytest.fixture
def fsyncs(monkeypatch):
    """Count os.fsync calls, telling files from folders."""
    calls = []
    real = os.fsync

    def counting(fd):
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_content_round_trips_and_folder_is_made(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.txt"
    assert write_text_atomic(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"\x00\x01"))
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failing_writer_leaves_target_untouched_and_no_temp_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failing_writer_creates_nothing_when_there_was_no_target(tmp_path):
    with pytest.raises(ValueError), atomic_path(tmp_path / "out.csv") as tmp:
        tmp.write_text("a,b\n")
        raise ValueError("bad row")
    assert list(tmp_path.iterdir()) == []


def test_file_and_folder_are_fsynced(tmp_path, fsyncs):
    write_text_atomic(tmp_path / "a.md", "# a\n")
    assert sorted(fsyncs) == (["dir", "file"] if os.name == "posix" else ["file"])


def _figure() -> Figure:
    fig = Figure()
    fig.add_subplot().plot([1, 2], [3, 4])
    return fig


@pytest.mark.parametrize(
    "write, n_files",
    [
        (lambda d: write_json(d / "r.json", {"x": 1.5}), 1),
        (lambda d: write_csv(d / "r.csv", pd.DataFrame({"x": [1, 2]})), 1),
        (lambda d: style.save(_figure(), d, "fig", ("png", "pdf")), 2),
        (lambda d: save_checkpoint(d, {"step": 3}), 1),
        (lambda d: ResultsStore(d).write_run({"run_id": "a", "status": "completed"}, []), 2),
    ],
    ids=["json", "csv", "figures", "checkpoint", "store"],
)
def test_every_writer_goes_through_the_helper(tmp_path, fsyncs, write, n_files):
    write(tmp_path)
    assert fsyncs.count("file") == n_files
    assert fsyncs.count("dir") == (n_files if os.name == "posix" else 0)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_failing_figure_keeps_the_old_file(tmp_path, monkeypatch):
    (tmp_path / "fig.png").write_bytes(b"old")
    fig = _figure()

    def broken_savefig(path, **kwargs):
        path.write_bytes(b"partial")
        raise OSError("renderer died")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    with pytest.raises(OSError, match="renderer died"):
        style.save(fig, tmp_path, "fig", ("png",))
    assert (tmp_path / "fig.png").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_json_written_is_complete(tmp_path):
    write_json(tmp_path / "r.json", {"a": [1, 2], "b": float("nan")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2], "b": None}
