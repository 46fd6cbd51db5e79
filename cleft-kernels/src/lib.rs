//! # cleft-kernels
//!
//! Fused element-wise kernels for the `flex` CPU backend, added through burn's backend extension
//! (`#[backend_extension]`): one multi-threaded, vectorised pass where burn-flex runs a scalar
//! `libm` loop on one thread, with a hand-written backward for autodiff.
//!
//! Models call the functions here ([`gelu`], [`gelu_tanh`], [`attention_unmasked`], [`layer_norm`]) instead of `burn::tensor::activation`'s. On a flex
//! device (with or without autodiff) they run the kernel; on every other device (`tch`, `cuda`)
//! they are burn's ops. Each kernel is checked against burn's plain op and a float64
//! reference in this crate's `tests/kernels.rs`, within the error bound stated in [`math`].
//!
//! Why an extension and not a change of model code: burn-flex evaluates `erf` and `exp` with
//! scalar `libm` calls on the calling thread; in the small benchmark's train step the ViT's GELU
//! forward and backward alone were ~10 % of all CPU samples, ~1/5 of the main thread (`perf`,
//! BENCHMARKS.md).

pub mod math;

#[cfg(feature = "flex")]
mod autodiff;
#[cfg(feature = "flex")]
mod flex;

#[cfg(feature = "flex")]
pub use flex::CleftKernels;

use burn::tensor::Tensor;
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;

/// Exact (erf) GELU, `x·Φ(x)`, element-wise; the same function as
/// `burn::tensor::activation::gelu` and PyTorch's `nn.GELU()`.
///
/// On flex it is one fused kernel on burn-flex's threads (forward and backward), elsewhere burn's op.
///
/// # Shapes
/// `x`: any shape → the same shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if flex::is_flex_f32(&x) {
        use burn::backend::Dispatch;
        return Tensor::from_dispatch(<Dispatch as flex::CleftKernels>::gelu_erf(
            x.into_dispatch(),
        ));
    }
    burn::tensor::activation::gelu(x)
}

/// GPT-2's `gelu_new` (HF `NewGELUActivation`), `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
/// as `x·σ(2u)` with `2u = x·(2√(2/π) + 2√(2/π)·0.044715·x²)` (`(1 + tanh u)/2 = σ(2u)`).
///
/// On flex one fused kernel (forward and backward); elsewhere the same formula in burn's ops.
///
/// # Shapes
/// `x`: any shape → the same shape.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if flex::is_flex_f32(&x) {
        use burn::backend::Dispatch;
        return Tensor::from_dispatch(<Dispatch as flex::CleftKernels>::gelu_tanh(
            x.into_dispatch(),
        ));
    }
    let (c1, c2) = (f64::from(math::GELU_TANH_C1), f64::from(math::GELU_TANH_C2));
    let twice_inner = (x.clone() * x.clone() * c2 + c1) * x.clone();
    x * burn::tensor::activation::sigmoid(twice_inner)
}

/// Unmasked scaled dot-product attention `softmax(q·kᵀ·scale)·v`.
///
/// On flex: burn-flex's fused attention kernel forward; under autodiff one graph node that keeps
/// `q`, `k`, `v` and recomputes the probabilities in its backward (one extra `q·kᵀ` product)
/// with fused softmax kernels, where burn's differentiable fallback keeps the scores, their
/// exponentials and the probabilities (`[B, H, Lq, Lk]` each) of every layer until the backward.
/// Elsewhere burn's `attention` op.
///
/// # Shapes
/// `query`: `[B, H, Lq, d]`; `key`, `value`: `[B, H, Lk, d]` → `[B, H, Lq, d]`.
pub fn attention_unmasked(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    scale: f64,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if flex::is_flex_f32(&query) && flex::is_flex_f32(&key) && flex::is_flex_f32(&value) {
        use burn::backend::Dispatch;
        return Tensor::from_dispatch(<Dispatch as flex::CleftKernels>::attention_unmasked(
            query.into_dispatch(),
            key.into_dispatch(),
            value.into_dispatch(),
            scale as f32,
        ));
    }
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    burn_attention(query, key, value, None, None, options)
}

/// `norm`'s LayerNorm of `x` over the last dimension, `(x − μ)/√(σ² + epsilon)·γ + β`.
///
/// `epsilon` must be the one `norm` was configured with (burn keeps it private). On flex with a
/// bias: one fused row kernel, and under autodiff one graph node keeping only `x` and `γ` (burn's
/// composed op keeps about five `x`-sized intermediates per norm). Otherwise `norm.forward(x)`.
///
/// # Shapes
/// `x`: `[…, D]` → the same; `norm`: `γ`, `β` of `[D]`.
pub fn layer_norm<const D: usize>(
    norm: &burn::nn::LayerNorm,
    x: Tensor<D>,
    epsilon: f64,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(beta) = &norm.beta
        && flex::is_flex_f32(&x)
    {
        let (gamma, beta) = (norm.gamma.val(), beta.val());
        if flex::is_flex_f32(&gamma) && flex::is_flex_f32(&beta) {
            use burn::backend::Dispatch;
            return Tensor::from_dispatch(<Dispatch as flex::CleftKernels>::layer_norm_last(
                x.into_dispatch(),
                gamma.into_dispatch(),
                beta.into_dispatch(),
                epsilon,
            ));
        }
    }
    let _ = epsilon;
    norm.forward(x)
}
