//! LoRA (Hu et al. 2021) on a text encoder's linear layers.
//!
//! This first implementation uses burn's weight reparameterisation (`W + (α/r)·A·B` formed per
//! forward; `materialize` merges). It freezes every base parameter of the encoder, so only the
//! `A`/`B` factors train.

use burn::module::{Lora, Module, ParamGroup};
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};
use serde::{Deserialize, Serialize};

use crate::targets::{TargetModules, module_paths, resolve_targets};

/// `[peft] type = "lora"` (HF PEFT `LoraConfig` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r`.
    pub r: usize,
    /// Scaling numerator: the update is scaled by `alpha / r`.
    pub lora_alpha: f64,
    /// Target modules (CLEFT on GPT-2: `["c_attn"]`).
    pub target_modules: TargetModules,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { r: 8, lora_alpha: 32.0, target_modules: TargetModules::Names(vec!["c_attn".into()]) }
    }
}

/// The LoRA tuner built from a [`LoraConfig`].
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    config: LoraConfig,
}

impl LoraAdapter {
    /// A tuner for `config`.
    pub fn new(config: LoraConfig) -> Self {
        Self { config }
    }
}

impl PeftAdapter for LoraAdapter {
    fn method(&self) -> &str {
        "lora"
    }

    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError> {
        resolve_targets(&self.config.target_modules, &module_paths(encoder))
    }

    fn apply(
        &self,
        encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        if self.config.r == 0 {
            return Err(CleftError::Invalid("peft.r must be at least 1".into()));
        }
        let weights: Vec<String> =
            self.targets(&encoder)?.into_iter().map(|module| format!("{module}.weight")).collect();
        let lora = Lora::new(self.config.r, self.config.lora_alpha)
            .set_param_group(ParamGroup::from_paths(weights));
        Ok(encoder.apply_lora(lora))
    }

    fn merge(&self, encoder: Component<dyn TextEncoder>) -> Component<dyn TextEncoder> {
        encoder.materialize()
    }
}

#[typetag::serde(name = "lora")]
impl PeftConfig for LoraConfig {
    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(Box::new(LoraAdapter::new(self.clone())))
    }
}

cleft_core::register_component!(
    Peft,
    "lora",
    "LoRA low-rank updates on target linear layers (HF PEFT names: r, lora_alpha, target_modules)",
    LoraConfig
);
