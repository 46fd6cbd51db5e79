//! Adapters train and nothing else does: an AdamW step changes exactly the parameters the adapter
//! declares trainable (adapter tensors + `modules_to_save`); saved adapters reload bit-exactly and
//! (with `CLEFT_PEFT_EXPORT=DIR`) are exported for `tools/golden_peft.py --check-rust DIR`.

mod common;

use cleft_core::burn::optim::{AdamWConfig, GradientsParams};
use cleft_core::burn::prelude::*;
use cleft_core::registry::PeftConfig;
use cleft_core::{Component, PeftAdapter, TextEncoder};
use cleft_peft::{
    Ia3Config, LoraBias, LoraConfig, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit,
    from_pretrained,
};
use cleft_testing::param_values;
use common::*;

/// Two AdamW steps on a pooled-feature loss; returns the paths whose values changed.
fn changed_after_steps(adapter: &dyn PeftAdapter) -> (Vec<String>, Vec<String>) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut encoder = adapter.apply(tiny_gpt2(&device)).unwrap();
    let before = param_values(&encoder);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    for _ in 0..2 {
        let texts = ["5 17 42 3".to_string(), "11 2".to_string()];
        let (ids, mask) = encoder
            .tokenizer()
            .encode_batch(&texts, 16)
            .unwrap()
            .to_tensors(&device);
        let loss = encoder.forward(ids, mask).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &encoder);
        encoder = optim.step(1e-2, encoder, grads);
    }
    let after = param_values(&encoder);
    let changed = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.clone())
        .collect();
    let trainable = before
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| adapter.is_trainable(p))
        .collect();
    (changed, trainable)
}

fn assert_only_adapter_trains(config: &dyn PeftConfig, expected_trainable: usize) {
    let adapter = config.build().unwrap();
    let (changed, trainable) = changed_after_steps(adapter.as_ref());
    assert_eq!(
        trainable.len(),
        expected_trainable,
        "{}: trainable {trainable:?}",
        adapter.method()
    );
    assert_eq!(
        changed,
        trainable,
        "{}: exactly the adapter (+ modules_to_save) changes",
        adapter.method()
    );
}

#[test]
fn lora_trains_only_its_factors_lora_only_biases_and_modules_to_save() {
    let config = LoraConfig {
        r: 4,
        lora_alpha: 16.0,
        bias: LoraBias::LoraOnly,
        modules_to_save: vec!["ln_f".into()],
        ..LoraConfig::default()
    };
    // 2 layers × (A, B, c_attn.bias) + ln_f.{gamma, beta}
    assert_only_adapter_trains(&config, 2 * 3 + 2);
}

#[test]
fn reparameterized_lora_trains_only_its_factors() {
    let config = LoraConfig {
        implementation: cleft_peft::LoraImplementation::Reparameterized,
        ..LoraConfig::default()
    };
    assert_only_adapter_trains(&config, 2 * 2);
}

#[test]
fn ia3_trains_only_its_vectors() {
    assert_only_adapter_trains(&Ia3Config::default(), 2 * 2);
}

#[test]
fn prefix_and_prompt_tuning_train_only_their_virtual_tokens() {
    assert_only_adapter_trains(
        &PrefixTuningConfig {
            num_virtual_tokens: 5,
            ..Default::default()
        },
        1,
    );
    let projected = PrefixTuningConfig {
        num_virtual_tokens: 5,
        prefix_projection: true,
        encoder_hidden_size: 16,
    };
    assert_only_adapter_trains(&projected, 5);
    assert_only_adapter_trains(
        &PromptTuningConfig {
            num_virtual_tokens: 3,
            ..Default::default()
        },
        1,
    );
}

