#!/usr/bin/env python3
"""Float32 noise of every golden output: how far the float32 reference is from the same
computation in float64. Writes fixtures/golden/noise.json, from which the Rust parity tests derive
tolerances that do not depend on the CPU the goldens were made on.

    tools/fetch-assets.sh                       # real assets into $CLEFT_ASSETS
    python tools/golden_noise.py                # writes fixtures/golden/noise.json (~2 min, 1 thread)
    python tools/golden_noise.py --only minilm,objectives   # print only, write nothing
    python tools/golden_noise.py --stop-rel 1e-6            # stricter reproduction check (see below)
    python tools/golden_noise.py --only llm --update        # recompute some steps, keep the other entries

Needs: torch transformers peft safetensors gguf numpy (the versions in tools/README.md) and the
assets minilm/, smollm2/*.gguf, gemma3-270m/*.gguf, dinov2-s/ under ${CLEFT_ASSETS:-~/.cache/cleft-assets}
(the steps gpt2, vit, llm and objectives need none). Reads the committed goldens, model checkpoints and
adapters under fixtures/golden/ and never writes them.

For every float32 golden output (model inputs and raw weight slices excluded), from the committed
inputs and weights:
  recomputed_f32_vs_committed  max |float32 recomputation, as the golden script does it - committed|
  f32_vs_f64                   max |committed - the same computation in float64|
  max_abs                      max |committed|
The float64 run casts the model (weights, buffers, PEFT adapters) with .double(), feeds it the same
float32 inputs cast to float64, and runs under `AllFloat64`, a torch function mode that turns every
float32 cast/dtype inside the forward into float64. transformers hard-codes float32 in a few places
(LLaMA and Gemma 3 RMSNorm, RoPE angles and attention softmax; ViT attention softmax; DINOv2
position-embedding interpolation), so a plain model.double() is not a float64 computation there; its spread is kept as
`f32_vs_f64_model_double` (= the f32_vs_f64_max_abs_diff values in the golden JSONs). float64
reference tensors (smollm2 *_f64ref, objectives' float64 gradients) get max_abs, f32_vs_f64 (the
spread of their float32 twin) and recomputed_f64_vs_committed. `merge` holds HF PEFT's own float32
merge noise, max |merge_and_unload() output - unmerged output|, for the LoRA and IA3 adapters.
The script stops without writing if a recomputation is off by more than 2e-5 * max_abs (--stop-rel):
on a CPU other than the goldens' the float32 recomputation is not bit-exact (other SIMD kernels), and
recomputed_f32_vs_committed is then float32 noise of the same size as f32_vs_f64.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time

import torch
from safetensors.torch import load_file
from torch.overrides import TorchFunctionMode

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
GOLDEN = os.path.join(ROOT, "fixtures", "golden")
CACHE = os.environ.get("CLEFT_ASSETS", os.path.join(os.path.expanduser("~"), ".cache", "cleft-assets"))
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_DIR, GEMMA3_GGUF = "gemma3-270m", "gemma-3-270m-q4_k_m.gguf"  # as tools/golden_gemma3_gguf.py
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # as tools/golden_encoders.py
IMAGENET_STD = (0.229, 0.224, 0.225)
REL_STOP = 2e-5  # default: recomputation must match the committed golden to this fraction of max_abs
# (another CPU's float32 noise reaches 1.3e-5 of max_abs on SmolLM2 prefix tuning; a wrong
# recomputation is off by far more)
THREADS = int(os.environ.get("CLEFT_NOISE_THREADS", "1"))
torch.set_num_threads(THREADS)

ABOUT = (
    "Float32 noise of the committed goldens, made by tools/golden_noise.py (1 CPU thread). For every float32 "
    "golden output (model inputs and raw weight slices excluded) the script recomputes the reference from the "
    "committed inputs and weights exactly as the golden script does, in float32, and again in float64: the "
    "model, its buffers and its PEFT adapters cast with .double(), the same float32 inputs cast to float64, "
    "and every float32 cast inside the forward (transformers' LLaMA RMSNorm, RoPE and attention softmax, ViT "
    "softmax, DINOv2 position-embedding interpolation) turned into float64 by a torch function mode. "
    "f32_vs_f64 = max |committed - float64 result| over all elements, the reference's own float32 error and "
    "the basis of portable Rust tolerances; max_abs = max |committed|; recomputed_f32_vs_committed = max "
    "|float32 recomputation - committed| (0 when this CPU reproduces the golden bit for bit). "
    "f32_vs_f64_model_double is the spread against a plain model.double() run (float32 casts left in place: "
    "the f32_vs_f64_max_abs_diff values of the golden JSONs), given where it differs in kind. float64 "
    "references (smollm2 *_f64ref, objectives' float64 gradients) have f32_vs_f64 = the spread of their "
    "float32 twin (the float32 gradient for the gradients) and recomputed_f64_vs_committed; "
    "*_f64ref also have committed_vs_all_f64 (the committed plain model.double() result vs the all-float64 "
    "one). Objectives entries also compare the float64 recomputation with outputs_f64. merge: HF PEFT's "
    "own float32 merge noise, max |merge_and_unload() last_hidden_state - unmerged|, and max_abs of the "
    "unmerged output. Keys are <golden file stem>/<tensor or output name>."
)


# ------------------------------------------------------------------------------------------ helpers
class AllFloat64(TorchFunctionMode):
    """Inside this mode every float32 target dtype becomes float64: `x.float()`, `x.to(torch.float32)`,
    `x.to(dtype=torch.float)`, `x.type(torch.float32)` and any `dtype=torch.float32` keyword
    (softmax, factories). Counts the rewrites so a run can show they happened."""

    def __init__(self):
        super().__init__()
        self.rewrites = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.float:
            self.rewrites += 1
            return args[0].to(torch.float64)
        if kwargs.get("dtype") is torch.float32:
            kwargs["dtype"] = torch.float64
            self.rewrites += 1
        if func in (torch.Tensor.to, torch.Tensor.type) and any(a is torch.float32 for a in args):
            args = tuple(torch.float64 if a is torch.float32 else a for a in args)
            self.rewrites += 1
        return func(*args, **kwargs)


def as64(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.tensor(x, dtype=torch.float64)


def maxdiff(a, b):
    a, b = as64(a), as64(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def max_abs(a):
    return float(as64(a).abs().max())


def three_runs(model, fn):
    """fn(model, dtype) -> {name: tensor}. Returns (float32, all-float64, plain model.double()) results.
    The float32 model is left untouched (the float64 runs use a deep copy)."""
    with torch.no_grad():
        r32 = fn(model, torch.float32)
        m64 = copy.deepcopy(model).double()
        mode = AllFloat64()
        with mode:
            r64 = fn(m64, torch.float64)
        rdbl = fn(m64, torch.float64)
    for k, v in list(r64.items()) + list(rdbl.items()):
        assert v.dtype == torch.float64, (k, v.dtype)
    for k, v in r32.items():
        assert v.dtype == torch.float32, (k, v.dtype)
    del m64
    return r32, r64, rdbl, mode.rewrites


class Noise:
    def __init__(self, stop_rel=REL_STOP):
        self.tensors, self.merge, self.bad, self.stop_rel = {}, {}, [], stop_rel

    def _check(self, key, field, d, ref_max):
        if d > self.stop_rel * max(ref_max, 1e-30):
            self.bad.append(f"{key}: {field} = {d:.3e} = {d / max(ref_max, 1e-30):.2e} * max_abs ({ref_max:.3e}) "
                            f"> {self.stop_rel:g} * max_abs")

    def add(self, key, committed, r32, r64, rdbl=None):
        e = {"recomputed_f32_vs_committed": maxdiff(r32, committed),
             "f32_vs_f64": maxdiff(committed, r64),
             "max_abs": max_abs(committed)}
        if rdbl is not None:
            e["f32_vs_f64_model_double"] = maxdiff(committed, rdbl)
        self._check(key, "recomputed_f32_vs_committed", e["recomputed_f32_vs_committed"], e["max_abs"])
        self.tensors[key] = e
        return e

    def add_f64ref(self, key, committed, spread, r64_recomputed, extra=None):
        e = {"f32_vs_f64": float(spread), "max_abs": max_abs(committed),
             "recomputed_f64_vs_committed": maxdiff(r64_recomputed, committed)}
        e.update(extra or {})
        self._check(key, "recomputed_f64_vs_committed", e["recomputed_f64_vs_committed"], e["max_abs"])
        self.tensors[key] = e
        return e

    def add_runs(self, stem, committed, r32, r64, rdbl):
        for name in r32:
            self.add(f"{stem}/{name}", committed[name], r32[name], r64[name], rdbl[name])


def masked_mean(h, mask):  # tools/golden_encoders.py
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1)


def need(path):
    if not os.path.exists(path):
        sys.exit(f"missing {path}: run tools/fetch-assets.sh (or set CLEFT_ASSETS)")
    return path


def golden(name):
    return load_file(os.path.join(GOLDEN, name))


# ------------------------------------------------------------------------------------------ MiniLM
def noise_minilm(nz):
    from transformers import BertModel

    g = golden("minilm.safetensors")
    ids, mask, tt = g["input_ids"], g["attention_mask"], g["token_type_ids"]
    model = BertModel.from_pretrained(need(os.path.join(CACHE, "minilm")), dtype=torch.float32,
                                      attn_implementation="eager").eval()

    def fn(m, dtype):
        o = m(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
        hs, last = o.hidden_states, o.last_hidden_state
        medclip = torch.stack([hs[1], hs[2], hs[-1]]).mean(0)
        return {"last_hidden_state": last, "hidden_states_1": hs[1], "pooled_cls": last[:, 0],
                "pooled_mean": masked_mean(last, mask), "pooler_output": o.pooler_output,
                "medclip_layers_1_2_last_masked_mean": masked_mean(medclip, mask),
                "medclip_layers_1_2_last_unmasked_mean": medclip.mean(1)}

    r32, r64, rdbl, _ = three_runs(model, fn)
    nz.add_runs("minilm", g, r32, r64, rdbl)


# ------------------------------------------------------------------------------------------ SmolLM2
def load_smollm2():
    from transformers import AutoModel

    d = os.path.join(CACHE, "smollm2")
    need(os.path.join(d, GGUF_NAME))
    return AutoModel.from_pretrained(d, gguf_file=GGUF_NAME, dtype=torch.float32,
                                     attn_implementation="eager").eval()


def noise_smollm2(nz, base):
    g = golden("smollm2.safetensors")
    ids, mask, pos, n_real = g["input_ids"], g["attention_mask"], g["position_ids"], g["n_real"]
    rows = torch.arange(ids.shape[0])

    def fn(m, dtype):
        o = m(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, output_hidden_states=True)
        last = o.last_hidden_state
        return {"last_hidden_state": last, "hidden_states_1": o.hidden_states[1], "cleft_pooled": last[rows, n_real]}

    r32, r64, rdbl, rewrites = three_runs(base, fn)
    assert rewrites > 0
    nz.add_runs("smollm2", g, r32, r64, rdbl)
    for name in ("last_hidden_state", "cleft_pooled"):
        # the committed *_f64ref is a plain model.double() run stored as float32
        nz.add_f64ref(f"smollm2/{name}_f64ref", g[f"{name}_f64ref"], nz.tensors[f"smollm2/{name}"]["f32_vs_f64"],
                      rdbl[name].float(), {"committed_vs_all_f64": maxdiff(g[f"{name}_f64ref"], r64[name])})


# ------------------------------------------------------------------------------------------ Gemma-3-270M (GGUF)
def noise_gemma3_gguf(nz):
    """tools/golden_gemma3_gguf.py: the real Gemma-3-270M Q4_K_M, BOS first, right-padded with eos."""
    from transformers import AutoModel

    d = os.path.join(CACHE, GEMMA3_DIR)
    need(os.path.join(d, GEMMA3_GGUF))
    model = AutoModel.from_pretrained(d, gguf_file=GEMMA3_GGUF, dtype=torch.float32,
                                      attn_implementation="eager").eval()
    stem = "gemma3_270m"
    g = golden(f"{stem}.safetensors")
    ids, mask, n_real = g["input_ids"], g["attention_mask"], g["n_real"]
    rows = torch.arange(ids.shape[0])

    def fn(m, dtype):
        # position ids not passed (arange), as the golden script
        o = m(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
        last = o.last_hidden_state
        return {"last_hidden_state": last, "hidden_states_1": o.hidden_states[1], "cleft_pooled": last[rows, n_real]}

    r32, r64, rdbl, rewrites = three_runs(model, fn)
    assert rewrites > 0
    nz.add_runs(stem, g, r32, r64, rdbl)
    for name in ("last_hidden_state", "cleft_pooled"):
        # the committed *_f64ref is a plain model.double() run stored as float32
        nz.add_f64ref(f"{stem}/{name}_f64ref", g[f"{name}_f64ref"], nz.tensors[f"{stem}/{name}"]["f32_vs_f64"],
                      rdbl[name].float(), {"committed_vs_all_f64": maxdiff(g[f"{name}_f64ref"], r64[name])})
    del model


def peft_outputs(nz, stem, committed, make, methods, call, pooled=None):
    """methods: name -> adapter dir; make() -> fresh float32 base; call(model) -> last_hidden_state.
    pooled: name -> index function (h -> pooled rows) or None."""
    from peft import PeftModel

    for name, adir in methods.items():
        pm = PeftModel.from_pretrained(make(), os.path.join(GOLDEN, adir)).eval()

        def fn(m, dtype, name=name):
            h = call(m)
            out = {f"{name}_last_hidden_state": h}
            if pooled is not None:
                out[f"{name}_pooled"] = pooled(name, h)
            return out

        r32, r64, rdbl, _ = three_runs(pm, fn)
        nz.add_runs(stem, committed, r32, r64, rdbl)
        del pm


def merge_noise(nz, key, make, adir, call):
    from peft import PeftModel

    pm = PeftModel.from_pretrained(make(), os.path.join(GOLDEN, adir)).eval()
    with torch.no_grad():
        h = call(pm)
        merged = copy.deepcopy(pm).merge_and_unload().eval()
        hm = call(merged)
    nz.merge[key] = {"merged_vs_unmerged": maxdiff(hm, h), "max_abs": max_abs(h)}


def noise_smollm2_peft(nz, base):
    g = golden("smollm2_peft.safetensors")
    ids, mask, n_real = g["input_ids"], g["attention_mask"], g["n_real"]
    rows = torch.arange(ids.shape[0])
    P = 4  # tools/golden_peft_llama.py

    def call(m):
        return m(input_ids=ids, attention_mask=mask).last_hidden_state

    def pooled(name, h):
        return h[rows, n_real + (P if name == "prompt" else 0)]

    methods = {m: f"smollm2-{m}" for m in ("lora", "ia3", "prefix", "prompt")}
    peft_outputs(nz, "smollm2_peft", g, lambda: copy.deepcopy(base), methods, call, pooled)
    for m in ("lora", "ia3"):
        merge_noise(nz, f"smollm2/{m}", lambda: copy.deepcopy(base), f"smollm2-{m}", call)


# ------------------------------------------------------------------------------------------ tiny GPT-2
def noise_tiny_gpt2(nz):
    from transformers import GPT2Model

    mdir = os.path.join(GOLDEN, "tiny-gpt2")
    g = golden("tiny_gpt2.safetensors")
    ids, mask, pos = g["input_ids"], g["attention_mask"], g["position_ids"]
    n_last = (mask.sum(1) - 1).clamp(min=0)
    rows = torch.arange(ids.shape[0])

    def with_pos(m):
        return m(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state

    def fn(m, dtype):
        o = m(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        last = o.last_hidden_state
        return {"last_hidden_state": last, "hidden_states_1": o.hidden_states[1],
                "pooled_last_real": last[rows, n_last]}

    r32, r64, rdbl, _ = three_runs(GPT2Model.from_pretrained(mdir).eval(), fn)
    nz.add_runs("tiny_gpt2", g, r32, r64, rdbl)
    no_scaling = GPT2Model.from_pretrained(mdir, scale_attn_by_inverse_layer_idx=False).eval()
    assert not no_scaling.config.scale_attn_by_inverse_layer_idx
    r32, r64, rdbl, _ = three_runs(no_scaling, lambda m, dt: {"last_hidden_state_no_layer_idx_scaling": with_pos(m)})
    nz.add_runs("tiny_gpt2", g, r32, r64, rdbl)

    def make():
        return GPT2Model.from_pretrained(mdir).eval()

    peft_outputs(nz, "tiny_gpt2", g, make, {"lora": "tiny-gpt2-lora"}, with_pos)
    merge_noise(nz, "tiny_gpt2/lora", make, "tiny-gpt2-lora", with_pos)

    # tools/golden_peft.py: same base, position ids not passed
    gp = golden("tiny_gpt2_peft.safetensors")

    def no_pos(m):
        return m(input_ids=ids, attention_mask=mask).last_hidden_state

    methods = {"ia3": "tiny-gpt2-ia3", "prefix": "tiny-gpt2-prefix", "prompt": "tiny-gpt2-prompt"}
    peft_outputs(nz, "tiny_gpt2_peft", gp, make, methods, no_pos)
    merge_noise(nz, "tiny_gpt2/ia3", make, "tiny-gpt2-ia3", no_pos)


# ------------------------------------------------------------------------------------------ tiny HF ViT
def noise_tiny_hf_vit(nz):
    from transformers import ViTModel

    g = golden("tiny_hf_vit.safetensors")
    # the float16 checkpoint reloads to exactly the golden model (asserted by tools/golden_hf_vit.py)
    model = ViTModel.from_pretrained(os.path.join(GOLDEN, "tiny-hf-vit"), dtype=torch.float32,
                                     attn_implementation="eager").eval()
    native = model.config.image_size

    def fn(m, dtype):
        out = {}
        for size in (32, 48):
            o = m(pixel_values=g[f"pixel_values_{size}"].to(dtype), interpolate_pos_encoding=size != native)
            h = o.last_hidden_state
            out.update({f"last_hidden_state_{size}": h, f"cls_{size}": h[:, 0], f"mean_{size}": h.mean(1),
                        f"pooler_output_{size}": o.pooler_output})
        emb = torch.zeros(1, 1 + (48 // m.config.patch_size) ** 2, m.config.hidden_size, dtype=dtype)
        out["position_embeddings_48"] = m.embeddings.interpolate_pos_encoding(emb, 48, 48)
        return out

    r32, r64, rdbl, rewrites = three_runs(model, fn)
    assert rewrites > 0
    nz.add_runs("tiny_hf_vit", g, r32, r64, rdbl)


# ------------------------------------------------------------------------------------------ DINOv2
def noise_dinov2(nz):
    from transformers import Dinov2Model

    model = Dinov2Model.from_pretrained(need(os.path.join(CACHE, "dinov2-s")), dtype=torch.float32,
                                        attn_implementation="eager").eval()
    for S in (224, 518):
        stem = f"dinov2_s_{S}"
        g = golden(f"{stem}.safetensors")
        xr = g["image_xray_u8"]
        u8 = torch.stack([torch.stack([xr, xr, xr]), g["image_synthetic_u8"]])  # [2, 3, S, S]
        # normalisation as tools/golden_encoders.py: float32 (divide, subtract, divide); float64 from the u8
        mean32 = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std32 = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        px = (u8.to(torch.float32) / 255.0 - mean32) / std32
        mean64 = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
        std64 = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
        px64 = (u8.to(torch.float64) / 255.0 - mean64) / std64
        nz.add(f"{stem}/pixel_values_first16", g["pixel_values_first16"], px.reshape(2, -1)[:, :16],
               px64.reshape(2, -1)[:, :16])

        def fn(m, dtype, S=S, px=px):
            o = m(pixel_values=px.to(dtype), output_hidden_states=True)
            pre = o.hidden_states[-1]
            out = {"pooler_output": o.pooler_output, "mean_tokens_prenorm": pre.mean(1),
                   "last_hidden_state_first5": o.last_hidden_state[:, :5], "prenorm_first5": pre[:, :5],
                   "embeddings_first5": o.hidden_states[0][:, :5]}
            if S != 518:
                dummy = torch.zeros(1, 1 + (S // 14) ** 2, m.config.hidden_size, dtype=dtype)
                out["position_embeddings_interpolated"] = m.embeddings.interpolate_pos_encoding(dummy, S, S)
            return out

        r32, r64, rdbl, _ = three_runs(model, fn)
        nz.add_runs(stem, g, r32, r64, rdbl)


# ------------------------------------------------------------------------------------------ LLaMA families
LLM_FAMILIES = {"tiny-llama3": "LlamaForCausalLM", "tiny-llama-linear": "LlamaForCausalLM",
                "tiny-qwen2": "Qwen2ForCausalLM", "tiny-mistral": "MistralForCausalLM",
                "tiny-gemma3": "Gemma3ForCausalLM"}  # golden_llm_families.py


def gemma3_rope_inits(model):
    """Gemma 3 (per-layer-type RoPE): {golden key: (init function, config, layer type)}."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rot = model.model.rotary_emb
    rope = model.config.rope_parameters
    plain = copy.deepcopy(model.config)
    plain.rope_parameters["full_attention"] = {"rope_type": "default",
                                               "rope_theta": rope["full_attention"]["rope_theta"]}
    inits = {}
    for key, lt in (("rope_inv_freq_global", "full_attention"), ("rope_inv_freq_local", "sliding_attention")):
        inits[key] = (type(rot).compute_default_rope_parameters if rope[lt]["rope_type"] == "default"
                      else ROPE_INIT_FUNCTIONS[rope[lt]["rope_type"]], model.config, lt)
    inits["rope_inv_freq_global_unscaled"] = (type(rot).compute_default_rope_parameters, plain, "full_attention")
    return inits


