//! Branch-free float32 element kernels that the compiler vectorises (no libm calls in the
//! loops): `exp` on the non-positive half-line, the exact (erf) and tanh GELUs with their
//! derivatives, row softmax and its backward. All `#[inline(always)]`: the flex kernels inline
//! them into `pulp`'s per-CPU (AVX-512 / AVX2+FMA / baseline) dispatch, where they vectorise at
//! that width. Reductions run over a fixed 16 accumulators, so every CPU sums in the same order
//! and gets the same bits (no FMA contraction: Rust never fuses `a·b + c` by itself).
//!
//! Accuracy (checked against float64 in `tests/kernels.rs`):
//! - [`exp_nonpositive`]: Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, and the degree-7
//!   Taylor polynomial of `eʳ` (truncation `|r|⁸/8! < 1.2e-8` relative); a few float32 roundings
//!   on top, so within `4ε` relative (`ε = 2⁻²³`).
//! - `erf` by Abramowitz & Stegun 7.1.26 (`|error| ≤ 1.5e-7` absolute), evaluated in float32.
//!   GELU is `0.5·x·(1 + erf(x/√2))`, so its absolute error is at most `0.5·|x|·(1.5e-7 + 4ε)` plus
//!   the rounding of the product: the same order as the plain float32 formula, whose `1 + erf`
//!   already rounds to `ε/2` near 1 (burn's own GELU has that error too).

/// `1.5·2²³`: adding it to a float32 of magnitude `< 2²²` rounds that value to an integer (ties
/// to even) in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n·LN2_HI` is exact for `|n| < 2⁹` (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4; // = 0.693359375 exactly (355/512)
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this `eˣ` is under the smallest normal float32; the kernel returns 0 there.
const EXP_MIN: f32 = -87.0;

