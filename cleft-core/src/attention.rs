//! The one attention function of every cleft transformer: scaled dot-product attention through
//! burn's `attention` module op, which backends implement with fused kernels (flex: a naive or a
//! flash-style tiled kernel chosen by sequence length; autodiff: the differentiable fallback).

use burn::nn::attention::generate_autoregressive_mask;
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;

/// `softmax(q·kᵀ · scale, masked → −∞) · v`.
///
/// A row whose keys are all masked yields zeros (burn's NaN-safe softmax). Without a mask it is
/// [`cleft_kernels::attention_unmasked`] (fused kernels on flex, also under autodiff).
///
/// # Shapes
/// - `query`: `[B, H, Lq, d]`; `key`, `value`: `[B, H, Lk, d]`.
/// - `masked`: broadcastable to `[B, H, Lq, Lk]` (e.g. `[B, 1, 1, Lk]` for key padding,
///   `[B, 1, Lq, Lk]` for causal + padding); `true` = not attended.
/// - output: `[B, H, Lq, d]`.
pub fn attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    masked: Option<Tensor<4, Bool>>,
    scale: f64,
) -> Tensor<4> {
    let Some(masked) = masked else {
        return cleft_kernels::attention_unmasked(query, key, value, scale);
    };
    let [batch, heads, len_q, _] = query.dims();
    let len_k = key.dims()[2];
    let masked = Some(masked.expand([batch, heads, len_q, len_k]));
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    burn_attention(query, key, value, masked, None, options)
}

/// Splits the last dimension into heads.
///
/// # Shapes
/// - `x`: `[B, L, H·d]`; output `[B, H, L, d]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, len, width] = x.dims();
    x.reshape([batch, len, heads, width / heads])
        .swap_dims(1, 2)
}

/// Concatenates heads back into the last dimension.
///
/// # Shapes
/// - `x`: `[B, H, L, d]`; output `[B, L, H·d]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [batch, heads, len, dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, len, heads * dim])
}

/// The causal mask over `P` prefix positions (always attended) and the `L` sequence positions,
/// with padded keys masked.
///
/// # Shapes
/// - `mask`: `[B, L]` (1 = real); output `[B, 1, L, P + L]` (true = not attended).
pub fn causal_mask(mask: &Tensor<2, Int>, n_prefix: usize) -> Tensor<4, Bool> {
    let [batch, len] = mask.dims();
    let device = mask.device();
    let causal: Tensor<4, Bool> =
        generate_autoregressive_mask(batch, len, &device).unsqueeze_dim(1);
    let padding = mask
        .clone()
        .equal_elem(0)
        .reshape([batch, 1, 1, len])
        .expand([batch, 1, len, len]);
    let masked = causal.bool_or(padding);
    if n_prefix == 0 {
        return masked;
    }
    let open = Tensor::<4, Int>::zeros([batch, 1, len, n_prefix], &device).equal_elem(1);
    Tensor::cat(vec![open, masked], 3)
}
