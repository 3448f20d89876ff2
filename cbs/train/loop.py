"""One training run: ``run_training(cfg)`` trains, evaluates raw and EWA weights on every eval set on the eval
schedule, applies the stop rules, and returns the runs-table row and the curve (the caller stores them:
``ResultsStore.write_run``)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.nn.parallel import DistributedDataParallel

from cbs import __version__
from cbs.config import TrainConfig
from cbs.data import WindowSampler, eval_windows, gather_windows
from cbs.errors import ConfigError, RunStopped
from cbs.model import build_model
from cbs.train.branch import KeptCheckpoint, kept_dir, kept_steps, start_branch, write_kept
from cbs.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cbs.train.device import autocast, deterministic_algorithms, device_name, peak_flops
from cbs.train.distributed import Ranks, launched_by_torchrun, process_group, resolve_backend
from cbs.train.evaluation import eval_steps, loss_sum
from cbs.train.ewa import EWA
from cbs.train.fsdp import full_state, keyed_by_name, load_full_state, local, optimizer_by_name, shard_model
from cbs.train.gns import GradientProbe, gns_columns
from cbs.train.optimizers import build_optimizer, evaluation_weights, single_optimizer
from cbs.train.prefetch import Prefetcher
from cbs.train.resolve import ResolvedRun, resolve_config
from cbs.train.schedule import LRSchedule

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule

log = logging.getLogger(__name__)

OnEval = Callable[[dict[str, Any], Callable[[Path], None]], None]


@dataclass
class Progress:
    """The mutable, checkpointed progress of a run (besides model, EWA, optimizer and sampler)."""

    step: int = 0
    status: str = "running"
    curve: list[dict[str, Any]] = field(default_factory=list)
    loss_sum: float = 0.0  # train losses since the last evaluation
    loss_count: int = 0
    initial_loss: float | None = None
    last_train_loss: float | None = None  # mean over the last eval interval (or the diverging step's loss)
    last_eval: dict[str, float | None] = field(default_factory=dict)  # primary set: eval_loss, ewa_eval_loss
    best_ewa_eval_loss: float | None = None
    steps_to_target: int | None = None
    lr: float = 0.0
    train_time_s: float = 0.0  # time inside training steps (excludes evaluation)
    interval_time_s: float = 0.0  # training time since the last evaluation
    grad_norm_sum: float = 0.0  # pre-clip gradient norms since the last evaluation
    wall_time_s: float = 0.0  # wall time of earlier sessions of this run (resume)
    evals: int = 0  # evaluations so far
    eval_time_s: float = 0.0  # wall time spent evaluating


class Trainer:
    """The model, its EWA copy, optimizer and data of one resolved run; ``train()`` runs it to its end."""

    def __init__(self, run: ResolvedRun, keep_dir: Path | None = None) -> None:
        cfg, o = run.config, run.config.optim
        self.run, self.cfg = run, cfg
        self.ranks = Ranks.current()
        self.device = self.ranks.device(run.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(cfg.seed)
        self.fsdp = self.ranks.world_size > 1 and cfg.parallel.strategy == "fsdp"
        model = build_model(run.spec)  # on the host: under FSDP only each rank's shard goes to the device
        self.model = model if self.fsdp else model.to(self.device)
        self.ewa_model = copy.deepcopy(self.model).requires_grad_(False)  # holds EWA weights at evaluations
        if self.fsdp:
            for m in (self.model, self.ewa_model):
                shard_model(m, self.device, self.ranks.world_size)
        self.ewa = EWA(self.model, run.ewa_tau)
        self.optimizer = build_optimizer(self.model, o, run.beta2)
        self.ddp = (
            DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
            if self.ranks.world_size > 1 and not self.fsdp
            else None
        )
        self.gathered: dict[str, Any] | None = None  # FSDP: the whole state at the last report (rank 0)
        # not under FSDP: it reduce-scatters the ranks' gradients internally, so no rank's own gradient is seen
        self.gns = GradientProbe.for_run(
            self.model,
            self.ddp,
            enabled=cfg.gns.enabled and not self.fsdp,
            decay=cfg.gns.ema_decay,
            max_batch_size=max(run.batches.batches),
            micro_batch_size=run.micro_batch_size,
            device=self.device,
        )
        wrapped = self.ddp or self.model
        self.forward = torch.compile(wrapped) if cfg.compile else wrapped
        # evaluation is compiled when training is (each model's no-grad eval graph compiles once)
        self.eval_raw, self.eval_ewa = (  # torch.compile of a Module is a Module (OptimizedModule)
            (
                cast(torch.nn.Module, torch.compile(self.model)),
                cast(torch.nn.Module, torch.compile(self.ewa_model)),
            )
            if cfg.compile
            else (self.model, self.ewa_model)
        )
        self.schedule = LRSchedule(
            o.lr,
            run.steps,
            run.warmup_steps,
            o.schedule,
            o.decay_fraction,
            o.min_lr_ratio,
            run.lr_cuts,
            o.step_factor,
        )
        sampler = WindowSampler(
            run.dataset.n_tokens("train"), run.spec.seq_len, cfg.seed, cfg.data.allow_repeat
        )
        self.prefetcher = Prefetcher(
            sampler, run.dataset.tokens("train"), run.spec.seq_len, self.ranks, self.device
        )
        seq = run.spec.seq_len
        self.eval_windows, self.eval_forwards = {}, {}
        for name, ds in run.eval_datasets.items():
            every = eval_windows(ds.n_tokens("val"), seq, cfg.eval.eval_tokens, name)
            starts = self.ranks.shard(every)
            self.eval_windows[name] = torch.from_numpy(gather_windows(ds.tokens("val"), starts, seq)).to(
                self.device
            )
            # FSDP gathers weights in every forward: every rank runs as many as the rank with the most windows
            most = math.ceil(len(every) / self.ranks.world_size)
            self.eval_forwards[name] = math.ceil(most / run.eval_batch_size) if self.fsdp else 0
        self.eval_at = set(eval_steps(run.steps, cfg.eval, run.batches.steps_within(run.data_tokens)))
        self.progress = Progress()
        # step -> fraction of each kept checkpoint (`cbs branch`), written only where the run has a store
        self.keep_dir = keep_dir  # the run's kept_root in its results store
        self.keep_at = kept_steps(cfg.keep_checkpoints_at, run.steps) if keep_dir is not None else {}
        self.session_start = time.perf_counter()
        self.pending: list[torch.Tensor] = []  # (loss, grad norm) of steps not yet checked, on the device
        self.interval_start = self.session_start

    # --- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The run's whole state; under FSDP a collective (every rank calls it) that is whole on rank 0 only."""
        progress = dataclasses.replace(self.progress, wall_time_s=self.wall_time())
        model, optimizer = (
            full_state(self.model, single_optimizer(self.optimizer))
            if self.fsdp
            else (self.model.state_dict(), self.optimizer.state_dict())
        )
        return {
            "config": dataclasses.asdict(self.cfg),
            "model": model,
            "ewa": self.ewa.state_dict(),
            "optimizer": optimizer,
            "sampler": self.prefetcher.state_dict(),
            "progress": dataclasses.asdict(progress),
            "rng": rng_state(),
            **({"gns": self.gns.tracker.state_dict()} if self.gns is not None else {}),
        }

    def write_checkpoint(self, directory: Path | str) -> None:
        """Save everything needed to continue this run exactly (see ``run_training(resume_from=...)``); in a
        multi-rank run only rank 0 writes (the state is the same on every rank; under FSDP the whole state that
        every rank gathered at the last report) and every rank can load it."""
        if self.fsdp and self.gathered is None:
            raise RuntimeError(
                "an FSDP run writes checkpoints from on_eval only (where every rank gathered it)"
            )
        if self.ranks.is_main:
            save_checkpoint(directory, self.gathered or self.state_dict())

    def load(self, directory: Path | str) -> None:
        state = load_checkpoint(directory, dataclasses.asdict(self.cfg))
        optim = state["optimizer"]
        if self.fsdp and not keyed_by_name(optim):  # written by an unsharded run: map indices to names
            twin = build_model(self.run.spec)
            twin_optimizer = single_optimizer(build_optimizer(twin, self.cfg.optim, self.run.beta2))
            optim = optimizer_by_name(twin, twin_optimizer, optim)
        if self.fsdp or keyed_by_name(optim):  # sharded now, or written by an FSDP run
            load_full_state(self.model, single_optimizer(self.optimizer), state["model"], optim)
        else:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.ewa.load_state_dict(state["ewa"])
        self.prefetcher.load_state_dict(state["sampler"])
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        if (
            self.gns is not None and "gns" in state
        ):  # a checkpoint without it (GNS off, older cbs) restarts the EMA
            self.gns.tracker.load_state_dict(state["gns"])
        self.session_start = time.perf_counter()

    def keep_checkpoint(self, fraction: float) -> None:
        """Keep this step's state for `cbs branch` in the results store (cbs.train.branch.kept_dir)."""
        if self.keep_dir is None:
            raise RuntimeError("keep_checkpoint needs the run's keep_dir (run_training(keep_dir=...))")
        p = self.progress
        meta = KeptCheckpoint(fraction, p.step, p.step * self.run.batch_tokens, p.lr)
        write_kept(self, kept_dir(self.keep_dir, fraction), meta)

    def wall_time(self) -> float:
        return self.progress.wall_time_s + time.perf_counter() - self.session_start

    # --- training -----------------------------------------------------------------------------------------
    def train(self, on_eval: OnEval | None = None) -> None:
        """Train to the end of the run. The host waits for the device only every ``divergence_check_every``
        steps and at evaluations (``check``), not once per step."""
        p = self.progress
        self._start_interval()
        with deterministic_algorithms(self.cfg.deterministic):
            while p.status == "running" and p.step < self.run.steps:
                self.pending.append(self.train_step())
                if p.step in self.keep_at:
                    self.keep_checkpoint(self.keep_at[p.step])
                if p.step in self.eval_at:
                    if self.check(on_eval):
                        self.evaluate(on_eval)
                        self._start_interval()
                elif len(self.pending) >= self.cfg.divergence_check_every:
                    self.check(on_eval)
        if p.status == "running":  # resumed from a checkpoint written at the final evaluation
            p.status = "completed"

    def _start_interval(self) -> None:
        self.interval_start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def check(self, on_eval: OnEval | None = None) -> bool:
        """Bring the pending steps' losses and gradient norms to the host (one device sync), add them to the
        interval's sums and time, and stop the run as ``diverged`` at the first non-finite loss or one above
        ``divergence_factor`` × the first step's; True while the run goes on."""
        p = self.progress
        values = torch.stack(self.pending).tolist() if self.pending else []
        self.pending.clear()
        now = time.perf_counter()
        p.train_time_s += now - self.interval_start
        p.interval_time_s += now - self.interval_start
        self.interval_start = now
        for i, (loss, grad_norm) in enumerate(values):
            p.loss_sum += loss
            p.loss_count += 1
            p.grad_norm_sum += grad_norm
            if p.initial_loss is None:
                p.initial_loss = loss
            if not math.isfinite(loss) or loss > self.cfg.divergence_factor * p.initial_loss:
                log.warning("step %d: train loss %.4g: diverged", p.step - len(values) + 1 + i, loss)
                p.status, p.last_train_loss = "diverged", loss
                self._report(on_eval, p.last_eval.get("eval_loss"), p.last_eval.get("ewa_eval_loss"), loss)
                return False
        return True

    def train_step(self) -> torch.Tensor:
        """One optimizer step on one global batch (gradient accumulation over micro-batches); returns its mean
        loss and pre-clip gradient norm as a 2-vector left on the device (no host sync)."""
        p, run = self.progress, self.run
        p.step += 1
        p.lr = self.schedule.lr_at(p.step) * run.batches.lr_factor(p.step)
        for group in self.optimizer.param_groups:
            group["lr"] = p.lr
        # every rank draws the whole global batch (so the sampler is the same for any number of ranks) and
        # trains on its slice; DDP averages the ranks' gradients, each the mean over equal micro-batches
        after = run.batches.batch_at(p.step + 1) if p.step < run.steps else 0
        batch = self.prefetcher.next(run.batches.batch_at(p.step), ahead=after)
        n_micro = len(batch) // run.micro_batch_size
        total = torch.zeros((), device=self.device)
        for i in range(0, len(batch), run.micro_batch_size):
            chunk = batch[i : i + run.micro_batch_size]
            last = i + run.micro_batch_size >= len(batch)
            with self._sync(last):
                with autocast(run.device, run.dtype):
                    loss = self.forward(chunk[:, :-1], chunk[:, 1:]) / n_micro
                loss.backward()
            if self.gns is not None:
                self.gns.after_backward(first=i == 0)
            total += loss.detach()
        total = self.ranks.mean(total)
        if self.cfg.optim.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.cfg.optim.grad_clip, foreach=True
            )
        else:
            grads = [q.grad for q in self.model.parameters() if q.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads, foreach=True)
        norm = local(norm)  # FSDP: a replicated DTensor, whole on every rank
        if self.gns is not None:
            self.gns.end_step(norm, run.batches.batch_at(p.step))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ewa.update()
        return torch.stack([total, norm.to(total.dtype)])

    def _sync(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces (FSDP reduce-scatters) gradients on the last micro-batch of a step only."""
        if self.fsdp:
            cast("FSDPModule", self.model).set_requires_gradient_sync(last)
        return contextlib.nullcontext() if self.ddp is None or last else self.ddp.no_sync()

    def _evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Mean eval loss of ``model`` per eval set, each rank evaluating its share of the windows."""
        run = self.run
        losses = {
            n: self.ranks.weighted_mean(
                loss_sum(
                    model, w, run.eval_batch_size, autocast(run.device, run.dtype), self.eval_forwards[n]
                ),
                len(w),
            )
            for n, w in self.eval_windows.items()
        }
        if self.fsdp:
            cast(
                "FSDPModule", model
            ).reshard()  # FSDP keeps the root's weights whole after a forward (for a backward)
        return losses

    def evaluate(self, on_eval: OnEval | None = None) -> None:
        """Evaluate the EWA weights on every eval set, and the raw weights at every ``eval.raw_every``-th
        evaluation (the first included) and at the run's last; append to the curve (raw losses null where not
        evaluated), apply the stop rules (which read the EWA loss), and add the time spent to ``eval_time_s``."""
        p, run = self.progress, self.run
        started = time.perf_counter()
        raw_due = p.evals % self.cfg.eval.raw_every == 0
        p.evals += 1
        self.ewa.copy_to(self.ewa_model)
        ewa = self._evaluate(self.eval_ewa)
        primary = next(iter(self.eval_windows))
        target = self.cfg.target_loss
        finite = math.isfinite(ewa[primary])
        hit = finite and target is not None and p.steps_to_target is None and ewa[primary] <= target
        last = not finite or (hit and self.cfg.stop_at_target) or p.step >= run.steps
        raw: dict[str, float | None] = dict.fromkeys(self.eval_windows)
        if raw_due or last:
            with evaluation_weights(self.optimizer):  # schedule-free: its averaged weights
                raw = dict(self._evaluate(self.eval_raw))
        train_loss = p.loss_sum / max(1, p.loss_count)
        interval = {**self.interval_metrics(), **gns_columns(self.gns, self.ranks)}
        p.loss_sum, p.loss_count, p.last_train_loss = 0.0, 0, train_loss
        p.interval_time_s, p.grad_norm_sum = 0.0, 0.0
        wall = self.wall_time()
        for name in self.eval_windows:
            p.curve.append(
                {
                    "step": p.step,
                    "tokens": run.batches.tokens_after(p.step),
                    "eval_set": name,
                    "train_loss": train_loss,
                    "eval_loss": raw[name],
                    "ewa_eval_loss": ewa[name],
                    "lr": p.lr,
                    "wall_time_s": wall,
                    **interval,
                }
            )
        raw_primary = raw[primary]
        p.last_eval = {
            "eval_loss": raw_primary if raw_primary is not None else p.last_eval.get("eval_loss"),
            "ewa_eval_loss": ewa[primary],
        }
        if not finite or (raw_primary is not None and not math.isfinite(raw_primary)):
            p.status = "diverged"
        else:
            best = p.best_ewa_eval_loss
            p.best_ewa_eval_loss = ewa[primary] if best is None else min(best, ewa[primary])
            if hit:
                p.steps_to_target = p.step
                if self.cfg.stop_at_target:
                    p.status = "reached_target"
            if p.status == "running" and p.step >= run.steps:
                p.status = "completed"
        extra = {
            **interval,
            **{
                f"{k}/{n}": v
                for n in self.eval_windows
                for k, v in (("eval_loss", raw[n]), ("ewa_eval_loss", ewa[n]))
            },
        }
        p.eval_time_s += time.perf_counter() - started
        self._report(on_eval, raw_primary, ewa[primary], train_loss, extra)

    def interval_metrics(self) -> dict[str, float | int | None]:
        """Training speed and health since the last evaluation: tokens/s, MFU (None where the device's peak
        is unknown, e.g. CPU), the mean pre-clip gradient norm over the interval's steps, and the peak memory
        allocated by torch on the device in bytes (None on CPU)."""
        p = self.progress
        plan = self.run.batches
        tokens = plan.tokens_after(p.step) - plan.tokens_after(p.step - p.loss_count)
        tokens_per_s = tokens / p.interval_time_s if p.interval_time_s > 0 else None
        cuda = self.device.type == "cuda"
        return {
            "tokens_per_s": tokens_per_s,
            "mfu": model_flops_utilization(self.run, tokens_per_s),
            "grad_norm": p.grad_norm_sum / p.loss_count if p.loss_count else None,
            "peak_memory_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else None,
        }

    def _report(self, on_eval: OnEval | None, eval_loss, ewa_eval_loss, train_loss, extra=None) -> None:
        p = self.progress
        metrics = {
            "step": p.step,
            "tokens": self.run.batches.tokens_after(p.step),
            "train_loss": train_loss,
            "eval_loss": eval_loss,
            "ewa_eval_loss": ewa_eval_loss,
            "lr": p.lr,
            "best_ewa_eval_loss": p.best_ewa_eval_loss,
            "steps_to_target": p.steps_to_target,
            "status_so_far": p.status,
            "done": p.status != "running",
            **(extra or {}),
        }
        if self.fsdp:  # every rank takes part in gathering what rank 0 may be asked to write
            self.gathered = self.state_dict()
        try:
            if self.ranks.is_main:
                log.info("step %d/%d %s", p.step, self.run.steps, metrics)
                if on_eval is not None:
                    on_eval(metrics, self.write_checkpoint)
        finally:
            self.gathered = None


@dataclass(frozen=True)
class TrainedRun:
    """What one run gives: its runs-table row (RUNS_SCHEMA) and curve rows (CURVES_SCHEMA, without run_id), for
    ``ResultsStore.write_run(trained.row, trained.curve)``."""

    row: dict[str, Any]
    curve: list[dict[str, Any]]


def run_training(
    cfg: TrainConfig,
    *,
    catch_failures: bool = False,
    resume_from: str | Path | None = None,
    on_eval: OnEval | None = None,
    keep_dir: Path | None = None,
) -> TrainedRun:
    """Train one run and return its runs-table row and curve (training writes no results store; with
    ``keep_dir`` — the run's `cbs.train.branch.kept_root` in its store — it keeps the checkpoints that
    ``keep_checkpoints_at`` asks for there, for `cbs branch`).

    The config is resolved and validated first (ConfigError/DataError before anything is built). After every
    evaluation ``on_eval(metrics, write_checkpoint)`` is called (the last call has ``done`` True and the final
    ``status_so_far``); ``write_checkpoint(dir)`` saves the full state and ``run_training(cfg,
    resume_from=dir)`` continues it, giving the same curve. Divergence is a result (status "diverged"); any
    other exception during training gives status "failed" with ``error`` set when ``catch_failures`` (the row
    is returned, to be stored like any other) and is re-raised otherwise; ``RunStopped`` raised by ``on_eval``
    ends the run with its status and ``stop_reason`` (curve kept up to that evaluation). The run_id is
    ``cfg.run_id()`` of the config as given. With ``cfg.parallel.workers`` > 1 outside a process group the run
    is launched on that many local ranks (cbs.train.launch) with the same contract; inside one, only rank 0
    reports and checkpoints, and the other ranks' row and curve are not for storing.
    """
    if cfg.parallel.workers > 1 and Ranks.current().world_size == 1:
        if not launched_by_torchrun():
            from cbs.train.launch import run_ranks

            return run_ranks(
                cfg,
                catch_failures=catch_failures,
                resume_from=resume_from,
                on_eval=on_eval,
                keep_dir=keep_dir,
            )
        with torchrun_group(cfg):
            return run_training(
                cfg,
                catch_failures=catch_failures,
                resume_from=resume_from,
                on_eval=on_eval,
                keep_dir=keep_dir,
            )
    catch_failures = catch_failures and Ranks.current().is_main  # rank 0 alone reports a failed run
    started = datetime.now(timezone.utc)
    run = resolve_config(cfg)
    trainer: Trainer | None = None
    error = stopped = None
    try:
        trainer = Trainer(run, keep_dir=keep_dir)
        if resume_from is not None:
            trainer.load(resume_from)
        elif cfg.branch is not None:
            start_branch(trainer, Path(cfg.branch.checkpoint))
        trainer.train(on_eval)
    except RunStopped as exc:  # on_eval ended the run on purpose (sweep pruning): a result, not a failure
        stopped = exc
    except Exception as exc:
        if not catch_failures:
            raise
        log.exception("run %s failed", cfg.run_id())
        error = f"{type(exc).__name__}: {exc}"
    progress = trainer.progress if trainer is not None else Progress()
    if error is not None:
        progress.status = "failed"
    elif stopped is not None:
        progress.status = stopped.status
    wall = (
        trainer.wall_time() if trainer is not None else (datetime.now(timezone.utc) - started).total_seconds()
    )
    row = runs_row(cfg, run, progress, started=started, wall_time_s=wall, error=error)
    row["stop_reason"] = stopped.reason if stopped is not None else None
    return TrainedRun(row, progress.curve)


def torchrun_group(cfg: TrainConfig) -> contextlib.AbstractContextManager:
    """The process group of a run that torchrun started (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` from its
    environment); ConfigError unless ``WORLD_SIZE`` is ``parallel.workers``."""
    world = int(os.environ["WORLD_SIZE"])
    if world != cfg.parallel.workers:
        raise ConfigError(
            f"torchrun started {world} processes but parallel.workers={cfg.parallel.workers}; make them equal "
            "(--nnodes × --nproc-per-node = parallel.workers)"
        )
    device = resolve_config(cfg).device
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    return process_group(resolve_backend(cfg.parallel.backend, device), device, rank, world, local)


def runs_row(
    cfg: TrainConfig,
    run: ResolvedRun,
    p: Progress,
    *,
    started: datetime,
    wall_time_s: float,
    error: str | None,
) -> dict[str, Any]:
    """The runs-table row (RUNS_SCHEMA) of a run."""
    r, o, spec = run.config, run.config.optim, run.spec
    tokens = run.batches.tokens_after(p.step)
    tokens_per_s = tokens / p.train_time_s if p.train_time_s > 0 else None
    dev = device_name(run.device)
    return {
        "run_id": cfg.run_id(),
        "experiment": cfg.experiment,
        "preset": spec.preset,
        "n_params": spec.n_params,
        "total_params": spec.total_params,
        "d_model": spec.d_model,
        "n_layers": spec.n_layers,
        "n_heads": spec.n_heads,
        "vocab_size": spec.vocab_size,
        "seq_len": spec.seq_len,
        "flops_per_token": spec.flops_per_token,
        "batch_size": r.batch_size,
        "batch_tokens": run.batch_tokens,
        "micro_batch_size": run.micro_batch_size,
        "optimizer": o.name,
        "lr": o.lr,
        "beta1": o.beta1,
        "beta2": run.beta2,
        "eps": o.eps,
        "weight_decay": o.weight_decay,
        "grad_clip": o.grad_clip,
        "schedule": o.schedule,
        "warmup_tokens": run.warmup_tokens,
        "ewa_tau": run.ewa_tau,
        "token_budget": run.token_budget,
        "data_tokens": run.data_tokens,
        "dataset": r.data.path,
        "dataset_fingerprint": run.dataset.fingerprint,
        "tokenizer": run.dataset.tokenizer_name,
        "eval_sets": list(run.eval_datasets),
        "seed": r.seed,
        "target_loss": r.target_loss,
        "reference_batch_size": r.reference_batch_size,
        "status": p.status,
        "steps": p.step,
        "tokens": tokens,
        "final_train_loss": p.last_train_loss,
        "final_eval_loss": p.last_eval.get("eval_loss"),
        "final_ewa_eval_loss": p.last_eval.get("ewa_eval_loss"),
        "best_ewa_eval_loss": p.best_ewa_eval_loss,
        "steps_to_target": p.steps_to_target,
        "wall_time_s": wall_time_s,
        "eval_time_s": p.eval_time_s,
        "tokens_per_s": tokens_per_s,
        "mfu": model_flops_utilization(run, tokens_per_s),
        "device": dev,
        "dtype": run.dtype,
        "error": error,
        "cbs_version": __version__,
        "git_sha": git_sha(),
        "started_at": started,
        "finished_at": datetime.now(timezone.utc),
        "config_json": json.dumps(dataclasses.asdict(r), sort_keys=True),
        **branch_columns(cfg),
    }


def branch_columns(cfg: TrainConfig) -> dict[str, Any]:
    """The runs-table columns of a branched run (``cbs branch``); null for every other run."""
    fields = {
        "parent_run_id": "parent_run_id",
        "branch_fraction": "fraction",
        "branch_step": "step",
        "branch_k": "k",
    }
    return {column: getattr(cfg.branch, name) if cfg.branch else None for column, name in fields.items()}


def model_flops_utilization(run: ResolvedRun, tokens_per_s: float | None) -> float | None:
    """Model FLOP/s at ``tokens_per_s`` over the dense bf16 peak of all the run's devices; None where the
    peak is unknown (CPU, unlisted GPUs) or the speed is."""
    peak = peak_flops(device_name(run.device))
    if not peak or not tokens_per_s:
        return None
    return run.spec.model_flops_per_token * tokens_per_s / (peak * run.config.parallel.workers)


def git_sha() -> str | None:
    """Commit of the cbs source tree, best effort (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
