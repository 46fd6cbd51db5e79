#!/usr/bin/env python3
"""Tiny random LLaMA-family checkpoints and goldens: LLaMA-3 RoPE scaling ("llama3", "linear"),
untied embeddings, Qwen2 (q/k/v bias, bfloat16 weights), Mistral (sliding window) and the Gemma 3 text
decoder (the decoder of Gemma 3 and MedGemma).

    python3 -m venv ~/.cache/cleft-golden-venv && ~/.cache/cleft-golden-venv/bin/pip install \
      torch==2.15.0 transformers==5.24.0 peft==0.21.2 safetensors==0.8.0 numpy==2.4.6
    ~/.cache/cleft-golden-venv/bin/python tools/golden_llm_families.py [--only tiny-llama3,tiny-qwen2]
        # writes fixtures/golden/<name>/{config.json,model.safetensors} (HF directories)
        # and fixtures/golden/tiny_<name>.{json,safetensors} for
        # name in tiny-llama3, tiny-llama-linear, tiny-qwen2, tiny-mistral, tiny-gemma3

Needs no assets; byte-reproducible (re-running gives identical files). CPU, 1 thread, float32, eager
attention, eval mode. Every model is hidden 64, 4 query heads of 16, 2 key/value heads, MLP 128,
vocab 256, max_position_embeddings 128; the LLaMA family has 2 layers, bos 1, eos 2, tiny-gemma3 3
layers, bos 2, eos 1, pad 0 (Gemma's ids). All are built as *ForCausalLM so the checkpoint keys carry
the `model.` prefix (`model.layers.0.self_attn.q_proj.weight`, ...) as Hub checkpoints do:

  tiny-llama3        LlamaForCausalLM, rope_parameters {rope_type "llama3", factor 8, low_freq_factor 1,
                     high_freq_factor 4, original_max_position_embeddings 64}, rope_theta 500000,
                     head_dim 16 explicit, untied embeddings: `lm_head.weight` is in the file (an
                     encoder ignores it). With head_dim 16 and theta 5e5 the wavelengths 2*pi/inv_freq
                     are 6.3, 32, 167, ... : 64 puts frequency 0 in the high band (< 64/4, unchanged),
                     frequency 1 in the smoothed band and 2..7 in the low band (> 64, divided by 8).
                     (A window of 16 would leave the high band empty: the shortest wavelength is 2*pi.)
  tiny-llama-linear  LlamaForCausalLM, rope_parameters {rope_type "linear", factor 4}, theta 10000, tied.
  tiny-qwen2         Qwen2ForCausalLM (bias on q/k/v, none on o_proj), tied, rope_theta 1e6; the weights
                     are rounded to bfloat16 and model.safetensors stores them as bfloat16 (config dtype
                     "bfloat16"); the goldens come from the float32 model holding those rounded values,
                     so loading the directory in float32 reproduces them exactly (asserted).
  tiny-mistral       MistralForCausalLM, sliding_window 64 (>= L, so exact), head_dim 16 explicit, untied.
  tiny-gemma3        Gemma3ForCausalLM (Gemma3TextConfig, model_type gemma3_text), 3 layers with layer_types
                     [sliding_attention, full_attention, sliding_attention] (sliding_window_pattern 2: layer 1
                     is global, 0 and 2 local), query_pre_attn_scalar 24 (not head_dim 16), sliding_window 64
                     (>= L: local layers are plain causal attention, asserted), rope_parameters per layer type:
                     full_attention {linear, factor 8, theta 1e6} (as Gemma 3 4B), sliding_attention {default,
                     theta 1e4}; gelu_pytorch_tanh, tied, softcappings null (the defaults). Gemma's RMSNorm
                     multiplies by (1 + w), the embedding by sqrt(hidden) = 8; q_norm / k_norm per head before
                     RoPE; four norms per layer (input, post_attention, pre_feedforward, post_feedforward).

Weights: torch.manual_seed(0), the model, then every parameter re-drawn (torch.Generator seeded per
model, sorted(named_parameters())): embed_tokens 0.5*N(0,1), RMSNorm weights 1 + 0.1*N(0,1) (Gemma:
0.1*N(0,1), the norm adds the 1), biases 0.5*N(0,1), all other weights (projections, lm_head)
0.2*N(0,1). Inputs (the same real tokens for all five): 3 sequences of 5, 9, 3 token ids drawn from
[3, 256) (Generator seed 7), right-padded with eos = 2 to L = max(n_real) + 1 = 10 (tiny-gemma3: eos = 1
at position n_real, the token CLEFT pools, then pad = 0), attention_mask 1 on real tokens, 0 on pads
(the eos included). Outputs come from the bare
decoder (`model.model`, the *Model) with that mask, position ids *not* passed (so arange(L)),
use_cache=False: last_hidden_state (after the final RMSNorm), hidden_states_1 (decoder layer 0, debug),
cleft_pooled = last_hidden_state[b, n_real[b]] (CLEFT first-pad pooling), plus plain model.double()
references stored as float32 (*_f64ref) and each float32 output's distance to them
(f32_vs_f64_max_abs_diff). rope_inv_freq is the model's rotary inv_freq buffer (float32, as
transformers computes it), rope_inv_freq_unscaled the default-RoPE one of the same theta; tiny-gemma3
has rope_inv_freq_global (full_attention, after the linear scaling), rope_inv_freq_global_unscaled,
rope_inv_freq_local (sliding_attention) and embed_scale (the float32 scalar the embedding is multiplied
by, shape [1]).

transformers 5 writes RoPE settings as `rope_parameters` (with rope_theta inside) and no top-level
`rope_theta` / `rope_scaling`; each JSON also holds `config_json_transformers4`, the same config as
transformers 4 wrote it (top-level rope_theta, rope_scaling = the scaling or null), which transformers
5 loads to the same rope_parameters (asserted), for loaders that must read both forms. For tiny-gemma3
that form is the Hub's Gemma 3 one: rope_theta (global), rope_local_base_freq (local), rope_scaling (the
global layers' linear scaling), sliding_window_pattern 2 and no layer_types (transformers 5 derives the
same layer_types from the pattern: asserted).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "fixtures", "golden")
torch.set_num_threads(1)

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, MLP, MAX_POS = 256, 64, 2, 4, 2, 16, 128, 128
BOS, EOS = 1, 2
N_REAL = [5, 9, 3]
INPUT_SEED = 7
COMMON = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS,
              num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=MAX_POS,
              rms_norm_eps=1e-6, bos_token_id=BOS, eos_token_id=EOS, attention_dropout=0.0)

GEMMA_BOS, GEMMA_EOS, GEMMA_PAD = 2, 1, 0  # Gemma's tokenizer: <pad> 0, <eos> 1, <bos> 2
GEMMA_LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention"]
GEMMA_SLIDING_WINDOW = 64

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def specs():
    """name -> (config class name, config kwargs, model class name, re-draw seed, weight dtype)."""
    return {
        "tiny-llama3": ("LlamaConfig", dict(COMMON, head_dim=HEAD_DIM, rope_parameters=dict(LLAMA3_ROPE),
                                            tie_word_embeddings=False),
                        "LlamaForCausalLM", 31, torch.float32),
        "tiny-llama-linear": ("LlamaConfig", dict(COMMON, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0,
                                                                           "factor": 4.0},
                                                  tie_word_embeddings=True),
                              "LlamaForCausalLM", 32, torch.float32),
        "tiny-qwen2": ("Qwen2Config", dict(COMMON, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                                           tie_word_embeddings=True, use_sliding_window=False),
                       "Qwen2ForCausalLM", 33, torch.bfloat16),
        "tiny-mistral": ("MistralConfig", dict(COMMON, head_dim=HEAD_DIM, sliding_window=64,
                                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                               tie_word_embeddings=False),
                         "MistralForCausalLM", 34, torch.float32),
        "tiny-gemma3": ("Gemma3TextConfig",
                        dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=3,
                             num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
                             max_position_embeddings=MAX_POS, rms_norm_eps=1e-6, bos_token_id=GEMMA_BOS,
                             eos_token_id=GEMMA_EOS, pad_token_id=GEMMA_PAD, attention_dropout=0.0,
                             hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24,
                             sliding_window=GEMMA_SLIDING_WINDOW, layer_types=list(GEMMA_LAYER_TYPES),
                             sliding_window_pattern=2,
                             rope_parameters={"full_attention": {"rope_type": "linear", "rope_theta": 1000000.0,
                                                                 "factor": 8.0},
                                              "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                             tie_word_embeddings=True),
                        "Gemma3ForCausalLM", 35, torch.float32),
    }


def is_gemma(model_cls):
    return model_cls == "Gemma3ForCausalLM"


def versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "safetensors", "numpy"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def stem(name):
    return name.replace("-", "_")


def inputs(eos=EOS, pad=None):
    """Real ids, then eos at position n_real[b] (the pooled token), then pad (= eos when pad is None)."""
    g = torch.Generator().manual_seed(INPUT_SEED)
    B, L = len(N_REAL), max(N_REAL) + 1
    ids = torch.full((B, L), eos if pad is None else pad, dtype=torch.int64)
    mask = torch.zeros((B, L), dtype=torch.int64)
    for b, n in enumerate(N_REAL):
        ids[b, :n] = torch.randint(3, VOCAB, (n,), generator=g, dtype=torch.int64)
        ids[b, n] = eos
        mask[b, :n] = 1
    return ids, mask, torch.tensor(N_REAL, dtype=torch.int64)


def model_inputs(model_cls):
    if not is_gemma(model_cls):
        return inputs()
    ids, mask, n_real = inputs(GEMMA_EOS, GEMMA_PAD)
    ref = inputs()[0]
    assert torch.equal(ids[mask == 1], ref[mask == 1])  # the same real tokens as the other stems
    return ids, mask, n_real


def redraw(model, seed, gemma=False):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight") and gemma:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))  # Gemma3RMSNorm multiplies by (1 + w)
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def decoder_outputs(model, ids, mask, n_real):
    """The bare decoder (*Model) as the goldens use it: {name: tensor}."""
    o = model.model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
    last = o.last_hidden_state
    rows = torch.arange(ids.shape[0])
    return {"last_hidden_state": last, "hidden_states_1": o.hidden_states[1], "cleft_pooled": last[rows, n_real]}


def rope_inv_freq(model):
    """(inv_freq as the rotary embedding computes it, the default-RoPE inv_freq of the same theta),
    recomputed from the config (not read from the buffer) in the current dtype regime."""
    rot = model.model.rotary_emb
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    fn = rot.compute_default_rope_parameters if rot.rope_type == "default" else ROPE_INIT_FUNCTIONS[rot.rope_type]
    scaled, scaling = fn(model.config)
    assert scaling == 1.0, scaling
    cfg = copy.deepcopy(model.config)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": model.config.rope_parameters["rope_theta"]}
    unscaled, _ = type(rot).compute_default_rope_parameters(cfg)
    return scaled, unscaled


def gemma_rope_inv_freq(model):
    """({layer type: inv_freq as Gemma3RotaryEmbedding computes it}, the full_attention layers' default-RoPE
    inv_freq of the same theta), recomputed from the config (not read from the buffers), float32."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rot = model.model.rotary_emb
    out = {}
    for lt, rope in sorted(model.config.rope_parameters.items()):
        fn = (type(rot).compute_default_rope_parameters if rope["rope_type"] == "default"
              else ROPE_INIT_FUNCTIONS[rope["rope_type"]])
        out[lt], scaling = fn(copy.deepcopy(model.config), layer_type=lt)
        assert scaling == 1.0 == getattr(rot, f"{lt}_attention_scaling"), (lt, scaling)
    cfg = copy.deepcopy(model.config)
    cfg.rope_parameters["full_attention"] = {"rope_type": "default",
                                             "rope_theta": model.config.rope_parameters["full_attention"]["rope_theta"]}
    unscaled, _ = type(rot).compute_default_rope_parameters(cfg, layer_type="full_attention")
    return out, unscaled


