//! LoRA (Hu et al. 2021) on a text encoder's linear layers, configured like HF PEFT's `LoraConfig`.
//!
//! Default: the activation path, `y = x·W + b + s·B(A(dropout(x)))` with the base weight untracked,
//! so backward never forms a full-size weight gradient. `implementation = "reparameterized"` uses
//! burn's weight reparameterisation (`W + s·A·B` formed per forward) instead; see the
//! `lora_step` benchmark for the trade-off.

use std::sync::Arc;

use cleft_core::peft::LinearAdapter;
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, PeftAdapter};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{json_field, module_matches};
use crate::layers::{LORA_A, LORA_B, LoraLayer};
use crate::lora_reparameterized::ReparameterizedLora;
use crate::targets::TargetModules;
use crate::tuner::{LinearMethod, Tuner};

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

    /// The per-layer method of this configuration (validates `r` and `lora_dropout`).
    pub fn lora_layer(&self) -> Result<LoraLayer, CleftError> {
        LoraLayer::new(self.r, self.scale(), self.lora_dropout)
    }

    /// Whether the `bias` setting makes the parameter at `path` train.
    pub fn trains_bias(&self, path: &str) -> bool {
        let module = path.rsplit_once('.').map_or("", |(m, _)| m);
        match self.bias {
            LoraBias::None => false,
            LoraBias::All => path.ends_with(".bias") || path.ends_with(".beta"),
            LoraBias::LoraOnly => {
                path.ends_with(".bias") && module_matches(&self.target_modules, module)
            }
        }
    }
}

/// The LoRA tuner (activation path) built from a [`LoraConfig`].
pub type LoraAdapter = Tuner<LoraConfig>;

impl LinearMethod for LoraConfig {
    fn name(&self) -> &'static str {
        "lora"
    }

    fn target_modules(&self) -> &TargetModules {
        &self.target_modules
    }

    fn modules_to_save(&self) -> &[String] {
        &self.modules_to_save
    }

    fn layer_params(&self) -> &'static [&'static str] {
        &[LORA_A, LORA_B]
    }

    fn layer(&self, _module: &str) -> Result<Arc<dyn LinearAdapter>, CleftError> {
        Ok(Arc::new(self.lora_layer()?))
    }

    fn also_trainable(&self, path: &str) -> bool {
        self.trains_bias(path)
    }

    fn peft_json(&self, fan_in_fan_out: bool) -> serde_json::Value {
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

#[typetag::serde(name = "lora")]
impl PeftConfig for LoraConfig {
    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(match self.implementation {
            LoraImplementation::Activation => Box::new(Tuner::new(self.clone())),
            LoraImplementation::Reparameterized => Box::new(ReparameterizedLora::new(self.clone())),
        })
    }
}

cleft_core::register_component!(
    Peft,
    "lora",
    "LoRA on target linear layers, activation path (HF PEFT names: r, lora_alpha, lora_dropout, target_modules, bias, use_rslora, modules_to_save)",
    LoraConfig
);
