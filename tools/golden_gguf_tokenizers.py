#!/usr/bin/env python3
"""Tiny GGUF tokenizer fixtures and the token ids transformers gives for them.

Writes `fixtures/golden/gguf-tokenizers/*.gguf` (tokenizer metadata, the few hyper-parameters
transformers needs to rebuild a config, and one 8-element F32 tensor) and
`fixtures/golden/gguf_tokenizers.json`: for every file, the ids of `TEXTS` as
`AutoTokenizer.from_pretrained(dir, gguf_file=...)` encodes them with and without special tokens,
and the structure of the backend tokenizer it builds (normalizer, pre-tokenizer, post-processor,
decoder, added tokens, model flags, merges). `plugins/gguf/tests/gguf_tokenizers.rs` checks
`cleft_gguf` against it.

The vocabularies are cut from SmolLM2-135M-Instruct's (Apache-2.0, $CLEFT_ASSETS/smollm2/
SmolLM2-135M-Instruct.Q4_1.gguf; tools/fetch-assets.sh puts it there):

- `spm-llama.gguf`: a LLaMA-2 / Mistral style sentencepiece vocabulary (`tokenizer.ggml.model =
  llama`, architecture `llama`): `<unk> <s> </s>`, the control tokens `[INST] [/INST]`, a
  user-defined and an unused token, the byte tokens `<0x00>`..`<0xFF>`, then SmolLM2's first
  tokens respelled with `▁`, scored `-rank` with some ties. No merges (they are derived from the
  scores) and no `add_bos_token` key (older files; transformers then adds BOS);
- `spm-gemma.gguf`: the same pieces laid out as Gemma 3's file is (architecture `gemma3`, `<pad>
  <eos> <bos> <unk>`, no `<mask>`, `[multimodal]`, user-defined newline runs and space runs
  stored as real spaces, `<unused0>` control), scores that contradict the file order (transformers
  orders Gemma's derived merges by position), `add_bos_token = true`, `add_space_prefix = false`;
- `spm-phi3.gguf`: the llama vocabulary under architecture `phi3` (a normalizer instead of
  `Metaspace`), with `add_bos_token = false`, `add_eos_token = true`;
- `bpe-llama3.gguf`: byte-level BPE (`gpt2`) with `tokenizer.ggml.pre = llama-bpe`, LLaMA-3 style
  special tokens, `add_bos_token = true`;
- `bpe-qwen2.gguf`: byte-level BPE with `pre = qwen2`, Qwen2 style special tokens, user-defined
  `<tool_call>`, a control token outside the byte alphabet (skipped by transformers),
  `add_bos_token = false`.

Requirements: pip install gguf numpy torch transformers
(the values committed were made with gguf 0.19.0, transformers 5.24.0, tokenizers 0.23.3).

Usage: python tools/golden_gguf_tokenizers.py [--out-dir fixtures/golden]
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

SMOLLM2 = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# Not seen by any of the vocabularies' makers; every special spelling of every fixture appears.
TEXTS = [
    "",
    "Hello, world!",
    "The patient's chest X-ray shows mild cardiomegaly; no pleural effusion.",
    " leading space",
    "  two leading spaces and   runs    of spaces  ",
    "trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand \r\n CRLF\n\n\n\n\n",
    "numbers 1234567 and 3.14159, 2026-12-07, 1,000,000",
    "ÉMOJIS 🤗🚀, accents café naïve, 中文字符, Ελληνικά, русский",
    "I'M SURE they'll say it's fine; we've done it (again) -- DON'T worry. 'S 'll",
    "def f(x):\n    return x**2  # square\n\treturn\n",
    "<s>literal specials</s> <unk> <|im_start|>user\nhi<|im_end|>\n",
    "[INST] an instruction [/INST] and <tool_call>{}</tool_call>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>",
    "<bos><start_of_turn>user [multimodal] <unused0><mask><pad><eos>",
    "\u00a0non-breaking\u2009thin space\u3000ideographic\u2028line sep",
    "combining e\u0301 and Hangul 한국어 and Arabic العربية and ㈱",
    "zero\u200bwidth and BOM \ufeff and control \x07 char and \x00 nul",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "URL https://example.org/path?q=1&r=2#frag and email a.b@c.de",
    "\u2581 literal metaspace \u2581\u2581 and \u0120 byte-level spelling \u010a",
    "unicode digits \u0661\u0662\u0663 and fullwidth \uff11\uff12\uff13 and superscript \u00b2",
    "<0x41> <0xFF> [/INST]x<|tool|>y<unused_5>",
    "whitespace zoo:\x0b\x0c\x1c\x1d\x1e\x1f\x85\u1680\u2000\u2007\u200a\u202f\u205f\u180e end",
    "case folds: 'S 'T 'RE 'Ve '\u017f '\u212a \u01c5 \ufb01 \u00df 12345678901 \u216b\u2163 \u00bd",
    "\r\r\n \n\r mixed \t\n\t\n  \n",
]


def asset_path() -> Path:
    root = os.environ.get("CLEFT_ASSETS") or os.path.join(os.path.expanduser("~"), ".cache", "cleft-assets")
    return Path(root) / SMOLLM2


def smollm2_vocabulary():
    """SmolLM2's tokens, token types and merges, as the file stores them."""
    from gguf import GGUFReader

    fields = GGUFReader(str(asset_path())).fields

    def strings(key):
        field = fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    types = fields["tokenizer.ggml.token_type"]
    return (
        strings("tokenizer.ggml.tokens"),
        [int(types.parts[i][0]) for i in types.data],
        strings("tokenizer.ggml.merges"),
    )


