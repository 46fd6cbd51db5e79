//! Parity with HF transformers on SmolLM2-135M-Instruct loaded from its Q4_1 GGUF
//! (`fixtures/golden/smollm2.*`, made by `tools/golden_encoders.py`). Needs the real weights:
//! run `tools/fetch-assets.sh`.

use burn::prelude::*;
use cleft_core::TextEncoder;
use cleft_core::text::TextPooling;
use cleft_llama::{LoadOptions, load_llama};
use cleft_testing::{Golden, require_asset};

#[test]
fn smollm2_gguf_matches_transformers_hidden_states_and_cleft_pooling() {
    let path = require_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let device = Device::flex();
    let options = LoadOptions {
        pooling: TextPooling::FirstPad,
        max_len: 64,
        allow_missing: false,
        pad_token: String::new(),
    };
    let (model, report) = load_llama(&path, None, &options, &device).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.loaded, 1 + 30 * 9 + 1);
    assert_eq!((model.dim(), model.num_layers()), (576, 30));

    let golden = Golden::open("smollm2");
    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);
    let sentences = [
        "No acute cardiopulmonary process.",
        "this is a chest x ray of a patient with pleural effusion",
        "There is a 2.5 cm nodule in the right upper lobe, with mild cardiomegaly and small \
         bilateral pleural effusions.",
        "Normal chest.",
    ]
    .map(String::from);
    let batch = model.tokenizer().encode_batch(&sentences, 64).unwrap();
    let (batch_ids, batch_mask) = batch.to_tensors(&device);
    assert_eq!(
        batch_ids.into_data(),
        ids.clone().into_data(),
        "GGUF tokenizer ids, right-padded with EOS = 2"
    );
    assert_eq!(batch_mask.into_data(), mask.clone().into_data());

    let hidden = model.hidden_states(model.embed_tokens(ids.clone()), mask.clone());
    let pooled = model.forward(ids, mask);
    // Against the float32 reference: its own spread is the floor. Against the float64
    // reference: the spread of its float32 twin is what a float32 implementation can reach.
    golden.check_hidden_and_pooled(hidden, pooled);
}
