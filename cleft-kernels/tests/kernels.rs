//! The fused flex kernels (`cleft_kernels`) against a float64 reference and against burn's
//! plain ops, within the per-element error bound stated in `cleft_kernels::math`:
//! A&S 7.1.26's `1.5e-7` on `erf`, a few float32 roundings (`ε = 2⁻²³`) on each side.

use burn::backend::{Dispatch, DispatchTensor};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation;
use cleft_kernels::{self as kernels, CleftKernels, math};
use cleft_testing::{Tolerance, values};

const EPS: f64 = f32::EPSILON as f64;
/// Abramowitz & Stegun 7.1.26's bound on `|erf error|`.
const ERF_BOUND: f64 = 1.5e-7;

fn phi(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

fn density(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// `gelu` error bound at `x`: `0.5·|x|` times the CDF error (erf's plus `4ε` of its evaluation),
/// plus `4ε` relative rounding of the product.
fn gelu_bound(x: f64) -> f64 {
    0.5 * x.abs() * (ERF_BOUND + 4.0 * EPS) + 4.0 * EPS * (x * phi(x)).abs()
}

/// Derivative bound: the CDF error, the density's `4ε` relative error times `|x|`, `4ε` rounding.
fn derivative_bound(x: f64) -> f64 {
    0.5 * (ERF_BOUND + 4.0 * EPS)
        + 4.0 * EPS * (x * density(x)).abs()
        + 4.0 * EPS * (phi(x) + x * density(x)).abs()
}

/// Inputs: a dense grid over [−12, 12] (both tails, zero, every binade near 0) and normal draws.
fn inputs(device: &Device) -> Tensor<2> {
    let mut grid: Vec<f32> = (-1200..=1200).map(|i| i as f32 / 100.0).collect();
    grid.extend([1e-30, -1e-30, 1e-7, -1e-7, 3e-4, -3e-4, 0.0, -0.0]);
    grid.resize(2432, 0.5);
    let grid = Tensor::<1>::from_floats(grid.as_slice(), device).reshape([32, 76]);
    let normal = Tensor::<2>::random([32, 76], Distribution::Normal(0.0, 3.0), device);
    Tensor::cat(vec![grid, normal], 0)
}

fn check(what: &str, x: &[f32], got: &[f32], want: impl Fn(f64) -> (f64, f64)) {
    assert_eq!(x.len(), got.len(), "{what}: lengths");
    let mut worst = (0.0f64, 0.0f32);
    for (&xi, &gi) in x.iter().zip(got) {
        let (reference, bound) = want(xi as f64);
        let error = (gi as f64 - reference).abs();
        assert!(
            error <= bound,
            "{what} at x = {xi:e}: got {gi:e}, float64 {reference:e}, error {error:e} > bound {bound:e}"
        );
        if error / bound > worst.0 {
            worst = (error / bound, xi);
        }
    }
    eprintln!(
        "{what}: worst error / bound = {:.3} (at x = {:e})",
        worst.0, worst.1
    );
}

#[test]
fn exp_is_within_four_eps_relative_and_zero_below_the_normal_range() {
    let mut worst = 0.0f64;
    for i in 0..=200_000 {
        let x = -(i as f32) * 5e-4;
        let got = math::exp_nonpositive(x) as f64;
        let want = (x as f64).exp();
        if x < -87.0 {
            assert_eq!(got, 0.0, "exp({x})");
            assert!(want < 1.7e-38, "{x}");
        } else {
            let relative = (got - want).abs() / want;
            assert!(
                relative <= 4.0 * EPS,
                "exp({x}) = {got:e}, float64 {want:e}"
            );
            worst = worst.max(relative / EPS);
        }
    }
    assert_eq!(math::exp_nonpositive(0.0), 1.0);
    eprintln!("exp: worst relative error {worst:.2} ε");
}

#[test]
fn gelu_forward_matches_float64_and_burns_plain_gelu() {
    let device = Device::flex();
    let x = inputs(&device);
    let xs = values(x.clone());
    let fast = values(kernels::gelu(x.clone()));
    check("fused gelu", &xs, &fast, |x| (x * phi(x), gelu_bound(x)));
    let plain = values(activation::gelu(x));
    check("burn gelu", &xs, &plain, |x| (x * phi(x), gelu_bound(x)));
    for ((&xi, &f), &p) in xs.iter().zip(&fast).zip(&plain) {
        let bound = 2.0 * gelu_bound(xi as f64);
        assert!(
            (f as f64 - p as f64).abs() <= bound,
            "fused {f:e} vs burn {p:e} at {xi:e}"
        );
    }
}

#[test]
fn gelu_gradient_matches_float64_and_burns_plain_gradient() {
    let device = Device::flex().autodiff();
    let x = inputs(&device).require_grad();
    let weights = Tensor::<2>::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
    let grad_of = |y: Tensor<2>| {
        let grads = (y * weights.clone()).sum().backward();
        values(x.grad(&grads).expect("x requires grad"))
    };
    let fast = grad_of(kernels::gelu(x.clone()));
    let plain = grad_of(activation::gelu(x.clone()));
    let (xs, ws) = (values(x.clone()), values(weights.clone()));
    let pairs: Vec<(f32, f32)> = xs.iter().copied().zip(ws.iter().copied()).collect();
    let reference = |i: usize| {
        let (x, w) = (pairs[i].0 as f64, pairs[i].1 as f64);
        (
            w * (phi(x) + x * density(x)),
            w.abs() * derivative_bound(x) + 4.0 * EPS * w.abs(),
        )
    };
    for (what, got) in [
        ("fused gelu gradient", &fast),
        ("burn gelu gradient", &plain),
    ] {
        for (i, &g) in got.iter().enumerate() {
            let (want, bound) = reference(i);
            let error = (g as f64 - want).abs();
            assert!(
                error <= bound,
                "{what} at x = {:e}: {g:e} vs {want:e} (bound {bound:e})",
                xs[i]
            );
        }
    }
}

/// A backward kernel `(x, grad) → dx` run twice on the same inputs: flex's fused kernel, and the
/// trait's composed default body (a tracked input routes to `Autodiff<Flex>`'s body; untracked
/// inputs would run flex's kernel as constants). Returns `(x, grad, fused, composed)`.
fn fused_and_composed_backward(
    backward: fn(DispatchTensor, DispatchTensor) -> DispatchTensor,
) -> [Vec<f32>; 4] {
    let device = Device::flex();
    let x = inputs(&device);
    let grad = Tensor::<2>::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
    let run = |device: &Device, tracked: bool| {
        let on = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), device);
        let (mut x, grad) = (on(&x), on(&grad));
        if tracked {
            x = x.require_grad();
        }
        values(Tensor::<2>::from_dispatch(backward(
            x.into_dispatch(),
            grad.into_dispatch(),
        )))
    };
    let fused = run(&device, false);
    let composed = run(&device.clone().autodiff(), true);
    [values(x), values(grad), fused, composed]
}