def noise_llm_families(nz):
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    for name, cls in LLM_FAMILIES.items():
        stem = name.replace("-", "_")
        g = golden(f"{stem}.safetensors")
        ids, mask, n_real = g["input_ids"], g["attention_mask"], g["n_real"]
        rows = torch.arange(ids.shape[0])
        # the checkpoint (bfloat16 for tiny-qwen2) reloads in float32 to exactly the golden model
        # (asserted by tools/golden_llm_families.py); position ids not passed
        model = getattr(transformers, cls).from_pretrained(os.path.join(GOLDEN, name), dtype=torch.float32,
                                                           attn_implementation="eager").eval()

        def fn(m, dtype, ids=ids, mask=mask, n_real=n_real, rows=rows):
            o = m.model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
            last = o.last_hidden_state
            return {"last_hidden_state": last, "hidden_states_1": o.hidden_states[1], "cleft_pooled": last[rows, n_real]}

        r32, r64, rdbl, rewrites = three_runs(model, fn)
        assert rewrites > 0
        nz.add_runs(stem, g, r32, r64, rdbl)
        for out in ("last_hidden_state", "cleft_pooled"):
            # the committed *_f64ref is a plain model.double() run stored as float32
            nz.add_f64ref(f"{stem}/{out}_f64ref", g[f"{out}_f64ref"], nz.tensors[f"{stem}/{out}"]["f32_vs_f64"],
                          rdbl[out].float(), {"committed_vs_all_f64": maxdiff(g[f"{out}_f64ref"], r64[out])})

        # RoPE inverse frequencies, recomputed from the config in float32 and in float64
        if cls == "Gemma3ForCausalLM":
            inits = gemma3_rope_inits(model)
            # the embedding scale: torch.tensor(hidden_size ** 0.5), a float32 buffer
            h = model.config.hidden_size
            nz.add(f"{stem}/embed_scale", g["embed_scale"], torch.tensor([h ** 0.5], dtype=torch.float32),
                   torch.tensor([h ** 0.5], dtype=torch.float64))
        else:
            rot = model.model.rotary_emb
            rope = model.config.rope_parameters
            plain = copy.deepcopy(model.config)
            plain.rope_parameters = {"rope_type": "default", "rope_theta": rope["rope_theta"]}
            inits = {"rope_inv_freq": (type(rot).compute_default_rope_parameters if rot.rope_type == "default"
                                       else ROPE_INIT_FUNCTIONS[rot.rope_type], model.config, None)}
            if rot.rope_type != "default":
                inits["rope_inv_freq_unscaled"] = (type(rot).compute_default_rope_parameters, plain, None)
        for key, (init, cfg, layer_type) in inits.items():
            kw = {} if layer_type is None else {"layer_type": layer_type}
            inv32 = init(copy.deepcopy(cfg), **kw)[0]
            mode = AllFloat64()
            with mode:
                inv64 = init(copy.deepcopy(cfg), **kw)[0]
            assert mode.rewrites > 0 and inv32.dtype == torch.float32 and inv64.dtype == torch.float64
            nz.add(f"{stem}/{key}", g[key], inv32, inv64)
        del model


