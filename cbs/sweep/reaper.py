"""Reap a local Ray's processes once the sweep driver that started it is gone (Linux: reads /proc).

Killed with SIGKILL, a driver cannot shut its local Ray down, and Ray's agents (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``) outlive it and ignore SIGTERM. ``start_reaper`` runs this file as a small stdlib-only
process that, every second until the driver exits, records the Ray session's processes: those whose command
line names the session dir (raylet, GCS, log monitor, ...) and all their descendants (agents, workers rename
their command line, so they are found by parent). Once the driver is gone it SIGKILLs every recorded process
still alive (same pid and start time: a reused pid is never hit). ``ray_session`` stops the reaper after a clean
``ray.shutdown()``. Where /proc is absent (macOS, Windows) no reaper is started.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")
POLL_S = 1.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid``, None once it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def session_processes(session_dir: str, exclude: int) -> dict[int, int]:
    """{pid: start time} of this user's processes whose command line names ``session_dir``, and of all
    their descendants, ``exclude`` (the reaper itself) left out."""
    needle, uid = session_dir.encode(), os.getuid()
    table: dict[int, tuple[int, int]] = {}
    roots = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        pid = int(entry.name)
        try:
            if entry.stat().st_uid != uid:
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        stat = _stat(pid)
        if stat is None:
            continue
        table[pid] = stat
        if needle in cmdline:
            roots.add(pid)
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return {pid: table[pid][1] for pid in found}


def _driver_exit(driver: int) -> int | None:
    """A pidfd that becomes readable when ``driver`` exits, None where pidfds are unsupported."""
    try:
        return os.pidfd_open(driver)
    except (AttributeError, OSError):
        return None


def watch(driver: int, session_dir: str) -> None:
    """Record the session's processes until ``driver`` exits, then SIGKILL those still alive."""
    me = os.getpid()
    recorded: dict[int, int] = {}
    fd = _driver_exit(driver)
    while True:
        recorded.update(session_processes(session_dir, me))
        if fd is not None:
            if select.select([fd], [], [], POLL_S)[0]:
                break
        elif _stat(driver) is None:
            break
        else:
            time.sleep(POLL_S)
    recorded.update(session_processes(session_dir, me))
    for pid, start in recorded.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def start_reaper(session_dir: str) -> subprocess.Popen | None:
    """Start the reaper of this process's local Ray session (None where /proc is absent). Stop it with
    ``stop_reaper`` after a clean ``ray.shutdown()``."""
    if not (PROC / str(os.getpid()) / "stat").exists():
        return None
    return subprocess.Popen(  # -I: stdlib only, nothing of the caller's environment or directory
        [sys.executable, "-I", str(Path(__file__).resolve()), str(os.getpid()), session_dir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or a kill of the driver's process group leaves it to do its job
    )


def stop_reaper(reaper: subprocess.Popen | None) -> None:
    """Stop a reaper whose Ray was shut down cleanly (it then kills nothing)."""
    if reaper is not None:
        reaper.terminate()
        reaper.wait()


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