def rope_bands_f64(rope, head_dim):
    """The llama3 rule in float64 (math), with each frequency's band."""
    theta = rope["rope_theta"]
    base = [1.0 / theta ** (i / head_dim) for i in range(0, head_dim, 2)]
    if rope["rope_type"] == "linear":
        return base, [f / rope["factor"] for f in base], None
    if rope["rope_type"] != "llama3":
        return base, base, None
    f, lo, hi, old = (rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"],
                      rope["original_max_position_embeddings"])
    out, bands = [], []
    for x in base:
        wl = 2 * math.pi / x
        if wl < old / hi:
            out.append(x)
            bands.append("high (wavelength < original/high_freq_factor: unchanged)")
        elif wl > old / lo:
            out.append(x / f)
            bands.append("low (wavelength > original/low_freq_factor: divided by factor)")
        else:
            s = (old / wl - lo) / (hi - lo)
            out.append((1 - s) * x / f + s * x)
            bands.append(f"medium (smoothed, smooth_factor {s:.6f})")
    return base, out, bands


def transformers4_config(cfg):
    """config.json as transformers 4 wrote it: top-level rope_theta and rope_scaling."""
    legacy = dict(cfg)
    rope = dict(legacy.pop("rope_parameters"))
    legacy["rope_theta"] = rope.pop("rope_theta")
    legacy["rope_scaling"] = None if rope.get("rope_type") == "default" else rope
    legacy.pop("dtype", None)
    legacy.pop("transformers_version", None)
    legacy["torch_dtype"] = cfg.get("dtype")
    return dict(sorted(legacy.items()))


