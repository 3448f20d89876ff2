"""`cbs data prepare`: tokenize a corpus into a prepared dataset folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare tokenized datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = sub.add_parser(
        "prepare",
        help="tokenize a corpus into token shards + manifest",
        description="Tokenize documents from exactly one source into OUT (train.bin, val.bin, manifest.json).",
    )
    src = prep.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--builtin", choices=["stdlib"], help="offline corpus: this Python's standard-library sources"
    )
    src.add_argument(
        "--files", nargs="+", metavar="PATH", help="local text / .jsonl / .parquet files or globs"
    )
    src.add_argument("--hf-dataset", metavar="NAME", help="a Hugging Face dataset streamed, e.g. allenai/c4")
    prep.add_argument("--hf-config", default=None, help="dataset config name, e.g. en")
    prep.add_argument("--hf-split", default="train", help="dataset split to stream (default: train)")
    prep.add_argument("--hf-data-files", nargs="+", default=None, help="data_files passed to load_dataset")
    prep.add_argument(
        "--text-field", default="text", help="JSONL/Parquet/HF field holding the text (default: text)"
    )
    prep.add_argument(
        "--tokenizer",
        default="bytes",
        help="'bytes' (byte-level, vocab 256; default), a tokenizer.json path, or a hub name (EleutherAI/gpt-neox-20b)",
    )
    prep.add_argument("--out", required=True, help="output folder, e.g. data/stdlib")
    prep.add_argument(
        "--val-fraction", type=float, default=0.01, help="fraction of documents held out (default 0.01)"
    )
    prep.add_argument(
        "--max-tokens", type=int, default=None, help="stop after this many tokens (default: all)"
    )
    prep.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    prep.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cbs.data import load_tokenizer, prepare_dataset
    from cbs.data.prepare import check_out
    from cbs.data.sources import file_documents, hf_documents, stdlib_documents

    check_out(args.out, args.overwrite)  # before loading a tokenizer or opening a dataset
    tokenizer = load_tokenizer(args.tokenizer)
    if args.builtin:
        import sysconfig

        docs, source = stdlib_documents(), f"python stdlib sources at {sysconfig.get_paths()['stdlib']}"
    elif args.files:
        docs, source = file_documents(args.files, args.text_field), f"files {' '.join(args.files)}"
    else:
        docs = hf_documents(
            args.hf_dataset, args.hf_config, args.hf_split, args.text_field, args.hf_data_files
        )
        source = f"hf:{args.hf_dataset} config={args.hf_config} split={args.hf_split}"
    ds = prepare_dataset(
        docs,
        tokenizer,
        args.out,
        source=source,
        val_fraction=args.val_fraction,
        max_tokens=args.max_tokens,
        overwrite=args.overwrite,
    )
    Console().print(
        f"[green]wrote[/] {ds.path}: train {ds.n_tokens('train'):,} tokens, val {ds.n_tokens('val'):,} tokens, "
        f"tokenizer {ds.tokenizer_name} (vocab {ds.vocab_size}), fingerprint {ds.fingerprint}"
    )
    return 0
