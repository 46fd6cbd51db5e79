//! LLaMA-family causal text encoders for cleft (`type = "llama"`).
//!
//! HF `LlamaModel` (SmolLM2, meditron-style configs): RMSNorm, RoPE with θ from the config,
//! grouped-query attention, tied embeddings, and CLEFT's text pooling (the hidden state at the
//! first pad/EOS position after the last real token). Random initialisation, or weights from a
//! HF directory (`config.json` + safetensors) or a GGUF file (`weights = "model.gguf"`; Q4_0,
//! Q4_1, Q8_0, F16 and F32 tensors are dequantised, Q/K un-permuted like transformers, and the
//! tokenizer is built from the GGUF metadata).

pub mod load;
mod model;

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::contract::{Keyed, TextInput, refuse_explicit};
use cleft_core::registry::TextEncoderConfig;
use cleft_core::text::TextPooling;
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer};
use serde::{Deserialize, Serialize};

pub use load::{GgufSource, LoadOptions, llama_mapping, load_llama};
pub use model::{LlamaAttention, LlamaDecoderLayer, LlamaMlp, LlamaModel, Rotary};

/// LLaMA architecture (HF `LlamaConfig` names); deserialises a HF `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlamaArchitecture {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size `E`.
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Per-head size; `None` means `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Biases on Q/K/V/O.
    pub attention_bias: bool,
    /// Biases in the MLP.
    pub mlp_bias: bool,
    /// Activation (only `silu`).
    pub hidden_act: String,
    /// RoPE scaling (only `null`, the default RoPE, is supported).
    pub rope_scaling: Option<serde_json::Value>,
}

impl Default for LlamaArchitecture {
    fn default() -> Self {
        Self {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: 32,
            head_dim: None,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: "silu".into(),
            rope_scaling: None,
        }
    }
}

impl LlamaArchitecture {
    /// Per-head size.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Checks the combination is one this implementation computes exactly.
    pub fn validate(&self) -> Result<(), CleftError> {
        let (heads, kv) = (self.num_attention_heads, self.num_key_value_heads);
        if heads == 0 || kv == 0 || heads % kv != 0 || !self.head_dim().is_multiple_of(2) {
            return Err(CleftError::Invalid(format!(
                "LLaMA needs num_attention_heads ({heads}) divisible by num_key_value_heads ({kv}) \
                 and an even head_dim ({})",
                self.head_dim()
            )));
        }
        if self.hidden_act != "silu" || self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(CleftError::Invalid(format!(
                "LLaMA with hidden_act {:?} or rope_scaling {:?} is not supported (silu, none)",
                self.hidden_act, self.rope_scaling
            )));
        }
        Ok(())
    }
}

/// The `[text] type = "llama"` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlamaConfig {
    /// A GGUF file or a HF directory (`config.json` + safetensors); it sets the architecture, so
    /// a size field next to it is an error naming both keys.
    pub weights: Option<PathBuf>,
    /// Keep random values for parameters missing from `weights` instead of failing.
    pub allow_missing: bool,
    /// `tokenizer.json`; default: from the GGUF metadata, `weights/tokenizer.json`, or the
    /// built-in word vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// Pad/EOS token of `tokenizer.json` (LLaMA-2: `</s>`; SmolLM2: `<|im_end|>`).
    pub pad_token: String,
    /// Vocabulary size (at least the tokenizer's).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Text pooling (`first_pad` is CLEFT's).
    pub pooling: TextPooling,
    /// Maximum number of real tokens per text.
    pub max_len: usize,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        Self {
            weights: None,
            allow_missing: false,
            tokenizer: None,
            pad_token: "</s>".into(),
            vocab_size: 0,
            hidden_size: 64,
            intermediate_size: 172,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            pooling: TextPooling::FirstPad,
            max_len: 64,
        }
    }
}

impl LlamaConfig {
    /// The architecture of a randomly initialised model.
    pub fn architecture(&self) -> LlamaArchitecture {
        LlamaArchitecture {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            ..LlamaArchitecture::default()
        }
    }
}

/// The architecture fields that a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 8] = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rms_norm_eps",
    "rope_theta",
];

#[typetag::serde(name = "llama")]
impl TextEncoderConfig for LlamaConfig {
    fn input(&self) -> Result<Option<TextInput>, CleftError> {
        if self.weights.is_some() {
            refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
        }
        // RoPE: no learned position table to run out of.
        Ok(Some(TextInput {
            max_len: Keyed::new(self.max_len, "text.max_len"),
            positions: None,
            trailing: 1,
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn TextEncoder>, CleftError> {
        if self.weights.is_some() {
            refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
        }
        let tokenizer: Option<Arc<dyn TextTokenizer>> = match &self.tokenizer {
            Some(path) => Some(Arc::new(cleft_gpt::HfTokenizer::from_file(
                path,
                &self.pad_token,
            )?)),
            None => None,
        };
        let model = match &self.weights {
            Some(path) => {
                let options = LoadOptions {
                    pooling: self.pooling,
                    max_len: self.max_len,
                    allow_missing: self.allow_missing,
                    pad_token: self.pad_token.clone(),
                };
                load_llama(path, tokenizer, &options, device)?.0
            }
            None => {
                let arch = self.architecture();
                arch.validate()?;
                let tokenizer =
                    tokenizer.unwrap_or_else(|| Arc::new(cleft_gpt::HfTokenizer::builtin_words()));
                LlamaModel::init(&arch, tokenizer, self.pooling, self.max_len, device)
            }
        };
        Ok(Component::<dyn TextEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Text,
    "llama",
    "LLaMA-family decoder (RMSNorm, RoPE, GQA; HF safetensors or GGUF weights), CLEFT first-pad pooling",
    LlamaConfig,
    claims = ["llama", "gguf:llama"]
);
