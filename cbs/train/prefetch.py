"""A run's training batches, prepared one step ahead: while a step trains, a worker thread gathers the next
global batch's windows (and on CUDA pins them), so the step after it only issues a non-blocking copy. The
thread ends when its ``Prefetcher`` is garbage-collected."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from cbs.data import WindowSampler, gather_windows
from cbs.train.distributed import Ranks


class Prefetcher:
    """This rank's slice of each global batch, in the sampler's order whatever is prepared ahead."""

    def __init__(
        self, sampler: WindowSampler, tokens: np.ndarray, seq_len: int, ranks: Ranks, device: torch.device
    ) -> None:
        self.sampler, self.tokens, self.seq_len, self.ranks, self.device = (
            sampler,
            tokens,
            seq_len,
            ranks,
            device,
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cbs-prefetch")
        self._ahead: tuple[int, Future[torch.Tensor]] | None = None  # (global batch size, its slice)
        self._position_before_ahead: dict[str, int] = {}  # the sampler's state before it drew the batch ahead

    def next(self, size: int, ahead: int = 0) -> torch.Tensor:
        """This rank's slice of the next global batch of ``size`` sequences, on the device (copied without
        blocking on CUDA); with ``ahead`` > 0, the following batch of ``ahead`` sequences starts being prepared
        now (the next call must then ask for ``ahead``)."""
        if self._ahead is not None and self._ahead[0] != size:
            raise ValueError(f"a batch of {self._ahead[0]} sequences was prepared ahead, not {size}")
        current = self._ahead[1] if self._ahead is not None else self._draw(size)
        self._ahead = None
        if ahead:
            self._position_before_ahead = self.sampler.state_dict()
            self._ahead = (ahead, self._draw(ahead))
        return current.result().to(self.device, non_blocking=True)

    def _draw(self, size: int) -> Future[torch.Tensor]:
        starts = self.ranks.shard(self.sampler.next_starts(size))
        return self._pool.submit(self._gather, starts)

    def _gather(self, starts: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(gather_windows(self.tokens, starts, self.seq_len))
        return batch.pin_memory() if self.device.type == "cuda" else batch

    def state_dict(self) -> dict[str, int]:
        """The sampler's position after the batches ``next`` returned (a batch prepared ahead is not counted:
        a run resumed from this state draws it again)."""
        return dict(self._position_before_ahead) if self._ahead is not None else self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after the batches that ``state`` counts (a batch prepared ahead is dropped)."""
        self._ahead = None
        self.sampler.load_state_dict(state)
