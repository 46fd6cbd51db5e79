//! Rotary position embedding frequencies: HF's default RoPE and the `rope_scaling` types this
//! encoder computes exactly (`linear`, `llama3`), read from either `config.json` layout.
//!
//! transformers 4 (and most Hub checkpoints) write `rope_theta` and `rope_scaling` at the top
//! level; transformers 5 writes one `rope_parameters` table holding `rope_theta`, `rope_type` and
//! the scaling fields. Both are accepted; a type other than `default`, `linear` or `llama3` is
//! refused by name. Reference: `transformers/modeling_rope_utils.py`
//! (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
//! `_compute_llama3_parameters`); the arithmetic below is float32 in the same order, as PyTorch
//! evaluates it (a scalar divided by a tensor is the tensor's reciprocal times the scalar).

use cleft_core::CleftError;
use serde_json::Value;

/// How RoPE frequencies are rescaled for a longer context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// HF `rope_type = "default"`: `inv_freq[i] = θ^(−2i/hd)`.
    Default,
    /// `rope_type = "linear"`: every frequency divided by `factor` (positions interpolated).
    Linear {
        /// Context extension factor.
        factor: f64,
    },
    /// `rope_type = "llama3"` (Llama 3.1 / 3.2): long wavelengths divided by `factor`, short ones
    /// kept, the band between interpolated smoothly.
    Llama3 {
        /// Context extension factor.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

/// RoPE settings of one model: base θ and scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    /// Base θ.
    pub theta: f64,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// The scaling types computed exactly; anything else is refused with this list.
pub const SUPPORTED_ROPE_TYPES: [&str; 3] = ["default", "linear", "llama3"];

impl Rope {
    /// Reads θ and the scaling from a `config.json`'s fields: `rope_parameters` (transformers 5)
    /// or `rope_theta` + `rope_scaling` (transformers 4); θ defaults to `default_theta`.
    /// `context` names the file in errors.
    pub fn from_hf(
        rope_theta: Option<f64>,
        rope_scaling: Option<&Value>,
        rope_parameters: Option<&Value>,
        default_theta: f64,
        context: &str,
    ) -> Result<Self, CleftError> {
        let parameters = rope_parameters.filter(|v| !v.is_null());
        let theta = parameters
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .or(rope_theta)
            .unwrap_or(default_theta);
        let table = match (parameters, rope_scaling.filter(|v| !v.is_null())) {
            (Some(p), _) => p,
            (None, Some(s)) => s,
            (None, None) => {
                return Ok(Self {
                    theta,
                    scaling: RopeScaling::Default,
                });
            }
        };
        let field = if parameters.is_some() {
            "rope_parameters"
        } else {
            "rope_scaling"
        };
        let kind = table
            .get("rope_type")
            .or_else(|| table.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let number = |key: &str| {
            table.get(key).and_then(Value::as_f64).ok_or_else(|| {
                CleftError::Invalid(format!(
                    "{context}: {field}.{key} is missing or not a number (rope_type {kind:?})"
                ))
            })
        };
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear {
                factor: number("factor")?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: number("factor")?,
                low_freq_factor: number("low_freq_factor")?,
                high_freq_factor: number("high_freq_factor")?,
                original_max_position_embeddings: number("original_max_position_embeddings")?,
            },
            other => {
                return Err(CleftError::Invalid(format!(
                    "{context}: {field}.rope_type {other:?} is not supported; supported: {}",
                    SUPPORTED_ROPE_TYPES.join(", ")
                )));
            }
        };
        if let RopeScaling::Llama3 {
            low_freq_factor,
            high_freq_factor,
            ..
        } = scaling
            && high_freq_factor <= low_freq_factor
        {
            return Err(CleftError::Invalid(format!(
                "{context}: {field}.high_freq_factor ({high_freq_factor}) must exceed \
                 low_freq_factor ({low_freq_factor})"
            )));
        }
        Ok(Self { theta, scaling })
    }

    /// The `head_dim / 2` inverse frequencies, float32 as transformers computes them.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let base: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / (self.theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        match self.scaling {
            RopeScaling::Default => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let (factor, low, high) = (factor as f32, low_freq_factor, high_freq_factor);
                let old = original_max_position_embeddings;
                let low_freq_wavelen = (old / low) as f32;
                let high_freq_wavelen = (old / high) as f32;
                base.iter()
                    .map(|&f| {
                        let wavelen = f.recip() * (2.0 * std::f64::consts::PI) as f32;
                        let scaled = if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            f
                        };
                        if wavelen < high_freq_wavelen || wavelen > low_freq_wavelen {
                            return scaled;
                        }
                        let smooth =
                            (wavelen.recip() * old as f32 - low as f32) / (high - low) as f32;
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_config_layouts_give_the_same_rope() {
        let v4 = Rope::from_hf(
            Some(500000.0),
            Some(
                &json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
            ),
            None,
            10000.0,
            "config.json",
        )
        .unwrap();
        let v5 = Rope::from_hf(
            None,
            None,
            Some(
                &json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192}),
            ),
            10000.0,
            "config.json",
        )
        .unwrap();
        assert_eq!(v4, v5);
        assert_eq!(v4.theta, 500000.0);
        // Older checkpoints spell the key `type`.
        let old = Rope::from_hf(
            None,
            Some(&json!({"type": "linear", "factor": 2.0})),
            None,
            1e4,
            "c",
        )
        .unwrap();
        assert_eq!(old.scaling, RopeScaling::Linear { factor: 2.0 });
    }

    #[test]
    fn unknown_or_incomplete_scaling_is_refused_by_name() {
        let error = Rope::from_hf(
            None,
            Some(&json!({"rope_type": "yarn", "factor": 4.0})),
            None,
            1e4,
            "m/config.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("m/config.json") && error.contains("\"yarn\""),
            "{error}"
        );
        assert!(error.contains("default, linear, llama3"), "{error}");
        let error = Rope::from_hf(
            None,
            None,
            Some(&json!({"rope_type": "llama3", "factor": 8.0})),
            1e4,
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("rope_parameters.low_freq_factor"), "{error}");
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones() {
        // Identities of the formula: wavelengths below original/high_freq_factor are unchanged,
        // above original/low_freq_factor divided by the factor, in between strictly between.
        let rope = Rope {
            theta: 500000.0,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 64.0,
            },
        };
        let plain = Rope {
            scaling: RopeScaling::Default,
            ..rope
        }
        .inv_freq(16);
        let scaled = rope.inv_freq(16);
        for (p, s) in plain.iter().zip(&scaled) {
            let wavelen = 2.0 * std::f32::consts::PI / p;
            if wavelen < 16.0 {
                assert_eq!(s, p);
            } else if wavelen > 64.0 {
                assert_eq!(*s, p / 8.0);
            } else {
                assert!(*s < *p && *s > p / 8.0, "{s} {p}");
            }
        }
    }
}
