//! Every PEFT method on every LLM family the llama plugin loads (LLaMA 3, Qwen2, Mistral, Gemma
//! 3: the tiny transformers checkpoints of `tools/golden_llm_families.py`), targeting modules by
//! their HF names: the adapter installs, two AdamW steps change exactly the parameters it declares
//! trainable (and at least one), and the pooled output then differs from the frozen base's.

use std::sync::Arc;

use cleft_core::burn::optim::{AdamWConfig, GradientsParams};
use cleft_core::burn::prelude::*;
use cleft_core::registry::PeftConfig;
use cleft_core::text::TextPooling;
use cleft_core::{Component, TextEncoder};
use cleft_llama::{LoadOptions, load_gemma3, load_llama};
use cleft_peft::{Ia3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TargetModules};
use cleft_testing::{golden_dir, param_values};
use cleft_tokenizer::HfTokenizer;

fn family(dir: &str, device: &Device) -> Component<dyn TextEncoder> {
    let options = LoadOptions {
        pooling: TextPooling::FirstPad,
        max_len: 16,
        allow_missing: false,
        pad_token: String::new(),
    };
    let tokenizer =
        Some(Arc::new(HfTokenizer::builtin_words()) as Arc<dyn cleft_core::TextTokenizer>);
    let path = golden_dir().join(dir);
    if dir.contains("gemma") {
        Component::<dyn TextEncoder>::new(
            load_gemma3(&path, tokenizer, &options, device).unwrap().0,
        )
    } else {
        Component::<dyn TextEncoder>::new(load_llama(&path, tokenizer, &options, device).unwrap().0)
    }
}

fn names(names: &[&str]) -> TargetModules {
    TargetModules::Names(names.iter().map(|n| n.to_string()).collect())
}

fn methods() -> Vec<(&'static str, Box<dyn PeftConfig>)> {
    vec![
        (
            "lora q_proj v_proj",
            Box::new(LoraConfig {
                r: 4,
                lora_alpha: 8.0,
                target_modules: names(&["q_proj", "v_proj"]),
                ..LoraConfig::default()
            }),
        ),
        (
            "ia3 k_proj v_proj down_proj",
            Box::new(Ia3Config {
                target_modules: names(&["k_proj", "v_proj", "down_proj"]),
                feedforward_modules: names(&["down_proj"]),
                ..Ia3Config::default()
            }),
        ),
        (
            "prefix tuning",
            Box::new(PrefixTuningConfig {
                num_virtual_tokens: 3,
                ..Default::default()
            }),
        ),
        (
            "prompt tuning",
            Box::new(PromptTuningConfig {
                num_virtual_tokens: 3,
                ..Default::default()
            }),
        ),
    ]
}

fn pooled(encoder: &Component<dyn TextEncoder>, device: &Device) -> Tensor<2> {
    let texts = [
        "pleural effusion".to_string(),
        "no acute cardiopulmonary process".to_string(),
    ];
    let (ids, mask) = encoder
        .tokenizer()
        .encode_batch(&texts, 16)
        .unwrap()
        .to_tensors(device);
    encoder.forward(ids, mask)
}

#[test]
fn every_peft_method_trains_on_every_family() {
    let device = Device::flex().autodiff();
    for dir in ["tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-gemma3"] {
        let base = pooled(&family(dir, &device), &device);
        for (method, config) in methods() {
            let adapter = config.build().unwrap();
            device.seed(7);
            let mut encoder = adapter
                .apply(family(dir, &device))
                .unwrap_or_else(|e| panic!("{dir} {method}: {e}"));
            let before = param_values(&encoder);
            let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
            for _ in 0..2 {
                let loss = pooled(&encoder, &device).powi_scalar(2).mean();
                let grads = GradientsParams::from_grads(loss.backward(), &encoder);
                encoder = optim.step(1e-2, encoder, grads);
            }
            let after = param_values(&encoder);
            let changed: Vec<&String> = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b.1 != a.1)
                .map(|(b, _)| &b.0)
                .collect();
            let trainable: Vec<&String> = before
                .iter()
                .map(|(p, _)| p)
                .filter(|p| adapter.is_trainable(p))
                .collect();
            assert!(!trainable.is_empty(), "{dir} {method}: nothing trainable");
            assert_eq!(changed, trainable, "{dir} {method}");
            let moved = (pooled(&encoder, &device) - base.clone())
                .abs()
                .max()
                .into_scalar::<f32>();
            // Not a tolerance: two steps at lr 1e-2 move outputs of order 1 by ~1e-2; float32
            // round-off of an unchanged model would be ~1e-7.
            assert!(moved > 1e-4, "{dir} {method}: output unchanged ({moved})");
        }
    }
}
