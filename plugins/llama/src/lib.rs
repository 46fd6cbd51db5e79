//! LLaMA-family causal text encoders for cleft (`type = "llama"`).
//!
//! One decoder for the HF families that share LLaMA's layout, told apart by `config.json`'s
//! `model_type`:
//! - `llama`: LLaMA 2 and 3.x, SmolLM2, meditron-style configs; RoPE with θ and `rope_scaling`
//!   (`linear`, `llama3`) from the config, tied or untied embeddings, optional biases
//!   (`attention_bias`, `mlp_bias`);
//! - `qwen2`: Qwen2 / Qwen2.5, biases on the query, key and value projections only;
//! - `mistral`: Mistral / BioMistral; sliding-window attention is exact when every sequence fits
//!   the window, which the contracts check (`text.max_len` and virtual tokens against
//!   `sliding_window`), and refused otherwise.
//!
//! Gemma 3's text decoder (Gemma 3, MedGemma) differs in more than options and is its own
//! component, `type = "gemma3"` ([`gemma3`]), sharing RoPE, masks and PEFT plumbing.
//!
//! RMSNorm, grouped-query attention, SiLU-gated MLP, and CLEFT's text pooling (the hidden state at
//! the first pad/EOS position after the last real token). Random initialisation, or weights from a
//! HF directory (`config.json` + single or sharded safetensors or `pytorch_model.bin`, f32 / f16 /
//! bf16) or a GGUF file (`weights = "model.gguf"`; F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
//! the k-quants Q2_K to Q6_K are dequantised, Q/K un-permuted like transformers, and the tokenizer
//! is built from the GGUF metadata unless `text.tokenizer` is given).

pub mod gemma3;
mod gemma3_arch;
mod gemma3_config;
pub mod load;
mod model;
pub mod rope;

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::contract::{Keyed, TextInput, refuse_explicit};
use cleft_core::registry::TextEncoderConfig;
use cleft_core::text::TextPooling;
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer};
use serde::{Deserialize, Serialize};

pub use gemma3::{Gemma3Architecture, Gemma3Model};
pub use gemma3_config::{
    Gemma3Config, gemma3_architecture, gemma3_mapping, load_gemma3, load_gemma3_with_bos,
};
pub use load::{GgufSource, LoadOptions, hf_name_for, llama_mapping, load_llama};
pub use model::{LlamaAttention, LlamaDecoderLayer, LlamaMlp, LlamaModel, Rotary};
pub use rope::{Rope, RopeScaling};

