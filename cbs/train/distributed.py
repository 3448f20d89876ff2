"""The ranks of a data-parallel run: who this process is, its device, its share of each batch, and the
all-reduces that make every rank see the loss a one-process run would see.

A process without an initialised ``torch.distributed`` process group is rank 0 of 1, and then every helper
here is the identity, so a one-process run is bit for bit what it was before data parallelism existed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from cbs.errors import ConfigError

STRATEGIES = ("ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes checkpoints, reports and the results store."""
        return self.rank == 0

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the initialised process group, else rank 0 of 1."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return cls(dist.get_rank(), dist.get_world_size(), local)

    def device(self, device: str) -> torch.device:
        """This rank's device: ``cuda:<local_rank>`` for a multi-rank CUDA run, else ``device`` as resolved."""
        if self.world_size > 1 and device == "cuda":
            return torch.device("cuda", self.local_rank)
        return torch.device(device)

    def shard(self, items: np.ndarray) -> np.ndarray:
        """This rank's contiguous slice of ``items`` (equal slices when ``len(items)`` divides evenly)."""
        return np.array_split(items, self.world_size)[self.rank]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over the ranks (the value itself on one rank)."""
        if self.world_size == 1:
            return value
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def weighted_mean(self, total: torch.Tensor, count: int) -> float:
        """``sum(total) / sum(count)`` over the ranks: a mean over items that the ranks split among them."""
        if self.world_size == 1:
            return float(total / count)
        both = torch.stack(
            [total.double(), torch.tensor(float(count), dtype=torch.float64, device=total.device)]
        )
        dist.all_reduce(both, op=dist.ReduceOp.SUM)
        return float(both[0] / both[1])


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (torch.distributed.run) started: its env:// rendezvous is set up."""
    return "TORCHELASTIC_RUN_ID" in os.environ


@contextlib.contextmanager
def process_group(
    backend: str, device: str, rank: int, world_size: int, local_rank: int, init_method: str = "env://"
) -> Iterator[None]:
    """Join the run's process group as ``rank`` of ``world_size`` (on CUDA, bound to ``cuda:<local_rank>``)
    for the duration of the block."""
    os.environ["LOCAL_RANK"] = str(local_rank)
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def resolve_backend(backend: str, device: str) -> str:
    """The process-group backend for ``device`` (auto: nccl on CUDA, gloo on CPU); ConfigError where the
    backend is unknown, unsupported on the device, or not built into this torch."""
    if backend not in BACKENDS:
        raise ConfigError(f"parallel.backend must be one of {BACKENDS}, got {backend!r}")
    on_cuda = device.startswith("cuda")
    chosen = ("nccl" if on_cuda else "gloo") if backend == "auto" else backend
    if chosen == "nccl" and not on_cuda:
        raise ConfigError(
            f"parallel.backend=nccl needs CUDA devices but the run is on {device}; use parallel.backend=gloo "
            "(or auto)"
        )
    available = dist.is_available() and (
        dist.is_nccl_available() if chosen == "nccl" else dist.is_gloo_available()
    )
    if not available:
        raise ConfigError(
            f"parallel.backend={chosen} is not available in this torch build; use another backend or run with "
            "parallel.workers=1"
        )
    return chosen
