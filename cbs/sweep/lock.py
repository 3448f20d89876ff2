"""One driver per results store: `cbs sweep` and `cbs branch` both keep their Tune state and pruning decisions in
the store (``.ray/``, ``.prune/``) and remove them when their grid is complete, so a second driver on the same
store at the same time could lose the first one's state. The lock is an advisory ``flock`` on ``DIR/.driver.lock``,
released by the kernel whenever its holder ends (kill -9 included): a stale lock never blocks a resume."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cbs.errors import ResultsError

LOCK_NAME = ".driver.lock"


@contextmanager
def driver_lock(root: Path) -> Iterator[None]:
    """Hold ``root``'s driver lock for the block; ResultsError naming the holder's pid (and the fix) when another
    live process holds it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ResultsError(
                f"{root} is in use by another cbs sweep or cbs branch (pid {holder}); wait for it to end, or "
                "give this one another --results folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
