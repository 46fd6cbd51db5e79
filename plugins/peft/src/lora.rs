//! LoRA (Hu et al. 2021) on a text encoder's linear layers, configured like HF PEFT's `LoraConfig`.
//!
//! Default: the activation path, `y = x·W + b + s·B(A(dropout(x)))` with the base weight untracked,
//! so backward never forms a full-size weight gradient. `implementation = "reparameterized"` uses
//! burn's weight reparameterisation (`W + s·A·B` formed per forward) instead; see the
//! `lora_step` benchmark for the trade-off.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use burn::module::{Lora, Module, ParamGroup};
use cleft_core::peft::AdapterLoadReport;
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{
    check_modules_to_save, device_of, freeze_except, hooks, hooks_mut, in_modules_to_save,
    json_field, layer_specs, module_matches,
};
use crate::files::{TensorSpec, load_specs, save_specs};
use crate::layers::{LORA_A, LORA_B, LoraLayer};
use crate::targets::{TargetModules, resolve_targets};

/// Which biases train with LoRA (HF PEFT `bias`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraBias {
    /// No bias trains.
    #[default]
    None,
    /// Every bias of the encoder trains (linear and LayerNorm biases).
    All,
    /// The biases of the LoRA-targeted layers train.
    LoraOnly,
}

/// How the LoRA update enters the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraImplementation {
    /// `x·W + s·B(A(x))`: the base weight takes no part in backward.
    #[default]
    Activation,
    /// burn's `apply_lora`: `x·(W + s·A·B)`, a full-size weight gradient per step.
    Reparameterized,
}

/// `[peft] type = "lora"` (HF PEFT `LoraConfig` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r`.
    pub r: usize,
    /// Scaling numerator: the update is scaled by `lora_alpha / r` (`/ √r` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the LoRA branch input (CLEFT: 0.1).
    pub lora_dropout: f64,
    /// Target modules (CLEFT on GPT-2: `["c_attn"]`).
    pub target_modules: TargetModules,
    /// HF PEFT's `fan_in_fan_out`, accepted for compatibility: as PEFT does for GPT-2 `Conv1D`,
    /// the encoder's own checkpoint layout wins (it only decides how `modules_to_save` linear
    /// weights are stored in the adapter file).
    pub fan_in_fan_out: Option<bool>,
    /// Which biases train.
    pub bias: LoraBias,
    /// rsLoRA scaling `lora_alpha / √r`.
    pub use_rslora: bool,
    /// Further encoder modules trained in full and saved with the adapter (e.g. `ln_f`).
    pub modules_to_save: Vec<String>,
    /// Activation path (default) or burn's weight reparameterisation.
    pub implementation: LoraImplementation,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 32.0,
            lora_dropout: 0.0,
            target_modules: TargetModules::Names(vec!["c_attn".into()]),
            fan_in_fan_out: None,
            bias: LoraBias::None,
            use_rslora: false,
            modules_to_save: Vec::new(),
            implementation: LoraImplementation::Activation,
        }
    }
}