#[test]
fn composed_backward_body_matches_the_flex_kernel() {
    // The trait's default `gelu_erf_backward` (what autodiff differentiates through, and what a
    // backend without a kernel runs) against flex's fused one.
    let [xs, gs, fused, composed] =
        fused_and_composed_backward(<Dispatch as CleftKernels>::gelu_erf_backward);
    for i in 0..xs.len() {
        let (x, g) = (xs[i] as f64, gs[i] as f64);
        let bound = 2.0 * (g.abs() * derivative_bound(x) + 4.0 * EPS * g.abs());
        let error = (fused[i] as f64 - composed[i] as f64).abs();
        assert!(
            error <= bound,
            "at x = {x:e}: fused {:e}, composed {:e}",
            fused[i],
            composed[i]
        );
    }
}

#[test]
fn gelu_tanh_composed_backward_body_matches_the_flex_kernel() {
    // As above for GPT-2's `gelu_new` (its values and gradient against the float64 tanh formula
    // are in plugins/gpt/tests/gelu_new.rs). Derivative `σ + x·σ(1−σ)·(C1 + 3·C2·x²)`: each side
    // within a few ε of it relative to the sum of the terms' magnitudes, plus the composed
    // side's cancellation: its `1 − σ` is only absolutely ε-accurate, so its slope term can be
    // off by `ε·|x|·(C1 + 3·C2·x²)` where `σ` rounds to 1.
    let [xs, gs, fused, composed] =
        fused_and_composed_backward(<Dispatch as CleftKernels>::gelu_tanh_backward);
    let (c1, c2) = (
        2.0 * (2.0 / std::f64::consts::PI).sqrt(),
        2.0 * (2.0 / std::f64::consts::PI).sqrt() * 0.044715,
    );
    for i in 0..xs.len() {
        let (x, g) = (xs[i] as f64, gs[i] as f64);
        let v = x * (c1 + c2 * x * x);
        let s = 1.0 / (1.0 + (-v).exp());
        let inner_slope = c1 + 3.0 * c2 * x * x;
        let magnitude = s + (x * s * (1.0 - s) * inner_slope).abs();
        let bound = g.abs() * (8.0 * EPS * magnitude + 2.0 * EPS * x.abs() * inner_slope);
        let error = (fused[i] as f64 - composed[i] as f64).abs();
        assert!(
            error <= bound,
            "at x = {x:e}: fused {:e}, composed {:e}, bound {bound:e}",
            fused[i],
            composed[i]
        );
    }
}