/// The HF `model_type`s this decoder implements.
pub const MODEL_TYPES: [&str; 3] = ["llama", "qwen2", "mistral"];

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
    /// RoPE scaling, transformers-4 layout (`rope_type` `linear` or `llama3`; see [`Rope`]).
    pub rope_scaling: Option<serde_json::Value>,
    /// RoPE θ and scaling, transformers-5 layout (takes precedence over `rope_theta` and
    /// `rope_scaling` when present).
    pub rope_parameters: Option<serde_json::Value>,
    /// HF family: `llama`, `qwen2` or `mistral` (see [`MODEL_TYPES`]).
    pub model_type: String,
    /// Sliding attention window (Mistral; Qwen2 when `use_sliding_window`).
    pub sliding_window: Option<usize>,
    /// Qwen2: whether `sliding_window` applies.
    pub use_sliding_window: bool,
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
            rope_parameters: None,
            model_type: "llama".into(),
            sliding_window: None,
            use_sliding_window: false,
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
        if !MODEL_TYPES.contains(&self.model_type.as_str()) {
            return Err(CleftError::Invalid(format!(
                "model_type {:?} is not one this decoder implements; supported: {}",
                self.model_type,
                MODEL_TYPES.join(", ")
            )));
        }
        if self.hidden_act != "silu" {
            return Err(CleftError::Invalid(format!(
                "{} with hidden_act {:?} is not supported (silu)",
                self.model_type, self.hidden_act
            )));
        }
        self.rope("config.json")?;
        Ok(())
    }

    /// RoPE θ and scaling from whichever `config.json` layout the checkpoint uses.
    pub fn rope(&self, context: &str) -> Result<Rope, CleftError> {
        Rope::from_hf(
            Some(self.rope_theta),
            self.rope_scaling.as_ref(),
            self.rope_parameters.as_ref(),
            self.rope_theta,
            context,
        )
    }

    /// Biases on the query, key and value projections: `attention_bias`, or always for Qwen2.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type == "qwen2"
    }

    /// Bias on the output projection: `attention_bias` (never for Qwen2).
    pub fn o_bias(&self) -> bool {
        self.attention_bias && self.model_type != "qwen2"
    }

    /// The window every sequence must fit for attention to be exact, when the family has one.
    pub fn attention_window(&self) -> Option<usize> {
        match self.model_type.as_str() {
            "mistral" => self.sliding_window,
            "qwen2" if self.use_sliding_window => self.sliding_window,
            _ => None,
        }
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
    /// built-in word vocabulary. A `tokenizer.json` whose post-processor puts one special token
    /// first (LLaMA-2's `<s>`, Llama 3's `<|begin_of_text|>`) starts every text with it, as
    /// transformers encodes by default.
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
    /// HF family of a model without `weights`: `llama`, `qwen2` (q/k/v biases) or `mistral`
    /// (with `sliding_window`).
    pub model_type: String,
    /// Per-head size; default `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// Biases on the attention projections (LLaMA's `attention_bias`).
    pub attention_bias: bool,
    /// RoPE scaling as HF writes it, e.g. `{ rope_type = "llama3", factor = 32.0,
    /// low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position_embeddings = 8192 }`.
    pub rope_scaling: Option<serde_json::Value>,
    /// Sliding attention window (`mistral`).
    pub sliding_window: Option<usize>,
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
            model_type: "llama".into(),
            head_dim: None,
            attention_bias: false,
            rope_scaling: None,
            sliding_window: None,
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
            model_type: self.model_type.clone(),
            head_dim: self.head_dim,
            attention_bias: self.attention_bias,
            rope_scaling: self.rope_scaling.clone(),
            sliding_window: self.sliding_window,
            ..LlamaArchitecture::default()
        }
    }
}

/// The architecture fields that a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 13] = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rms_norm_eps",
    "rope_theta",
    "model_type",
    "head_dim",
    "attention_bias",
    "rope_scaling",
    "sliding_window",
];

#[typetag::serde(name = "llama")]
impl TextEncoderConfig for LlamaConfig {
    fn input(&self) -> Result<Option<TextInput>, CleftError> {
        if self.weights.is_some() {
            refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
        }
        // RoPE has no learned position table to run out of; a sliding window (Mistral) is the
        // one bound: attention is exact only while every sequence fits it.
        let window = match &self.weights {
            Some(dir) if dir.is_dir() => {
                let arch: LlamaArchitecture = cleft_core::weights::parse_hf_config(dir)?;
                arch.attention_window().map(|w| {
                    Keyed::new(
                        w,
                        format!(
                            "text.weights → {}/config.json sliding_window",
                            dir.display()
                        ),
                    )
                })
            }
            Some(_) => None,
            None => self
                .architecture()
                .attention_window()
                .map(|w| Keyed::new(w, "text.sliding_window")),
        };
        Ok(Some(TextInput {
            max_len: Keyed::new(self.max_len, "text.max_len"),
            positions: window,
            trailing: 1,
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn TextEncoder>, CleftError> {
        if self.weights.is_some() {
            refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
        }
        let tokenizer: Option<Arc<dyn TextTokenizer>> = match &self.tokenizer {
            Some(path) => Some(Arc::new(
                cleft_tokenizer::HfTokenizer::from_file(path, &self.pad_token)?
                    .with_post_processor_bos()?,
            )),
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
                let tokenizer = tokenizer
                    .unwrap_or_else(|| Arc::new(cleft_tokenizer::HfTokenizer::builtin_words()));
                LlamaModel::init(&arch, tokenizer, self.pooling, self.max_len, device)?
            }
        };
        Ok(Component::<dyn TextEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Text,
    "llama",
    "LLaMA-family decoder: LLaMA 2/3, Qwen2, Mistral (RMSNorm, RoPE, GQA; HF safetensors or GGUF weights), CLEFT first-pad pooling",
    LlamaConfig,
    claims = ["llama", "qwen2", "mistral", "gguf:llama", "gguf:qwen2"]
);
