//! IA3 (Liu et al. 2022): learned vectors scaling the outputs of attention targets and the inputs
//! of feed-forward targets, configured like HF PEFT's `IA3Config`.

use std::sync::Arc;

use cleft_core::peft::LinearAdapter;
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, PeftAdapter};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{json_field, module_matches};
use crate::layers::{IA3_L, Ia3Layer, Ia3Position};
use crate::targets::TargetModules;
use crate::tuner::{LinearMethod, Tuner};

/// `[peft] type = "ia3"` (HF PEFT `IA3Config` names). CLEFT on GPT-2: `c_attn` (output scaling)
/// and `mlp.c_proj` (feed-forward, input scaling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ia3Config {
    /// Modules that get a scaling vector.
    pub target_modules: TargetModules,
    /// The targets whose *input* is scaled (must be among `target_modules`).
    pub feedforward_modules: TargetModules,
    /// HF PEFT's `fan_in_fan_out`, accepted for compatibility: as PEFT does for GPT-2 `Conv1D`,
    /// the encoder's own checkpoint layout wins (it only decides how `modules_to_save` linear
    /// weights are stored in the adapter file).
    pub fan_in_fan_out: Option<bool>,
    /// Further encoder modules trained in full and saved with the adapter.
    pub modules_to_save: Vec<String>,
}

impl Default for Ia3Config {
    fn default() -> Self {
        Self {
            target_modules: TargetModules::Names(vec!["c_attn".into(), "mlp.c_proj".into()]),
            feedforward_modules: TargetModules::Names(vec!["mlp.c_proj".into()]),
            fan_in_fan_out: None,
            modules_to_save: Vec::new(),
        }
    }
}

impl Ia3Config {
    /// Reads the fields cleft supports from a PEFT `adapter_config.json`.
    pub fn from_peft_json(value: &serde_json::Value) -> Result<Self, CleftError> {
        let defaults = Self::default();
        Ok(Self {
            target_modules: json_field(value, "target_modules")?.unwrap_or(defaults.target_modules),
            feedforward_modules: json_field(value, "feedforward_modules")?
                .unwrap_or(TargetModules::Names(Vec::new())),
            fan_in_fan_out: json_field(value, "fan_in_fan_out")?,
            modules_to_save: json_field(value, "modules_to_save")?.unwrap_or_default(),
        })
    }

    /// Where the vector scales target `module`: its input if `feedforward_modules` selects it,
    /// else its output.
    pub fn position(&self, module: &str) -> Ia3Position {
        if module_matches(&self.feedforward_modules, module) {
            Ia3Position::Input
        } else {
            Ia3Position::Output
        }
    }
}

/// The IA3 tuner built from an [`Ia3Config`].
pub type Ia3Adapter = Tuner<Ia3Config>;

impl LinearMethod for Ia3Config {
    fn name(&self) -> &'static str {
        "ia3"
    }

    fn target_modules(&self) -> &TargetModules {
        &self.target_modules
    }

    fn modules_to_save(&self) -> &[String] {
        &self.modules_to_save
    }

    fn layer_params(&self) -> &'static [&'static str] {
        &[IA3_L]
    }

    fn layer(&self, module: &str) -> Result<Arc<dyn LinearAdapter>, CleftError> {
        Ok(Arc::new(Ia3Layer {
            position: self.position(module),
        }))
    }

    /// Every `feedforward_modules` name must be among the targets.
    fn check_targets(&self, targets: &[String]) -> Result<(), CleftError> {
        let selected = |name: &String| {
            targets
                .iter()
                .any(|t| module_matches(&TargetModules::Names(vec![name.clone()]), t))
        };
        if let TargetModules::Names(names) = &self.feedforward_modules
            && let Some(stray) = names.iter().find(|n| !selected(n))
        {
            return Err(CleftError::Invalid(format!(
                "peft.feedforward_modules: `{stray}` is not among the modules peft.target_modules selects"
            )));
        }
        Ok(())
    }

    fn peft_json(&self, fan_in_fan_out: bool) -> serde_json::Value {
        json!({
            "peft_type": "IA3",
            "task_type": null,
            "base_model_name_or_path": null,
            "inference_mode": true,
            "target_modules": self.target_modules,
            "feedforward_modules": self.feedforward_modules,
            "fan_in_fan_out": fan_in_fan_out,
            "modules_to_save": if self.modules_to_save.is_empty() { None } else { Some(&self.modules_to_save) },
            "init_ia3_weights": true,
        })
    }
}

#[typetag::serde(name = "ia3")]
impl PeftConfig for Ia3Config {
    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(Box::new(Tuner::new(self.clone())))
    }
}

cleft_core::register_component!(
    Peft,
    "ia3",
    "IA3 scaling vectors: outputs of attention targets, inputs of feedforward_modules (HF PEFT names)",
    Ia3Config
);
