//! Parity with HF PEFT on the tiny random GPT-2: adapters made by HF PEFT load here and give the
//! same outputs and merging keeps them (both within the suite's float32 noise model,
//! `cleft_testing::Tolerance`), adapter files round-trip, and bad configs or files fail with
//! clear errors.

mod common;

use cleft_core::burn::prelude::*;
use cleft_core::burn::tensor::Int;
use cleft_core::{CleftError, PeftAdapter};
use cleft_peft::{LoraConfig, TargetModules, from_pretrained};
use common::*;

const PEFT_FILE: &str = "tiny_gpt2_peft";

#[test]
fn base_model_matches_transformers() {
    let device = Device::flex();
    check_golden(
        "tiny_gpt2",
        "last_hidden_state",
        hidden(&tiny_gpt2(&device), &device),
    );
}

fn check_hf_adapter(dir: &str, golden_name: &str, golden_file: &str) -> Box<dyn PeftAdapter> {
    let device = Device::flex();
    let (adapter, encoder, report) = from_pretrained(tiny_gpt2(&device), &golden(dir)).unwrap();
    assert!(
        report.unexpected.is_empty(),
        "unexpected keys {:?}",
        report.unexpected
    );
    check_golden(golden_file, golden_name, hidden(&encoder, &device));
    adapter
}

#[test]
fn lora_adapter_made_by_hf_peft_matches_and_merges() {
    let adapter = check_hf_adapter("tiny-gpt2-lora", "lora_last_hidden_state", "tiny_gpt2");
    assert_eq!(adapter.method(), "lora");

    let device = Device::flex();
    let (adapter, mut encoder, report) =
        from_pretrained(tiny_gpt2(&device), &golden("tiny-gpt2-lora")).unwrap();
    assert_eq!(report.loaded, 4, "A and B for 2 layers");
    let unmerged = hidden(&encoder, &device);
    for (_, layer) in encoder.peft_hooks_mut().unwrap().linear_layers_mut() {
        layer.merge();
    }
    let merged = hidden(&encoder, &device);
    check_merged("LoRA merged vs unmerged", "lora", merged, unmerged.clone());
    for (_, layer) in encoder.peft_hooks_mut().unwrap().linear_layers_mut() {
        layer.unmerge();
    }
    check_merged(
        "LoRA unmerged again vs unmerged",
        "lora",
        hidden(&encoder, &device),
        unmerged.clone(),
    );
    let plain = adapter.merge(encoder).unwrap();
    assert!(
        !cleft_core::peft::named_params(&plain)
            .iter()
            .any(|p| p.path.contains("lora_")),
        "unloaded"
    );
    check_merged(
        "LoRA merge_and_unload vs unmerged",
        "lora",
        hidden(&plain, &device),
        unmerged,
    );
}

#[test]
fn ia3_adapter_made_by_hf_peft_matches_and_merges() {
    let adapter = check_hf_adapter("tiny-gpt2-ia3", "ia3_last_hidden_state", PEFT_FILE);
    let device = Device::flex();
    let (_, encoder, _) = from_pretrained(tiny_gpt2(&device), &golden("tiny-gpt2-ia3")).unwrap();
    let unmerged = hidden(&encoder, &device);
    let merged = adapter.merge(encoder).unwrap();
    check_merged(
        "IA3 merged vs unmerged",
        "ia3",
        hidden(&merged, &device),
        unmerged,
    );
}

#[test]
fn prefix_adapter_made_by_hf_peft_matches() {
    let adapter = check_hf_adapter("tiny-gpt2-prefix", "prefix_last_hidden_state", PEFT_FILE);
    let device = Device::flex();
    let (_, encoder, _) = from_pretrained(tiny_gpt2(&device), &golden("tiny-gpt2-prefix")).unwrap();
    let error = adapter.merge(encoder).unwrap_err().to_string();
    assert!(error.contains("cannot be merged"), "{error}");
}

#[test]
fn prompt_tuning_adapter_made_by_hf_peft_matches() {
    // Virtual tokens included: the golden output covers them too.
    check_hf_adapter("tiny-gpt2-prompt", "prompt_last_hidden_state", PEFT_FILE);
}