def transformers4_config_gemma3(cfg):
    """Gemma 3 text config.json as transformers 4 / the Hub wrote it: rope_theta (global layers),
    rope_local_base_freq (local layers), rope_scaling (global layers only), sliding_window_pattern and
    no layer_types."""
    legacy = dict(cfg)
    rope = copy.deepcopy(legacy.pop("rope_parameters"))
    glob, loc = rope["full_attention"], rope["sliding_attention"]
    assert loc["rope_type"] == "default", loc
    legacy["rope_theta"] = glob.pop("rope_theta")
    legacy["rope_local_base_freq"] = loc["rope_theta"]
    legacy["rope_scaling"] = None if glob.get("rope_type") == "default" else glob
    legacy.pop("layer_types")
    legacy["sliding_window_pattern"] = legacy.pop("_sliding_window_pattern")
    legacy.pop("dtype", None)
    legacy.pop("transformers_version", None)
    legacy["torch_dtype"] = cfg.get("dtype")
    return dict(sorted(legacy.items()))


def variant_outputs(model, model_cls, ids, mask, n_real, edit):
    """The same weights under an edited config: {name: tensor}."""
    import transformers

    cfg = copy.deepcopy(model.config)
    edit(cfg)
    m = getattr(transformers, model_cls)(cfg).eval()
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        return decoder_outputs(m, ids, mask, n_real)


def diffs(a, b, keys=("last_hidden_state", "hidden_states_1", "cleft_pooled")):
    return {k: (a[k] - b[k]).abs().max().item() for k in keys}


def build(name):
    import transformers

    cfg_cls, kwargs, model_cls, seed, wdtype = specs()[name]
    config = getattr(transformers, cfg_cls)(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config)
    redraw(model, seed, gemma=is_gemma(model_cls))
    if wdtype != torch.float32:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(wdtype).to(torch.float32))
    model.eval()
    assert model.config._attn_implementation == "eager"
    return model, wdtype


