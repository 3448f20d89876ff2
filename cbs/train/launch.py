"""Run one training run as ``parallel.workers`` local ranks (torch.multiprocessing spawn, one process group).

The calling process stays the run's face: rank 0 relays each evaluation to it, so ``on_eval(metrics,
write_checkpoint)`` is called here, in this process (where a Ray Tune session or the console lives), and
``write_checkpoint(dir)`` has rank 0 write the checkpoint before ``on_eval`` goes on. Rank 0 sends its row and
curve back here, where ``run_ranks`` returns them; if a rank dies first, this process makes the failed row.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.multiprocessing as mp

from cbs.config import TrainConfig

if TYPE_CHECKING:
    from cbs.train.loop import TrainedRun

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the launcher checks on the ranks while it waits for rank 0
PARENT_POLL_S = 1.0  # how often a rank checks that its launcher is still alive


def run_ranks(
    cfg: TrainConfig,
    *,
    catch_failures: bool = False,
    resume_from: str | Path | None = None,
    on_eval: Any = None,
    keep_dir: Path | None = None,
) -> TrainedRun:
    """Train ``cfg`` on ``cfg.parallel.workers`` local ranks and return rank 0's row and curve (the contract of
    ``run_training``). A rank that dies, or an exception in ``on_eval``, ends every rank; the run is then
    returned as failed (with ``catch_failures``; its curve so far is not kept) or the error is raised
    (without: a RuntimeError naming the rank for a rank that died)."""
    from cbs.train.loop import Progress, TrainedRun, runs_row
    from cbs.train.resolve import resolve_config

    run = resolve_config(cfg)  # ConfigError/DataError here, before any process starts
    started = datetime.now(timezone.utc)
    workers = cfg.parallel.workers
    threads = max(1, torch.get_num_threads() // workers)
    spawn = mp.get_context("spawn")
    events, replies = spawn.Queue(), spawn.Queue()
    with tempfile.TemporaryDirectory(prefix="cbs-ranks-") as tmp:
        args = (
            cfg.to_dict(),
            workers,
            f"{tmp}/store",
            catch_failures,
            resume_from,
            keep_dir,
            threads,
            events,
            replies,
            os.getpid(),
        )
        ranks = mp.start_processes(_rank_main, args=args, nprocs=workers, join=False, start_method="spawn")
        try:
            return _serve(ranks, events, replies, on_eval)
        except Exception as exc:
            if isinstance(exc, mp.ProcessRaisedException | mp.ProcessExitedException):
                error = f"rank {exc.error_index} of {workers} failed: {str(exc).strip().splitlines()[-1]}"
                if not catch_failures:
                    raise RuntimeError(f"run {cfg.run_id()}: {error}") from exc
            elif not catch_failures:
                raise
            else:
                error = f"{type(exc).__name__}: {exc}"
            log.error("run %s failed: %s", cfg.run_id(), error)
            wall = (datetime.now(timezone.utc) - started).total_seconds()
            row = runs_row(
                cfg, run, Progress(status="failed"), started=started, wall_time_s=wall, error=error
            )
            return TrainedRun(row, [])
        finally:
            for process in ranks.processes:
                if process.is_alive():
                    process.terminate()


def _serve(ranks: mp.ProcessContext, events: Any, replies: Any, on_eval: Any) -> TrainedRun:
    """Answer rank 0's evaluations until it sends its row and curve; raise as soon as any rank fails."""

    def receive() -> tuple[str, Any]:
        while True:
            try:
                return events.get(timeout=POLL_S)
            except queue.Empty:
                if ranks.join(timeout=0):  # raises if a rank failed; True once all exited cleanly
                    break
        try:  # every rank exited cleanly: rank 0's last message may still be on its way
            return events.get(timeout=5)
        except queue.Empty:
            raise mp.ProcessExitedException(
                "the ranks exited without rank 0 reporting its row", error_index=0, error_pid=0, exit_code=0
            ) from None

    def write_checkpoint(directory: Path | str) -> None:
        replies.put(("write", str(directory)))
        kind, _ = receive()
        assert kind == "written", kind

    while True:
        kind, payload = receive()
        if kind == "row":
            ranks.join()
            return payload
        if on_eval is not None:
            on_eval(payload, write_checkpoint)
        replies.put(("continue", None))


class _Relay:
    """Rank 0's ``on_eval``: send the metrics to the launcher and write checkpoints while it asks for them."""

    def __init__(self, events: Any, replies: Any) -> None:
        self.events, self.replies = events, replies

    def __call__(self, metrics: dict[str, Any], write_checkpoint: Any) -> None:
        self.events.put(("eval", metrics))
        while True:
            kind, directory = self.replies.get()
            if kind != "write":
                return
            write_checkpoint(Path(directory))
            self.events.put(("written", None))


def _exit_with_parent(parent: int) -> None:
    """End this rank as soon as the launcher is gone (e.g. killed with SIGKILL): no orphan keeps training."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="cbs-parent-watch", daemon=True).start()


def _rank_main(
    rank: int,
    cfg_dict: dict[str, Any],
    workers: int,
    init_file: str,
    catch_failures: bool,
    resume_from: str | Path | None,
    keep_dir: Path | None,
    threads: int,
    events: Any,
    replies: Any,
    launcher: int,
) -> None:
    """One rank of the launcher process ``launcher``: join the process group, train, and (rank 0) send its row
    and curve."""
    from cbs.train.distributed import process_group, resolve_backend
    from cbs.train.loop import run_training
    from cbs.train.resolve import resolve_config

    _exit_with_parent(launcher)  # the launcher's pid, not getppid(): it may already be gone at this point
    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(cfg_dict)
    device = resolve_config(cfg).device
    backend = resolve_backend(cfg.parallel.backend, device)
    with process_group(backend, device, rank, workers, rank, f"file://{init_file}"):
        main = rank == 0
        trained = run_training(
            cfg,
            catch_failures=catch_failures and main,
            resume_from=resume_from,
            on_eval=_Relay(events, replies) if main else None,
            keep_dir=keep_dir,
        )
        if main:
            events.put(("row", trained))
