"""Prepared datasets: sources, tokenizers, manifest, train/val disjointness, the deterministic sampler."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cbs.cli import main
from cbs.data import ByteTokenizer, WindowSampler, eval_windows, load_tokenizer, open_dataset, prepare_dataset
from cbs.data.dataset import token_dtype
from cbs.data.prepare import in_val
from cbs.data.sources import file_documents, hf_documents, stdlib_files
from cbs.errors import DataError

DOCS = [f"document number {i}: " + "lorem ipsum dolor sit amet " * (1 + i % 5) for i in range(200)]


def prepare(docs, out, **kw):
    return prepare_dataset(docs, ByteTokenizer(), out, source="test", progress=False, **kw)


def split_docs(ds) -> dict[str, list[str]]:
    """Decode each split back into its documents (byte tokenizer, NUL-separated)."""
    return {s: bytes(ds.tokens(s).astype(np.uint8)).decode().split("\0")[:-1] for s in ("train", "val")}


def test_manifest_and_roundtrip(tmp_path):
    ds = prepare(DOCS, tmp_path / "d", val_fraction=0.2)
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["dtype"] == "uint16" and m["tokenizer"] == {"name": "bytes", "vocab_size": 256, "eos_id": 0}
    total = sum(len(d.encode()) + 1 for d in DOCS)
    assert ds.n_tokens("train") + ds.n_tokens("val") == total
    assert ds.vocab_size == 256 and ds.tokenizer_name == "bytes" and ds.fingerprint == m["fingerprint"]
    parts = split_docs(ds)
    assert sorted(parts["train"] + parts["val"]) == sorted(DOCS)


def test_split_is_disjoint_deterministic_and_fingerprinted(tmp_path):
    a = prepare(DOCS, tmp_path / "a", val_fraction=0.2)
    b = prepare(DOCS, tmp_path / "b", val_fraction=0.2)
    parts = split_docs(a)
    assert parts["val"] and not set(parts["train"]) & set(parts["val"])
    assert parts["val"] == [d for d in DOCS if in_val(d, 0.2)]
    assert 0.1 < len(parts["val"]) / len(DOCS) < 0.3
    assert a.fingerprint == b.fingerprint
    assert prepare(DOCS[:-1], tmp_path / "c", val_fraction=0.2).fingerprint != a.fingerprint


def test_max_tokens_overwrite_and_atomicity(tmp_path):
    ds = prepare(DOCS, tmp_path / "d", val_fraction=0.2, max_tokens=1000)
    assert ds.n_tokens("train") + ds.n_tokens("val") == 1000
    with pytest.raises(DataError, match="--overwrite"):
        prepare(DOCS, tmp_path / "d")
    with pytest.raises(DataError, match="val split got 0 tokens"):
        prepare(DOCS[:1], tmp_path / "e", val_fraction=0.01)
    assert not (tmp_path / "e").exists() and [p.name for p in tmp_path.iterdir()] == ["d"]


def test_open_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="cbs data prepare"):
        open_dataset(tmp_path / "missing")
    prepare(DOCS, tmp_path / "d", val_fraction=0.2)
    (tmp_path / "d" / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="cbs data prepare"):
        open_dataset(tmp_path / "d")


def test_token_dtype():
    assert (
        token_dtype(256) == np.uint16 and token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32
    )


def test_local_file_sources(tmp_path):
    (tmp_path / "a.txt").write_text("plain text file")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"body": "json one"}) + "\n\n" + json.dumps({"body": "json two"})
    )
    pq.write_table(pa.table({"body": ["parquet one", "parquet two"]}), tmp_path / "c.parquet")
    assert list(file_documents([str(tmp_path / "a.txt")])) == ["plain text file"]
    docs = list(file_documents([str(tmp_path / "*.jsonl"), str(tmp_path / "c.parquet")], text_field="body"))
    assert docs == ["json one", "json two", "parquet one", "parquet two"]
    with pytest.raises(DataError, match="--text-field"):
        list(file_documents([str(tmp_path / "b.jsonl")], text_field="text"))
    with pytest.raises(DataError, match="matches no file"):
        list(file_documents([str(tmp_path / "*.nothing")]))


def test_stdlib_source_is_sorted_and_excludes_site_packages():
    files = stdlib_files()
    assert len(files) > 500 and all("site-packages" not in f.parts for f in files)
    assert any(f.name == "os.py" for f in files)


def test_hf_dataset_path_with_local_json_and_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")
    pytest.importorskip("datasets", reason="the hf extra (datasets) is not installed")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        DOCS, trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]", "<|endoftext|>"])
    )
    tok.save(str(tmp_path / "tokenizer.json"))
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))

    docs = hf_documents("json", None, "train", "text", data_files=[str(data)])
    hf_tok = load_tokenizer(str(tmp_path / "tokenizer.json"))
    ds = prepare_dataset(docs, hf_tok, tmp_path / "d", source="hf:json", val_fraction=0.2, progress=False)
    assert ds.vocab_size == tok.get_vocab_size() and ds.manifest["tokenizer"]["eos_id"] == 1
    assert (tmp_path / "d" / "tokenizer.json").is_file()
    train = ds.tokens("train").astype(np.int64)
    first_doc = train[: int(np.argmax(train == 1))].tolist()
    first_train = next(d for d in DOCS if not in_val(d, 0.2))
    assert tok.decode(first_doc) == tok.decode(tok.encode(first_train).ids)
    with pytest.raises(DataError, match="tokenizer"):
        load_tokenizer(str(tmp_path / "corpus.jsonl"))


def test_cli_prepare(tmp_path, capsys):
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    args = [
        "data",
        "prepare",
        "--files",
        str(tmp_path / "corpus.jsonl"),
        "--out",
        str(tmp_path / "d"),
        "--val-fraction",
        "0.2",
    ]
    assert main(args) == 0
    assert open_dataset(tmp_path / "d").n_tokens("val") > 0
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err


# --- sampler ---------------------------------------------------------------------------------------------------


def test_sampler_is_deterministic_and_single_epoch():
    a, b = WindowSampler(10_000, 15, seed=3), WindowSampler(10_000, 15, seed=3)
    starts = np.concatenate([a.next_starts(125) for _ in range(5)])
    np.testing.assert_array_equal(starts, np.concatenate([b.next_starts(300), b.next_starts(325)]))
    assert len(np.unique(starts)) == len(starts) == a.n_windows == 625  # every window exactly once
    assert np.all(starts % 16 == 0) and starts.max() + 16 <= 10_000
    assert not np.array_equal(WindowSampler(10_000, 15, seed=4).next_starts(100), starts[:100])


def test_sampler_resumes_from_its_position():
    a = WindowSampler(10_000, 15, seed=0)
    a.next_starts(37)
    b = WindowSampler(10_000, 15, seed=0)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.next_starts(50), b.next_starts(50))


def test_budget_check_and_repeat(caplog):
    s = WindowSampler(1_000, 9, seed=0)  # 100 windows
    s.check_budget(100)
    with pytest.raises(DataError, match="allow_repeat"):
        s.check_budget(101)
    r = WindowSampler(1_000, 9, seed=0, allow_repeat=True)
    with caplog.at_level(logging.WARNING):
        r.check_budget(250)
        starts = r.next_starts(250)
    assert "REPEATING DATA" in caplog.text
    assert len(np.unique(starts[:100])) == 100 and len(np.unique(starts)) == 100


def test_eval_windows_are_fixed_and_spread():
    w = eval_windows(10_000, 15, eval_tokens=150)
    assert len(w) == 10 and w[0] == 0 and w[-1] == (10_000 // 16 - 1) * 16
    np.testing.assert_array_equal(w, eval_windows(10_000, 15, eval_tokens=150))
    assert len(eval_windows(100, 15, eval_tokens=10_000)) == 6
    with pytest.raises(DataError, match="val-fraction"):
        eval_windows(10, 15, eval_tokens=100)
