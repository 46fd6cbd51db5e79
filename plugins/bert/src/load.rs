//! Loading HF `BertModel` checkpoint directories.

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::weights::{
    LoadReport, WeightMapping, load_weights, open_checkpoint, parse_hf_config,
};
use cleft_core::{CleftError, TextTokenizer};

use crate::{BertArchitecture, BertModel, BertPooling};

/// Settings of a loaded model that the checkpoint does not define.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Pooling.
    pub pooling: BertPooling,
    /// Maximum tokens per text.
    pub max_len: usize,
    /// Keep random values for missing tensors instead of failing.
    pub allow_missing: bool,
}

/// How `BertModel` parameter paths map to HF keys: `self_` → `self`, `layer_norm` →
/// `LayerNorm`, `nn.Linear` weights transposed, an optional `bert.` prefix stripped, and the
/// `position_ids` buffer and pre-training heads (`cls.*`) ignored.
pub fn bert_mapping(allow_missing: bool) -> WeightMapping {
    WeightMapping {
        transpose_linear: true,
        segment_renames: vec![
            ("self_".into(), "self".into()),
            ("layer_norm".into(), "LayerNorm".into()),
        ],
        prefixes: vec!["bert.".into()],
        ignored: vec!["position_ids".into(), "token_type_ids".into()],
        allow_missing,
    }
}

/// Loads a HF BERT directory (`config.json` + `model.safetensors` or a sharded index).
///
/// The model has a pooler when the checkpoint has `pooler.dense.weight`.
pub fn load_bert(
    dir: &Path,
    tokenizer: Arc<dyn TextTokenizer>,
    options: &LoadOptions,
    device: &Device,
) -> Result<(BertModel, LoadReport), CleftError> {
    let mut arch: BertArchitecture = parse_hf_config(dir)?;
    arch.validate()?;
    let checkpoint = open_checkpoint(dir)?;
    arch.add_pooling_layer = ["pooler.dense.weight", "bert.pooler.dense.weight"]
        .iter()
        .any(|name| checkpoint.shape(name).is_some());
    if tokenizer.vocab_size() > arch.vocab_size {
        return Err(CleftError::Invalid(format!(
            "{}: the tokenizer has {} tokens but the checkpoint vocabulary only {}",
            dir.display(),
            tokenizer.vocab_size(),
            arch.vocab_size
        )));
    }
    let model = BertModel::init(&arch, tokenizer, options.pooling, options.max_len, device);
    load_weights(
        model,
        checkpoint.as_ref(),
        &bert_mapping(options.allow_missing),
    )
}