# ------------------------------------------------------------------------------------------ objectives
def noise_objectives(nz):
    sys.path.insert(0, TOOLS)
    import golden_objectives as go

    with open(os.path.join(GOLDEN, "objectives.json")) as f:
        doc = json.load(f)
    inp = doc["inputs"]
    B, D, C = inp["B"], inp["D"], inp["num_labels"]

    def t(name, *shape):
        return torch.tensor(inp[name], dtype=torch.float32).reshape(*shape)

    img_raw, txt_raw, img, txt = t("img_raw", B, D), t("txt_raw", B, D), t("img", B, D), t("txt", B, D)
    li, lt = t("labels_img", B, C), t("labels_txt", B, C)
    out32 = go.compute(img_raw, txt_raw, img, txt, li, lt, torch.float32)
    out64 = go.compute(img_raw, txt_raw, img, txt, li, lt, torch.float64)
    for k, committed in doc["outputs"].items():
        e = nz.add(f"objectives/{k}", committed, out32[k], out64[k])
        e["recomputed_f64_vs_committed"] = maxdiff(out64[k], doc["outputs_f64"][k])
        nz._check(f"objectives/{k}", "recomputed_f64_vs_committed", e["recomputed_f64_vs_committed"],
                  max_abs(doc["outputs_f64"][k]))

    # gradients of clip_loss_sum: committed in float64; the float32 twin is the same backward in float32
    grads = {}
    for dtype in (torch.float32, torch.float64):
        i = img.detach().to(dtype).clone().requires_grad_(True)
        tx = txt.detach().to(dtype).clone().requires_grad_(True)
        ls = torch.tensor(go.LOGIT_SCALE, dtype=dtype, requires_grad=True)
        _, ce_i, ce_t = go.clip_losses(i, tx, ls)
        (ce_i + ce_t).backward()
        grads[dtype] = {"d_img": i.grad.reshape(-1), "d_txt": tx.grad.reshape(-1), "d_logit_scale": ls.grad}
    committed = doc["grads_f64_clip_loss_sum"]
    for k in ("d_img", "d_txt", "d_logit_scale"):
        nz.add_f64ref(f"objectives/grads_f64_clip_loss_sum.{k}", committed[k],
                      maxdiff(grads[torch.float32][k], committed[k]), grads[torch.float64][k])


