//! The one rule for comparing floats in the suite.
//!
//! # The noise model
//! A float32 computation differs from the exact result by rounding that depends on the order of
//! its sums: SIMD width (AVX2 or AVX-512), FMA contraction, and the cache blocking of the GEMM
//! (the `gemm` crate picks its K-block from the L1 size, so a Zen 3 and a Zen 5 sum a K = 1536
//! product in different chunks). Two correct float32 implementations of the same model are each
//! about `spread` away from the exact result, where `spread` is the reference's own
//! float32-vs-float64 distance (recorded per golden tensor in `fixtures/golden/noise.json` by
//! `tools/golden_noise.py`), so they are about `2 · spread` apart; another CPU draws another
//! sample of the same noise, and a max over elements of one sample is itself noisy, hence a
//! further factor 2. So
//!
//! ```text
//! bound = FACTOR · max(atol + rtol · max|reference|, spread)     FACTOR = 4
//! ```
//!
//! where `atol + rtol · max|reference|` (both `16 ε_f32` ≈ 1.9e-6 by default) is the floor for
//! shallow computations whose recorded spread is near zero. The bound is never derived from what
//! one machine measured, and it never exceeds [`BUG_SCALE`]: an implementation bug (a wrong
//! pooling position, a missed transpose, a wrong scale) moves outputs by 1e-2 or more and must
//! still fail loudly. [`Tolerance::check`] panics when a tolerance is that loose.

use std::fmt;

/// Machine epsilon of float32 (2⁻²³).
pub const EPS_F32: f64 = f32::EPSILON as f64;

/// The safety factor: two independent float32 roundings (×2), each known from a single sample of
/// the reference's own spread (×2).
pub const FACTOR: f64 = 4.0;

/// Default absolute and relative floor: 16 float32 ulps (a few rounding steps of O(1) values).
pub const BASE_ULPS: f64 = 16.0;

/// The smallest deviation a real implementation bug produces in these tests; a bound at or
/// above it could not tell a bug from rounding.
pub const BUG_SCALE: f64 = 1e-2;

/// A comparison rule: `FACTOR · max(atol + rtol · max|reference|, spread)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    /// Absolute floor.
    pub atol: f64,
    /// Relative floor, times `max |reference|`.
    pub rtol: f64,
    /// The reference's own precision: its float32-vs-float64 distance (or another recorded
    /// spread of the same noise, e.g. the reference implementation's merged-vs-unmerged gap).
    pub spread: f64,
    /// Where `spread` comes from, printed with every check.
    pub source: String,
}

impl Tolerance {
    /// Float32 results of a few operations on O(1) values, with no recorded spread.
    pub fn f32_ops() -> Self {
        Self {
            atol: BASE_ULPS * EPS_F32,
            rtol: BASE_ULPS * EPS_F32,
            spread: 0.0,
            source: "float32 ops (16 ulps)".into(),
        }
    }

    /// Parity with a float32 golden tensor: the floor is `fixtures/golden/noise.json →
    /// tensors[key].f32_vs_f64` (e.g. `"smollm2_peft/prefix_pooled"`).
    ///
    /// # Panics
    /// When `noise.json` has no such key: every golden must state its precision.
    pub fn golden(key: &str) -> Self {
        let spread = crate::golden::noise(key)
            .unwrap_or_else(|e| panic!("{e}"))
            .f32_vs_f64;
        Self {
            spread,
            source: format!("noise.json {key}"),
            ..Self::f32_ops()
        }
    }

    /// The same rule with another recorded spread (the larger of the two is kept).
    pub fn with_spread(mut self, spread: f64, source: &str) -> Self {
        if spread > self.spread {
            self.spread = spread;
            self.source = source.to_string();
        }
        self
    }

    /// The bound for a reference whose largest magnitude is `max_ref`.
    pub fn bound(&self, max_ref: f64) -> f64 {
        FACTOR * (self.atol + self.rtol * max_ref).max(self.spread)
    }

