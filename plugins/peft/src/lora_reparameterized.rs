//! LoRA through burn's weight reparameterisation (`implementation = "reparameterized"`):
//! `x·(W + s·A·B)` formed per forward, a full-size weight gradient per step. Kept selectable
//! beside the activation path for comparison (see the `lora_step` benchmark); it has no HF PEFT
//! file layout.

use std::path::Path;

use burn::module::{Lora, Module, ParamGroup};
use cleft_core::peft::AdapterLoadReport;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};

use crate::common::{check_modules_to_save, freeze_except, hooks, in_modules_to_save};
use crate::lora::LoraConfig;
use crate::targets::resolve_targets;

/// The LoRA tuner on burn's `apply_lora`, built from a [`LoraConfig`] with
/// `implementation = "reparameterized"`.
#[derive(Debug, Clone)]
pub struct ReparameterizedLora {
    config: LoraConfig,
}

impl ReparameterizedLora {
    /// A tuner for `config`.
    pub fn new(config: LoraConfig) -> Self {
        Self { config }
    }

    fn no_file_layout(what: &str) -> CleftError {
        CleftError::Invalid(format!(
            "{what} needs peft.implementation = \"activation\" (HF PEFT layout)"
        ))
    }
}

impl PeftAdapter for ReparameterizedLora {
    fn method(&self) -> &str {
        "lora"
    }

    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError> {
        resolve_targets(
            &self.config.target_modules,
            &hooks(encoder, "lora")?.linear_paths(),
        )
    }

    fn apply(
        &self,
        encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        // The same settings are valid as for the activation path.
        self.config.lora_layer()?;
        let targets = self.targets(&encoder)?;
        check_modules_to_save(&encoder, &self.config.modules_to_save)?;
        let weights: Vec<String> = targets
            .iter()
            .map(|module| format!("{module}.weight"))
            .collect();
        // burn's default `A ~ N(0, 1/r)`; B is zero either way, so the start is the base model.
        let mut lora = Lora::new(self.config.r, self.config.lora_alpha)
            .set_param_group(ParamGroup::from_paths(weights));
        lora.alpha = self.config.scale() * self.config.r as f64;
        let encoder = encoder.apply_lora(lora);
        Ok(freeze_except(encoder, &|path| self.is_trainable(path)))
    }

    fn is_trainable(&self, path: &str) -> bool {
        path.contains(".lora.")
            || self.config.trains_bias(path)
            || in_modules_to_save(&self.config.modules_to_save, path)
    }

    fn merge(
        &self,
        encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        Ok(encoder.materialize())
    }

    fn save(&self, _: &Component<dyn TextEncoder>, _: &Path) -> Result<(), CleftError> {
        Err(Self::no_file_layout("saving a LoRA adapter"))
    }

    fn load_weights(
        &self,
        _: Component<dyn TextEncoder>,
        _: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
        Err(Self::no_file_layout("loading a LoRA adapter"))
    }
}
