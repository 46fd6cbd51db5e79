//! The injection points an encoder offers to PEFT adapters: the layer level, which the
//! [`TextEncoder`](crate::text::TextEncoder) trait exposes and the tuners of `peft.rs` use.

use super::linear::PeftLinear;
use super::prompt_encoder::PromptEncoder;
use crate::error::CleftError;

/// Shapes an encoder's attention layers offer to prefix tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixGeometry {
    /// Transformer layers.
    pub layers: usize,
    /// Key/value heads per layer.
    pub heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Token-embedding width `E`.
    pub embed_dim: usize,
}

/// Injection points an encoder offers to PEFT adapters (see `plugins/gpt` for an implementation).
///
/// Adapter parameters live *inside* the encoder's module tree (in [`PeftLinear`] layers and an
/// optional [`PromptEncoder`]), so burn's optimizers, freezing and stores reach them under stable
/// paths such as `h.0.attn.c_attn.lora_A.weight` or `prompt_encoder.embedding.weight`.
pub trait PeftHooks {
    /// Paths (relative to the encoder) of every adaptable linear layer, in module order.
    fn linear_paths(&self) -> Vec<String>;
    /// Every adaptable linear layer with its path.
    fn linear_layers_mut(&mut self) -> Vec<(String, &mut PeftLinear)>;
    /// Whether linear weights are stored `[in, out]` in the original checkpoint (GPT-2 `Conv1D`,
    /// PEFT's `fan_in_fan_out = true`) rather than `[out, in]` (`torch.nn.Linear`).
    fn fan_in_fan_out(&self) -> bool;
    /// Layer, head and width sizes for prefix tuning.
    fn prefix_geometry(&self) -> PrefixGeometry;
    /// The installed virtual tokens, if any.
    fn prompt_encoder(&self) -> Option<&PromptEncoder>;
    /// Installs (or removes) virtual tokens; errors when the encoder cannot host them (e.g. the
    /// position table is too short for `n + max_len + 1` positions).
    fn set_prompt_encoder(&mut self, encoder: Option<PromptEncoder>) -> Result<(), CleftError>;
}
