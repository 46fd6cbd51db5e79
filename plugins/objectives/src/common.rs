//! Pieces shared by the objectives.

use burn::prelude::*;
use burn::tensor::Int;
use burn::tensor::activation::log_softmax;

/// Mean cross-entropy of each row of `logits` against the diagonal target.
///
/// # Shapes
/// - `logits`: `[B, B]`; output `[1]`.
pub fn diagonal_cross_entropy(logits: Tensor<2>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let targets = Tensor::<1, Int>::arange(0..batch as i64, &logits.device()).reshape([batch, 1]);
    log_softmax(logits, 1).gather(1, targets).mean().neg()
}

/// Mean cross-entropy of each row of `logits` against a soft target distribution.
///
/// # Shapes
/// - `logits`, `targets`: `[B, N]` (each target row sums to 1); output `[1]`.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    (log_softmax(logits, 1) * targets).sum().neg() / batch as f64
}

/// Fraction of rows whose largest logit is on the diagonal (image→text retrieval accuracy),
/// computed on the device (detached) and read back only when the trainer logs.
///
/// # Shapes
/// - `logits`: `[B, B]`; output `[1]`.
pub fn diagonal_accuracy(logits: Tensor<2>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let predicted = logits.detach().argmax(1).reshape([batch]);
    let truth = Tensor::<1, Int>::arange(0..batch as i64, &predicted.device());
    predicted.equal(truth).float().mean()
}
