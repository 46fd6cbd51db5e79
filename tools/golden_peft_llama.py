#!/usr/bin/env python3
"""Goldens for cleft's PEFT adapters on SmolLM2-135M-Instruct (LLaMA, grouped-query attention),
loaded by transformers from the same Q4_1 GGUF cleft reads (dequantised to float32).

    /root/.venvs/cleft-golden/bin/python tools/golden_peft_llama.py
        # writes fixtures/golden/smollm2-{lora,ia3,prefix,prompt}/ (HF PEFT adapter dirs)
        # and fixtures/golden/smollm2_peft.{json,safetensors}

Needs $CLEFT_ASSETS/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (tools/fetch-assets.sh).
CPU, float32, eager attention, eval mode, no dropout. Inputs: 3 sentences tokenised by the GGUF
tokenizer without special tokens, right-padded with eos = 2 to L = max(n_real) + 1, mask 1 on real
tokens. Position ids are *not* passed, so with a prefix of P virtual tokens the text's RoPE
positions start at P (transformers derives them from the cache length), and with prompt tuning the
virtual tokens take positions 0..P-1. Adapter weights are fixed, non-trivial seeded values, not
PEFT's init. `*_pooled` is CLEFT's first-pad pooling: the hidden state right after the last real
token (index n_real[b], or P + n_real[b] with prompt tuning). Every output is also recomputed in
float64 and the difference recorded (`f32_vs_f64_max_abs_diff`), a floor for Rust tolerances.
"""
import copy
import json
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "fixtures", "golden")
CACHE = os.environ.get("CLEFT_ASSETS", os.path.join(os.path.expanduser("~"), ".cache", "cleft-assets"))
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SENTENCES = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "Normal chest.",
]
P = 4  # virtual tokens (prefix and prompt tuning)


def versions():
    import peft
    import transformers
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}


def load_base():
    from transformers import AutoModel, AutoTokenizer
    d = os.path.join(CACHE, "smollm2")
    if not os.path.exists(os.path.join(d, GGUF_NAME)):
        sys.exit(f"missing {d}/{GGUF_NAME}: run tools/fetch-assets.sh")
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_NAME)
    model = AutoModel.from_pretrained(d, gguf_file=GGUF_NAME, dtype=torch.float32,
                                      attn_implementation="eager").eval()
    return tok, model


