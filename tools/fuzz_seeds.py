#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/corpus/<target>/), from real files and small valid
files in the real formats. Standard library only; run from anywhere:

    python3 tools/fuzz_seeds.py

- gguf: GGUF v3 files written here (llama architecture hyper-parameters, a byte-level BPE
  `gpt2` tokenizer with merges, special-token ids and token types; tensors in F32, F16, Q8_0,
  Q4_0 and Q4_1 with real blocks), one with a custom alignment and one without a tokenizer;
- safetensors: the committed golden safetensors files under 40 KB, plus one with F16 / BF16 /
  I64 tensors and metadata;
- peft_adapter: the committed HF-PEFT-made adapters of the tiny GPT-2 (LoRA, IA3, prefix,
  prompt tuning, DoRA) in the harness's layout (2-byte little-endian length of
  adapter_config.json, the JSON, then adapter_model.safetensors);
- config: every TOML under configs/;
- csv: CheXpert-format CSVs as the data set ships them and an image-text CSV;
- image: a tiny DICOM (explicit VR little endian, 16-bit MONOCHROME1 with a VOI window and a
  rescale), a tiny 8-bit DICOM without preamble extension, PNGs (grey 8 / 16 bit, RGB).
"""
import json
import shutil
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"


def clean(target: str) -> Path:
    d = OUT / target
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


# ---------------------------------------------------------------- GGUF
def gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10


def kv_value(ty: int, v) -> bytes:
    if ty == U32:
        return struct.pack("<I", v)
    if ty == I32:
        return struct.pack("<i", v)
    if ty == F32:
        return struct.pack("<f", v)
    if ty == BOOL:
        return struct.pack("<?", v)
    if ty == STRING:
        return gguf_str(v)
    if ty == U64:
        return struct.pack("<Q", v)
    raise ValueError(ty)


def kv(key: str, ty: int, v, elem: int | None = None) -> bytes:
    out = gguf_str(key) + struct.pack("<I", ty)
    if ty == ARRAY:
        out += struct.pack("<IQ", elem, len(v)) + b"".join(kv_value(elem, x) for x in v)
    else:
        out += kv_value(ty, v)
    return out


def f16(x: float) -> bytes:
    return struct.pack("<e", x)


def byte_level_tokens() -> list[str]:
    """GPT-2's byte → unicode table, as the 256 base tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def gguf_file(alignment: int | None, tokenizer: bool) -> bytes:
    kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, "cleft fuzz seed"),
        kv("llama.block_count", U32, 1),
        kv("llama.context_length", U32, 64),
        kv("llama.embedding_length", U32, 32),
        kv("llama.feed_forward_length", U32, 64),
        kv("llama.attention.head_count", U32, 4),
        kv("llama.attention.head_count_kv", U32, 2),
        kv("llama.rope.freq_base", F32, 10000.0),
        kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
    ]
    if alignment is not None:
        kvs.append(kv("general.alignment", U32, alignment))
    if tokenizer:
        base = byte_level_tokens()
        merges = ["Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "o n", "Ġ c"]
        tokens = base + [m.replace(" ", "") for m in merges] + ["<|endoftext|>", "<|im_start|>"]
        types = [1] * (len(tokens) - 2) + [3, 3]
        kvs += [
            kv("tokenizer.ggml.model", STRING, "gpt2"),
            kv("tokenizer.ggml.pre", STRING, "smollm"),
            kv("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
            kv("tokenizer.ggml.token_type", ARRAY, types, I32),
            kv("tokenizer.ggml.merges", ARRAY, merges, STRING),
            kv("tokenizer.ggml.bos_token_id", U32, len(tokens) - 2),
            kv("tokenizer.ggml.eos_token_id", U32, len(tokens) - 2),
            kv("tokenizer.ggml.padding_token_id", U32, len(tokens) - 2),
            kv("tokenizer.ggml.add_bos_token", BOOL, False),
        ]
    align = alignment or 32
    # (name, dims (ggml order), type, bytes)
    q8 = f16(0.05) + bytes((i * 7 - 100) & 0xFF for i in range(32))
    q4_0 = f16(0.1) + bytes(((i * 3) & 0xF) | (((i * 5 + 1) & 0xF) << 4) for i in range(16))
    q4_1 = f16(0.1) + f16(-0.4) + bytes(((i * 7) & 0xF) | (((i + 9) & 0xF) << 4) for i in range(16))
    tensors = [
        ("token_embd.weight", [32, 2], 0, b"".join(struct.pack("<f", i / 64 - 0.5) for i in range(64))),
        ("blk.0.attn_norm.weight", [32], 1, b"".join(f16(1 + i / 100) for i in range(32))),
        ("blk.0.attn_q.weight", [32, 2], 8, q8 * 2),
        ("blk.0.attn_k.weight", [32, 1], 2, q4_0),
        ("blk.0.ffn_up.weight", [32, 1], 3, q4_1),
    ]
    infos, data = b"", b""
    for name, dims, ty, raw in tensors:
        while len(data) % align:
            data += b"\0"
        infos += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(
            struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, len(data))
        data += raw
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    while len(head) % align:
        head += b"\0"
    return head + data


def gguf_seeds():
    d = clean("gguf")
    (d / "llama-gpt2-tokenizer.gguf").write_bytes(gguf_file(None, True))
    (d / "alignment-64.gguf").write_bytes(gguf_file(64, True))
    (d / "no-tokenizer.gguf").write_bytes(gguf_file(None, False))


# ---------------------------------------------------------------- safetensors
def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    d = clean("safetensors")
    for path in sorted((ROOT / "fixtures" / "golden").rglob("*.safetensors")):
        if path.stat().st_size <= 40_000:
            name = str(path.relative_to(ROOT / "fixtures" / "golden")).replace("/", "__")
            shutil.copy(path, d / name)
    (d / "dtypes.safetensors").write_bytes(safetensors_bytes({
        "a.weight": ("F16", [2, 3], b"".join(f16(i / 4) for i in range(6))),
        "a.bias": ("BF16", [3], b"".join(struct.pack("<f", i + 0.5)[2:] for i in range(3))),
        "ids": ("I64", [4], b"".join(struct.pack("<q", i) for i in range(4))),
        "scalar": ("F32", [], struct.pack("<f", 2.5)),
    }, {"format": "pt"}))


# ---------------------------------------------------------------- PEFT adapters
def peft_seeds():
    d = clean("peft_adapter")
    for name in ["tiny-gpt2-lora", "tiny-gpt2-ia3", "tiny-gpt2-prefix", "tiny-gpt2-prompt",
                 "tiny-gpt2-dora"]:
        src = ROOT / "fixtures" / "golden" / name
        config = (src / "adapter_config.json").read_bytes()
        weights = (src / "adapter_model.safetensors").read_bytes()
        (d / name).write_bytes(struct.pack("<H", len(config)) + config + weights)


# ---------------------------------------------------------------- configs
def config_seeds():
    d = clean("config")
    for path in sorted((ROOT / "configs").rglob("*.toml")):
        shutil.copy(path, d / str(path.relative_to(ROOT / "configs")).replace("/", "__"))


# ---------------------------------------------------------------- CSV
FINDINGS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
            "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
            "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]


def csv_seeds():
    d = clean("csv")
    head = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(FINDINGS)
    rows = []
    for i in range(12):
        values = [""] * len(FINDINGS)
        values[[2, 5, 6, 8, 10][i % 5]] = "1.0"
        values[(i * 3) % len(FINDINGS)] = ["0.0", "-1.0", ""][i % 3] if values[(i * 3) % len(FINDINGS)] == "" else "1.0"
        view = "Frontal" if i % 4 else "Lateral"
        # img<N>.png: the placeholders the csv harness creates (images are not decoded there)
        rows.append(f"img{i}.png,"
                    f"{'Female' if i % 2 else 'Male'},{40 + i},{view},{'AP' if i % 3 else 'PA'},"
                    + ",".join(values))
    (d / "chexpert-train.csv").write_text(head + "\n" + "\n".join(rows) + "\n")
    report = head + ",Report\n" + "\n".join(
        r + f',"heart size is {"enlarged" if i % 2 else "normal"}, no ""effusion"""'
        for i, r in enumerate(rows)) + "\n"
    (d / "chexpert-report.csv").write_text(report)
    (d / "image-text.csv").write_text(
        "path,text,Cardiomegaly,Edema\n"
        "img0.png,enlarged heart,1,0\n"
        "img1.png,\"edema, mild\",0,1\n"
        "img2.png,normal study,,\n")


# ---------------------------------------------------------------- images
def png(width: int, height: int, colour: int, depth: int, pixels: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    channels = {0: 1, 2: 3}[colour]
    row = width * channels * depth // 8
    raw = b"".join(b"\0" + pixels[y * row:(y + 1) * row] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def dicom_element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" " if vr in (b"CS", b"DS", b"IS", b"LO", b"SH", b"UI", b"PN") else b"\0"
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
        return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value


def dicom(bits: int, photometric: str, window: bool, rescale: bool, signed: bool) -> bytes:
    ts = b"1.2.840.10008.1.2.1\0"
    meta_body = (dicom_element(0x0002, 0x0001, b"OB", b"\0\1")
                 + dicom_element(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.1.1\0")
                 + dicom_element(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6.7\0")
                 + dicom_element(0x0002, 0x0010, b"UI", ts))
    meta = dicom_element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta_body))) + meta_body
    w, h = 8, 6
    fmt = {8: "B", 16: "h" if signed else "H"}[bits]
    values = [((x * 37 + y * 11) % (200 if bits == 8 else 3000)) - (1000 if signed else 0)
              for y in range(h) for x in range(w)]
    pixels = struct.pack("<" + fmt * len(values), *values)
    body = (dicom_element(0x0008, 0x0060, b"CS", b"DX")
            + dicom_element(0x0028, 0x0002, b"US", struct.pack("<H", 1))
            + dicom_element(0x0028, 0x0004, b"CS", photometric.encode())
            + dicom_element(0x0028, 0x0010, b"US", struct.pack("<H", h))
            + dicom_element(0x0028, 0x0011, b"US", struct.pack("<H", w))
            + dicom_element(0x0028, 0x0100, b"US", struct.pack("<H", bits))
            + dicom_element(0x0028, 0x0101, b"US", struct.pack("<H", bits))
            + dicom_element(0x0028, 0x0102, b"US", struct.pack("<H", bits - 1))
            + dicom_element(0x0028, 0x0103, b"US", struct.pack("<H", 1 if signed else 0)))
    if window:
        body += (dicom_element(0x0028, 0x1050, b"DS", b"1200")
                 + dicom_element(0x0028, 0x1051, b"DS", b"2000"))
    if rescale:
        body += (dicom_element(0x0028, 0x1052, b"DS", b"-1024")
                 + dicom_element(0x0028, 0x1053, b"DS", b"1"))
    body += dicom_element(0x7FE0, 0x0010, b"OW" if bits == 16 else b"OB", pixels)
    return b"\0" * 128 + b"DICM" + meta + body


def image_seeds():
    d = clean("image")
    (d / "mono1-16bit-window.dcm").write_bytes(dicom(16, "MONOCHROME1", True, True, False))
    (d / "mono2-signed.dcm").write_bytes(dicom(16, "MONOCHROME2", False, False, True))
    (d / "mono2-8bit.dcm").write_bytes(dicom(8, "MONOCHROME2", True, False, False))
    (d / "grey8.png").write_bytes(png(5, 4, 0, 8, bytes(range(0, 200, 10))))
    (d / "grey16.png").write_bytes(png(3, 2, 0, 16, b"".join(struct.pack(">H", i * 9000) for i in range(6))))
    (d / "rgb.png").write_bytes(png(2, 2, 2, 8, bytes(range(0, 240, 20))))


def main():
    gguf_seeds()
    safetensors_seeds()
    peft_seeds()
    config_seeds()
    csv_seeds()
    image_seeds()
    for target in sorted(OUT.iterdir()):
        files = list(target.iterdir())
        print(f"{target.name:13} {len(files):3} seeds, {sum(f.stat().st_size for f in files):8} bytes")


if __name__ == "__main__":
    main()
