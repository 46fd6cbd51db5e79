//! The extension trait, its composed default bodies and its flex implementation.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DispatchDevice, Flex, backend_extension};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::math::{self, GELU_TANH_C1, GELU_TANH_C2};

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1/√(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Fused element-wise kernels. The default bodies compose burn's plain ops (what autodiff
/// differentiates through for a second derivative, and what flex runs for non-float32 dtypes);
/// flex overrides them with one parallel pass.
#[backend_extension(Flex, Autodiff)]
pub trait CleftKernels: Backend {
    /// Exact GELU `x·Φ(x)`.
    ///
    /// # Shapes
    /// `x`: any → the same.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }

    /// `grad·(Φ(x) + x·φ(x))`, the input gradient of [`CleftKernels::gelu_erf`].
    ///
    /// # Shapes
    /// `x`, `grad`: the same shape → that shape.
    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_gelu_erf_backward::<Self>(x, grad)
    }

    /// GPT-2's `gelu_new`, `x·σ(2u)` with `2u = x·(C1 + C2·x²)` (see [`math::gelu_tanh`]).
    ///
    /// # Shapes
    /// `x`: any → the same.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_gelu_tanh::<Self>(x)
    }

    /// `grad·(σ + x·σ(1−σ)·(C1 + 3·C2·x²))`, the input gradient of [`CleftKernels::gelu_tanh`].
    ///
    /// # Shapes
    /// `x`, `grad`: the same shape → that shape.
    fn gelu_tanh_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_gelu_tanh_backward::<Self>(x, grad)
    }

    /// Softmax over the last dimension.
    ///
    /// # Shapes
    /// `x`: `[…, n]` → the same.
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_softmax_last::<Self>(x)
    }

    /// `scale·p·(dp − Σ_last p·dp)`: the gradient at the scores `s` of `softmax(scale·s)` along
    /// the last dimension, from its output `p` and output gradient `dp`.
    ///
    /// # Shapes
    /// `p`, `dp`: `[…, n]`, the same shape → that shape.
    fn softmax_last_backward(
        p: FloatTensor<Self>,
        dp: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        composed_softmax_last_backward::<Self>(p, dp, scale)
    }

    /// Unmasked scaled dot-product attention `softmax(q·kᵀ·scale)·v`. Under autodiff one node
    /// that keeps only `q`, `k`, `v` and recomputes the probabilities in its backward.
    ///
    /// # Shapes
    /// `q`: `[B, H, Lq, d]`; `k`, `v`: `[B, H, Lk, d]` → `[B, H, Lq, d]`.
    fn attention_unmasked(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let probabilities = Self::softmax_last(attention_scores::<Self>(q, k, scale));
        Self::float_matmul(probabilities, v)
    }

    /// LayerNorm over the last dimension, `(x − μ)/√(σ² + epsilon)·γ + β` (biased `σ²`). Under
    /// autodiff one node that keeps `x` and `γ` (burn's composed op keeps ~5 `x`-sized tensors).
    ///
    /// # Shapes
    /// `x`: `[…, D]`; `gamma`, `beta`: `[D]` → `x`'s shape.
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// `x̂ = (x − μ)/√(σ² + epsilon)` over the last dimension.
    ///
    /// # Shapes
    /// `x`: `[…, D]` → the same.
    fn layer_norm_normalized(x: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        composed_layer_norm_parts::<Self>(x, epsilon).0
    }

    /// Input gradient of [`CleftKernels::layer_norm_last`] from the output gradient `dy`:
    /// `(g − mean(g) − x̂·mean(g·x̂))/√(σ² + epsilon)` with `g = dy·γ`.
    ///
    /// # Shapes
    /// `x`, `dy`: `[…, D]`; `gamma`: `[D]` → `x`'s shape.
    fn layer_norm_input_grad(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        composed_layer_norm_input_grad::<Self>(x, gamma, dy, epsilon)
    }
}

/// `(x̂, √(σ² + epsilon))` over the last dimension, in plain ops.
fn composed_layer_norm_parts<B: Backend>(
    x: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let last = x.shape().num_dims() - 1;
    let mean = B::float_mean_dim(x.clone(), last);
    let centered = B::float_sub(x, mean);
    let variance = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), last);
    let denominator = B::float_sqrt(B::float_add_scalar(variance, epsilon.into()));
    (B::float_div(centered, denominator.clone()), denominator)
}

fn composed_layer_norm_input_grad<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    dy: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let last = x.shape().num_dims() - 1;
    let (normalized, denominator) = composed_layer_norm_parts::<B>(x, epsilon);
    let g = B::float_mul(dy, gamma);
    let g_mean = B::float_mean_dim(g.clone(), last);
    let gx_mean = B::float_mean_dim(B::float_mul(g.clone(), normalized.clone()), last);
    let centered = B::float_sub(B::float_sub(g, g_mean), B::float_mul(normalized, gx_mean));
    B::float_div(centered, denominator)
}

