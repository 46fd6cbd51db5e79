//! `gelu_new` (computed as `x·σ(2u)`) against HF's `NewGELUActivation` formula
//! `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` evaluated in float64: values and derivatives,
//! over the range activations take and in both tails, under the suite's float32 noise model.

use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_gpt::gelu_new;
use cleft_testing::Tolerance;

const SQRT_2_OVER_PI: f64 = core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;

fn reference(x: f64) -> (f64, f64) {
    let inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    let t = inner.tanh();
    let value = 0.5 * x * (1.0 + t);
    let slope =
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    (value, slope)
}

/// Inputs: a dense grid over [-8, 8], values near 0, and far tails.
fn inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (-160..=160).map(|i| i as f32 * 0.05).collect();
    xs.extend([
        1e-3, -1e-3, 1e-6, -1e-6, 0.0, 15.0, -15.0, 30.0, -30.0, 100.0, -100.0,
    ]);
    xs
}

fn check(what: &str, actual: &[f32], expected: &[f64], xs: &[f32]) {
    // Element by element, each against its own magnitude: the bound of a value near 0 is not
    // widened by the tails.
    for ((a, e), x) in actual.iter().zip(expected).zip(xs) {
        Tolerance::f32_ops().check(&format!("{what} at x = {x}"), &[*a], &[*e as f32]);
    }
}

#[test]
fn gelu_new_matches_the_tanh_formula() {
    let device = Device::flex();
    let xs = inputs();
    let n = xs.len();
    let actual = gelu_new(Tensor::<1>::from_data(
        TensorData::new(xs.clone(), [n]),
        &device,
    ))
    .into_data()
    .try_to_vec::<f32>()
    .unwrap();
    let expected: Vec<f64> = xs.iter().map(|&x| reference(x as f64).0).collect();
    check("gelu_new", &actual, &expected, &xs);
}

#[test]
fn gelu_new_gradient_matches_the_tanh_formula() {
    let device = Device::flex().autodiff();
    let xs = inputs();
    let n = xs.len();
    let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), &device).require_grad();
    let grads = gelu_new(x.clone()).sum().backward();
    let actual = x
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let expected: Vec<f64> = xs.iter().map(|&x| reference(x as f64).1).collect();
    check("d gelu_new / dx", &actual, &expected, &xs);
}
