//! Bicubic resizing of position-embedding grids, as separable interpolation matrices.
//!
//! Two conventions exist for resizing DINOv2's position grid:
//! - HF `Dinov2Model`: `torch.nn.functional.interpolate(size=…, mode="bicubic",
//!   align_corners=False)` without antialias — Keys cubic convolution with `A = −0.75`, source
//!   coordinate `(i + 0.5)·in/out − 0.5`, border taps clamped (PyTorch `upsample_bicubic2d`).
//!   Checked against the `dinov2_s_224` golden (`position_embeddings_interpolated`).
//! - torch.hub DINOv2 (used by CLEFT): the same call with `antialias=True` — PyTorch's
//!   `_upsample_bicubic2d_aa`, which widens the cubic filter (`A = −0.5`) by the downscale factor
//!   and normalises the weights (PIL-style).
//!
//! Each is a `[out, in]` matrix applied to rows and columns, so the resize is two matmuls and
//! stays differentiable on every backend.

use burn::prelude::*;
use burn::tensor::TensorData;

/// Which bicubic convention resizes the position grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosEmbedInterpolation {
    /// HF transformers: bicubic, `align_corners=False`, no antialias.
    #[default]
    Bicubic,
    /// torch.hub DINOv2: bicubic with antialias.
    BicubicAntialias,
}

fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// `[output, input]` weights of PyTorch's bicubic resize along one axis.
pub fn bicubic_matrix(input: usize, output: usize, antialias: bool) -> Vec<f32> {
    let mut matrix = vec![0.0f64; output * input];
    let scale = input as f64 / output as f64;
    for i in 0..output {
        let row = &mut matrix[i * input..(i + 1) * input];
        if antialias {
            let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
            let inv = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
            let center = scale * (i as f64 + 0.5);
            let start = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let weights: Vec<f64> = (start..end)
                .map(|j| cubic((j as f64 - center + 0.5) * inv, -0.5))
                .collect();
            let total: f64 = weights.iter().sum();
            for (j, w) in (start..end).zip(weights) {
                row[j] += if total != 0.0 { w / total } else { 0.0 };
            }
        } else {
            let source = scale * (i as f64 + 0.5) - 0.5;
            let floor = source.floor();
            let t = source - floor;
            let taps = [
                cubic(t + 1.0, -0.75),
                cubic(t, -0.75),
                cubic(1.0 - t, -0.75),
                cubic(2.0 - t, -0.75),
            ];
            for (k, w) in taps.into_iter().enumerate() {
                let j = (floor as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
                row[j] += w;
            }
        }
    }
    matrix.into_iter().map(|w| w as f32).collect()
}

/// Resizes a `[C, H, W]` grid to `[C, rows, cols]`.
///
/// # Shapes
/// - `grid`: `[C, H, W]`; output `[C, rows, cols]`.
pub fn resize_grid(
    grid: Tensor<3>,
    rows: usize,
    cols: usize,
    mode: PosEmbedInterpolation,
) -> Tensor<3> {
    let [channels, height, width] = grid.dims();
    let device = grid.device();
    let antialias = mode == PosEmbedInterpolation::BicubicAntialias;
    let matrix = |input, output| {
        Tensor::<2>::from_data(
            TensorData::new(bicubic_matrix(input, output, antialias), [output, input]),
            &device,
        )
    };
    let along_rows = matrix(height, rows)
        .unsqueeze::<3>()
        .expand([channels, rows, height])
        .matmul(grid);
    let along_cols = matrix(width, cols)
        .transpose()
        .unsqueeze::<3>()
        .expand([channels, width, cols]);
    along_rows.matmul(along_cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cleft_testing::Tolerance;

    #[test]
    fn rows_sum_to_one_and_identity_at_same_size() {
        for antialias in [false, true] {
            let m = bicubic_matrix(37, 16, antialias);
            let sums: Vec<f32> = m.chunks(37).map(|row| row.iter().sum()).collect();
            Tolerance::f32_ops().check("row sums", &sums, &[1.0; 16]);
            let identity = bicubic_matrix(5, 5, antialias);
            let expected: Vec<f32> = (0..25)
                .map(|k| if k % 6 == 0 { 1.0 } else { 0.0 })
                .collect();
            Tolerance::f32_ops().check("same size", &identity, &expected);
        }
    }
}
