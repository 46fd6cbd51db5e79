//! Parity of `hf-vit` with HF transformers `ViTModel` on the tiny random checkpoint
//! `fixtures/golden/tiny-hf-vit` (`fixtures/golden/tiny_hf_vit.*`, made by
//! `tools/golden_hf_vit.py`): at the native 32 px and at 48 px with interpolated position
//! embeddings, for every pooling mode.

use std::path::PathBuf;

use burn::prelude::*;
use cleft_core::VisionEncoder;
use cleft_core::registry::VisionEncoderConfig;
use cleft_core::weights::{SafetensorsCheckpoint, TensorSource};
use cleft_testing::{Golden, golden_dir};
use cleft_vit::{HfVitConfig, HfVitModel, HfVitPooling, load_hf_vit};

/// Tensors of the tiny checkpoint: 4 embedding + 2 × 16 block + 2 layernorm + 2 pooler.
const TENSORS: usize = 40;

fn fixtures() -> PathBuf {
    golden_dir()
}

fn golden() -> Golden {
    Golden::open("tiny_hf_vit")
}

fn section(pooling: HfVitPooling, size: usize) -> HfVitConfig {
    HfVitConfig {
        pooling,
        input_size: Some(size),
        weights: Some(fixtures().join("tiny-hf-vit")),
        ..HfVitConfig::default()
    }
}

fn model(pooling: HfVitPooling, size: usize, device: &Device) -> HfVitModel {
    let (model, report) = load_hf_vit(
        &fixtures().join("tiny-hf-vit"),
        &section(pooling, size),
        device,
    )
    .unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    let expected = if pooling == HfVitPooling::Pooler {
        TENSORS
    } else {
        TENSORS - 2
    };
    assert_eq!(
        report.loaded, expected,
        "pooler tensors load only with a pooler"
    );
    model
}

fn check(size: usize) {
    let device = Device::flex();
    let golden = golden();
    let images: Tensor<4> = golden.float(&format!("pixel_values_{size}"), &device);
    for (pooling, name) in [
        (HfVitPooling::Pooler, "pooler_output"),
        (HfVitPooling::Cls, "cls"),
        (HfVitPooling::Mean, "mean"),
    ] {
        let model = model(pooling, size, &device);
        assert_eq!(model.image_size(), size);
        assert_eq!(model.dim(), 64);
        let output = model.forward(images.clone());
        let key = format!("{name}_{size}");
        golden.check(&key, output.pooled);
        golden.check(&format!("last_hidden_state_{size}"), output.tokens.unwrap());
        if size != 32 && pooling == HfVitPooling::Cls {
            let grid = size / 8;
            let key = format!("position_embeddings_{size}");
            let table = model.position_embeddings(grid, grid);
            golden.check(&key, table);
        }
    }
}

#[test]
fn tiny_vit_matches_transformers_at_native_32_px() {
    check(32);
}

#[test]
fn tiny_vit_matches_transformers_at_48_px_with_interpolated_position_embeddings() {
    check(48);
}

#[test]
fn building_from_the_section_loads_the_checkpoint() {
    let device = Device::flex();
    let golden = golden();
    let encoder = section(HfVitPooling::Cls, 32).build(&device).unwrap();
    let images: Tensor<4> = golden.float("pixel_values_32", &device);
    golden.check("cls_32", encoder.forward(images).pooled);
}

#[test]
fn a_checkpoint_without_one_tensor_fails_naming_it() {
    let removed = "encoder.layer.1.attention.attention.key.bias";
    let source = fixtures().join("tiny-hf-vit");
    let dir = std::env::temp_dir().join(format!("cleft-hf-vit-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
    let checkpoint = SafetensorsCheckpoint::open(&source).unwrap();
    let kept: Vec<(String, Vec<usize>, Vec<u8>)> = checkpoint
        .names()
        .into_iter()
        .filter(|name| name != removed)
        .map(|name| {
            let t = checkpoint.read(&name).unwrap();
            let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, t.shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (n.clone(), view.unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let error = load_hf_vit(&dir, &HfVitConfig::default(), &Device::flex())
        .expect_err("a missing tensor must fail the load")
        .to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        error.contains(&format!("missing tensors: [{removed}]")),
        "{error}"
    );
}

#[test]
fn pooler_pooling_without_a_pooler_and_unknown_presets_are_config_errors() {
    let device = Device::flex();
    let no_pooler = HfVitConfig {
        pooling: HfVitPooling::Pooler,
        add_pooling_layer: Some(false),
        ..HfVitConfig::default()
    };
    let error = no_pooler.init(&device).err().unwrap().to_string();
    assert!(error.contains("vision.add_pooling_layer"), "{error}");
    let preset = HfVitConfig {
        preset: Some("vit-b14".into()),
        ..HfVitConfig::default()
    };
    let error = preset.init(&device).err().unwrap().to_string();
    assert!(
        error.contains("vision.preset") && error.contains("vit-b16"),
        "{error}"
    );
    let size = HfVitConfig {
        input_size: Some(36),
        ..HfVitConfig::default()
    };
    let error = size.init(&device).err().unwrap().to_string();
    assert!(error.contains("vision.input_size = 36"), "{error}");
}

/// `transformers.ViTModel(ViTConfig())`: 86,389,248 parameters with the pooler, 85,798,656
/// without (counted in the golden venv).
#[test]
fn vit_b16_preset_has_transformers_parameter_counts_without_allocating() {
    let device = Device::flex();
    let count = |pooling| {
        let config = HfVitConfig {
            preset: Some("vit-b16".into()),
            pooling,
            ..HfVitConfig::default()
        };
        let model = config.init(&device).unwrap();
        assert_eq!(
            (model.image_size(), model.channels(), model.dim()),
            (224, 3, 768)
        );
        model.num_params()
    };
    assert_eq!(count(HfVitPooling::Cls), 85_798_656);
    assert_eq!(count(HfVitPooling::Pooler), 86_389_248);
}

#[test]
fn random_init_runs_at_another_input_size() {
    let device = Device::flex();
    let config = HfVitConfig {
        input_size: Some(48),
        ..HfVitConfig::default()
    };
    let model = config.init(&device).unwrap();
    let output = model.forward(Tensor::zeros([2, 1, 48, 48], &device));
    assert_eq!(output.pooled.dims(), [2, 64]);
    assert_eq!(output.tokens.unwrap().dims(), [2, 37, 64]);
}