#[test]
fn prompt_tuning_text_init_tiles_the_init_text_embeddings() {
    let device = Device::flex();
    let config = PromptTuningConfig {
        num_virtual_tokens: 5,
        prompt_tuning_init: PromptTuningInit::Text,
        prompt_tuning_init_text: Some("7 8 9".into()),
    };
    let encoder = config.build().unwrap().apply(tiny_gpt2(&device)).unwrap();
    let table = gpt2(&encoder)
        .prompt_encoder
        .as_ref()
        .unwrap()
        .embedding
        .weight
        .val();
    let ids = Tensor::<2, Int>::from_data([[7, 8, 9, 7, 8]], &device);
    let want = encoder.embed_tokens(ids).reshape([5, 64]);
    assert_eq!(max_abs_diff(table, want), 0.0);
}

/// Perturbs every trainable parameter so a save/load round trip is a real test.
fn trained(adapter: &dyn PeftAdapter, device: &Device) -> Component<dyn TextEncoder> {
    let encoder = adapter.apply(tiny_gpt2(device)).unwrap();
    let params = cleft_core::peft::named_params(&encoder);
    let values = params
        .into_iter()
        .filter(|p| adapter.is_trainable(&p.path))
        .enumerate()
        .map(|(i, p)| {
            let n = p.numel();
            let data = (0..n)
                .map(|j| 1.0 + 0.3 * (((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5))
                .collect();
            (
                p.path,
                cleft_peft::files::HostTensor {
                    shape: p.shape,
                    data,
                },
            )
        })
        .collect();
    cleft_peft::files::write_params(encoder, values).unwrap()
}

#[test]
fn adapters_saved_by_cleft_reload_bit_exactly_and_export_for_hf_peft() {
    let device = Device::flex();
    let export = std::env::var_os("CLEFT_PEFT_EXPORT").map(std::path::PathBuf::from);
    let root = export.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cleft-peft-save-{}", std::process::id()))
    });
    let configs: Vec<(&str, Box<dyn PeftConfig>)> = vec![
        (
            "lora",
            Box::new(LoraConfig {
                r: 4,
                lora_alpha: 8.0,
                use_rslora: true,
                bias: LoraBias::LoraOnly,
                modules_to_save: vec!["ln_f".into()],
                ..LoraConfig::default()
            }),
        ),
        (
            "lora_mlp_regex",
            Box::new(LoraConfig {
                target_modules: cleft_peft::TargetModules::Regex(
                    r"h\.\d+\.mlp\.c_(fc|proj)".into(),
                ),
                ..LoraConfig::default()
            }),
        ),
        ("ia3", Box::new(Ia3Config::default())),
        (
            "prefix",
            Box::new(PrefixTuningConfig {
                num_virtual_tokens: 4,
                prefix_projection: true,
                encoder_hidden_size: 8,
            }),
        ),
        (
            "prompt_tuning",
            Box::new(PromptTuningConfig {
                num_virtual_tokens: 3,
                ..Default::default()
            }),
        ),
    ];
    for (name, config) in configs {
        let adapter = config.build().unwrap();
        let encoder = trained(adapter.as_ref(), &device);
        let dir = root.join(name);
        adapter.save(&encoder, &dir).unwrap();
        let want = hidden(&encoder, &device);
        let (_, reloaded, report) = from_pretrained(tiny_gpt2(&device), &dir).unwrap();
        assert!(
            report.unexpected.is_empty(),
            "{name}: {:?}",
            report.unexpected
        );
        let diff = max_abs_diff(hidden(&reloaded, &device), want.clone());
        assert_eq!(
            diff, 0.0,
            "{name}: save → load changes the outputs by {diff}"
        );
        if export.is_some() {
            let data = want.clone().into_data().try_to_vec::<f32>().unwrap();
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                want.dims().to_vec(),
                &bytes,
            )
            .unwrap();
            safetensors::tensor::serialize_to_file(
                [("last_hidden_state", view)],
                None,
                &dir.join("cleft_output.safetensors"),
            )
            .unwrap();
        }
    }
    if export.is_none() {
        std::fs::remove_dir_all(&root).unwrap();
    }
}
