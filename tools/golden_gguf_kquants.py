#!/usr/bin/env python3
"""Golden dequantisation of the GGUF block types Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.

Writes fixtures/golden/gguf_kquants.safetensors and fixtures/golden/gguf_kquants.json for the
bit-exact tests of the cleft-gguf crate (plugins/gguf/tests/kquants.rs). Needs no assets.

For every type, blocks of up to three kinds:

- `quantized`: seeded N(0, 1) float32 data (one scale per block: 0.01, 0.1, 1, 10) quantised with
  the `gguf` package's own quantiser, where it has one (gguf 0.19.0: Q5_0 and Q5_1 only; the
  k-quants have no Python quantiser);
- `random`: seeded uniformly random bytes with every f16 field (d, m / dmin) overwritten with a
  finite f16 of moderate size (|x| in [2^-20, 2^5), so normal and subnormal f16, both signs):
  random values in every packed quant, high-bit and scale field, no NaN or infinity;
- `edge`: all-zero bytes; all-0xFF bytes with the f16 fields set to the largest finite f16;
  all-0xFF bytes with the smallest subnormal f16 (+ for d, - for m / dmin); random bytes with
  d = -0.0 and m = -0.0 (Q5_1) / dmin = +0.0 (k-quants), so every result is a signed zero.

Each kind is dequantised with `gguf.quants.dequantize` (llama.cpp's gguf-py, a vectorised port of
ggml's `dequantize_row_*`). The script also dequantises every block with a scalar transcription
of ggml-quants.c's `dequantize_row_*` loops in float32 and asserts both agree bit for bit.

Tensors (4 blocks each): `<type>.<kind>.bytes` (U8 [4, type_size], the raw ggml blocks) and
`<type>.<kind>.values` (F32 [4 * block_size], the dequantised values, row-major).

Requirements: pip install gguf numpy safetensors
(the values committed were made with gguf 0.19.0, numpy 2.4.6, safetensors 0.8.0).

Usage: python tools/golden_gguf_kquants.py [--out-dir fixtures/golden]
"""

import argparse
import importlib.metadata
import json
import os
import platform
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

N_BLOCKS = 4
QK_K = 256

# Type -> (seed, byte offsets of its f16 fields: d first, then m / dmin if any).
TYPES = {
    "Q5_0": (50, [0]),
    "Q5_1": (51, [0, 2]),
    "Q2_K": (102, [80, 82]),
    "Q3_K": (103, [108]),
    "Q4_K": (104, [0, 2]),
    "Q5_K": (105, [0, 2]),
    "Q6_K": (106, [208]),
}
QUANTIZED_SCALES = [0.01, 0.1, 1.0, 10.0]


# --- seeded blocks ---------------------------------------------------------------------------


