//! The encoder as a plugin author tests it, in-process (this test links the plugin's dylib and
//! `libcleft_dylib.so`, as the `cleft` host does).

use burn::prelude::*;
use burn::tensor::Distribution;
use cleft_core::registry::VisionEncoderConfig;
use cleft_plugin_convnext::ConvNextConfig;

#[test]
fn pools_each_image_to_the_last_stage_width_and_refuses_a_bad_side() {
    let device = Device::flex();
    let config = ConvNextConfig {
        image_size: 32,
        dims: vec![8, 16],
        depths: vec![1, 2],
        ..Default::default()
    };
    let encoder = config.build(&device).unwrap();
    let images = Tensor::<4>::random([3, 1, 32, 32], Distribution::Default, &device);
    let out = encoder.forward(images.clone());
    assert_eq!(out.pooled.dims(), [3, 16]);
    // Each image is encoded alone: batch composition does not change a row beyond f32
    // rounding of the reductions (GEMM blocking may differ with the batch size): a tolerance
    // of 1e-5 · (1 + max|row|), far above f32's 1.2e-7 per operation over these short sums.
    let single = encoder.forward(images.slice([1..2])).pooled;
    let scale = single.clone().abs().max().into_scalar::<f32>();
    let diff = (out.pooled.slice([1..2]) - single)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(
        diff <= 1e-5 * (1.0 + scale),
        "row 1 differs by {diff} when encoded alone"
    );
    // 36 is not a multiple of patch 4 · 2 (two stages).
    let bad = ConvNextConfig {
        image_size: 36,
        ..config
    };
    let error = bad.build(&device).unwrap_err().to_string();
    assert!(error.contains("vision.image_size = 36"), "{error}");
}