#[test]
fn strided_and_multi_chunk_inputs_give_the_contiguous_result() {
    // 3 × 50,000 elements: several 16,384-element tasks and a ragged last one.
    let device = Device::flex();
    let x = Tensor::<2>::random([300, 500], Distribution::Normal(0.0, 2.0), &device);
    let transposed = x.clone().swap_dims(0, 1);
    let from_strided = values(kernels::gelu(transposed.clone()));
    let contiguous = Tensor::<2>::from_data(transposed.to_data(), &device);
    let from_contiguous = values(kernels::gelu(contiguous));
    assert_eq!(from_strided, from_contiguous);
    let xs = values(transposed);
    check("fused gelu, strided", &xs, &from_strided, |x| {
        (x * phi(x), gelu_bound(x))
    });
}

/// `sum(attention(q, k, v)·w)` and its gradients `(o, dq, dk, dv)`, on `device` in `dtype`.
fn attention_and_grads(
    fused: bool,
    inputs: &[Tensor<4>; 4],
    device: &Device,
    dtype: burn::tensor::DType,
) -> [Vec<f32>; 4] {
    let on = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), device).cast(dtype);
    let [q, k, v, w] = inputs;
    let (q, k, v, w) = (
        on(q).require_grad(),
        on(k).require_grad(),
        on(v).require_grad(),
        on(w),
    );
    let scale = 1.0 / (q.dims()[3] as f64).sqrt();
    let out = if fused {
        kernels::attention_unmasked(q.clone(), k.clone(), v.clone(), scale)
    } else {
        activation::softmax(q.clone().matmul(k.clone().swap_dims(2, 3)) * scale, 3)
            .matmul(v.clone())
    };
    let grads = (out.clone() * w).sum().backward();
    let f32s = |t: Tensor<4>| values(t.cast(burn::tensor::DType::F32));
    [
        f32s(out),
        f32s(q.grad(&grads).unwrap()),
        f32s(k.grad(&grads).unwrap()),
        f32s(v.grad(&grads).unwrap()),
    ]
}

