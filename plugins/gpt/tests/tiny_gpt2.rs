//! Parity with HF transformers `GPT2Model` on the tiny random checkpoint
//! `fixtures/golden/tiny-gpt2` (`fixtures/golden/tiny_gpt2.*`, made by `tools/golden_encoders.py`),
//! with and without BioMedLM's inverse-layer-index attention scaling.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::weights::{SafetensorsCheckpoint, TensorSource};
use cleft_core::{CleftError, TextEncoder, TextTokenizer, TokenBatch};
use cleft_gpt::load::{load_gpt2, merged_config};
use cleft_gpt::{Gpt2Config, Gpt2Model};

const TOLERANCE: f32 = 1e-4;

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

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

fn load(scale_by_layer: Option<bool>) -> Gpt2Model {
    let dir = fixtures().join("tiny-gpt2");
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

fn max_abs_diff<const D: usize>(
    actual: Tensor<D>,
    golden: &SafetensorsCheckpoint,
    name: &str,
) -> f32 {
    let expected = golden.read(name).unwrap();
    expected
        .max_abs_diff(actual)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn tiny_gpt2_matches_transformers_with_and_without_inverse_layer_scaling() {
    let device = Device::flex();
    let golden = SafetensorsCheckpoint::open(&fixtures().join("tiny_gpt2.safetensors")).unwrap();
    let (shape, ids) = golden.read_i64("input_ids").unwrap();
    let (_, mask) = golden.read_i64("attention_mask").unwrap();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, shape.clone()), &device);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, shape), &device);

    let scaled = load(None);
    let hidden = scaled.hidden_states(scaled.embed_tokens(ids.clone()), mask.clone());
    let pooled = pool_tokens(hidden.clone(), mask.clone(), TextPooling::LastToken);
    let plain = load(Some(false));
    let unscaled = plain.hidden_states(plain.embed_tokens(ids), mask);
    let diffs = [
        (
            "last_hidden_state",
            max_abs_diff(hidden, &golden, "last_hidden_state"),
        ),
        (
            "pooled_last_real",
            max_abs_diff(pooled, &golden, "pooled_last_real"),
        ),
        (
            "last_hidden_state_no_layer_idx_scaling",
            max_abs_diff(unscaled, &golden, "last_hidden_state_no_layer_idx_scaling"),
        ),
    ];
    println!("tiny GPT-2 max |Δ| vs transformers: {diffs:?}");
    for (name, diff) in diffs {
        assert!(
            diff <= TOLERANCE,
            "{name}: max abs diff {diff} > {TOLERANCE}"
        );
    }
}

#[test]
fn a_checkpoint_without_one_tensor_fails_naming_it() {
    let source = fixtures().join("tiny-gpt2");
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
