//! Parity with HF PEFT on SmolLM2-135M-Instruct (LLaMA with grouped-query attention, loaded from
//! its Q4_1 GGUF and dequantised): LoRA, IA3, prefix- and prompt-tuning adapters made by HF PEFT
//! (`fixtures/golden/smollm2-*`, `smollm2_peft.*`, written by `tools/golden_peft_llama.py`) load
//! here and give the same outputs; merging LoRA/IA3 keeps them. Needs the real weights: run
//! `tools/fetch-assets.sh`.

mod common;

use std::any::Any;

use cleft_core::Component;
use cleft_core::TextEncoder;
use cleft_core::bridge::DynModuleUpcast;
use cleft_core::burn::prelude::*;
use cleft_core::burn::tensor::Int;
use cleft_core::text::TextPooling;
use cleft_llama::{LlamaModel, LoadOptions, load_llama};
use cleft_peft::from_pretrained;
use cleft_testing::{Golden, Tolerance, golden_dir, merge_noise, require_asset, values};

fn golden() -> Golden {
    Golden::open("smollm2_peft")
}

fn smollm2(device: &Device) -> Component<dyn TextEncoder> {
    let path = require_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let options = LoadOptions {
        pooling: TextPooling::FirstPad,
        max_len: 64,
        allow_missing: false,
        pad_token: String::new(),
    };
    let (model, report) = load_llama(&path, None, &options, device).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty() && report.mismatched.is_empty(),
        "{report:?}"
    );
    Component::<dyn TextEncoder>::new(model)
}

fn llama(encoder: &Component<dyn TextEncoder>) -> &LlamaModel {
    let any: &dyn Any = encoder.as_dyn_module();
    any.downcast_ref::<LlamaModel>().expect("a LLaMA encoder")
}

fn inputs(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let golden = golden();
    (
        golden.ints("input_ids", device),
        golden.ints("attention_mask", device),
    )
}

/// Final hidden states and CLEFT-pooled features on the golden inputs.
fn outputs(encoder: &Component<dyn TextEncoder>, device: &Device) -> (Tensor<3>, Tensor<2>) {
    let (ids, mask) = inputs(device);
    let hidden = llama(encoder).hidden_states(encoder.embed_tokens(ids.clone()), mask.clone());
    (hidden, encoder.forward(ids, mask))
}

/// Loads `fixtures/golden/smollm2-{method}` with the HF-PEFT adapter loader and compares with the
/// golden outputs; returns the adapter and the adapted encoder.
fn check_hf_adapter(
    method: &str,
    loaded: usize,
    device: &Device,
) -> (
    Box<dyn cleft_core::PeftAdapter>,
    Component<dyn TextEncoder>,
    Tensor<3>,
) {
    let dir = golden_dir().join(format!("smollm2-{method}"));
    let (adapter, encoder, report) = from_pretrained(smollm2(device), &dir).unwrap();
    assert!(
        report.unexpected.is_empty(),
        "unexpected keys {:?}",
        report.unexpected
    );
    assert_eq!(report.loaded, loaded, "{method}: tensors loaded");
    let (hidden, pooled) = outputs(&encoder, device);
    let golden = golden();
    golden.check(&format!("{method}_last_hidden_state"), hidden.clone());
    golden.check(&format!("{method}_pooled"), pooled);
    (adapter, encoder, hidden)
}

/// Merging must keep the outputs up to float32 rounding of the merged weights: held to the
/// noise model with HF PEFT's own merged-vs-unmerged distance on the same adapter as the spread.
fn check_merge(
    method: &str,
    adapter: &dyn cleft_core::PeftAdapter,
    encoder: Component<dyn TextEncoder>,
    unmerged: Tensor<3>,
    device: &Device,
) {
    let merged = adapter.merge(encoder).unwrap();
    assert!(
        !cleft_core::peft::named_params(&merged)
            .iter()
            .any(|p| p.path.contains("lora_") || p.path.contains("ia3_l")),
        "{method}: adapter unloaded"
    );
    let (hidden, _) = outputs(&merged, device);
    let key = format!("smollm2/{method}");
    let spread = merge_noise(&key).unwrap_or_else(|e| panic!("{e}"));
    Tolerance::f32_ops()
        .with_spread(
            spread,
            &format!("noise.json merge.{key} (HF PEFT's own merge)"),
        )
        .check(
            &format!("smollm2 {method} merged vs unmerged"),
            &values(hidden),
            &values(unmerged),
        );
}

#[test]
fn smollm2_lora_made_by_hf_peft_matches_and_merges() {
    let device = Device::flex();
    // A and B of q_proj and v_proj in 30 layers.
    let (adapter, encoder, unmerged) = check_hf_adapter("lora", 4 * 30, &device);
    assert_eq!(adapter.method(), "lora");
    check_merge("lora", adapter.as_ref(), encoder, unmerged, &device);
}

#[test]
fn smollm2_ia3_made_by_hf_peft_matches_and_merges() {
    let device = Device::flex();
    // k_proj, v_proj (output scaling) and down_proj (feed-forward, input scaling) in 30 layers.
    let (adapter, encoder, unmerged) = check_hf_adapter("ia3", 3 * 30, &device);
    assert_eq!(adapter.method(), "ia3");
    check_merge("ia3", adapter.as_ref(), encoder, unmerged, &device);
}

#[test]
fn smollm2_prefix_made_by_hf_peft_matches() {
    let device = Device::flex();
    let (adapter, encoder, _) = check_hf_adapter("prefix", 1, &device);
    assert_eq!(adapter.method(), "prefix");
    let geometry = encoder.peft_hooks().unwrap().prefix_geometry();
    assert_eq!(
        (geometry.heads, geometry.head_dim, geometry.embed_dim),
        (3, 64, 192),
        "PEFT's GQA prefix: key/value heads, token_dim = KV·hd"
    );
}

#[test]
fn smollm2_prompt_tuning_made_by_hf_peft_matches() {
    let device = Device::flex();
    // The golden output covers the 4 virtual tokens too; pooling picks the pad after the text.
    let (adapter, _, hidden) = check_hf_adapter("prompt", 1, &device);
    assert_eq!(adapter.method(), "prompt_tuning");
    assert_eq!(hidden.dims()[1], 4 + inputs(&device).0.dims()[1]);
}

#[test]
fn smollm2_lora_saved_from_llama_for_causal_lm_loads_onto_the_bare_encoder() {
    // LlamaForCausalLM holds the encoder as `model.`: `base_model.model.model.layers.N.…`.
    let device = Device::flex();
    let dir = common::adapter_with_keys(&golden_dir().join("smollm2-lora"), "causal-lm", |key| {
        key.replacen("base_model.model.", "base_model.model.model.", 1)
    });
    let (_, encoder, report) = from_pretrained(smollm2(&device), &dir).unwrap();
    assert_eq!(report.loaded, 4 * 30);
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let (hidden, pooled) = outputs(&encoder, &device);
    golden().check("lora_last_hidden_state", hidden);
    golden().check("lora_pooled", pooled);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_adapter_names_a_few_missing_keys_and_the_count() {
    let device = Device::flex();
    let dir = common::adapter_with_keys(&golden_dir().join("smollm2-lora"), "wrong", |key| {
        key.replacen(".self_attn.", ".attention.", 1)
    });
    let error = from_pretrained(smollm2(&device), &dir)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("120 of 120 adapter tensors missing") && error.contains("117 more"),
        "{error}"
    );
    assert!(error.len() < 800, "short: {} chars: {error}", error.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