def byte_decoder():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def sentencepiece_pieces(tokens, count):
    """SmolLM2's normal tokens as sentencepiece pieces (`▁` for a space), first `count` distinct."""
    decode = byte_decoder()
    pieces, seen = [], set()
    for token in tokens[17:]:
        try:
            text = bytes(decode[c] for c in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue
        piece = text.replace(" ", "\u2581")
        if piece in seen or not piece.strip() and piece != "\u2581":
            continue
        seen.add(piece)
        pieces.append(piece)
        if len(pieces) == count:
            break
    return pieces


BYTES = [f"<0x{b:02X}>" for b in range(256)]


def spm_llama(pieces):
    tokens = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "<|tool|>", "<unused_5>"] + BYTES
    types = [2, 3, 3, 3, 3, 4, 5] + [6] * 256
    scores = [0.0] * len(tokens)
    # -rank, every 7th piece tied with the one before it.
    rank = 0
    for i, piece in enumerate(pieces):
        if i % 7 != 6:
            rank += 1
        tokens.append(piece)
        types.append(1)
        scores.append(-float(rank))
    return {
        "model": "llama",
        "tokens": tokens,
        "types": types,
        "scores": scores,
        "bos": 1,
        "eos": 2,
        "unk": 0,
    }


def spm_gemma(pieces):
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "[multimodal]", "<unused0>", "<start_of_turn>"]
    types = [3, 3, 3, 2, 4, 3, 3]
    tokens += ["\n" * n for n in range(1, 6)] + [" " * n for n in range(2, 8)]
    types += [4] * 11
    tokens += BYTES
    types += [6] * 256
    # one respelled run also exists as a normal piece: the later one wins in the vocabulary
    body = [p for p in pieces if p != "\u2581\u2581"] + ["\u2581\u2581\u2581"]
    tokens += body
    types += [1] * len(body)
    # scores against the file order (Gemma's real scores do not follow its merge order either)
    scores = [-1000.0] * (len(tokens) - len(body)) + [float(i % 13) for i in range(len(body))]
    return {
        "model": "llama",
        "pre": "default",
        "tokens": tokens,
        "types": types,
        "scores": scores,
        "bos": 2,
        "eos": 1,
        "unk": 3,
        "pad": 0,
        "add_bos": True,
        "add_eos": False,
        "add_space_prefix": False,
    }


def byte_level(tokens, types, merges, count, specials, user_defined=(), extra_control=()):
    tokens = list(tokens[:count])
    types = list(types[:count])
    for i, name in enumerate(specials):
        tokens[i] = name
        types[i] = 3
    for i, name in user_defined:
        tokens[i] = name
        types[i] = 4
    for i, name in extra_control:
        tokens[i] = name
        types[i] = 3
    index = {t: i for i, t in enumerate(tokens)}
    kept = [m for m in merges if all(part in index for part in m.split(" ")) and m.replace(" ", "") in index]
    return tokens, types, kept


