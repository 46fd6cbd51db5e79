//! Parity with HF transformers on all-MiniLM-L6-v2 (`fixtures/golden/minilm.*`, made by
//! `tools/golden_encoders.py`). Needs the real weights: run `tools/fetch-assets.sh`.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use cleft_bert::load::LoadOptions;
use cleft_bert::{BertModel, BertPooling, BertTokenizer, load_bert};
use cleft_core::TextTokenizer;
use cleft_testing::{Golden, require_asset};

fn minilm_dir() -> PathBuf {
    require_asset("minilm/model.safetensors");
    require_asset("minilm")
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

#[test]
fn minilm_matches_transformers_on_tokens_and_every_pooling() {
    let device = Device::flex();
    let (model, tokenizer) = load(&device);
    let golden = Golden::open("minilm");
    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);

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
    let (batch_ids, batch_mask) = batch.to_tensors(&device);
    assert_eq!(
        batch_ids.into_data(),
        ids.clone().into_data(),
        "token ids match transformers (padding/truncation disabled)"
    );
    assert_eq!(batch_mask.into_data(), mask.clone().into_data());

    let states = model.hidden_states(model.embeddings.word_embeddings.forward(ids), mask.clone());
    golden.check("hidden_states_1", states[1].clone());
    golden.check("last_hidden_state", states[6].clone());
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
        golden.check(name, model.pool(&states, mask.clone(), pooling));
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

#[test]
fn every_text_starts_with_cls_and_says_so_for_stage_2_context() {
    // A learned context goes after the leading special tokens (PromptLearner::combine_after):
    // with BERT that keeps [CLS] at position 0, which CLS pooling reads.
    let tokenizer = BertTokenizer::from_file(&minilm_dir().join("tokenizer.json")).unwrap();
    assert_eq!(tokenizer.leading_special_tokens(), 1);
    let cls = 101; // [CLS] in MiniLM's vocab.txt-derived tokenizer.json
    let batch = tokenizer
        .encode_batch(&["pleural effusion".to_string(), "edema".to_string()], 16)
        .unwrap();
    assert_eq!((batch.ids[0], batch.ids[batch.len]), (cls, cls));
}
