//! Loading HF `GPT2Model` checkpoint directories (GPT-2, BioMedLM).

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::weights::{
    LoadReport, WeightMapping, load_weights, open_checkpoint, parse_hf_config,
};
use cleft_core::{CleftError, TextTokenizer};
use serde::Deserialize;

use crate::{Gpt2Config, Gpt2Model};

/// The fields of a HF `GPT2Config` this encoder uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HfGpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Positions.
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Heads.
    pub n_head: usize,
    /// MLP inner size (`null` = 4·n_embd).
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    pub layer_norm_epsilon: f64,
    /// BioMedLM's extra `1 / (layer_idx + 1)` score scaling.
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Only `true` (scores divided by √head_dim) is supported.
    pub scale_attn_weights: bool,
    /// Only `gelu_new` is supported.
    pub activation_function: String,
}

impl Default for HfGpt2Config {
    fn default() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            scale_attn_by_inverse_layer_idx: false,
            scale_attn_weights: true,
            activation_function: "gelu_new".into(),
        }
    }
}

/// HF keys as they are (Conv1D weights are already `[in, out]`, so nothing is transposed), an
/// optional `transformer.` prefix stripped, the causal-mask buffers and LM head ignored.
pub fn gpt2_mapping(allow_missing: bool) -> WeightMapping {
    WeightMapping {
        transpose_linear: false,
        prefixes: vec!["transformer.".into()],
        ignored: vec![
            "attn.bias".into(),
            "attn.masked_bias".into(),
            "lm_head.weight".into(),
        ],
        allow_missing,
        ..WeightMapping::default()
    }
}

/// `section` with the architecture of the checkpoint in `dir` (its `config.json`).
pub fn merged_config(dir: &Path, section: &Gpt2Config) -> Result<Gpt2Config, CleftError> {
    let hf: HfGpt2Config = parse_hf_config(dir)?;
    if hf.activation_function != "gelu_new" || !hf.scale_attn_weights {
        return Err(CleftError::Invalid(format!(
            "{}: GPT-2 with activation {:?} / scale_attn_weights {} is not supported",
            dir.display(),
            hf.activation_function,
            hf.scale_attn_weights
        )));
    }
    Ok(Gpt2Config {
        vocab_size: hf.vocab_size,
        n_positions: hf.n_positions,
        n_embd: hf.n_embd,
        n_layer: hf.n_layer,
        n_head: hf.n_head,
        n_inner: hf.n_inner,
        layer_norm_epsilon: hf.layer_norm_epsilon,
        scale_attn_by_inverse_layer_idx: hf.scale_attn_by_inverse_layer_idx,
        ..section.clone()
    })
}

/// Builds a model with `config` (see [`merged_config`]) and loads the weights in `dir`.
pub fn load_gpt2(
    dir: &Path,
    config: &Gpt2Config,
    tokenizer: Arc<dyn TextTokenizer>,
    device: &Device,
) -> Result<(Gpt2Model, LoadReport), CleftError> {
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(CleftError::Invalid(format!(
            "{}: the tokenizer has {} tokens but the checkpoint vocabulary only {}; set \
             text.tokenizer to the checkpoint's tokenizer.json",
            dir.display(),
            tokenizer.vocab_size(),
            config.vocab_size
        )));
    }
    let checkpoint = open_checkpoint(dir)?;
    let model = Gpt2Model::init(config, tokenizer, device);
    load_weights(
        model,
        checkpoint.as_ref(),
        &gpt2_mapping(config.allow_missing),
    )
}
