"""Deterministic sampling of training windows and the fixed evaluation windows.

The training split is cut into non-overlapping windows of ``seq_len + 1`` tokens (inputs are the first
``seq_len``, targets the last ``seq_len``), so a run that stays within one epoch sees every training token at
most once. Epoch ``e`` visits the windows in the order of a permutation seeded by ``(seed, e)``; the sampler's
only state is how many windows it has handed out, which makes it resumable.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from cbs.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class WindowSampler:
    """``next_starts(n)`` returns the start offsets of the next ``n`` training windows."""

    n_tokens: int
    seq_len: int
    seed: int
    allow_repeat: bool = False
    position: int = 0  # windows handed out so far
    _perm: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    @property
    def window(self) -> int:
        return self.seq_len + 1

    @property
    def n_windows(self) -> int:
        return self.n_tokens // self.window

    def check_budget(self, n_sequences: int) -> None:
        """Raise DataError, before training, if ``n_sequences`` windows need more than one epoch."""
        if self.n_windows == 0:
            raise DataError(
                f"the training split has {self.n_tokens} tokens, fewer than one window of {self.window}; "
                "prepare more data (cbs data prepare) or use a shorter model.seq_len"
            )
        if n_sequences > self.n_windows and not self.allow_repeat:
            raise DataError(
                f"the run needs {n_sequences} sequences of {self.seq_len} tokens "
                f"({n_sequences * self.seq_len:,} tokens) but the training split holds {self.n_tokens:,} tokens "
                f"({self.n_windows} windows of {self.window}); pass data.allow_repeat=true to train for more "
                "than one epoch, or prepare more data (cbs data prepare --max-tokens ...)"
            )
        if n_sequences > self.n_windows:
            log.warning(
                "REPEATING DATA: the run needs %d windows, the training split has %d (%.2f epochs)",
                n_sequences,
                self.n_windows,
                n_sequences / self.n_windows,
            )

    def next_starts(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            epoch, offset = divmod(self.position, self.n_windows)
            if epoch > 0 and not self.allow_repeat:
                raise DataError(
                    f"the training split ({self.n_windows} windows) is exhausted; pass data.allow_repeat=true"
                )
            take = min(n - filled, self.n_windows - offset)
            out[filled : filled + take] = self._permutation(epoch)[offset : offset + take]
            filled += take
            self.position += take
        return out * self.window

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            if epoch > 0:
                log.warning("REPEATING DATA: starting epoch %d of the training split", epoch + 1)
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_windows))
        return self._perm[1]

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = int(state["position"])


def eval_windows(n_tokens: int, seq_len: int, eval_tokens: int, name: str = "val") -> np.ndarray:
    """Start offsets of the fixed evaluation windows: ``ceil(eval_tokens / seq_len)`` non-overlapping windows
    spread evenly over the split (all of them, with a warning, when the split is smaller)."""
    window = seq_len + 1
    available = n_tokens // window
    if available == 0:
        raise DataError(
            f"eval set {name!r}: its val split has {n_tokens} tokens, fewer than one window of {window}; "
            "prepare it with a larger --val-fraction"
        )
    wanted = max(1, math.ceil(eval_tokens / seq_len))
    if wanted > available:
        log.warning(
            "eval set %r has %d windows, fewer than the %d asked for; using all", name, available, wanted
        )
        wanted = available
    return np.linspace(0, available - 1, wanted).round().astype(np.int64) * window


def gather_windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """The (len(starts), seq_len + 1) int64 token windows beginning at ``starts``."""
    return tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
