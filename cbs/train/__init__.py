"""One training run: ``resolve_config`` validates and fills a TrainConfig, ``run_training`` runs it."""

from cbs.train.loop import Progress, TrainedRun, Trainer, run_training, runs_row
from cbs.train.resolve import ResolvedRun, default_warmup_tokens, resolve_config

__all__ = [
    "Progress",
    "ResolvedRun",
    "TrainedRun",
    "Trainer",
    "default_warmup_tokens",
    "resolve_config",
    "run_training",
    "runs_row",
]
