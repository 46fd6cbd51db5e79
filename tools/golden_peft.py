#!/usr/bin/env python3
"""Goldens for cleft's PEFT adapters on the tiny random GPT-2 (fixtures/golden/tiny-gpt2), and a
check that adapters saved by cleft load in HF PEFT with the same outputs.

    python tools/golden_peft.py                      # writes fixtures/golden/tiny-gpt2-{ia3,prefix,prompt}/
                                                     # and fixtures/golden/tiny_gpt2_peft.{json,safetensors}
    python tools/golden_peft.py --check-rust DIR     # DIR/<name>/{adapter_config.json, adapter_model.safetensors,
                                                     # cleft_output.safetensors} written by the Rust test
                                                     # `adapters_saved_by_cleft_export_for_hf_peft`

CPU, float32, eval mode, no dropout. Inputs are the tiny_gpt2 goldens' (3 rows, L = 10, right-padded).
Position ids are *not* passed, so with a prefix of P virtual tokens the text's positions start at P
(PEFT + transformers derive them from the cache length), and with prompt tuning the virtual tokens
take positions 0..P-1. Adapter weights are fixed, non-trivial values (seeded), not PEFT's init.
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "fixtures", "golden")


def base_model():
    from transformers import GPT2Model
    return GPT2Model.from_pretrained(os.path.join(GOLDEN, "tiny-gpt2")).eval()


def inputs():
    t = load_file(os.path.join(GOLDEN, "tiny_gpt2.safetensors"))
    return t["input_ids"], t["attention_mask"]


def versions():
    import peft
    import transformers
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}


def fill(model, select, scale, offset, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if select(name):
                p.copy_(offset + scale * torch.randn(p.shape, generator=g))


def save_adapter(model, name):
    out = os.path.join(GOLDEN, name)
    model.save_pretrained(out, safe_serialization=True)
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    return out


def run(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state.contiguous()


def make_goldens():
    from peft import IA3Config, PrefixTuningConfig, PromptTuningConfig, get_peft_model

    ids, mask = inputs()
    tensors, meta = {}, {"versions": versions(), "inputs": "input_ids/attention_mask of tiny_gpt2.safetensors",
                         "position_ids": "not passed (see module docstring)", "adapters": {}}

    ia3 = get_peft_model(base_model(), IA3Config(target_modules=["c_attn", "mlp.c_proj"],
                                                 feedforward_modules=["mlp.c_proj"], fan_in_fan_out=True))
    fill(ia3, lambda n: "ia3_l" in n, 0.2, 1.0, 2)
    ia3.eval()
    tensors["ia3_last_hidden_state"] = run(ia3, ids, mask)
    save_adapter(ia3, "tiny-gpt2-ia3")
    merged = ia3.merge_and_unload()
    d = (run(merged, ids, mask) - tensors["ia3_last_hidden_state"]).abs().max().item()
    meta["adapters"]["ia3"] = {"dir": "tiny-gpt2-ia3", "targets": ["c_attn", "mlp.c_proj"],
                               "feedforward_modules": ["mlp.c_proj"], "weights": "ia3_l = 1 + 0.2*N(0,1), seed 2",
                               "hf_merge_vs_unmerged_max_abs": d}

    prefix = get_peft_model(base_model(), PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=5))
    fill(prefix, lambda n: "prompt_encoder" in n, 0.5, 0.0, 3)
    prefix.eval()
    tensors["prefix_last_hidden_state"] = run(prefix, ids, mask)
    save_adapter(prefix, "tiny-gpt2-prefix")
    meta["adapters"]["prefix"] = {"dir": "tiny-gpt2-prefix", "num_virtual_tokens": 5, "prefix_projection": False,
                                  "weights": "prompt_embeddings [5, 2*2*64] = 0.5*N(0,1), seed 3",
                                  "layout": "row t, column (2*layer + {0: key, 1: value})*64 + head*16 + d",
                                  "output": "last_hidden_state [3, 10, 64] (text positions only)"}

    prompt = get_peft_model(base_model(), PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3))
    fill(prompt, lambda n: "prompt_encoder" in n, 0.5, 0.0, 4)
    prompt.eval()
    tensors["prompt_last_hidden_state"] = run(prompt, ids, mask)
    save_adapter(prompt, "tiny-gpt2-prompt")
    meta["adapters"]["prompt_tuning"] = {"dir": "tiny-gpt2-prompt", "num_virtual_tokens": 3,
                                         "weights": "prompt_embeddings [3, 64] = 0.5*N(0,1), seed 4",
                                         "output": "last_hidden_state [3, 13, 64]: 3 virtual tokens, then the text"}

    # PEFT shifts the text's positions by the prefix length; without the shift the output differs.
    with torch.no_grad():
        pos = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
        full_mask = torch.cat([torch.ones(ids.shape[0], 5, dtype=mask.dtype), mask], 1)
        unshifted = prefix.base_model(input_ids=ids, attention_mask=full_mask, position_ids=pos,
                                      past_key_values=prefix.get_prompt(ids.shape[0])).last_hidden_state
    meta["adapters"]["prefix"]["unshifted_positions_max_abs_diff"] = \
        (unshifted - tensors["prefix_last_hidden_state"]).abs().max().item()

    save_file(tensors, os.path.join(GOLDEN, "tiny_gpt2_peft.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(GOLDEN, "tiny_gpt2_peft.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(meta["adapters"], indent=1))


def check_rust(root):
    from peft import PeftModel

    ids, mask = inputs()
    worst = 0.0
    names = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "adapter_config.json")))
    if not names:
        sys.exit(f"no adapter directories under {root}")
    for name in names:
        d = os.path.join(root, name)
        model = PeftModel.from_pretrained(base_model(), d).eval()
        want = load_file(os.path.join(d, "cleft_output.safetensors"))["last_hidden_state"]
        got = run(model, ids, mask)
        diff = (got - want).abs().max().item()
        worst = max(worst, diff)
        print(f"{name}: HF PEFT vs cleft max |diff| = {diff:.2e} ({type(model.peft_config['default']).__name__})")
    if worst > 1e-4:
        sys.exit(f"FAILED: max |diff| {worst:.2e} > 1e-4")
    print("ok: every adapter saved by cleft loads in HF PEFT with the same outputs (<= 1e-4)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-rust", metavar="DIR")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.check_rust:
        check_rust(args.check_rust)
    else:
        make_goldens()