def write_gguf(path: Path, arch: str, name: str, tok: dict):
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_key_length(4)
    writer.add_value_length(4)
    writer.add_tokenizer_model(tok["model"])
    if tok.get("pre") is not None:
        writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    if "scores" in tok:
        writer.add_token_scores(tok["scores"])
    if "merges" in tok:
        writer.add_token_merges(tok["merges"])
    for key, add in [
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("unk", writer.add_unk_token_id),
        ("pad", writer.add_pad_token_id),
    ]:
        if tok.get(key) is not None:
            add(tok[key])
    for key, add in [
        ("add_bos", writer.add_add_bos_token),
        ("add_eos", writer.add_add_eos_token),
        ("add_space_prefix", writer.add_add_space_prefix),
    ]:
        if tok.get(key) is not None:
            add(tok[key])
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def reference(path: Path) -> dict:
    """What transformers builds from the file."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend["model"]
    merges = [list(m) for m in model.get("merges") or []]
    flags = {k: v for k, v in model.items() if k not in ("vocab", "merges")}
    encodings = []
    for text in TEXTS:
        encodings.append(
            {
                "text": text,
                "ids_with_special": tokenizer(text)["input_ids"],
                "ids_plain": tokenizer(text, add_special_tokens=False)["input_ids"],
            }
        )
    return {
        "file": path.name,
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_size": tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True),
        "bos_token_id": tokenizer.bos_token_id,
        "add_bos_token": tokenizer.add_bos_token,
        "add_eos_token": tokenizer.add_eos_token,
        "normalizer": backend["normalizer"],
        "pre_tokenizer": backend["pre_tokenizer"],
        "post_processor": backend["post_processor"],
        "decoder": backend["decoder"],
        "added_tokens": backend["added_tokens"],
        "model": flags,
        "n_merges": len(merges),
        "merges_sha256": hashlib.sha256("\n".join(f"{a} {b}" for a, b in merges).encode("utf-8")).hexdigest(),
        "first_merges": merges[:20],
        "last_merges": merges[-20:],
        "encodings": encodings,
    }


def main():
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default=str(here / "fixtures" / "golden"))
    args = parser.parse_args()
    out = Path(args.out_dir)
    files = out / "gguf-tokenizers"
    files.mkdir(parents=True, exist_ok=True)

    tokens, types, merges = smollm2_vocabulary()
    pieces = sentencepiece_pieces(tokens, 1500)
    llama = spm_llama(pieces)
    phi3 = dict(llama, add_bos=False, add_eos=True)

    count = 3000
    l3_tokens, l3_types, l3_merges = byte_level(
        tokens,
        types,
        merges,
        count,
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    )
    q2_tokens, q2_types, q2_merges = byte_level(
        tokens,
        types,
        merges,
        count,
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        user_defined=[(3, "<tool_call>"), (4, "</tool_call>")],
        extra_control=[(5, "<\uff5cbegin\u2581of\u2581sentence\uff5c>")],
    )
    fixtures = [
        ("spm-llama.gguf", "llama", "tiny-spm-llama", llama),
        ("spm-gemma.gguf", "gemma3", "tiny-spm-gemma", spm_gemma(pieces)),
        ("spm-phi3.gguf", "phi3", "tiny-spm-phi3", phi3),
        (
            "bpe-llama3.gguf",
            "llama",
            "tiny-bpe-llama3",
            {
                "model": "gpt2",
                "pre": "llama-bpe",
                "tokens": l3_tokens,
                "types": l3_types,
                "merges": l3_merges,
                "bos": 0,
                "eos": 4,
                "add_bos": True,
            },
        ),
        (
            "bpe-qwen2.gguf",
            "qwen2",
            "tiny-bpe-qwen2",
            {
                "model": "gpt2",
                "pre": "qwen2",
                "tokens": q2_tokens,
                "types": q2_types,
                "merges": q2_merges,
                "bos": 0,
                "eos": 2,
                "pad": 0,
                "add_bos": False,
            },
        ),
    ]
    golden = {"texts": TEXTS, "files": {}}
    for file, arch, name, tok in fixtures:
        path = files / file
        write_gguf(path, arch, name, tok)
        golden["files"][file] = reference(path)
        print(f"{file}: {path.stat().st_size} bytes, {len(tok['tokens'])} tokens")
    with open(out / "gguf_tokenizers.json", "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
