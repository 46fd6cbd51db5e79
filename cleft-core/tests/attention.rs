//! The shared attention function against the textbook formula.

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::softmax;
use cleft_core::attention::{attention, merge_heads, split_heads};
use cleft_testing::{Tolerance, values};

#[test]
fn matches_softmax_of_scaled_scores_with_a_padding_mask() {
    let device = Device::flex();
    let shape = [2, 3, 5, 4];
    let draw = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let (q, k, v) = (draw(), draw(), draw());
    let pad = Tensor::<2, Int>::from_data([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], &device);
    let masked = pad.equal_elem(0).reshape([2, 1, 1, 5]);
    let scale = 0.37;
    let got = attention(q.clone(), k.clone(), v.clone(), Some(masked.clone()), scale);
    let scores = (q.matmul(k.swap_dims(2, 3)) * scale)
        .mask_fill(masked.expand([2, 3, 5, 5]), f32::NEG_INFINITY);
    let want = softmax(scores, 3).matmul(v);
    Tolerance::f32_ops().check("attention", &values(got), &values(want));
}

#[test]
fn heads_split_and_merge_back() {
    let device = Device::flex();
    let x = Tensor::<3>::random([2, 7, 12], Distribution::Normal(0.0, 1.0), &device);
    let split = split_heads(x.clone(), 3);
    assert_eq!(split.dims(), [2, 3, 7, 4]);
    assert_eq!(values(merge_heads(split)), values(x));
}
