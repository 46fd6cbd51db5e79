#!/usr/bin/env python3
"""Committed safetensors checkpoints written again in the other formats models ship in:
`pytorch_model.bin` (many Hub models, BioMedLM among them, ship only these) and GGUF with a
SentencePiece-style vocabulary (LLaMA-2 / Mistral / Gemma GGUFs):

    ~/.cache/cleft-golden-venv/bin/python tools/golden_checkpoint_formats.py
        # writes fixtures/golden/tiny-gpt2-bin/        config.json + pytorch_model.bin (float16)
        #        fixtures/golden/tiny-llama-linear-bin/ config.json + two float32 shards
        #                                              + pytorch_model.bin.index.json
        #        fixtures/golden/tiny-llama-linear-spm.gguf, tiny-qwen2.gguf

The files are what `torch.save(state_dict)` writes (the zip container of PyTorch >= 1.6), which is
what transformers' `save_pretrained(safe_serialization=False)` wrote: the same tensors as
`tiny-gpt2/model.safetensors` cast to float16 (so the reader's half-precision path is covered; a
test compares each value with the float32 value rounded to float16), and the tensors of
`tiny-llama-linear/model.safetensors` unchanged, split into two shards named by a `weight_map` as
transformers names them. One tensor of the GPT-2 file is stored as a non-contiguous view
(a transpose made contiguous again only logically), so the reader's strided gather is exercised.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "fixtures", "golden")


def fresh_dir(name):
    path = os.path.join(GOLDEN, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def gpt2_half():
    src = os.path.join(GOLDEN, "tiny-gpt2")
    out = fresh_dir("tiny-gpt2-bin")
    shutil.copy(os.path.join(src, "config.json"), out)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    state = {}
    for name in sorted(tensors):
        t = tensors[name]
        state[name] = t.to(torch.float16) if t.is_floating_point() else t
    # A strided tensor: the storage holds the transpose; the saved view is the original values.
    name = "h.0.attn.c_attn.weight"
    state[name] = state[name].t().contiguous().t()
    assert not state[name].is_contiguous()
    torch.save(state, os.path.join(out, "pytorch_model.bin"))
    return {"dir": "tiny-gpt2-bin", "tensors": len(state), "dtype": "float16", "strided": name}


def llama_sharded():
    src = os.path.join(GOLDEN, "tiny-llama-linear")
    out = fresh_dir("tiny-llama-linear-bin")
    shutil.copy(os.path.join(src, "config.json"), out)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"pytorch_model-00001-of-00002.bin": names[:half],
              "pytorch_model-00002-of-00002.bin": names[half:]}
    weight_map = {}
    total = 0
    for shard, keys in shards.items():
        torch.save({k: tensors[k] for k in keys}, os.path.join(out, shard))
        for k in keys:
            weight_map[k] = shard
            total += tensors[k].numel() * tensors[k].element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    return {"dir": "tiny-llama-linear-bin", "tensors": len(names), "dtype": "float32", "shards": 2}


def permute(w, n_head):
    """llama.cpp's Q/K row order (convert_hf_to_gguf.py `LlamaModel.permute`)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def write_gguf(src_dir, out_name, arch, permute_qk, rope_scaling_linear):
    """The checkpoint in `src_dir` as llama.cpp's converter writes it for `arch`: F32 tensors
    under llama.cpp names (Q/K rows permuted for `llama` only), `{arch}.*` hyper-parameters, RoPE
    scaling as `{arch}.rope.scaling.{type,factor}` when linear, and a SentencePiece vocabulary
    of byte pieces (`tokenizer.ggml.model = llama`: pieces, scores, token types)."""
    import gguf
    import numpy as np
    src = os.path.join(GOLDEN, src_dir)
    config = json.load(open(os.path.join(src, "config.json")))
    rope = config["rope_parameters"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    tensors = load_file(os.path.join(src, "model.safetensors"))
    path = os.path.join(GOLDEN, out_name)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(src_dir)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(rope["rope_theta"])
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    if rope_scaling_linear:
        assert rope["rope_type"] == "linear"
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    else:
        assert rope["rope_type"] == "default"
    vocab = config["vocab_size"]
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(vocab - 3)]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types([2, 3, 3] + [6] * (vocab - 3))  # unknown, control, byte
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    names = {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight"}
    modules = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
               "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for name in sorted(tensors):
        hf = name.removeprefix("model.")
        # bfloat16 weights (tiny-qwen2) widen to float32 exactly.
        w = tensors[name].float().numpy().astype(np.float32)
        if hf in names:
            writer.add_tensor(names[hf], w)
            continue
        _, layer, rest = hf.split(".", 2)
        module, suffix = rest.rsplit(".", 1)
        if permute_qk and module == "self_attn.q_proj" and suffix == "weight":
            w = permute(w, heads)
        elif permute_qk and module == "self_attn.k_proj" and suffix == "weight":
            w = permute(w, kv)
        writer.add_tensor(f"blk.{layer}.{modules[module]}.{suffix}", w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"file": out_name, "arch": arch, "tensors": len(tensors)}


def llama_gguf():
    """tiny-llama-linear as a LLaMA GGUF: Q/K permuted, linear RoPE scaling in the metadata."""
    return write_gguf("tiny-llama-linear", "tiny-llama-linear-spm.gguf", "llama", True, True)


def qwen2_gguf():
    """tiny-qwen2 as a Qwen2 GGUF: `qwen2.*` metadata, q/k/v biases, no Q/K permutation
    (llama.cpp permutes for LLaMA only)."""
    return write_gguf("tiny-qwen2", "tiny-qwen2.gguf", "qwen2", False, False)


def main():
    torch.manual_seed(0)
    made = [gpt2_half(), llama_sharded(), llama_gguf(), qwen2_gguf()]
    print(json.dumps({"made": made, "torch": torch.__version__, "python": sys.version.split()[0]},
                     indent=1))


if __name__ == "__main__":
    main()
