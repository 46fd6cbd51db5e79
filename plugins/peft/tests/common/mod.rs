//! Shared helpers: the tiny HF GPT-2 golden model and its inputs.
#![allow(dead_code)]

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleft_core::bridge::DynModuleUpcast;
use cleft_core::burn::prelude::*;
use cleft_core::burn::tensor::{Int, TensorData};
use cleft_core::peft::named_params;
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer, TokenBatch};
use cleft_gpt::{Gpt2Config, Gpt2Model};
use cleft_peft::files::{HostTensor, read_safetensors, write_params};

/// `fixtures/golden/…`.
pub fn golden(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden")
        .join(path)
}

/// Ids are whitespace-separated integers below 100 (the golden vocabulary).
#[derive(Debug)]
pub struct NumberTokenizer;

impl TextTokenizer for NumberTokenizer {
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

/// The golden GPT-2 config (`fixtures/golden/tiny-gpt2/config.json`).
pub fn tiny_config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 100,
        n_positions: 64,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        scale_attn_by_inverse_layer_idx: true,
        max_len: 16,
        ..Gpt2Config::default()
    }
}

/// HF key of a burn parameter path (`gamma`/`beta` → `weight`/`bias`).
fn hf_key(path: &str) -> String {
    match path.rsplit_once('.') {
        Some((m, "gamma")) => format!("{m}.weight"),
        Some((m, "beta")) => format!("{m}.bias"),
        _ => path.to_string(),
    }
}

/// The tiny GPT-2 with the golden HF weights (Conv1D layout = burn layout, no transposes).
pub fn tiny_gpt2(device: &Device) -> Component<dyn TextEncoder> {
    let model = Gpt2Model::init(&tiny_config(), Arc::new(NumberTokenizer), device);
    let encoder = Component::<dyn TextEncoder>::new(model);
    let mut file = read_safetensors(&golden("tiny-gpt2/model.safetensors")).unwrap();
    let values: HashMap<String, HostTensor> = named_params(&encoder)
        .into_iter()
        .map(|p| {
            let key = hf_key(&p.path);
            let value = file
                .remove(&key)
                .unwrap_or_else(|| panic!("{key} missing in the golden model"));
            (p.path, value)
        })
        .collect();
    write_params(encoder, values).unwrap()
}

/// A float tensor of a golden safetensors file.
pub fn golden_f32<const D: usize>(file: &str, name: &str, device: &Device) -> Tensor<D> {
    let bytes = std::fs::read(golden(file)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(name).unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    let data: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor::from_data(TensorData::new(data, view.shape().to_vec()), device)
}

/// An int64 tensor of a golden safetensors file.
pub fn golden_i64(file: &str, name: &str, device: &Device) -> Tensor<2, Int> {
    let bytes = std::fs::read(golden(file)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(name).unwrap();
    let data: Vec<i64> = view
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor::from_data(TensorData::new(data, view.shape().to_vec()), device)
}

/// The golden inputs: ids and mask `[3, 10]`.
pub fn golden_inputs(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    (
        golden_i64("tiny_gpt2.safetensors", "input_ids", device),
        golden_i64("tiny_gpt2.safetensors", "attention_mask", device),
    )
}

/// The concrete GPT-2 inside a component.
pub fn gpt2(encoder: &Component<dyn TextEncoder>) -> &Gpt2Model {
    let any: &dyn Any = encoder.as_dyn_module();
    any.downcast_ref::<Gpt2Model>().expect("a GPT-2 encoder")
}

/// Final hidden states of the encoder on the golden inputs.
pub fn hidden(encoder: &Component<dyn TextEncoder>, device: &Device) -> Tensor<3> {
    let (ids, mask) = golden_inputs(device);
    let model = gpt2(encoder);
    model.hidden_states(encoder.embed_tokens(ids), mask)
}

/// Holds `actual` to golden tensor `stem/name` (`fixtures/golden/<stem>.safetensors`) under the
/// suite's noise model ([`cleft_testing::Tolerance::golden`]).
pub fn check_golden<const D: usize>(stem: &str, name: &str, actual: Tensor<D>) {
    cleft_testing::Golden::open(stem).check(name, actual);
}

/// Holds a merged model's output to the unmerged one's: float32 rounding of the merged weights,
/// with HF PEFT's own merged-vs-unmerged distance on the same adapter (`noise.json →
/// merge.tiny_gpt2/<method>`) as the spread.
pub fn check_merged<const D: usize>(
    what: &str,
    method: &str,
    merged: Tensor<D>,
    unmerged: Tensor<D>,
) {
    let key = format!("tiny_gpt2/{method}");
    let spread = cleft_testing::merge_noise(&key).unwrap_or_else(|e| panic!("{e}"));
    cleft_testing::Tolerance::f32_ops()
        .with_spread(
            spread,
            &format!("noise.json merge.{key} (HF PEFT's own merge)"),
        )
        .check(
            what,
            &cleft_testing::values(merged),
            &cleft_testing::values(unmerged),
        );
}

/// Largest absolute difference (for round trips that must be exact).
pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// Copies the adapter directory `from` into a fresh temporary directory named after `tag`, with
/// every tensor key rewritten by `rename` (e.g. to the keys PEFT writes for a task-head model).
pub fn adapter_with_keys(from: &Path, tag: &str, rename: impl Fn(&str) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-peft-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        from.join("adapter_config.json"),
        dir.join("adapter_config.json"),
    )
    .unwrap();
    let tensors = read_safetensors(&from.join("adapter_model.safetensors")).unwrap();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            let data = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (rename(k), data, t.shape.clone())
        })
        .collect();
    let views = bytes.iter().map(|(k, d, s)| {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d);
        (k.clone(), view.unwrap())
    });
    safetensors::tensor::serialize_to_file(views, None, &dir.join("adapter_model.safetensors"))
        .unwrap();
    dir
}
