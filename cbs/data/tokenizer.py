"""Tokenizers: a byte-level one (offline default) and Hugging Face ``tokenizers`` ones (hub name or local file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cbs.errors import DataError

BYTES = "bytes"
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "[SEP]")


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eos_id: int | None

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...


@dataclass
class ByteTokenizer:
    """UTF-8 bytes as tokens (vocab 256). Documents are separated by byte 0 (NUL), which text does not use."""

    name: str = BYTES
    vocab_size: int = 256
    eos_id: int | None = 0

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8", errors="replace"), dtype=np.uint8) for t in texts]


class HFTokenizer:
    """A Hugging Face ``tokenizers.Tokenizer``; its end-of-text token (if any) separates documents."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))
        ids = (tokenizer.token_to_id(tok) for tok in _EOS_CANDIDATES)
        self.eos_id = next((i for i in ids if i is not None), None)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))


def load_tokenizer(spec: str) -> ByteTokenizer | HFTokenizer:
    """``bytes``, a local ``tokenizer.json`` path, or a Hugging Face hub name (e.g. EleutherAI/gpt-neox-20b)."""
    if spec == BYTES:
        return ByteTokenizer()
    try:
        from tokenizers import Tokenizer as HFTok
    except ImportError as exc:
        raise DataError(f"tokenizer {spec!r} needs the `tokenizers` package: pip install 'cbs[hf]'") from exc
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            return HFTokenizer(path.name, HFTok.from_file(str(path)))
        except Exception as exc:
            raise DataError(f"{path} is not a valid tokenizer.json: {exc}") from exc
    try:
        return HFTokenizer(spec, HFTok.from_pretrained(spec))
    except Exception as exc:
        raise DataError(
            f"could not load tokenizer {spec!r} from the Hugging Face hub ({exc}); pass '{BYTES}', "
            "a local tokenizer.json path, or a hub name on a machine with network access"
        ) from exc
