//! DoRA from the plugin against HF PEFT (`tools/golden_dora.py`: `LoraConfig(use_dora=True)`,
//! r = 4, α = 8, `c_attn` + `mlp.c_proj` on the tiny random GPT-2 of the other PEFT goldens): an
//! adapter HF PEFT saved loads and gives its outputs, merged and unmerged; a fresh adapter starts
//! at the base model and trains exactly its three tensors per layer; adapters saved here have HF
//! PEFT's keys and shapes and reload bit-exactly (with `CLEFT_PEFT_EXPORT=DIR` they are kept for
//! `tools/golden_dora.py --check-rust DIR`, which loads them in HF PEFT).

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Int;
use cleft_core::bridge::DynModuleUpcast;
use cleft_core::peft::named_params;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder, TextTokenizer, TokenBatch};
use cleft_gpt::{Gpt2Config, Gpt2Model};
use cleft_peft::files::{HostTensor, read_adapter_config, read_adapter_tensors, write_params};
use cleft_plugin_dora::{DoraAdapter, DoraConfig};
use cleft_testing::{Golden, Tolerance, golden_dir, param_values, values};

/// Whitespace-separated ids below 100 (the tiny GPT-2's vocabulary), right-padded with 99.
#[derive(Debug)]
struct Numbers;

impl TextTokenizer for Numbers {
    fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<TokenBatch, CleftError> {
        let rows: Vec<Vec<i64>> = texts
            .iter()
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .take(max_len)
                    .collect()
            })
            .collect();
        // One padding column at least, as the golden tokenizer of the PEFT tests.
        let len = rows.iter().map(Vec::len).max().unwrap_or(0) + 1;
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for row in &rows {
            for t in 0..len {
                ids.push(row.get(t).copied().unwrap_or(99));
                mask.push(i64::from(t < row.len()));
            }
        }
        Ok(TokenBatch {
            ids,
            mask,
            batch: rows.len(),
            len,
        })
    }

    fn vocab_size(&self) -> usize {
        100
    }
}

fn tiny_gpt2(device: &Device) -> Component<dyn TextEncoder> {
    let dir = golden_dir().join("tiny-gpt2");
    let section = Gpt2Config {
        max_len: 16,
        ..Gpt2Config::default()
    };
    let config = cleft_gpt::load::merged_config(&dir, &section).unwrap();
    let (model, report) =
        cleft_gpt::load::load_gpt2(&dir, &config, Arc::new(Numbers), device).unwrap();
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    Component::<dyn TextEncoder>::new(model)
}

fn dora_dir() -> PathBuf {
    golden_dir().join("tiny-gpt2-dora")
}

/// The golden's own settings, read from HF PEFT's `adapter_config.json`.
fn hf_config() -> DoraConfig {
    DoraConfig::from_peft_json(&read_adapter_config(&dora_dir()).unwrap()).unwrap()
}

fn hf_adapter() -> DoraAdapter {
    DoraAdapter::new(hf_config())
}

/// Final hidden states on the golden inputs (`tiny_gpt2.safetensors`: 3 rows, L = 10).
fn hidden(encoder: &Component<dyn TextEncoder>, device: &Device) -> Tensor<3> {
    let inputs = Golden::open("tiny_gpt2");
    let ids: Tensor<2, Int> = inputs.ints("input_ids", device);
    let mask: Tensor<2, Int> = inputs.ints("attention_mask", device);
    let any: &dyn Any = encoder.as_dyn_module();
    let model = any.downcast_ref::<Gpt2Model>().expect("a GPT-2 encoder");
    model.hidden_states(encoder.embed_tokens(ids), mask)
}

/// A number recorded by `tools/golden_dora.py` in `tiny_gpt2_dora.json`.
fn recorded(pointer: &str) -> f64 {
    let path = golden_dir().join("tiny_gpt2_dora.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.pointer(pointer)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{} has no number at {pointer}", path.display()))
}

/// The suite's noise model with the golden's own float32-vs-float64 spread, and the issue's
/// acceptance bound (1e-5) on top.
fn check_parity(name: &str, actual: Tensor<3>) {
    let spread = recorded(&format!("/outputs/{name}/f32_vs_f64"));
    let tolerance = Tolerance::f32_ops().with_spread(
        spread,
        &format!("tiny_gpt2_dora.json outputs.{name}.f32_vs_f64"),
    );
    let comparison = Golden::open("tiny_gpt2_dora").check_with(name, actual, &tolerance);
    assert!(
        comparison.max_diff <= 1e-5,
        "{name}: DoRA differs from HF PEFT by {:.2e} > 1e-5",
        comparison.max_diff
    );
}

fn max_abs_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn an_adapter_made_by_hf_peft_loads_matches_and_merges() {
    let device = Device::flex();
    let adapter = hf_adapter();
    let encoder = adapter.apply(tiny_gpt2(&device)).unwrap();
    let (mut encoder, report) = adapter.load_weights(encoder, &dora_dir()).unwrap();
    assert_eq!(report.loaded, 12, "A, B and m for 2 layers × 2 modules");
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let unmerged = hidden(&encoder, &device);
    check_parity("dora_last_hidden_state", unmerged.clone());

    for (_, layer) in encoder.peft_hooks_mut().unwrap().linear_layers_mut() {
        layer.merge();
    }
    check_parity("dora_merged_last_hidden_state", hidden(&encoder, &device));
    let merge_spread = recorded("/hf_merge_vs_unmerged_max_abs");
    Tolerance::f32_ops()
        .with_spread(merge_spread, "HF PEFT's own merged-vs-unmerged distance")
        .check(
            "DoRA merged vs unmerged",
            &values(hidden(&encoder, &device)),
            &values(unmerged.clone()),
        );
    for (_, layer) in encoder.peft_hooks_mut().unwrap().linear_layers_mut() {
        layer.unmerge();
    }
    Tolerance::f32_ops()
        .with_spread(merge_spread, "HF PEFT's own merged-vs-unmerged distance")
        .check(
            "DoRA unmerged again vs unmerged",
            &values(hidden(&encoder, &device)),
            &values(unmerged.clone()),
        );

    let plain = adapter.merge(encoder).unwrap();
    let left: Vec<String> = named_params(&plain)
        .into_iter()
        .map(|p| p.path)
        .filter(|p| p.contains("lora_"))
        .collect();
    assert!(left.is_empty(), "merge_and_unload left {left:?}");
    check_parity("dora_merged_last_hidden_state", hidden(&plain, &device));
}

