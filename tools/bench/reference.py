#!/usr/bin/env python3
"""PyTorch reference of a cleft CLIP model, for side-by-side throughput benchmarks.

Reads a cleft TOML config and builds the same architecture with PyTorch + transformers + peft:

* ``[vision] type = "vit"``: HF ``Dinov2Model`` (``Dinov2WithRegistersModel`` with registers),
  eager attention; ``prenorm_mean`` pooling = mean over ALL tokens (CLS, registers, patches) of
  the last block's output before the final layernorm (cleft ``plugins/vit/src/model.rs``);
* ``[text] type = "gpt2"``: HF ``GPT2Model``, eager attention, every dropout 0, vocabulary =
  max(tokenizer size, ``vocab_size``) as cleft sizes ``wte``; ``first_pad`` pooling = the state
  after ``ln_f`` at index ``sum(mask)``;
* ``[peft] type = "lora"``: HF PEFT ``LoraConfig(fan_in_fan_out=True)`` via ``get_peft_model``
  (base frozen, only ``lora_A`` / ``lora_B`` train);
* ``Linear`` projections to ``projection.dim``, L2 normalisation, CLIP InfoNCE with a learnable
  0-d logit scale, ``CE(s) + CE(sᵀ)`` (sum) or their mean;
* AdamW with cleft's two groups (``optimizer_for``): no weight decay on 1-D parameters (biases,
  norms, LayerScale), decay on everything else including the logit scale.

Modes (``--what``):

* ``train``: one stage-1 step = zero grads, forward, loss, backward, gradient norm read back
  (``.item()``), optimizer step, ``loss.item()``; median samples/s over ``--steps`` after
  ``--warmup``;
* ``zeroshot``: images/s of inference (``no_grad``): encode + project + normalise images, logits
  against K = 5 precomputed class embeddings, softmax, read back;
* ``text``: texts/s of the text tower + projection + normalisation (``no_grad``).

Parameter counts per component are printed in ``cleft params`` layout; with ``--cleft BIN`` (or
``$CLEFT_BIN``) the script runs ``BIN params CONFIG`` and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[2]
BUILTIN_WORDS = REPO / "plugins" / "gpt" / "src" / "words.txt"
BUILTIN_EOS, BUILTIN_UNK = "<|endoftext|>", "<|unk|>"
# plugins/synthetic/src/lib.rs: FINDINGS and `caption`
SYNTHETIC_FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
SYNTHETIC_CAPTION = "this is a chest x ray of a patient with {}"


# ----------------------------------------------------------------------------------------------
# Config: the subset of cleft's schema this reference mirrors, with cleft's defaults.
# ----------------------------------------------------------------------------------------------

def fail(message: str) -> NoReturn:
    print(f"reference.py: {message}", file=sys.stderr)
    sys.exit(2)


VIT_DEFAULTS = dict(  # plugins/vit/src/lib.rs VitConfig::default
    preset=None, image_size=32, patch_size=8, num_channels=1, hidden_size=64,
    num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4.0, num_register_tokens=0,
    layerscale_value=1.0, layer_norm_eps=1e-6, pooling="prenorm_mean",
    pos_embed_interpolation="bicubic", weights=None, allow_missing=False, input_size=None,
)
GPT2_DEFAULTS = dict(  # plugins/gpt/src/lib.rs Gpt2Config::default
    vocab_size=0, n_positions=128, n_embd=64, n_layer=2, n_head=4, n_inner=None,
    layer_norm_epsilon=1e-5, scale_attn_by_inverse_layer_idx=False, pooling="first_pad",
    max_len=64, tokenizer=None, pad_token=BUILTIN_EOS, weights=None, allow_missing=False,
)
LORA_DEFAULTS = dict(  # plugins/peft/src/lora.rs LoraConfig::default
    r=8, lora_alpha=32.0, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=None,
    bias="none", use_rslora=False, modules_to_save=[], implementation="activation",
)
CLIP_DEFAULTS = dict(  # plugins/objectives/src/clip.rs ClipLossConfig::default
    reduction="sum", init_logit_scale=2.659260036932778, max_logit_scale=None, learnable=True,
)
TRAIN_DEFAULTS = dict(  # cleft-core/src/config.rs TrainConfig::default (the fields used here)
    batch_size=72, lr=4e-5, weight_decay=0.1, betas=[0.9, 0.999], epsilon=1e-8,
    grad_clip_norm=None, grad_accumulation=1, max_text_len=None, precision="f32",
)


def section(raw: dict, name: str, defaults: dict) -> dict:
    values = dict(defaults)
    values.update({k: v for k, v in raw.get(name, {}).items() if k != "type"})
    return values


def resolve_vit(v: dict) -> dict:
    """VitConfig::resolved: a preset replaces the size fields."""
    preset = v.get("preset")
    if preset is None:
        return v
    presets = {"vit-s14": (384, 6, 14, 0), "vit-b14-reg": (768, 12, 14, 4), "vit-b16": (768, 12, 16, 0)}
    if preset not in presets:
        fail(f"vision.preset = {preset!r} is unknown; presets: {', '.join(presets)}")
    hidden, heads, patch, registers = presets[preset]
    resolved = dict(VIT_DEFAULTS)
    resolved.update(
        image_size=518 if patch == 14 else 224,
        input_size=v.get("input_size") or (224 if patch == 14 else None),
        patch_size=patch, num_channels=3, hidden_size=hidden, num_hidden_layers=12,
        num_attention_heads=heads, num_register_tokens=registers, pooling=v["pooling"],
        pos_embed_interpolation=v["pos_embed_interpolation"],
    )
    return resolved


def builtin_vocab() -> list[str]:
    """HfTokenizer::builtin_words: EOS, UNK, then the word list, first occurrence wins."""
    vocab: dict[str, int] = {}
    for token in [BUILTIN_EOS, BUILTIN_UNK] + BUILTIN_WORDS.read_text().split():
        vocab.setdefault(token, len(vocab))
    return list(vocab)


def tokenizer_vocab_size(text: dict, config_dir: Path) -> tuple[int, str]:
    if text["tokenizer"] is None:
        return len(builtin_vocab()), "built-in word list"
    path = Path(text["tokenizer"])
    path = path if path.is_absolute() else config_dir / path
    try:
        from tokenizers import Tokenizer
    except ImportError:
        fail("text.tokenizer is set but the `tokenizers` package is missing")
    return Tokenizer.from_file(str(path)).get_vocab_size(True), str(path)


def builtin_token_count(text: str) -> int:
    """Tokens of `text` under the built-in tokenizer (lower-case, `\\w+|[^\\w\\s]+` pieces)."""
    return len(re.findall(r"\w+|[^\w\s]+", text.lower()))


def caption_lengths(cfg: dict) -> tuple[list[int], str]:
    """Real-token counts of the captions cleft would tokenise for this data set, if known."""
    max_len = cfg["max_text_len"]
    if cfg["data_type"] == "synthetic-cxr" and cfg["text"]["tokenizer"] is None:
        names = [n.lower() for n in SYNTHETIC_FINDINGS]
        sets = [[a] for a in names] + [[a, b] for i, a in enumerate(names) for b in names[i + 1:]]
        lengths = sorted({min(builtin_token_count(SYNTHETIC_CAPTION.format(", ".join(s))), max_len)
                          for s in sets})
        return lengths, "synthetic-cxr captions, built-in tokenizer"
    return list(range(1, max_len + 1)), f"text.max_len = {max_len}"


def load_config(path: Path) -> dict:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"{path}: {e}")
    types = {s: raw.get(s, {}).get("type") for s in ("vision", "text", "peft", "objective", "data")}
    if types["vision"] != "vit":
        fail(f"vision.type = {types['vision']!r}: only `vit` is mirrored")
    if types["text"] != "gpt2":
        fail(f"text.type = {types['text']!r}: only `gpt2` is mirrored")
    if types["peft"] not in (None, "lora"):
        fail(f"peft.type = {types['peft']!r}: only `lora` (or no [peft]) is mirrored")
    if types["objective"] != "clip":
        fail(f"objective.type = {types['objective']!r}: only `clip` is mirrored")
    vision = resolve_vit(section(raw, "vision", VIT_DEFAULTS))
    text = section(raw, "text", GPT2_DEFAULTS)
    lora = section(raw, "peft", LORA_DEFAULTS) if types["peft"] == "lora" else None
    clip = section(raw, "objective", CLIP_DEFAULTS)
    train = section(raw, "train", TRAIN_DEFAULTS)
    projection = section(raw, "projection", dict(dim=512, bias=True))
    evaluation = section(raw, "eval", dict(batch_size=64, prompt_template=SYNTHETIC_CAPTION))
    for what, value in (("vision.weights", vision["weights"]), ("text.weights", text["weights"])):
        if value is not None:
            fail(f"{what} is set: the reference builds random weights only")
    if vision["pooling"] not in ("prenorm_mean", "cls", "mean"):
        fail(f"vision.pooling = {vision['pooling']!r} is unknown")
    if text["pooling"] not in ("first_pad", "last_token", "mean", "cls"):
        fail(f"text.pooling = {text['pooling']!r} is unknown")
    if lora is not None:
        if lora["implementation"] != "activation":
            fail("peft.implementation = reparameterized is not mirrored (HF PEFT is the activation path)")
        if lora["bias"] != "none" or lora["modules_to_save"]:
            fail("peft.bias / peft.modules_to_save are not mirrored")
    if train["precision"] != "f32":
        fail("train.precision other than f32 is not mirrored")
    if train["grad_accumulation"] != 1:
        fail("train.grad_accumulation > 1 is not mirrored")
    vocab, vocab_source = tokenizer_vocab_size(text, path.parent)
    return dict(
        path=str(path), vision=vision, text=text, lora=lora, clip=clip, train=train,
        projection=projection, eval=evaluation, data_type=types["data"],
        vocab_size=max(vocab, text["vocab_size"]), vocab_source=vocab_source,
        max_text_len=train["max_text_len"] or text["max_len"],
        input_size=vision["input_size"] or vision["image_size"],
    )


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

def build_model(cfg: dict):
    import torch
    from torch import nn
    import torch.nn.functional as F
    from transformers import Dinov2Config, Dinov2Model, GPT2Config, GPT2Model

    v, t = cfg["vision"], cfg["text"]
    vision_kwargs = dict(
        image_size=v["image_size"], patch_size=v["patch_size"], num_channels=v["num_channels"],
        hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"], mlp_ratio=4,
        layerscale_value=v["layerscale_value"], layer_norm_eps=v["layer_norm_eps"],
        hidden_act="gelu", qkv_bias=True, use_swiglu_ffn=False, drop_path_rate=0.0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager",
    )
    if v["num_register_tokens"] > 0:
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel
        vision = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
            num_register_tokens=v["num_register_tokens"], **vision_kwargs))
    else:
        vision = Dinov2Model(Dinov2Config(**vision_kwargs))
    # transformers 5 types `mlp_ratio` as int; cleft (and HF's MLP) size the hidden layer as
    # int(hidden_size · mlp_ratio), so a fractional ratio gets its fc1/fc2 replaced.
    mlp_hidden = int(v["hidden_size"] * v["mlp_ratio"])
    if mlp_hidden != 4 * v["hidden_size"]:
        for layer in vision.encoder.layer:
            layer.mlp.fc1 = nn.Linear(v["hidden_size"], mlp_hidden)
            layer.mlp.fc2 = nn.Linear(mlp_hidden, v["hidden_size"])

    text = GPT2Model(GPT2Config(
        vocab_size=cfg["vocab_size"], n_positions=t["n_positions"], n_embd=t["n_embd"],
        n_layer=t["n_layer"], n_head=t["n_head"], n_inner=t["n_inner"],
        layer_norm_epsilon=t["layer_norm_epsilon"],
        scale_attn_by_inverse_layer_idx=t["scale_attn_by_inverse_layer_idx"],
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        use_cache=False, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        attn_implementation="eager",
    ))
    if cfg["lora"] is not None:
        from peft import LoraConfig, get_peft_model
        lo = cfg["lora"]
        text = get_peft_model(text, LoraConfig(
            r=lo["r"], lora_alpha=lo["lora_alpha"], lora_dropout=lo["lora_dropout"],
            target_modules=lo["target_modules"], fan_in_fan_out=True, bias="none",
            use_rslora=lo["use_rslora"],
        ))

    clip = cfg["clip"]
    dim, bias = cfg["projection"]["dim"], cfg["projection"]["bias"]

    class ClipModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = vision
            self.text = text
            self.vision_projection = nn.Linear(v["hidden_size"], dim, bias=bias)
            self.text_projection = nn.Linear(t["n_embd"], dim, bias=bias)
            # cleft stores it as `[1]`; CLEFT's reference (and this) as 0-d; both are decayed.
            self.logit_scale = nn.Parameter(torch.tensor(float(clip["init_logit_scale"])),
                                            requires_grad=clip["learnable"])

        def scale(self):
            s = self.logit_scale
            if clip["max_logit_scale"] is not None:
                s = s.clamp(max=clip["max_logit_scale"])
            return s.exp()

        def encode_images(self, images):
            out = self.vision(pixel_values=images, output_hidden_states=True)
            pooling = v["pooling"]
            if pooling == "prenorm_mean":
                # hidden_states[-1] = the last block's output, before the final layernorm; the
                # mean runs over every token (CLS, registers, patches), as cleft's does.
                pooled = out.hidden_states[-1].mean(dim=1)
            elif pooling == "cls":
                pooled = out.last_hidden_state[:, 0]
            else:  # "mean": after the final norm
                pooled = out.last_hidden_state.mean(dim=1)
            return F.normalize(self.vision_projection(pooled), dim=-1, eps=1e-12)

        def encode_tokens(self, ids, mask):
            hidden = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            pooling = t["pooling"]
            if pooling == "first_pad":
                pooled = hidden[rows, mask.sum(dim=1)]
            elif pooling == "last_token":
                pooled = hidden[rows, mask.sum(dim=1) - 1]
            elif pooling == "cls":
                pooled = hidden[:, 0]
            else:
                w = mask.to(hidden.dtype).unsqueeze(-1)
                pooled = (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)
            return F.normalize(self.text_projection(pooled), dim=-1, eps=1e-12)

        def loss(self, images, ids, mask):
            """The objective and its logits `[B, B]`."""
            image, txt = self.encode_images(images), self.encode_tokens(ids, mask)
            logits = self.scale() * image @ txt.t()
            target = torch.arange(logits.shape[0], device=logits.device)
            loss = F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
            return (loss if clip["reduction"] == "sum" else loss / 2), logits

    return ClipModel()


COMPONENTS = ["vision", "text", "vision_projection", "text_projection", "objective"]


def param_budget(model) -> dict[str, tuple[int, int]]:
    """(total, trainable) per cleft component."""
    budget = {c: [0, 0] for c in COMPONENTS}
    for name, p in model.named_parameters():
        component = "objective" if name == "logit_scale" else name.split(".", 1)[0]
        budget[component][0] += p.numel()
        budget[component][1] += p.numel() if p.requires_grad else 0
    return {c: tuple(n) for c, n in budget.items()}


def print_budget(title: str, budget: dict[str, tuple[int, int]]) -> None:
    print(title)
    print(f"  {'component':<18} {'total':>15} {'trainable':>15}")
    for c, (total, trainable) in budget.items():
        print(f"  {c:<18} {total:>15,} {trainable:>15,}")
    total = sum(n[0] for n in budget.values())
    trainable = sum(n[1] for n in budget.values())
    print(f"  {'total':<18} {total:>15,} {trainable:>15,}")


def cleft_budget(binary: str, config: str) -> dict[str, tuple[int, int]]:
    """Parses `cleft params CONFIG` (component, type, total, trainable rows)."""
    out = subprocess.run([binary, "params", config], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stdout + out.stderr, file=sys.stderr)
        fail(f"`{binary} params {config}` exited with {out.returncode}")
    budget = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^\s+(\S+)\s+.*?\s([\d,]+)\s+([\d,]+)\s*$", line)
        if m:
            budget[m.group(1)] = (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
    if "total" not in budget:
        fail(f"cannot parse `{binary} params {config}`:\n{out.stdout}")
    return budget


def optimizer_for(model, train: dict):
    """cleft's optimizer_for: AdamW, no decay on 1-D parameters; the 0-d logit scale decays."""
    import torch
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim == 1 else decay).append(p)
    return torch.optim.AdamW(
        [dict(params=decay, weight_decay=train["weight_decay"]),
         dict(params=no_decay, weight_decay=0.0)],
        lr=train["lr"], betas=tuple(train["betas"]), eps=train["epsilon"],
    )


