//! Gemma 3's text architecture as HF `config.json` files describe it (both transformers layouts,
//! and the `text_config` of multimodal checkpoints): layer kinds, RoPE per kind, validation.

use cleft_core::CleftError;
use cleft_core::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Rope, RopeScaling};

/// Gemma 3 text architecture (HF `Gemma3TextConfig` names); deserialises a `config.json` in the
/// transformers 4 layout (`rope_theta`, `rope_local_base_freq`, `rope_scaling`,
/// `sliding_window_pattern`) or the transformers 5 one (`rope_parameters` per layer type,
/// `layer_types`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gemma3Architecture {
    /// `gemma3_text`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size `E`.
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Per-head size.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Attention scale `query_pre_attn_scalar^(-1/2)`.
    pub query_pre_attn_scalar: f64,
    /// Biases on the attention projections.
    pub attention_bias: bool,
    /// MLP activation (only `gelu_pytorch_tanh`).
    pub hidden_activation: String,
    /// Window of the local layers.
    pub sliding_window: usize,
    /// Per layer: `sliding_attention` (local) or `full_attention` (global).
    pub layer_types: Option<Vec<String>>,
    /// Every `sliding_window_pattern`-th layer is global (older configs, without `layer_types`).
    pub sliding_window_pattern: Option<usize>,
    /// RoPE θ of the global layers (transformers 4 layout).
    pub rope_theta: f64,
    /// RoPE θ of the local layers (transformers 4 layout).
    pub rope_local_base_freq: f64,
    /// RoPE scaling of the global layers (transformers 4 layout).
    pub rope_scaling: Option<Value>,
    /// RoPE settings per layer type (transformers 5 layout).
    pub rope_parameters: Option<Value>,
    /// Bidirectional attention (EmbeddingGemma-style); only `false` is supported.
    pub use_bidirectional_attention: bool,
}

impl Default for Gemma3Architecture {
    fn default() -> Self {
        // transformers' Gemma3TextConfig defaults.
        Self {
            model_type: "gemma3_text".into(),
            vocab_size: 262_208,
            hidden_size: 2304,
            intermediate_size: 9216,
            num_hidden_layers: 26,
            num_attention_heads: 8,
            num_key_value_heads: 4,
            head_dim: 256,
            rms_norm_eps: 1e-6,
            query_pre_attn_scalar: 256.0,
            attention_bias: false,
            hidden_activation: "gelu_pytorch_tanh".into(),
            sliding_window: 4096,
            layer_types: None,
            sliding_window_pattern: None,
            rope_theta: 1_000_000.0,
            rope_local_base_freq: 10_000.0,
            rope_scaling: None,
            rope_parameters: None,
            use_bidirectional_attention: false,
        }
    }
}

const LOCAL: &str = "sliding_attention";
const GLOBAL: &str = "full_attention";

impl Gemma3Architecture {
    /// Whether each layer is local (sliding-window attention).
    pub fn local_layers(&self) -> Result<Vec<bool>, CleftError> {
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(CleftError::Invalid(format!(
                    "layer_types has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                )));
            }
            return types
                .iter()
                .map(|t| match t.as_str() {
                    LOCAL => Ok(true),
                    GLOBAL => Ok(false),
                    other => Err(CleftError::Invalid(format!(
                        "layer_types entry {other:?} is not supported ({LOCAL}, {GLOBAL})"
                    ))),
                })
                .collect();
        }
        // transformers: layer i is global when (i + 1) % pattern == 0 (default pattern 6).
        let pattern = self.sliding_window_pattern.unwrap_or(6).max(1);
        Ok((0..self.num_hidden_layers)
            .map(|i| !(i + 1).is_multiple_of(pattern))
            .collect())
    }

    /// RoPE of the global and the local layers.
    pub fn ropes(&self, context: &str) -> Result<(Rope, Rope), CleftError> {
        match self.rope_parameters.as_ref().filter(|v| !v.is_null()) {
            Some(parameters) => {
                let of = |kind: &str| {
                    let table = parameters
                        .get(kind)
                        .filter(|v| !v.is_null())
                        .ok_or_else(|| {
                            CleftError::Invalid(format!(
                                "{context}: rope_parameters has no {kind:?} entry"
                            ))
                        })?;
                    Rope::from_hf(None, None, Some(table), self.rope_theta, context)
                };
                Ok((of(GLOBAL)?, of(LOCAL)?))
            }
            None => Ok((
                Rope::from_hf(
                    Some(self.rope_theta),
                    self.rope_scaling.as_ref(),
                    None,
                    self.rope_theta,
                    context,
                )?,
                Rope {
                    theta: self.rope_local_base_freq,
                    scaling: RopeScaling::Default,
                },
            )),
        }
    }

    /// Checks the combination is one this implementation computes exactly.
    pub fn validate(&self) -> Result<(), CleftError> {
        let (heads, kv) = (self.num_attention_heads, self.num_key_value_heads);
        if heads == 0 || kv == 0 || heads % kv != 0 || !self.head_dim.is_multiple_of(2) {
            return Err(CleftError::Invalid(format!(
                "Gemma 3 needs num_attention_heads ({heads}) divisible by num_key_value_heads \
                 ({kv}) and an even head_dim ({})",
                self.head_dim
            )));
        }
        if !matches!(self.model_type.as_str(), "gemma3_text" | "gemma3") {
            return Err(CleftError::Invalid(format!(
                "model_type {:?} is not Gemma 3's text decoder (gemma3_text)",
                self.model_type
            )));
        }
        if self.hidden_activation != "gelu_pytorch_tanh" {
            return Err(CleftError::Invalid(format!(
                "Gemma 3 with hidden_activation {:?} is not supported (gelu_pytorch_tanh)",
                self.hidden_activation
            )));
        }
        if self.use_bidirectional_attention {
            return Err(CleftError::Invalid(
                "use_bidirectional_attention = true is not supported (causal Gemma 3 only)".into(),
            ));
        }
        self.local_layers()?;
        self.ropes("config.json")?;
        Ok(())
    }

    /// The window every sequence must fit, when a layer is local.
    pub fn attention_window(&self) -> Result<Option<usize>, CleftError> {
        Ok(self
            .local_layers()?
            .contains(&true)
            .then_some(self.sliding_window))
    }

    /// The decoder section of a `config.json`: its `text_config` for a multimodal Gemma 3 /
    /// MedGemma checkpoint, the whole file otherwise.
    pub fn from_config_json(value: Value, context: &str) -> Result<Self, CleftError> {
        let text = match value.get("text_config") {
            Some(text) if text.is_object() => text.clone(),
            _ => value,
        };
        serde_json::from_value(text).map_err(|e| {
            CleftError::caused(
                ErrorKind::Weights,
                format!("{context}: unexpected config"),
                e,
            )
        })
    }
}
