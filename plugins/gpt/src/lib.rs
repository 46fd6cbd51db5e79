//! GPT-2-family causal text encoders for cleft (`type = "gpt2"`).
//!
//! HF `GPT2Model` architecture (incl. BioMedLM's inverse-layer-index attention scaling) with
//! CLEFT's text pooling: the hidden state at the first pad/EOS position after the last real
//! token. Random initialisation with configurable sizes; the default tokenizer is a built-in
//! word-level radiology vocabulary, or any HF `tokenizer.json`.

pub mod load;
mod model;

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::contract::{Keyed, TextInput, refuse_explicit};
use cleft_core::registry::TextEncoderConfig;
use cleft_core::text::TextPooling;
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer};
use cleft_tokenizer::HfTokenizer;
use serde::{Deserialize, Serialize};

pub use model::{Gpt2Attention, Gpt2Block, Gpt2Mlp, Gpt2Model, gelu_new};

/// GPT-2 hyper-parameters (HF `GPT2Config` names) and CLEFT text settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gpt2Config {
    /// Vocabulary size (at least the tokenizer's).
    pub vocab_size: usize,
    /// Maximum number of positions.
    pub n_positions: usize,
    /// Hidden size `E`.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads (`E` must be divisible by it).
    pub n_head: usize,
    /// MLP inner size; `None` means `4·E`.
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    pub layer_norm_epsilon: f64,
    /// Divide attention scores by `layer_idx + 1` (BioMedLM).
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Text pooling (`first_pad` is CLEFT's).
    pub pooling: TextPooling,
    /// Maximum number of real tokens per text (CLEFT: 64).
    pub max_len: usize,
    /// HF `tokenizer.json`; `None` uses the built-in radiology word vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// Pad/EOS token in `tokenizer` (GPT-2: `<|endoftext|>`).
    pub pad_token: String,
    /// HF `GPT2Model` directory (`config.json` + safetensors); its `config.json` sets the
    /// architecture, so a size field next to it is an error naming both keys. Default tokenizer:
    /// `weights/tokenizer.json`.
    pub weights: Option<PathBuf>,
    /// Keep random values for parameters missing from `weights` instead of failing.
    pub allow_missing: bool,
}

impl Default for Gpt2Config {
    fn default() -> Self {
        Self {
            vocab_size: 0,
            n_positions: 128,
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            scale_attn_by_inverse_layer_idx: false,
            pooling: TextPooling::FirstPad,
            max_len: 64,
            tokenizer: None,
            pad_token: cleft_tokenizer::BUILTIN_EOS.to_string(),
            weights: None,
            allow_missing: false,
        }
    }
}

impl Gpt2Config {
    /// MLP inner size.
    pub fn n_inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    fn validate(&self) -> Result<(), CleftError> {
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(CleftError::Invalid(format!(
                "text.n_embd = {} is not divisible by text.n_head = {}",
                self.n_embd, self.n_head
            )));
        }
        if self.n_positions <= self.max_len {
            return Err(CleftError::Invalid(format!(
                "text.n_positions = {} must exceed text.max_len = {} (one pad position is pooled)",
                self.n_positions, self.max_len
            )));
        }
        Ok(())
    }
}

/// The architecture fields that a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 8] = [
    "vocab_size",
    "n_positions",
    "n_embd",
    "n_layer",
    "n_head",
    "n_inner",
    "layer_norm_epsilon",
    "scale_attn_by_inverse_layer_idx",
];

impl Gpt2Config {
    /// The section with a checkpoint's `config.json` applied; size fields next to `weights` are
    /// refused by name.
    pub fn effective(&self) -> Result<Self, CleftError> {
        match &self.weights {
            Some(dir) => {
                refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
                load::merged_config(dir, self)
            }
            None => Ok(self.clone()),
        }
    }
}

#[typetag::serde(name = "gpt2")]
impl TextEncoderConfig for Gpt2Config {
    fn input(&self) -> Result<Option<TextInput>, CleftError> {
        let config = self.effective()?;
        let positions_key = match &self.weights {
            Some(dir) => format!("text.weights → {}/config.json n_positions", dir.display()),
            None => "text.n_positions".into(),
        };
        Ok(Some(TextInput {
            max_len: Keyed::new(config.max_len, "text.max_len"),
            positions: Some(Keyed::new(config.n_positions, positions_key)),
            trailing: 1,
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn TextEncoder>, CleftError> {
        let config = self.effective()?;
        config.validate()?;
        let from_weights = self
            .weights
            .as_ref()
            .map(|d| d.join("tokenizer.json"))
            .filter(|p| p.is_file());
        let tokenizer: Arc<dyn TextTokenizer> = match self.tokenizer.clone().or(from_weights) {
            None => Arc::new(HfTokenizer::builtin_words()),
            Some(path) => Arc::new(HfTokenizer::from_file(&path, &self.pad_token)?),
        };
        let model = match &self.weights {
            Some(dir) => load::load_gpt2(dir, &config, tokenizer, device)?.0,
            None => Gpt2Model::init(&config, tokenizer, device),
        };
        Ok(Component::<dyn TextEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Text,
    "gpt2",
    "GPT-2 causal LM encoder (HF layout, BioMedLM inverse-layer scaling option), CLEFT first-pad pooling",
    Gpt2Config,
    claims = ["gpt2"]
);