# ----------------------------------------------------------------------------------------------
# Inputs and timing
# ----------------------------------------------------------------------------------------------

def token_batch(batch: int, length: int, real_lengths: list[int], vocab: int, gen):
    """Right-padded ids/mask `[batch, length]`: every row has at least one pad (id 0, cleft's
    EOS) after its real tokens, and the longest row fills `length - 1` (cleft's batch length is
    the longest row + 1)."""
    import torch
    choices = [n for n in real_lengths if n <= length - 1] or [length - 1]
    picks = torch.randint(len(choices), (batch,), generator=gen)
    lengths = torch.tensor([choices[i] for i in picks.tolist()])
    lengths[0] = length - 1
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()
    ids = torch.randint(2, max(vocab, 3), (batch, length), generator=gen) * mask
    return ids, mask


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed(fn, steps: int, warmup: int, min_time: float) -> list[float]:
    """Per-call seconds of at least `steps` calls, continuing until they add up to `min_time`."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < steps or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--what", choices=["train", "zeroshot", "text"], default="train")
    ap.add_argument("--batch", type=int, help="default: train.batch_size (train), eval.batch_size")
    ap.add_argument("--text-len", type=int,
                    help="token positions per text incl. the pooled pad (default: cleft's batch "
                         "length for the data set's captions, else text.max_len + 1)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps / batches")
    ap.add_argument("--min-time", type=float, default=3.0,
                    help="keep timing past --steps until the timed steps add up to this many "
                         "seconds (short tiny steps are noisy)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps / batches first")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu",
                    help="torch device (`cuda`, `cuda:1`; default cpu); inputs are drawn on the "
                         "CPU and moved there before timing")
    ap.add_argument("--cleft", default=os.environ.get("CLEFT_BIN"),
                    help="cleft binary: check parameter parity with `cleft params` (env CLEFT_BIN)")
    ap.add_argument("--params-only", action="store_true", help="count parameters and exit")
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = ap.parse_args()

    cfg = load_config(args.config)
    wall_start = time.perf_counter()

    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)  # peft → transformers deprecations
    import torch
    import transformers
    import peft
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    import_rss = current_rss_mib()  # torch + transformers + peft loaded, no model yet
    versions = dict(python=platform.python_version(), torch=torch.__version__,
                    transformers=transformers.__version__, peft=peft.__version__)

    device = torch.device(args.device)
    model = build_model(cfg).to(device)
    budget = param_budget(model)
    params_total = sum(n[0] for n in budget.values())
    params_trainable = sum(n[1] for n in budget.values())
    print(f"config {cfg['path']}  (text vocab {cfg['vocab_size']}: {cfg['vocab_source']})")
    print_budget("PyTorch reference", budget)
    if args.cleft:
        theirs = cleft_budget(args.cleft, str(args.config))
        def pair(n):
            return "missing" if n is None else f"{n[0]:,} / {n[1]:,}"

        mismatches = [
            f"  {c}: reference {pair(budget[c])} (total / trainable), cleft {pair(theirs.get(c))}"
            for c in COMPONENTS if budget[c] != theirs.get(c)
        ]
        if (params_total, params_trainable) != theirs["total"]:
            mismatches.append(f"  total: reference {pair((params_total, params_trainable))} "
                              f"(total / trainable), cleft {pair(theirs['total'])}")
        if mismatches:
            print("parameter counts differ from `cleft params`:\n" + "\n".join(mismatches),
                  file=sys.stderr)
            return 1
        print(f"parameter parity with `{args.cleft} params`: ok "
              f"({params_total:,} total, {params_trainable:,} trainable)")
    if args.params_only:
        return 0

    v = cfg["vision"]
    size, channels = cfg["input_size"], v["num_channels"]
    default_batch = cfg["train"]["batch_size"] if args.what == "train" else cfg["eval"]["batch_size"]
    batch = args.batch or default_batch
    real_lengths, length_source = caption_lengths(cfg)
    text_len = args.text_len or (max(real_lengths) + 1)
    if text_len < 2 or text_len > cfg["text"]["n_positions"]:
        fail(f"--text-len {text_len} must be in 2..=text.n_positions ({cfg['text']['n_positions']})")
    if args.text_len is None:
        length_source = f"{length_source}: longest {max(real_lengths)} + 1 pad"
    shapes = []
    if args.what != "text":
        shapes.append(f"images [{batch}, {channels}, {size}, {size}]")
    if args.what != "zeroshot":
        shapes.append(f"text length {text_len} "
                      f"({length_source if args.text_len is None else '--text-len'})")
    print(f"mode {args.what}: batch {batch}, {', '.join(shapes)}, {torch.get_num_threads()} "
          f"threads, {args.warmup} warm-up + at least {args.steps} timed (and {args.min_time:g} s)")

    images = torch.randn(batch, channels, size, size, generator=gen).to(device)
    ids, mask = (x.to(device) for x in token_batch(batch, text_len, real_lengths,
                                                   cfg["vocab_size"], gen))

    if args.what == "train":
        model.train()
        optimizer = optimizer_for(model, cfg["train"])
        trainable = [p for p in model.parameters() if p.requires_grad]
        clip_norm = cfg["train"]["grad_clip_norm"]
        last = {}

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss, logits = model.loss(images, ids, mask)
            loss.backward()
            grads = [p.grad for p in trainable if p.grad is not None]
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
            if clip_norm is not None and norm > clip_norm:
                for g in grads:
                    g.mul_(clip_norm / norm)
            optimizer.step()
            # cleft also reads back the objective's metrics each step: i2t accuracy (of this
            # step's logits) and the logit scale
            accuracy = (logits.detach().argmax(1) == torch.arange(batch, device=device)).float().mean().item()
            last.update(loss=loss.item(), grad_norm=norm, i2t_acc=accuracy,
                        logit_scale=model.logit_scale.item())

        unit = "samples_per_sec"
    else:
        model.eval()
        if args.what == "zeroshot":
            with torch.no_grad():
                template = cfg["eval"]["prompt_template"]
                prompts = [template.replace("{}", n.lower()) for n in SYNTHETIC_FINDINGS]
                k_lengths = [min(builtin_token_count(p), cfg["max_text_len"]) for p in prompts]
                k_ids, k_mask = token_batch(len(prompts), max(k_lengths) + 1, k_lengths,
                                            cfg["vocab_size"], gen)
                classes = model.encode_tokens(k_ids.to(device), k_mask.to(device))

            def step():
                with torch.no_grad():
                    image = model.encode_images(images)
                    probs = torch.softmax(model.scale() * image @ classes.t(), dim=1)
                    probs.cpu().numpy().tolist()

            unit = "images_per_sec"
        else:
            def step():
                with torch.no_grad():
                    model.encode_tokens(ids, mask).cpu().numpy()

            unit = "texts_per_sec"
        last = {}

    load_before = os.getloadavg()[0]
    times = timed(step, args.steps, args.warmup, args.min_time)
    median = statistics.median(times)
    rate = batch / median
    result = {
        "what": args.what, "config": cfg["path"], "batch": batch, unit: rate,
        "median_s": median, "steps": len(times), "warmup": args.warmup,
        "step_times_s": [round(t, 6) for t in times],
        "peak_rss_mib": round(peak_rss_mib(), 1), "import_rss_mib": round(import_rss, 1),
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "params_total": params_total, "params_trainable": params_trainable,
        "image_shape": None if args.what == "text" else [batch, channels, size, size],
        "text_len": None if args.what == "zeroshot" else text_len,
        "versions": versions, "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
        "device": str(device),
        # GPU: the caching allocator's peak (host RSS then says little)
        "peak_device_mib": (round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                            if device.type == "cuda" else None),
        "wall_s": round(time.perf_counter() - wall_start, 2),
        # 1-minute load average before / after the timed loop: other work on the machine shows
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **last,
    }
    print(f"{unit.replace('_per_sec', '')}/s: {rate:.2f} (median step {median * 1e3:.1f} ms over "
          f"{len(times)}; min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})"
          + (f"; last loss {last['loss']:.4f}, grad norm {last['grad_norm']:.4f}" if last else ""))
    print(f"peak RSS {result['peak_rss_mib']:.0f} MiB ({result['import_rss_mib']:.0f} MiB of it "
          f"after the imports, before the model), {result['threads']} threads, "
          f"CPU {result['cpu']} ({result['logical_cpus']} logical), wall {result['wall_s']:.1f} s, "
          f"load {result['loadavg_1m'][0]} → {result['loadavg_1m'][1]}")
    print("versions " + ", ".join(f"{k} {val}" for k, val in versions.items()))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