fn composed_softmax_last_backward<B: Backend>(
    p: FloatTensor<B>,
    dp: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let last = p.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(p.clone(), dp.clone()), last);
    B::float_mul_scalar(B::float_mul(p, B::float_sub(dp, dot)), scale.into())
}

/// `q·kᵀ·scale`.
///
/// # Shapes
/// `q`: `[B, H, Lq, d]`; `k`: `[B, H, Lk, d]` → `[B, H, Lq, Lk]`.
pub(super) fn attention_scores<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let scores = B::float_matmul(q, B::float_swap_dims(k, 2, 3));
    B::float_mul_scalar(scores, scale.into())
}

fn composed_softmax_last<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let last = x.shape().num_dims() - 1;
    let max = B::float_max_dim(x.clone(), last);
    let exp = B::float_exp(B::float_sub(x, max));
    let sum = B::float_sum_dim(exp.clone(), last);
    B::float_div(exp, sum)
}

fn composed_gelu_erf_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let s = B::float_mul_scalar(x.clone(), FRAC_1_SQRT_2.into());
    let cdf = B::float_mul_scalar(
        B::float_add_scalar(B::float_erf(s), 1.0f32.into()),
        0.5f32.into(),
    );
    let square = B::float_mul(x.clone(), x.clone());
    let gaussian = B::float_exp(B::float_mul_scalar(square, (-0.5f32).into()));
    let pdf = B::float_mul_scalar(gaussian, INV_SQRT_2PI.into());
    let derivative = B::float_add(cdf, B::float_mul(x, pdf));
    B::float_mul(grad, derivative)
}

/// `σ(2u)` of `gelu_new`, `2u = x·(C1 + C2·x²)`, in plain ops.
fn gelu_tanh_sigmoid<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let square = B::float_mul(x.clone(), x.clone());
    let factor = B::float_add_scalar(
        B::float_mul_scalar(square, GELU_TANH_C2.into()),
        GELU_TANH_C1.into(),
    );
    <B as ActivationOps<B>>::sigmoid(B::float_mul(x, factor))
}

fn composed_gelu_tanh<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let sigmoid = gelu_tanh_sigmoid::<B>(x.clone());
    B::float_mul(x, sigmoid)
}

fn composed_gelu_tanh_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let sigmoid = gelu_tanh_sigmoid::<B>(x.clone());
    let one_minus = B::float_add_scalar(B::float_neg(sigmoid.clone()), 1.0f32.into());
    let slope = B::float_mul(sigmoid.clone(), one_minus);
    let square = B::float_mul(x.clone(), x.clone());
    let inner_slope = B::float_add_scalar(
        B::float_mul_scalar(square, (3.0 * GELU_TANH_C2).into()),
        GELU_TANH_C1.into(),
    );
    let derivative = B::float_add(sigmoid, B::float_mul(x, B::float_mul(slope, inner_slope)));
    B::float_mul(grad, derivative)
}

