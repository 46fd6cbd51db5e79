#!/usr/bin/env python3
"""Golden values for the cleft-gguf crate (plugins/gguf), written to fixtures/golden/gguf.json.

Reads SmolLM2-135M-Instruct.Q4_1.gguf (from $CLEFT_ASSETS, default ~/.cache/cleft-assets, file
smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; tools/fetch-assets.sh puts it there) with the reference
implementations:

- the `gguf` package (llama.cpp's gguf-py) for metadata, tensor infos and dequantisation;
- transformers' own `LlamaTensorProcessor` for the Q/K un-permutation, i.e. what
  `from_pretrained(..., gguf_file=...)` applies to `attn_q` / `attn_k`;
- transformers' `AutoTokenizer.from_pretrained(..., gguf_file=...)` for token ids and the
  structure of the tokenizer it builds (its GGUF path imports torch).

Requirements: pip install gguf numpy torch transformers
(the values committed were made with gguf 0.19.0, numpy 2.4, transformers 5.24.0, tokenizers 0.23.3).

Usage: python tools/golden_gguf.py [--out fixtures/golden/gguf.json]
"""

import argparse
import hashlib
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

REL_PATH = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# One tensor of each type in the file, plus the attention projections.
TENSORS = [
    "token_embd.weight",  # Q8_0
    "blk.0.attn_norm.weight",  # F32
    "output_norm.weight",  # F32
    "blk.0.ffn_down.weight",  # Q4_1
    "blk.29.ffn_up.weight",  # Q4_1
    "blk.0.attn_q.weight",  # Q4_1
    "blk.0.attn_k.weight",  # Q4_1
    "blk.0.attn_v.weight",  # Q4_1
]

UNPERMUTED = ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.7.attn_k.weight"]
ROWS = [0, 1, 2, 3, 31, 32, 33, 63, 64, 65, 127, 191]

SENTENCES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "  Spaces   and\ttabs\n\nnumbers 12345 and 3.14159, émojis 🤗 and 中文!",
    "I'm sure they'll say it's fine; we've done it (again) -- don't worry.",
    "def f(x):\n    return x**2  # square\n",
]


def asset_path() -> Path:
    root = os.environ.get("CLEFT_ASSETS") or os.path.join(os.path.expanduser("~"), ".cache", "cleft-assets")
    return Path(root) / REL_PATH


def field_value(reader: GGUFReader, key: str):
    f = reader.fields[key]
    return f.contents()