#[test]
fn a_misspelt_target_names_itself_and_suggests_c_attn() {
    let config = LoraConfig {
        target_modules: TargetModules::Names(vec!["c_atn".into()]),
        ..LoraConfig::default()
    };
    let device = Device::flex();
    let adapter = cleft_core::registry::PeftConfig::build(&config).unwrap();
    let error = adapter.apply(tiny_gpt2(&device)).unwrap_err();
    assert!(
        matches!(error, CleftError::TargetNotFound { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("`c_atn`") && message.contains("c_attn"),
        "{message}"
    );
}

#[test]
fn loading_fails_on_missing_tensors_and_reports_unexpected_ones() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("cleft-peft-missing-{}", std::process::id()));
    let (adapter, encoder, _) =
        from_pretrained(tiny_gpt2(&device), &golden("tiny-gpt2-lora")).unwrap();
    let mut tensors = cleft_peft::files::read_adapter_tensors(&golden("tiny-gpt2-lora")).unwrap();
    let a0 = "base_model.model.h.0.attn.c_attn.lora_A.weight";
    let moved = tensors.remove(a0).unwrap();
    tensors.insert(
        "base_model.model.h.0.attn.c_attn.lora_A.wieght".into(),
        moved,
    );
    write_raw(&dir, &tensors);
    let error = adapter.load_weights(encoder, &dir).unwrap_err().to_string();
    assert!(error.contains(a0), "the missing key is named: {error}");

    let mut tensors = cleft_peft::files::read_adapter_tensors(&golden("tiny-gpt2-lora")).unwrap();
    tensors.insert("base_model.model.extra.weight".into(), tensors[a0].clone());
    write_raw(&dir, &tensors);
    let (_, encoder, _) = from_pretrained(tiny_gpt2(&device), &golden("tiny-gpt2-lora")).unwrap();
    let (_, report) = adapter.load_weights(encoder, &dir).unwrap();
    assert_eq!(report.unexpected, ["base_model.model.extra.weight"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_adapter_saved_from_gpt2_lm_head_model_loads_onto_the_bare_encoder() {
    // GPT2LMHeadModel holds the encoder as `transformer.`; PEFT writes that into every key.
    let device = Device::flex();
    let source = golden("tiny-gpt2-lora");
    let dir = adapter_with_keys(&source, "lm-head", |key| {
        key.replacen("base_model.model.", "base_model.model.transformer.", 1)
    });
    let (_, encoder, report) = from_pretrained(tiny_gpt2(&device), &dir).unwrap();
    assert_eq!(report.loaded, 4, "A and B for 2 layers");
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let (_, reference, _) = from_pretrained(tiny_gpt2(&device), &source).unwrap();
    assert_eq!(
        max_abs_diff(hidden(&encoder, &device), hidden(&reference, &device)),
        0.0,
        "the same weights load"
    );
    check_golden(
        "tiny_gpt2",
        "lora_last_hidden_state",
        hidden(&encoder, &device),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_head_segment_matching_nothing_is_not_stripped() {
    let device = Device::flex();
    let dir = adapter_with_keys(&golden("tiny-gpt2-lora"), "no-head", |key| {
        key.replacen(".attn.", ".attention.", 1)
    });
    let error = from_pretrained(tiny_gpt2(&device), &dir)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("4 of 4 adapter tensors missing")
            && error.contains("base_model.model.h.0.attn.c_attn.lora_A.weight")
            && error.contains("1 more"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write_raw(
    dir: &std::path::Path,
    tensors: &std::collections::BTreeMap<String, cleft_peft::files::HostTensor>,
) {
    std::fs::create_dir_all(dir).unwrap();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, d, s)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize_to_file(views, None, &dir.join("adapter_model.safetensors"))
        .unwrap();
}

/// A text encoder without PEFT hooks.
#[derive(cleft_core::burn::module::Module, Debug)]
struct NoHooks {
    proj: cleft_core::burn::nn::Linear,
}

impl cleft_core::TextEncoder for NoHooks {
    fn forward_embeddings(&self, embeddings: Tensor<3>, _: Tensor<2, Int>) -> Tensor<2> {
        embeddings.mean_dim(1).squeeze_dim(1)
    }
    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        ids.float().unsqueeze_dim(2)
    }
    fn dim(&self) -> usize {
        1
    }
    fn embed_dim(&self) -> usize {
        1
    }
    fn num_layers(&self) -> usize {
        0
    }
    fn tokenizer(&self) -> std::sync::Arc<dyn cleft_core::TextTokenizer> {
        std::sync::Arc::new(NumberTokenizer)
    }
    fn max_len(&self) -> usize {
        8
    }
}

#[test]
fn every_method_refuses_an_encoder_without_peft_hooks() {
    use cleft_core::registry::PeftConfig;
    let device = Device::flex();
    let configs: [Box<dyn PeftConfig>; 4] = [
        Box::new(LoraConfig::default()),
        Box::new(cleft_peft::Ia3Config::default()),
        Box::new(cleft_peft::PrefixTuningConfig::default()),
        Box::new(cleft_peft::PromptTuningConfig::default()),
    ];
    for config in configs {
        let encoder = cleft_core::Component::<dyn cleft_core::TextEncoder>::new(NoHooks {
            proj: cleft_core::burn::nn::LinearConfig::new(1, 1).init(&device),
        });
        let error = config
            .build()
            .unwrap()
            .apply(encoder)
            .unwrap_err()
            .to_string();
        assert!(error.contains("offers no PEFT hooks"), "{error}");
    }
}