def save_dir(model, name, wdtype):
    out = os.path.join(GOLDEN, name)
    os.makedirs(out, exist_ok=True)
    m = copy.deepcopy(model).to(wdtype) if wdtype != torch.float32 else model
    m.save_pretrained(out, safe_serialization=True)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)  # not part of the fixture: an encoder reads config.json + model.safetensors
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"], os.listdir(out)
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    return out


GEMMA3_SOURCE = "transformers 5.24.0 src/transformers/models/gemma3/modeling_gemma3.py"
GEMMA3_FORWARD = {
    "source": GEMMA3_SOURCE + " (line numbers of that file)",
    "embedding": "inputs_embeds = embed_tokens.weight[input_ids] * embed_scale, embed_scale = "
                 "torch.tensor(hidden_size ** 0.5) (a float32 buffer, 8.0 here) cast to the weight dtype "
                 "(L97 `self.embed_scale = nn.Buffer(torch.tensor(embed_scale), persistent=False)`, L100 "
                 "`return super().forward(input_ids) * self.embed_scale.to(self.weight.dtype)`, L468 "
                 "`embed_scale=self.config.hidden_size**0.5`). With bfloat16 weights the scale is rounded to "
                 "bfloat16 (sqrt(2560) = 50.596 -> 50.5 for Gemma 3 4B); padding_idx = pad_token_id only "
                 "affects the gradient (row 0 is a random row here)",
    "rms_norm": "Gemma3RMSNorm, in float32 whatever the input dtype: x = x.float(); x * rsqrt(mean(x^2, -1) + "
                "eps) * (1 + w.float()), then cast back (L126 `return x * torch.rsqrt(x.pow(2).mean(-1, "
                "keepdim=True) + self.eps)`, L129 `output = self._norm(x.float())`, L132 `output = output * "
                "(1.0 + self.weight.float())`); the stored weight w is the offset from 1 (zeros at init)",
    "decoder_layer": "sandwich norms (L384-L401): h = x + post_attention_layernorm(attn(input_layernorm(x))); "
                     "out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))",
    "attention": "q/k/v = proj(x) viewed [B, heads, L, head_dim]; q = q_norm(q), k = k_norm(k) (Gemma3RMSNorm "
                 "over head_dim, weights [16] shared by all heads; L329-L330), then RoPE (L333 "
                 "`apply_rotary_pos_emb(query_states, key_states, cos, sin)`); scores = q k^T * scaling with "
                 "scaling = query_pre_attn_scalar ** -0.5 (L290 `self.scaling = "
                 "config.query_pre_attn_scalar**-0.5`; 24 ** -0.5 = 0.2041 here, not head_dim ** -0.5 = 0.25), "
                 "+ mask, softmax in float32 (L272), @ v, o_proj. GQA: k/v heads repeated (repeat_kv). No "
                 "biases (attention_bias false)",
    "softcapping": "attn_logit_softcapping null: Gemma3Attention does not pass a softcap to the attention "
                   "function at all (eager_attention_forward's `softcap` argument, L253/L264, stays None). "
                   "final_logit_softcapping null; it would only act on the lm_head logits (L617-L620), which "
                   "an encoder does not compute",
    "mlp": "GeGLU: down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)) (L115 `down_proj = "
           "self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))`), act gelu_pytorch_tanh = "
           "torch.nn.functional.gelu(approximate='tanh') (activations.py GELUTanh)",
    "rope": "cos/sin per layer type: freqs = position_ids.float() * inv_freq (L192, float32), emb = cat(freqs, "
            "freqs), cos/sin of it; q * cos + rotate_half(q) * sin with rotate_half(x) = cat(-x2, x1) (halves, "
            "not interleaved pairs); full_attention layers use the full_attention inv_freq, sliding_attention "
            "layers the sliding_attention one",
    "final_norm": "last_hidden_state = norm(h) after the last layer (L546), a Gemma3RMSNorm",
    "masks": "full_attention layers: causal + key padding; sliding_attention layers: also key > query - "
             "sliding_window (masking_utils.py L97 `return kv_idx > q_idx - sliding_window`); sliding_window "
             "64 >= L = 10, so both are the same here",
}


