#!/usr/bin/env python3
"""Goldens for DoRA (HF PEFT `LoraConfig(use_dora=True)`) on the tiny random GPT-2
(fixtures/golden/tiny-gpt2), and a check that DoRA adapters saved by cleft load in HF PEFT with the
same outputs.

    python tools/golden_dora.py                      # writes fixtures/golden/tiny-gpt2-dora/
                                                     # and fixtures/golden/tiny_gpt2_dora.{json,safetensors}
    python tools/golden_dora.py --check-rust DIR     # DIR/<name>/{adapter_config.json, adapter_model.safetensors,
                                                     # cleft_output.safetensors} written by a Rust test

CPU, float32, eval mode, no dropout, 1 thread. Inputs are the tiny_gpt2 goldens' (3 rows, L = 10,
right-padded); position ids are not passed (as in golden_peft.py). Adapter weights are fixed,
non-trivial values (seeded), not PEFT's init: lora_A, lora_B = 0.3*N(0,1) (seed 5), and the DoRA
magnitude = PEFT's initial value (the column norm of the base weight) * (1 + 0.1*N(0,1)) (seed 6), so
that the magnitude differs from the norm of the adapted weight.

DoRA on a GPT-2 Conv1D (weight W stored [in, out], fan_in_fan_out=True), s = lora_alpha / r,
A = lora_A.weight [r, in], B = lora_B.weight [out, r], m = lora_magnitude_vector [out]:
    V = W^T + s * B @ A                         [out, in]
    n_o = || V[o, :] ||_2                       one norm per output feature (torch.linalg.norm(V, dim=1))
    y = b + (m / n) * (x @ W + s * (x @ A^T) @ B^T)      (bias not scaled; n is detached)
    merged: W' = W + s * (B @ A)^T scaled column-wise by m / n; b unchanged
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "fixtures", "golden")
ADAPTER = "tiny-gpt2-dora"
R, ALPHA, TARGETS = 4, 8, ["c_attn", "mlp.c_proj"]


def base_model():
    from transformers import GPT2Model
    return GPT2Model.from_pretrained(os.path.join(GOLDEN, "tiny-gpt2")).eval()


def inputs():
    t = load_file(os.path.join(GOLDEN, "tiny_gpt2.safetensors"))
    return t["input_ids"], t["attention_mask"]


def versions():
    import numpy
    import peft
    import safetensors
    import transformers
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "safetensors": safetensors.__version__, "numpy": numpy.__version__}


def fill(model, select, scale, offset, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if select(name):
                p.copy_(offset + scale * torch.randn(p.shape, generator=g))


def perturb(model, select, scale, seed):
    """p <- p * (1 + scale*N(0,1)), in sorted parameter-name order."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if select(name):
                p.mul_(1.0 + scale * torch.randn(p.shape, generator=g))


def save_adapter(model, name):
    out = os.path.join(GOLDEN, name)
    model.save_pretrained(out, safe_serialization=True)
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    return out


def sort_target_modules(out_dir):
    """PEFT keeps target_modules as a set, so its saved order depends on PYTHONHASHSEED; sort it (same
    formatting as PEFT's writer) so that the adapter directory is byte-reproducible."""
    path = os.path.join(out_dir, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))


def run(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state.contiguous()


def config(use_dora=True):
    from peft import LoraConfig
    return LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, fan_in_fan_out=True,
                      bias="none", use_dora=use_dora)


def targets(model):
    """(name, Conv1D base layer, lora_A [r,in], lora_B [out,r], magnitude [out]) for every DoRA layer."""
    out = []
    for name, mod in sorted(model.named_modules()):
        if hasattr(mod, "lora_magnitude_vector") and "default" in getattr(mod, "lora_magnitude_vector", {}):
            out.append((name, mod.get_base_layer(), mod.lora_A["default"].weight, mod.lora_B["default"].weight,
                        mod.lora_magnitude_vector["default"].weight))
    return out