#[test]
fn a_fresh_adapter_starts_at_the_base_model() {
    let device = Device::flex();
    let base = hidden(&tiny_gpt2(&device), &device);
    let adapted = hidden(&hf_adapter().apply(tiny_gpt2(&device)).unwrap(), &device);
    // B = 0 and m = ‖W‖, so g = 1 and the correction terms vanish up to rounding of m / ‖W‖.
    Tolerance::f32_ops().check("fresh DoRA vs base model", &values(adapted), &values(base));
}

/// Two AdamW steps on a squared-feature loss.
fn trained(adapter: &DoraAdapter, device: &Device) -> Component<dyn TextEncoder> {
    let mut encoder = adapter.apply(tiny_gpt2(device)).unwrap();
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    for _ in 0..2 {
        let texts = ["5 17 42 3".to_string(), "11 2".to_string()];
        let (ids, mask) = encoder
            .tokenizer()
            .encode_batch(&texts, 16)
            .unwrap()
            .to_tensors(device);
        let loss = encoder.forward(ids, mask).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &encoder);
        encoder = optim.step(1e-2, encoder, grads);
    }
    encoder
}

#[test]
fn training_changes_exactly_the_factors_and_magnitudes() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let adapter = hf_adapter();
    let before = param_values(&adapter.apply(tiny_gpt2(&device)).unwrap());
    device.seed(7);
    let after = param_values(&trained(&adapter, &device));
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.as_str())
        .collect();
    let mut expected = Vec::new();
    for layer in 0..2 {
        for module in ["attn.c_attn", "mlp.c_proj"] {
            for name in ["lora_A.weight", "lora_B.weight", "lora_magnitude_vector"] {
                expected.push(format!("h.{layer}.{module}.{name}"));
            }
        }
    }
    assert_eq!(
        changed, expected,
        "exactly A, B and m of the 4 targets train"
    );
}

fn keys_and_shapes(dir: &Path) -> Vec<(String, Vec<usize>)> {
    read_adapter_tensors(dir)
        .unwrap()
        .into_iter()
        .map(|(key, tensor)| (key, tensor.shape))
        .collect()
}

#[test]
fn saved_adapters_have_hf_peft_keys_and_reload_bit_exactly() {
    let export = std::env::var_os("CLEFT_PEFT_EXPORT").map(PathBuf::from);
    let root = export.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cleft-dora-save-{}", std::process::id()))
    });
    let dir = root.join("dora");
    let device = Device::flex();
    let adapter = hf_adapter();
    let encoder = perturbed(&adapter, &device);
    adapter.save(&encoder, &dir).unwrap();
    assert_eq!(keys_and_shapes(&dir), keys_and_shapes(&dora_dir()));
    let json = read_adapter_config(&dir).unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["use_dora"], true);
    assert_eq!(DoraConfig::from_peft_json(&json).unwrap(), hf_config());

    let want = hidden(&encoder, &device);
    let reloaded = adapter.apply(tiny_gpt2(&device)).unwrap();
    let (reloaded, report) = adapter.load_weights(reloaded, &dir).unwrap();
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let diff = max_abs_diff(hidden(&reloaded, &device), want.clone());
    assert_eq!(diff, 0.0, "save → load changes the outputs by {diff}");
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
    } else {
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// Every trainable parameter set to distinct non-trivial values, so a save/load round trip is a
/// real test (all of A, B and m away from their initial values).
fn perturbed(adapter: &DoraAdapter, device: &Device) -> Component<dyn TextEncoder> {
    let encoder = adapter.apply(tiny_gpt2(device)).unwrap();
    let values = named_params(&encoder)
        .into_iter()
        .filter(|p| adapter.is_trainable(&p.path))
        .enumerate()
        .map(|(i, p)| {
            let data = (0..p.numel())
                .map(|j| 1.0 + 0.3 * (((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5))
                .collect();
            let tensor = HostTensor {
                shape: p.shape,
                data,
            };
            (p.path, tensor)
        })
        .collect();
    write_params(encoder, values).unwrap()
}

#[test]
fn other_adapters_and_unsupported_features_are_refused_by_name() {
    let lora = read_adapter_config(&golden_dir().join("tiny-gpt2-lora")).unwrap();
    let error = DoraConfig::from_peft_json(&lora).unwrap_err().to_string();
    assert!(error.contains("not a DoRA adapter"), "{error}");
    let mut patterned = read_adapter_config(&dora_dir()).unwrap();
    patterned["rank_pattern"] = serde_json::json!({"h.0.attn.c_attn": 8});
    let error = DoraConfig::from_peft_json(&patterned)
        .unwrap_err()
        .to_string();
    assert!(error.contains("rank_pattern"), "{error}");
    // The built-in LoRA points to this plugin instead of ignoring `use_dora`.
    let error = cleft_peft::config_from_peft_json(&read_adapter_config(&dora_dir()).unwrap())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(error.contains("plugin-dora"), "{error}");
}
