//! Parity with HF transformers `Dinov2Model` on the converted DINOv2-S checkpoint
//! (`fixtures/golden/dinov2_s_{224,518}.*`, made by `tools/golden_encoders.py`). Needs the real
//! weights: run `tools/fetch-assets.sh`.

use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_core::VisionEncoder;
use cleft_testing::{Golden, require_asset};
use cleft_vit::{Dinov2Model, VitConfig, VitPooling, load_dinov2};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

fn golden(size: usize) -> Golden {
    Golden::open(&format!("dinov2_s_{size}"))
}

fn model(size: usize, pooling: VitPooling, device: &Device) -> Dinov2Model {
    require_asset("dinov2-s/model.safetensors");
    let dir = require_asset("dinov2-s");
    let section = VitConfig {
        pooling,
        input_size: Some(size),
        ..VitConfig::default()
    };
    let (model, report) = load_dinov2(&dir, &section, device).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.loaded, 223);
    model
}

/// `[2, 3, S, S]`: the X-ray (grey, replicated) and the synthetic image, normalised in f32 in
/// the golden's order: `(u8 / 255 - mean) / std`.
fn pixels(golden: &Golden, size: usize, device: &Device) -> Tensor<4> {
    let (_, xray) = golden.int_values("image_xray_u8");
    let (_, synthetic) = golden.int_values("image_synthetic_u8");
    let plane = size * size;
    let mut values = Vec::with_capacity(2 * 3 * plane);
    for (image, grey) in [(&xray, true), (&synthetic, false)] {
        for c in 0..3 {
            for p in 0..plane {
                let u8 = image[if grey { p } else { c * plane + p }] as f32;
                values.push((u8 / 255.0 - MEAN[c]) / STD[c]);
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [2, 3, size, size]), device)
}

fn check(size: usize) {
    let device = Device::flex();
    let golden = golden(size);
    let images = pixels(&golden, size, &device);
    let first16 = images
        .clone()
        .slice([0..2, 0..1, 0..1, 0..16])
        .reshape([2, 16]);
    golden.check("pixel_values_first16", first16);

    let prenorm_model = model(size, VitPooling::PrenormMean, &device);
    let grid = size / 14;
    if size == 224 {
        let table = prenorm_model.position_embeddings(grid, grid);
        golden.check("position_embeddings_interpolated", table);
    }
    let prenorm = prenorm_model.prenorm_tokens(images.clone());
    assert_eq!(prenorm.dims(), [2, 1 + grid * grid, 384]);
    let first5 = |t: Tensor<3>| t.slice([0..2, 0..5]);
    golden.check("prenorm_first5", first5(prenorm));
    let output = prenorm_model.forward(images);
    golden.check("mean_tokens_prenorm", output.pooled);
    let tokens = output.tokens.unwrap();
    golden.check("last_hidden_state_first5", first5(tokens.clone()));
    let cls = tokens.slice([0..2, 0..1]).reshape([2, 384]);
    golden.check("pooler_output", cls);
}

#[test]
fn dinov2_s_matches_transformers_at_224_with_interpolated_position_embeddings() {
    check(224);
}

#[test]
fn cls_pooling_is_the_normed_cls_token() {
    let device = Device::flex();
    let golden = golden(224);
    let cls = model(224, VitPooling::Cls, &device)
        .forward(pixels(&golden, 224, &device))
        .pooled;
    golden.check("pooler_output", cls);
}

#[test]
fn dinov2_s_matches_transformers_at_native_518() {
    check(518);
}
