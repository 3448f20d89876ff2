"""benchmarks/bench_gpu.py end to end: the --smoke CPU path prints the table, and without CUDA it refuses."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "bench_gpu.py"


def run_script(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_smoke_prints_header_and_a_micro_row(tmp_path):
    out = run_script(tmp_path, "--smoke")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["preset"])
    assert lines[header].split() == [
        "preset",
        "compile",
        "ranks",
        "cbs",
        "tok/s",
        "plain",
        "tok/s",
        "cbs/plain",
        "MFU",
    ]
    preset, compile_, ranks, cbs, plain, ratio, mfu = lines[header + 1].split()
    assert (preset, compile_, ranks, mfu) == ("micro-4k", "off", "1", "n/a")
    cbs_tps, plain_tps = (float(v.replace(",", "")) for v in (cbs, plain))
    assert cbs_tps > 0 and plain_tps > 0
    assert re.fullmatch(r"\d+\.\d\d", ratio) and float(ratio) > 0
    assert len(lines) == header + 2  # one preset, compile off, one rank


def test_without_cuda_and_smoke_exits_2_with_the_fix(tmp_path):
    out = run_script(tmp_path, CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 2
    assert "no CUDA device found" in out.stderr and "--smoke" in out.stderr
    assert out.stdout == ""