/// `eˣ` for `x ≤ 0` (inputs above 0 are clamped to 0, giving 1); 0 below −87.
///
/// The function for softmax numerators and Gaussian densities, written so that a loop over it
/// compiles to SIMD code: no branches, no calls.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, 0.0);
    let shifted = xc * LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    // The low mantissa bits of `shifted` hold n (−126 ≤ n ≤ 0) in two's complement.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    let value = p * scale;
    if x < EXP_MIN { 0.0 } else { value }
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1/√(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;
// Abramowitz & Stegun 7.1.26.
const AS_P: f32 = 0.327_591_1;
const AS_A1: f32 = 0.254_829_6;
const AS_A2: f32 = -0.284_496_74;
const AS_A3: f32 = 1.421_413_7;
const AS_A4: f32 = -1.453_152;
const AS_A5: f32 = 1.061_405_4;

/// `(Φ(x), e^{−x²/2})`: the standard normal CDF `0.5·(1 + erf(x/√2))` and the unnormalised
/// density, sharing the one exponential.
#[inline(always)]
fn normal_cdf_and_gaussian(x: f32) -> (f32, f32) {
    let s = x * FRAC_1_SQRT_2;
    let a = s.abs();
    let t = 1.0 / (1.0 + AS_P * a);
    let poly = t * (AS_A1 + t * (AS_A2 + t * (AS_A3 + t * (AS_A4 + t * AS_A5))));
    let gaussian = exp_nonpositive(-(a * a));
    // erfc(|s|) ≈ poly·e^{−s²}; Φ(x) = 1 − erfc(|s|)/2 for x ≥ 0, erfc(|s|)/2 for x < 0.
    let half_erfc = 0.5 * poly * gaussian;
    let cdf = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    (cdf, gaussian)
}

/// Exact-form GELU, `x·Φ(x)`, of every element: `out[i] = gelu(input[i])`.
///
/// # Shapes
/// `input` and `out` have the same length.
#[inline(always)]
pub fn gelu_erf(input: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(input) {
        let (cdf, _) = normal_cdf_and_gaussian(x);
        *o = x * cdf;
    }
}

/// Input gradient of [`gelu_erf`]: `grad[i]·(Φ(x) + x·φ(x))`, `φ` the standard normal density.
///
/// # Shapes
/// `input`, `grad` and `out` have the same length.
#[inline(always)]
pub fn gelu_erf_backward(input: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(input).zip(grad) {
        let (cdf, gaussian) = normal_cdf_and_gaussian(x);
        *o = g * (cdf + x * INV_SQRT_2PI * gaussian);
    }
}

/// `2·√(2/π)`: GPT-2's `gelu_new` is `x·σ(2u)` with `2u = x·(C1 + C2·x²)`.
pub(crate) const GELU_TANH_C1: f32 = 1.595_769;
/// `2·√(2/π)·0.044715`.
pub(crate) const GELU_TANH_C2: f32 = 0.071_354_82;

/// `(σ(v), σ(v)·(1 − σ(v)))` from `e^{−|v|}`, without cancellation in either tail.
#[inline(always)]
fn sigmoid_and_slope(v: f32) -> (f32, f32) {
    let e = exp_nonpositive(-v.abs());
    let inv = 1.0 / (1.0 + e);
    let sigmoid = if v >= 0.0 { inv } else { e * inv };
    (sigmoid, e * inv * inv)
}

/// GPT-2's tanh-approximated GELU (`gelu_new`, HF `NewGELUActivation`),
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(2u)`, of every element.
///
/// # Shapes
/// `input` and `out` have the same length.
#[inline(always)]
pub fn gelu_tanh(input: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(input) {
        let (sigmoid, _) = sigmoid_and_slope(x * (GELU_TANH_C1 + GELU_TANH_C2 * x * x));
        *o = x * sigmoid;
    }
}

/// Input gradient of [`gelu_tanh`]: `grad·(σ + x·σ(1−σ)·(C1 + 3·C2·x²))`.
///
/// # Shapes
/// `input`, `grad` and `out` have the same length.
#[inline(always)]
pub fn gelu_tanh_backward(input: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(input).zip(grad) {
        let square = x * x;
        let (sigmoid, slope) = sigmoid_and_slope(x * (GELU_TANH_C1 + GELU_TANH_C2 * square));
        *o = g * (sigmoid + x * slope * (GELU_TANH_C1 + 3.0 * GELU_TANH_C2 * square));
    }
}

/// Lanes of the reductions below: independent partial results, so that a float32 reduction
/// (whose order the compiler may not change) still runs as SIMD adds over 16 accumulators.
const LANES: usize = 16;

/// `combine`-reduction of `x` over [`LANES`] accumulators starting at `init`.
#[inline(always)]
fn reduce_lanes(x: &[f32], init: f32, combine: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut acc = [init; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = combine(*a, v);
        }
    }
    let mut total = acc.into_iter().fold(init, combine);
    for &v in tail {
        total = combine(total, v);
    }
    total
}

/// `Σ a·b` over [`LANES`] accumulators.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    acc.into_iter().sum::<f32>() + ta.iter().zip(tb).map(|(u, v)| u * v).sum::<f32>()
}

/// Softmax of every row of `row` elements: `out = e^{x − max}/Σ e^{x − max}`.
///
/// Error: [`exp_nonpositive`]'s `4ε` relative per term, the sum and the division a few `ε`
/// more, so each probability is within ~`8ε` relative of the exact one.
///
/// # Shapes
/// `input`, `out`: `[rows·row]`, rows contiguous.
#[inline(always)]
pub fn softmax_rows(input: &[f32], out: &mut [f32], row: usize) {
    for (x, o) in input.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
        let max = reduce_lanes(x, f32::NEG_INFINITY, f32::max);
        for (oi, &xi) in o.iter_mut().zip(x) {
            *oi = exp_nonpositive(xi - max);
        }
        let inv = 1.0 / reduce_lanes(o, 0.0, |a, b| a + b);
        for oi in o.iter_mut() {
            *oi *= inv;
        }
    }
}

/// Gradient of `scale·s ↦ softmax` rows at the scores, from the probabilities `p` and the
/// probabilities' gradient `dp`: `out = scale·p·(dp − Σ p·dp)` row by row.
///
/// # Shapes
/// `p`, `dp`, `out`: `[rows·row]`, rows contiguous.
#[inline(always)]
pub fn softmax_rows_backward(p: &[f32], dp: &[f32], out: &mut [f32], row: usize, scale: f32) {
    let rows = p.chunks_exact(row).zip(dp.chunks_exact(row));
    for ((p, dp), o) in rows.zip(out.chunks_exact_mut(row)) {
        let dot = dot(p, dp);
        for ((oi, &pi), &dpi) in o.iter_mut().zip(p).zip(dp) {
            *oi = scale * pi * (dpi - dot);
        }
    }
}

/// `Σ (x − mean)²` over [`LANES`] accumulators.
#[inline(always)]
fn centered_square_sum(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &v) in acc.iter_mut().zip(chunk) {
            let c = v - mean;
            *s += c * c;
        }
    }
    acc.into_iter().sum::<f32>() + tail.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()
}

/// `(μ, 1/√(σ² + epsilon))` of a row: mean, then the biased variance about it (two passes, as
/// burn's composed `layer_norm`).
#[inline(always)]
fn row_stats(x: &[f32], epsilon: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = reduce_lanes(x, 0.0, |a, b| a + b) / n;
    let variance = centered_square_sum(x, mean) / n;
    (mean, 1.0 / (variance + epsilon).sqrt())
}

/// LayerNorm of every row: `out = (x − μ)/√(σ² + epsilon)·γ + β`.
///
/// # Shapes
/// `x`, `out`: `[rows·D]`; `gamma`, `beta`: `[D]`.
#[inline(always)]
pub fn layer_norm_rows(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut [f32], epsilon: f32) {
    let row = gamma.len();
    for (x, o) in x.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
        let (mean, rstd) = row_stats(x, epsilon);
        for (((o, &x), &g), &b) in o.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = (x - mean) * rstd * g + b;
        }
    }
}

/// The normalised rows `x̂ = (x − μ)/√(σ² + epsilon)` (for the gradient of `γ`).
///
/// # Shapes
/// `x`, `out`: `[rows·row]`.
#[inline(always)]
pub fn layer_norm_normalized_rows(x: &[f32], out: &mut [f32], row: usize, epsilon: f32) {
    for (x, o) in x.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
        let (mean, rstd) = row_stats(x, epsilon);
        for (o, &x) in o.iter_mut().zip(x) {
            *o = (x - mean) * rstd;
        }
    }
}

/// Input gradient of [`layer_norm_rows`]: with `g = dy·γ`,
/// `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` row by row.
///
/// # Shapes
/// `x`, `dy`, `out`: `[rows·D]`; `gamma`: `[D]`.
#[inline(always)]
pub fn layer_norm_input_grad_rows(
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    out: &mut [f32],
    epsilon: f32,
) {
    let row = gamma.len();
    let n = row as f32;
    let mut g = vec![0.0f32; row];
    let rows = x.chunks_exact(row).zip(dy.chunks_exact(row));
    for ((x, dy), o) in rows.zip(out.chunks_exact_mut(row)) {
        let (mean, rstd) = row_stats(x, epsilon);
        for ((gi, &d), &gm) in g.iter_mut().zip(dy).zip(gamma) {
            *gi = d * gm;
        }
        for (o, &x) in o.iter_mut().zip(x) {
            *o = (x - mean) * rstd;
        }
        let g_mean = reduce_lanes(&g, 0.0, |a, b| a + b) / n;
        let gx_mean = dot(&g, o) / n;
        for (o, &gi) in o.iter_mut().zip(&g) {
            *o = rstd * (gi - g_mean - *o * gx_mean);
        }
    }
}
