"""Data: prepared token datasets on disk, tokenizers, document sources and the deterministic window sampler."""

from cbs.data.dataset import PreparedDataset, open_dataset, token_dtype
from cbs.data.prepare import prepare_dataset
from cbs.data.sampler import WindowSampler, eval_windows, gather_windows
from cbs.data.tokenizer import ByteTokenizer, HFTokenizer, load_tokenizer

__all__ = [
    "ByteTokenizer",
    "HFTokenizer",
    "PreparedDataset",
    "WindowSampler",
    "eval_windows",
    "gather_windows",
    "load_tokenizer",
    "open_dataset",
    "prepare_dataset",
    "token_dtype",
]
