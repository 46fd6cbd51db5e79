//! Pieces shared by the objectives.

use burn::prelude::*;
use burn::tensor::Int;
use burn::tensor::activation::log_softmax;
use cleft_core::LocalRows;

/// Image→text and text→image similarities of a block of rows, multiplied by `scale`: the rows'
/// images against every text, and the rows' texts against every image. For the whole batch the
/// second is the transpose of the first (one product).
///
/// # Shapes
/// - `scale`: `[1]`; outputs `[b, B]` each.
pub fn block_logits(rows: &LocalRows, scale: Tensor<1>) -> (Tensor<2>, Tensor<2>) {
    let scale = scale.unsqueeze::<2>();
    let image_to_text = rows.image().matmul(rows.all_text.clone().transpose()) * scale.clone();
    let whole = rows.offset == 0 && rows.rows == rows.all_image.dims()[0];
    let text_to_image = match whole {
        true => image_to_text.clone().transpose(),
        false => rows.text().matmul(rows.all_image.clone().transpose()) * scale,
    };
    (image_to_text, text_to_image)
}

/// The targets of a block's rows: row `i` is the positive of column `offset + i`.
///
/// # Shapes
/// - output `[b, 1]`.
fn diagonal_targets(rows: usize, offset: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::<1, Int>::arange(offset as i64..(offset + rows) as i64, device).reshape([rows, 1])
}

/// Mean cross-entropy of each row `i` of `logits` against the target column `offset + i`.
///
/// # Shapes
/// - `logits`: `[b, N]`; output `[1]`.
pub fn diagonal_cross_entropy(logits: Tensor<2>, offset: usize) -> Tensor<1> {
    let [rows, _] = logits.dims();
    let targets = diagonal_targets(rows, offset, &logits.device());
    log_softmax(logits, 1).gather(1, targets).mean().neg()
}

/// Mean cross-entropy of each row of `logits` against a soft target distribution.
///
/// # Shapes
/// - `logits`, `targets`: `[b, N]` (each target row sums to 1); output `[1]`.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let [rows, _] = logits.dims();
    (log_softmax(logits, 1) * targets).sum().neg() / rows as f64
}

/// Fraction of rows `i` whose largest logit is in column `offset + i` (image→text retrieval
/// accuracy), computed on the device (detached) and read back only when the trainer logs.
///
/// # Shapes
/// - `logits`: `[b, N]`; output `[1]`.
pub fn diagonal_accuracy(logits: Tensor<2>, offset: usize) -> Tensor<1> {
    let [rows, _] = logits.dims();
    let predicted = logits.detach().argmax(1);
    let truth = diagonal_targets(rows, offset, &predicted.device());
    predicted.equal(truth).float().mean()
}