def gemma_golden(model, model_cls, ids, mask, n_real, r32, cfg_json):
    """tiny-gemma3 checks: ({extra JSON fields}, {tensor name: (tensor, semantics)}, rope JSON)."""
    rot = model.model.rotary_emb
    cfg = model.config
    assert cfg.layer_types == GEMMA_LAYER_TYPES == cfg_json["layer_types"], cfg.layer_types
    assert cfg.sliding_window == GEMMA_SLIDING_WINDOW >= ids.shape[1]
    assert cfg.attn_logit_softcapping is None and cfg.final_logit_softcapping is None
    assert cfg.pad_token_id == GEMMA_PAD and cfg.eos_token_id == GEMMA_EOS and cfg.bos_token_id == GEMMA_BOS
    assert [l.self_attn.scaling for l in model.model.layers] == [24 ** -0.5] * 3
    assert [l.self_attn.sliding_window for l in model.model.layers] == [GEMMA_SLIDING_WINDOW, None,
                                                                      GEMMA_SLIDING_WINDOW]
    for n, p in model.named_parameters():  # the (1 + w) norm weights are drawn around 0
        if n.endswith("norm.weight"):
            assert p.abs().max() < 0.6 and p.abs().mean() < 0.15, n

    # embedding scale: hidden_states[0] is embed_tokens.weight[ids] * sqrt(64) = 8 exactly
    scale = model.model.embed_tokens.embed_scale
    assert scale.dtype == torch.float32 and scale.item() == HIDDEN ** 0.5 == 8.0
    with torch.no_grad():
        o = model.model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
    assert len(o.hidden_states) == cfg.num_hidden_layers + 1
    assert torch.equal(o.hidden_states[0], model.model.embed_tokens.weight[ids] * 8.0)
    assert torch.equal(o.hidden_states[1], r32["hidden_states_1"])

    extra = {}
    # sliding_window 64 >= L: the same as a window that covers everything (Gemma 3's own 4096)
    d = diffs(variant_outputs(model, model_cls, ids, mask, n_real, lambda c: setattr(c, "sliding_window", 4096)),
              r32)
    assert max(d.values()) == 0.0, d
    extra["sliding_window_4096_max_abs_diff"] = d
    # ... while a window shorter than L changes the local layers (layer 0 is one: hidden_states_1 moves)
    d = diffs(variant_outputs(model, model_cls, ids, mask, n_real, lambda c: setattr(c, "sliding_window", 4)), r32)
    assert d["hidden_states_1"] > 1e-3 and d["cleft_pooled"] > 1e-3, d
    extra["sliding_window_4_max_abs_diff"] = d

    # each Gemma-specific setting changes the output, so a loader that gets one wrong fails the goldens
    def set_rope_default(c):
        c.rope_parameters["full_attention"] = {"rope_type": "default",
                                               "rope_theta": c.rope_parameters["full_attention"]["rope_theta"]}

    def swap_layers(c):
        c.layer_types = ["full_attention", "sliding_attention", "full_attention"]

    def same_theta(c):
        c.rope_parameters["sliding_attention"] = dict(c.rope_parameters["sliding_attention"], rope_theta=1000000.0)

    for key, edit in (("rope_scaling_off_max_abs_diff", set_rope_default),
                      ("layer_types_swapped_max_abs_diff", swap_layers),
                      ("local_rope_theta_1e6_max_abs_diff", same_theta),
                      ("query_pre_attn_scalar_head_dim_max_abs_diff",
                       lambda c: setattr(c, "query_pre_attn_scalar", HEAD_DIM))):
        d = diffs(variant_outputs(model, model_cls, ids, mask, n_real, edit), r32)
        assert d["cleft_pooled"] > 1e-2, (key, d)
        extra[key] = d
    extra["sensitivity_note"] = ("*_max_abs_diff: max |output with one config setting changed, same weights - "
                                 "golden| per output: sliding_window 4096 (0: a window >= L is plain causal "
                                 "attention), sliding_window 4 (< L), global layers' linear RoPE scaling off, "
                                 "layer_types swapped, local layers' theta 1e6, query_pre_attn_scalar = head_dim")

    inv, unscaled = gemma_rope_inv_freq(model)
    for lt in ("full_attention", "sliding_attention"):
        assert torch.equal(inv[lt], getattr(rot, f"{lt}_inv_freq")), lt
    rope = cfg_json["rope_parameters"]
    f64 = {lt: rope_bands_f64(rope[lt], HEAD_DIM)[:2] for lt in rope}
    tensors = {
        "rope_inv_freq_global": (inv["full_attention"], "model.model.rotary_emb.full_attention_inv_freq: RoPE "
                                 "inverse frequencies of the full_attention (global) layers, theta 1e6 divided by "
                                 "the linear factor 8 (float32 arithmetic)"),
        "rope_inv_freq_global_unscaled": (unscaled, "default RoPE inverse frequencies of theta 1e6 (before the "
                                          "linear scaling), float32 arithmetic"),
        "rope_inv_freq_local": (inv["sliding_attention"], "model.model.rotary_emb.sliding_attention_inv_freq: "
                                "RoPE inverse frequencies of the sliding_attention (local) layers, default RoPE "
                                "theta 1e4 (float32 arithmetic)"),
        "embed_scale": (scale.reshape(1), "model.model.embed_tokens.embed_scale: the embedding is multiplied "
                        "by this float32 scalar, torch.tensor(hidden_size ** 0.5) = 8"),
    }
    rope_meta = {
        "rope_parameters": rope,
        "layer_types": cfg_json["layer_types"],
        "head_dim": HEAD_DIM,
        "attention_scaling": {lt: getattr(rot, f"{lt}_attention_scaling") for lt in sorted(rope)},
        "inv_freq_f32": {lt: inv[lt].tolist() for lt in sorted(rope)},
        "inv_freq_global_unscaled_f32": unscaled.tolist(),
        "inv_freq_f64": {lt: f64[lt][1] for lt in sorted(rope)},
        "inv_freq_unscaled_f64": {lt: f64[lt][0] for lt in sorted(rope)},
        "wavelengths_unscaled": {lt: [2 * math.pi / x for x in f64[lt][0]] for lt in sorted(rope)},
        "formula": {"full_attention": "linear: (1 / theta^(2i / head_dim)) / factor, i = 0 .. head_dim/2 - 1 "
                                      "(modeling_rope_utils._compute_linear_scaling_rope_parameters)",
                    "sliding_attention": "default: inv_freq[i] = 1 / theta^(2i / head_dim) "
                                         "(Gemma3RotaryEmbedding.compute_default_rope_parameters)"},
    }
    return extra, tensors, rope_meta


