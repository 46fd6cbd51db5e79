//! Parity with HF transformers `GPT2Model` on the tiny random checkpoint
//! `fixtures/golden/tiny-gpt2` (`fixtures/golden/tiny_gpt2.*`, made by `tools/golden_encoders.py`),
//! with and without BioMedLM's inverse-layer-index attention scaling.

use std::sync::Arc;

use burn::prelude::*;
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::weights::{SafetensorsCheckpoint, TensorSource};
use cleft_core::{CleftError, TextEncoder, TextTokenizer, TokenBatch};
use cleft_gpt::load::{load_gpt2, merged_config};
use cleft_gpt::{Gpt2Config, Gpt2Model};
use cleft_testing::{Golden, golden_dir};

/// The checkpoint has no tokenizer; ids come from the golden file.
#[derive(Debug)]
struct IdsOnly;

impl TextTokenizer for IdsOnly {
    fn encode_batch(&self, _: &[String], _: usize) -> Result<TokenBatch, CleftError> {
        Err(CleftError::Invalid("ids only".into()))
    }
    fn vocab_size(&self) -> usize {
        100
    }
}

fn load(scale_by_layer: Option<bool>) -> Gpt2Model {
    let dir = golden_dir().join("tiny-gpt2");
    let mut config = merged_config(&dir, &Gpt2Config::default()).unwrap();
    assert!(
        config.scale_attn_by_inverse_layer_idx,
        "read from config.json"
    );
    if let Some(flag) = scale_by_layer {
        config.scale_attn_by_inverse_layer_idx = flag;
    }
    let (model, report) = load_gpt2(&dir, &config, Arc::new(IdsOnly), &Device::flex()).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.loaded, 4 + 2 * 12);
    model
}

#[test]
fn tiny_gpt2_matches_transformers_with_and_without_inverse_layer_scaling() {
    let device = Device::flex();
    let golden = Golden::open("tiny_gpt2");
    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);

    let scaled = load(None);
    let hidden = scaled.hidden_states(scaled.embed_tokens(ids.clone()), mask.clone());
    let pooled = pool_tokens(hidden.clone(), mask.clone(), TextPooling::LastToken);
    let plain = load(Some(false));
    let unscaled = plain.hidden_states(plain.embed_tokens(ids), mask);
    golden.check("last_hidden_state", hidden);
    golden.check("pooled_last_real", pooled);
    golden.check("last_hidden_state_no_layer_idx_scaling", unscaled);
}

#[test]
fn a_checkpoint_without_one_tensor_fails_naming_it() {
    let source = golden_dir().join("tiny-gpt2");
    let dir = std::env::temp_dir().join(format!("cleft-gpt2-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
    let checkpoint = SafetensorsCheckpoint::open(&source).unwrap();
    let kept: Vec<(String, Vec<usize>, Vec<u8>)> = checkpoint
        .names()
        .into_iter()
        .filter(|name| name != "h.1.mlp.c_fc.bias")
        .map(|name| {
            let t = checkpoint.read(&name).unwrap();
            (
                name,
                t.shape,
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let config = merged_config(&dir, &Gpt2Config::default()).unwrap();
    let error = load_gpt2(&dir, &config, Arc::new(IdsOnly), &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("missing tensors: [h.1.mlp.c_fc.bias]"),
        "{error}"
    );
}