def moderate_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` finite f16 values: sign · U[1, 2) · 2^e, e in [-20, 4] (normal and subnormal f16)."""
    sign = np.where(rng.integers(0, 2, n) == 1, -1.0, 1.0)
    mant = rng.uniform(1.0, 2.0, n)
    exp = rng.integers(-20, 5, n).astype(np.float64)
    v = (sign * mant * np.exp2(exp)).astype(np.float16)
    assert np.all(np.isfinite(v))
    return v


def set_f16(blocks: np.ndarray, offset: int, values) -> None:
    v = np.asarray(values, dtype=np.float16).reshape(-1)
    v = np.broadcast_to(v, (blocks.shape[0],))
    blocks[:, offset : offset + 2] = v.astype("<f2").view(np.uint8).reshape(-1, 2)


def random_blocks(qtype: GGMLQuantizationType, seed: int, f16_offsets: list) -> np.ndarray:
    _, type_size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    for off in f16_offsets:
        set_f16(blocks, off, moderate_f16(rng, N_BLOCKS))
    return blocks


def edge_blocks(qtype: GGMLQuantizationType, seed: int, f16_offsets: list) -> np.ndarray:
    _, type_size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed + 1000)
    zero = np.zeros((1, type_size), dtype=np.uint8)
    big = np.full((1, type_size), 0xFF, dtype=np.uint8)
    tiny = np.full((1, type_size), 0xFF, dtype=np.uint8)
    signed_zero = rng.integers(0, 256, size=(1, type_size), dtype=np.uint8)
    for i, off in enumerate(f16_offsets):
        big[:, off : off + 2] = np.array([0xFF, 0x7B], dtype=np.uint8)  # 65504
        tiny[:, off : off + 2] = np.array([0x01, 0x80 if i else 0x00], dtype=np.uint8)  # ±2^-24
        # d = -0.0; m = -0.0 where it is added (Q5_1), dmin = +0.0 where it is subtracted: the
        # results are signed zeros (-0.0 wherever the quant is >= 0).
        set_f16(signed_zero, off, (-0.0 if qtype == GGMLQuantizationType.Q5_1 else 0.0) if i else -0.0)
    return np.concatenate([zero, big, tiny, signed_zero], axis=0)


def quantized_blocks(qtype: GGMLQuantizationType, seed: int):
    """Blocks from gguf's own quantiser, or None where gguf has none for `qtype`."""
    block_size, _ = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed + 2000)
    data = rng.standard_normal((N_BLOCKS, block_size)).astype(np.float32)
    data *= np.array(QUANTIZED_SCALES, dtype=np.float32).reshape(-1, 1)
    try:
        q = quantize(data.reshape(1, -1), qtype)
    except NotImplementedError:
        return None
    return np.ascontiguousarray(q).reshape(N_BLOCKS, -1)


# --- scalar transcription of ggml-quants.c dequantize_row_* (float32 arithmetic) -------------

F32 = np.float32


def f16_at(b: bytes, off: int) -> np.float32:
    return np.frombuffer(b[off : off + 2], dtype="<f2")[0].astype(np.float32)


def row_q5_0(b: bytes) -> list:
    d = f16_at(b, 0)
    qh = int.from_bytes(b[2:6], "little")
    qs = b[6:22]
    y = [F32(0)] * 32
    for j in range(16):
        xh_0 = ((qh >> j) << 4) & 0x10
        xh_1 = (qh >> (j + 12)) & 0x10
        y[j] = F32(((qs[j] & 0x0F) | xh_0) - 16) * d
        y[j + 16] = F32(((qs[j] >> 4) | xh_1) - 16) * d
    return y


def row_q5_1(b: bytes) -> list:
    d, m = f16_at(b, 0), f16_at(b, 2)
    qh = int.from_bytes(b[4:8], "little")
    qs = b[8:24]
    y = [F32(0)] * 32
    for j in range(16):
        xh_0 = ((qh >> j) << 4) & 0x10
        xh_1 = (qh >> (j + 12)) & 0x10
        y[j] = F32((qs[j] & 0x0F) | xh_0) * d + m
        y[j + 16] = F32((qs[j] >> 4) | xh_1) * d + m
    return y


def row_q2_k(b: bytes) -> list:
    scales, qs = b[0:16], b[16:80]
    d, dmin = f16_at(b, 80), f16_at(b, 82)
    y, is_ = [], 0
    for n in range(2):
        q = qs[32 * n : 32 * n + 32]
        for j in range(4):
            shift = 2 * j
            for half in range(2):
                sc = scales[is_]
                is_ += 1
                dl, ml = d * F32(sc & 0xF), dmin * F32(sc >> 4)
                y += [dl * F32((q[16 * half + l] >> shift) & 3) - ml for l in range(16)]
    return y


def row_q3_k(b: bytes) -> list:
    hm, qs, sb = b[0:32], b[32:96], b[96:108]
    d_all = f16_at(b, 108)
    aux = [int.from_bytes(sb[4 * i : 4 * i + 4], "little") for i in range(3)] + [0]
    kmask1, kmask2 = 0x03030303, 0x0F0F0F0F
    tmp = aux[2]
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4)
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4)
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4)
    scales = np.frombuffer(b"".join(a.to_bytes(4, "little") for a in aux), dtype=np.int8)
    y, is_, m = [], 0, 1
    for n in range(2):
        q = qs[32 * n : 32 * n + 32]
        for j in range(4):
            shift = 2 * j
            for half in range(2):
                dl = d_all * F32(int(scales[is_]) - 32)
                is_ += 1
                for l in range(16):
                    k = 16 * half + l
                    y.append(dl * F32(((q[k] >> shift) & 3) - (0 if hm[k] & m else 4)))
            m <<= 1
    return y


def scale_min_k4(j: int, q: bytes) -> tuple:
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def row_q4_k(b: bytes) -> list:
    d, dmin = f16_at(b, 0), f16_at(b, 2)
    scales, qs = b[4:16], b[16:144]
    y = []
    for g in range(4):
        sc, m = scale_min_k4(2 * g, scales)
        d1, m1 = d * F32(sc), dmin * F32(m)
        sc, m = scale_min_k4(2 * g + 1, scales)
        d2, m2 = d * F32(sc), dmin * F32(m)
        q = qs[32 * g : 32 * g + 32]
        y += [d1 * F32(q[l] & 0xF) - m1 for l in range(32)]
        y += [d2 * F32(q[l] >> 4) - m2 for l in range(32)]
    return y


def row_q5_k(b: bytes) -> list:
    d, dmin = f16_at(b, 0), f16_at(b, 2)
    scales, qh, ql = b[4:16], b[16:48], b[48:176]
    y, u1, u2 = [], 1, 2
    for g in range(4):
        sc, m = scale_min_k4(2 * g, scales)
        d1, m1 = d * F32(sc), dmin * F32(m)
        sc, m = scale_min_k4(2 * g + 1, scales)
        d2, m2 = d * F32(sc), dmin * F32(m)
        q = ql[32 * g : 32 * g + 32]
        y += [d1 * F32((q[l] & 0xF) + (16 if qh[l] & u1 else 0)) - m1 for l in range(32)]
        y += [d2 * F32((q[l] >> 4) + (16 if qh[l] & u2 else 0)) - m2 for l in range(32)]
        u1 <<= 2
        u2 <<= 2
    return y


def row_q6_k(b: bytes) -> list:
    ql_all, qh_all = b[0:128], b[128:192]
    sc_all = np.frombuffer(b[192:208], dtype=np.int8)
    d = f16_at(b, 208)
    y = [F32(0)] * 256
    for n in range(2):
        ql, qh, sc = ql_all[64 * n :], qh_all[32 * n :], sc_all[8 * n :]
        for l in range(32):
            is_ = l // 16
            q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32
            q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32
            q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
            q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
            y[128 * n + l] = d * F32(sc[is_]) * F32(q1)
            y[128 * n + l + 32] = d * F32(sc[is_ + 2]) * F32(q2)
            y[128 * n + l + 64] = d * F32(sc[is_ + 4]) * F32(q3)
            y[128 * n + l + 96] = d * F32(sc[is_ + 6]) * F32(q4)
    return y


SCALAR = {
    "Q5_0": row_q5_0,
    "Q5_1": row_q5_1,
    "Q2_K": row_q2_k,
    "Q3_K": row_q3_k,
    "Q4_K": row_q4_k,
    "Q5_K": row_q5_k,
    "Q6_K": row_q6_k,
}


def scalar_dequantize(name: str, blocks: np.ndarray) -> np.ndarray:
    out = []
    for block in blocks:
        out += SCALAR[name](bytes(block))
    return np.array(out, dtype=np.float32)


# --- main ------------------------------------------------------------------------------------


def versions() -> dict:
    v = {"python": platform.python_version()}
    for p in ("gguf", "numpy", "safetensors"):
        v[p] = importlib.metadata.version(p)
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent.parent / "fixtures/golden"))
    args = ap.parse_args()

    tensors: dict = {}
    meta: dict = {
        "description": "Raw ggml blocks and their dequantisation by the gguf package "
        "(gguf.quants.dequantize, llama.cpp's gguf-py), made by tools/golden_gguf_kquants.py; "
        "checked bit-for-bit by plugins/gguf/tests/kquants.rs.",
        "versions": versions(),
        "tensors_file": "gguf_kquants.safetensors",
        "n_blocks": N_BLOCKS,
        "kinds": {
            "quantized": "seeded N(0,1) float32 (one scale per block: "
            + ", ".join(str(s) for s in QUANTIZED_SCALES)
            + ") quantised by gguf.quants.quantize (seed + 2000); only where gguf has a quantiser",
            "random": "seeded uniform random bytes, f16 fields overwritten with finite f16 "
            "sign*U[1,2)*2^e, e in [-20, 4] (seed)",
            "edge": "all-zero bytes; all-0xFF with f16 fields 65504; all-0xFF with f16 fields "
            "+2^-24 / -2^-24; random bytes (seed + 1000) with d = -0.0, m = -0.0 (Q5_1) / dmin = +0.0 (signed zeros)",
        },
        "types": {},
    }
    for name, (seed, f16_offsets) in TYPES.items():
        qtype = GGMLQuantizationType[name]
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        kinds = {"random": random_blocks(qtype, seed, f16_offsets), "edge": edge_blocks(qtype, seed, f16_offsets)}
        q = quantized_blocks(qtype, seed)
        if q is not None:
            kinds = {"quantized": q, **kinds}
        entry = {
            "ggml_type_id": int(qtype.value),
            "block_size": block_size,
            "type_size": type_size,
            "seed": seed,
            "f16_field_offsets": f16_offsets,
            "has_gguf_quantizer": q is not None,
            "kinds": {},
        }
        for kind, blocks in kinds.items():
            assert blocks.dtype == np.uint8 and blocks.shape == (N_BLOCKS, type_size), (name, kind, blocks.shape)
            values = dequantize(blocks.reshape(-1), qtype).astype(np.float32, copy=False).reshape(-1)
            assert values.shape == (N_BLOCKS * block_size,)
            assert np.all(np.isfinite(values)), (name, kind)
            scalar = scalar_dequantize(name, blocks)
            diff = np.flatnonzero(values.view(np.uint32) != scalar.view(np.uint32))
            assert diff.size == 0, f"{name}.{kind}: gguf-py and the scalar ggml loop differ at {diff[:8]}"
            tensors[f"{name}.{kind}.bytes"] = np.ascontiguousarray(blocks)
            tensors[f"{name}.{kind}.values"] = np.ascontiguousarray(values)
            entry["kinds"][kind] = {
                "n_values": int(values.size),
                "n_negative_zero": int(np.sum(values.view(np.uint32) == 0x80000000)),
                "max_abs": float(np.max(np.abs(values))),
                "sum": float(np.sum(values, dtype=np.float64)),
            }
        meta["types"][name] = entry

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    st = out_dir / "gguf_kquants.safetensors"
    save_file(tensors, str(st), metadata={"source": "tools/golden_gguf_kquants.py"})
    os.chmod(st, 0o644)
    with open(out_dir / "gguf_kquants.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"wrote {st} ({st.stat().st_size} bytes, {len(tensors)} tensors) and gguf_kquants.json")


if __name__ == "__main__":
    main()