    /// Compares `actual` with `reference` element-wise; panics with both numbers, the bound and
    /// its source when the largest difference exceeds the bound, when the shapes (lengths)
    /// differ, when a value is not finite, or when the bound reaches [`BUG_SCALE`].
    pub fn check(&self, what: &str, actual: &[f32], reference: &[f32]) -> Comparison {
        assert_eq!(
            actual.len(),
            reference.len(),
            "{what}: {} values, the reference has {}",
            actual.len(),
            reference.len()
        );
        assert!(
            actual.iter().all(|v| v.is_finite()),
            "{what}: non-finite value in the result"
        );
        let max_ref = reference
            .iter()
            .map(|v| f64::from(v.abs()))
            .fold(0.0, f64::max);
        let max_diff = actual
            .iter()
            .zip(reference)
            .map(|(a, r)| (f64::from(*a) - f64::from(*r)).abs())
            .fold(0.0, f64::max);
        let comparison = Comparison {
            what: what.to_string(),
            max_diff,
            max_ref,
            bound: self.bound(max_ref),
            source: self.source.clone(),
        };
        eprintln!("{comparison}");
        assert!(
            comparison.bound < BUG_SCALE,
            "{what}: bound {:.2e} is too loose to catch an implementation bug (≥ {BUG_SCALE:e})",
            comparison.bound
        );
        assert!(
            comparison.max_diff <= comparison.bound,
            "{what}: max |Δ| {:.3e} > bound {:.3e} = {FACTOR} · max({:.1e} + {:.1e} · {:.3}, {:.3e} [{}])",
            comparison.max_diff,
            comparison.bound,
            self.atol,
            self.rtol,
            max_ref,
            self.spread,
            self.source
        );
        comparison
    }
}

/// The outcome of one [`Tolerance::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What was compared.
    pub what: String,
    /// Largest absolute difference.
    pub max_diff: f64,
    /// Largest magnitude of the reference.
    pub max_ref: f64,
    /// The bound it was held to.
    pub bound: f64,
    /// Where the bound's spread came from.
    pub source: String,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: max |Δ| {:.2e} (bound {:.2e}, {:.0}% of it; max |ref| {:.3}; {})",
            self.what,
            self.max_diff,
            self.bound,
            100.0 * self.max_diff / self.bound,
            self.max_ref,
            self.source
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_the_factor_times_the_larger_of_floor_and_spread() {
        let t = Tolerance::f32_ops();
        let floor = BASE_ULPS * EPS_F32 * (1.0 + 10.0);
        assert_eq!(t.bound(10.0), FACTOR * floor);
        let t = t.with_spread(1e-4, "x");
        assert_eq!(t.bound(10.0), FACTOR * 1e-4);
        // A smaller spread never lowers it.
        assert_eq!(t.clone().with_spread(1e-9, "y"), t);
    }

    #[test]
    fn rounding_passes_and_a_bug_sized_error_fails() {
        let reference: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin() * 40.0).collect();
        let tol = Tolerance::f32_ops().with_spread(2.6e-4, "as SmolLM2's hidden states");
        let rounded: Vec<f32> = reference.iter().map(|v| v + 3e-4).collect();
        tol.check("rounding", &rounded, &reference);
        let buggy: Vec<f32> = reference.iter().map(|v| v + 1e-2).collect();
        let failed = std::panic::catch_unwind(|| tol.check("bug", &buggy, &reference));
        assert!(failed.is_err());
    }

    #[test]
    fn a_tolerance_too_loose_to_catch_bugs_is_refused() {
        let tol = Tolerance::f32_ops().with_spread(5e-3, "too loose");
        let values = [1.0f32; 4];
        assert!(std::panic::catch_unwind(|| tol.check("loose", &values, &values)).is_err());
    }

    #[test]
    fn lengths_must_agree_and_values_be_finite() {
        let tol = Tolerance::f32_ops();
        assert!(std::panic::catch_unwind(|| tol.check("len", &[1.0], &[1.0, 2.0])).is_err());
        assert!(std::panic::catch_unwind(|| tol.check("nan", &[f32::NAN], &[1.0])).is_err());
    }
}