#[test]
fn unmasked_attention_and_its_gradients_match_the_composed_ops() {
    // Short keys (burn-flex's naive kernel) and 600 keys (its flash-style kernel). Reference: the
    // composed ops in float32; its own float32-vs-float64 distance is the recorded spread.
    use burn::tensor::DType;
    let device = Device::flex().autodiff();
    for [batch, heads, len_q, len_k, dim] in [[2, 3, 7, 9, 8], [1, 2, 600, 600, 16]] {
        let draw = |l: usize| {
            Tensor::<4>::random(
                [batch, heads, l, dim],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
        };
        let inputs = [draw(len_q), draw(len_k), draw(len_k), draw(len_q)];
        let fused = attention_and_grads(true, &inputs, &device, DType::F32);
        let plain = attention_and_grads(false, &inputs, &device, DType::F32);
        let exact = attention_and_grads(false, &inputs, &device, DType::F64);
        for (i, name) in ["output", "dq", "dk", "dv"].iter().enumerate() {
            let spread = plain[i]
                .iter()
                .zip(&exact[i])
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .fold(0.0, f64::max);
            Tolerance::f32_ops()
                .with_spread(spread, "composed attention, float32 vs float64")
                .check(
                    &format!("attention {name} ({len_q}×{len_k})"),
                    &fused[i],
                    &plain[i],
                );
        }
    }
}

/// `layer_norm(x)·w` summed and its gradients `(y, dx, dγ, dβ)`, on `device` in `dtype`; fused
/// through `cleft_kernels::layer_norm` or burn's `LayerNorm` module.
fn layer_norm_and_grads(
    fused: bool,
    inputs: &[Tensor<3>; 2],
    parameters: &[Tensor<1>; 2],
    device: &Device,
    dtype: burn::tensor::DType,
) -> [Vec<f32>; 4] {
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    let epsilon = 1e-5;
    let cast3 = |t: &Tensor<3>| Tensor::<3>::from_data(t.to_data(), device).cast(dtype);
    let cast1 = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), device).cast(dtype);
    let [x, w] = inputs;
    let (x, w) = (cast3(x).require_grad(), cast3(w));
    let mut norm = LayerNormConfig::new(x.dims()[2])
        .with_epsilon(epsilon)
        .init(device);
    norm.gamma = Param::from_tensor(cast1(&parameters[0]));
    norm.beta = Some(Param::from_tensor(cast1(&parameters[1])));
    let y = if fused {
        kernels::layer_norm(&norm, x.clone(), epsilon)
    } else {
        norm.forward(x.clone())
    };
    let grads = (y.clone() * w).sum().backward();
    let f32s3 = |t: Tensor<3>| values(t.cast(burn::tensor::DType::F32));
    let f32s1 = |t: Tensor<1>| values(t.cast(burn::tensor::DType::F32));
    let beta = norm.beta.as_ref().expect("bias");
    [
        f32s3(y),
        f32s3(x.grad(&grads).unwrap()),
        f32s1(norm.gamma.val().grad(&grads).unwrap()),
        f32s1(beta.val().grad(&grads).unwrap()),
    ]
}

#[test]
fn layer_norm_and_its_gradients_match_burns_layer_norm() {
    // Widths of the ViT-S (384) and GPT-2 (768) norms and an odd one (the 16-lane tail); rows
    // offset from 0 so the mean matters. Reference: burn's module in float32, its own
    // float32-vs-float64 distance as the spread.
    use burn::tensor::DType;
    let device = Device::flex().autodiff();
    for width in [384, 768, 37] {
        let x = Tensor::<3>::random([4, 33, width], Distribution::Normal(0.5, 2.0), &device);
        let w = Tensor::<3>::random([4, 33, width], Distribution::Normal(0.0, 1.0), &device);
        let gamma = Tensor::<1>::random([width], Distribution::Normal(1.0, 0.3), &device);
        let beta = Tensor::<1>::random([width], Distribution::Normal(0.0, 0.3), &device);
        let (inputs, parameters) = ([x, w], [gamma, beta]);
        let fused = layer_norm_and_grads(true, &inputs, &parameters, &device, DType::F32);
        let plain = layer_norm_and_grads(false, &inputs, &parameters, &device, DType::F32);
        let exact = layer_norm_and_grads(false, &inputs, &parameters, &device, DType::F64);
        for (i, name) in ["output", "dx", "dgamma", "dbeta"].iter().enumerate() {
            let spread = plain[i]
                .iter()
                .zip(&exact[i])
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .fold(0.0, f64::max);
            Tolerance::f32_ops()
                .with_spread(spread, "burn LayerNorm, float32 vs float64")
                .check(
                    &format!("layer norm {name} (D = {width})"),
                    &fused[i],
                    &plain[i],
                );
        }
    }
}