def golden(name):
    import transformers

    model, wdtype = build(name)
    cfg_cls, _, model_cls, seed, _ = specs()[name]
    gemma = is_gemma(model_cls)
    ids, mask, n_real = model_inputs(model_cls)
    rows = torch.arange(ids.shape[0])
    with torch.no_grad():
        r32 = decoder_outputs(model, ids, mask, n_real)
        m64 = copy.deepcopy(model).double()
        r64 = decoder_outputs(m64, ids, mask, n_real)
    out = save_dir(model, name, wdtype)

    # the directory reloads (in float32, the weight dtype converted up) to exactly this model
    with torch.no_grad():
        re = getattr(transformers, model_cls).from_pretrained(out, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
        rr = decoder_outputs(re, ids, mask, n_real)
    reload_diff = max((rr[k] - r32[k]).abs().max().item() for k in r32)
    assert reload_diff == 0.0, (name, reload_diff)
    buffers = ["full_attention_inv_freq", "sliding_attention_inv_freq"] if gemma else ["inv_freq"]
    for b in buffers:
        assert torch.equal(getattr(re.model.rotary_emb, b), getattr(model.model.rotary_emb, b)), b

    with open(os.path.join(out, "config.json")) as f:
        cfg_json = json.load(f)
    legacy = (transformers4_config_gemma3 if gemma else transformers4_config)(cfg_json)
    back = getattr(transformers, cfg_cls).from_dict(copy.deepcopy(legacy))  # from_dict edits nested dicts
    assert back.rope_parameters == cfg_json["rope_parameters"], (back.rope_parameters, cfg_json["rope_parameters"])
    if gemma:
        assert back.layer_types == cfg_json["layer_types"], back.layer_types
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        keys = {k: {"dtype": str(f.get_slice(k).get_dtype()), "shape": list(f.get_slice(k).get_shape())}
                for k in sorted(f.keys())}
        st_meta = f.metadata()
    assert all(k.startswith("model.") or k == "lm_head.weight" for k in keys), list(keys)
    assert ("lm_head.weight" in keys) == (not cfg_json["tie_word_embeddings"])

    extra = {}
    if "bias" in " ".join(keys):
        biases = [k for k in keys if k.endswith(".bias")]
        assert sorted({k.split(".")[-2] for k in biases}) == ["k_proj", "q_proj", "v_proj"], biases
        assert all(model.get_parameter(k).abs().min() > 0 for k in biases)
    if gemma:
        gextra, gtensors, grope = gemma_golden(model, model_cls, ids, mask, n_real, r32, cfg_json)
        extra.update(gextra)
    elif getattr(model.config, "sliding_window", None) is not None:
        # the window covers every position: the same as plain causal attention
        nowin = copy.deepcopy(model.config)
        nowin.sliding_window = None
        plain = getattr(transformers, model_cls)(nowin).eval()
        plain.load_state_dict(model.state_dict())
        with torch.no_grad():
            d = (decoder_outputs(plain, ids, mask, n_real)["last_hidden_state"] - r32["last_hidden_state"]).abs().max()
        assert d.item() == 0.0, d
        extra["sliding_window_none_max_abs_diff"] = d.item()

    if not gemma and model.config.rope_parameters["rope_type"] != "default":
        # the scaling matters at these positions: plain RoPE of the same theta gives another output
        plain_cfg = copy.deepcopy(model.config)
        plain_cfg.rope_parameters = {"rope_type": "default", "rope_theta": model.config.rope_parameters["rope_theta"]}
        plain = getattr(transformers, model_cls)(plain_cfg).eval()
        plain.load_state_dict(model.state_dict())
        with torch.no_grad():
            p = decoder_outputs(plain, ids, mask, n_real)
        extra["rope_scaling_off_max_abs_diff"] = {k: (p[k] - r32[k]).abs().max().item()
                                                  for k in ("last_hidden_state", "cleft_pooled")}
        assert extra["rope_scaling_off_max_abs_diff"]["cleft_pooled"] > 1e-2, extra

    rope = cfg_json["rope_parameters"]
    if gemma:
        rope = {"rope_type": "per layer type"}
        bands = None
    else:
        inv32, unscaled32 = (t.contiguous() for t in rope_inv_freq(model))
        assert torch.equal(inv32, model.model.rotary_emb.inv_freq)
        base64, inv64, bands = rope_bands_f64(rope, HEAD_DIM)
    if rope["rope_type"] == "llama3":
        kinds = {b.split()[0] for b in bands}
        assert kinds == {"high", "low", "medium"}, bands

    tensors, desc, f64 = {}, {}, {}

    def add(key, t, what):
        t = t.detach().contiguous()
        if t.dtype == torch.float64:
            t = t.to(torch.float32)
        tensors[key] = t.clone()
        desc[key] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "semantics": what}

    if gemma:
        add("input_ids", ids, f"token ids from [3, {VOCAB}) (Generator seed {INPUT_SEED}; the same real tokens as "
            f"the other stems), then eos = {GEMMA_EOS} at position n_real[b] (the token CLEFT pools), then pad = "
            f"{GEMMA_PAD}; no bos")
        add("attention_mask", mask, "1 = real token, 0 = eos and pads")
    else:
        add("input_ids", ids, f"token ids from [3, {VOCAB}) (Generator seed {INPUT_SEED}), right-padded with eos = {EOS}")
        add("attention_mask", mask, "1 = real token, 0 = pad")
    add("n_real", n_real, "real tokens per row = the cleft_pooled index (first pad)")
    add("last_hidden_state", r32["last_hidden_state"], "bare decoder output after the final RMSNorm (pad rows "
        "included, computed with the mask)")
    add("hidden_states_1", r32["hidden_states_1"], "output of decoder layer 0, before the final norm (debug aid)")
    add("cleft_pooled", r32["cleft_pooled"], "last_hidden_state[b, n_real[b]]: the first pad after the last real "
        "token (attends to the real tokens only)" + (f"; here the eos = {GEMMA_EOS}" if gemma else ""))
    add("last_hidden_state_f64ref", r64["last_hidden_state"], "the same model and inputs run after model.double() "
        "(transformers keeps RoPE angles, RMSNorm and the softmax in float32 there), stored as float32")
    add("cleft_pooled_f64ref", r64["cleft_pooled"], "cleft_pooled from the model.double() run, stored as float32")
    if gemma:
        for key, (t, what) in gtensors.items():
            add(key, t, what)
    else:
        add("rope_inv_freq", inv32, "model.model.rotary_emb.inv_freq: the RoPE inverse frequencies transformers "
            "uses (float32 arithmetic" + (", after the scaling)" if rope["rope_type"] != "default" else ")"))
    if not gemma and rope["rope_type"] != "default":
        add("rope_inv_freq_unscaled", unscaled32, "default RoPE inverse frequencies of the same theta (before "
            "the scaling), float32 arithmetic")
    for k in ("last_hidden_state", "hidden_states_1", "cleft_pooled"):
        f64[k] = (r32[k].double() - r64[k]).abs().max().item()

    st = os.path.join(GOLDEN, f"{stem(name)}.safetensors")
    save_file(tensors, st, metadata={"generator": f"tools/golden_llm_families.py; see {stem(name)}.json"})
    os.chmod(st, 0o644)
    if gemma:
        rope_meta = grope
    else:
        rope_meta = {
            "rope_parameters": rope,
            "head_dim": HEAD_DIM,
            "attention_scaling": model.model.rotary_emb.attention_scaling,
            "inv_freq_f32": inv32.tolist(),
            "inv_freq_unscaled_f32": unscaled32.tolist(),
            "inv_freq_f64": inv64,
            "inv_freq_unscaled_f64": base64,
            "wavelengths_unscaled": [2 * math.pi / x for x in base64],
            "bands": bands,
            "formula": {
                "default": "inv_freq[i] = 1 / theta^(2i / head_dim), i = 0 .. head_dim/2 - 1",
                "linear": "inv_freq / factor (equivalently positions / factor)",
                "llama3": "wavelen = 2 pi / inv_freq; wavelen < orig/high_freq_factor: unchanged; "
                          "wavelen > orig/low_freq_factor: inv_freq / factor; otherwise s = (orig / wavelen - "
                          "low_freq_factor) / (high_freq_factor - low_freq_factor), (1 - s) inv_freq / factor + "
                          "s inv_freq (orig = original_max_position_embeddings)",
            }[rope["rope_type"]],
        }
    gemma_meta = {} if not gemma else {
        "layer_kinds": {str(i): (f"{lt}: local, sliding_window {GEMMA_SLIDING_WINDOW} (>= L: plain causal here), "
                                 "default RoPE theta 1e4" if lt == "sliding_attention" else
                                 f"{lt}: global, causal, linear RoPE theta 1e6 / factor 8")
                        for i, lt in enumerate(cfg_json["layer_types"])},
        "special_tokens": {"bos_token_id": GEMMA_BOS, "eos_token_id": GEMMA_EOS, "pad_token_id": GEMMA_PAD,
                           "note": "Gemma's ids; the inputs hold no bos (as the other stems)"},
        "softcapping": {"attn_logit_softcapping": cfg_json["attn_logit_softcapping"],
                        "final_logit_softcapping": cfg_json["final_logit_softcapping"]},
        "gemma3_forward": GEMMA3_FORWARD,
    }
    meta = {
        "model": f"tiny random {model_cls} in fixtures/golden/{name}/{{config.json,model.safetensors}} "
                 "(save_pretrained, safetensors); goldens from its bare decoder model.model",
        "hf_dir": name,
        "architecture": model_cls,
        "config": cfg_json,
        "config_json_transformers4": legacy,
        "config_note": "`config` is the committed config.json (transformers 5: RoPE settings in rope_parameters, "
                       "no top-level rope_theta/rope_scaling); config_json_transformers4 is the same model as "
                       "transformers 4 / Hub checkpoints write it, loaded by transformers 5 to the same "
                       "rope_parameters"
                       + ("; for Gemma 3 rope_parameters has one entry per layer type (full_attention, "
                          "sliding_attention), and the transformers 4 form has rope_theta (global), "
                          "rope_local_base_freq (local), rope_scaling (global only), sliding_window_pattern 2 and "
                          "no layer_types, which transformers 5 loads to the same layer_types (asserted); "
                          "_sliding_window_pattern / sliding_window_pattern in config.json are transformers 5's "
                          "record of the pattern layer_types came from (2, consistent with layer_types)"
                          if gemma else ""),
        "checkpoint": {"keys": keys, "metadata": st_meta,
                       "weights_dtype": str(wdtype).replace("torch.", ""),
                       "ignored_by_an_encoder": [k for k in keys if k == "lm_head.weight"],
                       "tied_embeddings": cfg_json["tie_word_embeddings"],
                       "reload_float32_max_abs_diff": reload_diff},
        "init": f"torch.manual_seed(0); {model_cls}(config); then with torch.Generator().manual_seed({seed}), "
                "iterating sorted(named_parameters()): "
                + ("*norm.weight (the four layer norms, q_norm, k_norm, the final norm) = 0.1*N(0,1), used as "
                   "(1 + w); " if gemma else "*norm.weight = 1 + 0.1*N(0,1); *.bias ~ 0.5*N(0,1); ")
                + "embed_tokens ~ 0.5*N(0,1); other weights ~ 0.2*N(0,1)"
                + ("; then every parameter rounded to bfloat16 (round to nearest even) and kept as float32 "
                   "for the goldens" if wdtype == torch.bfloat16 else ""),
        "inputs": (f"input_ids/attention_mask [3, {ids.shape[1]}]: {N_REAL} real tokens from [3, {VOCAB}) (the "
                   f"same as the other stems), then eos = {GEMMA_EOS} at position n_real[b], then pad = "
                   f"{GEMMA_PAD} to L = max(n_real) + 1; mask 0 on the eos and the pads. CLEFT pools position "
                   f"n_real[b] whatever its id: it is the eos here (row 1, n_real 9, has only the eos)"
                   if gemma else
                   f"input_ids/attention_mask [3, {ids.shape[1]}]: {N_REAL} real tokens from [3, {VOCAB}), "
                   f"right-padded with eos = {EOS} to L = max(n_real) + 1"),
        "position_ids": "not passed: transformers uses arange(L) for every row",
        "attention": "eager; causal + key padding mask (min float on pad keys); softmax in float32"
                     + ("; sliding_window 64 >= L, so the same as causal" if "mistral" in name else "")
                     + (f"; scale query_pre_attn_scalar ** -0.5 = 24 ** -0.5; q_norm / k_norm before RoPE; "
                        f"sliding_attention layers (0, 2) have sliding_window {GEMMA_SLIDING_WINDOW} >= L, so the "
                        "same as causal; no softcapping" if gemma else ""),
        **gemma_meta,
        **extra,
        "pooled": "cleft_pooled = last_hidden_state[b, n_real[b]] (CLEFT first-pad pooling)",
        "n_real": N_REAL,
        "rope": rope_meta,
        "tensors_file": f"{stem(name)}.safetensors",
        "tensors": desc,
        "f32_vs_f64_max_abs_diff": f64,
        "f32_vs_f64_note": "max abs difference between the stored float32 golden and the same model/inputs rerun "
                           "after model.double() by torch: a floor for Rust tolerances (tools/golden_noise.py "
                           "also measures it against a run with every internal float32 cast made float64)",
        "versions": versions(),
    }
    with open(os.path.join(GOLDEN, f"{stem(name)}.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size_dir = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"[{name}] {model_cls}: dir {size_dir / 1024:.0f} KiB, {st} {os.path.getsize(st) / 1024:.0f} KiB; "
          f"reload diff {reload_diff:g}; max|last_hidden_state| {r32['last_hidden_state'].abs().max().item():.3f}")
    print(f"  f32_vs_f64 (model.double()): " + ", ".join(f"{k} {v:.3e}" for k, v in f64.items()))
    if gemma:
        print(f"  layer_types {cfg_json['layer_types']}; rope {cfg_json['rope_parameters']}")
        for key in ("rope_inv_freq_global", "rope_inv_freq_global_unscaled", "rope_inv_freq_local", "embed_scale"):
            print(f"  {key:30s} {tensors[key].tolist()}")
        for k, v in extra.items():
            if k.endswith("_max_abs_diff"):
                print(f"  {k}: " + ", ".join(f"{o} {d:.3e}" for o, d in v.items()))
        return
    print(f"  rope {rope}")
    print(f"  inv_freq unscaled f32: {unscaled32.tolist()}")
    print(f"  inv_freq          f32: {inv32.tolist()}")
    if bands:
        for i, b in enumerate(bands):
            print(f"    {i}: wavelength {2 * math.pi / base64[i]:10.3f}  {b}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(specs()))
    a = ap.parse_args()
    for name in a.only.split(","):
        if name not in specs():
            sys.exit(f"unknown model {name!r}: one of {', '.join(specs())}")
        golden(name)


if __name__ == "__main__":
    main()