impl LoraConfig {
    /// The LoRA scale `s`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Reads the fields cleft supports from a PEFT `adapter_config.json`; refuses features it
    /// would otherwise silently ignore (DoRA, per-layer rank/alpha patterns, layer subsets).
    pub fn from_peft_json(value: &serde_json::Value) -> Result<Self, CleftError> {
        let unsupported = |key: &str| {
            value.get(key).is_some_and(|v| match v {
                serde_json::Value::Null | serde_json::Value::Bool(false) => false,
                serde_json::Value::Object(map) => !map.is_empty(),
                _ => true,
            })
        };
        for key in [
            "use_dora",
            "rank_pattern",
            "alpha_pattern",
            "layers_to_transform",
            "lora_bias",
        ] {
            if unsupported(key) {
                return Err(CleftError::Invalid(format!(
                    "adapter_config.json: `{key}` is not supported by the built-in LoRA{}",
                    if key == "use_dora" {
                        " (DoRA is a PEFT method plugin: build examples/plugin-dora and pass its \
                         library with --plugin or `plugins = [...]`)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let defaults = Self::default();
        Ok(Self {
            r: json_field(value, "r")?.unwrap_or(defaults.r),
            lora_alpha: json_field(value, "lora_alpha")?.unwrap_or(defaults.lora_alpha),
            lora_dropout: json_field(value, "lora_dropout")?.unwrap_or(0.0),
            target_modules: json_field(value, "target_modules")?.unwrap_or(defaults.target_modules),
            fan_in_fan_out: json_field(value, "fan_in_fan_out")?,
            bias: json_field(value, "bias")?.unwrap_or_default(),
            use_rslora: json_field(value, "use_rslora")?.unwrap_or(false),
            modules_to_save: json_field(value, "modules_to_save")?.unwrap_or_default(),
            implementation: LoraImplementation::Activation,
        })
    }

    fn to_peft_json(&self, fan_in_fan_out: bool) -> serde_json::Value {
        json!({
            "peft_type": "LORA",
            "task_type": null,
            "base_model_name_or_path": null,
            "inference_mode": true,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": self.target_modules,
            "fan_in_fan_out": fan_in_fan_out,
            "bias": self.bias,
            "use_rslora": self.use_rslora,
            "modules_to_save": if self.modules_to_save.is_empty() { None } else { Some(&self.modules_to_save) },
            "init_lora_weights": true,
            "use_dora": false,
            "auto_mapping": {"base_model_class": "GPT2Model", "parent_library": "transformers.models.gpt2.modeling_gpt2"},
        })
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

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    fn specs(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<TensorSpec>, CleftError> {
        let targets = self.targets(encoder)?;
        layer_specs(
            encoder,
            "lora",
            &targets,
            &|path| self.is_trainable(path),
            &|_, name, shape| {
                [LORA_A, LORA_B]
                    .contains(&name)
                    .then(|| LoraLayer::stored_factor(name, shape))
            },
        )
    }

    fn require_activation(&self, what: &str) -> Result<(), CleftError> {
        match self.config.implementation {
            LoraImplementation::Activation => Ok(()),
            LoraImplementation::Reparameterized => Err(CleftError::Invalid(format!(
                "{what} needs peft.implementation = \"activation\" (HF PEFT layout)"
            ))),
        }
    }
}

impl PeftAdapter for LoraAdapter {
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
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        let layer = Arc::new(LoraLayer::new(
            self.config.r,
            self.config.scale(),
            self.config.lora_dropout,
        )?);
        let targets = self.targets(&encoder)?;
        check_modules_to_save(&encoder, &self.config.modules_to_save)?;
        let encoder = match self.config.implementation {
            LoraImplementation::Activation => {
                let device = device_of(&encoder)?;
                for (path, linear) in hooks_mut(&mut encoder, "lora")?.linear_layers_mut() {
                    if targets.contains(&path) {
                        linear.inject(layer.clone(), &device)?;
                    }
                }
                encoder
            }
            LoraImplementation::Reparameterized => {
                let weights: Vec<String> = targets
                    .iter()
                    .map(|module| format!("{module}.weight"))
                    .collect();
                // burn's default `A ~ N(0, 1/r)`; B is zero either way, so the start is the base model.
                let mut lora = Lora::new(self.config.r, self.config.lora_alpha)
                    .set_param_group(ParamGroup::from_paths(weights));
                lora.alpha = self.config.scale() * self.config.r as f64;
                encoder.apply_lora(lora)
            }
        };
        Ok(freeze_except(encoder, &|path| self.is_trainable(path)))
    }

    fn is_trainable(&self, path: &str) -> bool {
        let adapter = match self.config.implementation {
            LoraImplementation::Activation => {
                path.ends_with(&format!(".{LORA_A}")) || path.ends_with(&format!(".{LORA_B}"))
            }
            LoraImplementation::Reparameterized => path.contains(".lora."),
        };
        let module = path.rsplit_once('.').map_or("", |(m, _)| m);
        let bias = match self.config.bias {
            LoraBias::None => false,
            LoraBias::All => path.ends_with(".bias") || path.ends_with(".beta"),
            LoraBias::LoraOnly => {
                path.ends_with(".bias") && module_matches(&self.config.target_modules, module)
            }
        };
        adapter || bias || in_modules_to_save(&self.config.modules_to_save, path)
    }

    fn merge(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        if self.config.implementation == LoraImplementation::Reparameterized {
            return Ok(encoder.materialize());
        }
        for (_, layer) in hooks_mut(&mut encoder, "lora")?.linear_layers_mut() {
            if layer.adapter().is_some_and(|m| m.method() == "lora") {
                layer.merge_and_unload();
            }
        }
        Ok(encoder)
    }

    fn save(&self, encoder: &Component<dyn TextEncoder>, dir: &Path) -> Result<(), CleftError> {
        self.require_activation("saving a LoRA adapter")?;
        let fan_in_fan_out = hooks(encoder, "lora")?.fan_in_fan_out();
        let specs = self.specs(encoder)?;
        save_specs(
            encoder,
            &specs,
            BTreeMap::new(),
            &self.config.to_peft_json(fan_in_fan_out),
            dir,
        )
    }

    fn load_weights(
        &self,
        encoder: Component<dyn TextEncoder>,
        dir: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
        self.require_activation("loading a LoRA adapter")?;
        let specs = self.specs(&encoder)?;
        load_specs(encoder, &specs, dir)
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
    "LoRA on target linear layers, activation path (HF PEFT names: r, lora_alpha, lora_dropout, target_modules, bias, use_rslora, modules_to_save)",
    LoraConfig
);