def f32_list(a) -> list:
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def tensor_entry(t, values: np.ndarray) -> dict:
    flat = values.reshape(-1).astype(np.float32)
    n = flat.size
    samples = sorted({0, 31, 32, 33, 1000 % n, n // 2, n - 1})
    return {
        "ggml_type": t.tensor_type.name,
        "ggml_dims": [int(d) for d in t.shape],
        "shape": [int(d) for d in values.shape],
        "n_elements": int(t.n_elements),
        "abs_offset": int(t.data_offset),  # absolute file offset
        "first16": f32_list(flat[:16]),
        "samples": {str(i): float(flat[i]) for i in samples},
        "sum": float(np.sum(flat, dtype=np.float64)),
        "abs_sum": float(np.sum(np.abs(flat), dtype=np.float64)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "fixtures/golden/gguf.json"))
    args = ap.parse_args()

    path = asset_path()
    if not path.exists():
        raise SystemExit(f"{path} not found: run tools/fetch-assets.sh (or set CLEFT_ASSETS)")
    raw = path.read_bytes()
    reader = GGUFReader(str(path))

    arch = field_value(reader, "general.architecture")
    n_head = int(field_value(reader, f"{arch}.attention.head_count"))
    n_head_kv = int(field_value(reader, f"{arch}.attention.head_count_kv"))
    token_types = list(field_value(reader, "tokenizer.ggml.token_type"))
    tokens = list(field_value(reader, "tokenizer.ggml.tokens"))
    merges = list(field_value(reader, "tokenizer.ggml.merges"))

    out: dict = {
        "file": {"rel_path": REL_PATH, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()},
        "version": int(field_value(reader, "GGUF.version")),
        "tensor_count": len(reader.tensors),
        "metadata_count": len(reader.fields) - 3,  # minus the GGUF.* pseudo-fields
        "alignment": int(field_value(reader, "general.alignment")) if "general.alignment" in reader.fields else 32,
        "data_offset": int(reader.data_offset),
        "parameter_count": int(sum(int(t.n_elements) for t in reader.tensors)),
        "tensor_type_counts": dict(sorted(Counter(t.tensor_type.name for t in reader.tensors).items())),
        "metadata": {
            "general.architecture": arch,
            "general.name": field_value(reader, "general.name"),
            "general.file_type": int(field_value(reader, "general.file_type")),
            "general.languages": list(field_value(reader, "general.languages")),
            f"{arch}.block_count": int(field_value(reader, f"{arch}.block_count")),
            f"{arch}.context_length": int(field_value(reader, f"{arch}.context_length")),
            f"{arch}.embedding_length": int(field_value(reader, f"{arch}.embedding_length")),
            f"{arch}.feed_forward_length": int(field_value(reader, f"{arch}.feed_forward_length")),
            f"{arch}.attention.head_count": n_head,
            f"{arch}.attention.head_count_kv": n_head_kv,
            f"{arch}.rope.freq_base": float(field_value(reader, f"{arch}.rope.freq_base")),
            f"{arch}.rope.dimension_count": int(field_value(reader, f"{arch}.rope.dimension_count")),
            f"{arch}.attention.layer_norm_rms_epsilon": float(
                np.float32(field_value(reader, f"{arch}.attention.layer_norm_rms_epsilon"))
            ),
            f"{arch}.vocab_size": int(field_value(reader, f"{arch}.vocab_size")),
        },
        "tensors": {},
        "unpermuted": {},
    }

    by_name = {t.name: t for t in reader.tensors}
    for name in TENSORS:
        t = by_name[name]
        out["tensors"][name] = tensor_entry(t, dequantize(t.data, t.tensor_type))

    # transformers' own un-permutation (the code `from_pretrained(gguf_file=...)` runs for llama).
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    processor = LlamaTensorProcessor(config={"num_attention_heads": n_head, "num_key_value_heads": n_head_kv})
    for name in UNPERMUTED:
        t = by_name[name]
        w = processor.process(weights=dequantize(t.data, t.tensor_type), name=name).weights
        rows = [r for r in ROWS if r < w.shape[0]]
        row_sums = np.sum(w.astype(np.float64), axis=1)
        out["unpermuted"][name] = {
            "shape": [int(d) for d in w.shape],
            "rows": {str(r): f32_list(w[r, :8]) for r in rows},
            # Sensitive to the row order: sum over rows of row_index * row_sum.
            "row_weighted_sum": float(np.sum(np.arange(w.shape[0], dtype=np.float64) * row_sums)),
        }

    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = set(ByteLevel.alphabet())
    out["tokenizer"] = {
        "model": field_value(reader, "tokenizer.ggml.model"),
        "pre": field_value(reader, "tokenizer.ggml.pre"),
        "n_tokens": len(tokens),
        "n_merges": len(merges),
        "first_tokens": tokens[:20],
        "first_merges": merges[:10],
        "last_merge": merges[-1],
        "bos_token_id": int(field_value(reader, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field_value(reader, "tokenizer.ggml.eos_token_id")),
        "unknown_token_id": int(field_value(reader, "tokenizer.ggml.unknown_token_id")),
        "padding_token_id": int(field_value(reader, "tokenizer.ggml.padding_token_id")),
        "add_bos_token": bool(field_value(reader, "tokenizer.ggml.add_bos_token")),
        "token_type_counts": {str(k): v for k, v in sorted(Counter(int(x) for x in token_types).items())},
        "n_tokens_outside_byte_alphabet": sum(1 for t in tokens if not set(t) <= alphabet),
    }

    # The tokenizer transformers builds from the GGUF (its GGUF path needs torch).
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(path, os.path.join(tmp, "model.gguf"))
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file="model.gguf")
    backend = json.loads(tok.backend_tokenizer.to_str())
    model = {k: v for k, v in backend["model"].items() if k not in ("vocab", "merges")}
    out["hf_tokenizer"] = {
        "transformers_class": type(tok).__name__,
        "normalizer": backend["normalizer"],
        "pre_tokenizer": backend["pre_tokenizer"],
        "post_processor": backend["post_processor"],
        "decoder": backend["decoder"],
        "model": model,
        "vocab_size": len(backend["model"]["vocab"]),
        "n_merges": len(backend["model"]["merges"]),
        "added_tokens": backend["added_tokens"],
        "encodings": [
            {
                "text": s,
                "ids": tok(s)["input_ids"],
                "decoded": tok.decode(tok(s)["input_ids"]),
            }
            for s in SENTENCES
        ],
        "pair": {
            "a": SENTENCES[0],
            "b": SENTENCES[1],
            "ids": tok(SENTENCES[0], SENTENCES[1])["input_ids"],
            "type_ids": tok(SENTENCES[0], SENTENCES[1], return_token_type_ids=True)["token_type_ids"],
        },
    }

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
