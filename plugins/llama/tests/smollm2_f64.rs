//! SmolLM2 computed in float64 against transformers' float64 run of the same GGUF weights: with
//! float32 accumulation out of the way the implementation matches far below the float32 spread
//! (see `smollm2.rs`). A separate test binary, because the float type is a device default.
//!
//! Noise model: what is left in float32 here is the storage of the reference (the float64 result
//! is stored as float32) and the RoPE cos/sin tables (computed in float32, as transformers does
//! in its float32 runs), both O(ε_f32) relative to the values: [`Tolerance::f32_ops`].

use burn::prelude::*;
use burn::tensor::FloatDType;
use cleft_core::TextEncoder;
use cleft_core::text::TextPooling;
use cleft_llama::{LoadOptions, load_llama};
use cleft_testing::{Golden, Tolerance, require_asset};

#[test]
fn smollm2_in_float64_matches_the_float64_reference_to_float32_storage_precision() {
    let path = require_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex computes in f64");
    let options = LoadOptions {
        pooling: TextPooling::FirstPad,
        max_len: 64,
        allow_missing: false,
        pad_token: String::new(),
    };
    let (model, _) = load_llama(&path, None, &options, &device).unwrap();
    let golden = Golden::open("smollm2");
    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);
    let hidden = model.hidden_states(model.embed_tokens(ids.clone()), mask.clone());
    assert_eq!(hidden.dtype(), burn::tensor::DType::F64);
    let pooled = model.forward(ids, mask);
    golden.check_with("last_hidden_state_f64ref", hidden, &Tolerance::f32_ops());
    golden.check_with("cleft_pooled_f64ref", pooled, &Tolerance::f32_ops());
}
