//! The split regexes transformers installs for `tokenizer.ggml.pre` values.

use crate::error::{GgufError, Result};

/// transformers' split regex for LLaMA-3 style vocabularies (`_LLAMA3_SPLIT`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// transformers' split regex for Qwen2 style vocabularies (`Qwen2Tokenizer`'s
/// `PRETOKENIZE_REGEX`): digits one by one.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values transformers splits with [`LLAMA3_SPLIT`].
const LLAMA3_PRE: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
];

/// `tokenizer.ggml.pre` values transformers splits with [`QWEN2_SPLIT`].
const QWEN2_PRE: &[&str] = &["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"];

/// `tokenizer.ggml.pre` values for which transformers installs a split regex this crate does not
/// implement (`GGUF_PRE_TOKENIZER_SPLITS`' Tekken, Qwen3.5 and GPT-4o patterns).
const UNSUPPORTED_PRE: &[&str] = &[
    "tekken",
    "qwen35",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "minimax-m2",
];

/// The split regex transformers' `set_split_regex` installs for `tokenizer.ggml.pre`, `None` for a
/// value it has no pattern for (the vocabulary's own pre-tokenizer is kept).
pub(super) fn split_regex(pre: Option<&str>) -> Result<Option<&'static str>> {
    let Some(pre) = pre else {
        return Ok(None);
    };
    if LLAMA3_PRE.contains(&pre) {
        Ok(Some(LLAMA3_SPLIT))
    } else if QWEN2_PRE.contains(&pre) {
        Ok(Some(QWEN2_SPLIT))
    } else if UNSUPPORTED_PRE.contains(&pre) {
        Err(GgufError::UnsupportedTokenizer(format!(
            "tokenizer.ggml.pre `{pre}` is not supported (supported: {}, {}; any other value, \
             or none, keeps the model's own pre-tokenizer, e.g. GPT-2's split for `gpt2`)",
            LLAMA3_PRE.join(", "),
            QWEN2_PRE.join(", ")
        )))
    } else {
        Ok(None)
    }
}
