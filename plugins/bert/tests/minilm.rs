//! Parity with HF transformers on all-MiniLM-L6-v2 (`fixtures/golden/minilm.*`, made by
//! `tools/golden_encoders.py`). Needs the real weights: run `tools/fetch-assets.sh`.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cleft_bert::load::LoadOptions;
use cleft_bert::{BertModel, BertPooling, BertTokenizer, load_bert};
use cleft_core::TextTokenizer;
use cleft_core::weights::{SafetensorsCheckpoint, TensorSource, require_asset};

const TOLERANCE: f32 = 1e-4;

fn golden() -> SafetensorsCheckpoint {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/minilm.safetensors");
    SafetensorsCheckpoint::open(&path).unwrap()
}

fn minilm_dir() -> PathBuf {
    require_asset("minilm/model.safetensors").unwrap_or_else(|e| panic!("{e}"));
    require_asset("minilm").unwrap()
}

fn load(device: &Device) -> (BertModel, Arc<BertTokenizer>) {
    let dir = minilm_dir();
    let tokenizer = Arc::new(BertTokenizer::from_file(&dir.join("tokenizer.json")).unwrap());
    let options = LoadOptions {
        pooling: BertPooling::Cls,
        max_len: 128,
        allow_missing: false,
    };
    let (model, report) = load_bert(&dir, tokenizer.clone(), &options, device).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        report.loaded, 103,
        "every parameter tensor incl. the pooler"
    );
    (model, tokenizer)
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
fn minilm_matches_transformers_on_tokens_and_every_pooling() {
    let device = Device::flex();
    let (model, tokenizer) = load(&device);
    let golden = golden();
    let (shape, ids) = golden.read_i64("input_ids").unwrap();
    let (_, mask) = golden.read_i64("attention_mask").unwrap();

    let sentences = [
        "No acute cardiopulmonary process.",
        "Mild cardiomegaly with small bilateral pleural effusions.",
        "The lungs are clear without focal consolidation, pneumothorax, or pleural effusion. The \
         cardiomediastinal silhouette is within normal limits, and there is no acute osseous \
         abnormality.",
        "Normal chest.",
    ]
    .map(String::from);
    let batch = tokenizer.encode_batch(&sentences, 128).unwrap();
    assert_eq!((batch.batch, batch.len), (shape[0], shape[1]));
    assert_eq!(
        batch.ids, ids,
        "token ids match transformers (padding/truncation disabled)"
    );
    assert_eq!(batch.mask, mask);

    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, shape.clone()), &device);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, shape), &device);
    let states = model.hidden_states(model.embeddings.word_embeddings.forward(ids), mask.clone());
    let mut diffs = vec![
        (
            "hidden_states_1",
            max_abs_diff(states[1].clone(), &golden, "hidden_states_1"),
        ),
        (
            "last_hidden_state",
            max_abs_diff(states[6].clone(), &golden, "last_hidden_state"),
        ),
    ];
    for (pooling, name) in [
        (BertPooling::Cls, "pooled_cls"),
        (BertPooling::Mean, "pooled_mean"),
        (BertPooling::Pooler, "pooler_output"),
        (
            BertPooling::MedclipMean,
            "medclip_layers_1_2_last_masked_mean",
        ),
        (
            BertPooling::MedclipUnmaskedMean,
            "medclip_layers_1_2_last_unmasked_mean",
        ),
    ] {
        diffs.push((
            name,
            max_abs_diff(model.pool(&states, mask.clone(), pooling), &golden, name),
        ));
    }
    println!("max |Δ| vs transformers: {diffs:?}");
    for (name, diff) in diffs {
        assert!(
            diff <= TOLERANCE,
            "{name}: max abs diff {diff} > {TOLERANCE}"
        );
    }
}

#[test]
fn the_config_section_builds_minilm_through_the_registry() {
    use cleft_core::registry::TextEncoderConfig;
    let config = cleft_bert::BertConfig {
        weights: Some(minilm_dir()),
        ..Default::default()
    };
    let encoder = config.build(&Device::flex()).unwrap();
    assert_eq!((encoder.dim(), encoder.num_layers()), (384, 6));
    let batch = encoder
        .tokenizer()
        .encode_batch(&["Normal chest.".to_string()], 64)
        .unwrap();
    let (ids, mask) = batch.to_tensors(&Device::flex());
    assert_eq!(encoder.forward(ids, mask).dims(), [1, 384]);
}
