//! The real Gemma-3-270M in llama.cpp's Q4_K_M GGUF (K-quant, Q5_0, Q6_K and Q8_0 tensors), end
//! to end against transformers loading the same file (`fixtures/golden/gemma3_270m.*`, made by
//! `tools/golden_gemma3_gguf.py`): dequantised embeddings, norms read back from llama.cpp's
//! `1 + w`, hidden states and CLEFT pooling, and a LoRA training step. Needs the asset:
//! `tools/fetch-assets.sh` (Gemma Terms of Use: fetched, never committed).

use std::sync::Arc;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use cleft_core::registry::PeftConfig;
use cleft_core::text::TextPooling;
use cleft_core::{Component, TextEncoder, TextTokenizer};
use cleft_llama::{Gemma3Model, LoadOptions, load_gemma3};
use cleft_testing::{Golden, require_asset, values};
use cleft_tokenizer::HfTokenizer;

const GGUF: &str = "gemma3-270m/gemma-3-270m-q4_k_m.gguf";

fn options() -> LoadOptions {
    LoadOptions {
        pooling: TextPooling::FirstPad,
        max_len: 64,
        allow_missing: false,
        pad_token: String::new(),
    }
}

/// The model with a stand-in tokenizer (the step below feeds the golden's ids).
fn load(device: &Device) -> (Gemma3Model, cleft_core::weights::LoadReport) {
    let tokenizer: Arc<dyn TextTokenizer> = Arc::new(HfTokenizer::builtin_words());
    load_gemma3(&require_asset(GGUF), Some(tokenizer), &options(), device).unwrap()
}

fn golden_json() -> serde_json::Value {
    let path = cleft_testing::golden_dir().join("gemma3_270m.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Resident memory high-water mark of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<usize>()
        .ok()
        .map(|kb| kb / 1024)
}

#[test]
fn gemma3_270m_q4_k_m_matches_transformers() {
    let device = Device::flex();
    // With the file's own SentencePiece vocabulary: texts start with BOS, as transformers'.
    let (model, report) = load_gemma3(&require_asset(GGUF), None, &options(), &device).unwrap();
    println!("peak RSS after loading: {:?} MiB", peak_rss_mib());
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    // Embeddings, final norm, and 18 layers of 13 tensors (four projections, three MLP, q/k
    // norms, four sandwich norms); the LM head is tied.
    assert_eq!(report.loaded, 2 + 18 * 13);
    assert_eq!((model.dim(), model.num_layers()), (640, 18));
    let golden = Golden::open("gemma3_270m");
    // Dequantisation (Q8_0 embeddings) and `w = stored − 1` are exact in float32: bit for bit.
    let bits = |values: Vec<f32>| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (name, actual) in [
        (
            "embed_tokens_row_0_to_3",
            values(model.embed_tokens.weight.val().slice([0..4])),
        ),
        (
            "layer0_input_layernorm_weight",
            values(model.layers[0].input_layernorm.weight.val()),
        ),
    ] {
        assert_eq!(bits(actual), bits(golden.tensor(name).data), "{name}");
    }

    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);
    let sentences: Vec<String> =
        serde_json::from_value(golden_json()["sentences"].clone()).unwrap();
    let (own_ids, own_mask) = model
        .tokenizer()
        .encode_batch(&sentences, 64)
        .unwrap()
        .to_tensors(&device);
    assert_eq!(
        own_ids.into_data(),
        ids.clone().into_data(),
        "<bos> + ids, EOS-padded"
    );
    assert_eq!(own_mask.into_data(), mask.clone().into_data());
    let hidden = model.hidden_states(model.embed_tokens(ids.clone()), mask.clone());
    let pooled = model.forward(ids, mask);
    golden.check_hidden_and_pooled(hidden, pooled);
}

#[test]
fn a_lora_step_on_gemma3_270m_changes_only_the_adapter() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let (model, _) = load(&device);
    let config = cleft_peft::LoraConfig {
        target_modules: cleft_peft::TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]),
        ..cleft_peft::LoraConfig::default()
    };
    let adapter = config.build().unwrap();
    let encoder = adapter
        .apply(Component::<dyn TextEncoder>::new(model))
        .unwrap();
    let golden = Golden::open("gemma3_270m");
    let ids = golden.ints::<2>("input_ids", &device);
    let mask = golden.ints::<2>("attention_mask", &device);
    let loss = encoder
        .forward(ids.clone(), mask.clone())
        .powi_scalar(2)
        .mean();
    let before = loss.clone().into_scalar::<f32>();
    assert!(before.is_finite());
    let grads = GradientsParams::from_grads(loss.backward(), &encoder);
    // Only the adapter's factors have gradients: the base is frozen.
    assert_eq!(grads.len(), 18 * 2 * 2);
    let encoder = AdamWConfig::new().init().step(1e-3, encoder, grads);
    let after = encoder
        .forward(ids, mask)
        .powi_scalar(2)
        .mean()
        .into_scalar::<f32>();
    assert!(after.is_finite() && after != before, "{before} → {after}");
    println!("peak RSS after a LoRA step: {:?} MiB", peak_rss_mib());
}
