//! IA3 (Liu et al. 2022): learned vectors scaling the outputs of attention targets and the inputs
//! of feed-forward targets, configured like HF PEFT's `IA3Config`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cleft_core::peft::{AdapterLoadReport, LinearAdapter};
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{
    check_modules_to_save, device_of, freeze_except, hooks, hooks_mut, in_modules_to_save,
    json_field, layer_specs, module_matches,
};
use crate::files::{TensorSpec, load_specs, save_specs};
use crate::layers::{IA3_L, Ia3Layer, Ia3Position};
use crate::targets::{TargetModules, resolve_targets};

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
}

/// The IA3 tuner built from an [`Ia3Config`].
#[derive(Debug, Clone)]
pub struct Ia3Adapter {
    config: Ia3Config,
}

impl Ia3Adapter {
    /// A tuner for `config`.
    pub fn new(config: Ia3Config) -> Self {
        Self { config }
    }

    fn position(&self, module: &str) -> Ia3Position {
        if module_matches(&self.config.feedforward_modules, module) {
            Ia3Position::Input
        } else {
            Ia3Position::Output
        }
    }

    fn specs(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<TensorSpec>, CleftError> {
        let targets = self.targets(encoder)?;
        layer_specs(
            encoder,
            "ia3",
            &targets,
            &|path| self.is_trainable(path),
            &|module, name, shape| {
                (name == IA3_L).then(|| {
                    Ia3Layer {
                        position: self.position(module),
                    }
                    .stored_as(name, shape)
                })
            },
        )
    }
}

impl PeftAdapter for Ia3Adapter {
    fn method(&self) -> &str {
        "ia3"
    }

    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError> {
        resolve_targets(
            &self.config.target_modules,
            &hooks(encoder, "ia3")?.linear_paths(),
        )
    }

    fn apply(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        let targets = self.targets(&encoder)?;
        let selected = |name: &String| {
            targets
                .iter()
                .any(|t| module_matches(&TargetModules::Names(vec![name.clone()]), t))
        };
        if let TargetModules::Names(names) = &self.config.feedforward_modules
            && let Some(stray) = names.iter().find(|n| !selected(n))
        {
            return Err(CleftError::Invalid(format!(
                "peft.feedforward_modules: `{stray}` is not among the modules peft.target_modules selects"
            )));
        }
        check_modules_to_save(&encoder, &self.config.modules_to_save)?;
        let device = device_of(&encoder)?;
        for (path, layer) in hooks_mut(&mut encoder, "ia3")?.linear_layers_mut() {
            if targets.contains(&path) {
                let method = Arc::new(Ia3Layer {
                    position: self.position(&path),
                });
                layer.inject(method, &device)?;
            }
        }
        Ok(freeze_except(encoder, &|path| self.is_trainable(path)))
    }

    fn is_trainable(&self, path: &str) -> bool {
        path.ends_with(&format!(".{IA3_L}"))
            || in_modules_to_save(&self.config.modules_to_save, path)
    }

    fn merge(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        for (_, layer) in hooks_mut(&mut encoder, "ia3")?.linear_layers_mut() {
            if layer.adapter().is_some_and(|m| m.method() == "ia3") {
                layer.merge_and_unload();
            }
        }
        Ok(encoder)
    }

    fn save(&self, encoder: &Component<dyn TextEncoder>, dir: &Path) -> Result<(), CleftError> {
        let fan_in_fan_out = hooks(encoder, "ia3")?.fan_in_fan_out();
        let config = json!({
            "peft_type": "IA3",
            "task_type": null,
            "base_model_name_or_path": null,
            "inference_mode": true,
            "target_modules": self.config.target_modules,
            "feedforward_modules": self.config.feedforward_modules,
            "fan_in_fan_out": fan_in_fan_out,
            "modules_to_save": if self.config.modules_to_save.is_empty() { None } else { Some(&self.config.modules_to_save) },
            "init_ia3_weights": true,
        });
        save_specs(
            encoder,
            &self.specs(encoder)?,
            BTreeMap::new(),
            &config,
            dir,
        )
    }

    fn load_weights(
        &self,
        encoder: Component<dyn TextEncoder>,
        dir: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
        let specs = self.specs(&encoder)?;
        load_specs(encoder, &specs, dir)
    }
}

#[typetag::serde(name = "ia3")]
impl PeftConfig for Ia3Config {
    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(Box::new(Ia3Adapter::new(self.clone())))
    }
}

cleft_core::register_component!(
    Peft,
    "ia3",
    "IA3 scaling vectors: outputs of attention targets, inputs of feedforward_modules (HF PEFT names)",
    Ia3Config
);
