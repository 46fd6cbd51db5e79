//! BERT text encoders for cleft (`type = "bert"`).
//!
//! HF `BertModel` (the BERT / MedCLIP baselines of the paper) with pooling `cls` (the
//! `[CLS]` state), `mean` (masked mean), `pooler` (`tanh(dense(CLS))`), `medclip_mean` (MedCLIP:
//! the mean of hidden layers 1, 2 and the last, then masked mean over tokens) and
//! `medclip_unmasked_mean` (MedCLIP's own code, which averages over padding too). Random
//! initialisation, or a HF checkpoint directory (`weights = "dir"` with `config.json`,
//! `model.safetensors` and `tokenizer.json`, e.g. all-MiniLM-L6-v2).

pub mod load;
mod model;
pub mod tokenizer;

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::contract::{Keyed, TextInput, refuse_explicit};
use cleft_core::registry::TextEncoderConfig;
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer};
use serde::{Deserialize, Serialize};

pub use load::{bert_mapping, load_bert};
pub use model::{
    BertAttention, BertEmbeddings, BertEncoder, BertIntermediate, BertLayer, BertModel, BertPooler,
    BertResidualOutput, BertSelfAttention,
};
pub use tokenizer::BertTokenizer;

/// How BERT token states become one text feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BertPooling {
    /// The final `[CLS]` state (the paper's BERT baseline).
    Cls,
    /// Masked mean of the final states.
    Mean,
    /// HF `pooler_output`: `tanh(dense([CLS]))` (the `[CLS]` state without a pooler).
    Pooler,
    /// MedCLIP: `(h[1] + h[2] + h[last]) / 3` (`h[0]` = embeddings), masked mean over tokens.
    MedclipMean,
    /// MedCLIP's released code: the same layer mean averaged over all positions incl. padding.
    MedclipUnmaskedMean,
}

/// BERT architecture (HF `BertConfig` names); deserialises a HF `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertArchitecture {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size `H`.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Number of positions.
    pub max_position_embeddings: usize,
    /// Number of token types.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Activation (only `gelu`, the erf form, is supported).
    pub hidden_act: String,
    /// Position embedding kind (only `absolute` is supported).
    pub position_embedding_type: String,
    /// Whether the model has a pooler (`pooler.dense`): from the checkpoint when loading, else
    /// only for `pooling = "pooler"`.
    #[serde(skip)]
    pub add_pooling_layer: bool,
}

impl Default for BertArchitecture {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            position_embedding_type: "absolute".into(),
            add_pooling_layer: true,
        }
    }
}

impl BertArchitecture {
    /// Checks the combination is one this implementation computes exactly.
    pub fn validate(&self) -> Result<(), CleftError> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(CleftError::Invalid(format!(
                "text.hidden_size = {} is not divisible by text.num_attention_heads = {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.hidden_act != "gelu" || self.position_embedding_type != "absolute" {
            return Err(CleftError::Invalid(format!(
                "BERT with hidden_act = {:?} / position_embedding_type = {:?} is not supported \
                 (only \"gelu\" / \"absolute\")",
                self.hidden_act, self.position_embedding_type
            )));
        }
        Ok(())
    }
}

/// The `[text] type = "bert"` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BertConfig {
    /// HF checkpoint directory (`config.json`, `model.safetensors`, `tokenizer.json`); its
    /// `config.json` sets the architecture, so a size field next to it is an error naming both
    /// keys.
    pub weights: Option<PathBuf>,
    /// Keep random values for parameters missing from `weights` instead of failing.
    pub allow_missing: bool,
    /// `tokenizer.json`; default: `weights/tokenizer.json`, else the built-in word vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size (at least the tokenizer's).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Positions (must exceed `max_len`).
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Pooling.
    pub pooling: BertPooling,
    /// Maximum tokens per text, `[CLS]`/`[SEP]` included.
    pub max_len: usize,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            weights: None,
            allow_missing: false,
            tokenizer: None,
            vocab_size: 0,
            hidden_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 256,
            max_position_embeddings: 128,
            layer_norm_eps: 1e-12,
            pooling: BertPooling::Cls,
            max_len: 64,
        }
    }
}

impl BertConfig {
    /// The architecture of a randomly initialised model.
    pub fn architecture(&self) -> BertArchitecture {
        BertArchitecture {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            max_position_embeddings: self.max_position_embeddings,
            layer_norm_eps: self.layer_norm_eps,
            // Only `pooling = "pooler"` reads the pooler; without it the parameters would be
            // counted (and listed as trainable) yet never receive a gradient.
            add_pooling_layer: self.pooling == BertPooling::Pooler,
            ..BertArchitecture::default()
        }
    }

    fn tokenizer(&self) -> Result<Arc<dyn TextTokenizer>, CleftError> {
        let from_weights = self
            .weights
            .as_ref()
            .map(|dir| dir.join("tokenizer.json"))
            .filter(|p| p.is_file());
        Ok(match self.tokenizer.clone().or(from_weights) {
            Some(path) => Arc::new(BertTokenizer::from_file(&path)?),
            None => Arc::new(cleft_tokenizer::HfTokenizer::builtin_words()),
        })
    }
}

/// The architecture fields that a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 7] = [
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "layer_norm_eps",
];

#[typetag::serde(name = "bert")]
impl TextEncoderConfig for BertConfig {
    fn input(&self) -> Result<Option<TextInput>, CleftError> {
        let positions = match &self.weights {
            Some(dir) => {
                refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
                let arch: BertArchitecture = cleft_core::weights::parse_hf_config(dir)?;
                Keyed::new(
                    arch.max_position_embeddings,
                    format!(
                        "text.weights → {}/config.json max_position_embeddings",
                        dir.display()
                    ),
                )
            }
            None => Keyed::new(self.max_position_embeddings, "text.max_position_embeddings"),
        };
        // `max_len` counts [CLS] and [SEP]; CLS pooling needs no position after the text.
        Ok(Some(TextInput {
            max_len: Keyed::new(self.max_len, "text.max_len"),
            positions: Some(positions),
            trailing: 0,
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn TextEncoder>, CleftError> {
        let tokenizer = self.tokenizer()?;
        let model = match &self.weights {
            Some(dir) => {
                refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
                let options = load::LoadOptions {
                    pooling: self.pooling,
                    max_len: self.max_len,
                    allow_missing: self.allow_missing,
                };
                load_bert(dir, tokenizer, &options, device)?.0
            }
            None => {
                let arch = self.architecture();
                arch.validate()?;
                if self.max_len > arch.max_position_embeddings {
                    return Err(CleftError::Invalid(format!(
                        "text.max_len = {} exceeds text.max_position_embeddings = {}",
                        self.max_len, arch.max_position_embeddings
                    )));
                }
                BertModel::init(&arch, tokenizer, self.pooling, self.max_len, device)
            }
        };
        Ok(Component::<dyn TextEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Text,
    "bert",
    "BERT encoder (HF BertModel layout, loads HF checkpoints), CLS / mean / MedCLIP layer-mean pooling",
    BertConfig,
    claims = ["bert"]
);