def inputs(tok):
    eos = tok.eos_token_id
    assert eos == 2, eos
    seqs = [tok(s, add_special_tokens=False).input_ids for s in SENTENCES]
    n_real = [len(s) for s in seqs]
    B, L = len(seqs), max(n_real) + 1
    ids = torch.full((B, L), eos, dtype=torch.int64)
    mask = torch.zeros((B, L), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask, torch.tensor(n_real)


def fill(model, select, scale, offset, seed):
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if select(name):
                p.copy_(offset + scale * torch.randn(p.shape, generator=g))
                n += 1
    assert n > 0, "no adapter parameter filled"


def save_adapter(model, name):
    out = os.path.join(GOLDEN, name)
    model.save_pretrained(out, safe_serialization=True)
    # No machine-local path in the fixtures: name the model the GGUF was made from.
    cfg_path = os.path.join(out, "adapter_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def run(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state.contiguous()


def main():
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

    torch.manual_seed(0)
    tok, base = load_base()
    ids, mask, n_real = inputs(tok)
    B = ids.shape[0]
    rows = torch.arange(B)
    tensors = {"input_ids": ids, "attention_mask": mask, "n_real": n_real}
    meta = {"versions": versions(), "sentences": SENTENCES,
            "model": f"SmolLM2-135M-Instruct from $CLEFT_ASSETS/smollm2/{GGUF_NAME}, transformers "
                     "AutoModel(gguf_file=...) -> LlamaModel, float32, eager attention",
            "inputs": "input_ids/attention_mask [B, L]: GGUF tokenizer, no special tokens, right-padded with eos = 2, "
                      "L = max(n_real) + 1",
            "position_ids": "not passed (see tools/golden_peft_llama.py docstring)",
            "pooled": "h[b, n_real[b]] (prompt tuning: h[b, P + n_real[b]]), CLEFT first-pad pooling",
            "adapters": {}, "f32_vs_f64_max_abs_diff": {}}

    specs = {
        "lora": (LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
                 lambda n: "lora_" in n, 0.05, 0.0, 11,
                 {"targets": ["q_proj", "v_proj"], "r": 4, "lora_alpha": 8,
                  "weights": "lora_A and lora_B = 0.05*N(0,1), seed 11 (B non-zero)"}),
        "ia3": (IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]),
                lambda n: "ia3_l" in n, 0.2, 1.0, 12,
                {"targets": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"],
                 "weights": "ia3_l = 1 + 0.2*N(0,1), seed 12"}),
        "prefix": (PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=P),
                   lambda n: "prompt_encoder" in n, 0.5, 0.0, 13,
                   {"num_virtual_tokens": P, "prefix_projection": False,
                    "weights": f"prompt_embeddings [{P}, 2*30*192] = 0.5*N(0,1), seed 13",
                    "layout": "row t, column (2*layer + {0: key, 1: value})*192 + kv_head*64 + d; "
                              "token_dim = num_key_value_heads*head_dim = 3*64 (PEFT, GQA)",
                    "output": "last_hidden_state [B, L, 576] (text positions only)"}),
        "prompt": (PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=P),
                   lambda n: "prompt_encoder" in n, 0.05, 0.0, 14,
                   {"num_virtual_tokens": P, "weights": f"prompt_embeddings [{P}, 576] = 0.05*N(0,1), seed 14",
                    "output": f"last_hidden_state [B, {P} + L, 576]: virtual tokens, then the text"}),
    }
    for name, (config, select, scale, offset, seed, info) in specs.items():
        model = get_peft_model(copy.deepcopy(base), config)
        fill(model, select, scale, offset, seed)
        model.eval()
        h = run(model, ids, mask)
        shift = P if name == "prompt" else 0
        tensors[f"{name}_last_hidden_state"] = h
        tensors[f"{name}_pooled"] = h[rows, n_real + shift].contiguous()
        save_adapter(model, f"smollm2-{name}")
        info = dict(info, dir=f"smollm2-{name}")
        if name == "prefix":
            # Without the position shift the output differs: the shift is what is being tested.
            with torch.no_grad():
                pos = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
                full = torch.cat([torch.ones(B, P, dtype=mask.dtype), mask], 1)
                unshifted = model.base_model(input_ids=ids, attention_mask=full, position_ids=pos,
                                             past_key_values=model.get_prompt(B)).last_hidden_state
            info["unshifted_positions_max_abs_diff"] = (unshifted - h).abs().max().item()
        h64 = run(copy.deepcopy(model).double(), ids, mask)
        meta["f32_vs_f64_max_abs_diff"][f"{name}_last_hidden_state"] = (h.double() - h64).abs().max().item()
        meta["f32_vs_f64_max_abs_diff"][f"{name}_pooled"] = \
            (h[rows, n_real + shift].double() - h64[rows, n_real + shift]).abs().max().item()
        if name in ("lora", "ia3"):
            merged = copy.deepcopy(model).merge_and_unload()
            info["hf_merge_vs_unmerged_max_abs"] = (run(merged, ids, mask) - h).abs().max().item()
        info["output_max_abs"] = h.abs().max().item()
        meta["adapters"][name] = info
        print(name, json.dumps(info), flush=True)

    st = os.path.join(GOLDEN, "smollm2_peft.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, st, metadata={"format": "pt"})
    os.chmod(st, 0o644)
    meta["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
    with open(os.path.join(GOLDEN, "smollm2_peft.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {st} ({os.path.getsize(st) / 1024:.0f} KiB)")
    print(json.dumps(meta["f32_vs_f64_max_abs_diff"], indent=1))


if __name__ == "__main__":
    main()