/// Whether `x` is a float32 tensor on a flex device (autodiff or not): the kernels' domain.
pub(super) fn is_flex_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32
        && matches!(
            x.device().without_autodiff().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// Whether the kernels apply: float32 inputs of one shape (anything else takes the plain ops).
fn fusable(x: &FlexTensor, grad: Option<&FlexTensor>) -> bool {
    x.dtype() == DType::F32
        && grad.is_none_or(|g| g.dtype() == DType::F32 && g.shape() == x.shape())
}

impl CleftKernels for Flex {
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !fusable(&x, None) {
            return <Flex as ActivationOps<Flex>>::gelu(x);
        }
        map(&[&x], |[input], out| math::gelu_erf(input, out))
    }

    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if !fusable(&x, Some(&grad)) {
            return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
        }
        map(&[&x, &grad], |[input, grad], out| {
            math::gelu_erf_backward(input, grad, out)
        })
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !fusable(&x, None) {
            return composed_gelu_tanh::<Flex>(x);
        }
        map(&[&x], |[input], out| math::gelu_tanh(input, out))
    }

    fn gelu_tanh_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if !fusable(&x, Some(&grad)) {
            return composed_gelu_tanh_backward::<Flex>(x, grad);
        }
        map(&[&x, &grad], |[input, grad], out| {
            math::gelu_tanh_backward(input, grad, out)
        })
    }

    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !fusable(&x, None) {
            return composed_softmax_last::<Flex>(x);
        }
        let row = last_dim(&x);
        map_rows(&[&x], row, |[input], out| {
            math::softmax_rows(input, out, row)
        })
    }

    fn softmax_last_backward(
        p: FloatTensor<Self>,
        dp: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        if !fusable(&p, Some(&dp)) {
            return composed_softmax_last_backward::<Flex>(p, dp, scale);
        }
        let row = last_dim(&p);
        map_rows(&[&p, &dp], row, |[p, dp], out| {
            math::softmax_rows_backward(p, dp, out, row, scale)
        })
    }

    fn attention_unmasked(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        // burn-flex's own fused kernel (naive or flash-style by length, parallel over heads).
        let options = AttentionModuleOptions {
            scale: Some(f64::from(scale)),
            softcap: None,
            is_causal: false,
        };
        <Flex as ModuleOps<Flex>>::attention(q, k, v, None, None, options)
    }

    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        if !fusable(&x, None) || !is_row_parameter(&gamma, &x) || !is_row_parameter(&beta, &x) {
            return <Flex as ModuleOps<Flex>>::layer_norm(x, gamma, Some(beta), epsilon);
        }
        let (gamma, beta) = (contiguous(&gamma), contiguous(&beta));
        let (gamma, beta) = (f32_slice(&gamma), f32_slice(&beta));
        map_rows(&[&x], gamma.len(), |[x], out| {
            math::layer_norm_rows(x, gamma, beta, out, epsilon as f32)
        })
    }

    fn layer_norm_normalized(x: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        if !fusable(&x, None) {
            return composed_layer_norm_parts::<Flex>(x, epsilon).0;
        }
        let row = last_dim(&x);
        map_rows(&[&x], row, |[x], out| {
            math::layer_norm_normalized_rows(x, out, row, epsilon as f32)
        })
    }

    fn layer_norm_input_grad(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        if !fusable(&x, Some(&dy)) || !is_row_parameter(&gamma, &x) {
            return composed_layer_norm_input_grad::<Flex>(x, gamma, dy, epsilon);
        }
        let gamma = contiguous(&gamma);
        let gamma = f32_slice(&gamma);
        map_rows(&[&x, &dy], gamma.len(), |[x, dy], out| {
            math::layer_norm_input_grad_rows(x, gamma, dy, out, epsilon as f32)
        })
    }
}

/// Whether `p` is a float32 `[D]` vector for `x`'s last dimension `D`.
fn is_row_parameter(p: &FlexTensor, x: &FlexTensor) -> bool {
    p.dtype() == DType::F32 && p.shape().as_slice() == [last_dim(x)]
}

/// `t` itself when its float32 elements are one contiguous slice, else a contiguous copy.
fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// The elements of a contiguous float32 tensor (from [`contiguous`]).
fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a contiguous float32 flex tensor has a slice")
}

/// The size of the last dimension (1 for a scalar).
fn last_dim(x: &FlexTensor) -> usize {
    x.shape().as_slice().last().copied().unwrap_or(1).max(1)
}

/// Elements per task: 64 KiB of float32, enough to amortise rayon's scheduling.
const CHUNK: usize = 1 << 14;

/// Runs `kernel` over equal-shaped float32 tensors in parallel chunks of about [`CHUNK`]
/// elements on burn-flex's rayon pool; the output is contiguous, with the first input's shape.
fn map<const N: usize>(
    inputs: &[&FlexTensor; N],
    kernel: impl Fn([&[f32]; N], &mut [f32]) + Sync,
) -> FlexTensor {
    map_rows(inputs, 1, kernel)
}

/// [`map`] with chunks of whole rows of `row` elements (the kernel sees complete rows).
fn map_rows<const N: usize>(
    inputs: &[&FlexTensor; N],
    row: usize,
    kernel: impl Fn([&[f32]; N], &mut [f32]) + Sync,
) -> FlexTensor {
    let owned: [FlexTensor; N] = inputs.map(contiguous);
    let slices: [&[f32]; N] = std::array::from_fn(|i| f32_slice(&owned[i]));
    let mut out = vec![0.0f32; slices[0].len()];
    let chunk_len = (CHUNK / row).max(1) * row;
    // The widest SIMD level this CPU has, detected once per call; the kernel is compiled for each.
    let arch = pulp::Arch::new();
    if out.len() <= chunk_len {
        // One task: run it here rather than hand it to the pool and wait (tiny models).
        arch.dispatch(|| kernel(slices, &mut out));
        return FlexTensor::from_data(TensorData::new(out, inputs[0].shape()));
    }
    out.par_chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(index, chunk)| {
            let start = index * chunk_len;
            let parts = slices.map(|s| &s[start..start + chunk.len()]);
            arch.dispatch(|| kernel(parts, chunk));
        });
    FlexTensor::from_data(TensorData::new(out, inputs[0].shape()))
}
