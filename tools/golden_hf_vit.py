#!/usr/bin/env python3
"""Golden fixtures for the `hf-vit` image encoder (HF transformers `ViTModel`).

    ~/.venvs/cleft-golden/bin/python tools/golden_hf_vit.py [--out fixtures/golden]

No pretrained ViT is available offline, so this builds a tiny random `ViTModel` (seed 0, weights
re-initialised with large values so every parameter matters), saves it as a HF checkpoint
directory `tiny-hf-vit/{config.json,model.safetensors}` and writes `tiny_hf_vit.{safetensors,json}`:
outputs for 2 fixed images at the native 32 px and at 48 px (`interpolate_pos_encoding=True`,
bicubic, align_corners=False). The weights are rounded to float16 and stored as float16 (keeps
the checkpoint < 200 KB); the goldens are computed in float32 from exactly those values.
CPU, float32, eval mode, eager attention. Output is byte-reproducible.

Needs: torch transformers safetensors (see tools/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)

CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
              image_size=32, patch_size=8, num_channels=3)
INIT = ("torch.manual_seed(0); ViTModel(config, add_pooling_layer=True); then with torch.Generator()"
        ".manual_seed(0), iterating sorted(named_parameters()): cls_token/position_embeddings ~ 0.5*N(0,1); "
        "layernorm*.weight = 1 + 0.1*N(0,1); *.bias ~ 0.1*N(0,1); other weights ~ 0.2*N(0,1); every "
        "value then rounded to float16")


def versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "safetensors", "numpy"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def build_model():
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(**CONFIG, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = ViTModel(config, add_pooling_layer=True)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name in ("embeddings.cls_token", "embeddings.position_embeddings"):
                value = 0.5 * torch.randn(p.shape, generator=g)
            elif "layernorm" in name and name.endswith(".weight"):
                value = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                value = 0.1 * torch.randn(p.shape, generator=g)
            else:
                value = 0.2 * torch.randn(p.shape, generator=g)
            p.copy_(value.half().float())
    return model.eval()


def images(size):
    """[2, 3, S, S]: a seeded N(0, 1) image and a smooth colour ramp with a checkerboard."""
    g = torch.Generator().manual_seed(size)
    noise = torch.randn(3, size, size, generator=g)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cell = size // 4
    checker = ((x // cell + y // cell) % 2).float() * 2.0 - 1.0
    ramp = torch.stack([x.float() / (size - 1) * 2 - 1, y.float() / (size - 1) * 2 - 1, checker])
    return torch.stack([noise, ramp]).contiguous()


def save_checkpoint(model, directory):
    """`save_pretrained` (config.json, classic HF keys), then the tensors rewritten as float16."""
    model.save_pretrained(directory, safe_serialization=True)
    path = os.path.join(directory, "model.safetensors")
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        keys = sorted(f.keys())
        tensors = {k: f.get_tensor(k).half().contiguous() for k in keys}
    save_file(tensors, path, metadata={"format": "pt"})
    os.chmod(path, 0o644)
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    config["dtype"] = "float16"
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    return keys


def main():
    from transformers import ViTModel

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "fixtures", "golden"))
    out = os.path.abspath(ap.parse_args().out)
    model = build_model()
    mdir = os.path.join(out, "tiny-hf-vit")
    keys = save_checkpoint(model, mdir)
    reloaded = ViTModel.from_pretrained(mdir, dtype=torch.float32, attn_implementation="eager").eval()
    model64 = build_model().double()

    tensors, desc, f64 = {}, {}, {}

    def add(key, t, what):
        t = t.detach().float().contiguous().clone()
        tensors[key] = t
        desc[key] = {"shape": list(t.shape), "dtype": "float32", "semantics": what}

    for size in (32, 48):
        px = images(size)
        interpolate = size != CONFIG["image_size"]
        with torch.no_grad():
            o = model(pixel_values=px, interpolate_pos_encoding=interpolate)
            o_reload = reloaded(pixel_values=px, interpolate_pos_encoding=interpolate)
            o64 = model64(pixel_values=px.double(), interpolate_pos_encoding=interpolate)
        reload_diff = (o.last_hidden_state - o_reload.last_hidden_state).abs().max().item()
        assert reload_diff == 0.0, f"reloaded float16 checkpoint differs by {reload_diff}"
        h = o.last_hidden_state
        add(f"pixel_values_{size}", px, f"model input [2,3,{size},{size}]: seeded N(0,1) image, colour ramp + checkerboard")
        add(f"last_hidden_state_{size}", h, "ViTModel last_hidden_state (after the final layernorm)")
        add(f"cls_{size}", h[:, 0], "last_hidden_state[:, 0]: CLS after the final layernorm (pooling = cls)")
        add(f"mean_{size}", h.mean(1), "last_hidden_state.mean(1) over all tokens incl. CLS (pooling = mean)")
        add(f"pooler_output_{size}", o.pooler_output, "ViTModel pooler_output = tanh(pooler.dense(CLS))")
        for key, ref in ((f"last_hidden_state_{size}", o64.last_hidden_state),
                         (f"pooler_output_{size}", o64.pooler_output)):
            f64[key] = (tensors[key].double() - ref).abs().max().item()
        if interpolate:
            with torch.no_grad():
                embeddings = torch.zeros(1, 1 + (size // CONFIG["patch_size"]) ** 2, CONFIG["hidden_size"])
                table = model.embeddings.interpolate_pos_encoding(embeddings, size, size)
            add(f"position_embeddings_{size}", table,
                f"interpolate_pos_encoding: the 4x4 grid resized to {size // 8}x{size // 8} "
                "(nn.functional.interpolate(size=..., mode='bicubic', align_corners=False)), CLS row kept")

    os.makedirs(out, exist_ok=True)
    st = os.path.join(out, "tiny_hf_vit.safetensors")
    save_file(tensors, st, metadata={"generator": "tools/golden_hf_vit.py; see tiny_hf_vit.json"})
    os.chmod(st, 0o644)
    meta = {
        "model": "tiny random HF ViTModel in fixtures/golden/tiny-hf-vit/{config.json,model.safetensors}",
        "config": CONFIG,
        "layer_norm_eps": model.config.layer_norm_eps,
        "hidden_act": model.config.hidden_act,
        "add_pooling_layer": True,
        "init": INIT,
        "checkpoint": {"tensors": len(keys), "dtype": "float16 (values exactly representable; goldens in float32)",
                       "parameters": sum(p.numel() for p in model.parameters()), "keys": keys},
        "interpolation": "at 48 px ViTModel(pixel_values, interpolate_pos_encoding=True); at 32 px the table is used as is",
        "tensors_file": "tiny_hf_vit.safetensors",
        "tensors": desc,
        "f32_vs_f64_max_abs_diff": f64,
        "f32_vs_f64_note": "max abs difference between the float32 golden and the same model rerun in float64",
        "versions": versions(),
    }
    with open(os.path.join(out, "tiny_hf_vit.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    for name in ("tiny_hf_vit.safetensors", "tiny-hf-vit/model.safetensors"):
        print(f"  wrote {name} ({os.path.getsize(os.path.join(out, name)) / 1024:.0f} KiB)")
    print(f"  f32 vs f64: {f64}")


if __name__ == "__main__":
    main()
