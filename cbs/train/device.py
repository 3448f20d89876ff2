"""Device choice, mixed precision and the dense bf16 peak FLOP/s used for MFU."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from cbs.errors import ConfigError

# Dense (not 2:4-sparse) bf16 tensor-core peaks, FLOP/s; matched against torch.cuda.get_device_name().
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12))


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available here; use device=cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return device


def set_threads(threads: int | None) -> int:
    """Make torch use ``threads`` CPU threads for its intra-op work (None: keep torch's default, all cores)
    and return the count now in use. Raises ConfigError for a count below 1, before changing anything."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be a whole number ≥ 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if dtype not in ("fp32", "bf16"):
        raise ConfigError(f"dtype must be auto, fp32 or bf16, got {dtype!r}")
    return dtype


def autocast(device: str, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast (weights and optimizer stay fp32), or nothing for fp32."""
    if dtype == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def deterministic_algorithms(on: bool) -> Iterator[None]:
    """With ``on``, run the block under ``torch.use_deterministic_algorithms(True)`` (an op without a
    deterministic kernel raises) and restore the previous setting after it; without, change nothing. On CUDA
    cuBLAS also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set before CUDA starts: set here if unset, which is
    only in time when nothing has used CUDA yet (see docs/train.md)."""
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def peak_flops(name: str) -> float | None:
    """Dense bf16 peak of a CUDA device by name; None when unknown (e.g. CPU)."""
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in name), None)