# ------------------------------------------------------------------------------------------ main
def versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "peft", "safetensors", "gguf", "numpy"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(GOLDEN, "noise.json"))
    ap.add_argument("--only", help="comma-separated subset of minilm,smollm2,gemma3gguf,gpt2,vit,dinov2,llm,"
                                   "objectives; "
                                   "prints the table and writes nothing (unless --update)")
    ap.add_argument("--update", action="store_true",
                    help="with --only: write the recomputed entries into the existing --out file, replacing "
                         "only their keys (every other entry is kept byte for byte)")
    ap.add_argument("--stop-rel", type=float, default=REL_STOP,
                    help="stop (write nothing) if a recomputation differs from the committed golden by more "
                         "than this times max_abs (default %(default)g)")
    a = ap.parse_args()
    steps = ["minilm", "smollm2", "gemma3gguf", "gpt2", "vit", "dinov2", "llm", "objectives"]
    chosen = a.only.split(",") if a.only else steps
    unknown = set(chosen) - set(steps)
    if unknown:
        sys.exit(f"unknown --only step(s): {sorted(unknown)}")
    nz = Noise(a.stop_rel)
    t_all = time.time()
    for step in chosen:
        t0 = time.time()
        if step == "minilm":
            noise_minilm(nz)
        elif step == "smollm2":
            base = load_smollm2()
            noise_smollm2(nz, base)
            noise_smollm2_peft(nz, base)
            del base
        elif step == "gemma3gguf":
            noise_gemma3_gguf(nz)
        elif step == "gpt2":
            noise_tiny_gpt2(nz)
        elif step == "vit":
            noise_tiny_hf_vit(nz)
        elif step == "dinov2":
            noise_dinov2(nz)
        elif step == "llm":
            noise_llm_families(nz)
        elif step == "objectives":
            noise_objectives(nz)
        print(f"[golden_noise] {step}: {time.time() - t0:.1f} s", flush=True)

    w = max(len(k) for k in nz.tensors)
    print(f"{'key':<{w}}  {'f32_vs_f64':>10}  {'max_abs':>10}  {'recomputed':>10}  {'model.double':>12}")
    for k in sorted(nz.tensors):
        e = nz.tensors[k]
        rec = e.get("recomputed_f32_vs_committed", e.get("recomputed_f64_vs_committed"))
        dbl = e.get("f32_vs_f64_model_double")
        print(f"{k:<{w}}  {e['f32_vs_f64']:10.3e}  {e['max_abs']:10.3e}  {rec:10.3e}  "
              f"{'' if dbl is None else f'{dbl:12.3e}'}")
    for k in sorted(nz.merge):
        print(f"merge {k}: {nz.merge[k]}")
    print(f"[golden_noise] total {time.time() - t_all:.1f} s, {len(nz.tensors)} tensors, {THREADS} thread(s)")

    if nz.bad:
        print("STOP: recomputation does not reproduce the committed goldens; noise.json not written:")
        for b in nz.bad:
            print("  " + b)
        sys.exit(1)
    if a.only and not a.update:
        print("--only: nothing written")
        return
    doc = {"about": ABOUT, "versions": versions(), "tensors": nz.tensors, "merge": nz.merge}
    if a.update:
        with open(a.out) as f:
            old = json.load(f)
        if old["versions"] != doc["versions"]:
            sys.exit(f"--update: package versions differ from {a.out}'s ({old['versions']} vs {doc['versions']}): "
                     "rerun every step instead")
        old["about"] = ABOUT
        old["tensors"].update(nz.tensors)
        old["merge"].update(nz.merge)
        doc = old
    for e in list(nz.tensors.values()) + list(nz.merge.values()):
        for k, v in e.items():
            assert isinstance(v, float) and math.isfinite(v), (k, v)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
