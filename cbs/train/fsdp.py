"""FSDP2 (``torch.distributed.fsdp.fully_shard``): a model sharded over the ranks, and its full state for
checkpoints.

Every parameter becomes a DTensor sharded on dim 0; each rank holds and updates its shard. A checkpoint gathers
the full model and optimizer state (``torch.distributed.checkpoint.state_dict``, a collective: every rank
calls it) onto rank 0's CPU, in the layout of an unsharded model, so any number of ranks (or one process)
can resume from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)  # the whole state, on rank 0's CPU
SCATTER = StateDictOptions(full_state_dict=True)  # every rank passes the whole state and keeps its shard


def shard_model(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """Shard ``model`` in place over ``world_size`` ranks on ``device``'s type: each transformer block is
    one unit (gathered for its forward and backward), the root holds the rest; the shards land on
    ``device``."""
    mesh = init_device_mesh(device.type, (world_size,))
    for block in getattr(model, "blocks", []):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)  # in place: ``model`` becomes an FSDPModule as well
    return model


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (a view: in-place updates reach the parameter); a plain tensor as is."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole of a DTensor (a collective) or a copy of a plain tensor, on the CPU."""
    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor.detach().clone()).cpu()


def load_full(target: torch.Tensor, whole: torch.Tensor) -> None:
    """Copy into ``target`` its part of ``whole`` (its shard for a DTensor; no communication)."""
    if isinstance(target, DTensor):
        whole = distribute_tensor(
            whole.to(target.device), target.device_mesh, target.placements, src_data_rank=None
        )
    local(target).copy_(local(whole))


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The whole model and optimizer state dicts (keyed by parameter name) on rank 0's CPU, empty on the
    other ranks; a collective."""
    return get_model_state_dict(model, options=GATHER), get_optimizer_state_dict(
        model, optimizer, options=GATHER
    )


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim: dict
) -> None:
    """Load whole state dicts (as ``full_state`` gives them) into a sharded or plain model and its optimizer."""
    set_model_state_dict(model, model_state, options=SCATTER)
    set_optimizer_state_dict(model, optimizer, optim, options=SCATTER)


def optimizer_by_name(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> dict[str, Any]:
    """An optimizer state dict keyed by parameter index (``optimizer.state_dict()`` of an unsharded run), keyed
    by parameter name as ``full_state`` gives it; ``model`` and ``optimizer`` are a fresh unsharded twin of the
    run's, used to map indices to names."""
    optimizer.load_state_dict(state)
    return get_optimizer_state_dict(model, optimizer, options=SCATTER)


def keyed_by_name(optimizer_state: dict[str, Any]) -> bool:
    """True for an optimizer state dict in ``full_state``'s layout (parameter names, not indices); False for
    one without ``param_groups`` (a chained optimizer's, e.g. Muon + AdamW, which FSDP runs refuse)."""
    groups = optimizer_state.get("param_groups", [])
    return any(isinstance(p, str) for group in groups for p in group["params"])
