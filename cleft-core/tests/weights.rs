//! Loading HF-layout safetensors checkpoints into burn modules (`cleft_core::weights`).

use std::collections::HashMap;
use std::path::Path;

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use cleft_core::weights::{
    SafetensorsCheckpoint, WeightMapping, load_weights, summarize_checkpoint,
};
use safetensors::{Dtype, tensor::TensorView};

#[derive(Module, Debug)]
struct Block {
    dense: Linear,
    norm: LayerNorm,
}

#[derive(Module, Debug)]
struct Net {
    block: Vec<Block>,
}

fn net(device: &Device) -> Net {
    let block = || Block {
        dense: LinearConfig::new(3, 2).init(device),
        norm: LayerNormConfig::new(2).init(device),
    };
    Net {
        block: vec![block(), block()],
    }
}

fn values(n: usize, offset: f32) -> Vec<f32> {
    (0..n).map(|i| offset + i as f32 * 0.5).collect()
}

/// HF names and layouts: `nn.Linear` weight `[out, in]`, LayerNorm `weight`/`bias`.
fn hf_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut tensors = vec![("embeddings.position_ids".into(), vec![1, 2], vec![0.0, 1.0])];
    for layer in 0..2 {
        let p = format!("model.block.{layer}");
        tensors.push((
            format!("{p}.dense.weight"),
            vec![2, 3],
            values(6, layer as f32),
        ));
        tensors.push((format!("{p}.dense.bias"), vec![2], values(2, 10.0)));
        tensors.push((format!("{p}.norm.weight"), vec![2], values(2, 20.0)));
        tensors.push((format!("{p}.norm.bias"), vec![2], values(2, 30.0)));
    }
    tensors
}

fn write_checkpoint(dir: &Path, skip: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    let tensors: Vec<_> = hf_tensors()
        .into_iter()
        .filter(|(n, _, _)| Some(n.as_str()) != skip)
        .collect();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: HashMap<String, TensorView> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures": ["NetModel"]}"#,
    )
    .unwrap();
}

fn mapping() -> WeightMapping {
    WeightMapping {
        transpose_linear: true,
        prefixes: vec!["model.".into()],
        ..WeightMapping::default()
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-weights-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn loads_by_path_with_transpose_norm_renames_and_prefix() {
    let dir = temp_dir("ok");
    write_checkpoint(&dir, None);
    let device = Device::default();
    let checkpoint = SafetensorsCheckpoint::open(&dir).unwrap();
    let (loaded, report) = load_weights(net(&device), &checkpoint, &mapping()).unwrap();
    assert_eq!(report.loaded, 8);
    assert!(report.missing.is_empty());
    assert_eq!(report.unexpected, ["embeddings.position_ids"]);
    // HF [out=2, in=3] row-major 1.0, 1.5, 2.0 / 2.5, 3.0, 3.5 → burn [in, out].
    let weight: Vec<f32> = loaded.block[1]
        .dense
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(weight, [1.0, 2.5, 1.5, 3.0, 2.0, 3.5]);
    let gamma: Vec<f32> = loaded.block[0]
        .norm
        .gamma
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(gamma, [20.0, 20.5]);
    let beta: Vec<f32> = loaded.block[0]
        .norm
        .beta
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(beta, [30.0, 30.5]);

    let ignoring = WeightMapping {
        ignored: vec!["position_ids".into()],
        ..mapping()
    };
    let (_, report) = load_weights(net(&device), &checkpoint, &ignoring).unwrap();
    assert!(report.unexpected.is_empty());

    let summary = summarize_checkpoint(&dir).unwrap();
    assert_eq!(
        (
            summary.architecture.as_str(),
            summary.parameters,
            summary.tensors
        ),
        ("NetModel", 26, 9)
    );
}

#[test]
fn a_removed_tensor_fails_the_load_naming_it() {
    let dir = temp_dir("missing");
    write_checkpoint(&dir, Some("model.block.1.norm.weight"));
    let device = Device::default();
    let checkpoint = SafetensorsCheckpoint::open(&dir).unwrap();
    let error = load_weights(net(&device), &checkpoint, &mapping())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("missing tensors: [block.1.norm.weight]"),
        "{error}"
    );

    let allowed = WeightMapping {
        allow_missing: true,
        ..mapping()
    };
    let (_, report) = load_weights(net(&device), &checkpoint, &allowed).unwrap();
    assert_eq!(report.missing, ["block.1.norm.weight"]);
}

#[test]
fn shape_mismatch_and_untransposed_layout_are_errors() {
    let dir = temp_dir("shape");
    write_checkpoint(&dir, None);
    let device = Device::default();
    let checkpoint = SafetensorsCheckpoint::open(&dir).unwrap();
    let conv1d = WeightMapping {
        transpose_linear: false,
        ..mapping()
    };
    let error = load_weights(net(&device), &checkpoint, &conv1d)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("model.block.0.dense.weight: module [3, 2] vs checkpoint [2, 3]"),
        "{error}"
    );
}

#[test]
fn sharded_index_and_missing_directory_files() {
    let dir = temp_dir("sharded");
    write_checkpoint(&dir, None);
    std::fs::rename(
        dir.join("model.safetensors"),
        dir.join("model-00001-of-00001.safetensors"),
    )
    .unwrap();
    let map: serde_json::Map<String, serde_json::Value> = hf_tensors()
        .into_iter()
        .map(|(n, _, _)| (n, "model-00001-of-00001.safetensors".into()))
        .collect();
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let checkpoint = SafetensorsCheckpoint::open(&dir).unwrap();
    let (_, report) = load_weights(net(&Device::default()), &checkpoint, &mapping()).unwrap();
    assert_eq!(report.loaded, 8);

    let empty = temp_dir("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let error = SafetensorsCheckpoint::open(&empty).unwrap_err().to_string();
    assert!(error.contains("no model.safetensors"), "{error}");
}