def manual_merge_f64(adapter_dir, ids, mask):
    """The stated formula, applied by hand in float64 to a plain GPT2Model: W' = (m/n) (.) (W + s (B A)^T)."""
    sd = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    model = base_model().double()
    s = ALPHA / R
    n_layers = 0
    with torch.no_grad():
        for name, mod in model.named_modules():
            key = f"base_model.model.{name}"
            if f"{key}.lora_magnitude_vector" not in sd:
                continue
            A = sd[f"{key}.lora_A.weight"].double()
            B = sd[f"{key}.lora_B.weight"].double()
            m = sd[f"{key}.lora_magnitude_vector"].double()
            W = mod.weight  # Conv1D [in, out]
            V = W.T + s * (B @ A)  # [out, in]
            n = torch.linalg.norm(V, dim=1)  # [out]
            mod.weight.copy_((V * (m / n).unsqueeze(1)).T)
            n_layers += 1
    assert n_layers == 4, n_layers
    return run(model, ids, mask)


def make_goldens():
    from peft import PeftModel, get_peft_model

    ids, mask = inputs()
    meta = {"versions": versions(), "inputs": "input_ids/attention_mask of tiny_gpt2.safetensors",
            "position_ids": "not passed (as in golden_peft.py)", "threads": torch.get_num_threads()}

    model = get_peft_model(base_model(), config())
    # PEFT's init: B = 0, so m = || W^T ||_row (one L2 norm per output feature, over the input dim).
    init_err = 0.0
    for _, base, _, B, m in targets(model):
        assert torch.count_nonzero(B) == 0
        init_err = max(init_err, (m - torch.linalg.norm(base.weight.T, dim=1)).abs().max().item())
    fill(model, lambda n: "lora_A" in n or "lora_B" in n, 0.3, 0.0, 5)
    perturb(model, lambda n: "lora_magnitude_vector" in n, 0.1, 6)
    model.eval()
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    norm_ratio = []
    with torch.no_grad():
        for name, base, A, B, m in targets(model):
            n = torch.linalg.norm(base.weight.T + (ALPHA / R) * (B @ A), dim=1)
            norm_ratio.append([name, (m / n).min().item(), (m / n).max().item()])
    tensors = {"dora_last_hidden_state": run(model, ids, mask)}
    out_dir = save_adapter(model, ADAPTER)
    os.chmod(os.path.join(out_dir, "adapter_model.safetensors"), 0o644)
    sort_target_modules(out_dir)

    # merge on a fresh copy loaded from the saved directory
    fresh = PeftModel.from_pretrained(base_model(), out_dir).eval()
    reload_diff = (run(fresh, ids, mask) - tensors["dora_last_hidden_state"]).abs().max().item()
    tensors["dora_merged_last_hidden_state"] = run(fresh.merge_and_unload(), ids, mask)
    merge_diff = (tensors["dora_merged_last_hidden_state"] - tensors["dora_last_hidden_state"]).abs().max().item()

    # float64: the same base model and adapter cast with .double() (for GPT-2 a plain .double() is an
    # all-float64 computation, see golden_noise.py); the merge itself done in float64 too.
    with torch.no_grad():
        u64 = run(PeftModel.from_pretrained(base_model(), out_dir).eval().double(), ids, mask)
        m64 = run(PeftModel.from_pretrained(base_model(), out_dir).eval().double().merge_and_unload(), ids, mask)
    assert u64.dtype == torch.float64 and m64.dtype == torch.float64
    hand64 = manual_merge_f64(out_dir, ids, mask)
    formula_diff = max((hand64 - u64).abs().max().item(), (hand64 - m64).abs().max().item())
    assert formula_diff < 1e-9, formula_diff

    sd = load_file(os.path.join(out_dir, "adapter_model.safetensors"))
    keys = {k: list(v.shape) for k, v in sorted(sd.items())}
    with open(os.path.join(out_dir, "adapter_config.json")) as f:
        acfg = json.load(f)

    meta["adapter"] = {
        "dir": ADAPTER,
        "config": {k: acfg[k] for k in ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules",
                                        "fan_in_fan_out", "bias", "use_dora", "use_rslora", "task_type",
                                        "init_lora_weights", "lora_bias")},
        "call": "get_peft_model(GPT2Model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, "
                "target_modules=['c_attn', 'mlp.c_proj'], fan_in_fan_out=True, bias='none', use_dora=True))",
        "scaling": ALPHA / R,
        "targeted_layers": [t[0] for t in targets(model)],
        "weights": {"lora_A, lora_B": "0.3*N(0,1), torch.Generator seed 5, sorted(named_parameters()) order "
                                      "(lora_A and lora_B interleaved by name)",
                    "lora_magnitude_vector": "PEFT's initial value (|| W^T ||_row, B = 0) * (1 + 0.1*N(0,1)), "
                                             "torch.Generator seed 6, sorted(named_parameters()) order"},
        "init_magnitude_vs_weight_norm_max_abs": init_err,
        "magnitude_over_adapted_norm_min_max": norm_ratio,
        "trainable_params": n_trainable,
        "adapter_model_keys": keys,
        "formula": {
            "V": "W^T + s * B @ A  [out, in]; W = Conv1D weight [in, out], A = lora_A [r, in], B = lora_B [out, r], "
                 "s = lora_alpha / r = 2",
            "norm": "n[o] = ||V[o, :]||_2 (torch.linalg.norm(V, dim=1)), detached, recomputed every forward",
            "forward": "y = x @ W + b + (m/n - 1) * (x @ W) + (m/n) * s * (x @ A^T) @ B^T "
                       "= b + (m/n) * (x @ W + s * (x @ A^T) @ B^T); the bias is not scaled",
            "merge": "W' = (W + s * (B @ A)^T) * (m/n) broadcast over columns (one factor per output feature); "
                     "b unchanged",
            "checked": "applying the merge formula by hand in float64 reproduces PEFT's float64 unmerged and "
                       "merged outputs",
            "formula_vs_peft_f64_max_abs": formula_diff,
        },
    }
    meta["outputs"] = {
        "dora_last_hidden_state": {
            "shape": list(tensors["dora_last_hidden_state"].shape),
            "meaning": "PeftModel (DoRA, unmerged) last_hidden_state",
            "max_abs": tensors["dora_last_hidden_state"].abs().max().item(),
            "f32_vs_f64": (tensors["dora_last_hidden_state"].double() - u64).abs().max().item()},
        "dora_merged_last_hidden_state": {
            "shape": list(tensors["dora_merged_last_hidden_state"].shape),
            "meaning": "merge_and_unload() of a fresh PeftModel.from_pretrained(tiny-gpt2, tiny-gpt2-dora)",
            "max_abs": tensors["dora_merged_last_hidden_state"].abs().max().item(),
            "f32_vs_f64": (tensors["dora_merged_last_hidden_state"].double() - m64).abs().max().item()},
    }
    meta["hf_merge_vs_unmerged_max_abs"] = merge_diff
    # how much DoRA matters here: the base model alone, and plain LoRA with the same A, B (m = n)
    plain = get_peft_model(base_model(), config(use_dora=False))
    sd_model = model.state_dict()
    with torch.no_grad():
        for k, p in plain.named_parameters():
            if "lora_A" in k or "lora_B" in k:
                p.copy_(sd_model[k])
    plain.eval()
    meta["base_vs_dora_max_abs"] = (run(base_model(), ids, mask) - tensors["dora_last_hidden_state"]).abs().max().item()
    meta["plain_lora_same_AB_vs_dora_max_abs"] = \
        (run(plain, ids, mask) - tensors["dora_last_hidden_state"]).abs().max().item()
    meta["reloaded_vs_golden_max_abs"] = reload_diff
    meta["f64_merged_vs_unmerged_max_abs"] = (m64 - u64).abs().max().item()

    save_file(tensors, os.path.join(GOLDEN, "tiny_gpt2_dora.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(GOLDEN, "tiny_gpt2_dora.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print("adapter_model.safetensors:")
    for k, s in keys.items():
        print(f"  {k} {s}")
    print(json.dumps({k: meta[k] for k in ("outputs", "hf_merge_vs_unmerged_max_abs", "reloaded_vs_golden_max_abs",
                                           "f64_merged_vs_unmerged_max_abs", "base_vs_dora_max_abs",
                                           "plain_lora_same_AB_vs_dora_max_abs")}, indent=1))
    print(f"init magnitude vs ||W||: {init_err:.1e}; formula vs PEFT (f64): {formula_diff:.1e}")


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
        cfg = model.peft_config["default"]
        print(f"{name}: HF PEFT vs cleft max |diff| = {diff:.2e} ({type(cfg).__name__}, "
              f"use_dora={getattr(cfg, 'use_dora', False)})")
    if worst > 1e-4:
        sys.exit(f"FAILED: max |diff| {worst:.2e} > 1e-4")
    print("ok: every adapter saved by cleft loads in HF PEFT with the same outputs (<= 1e-4)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-rust", metavar="DIR")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.check_rust:
        check_rust(args.check_rust)
    else:
        make_goldens()
