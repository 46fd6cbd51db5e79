//! DoRA (Liu et al. 2024, weight-decomposed low-rank adaptation; HF PEFT `LoraConfig(use_dora =
//! True)`) as a PEFT method plugin: `[peft] type = "dora"` once `cleft` has loaded this library
//! (`--plugin` or `plugins = [...]` in the config).
//!
//! DoRA splits each target weight into a magnitude and a direction. With `W` the base weight
//! (`[in, out]`), `s` the LoRA scale and `A`, `B` LoRA's factors, the direction is
//! `W + s·A·B`, normalised per output feature, and a learned magnitude `m` (`[out]`, initialised to
//! the column norms of `W`) rescales it:
//!
//! `y = b + (m / n) ⊙ (x·W + s·(x·A)·B)`, with `n = ‖W + s·A·B‖` per output column, detached
//! (as PEFT does, following the paper's §4.3).
//!
//! The plugin supplies the per-layer module, [`DoraLayer`], through cleft's open
//! [`LinearAdapter`] trait, and describes its configuration to `cleft-peft`'s generic tuner
//! ([`LinearMethod`]); [`DoraAdapter`] is that tuner (target matching, freezing, merge, HF PEFT
//! adapter files).

use std::sync::Arc;

use burn::module::{Param, ParamId};
use burn::prelude::*;
use cleft_core::peft::{
    AdapterContext, AdapterParams, BaseLinear, LinearAdapter, Merged, StoredTensor,
};
use cleft_core::prelude::*;
use cleft_peft::layers::{LORA_A, LORA_B};
use cleft_peft::{LinearMethod, LoraLayer, TargetModules, Tuner, json_field};
use serde::{Deserialize, Serialize};
use serde_json::json;
// Links `libcleft_dylib.so`: the one copy of cleft-core, cleft-peft and burn shared with the host.
use cleft_dylib as _;

/// DoRA's magnitude vector, `[out]` (HF PEFT file key suffix `lora_magnitude_vector`).
pub const MAGNITUDE: &str = "lora_magnitude_vector";

/// DoRA on one linear layer: LoRA factors plus a per-output magnitude.
#[derive(Debug, Clone)]
pub struct DoraLayer {
    lora: LoraLayer,
}

impl DoraLayer {
    /// DoRA of rank `r`, scale `scale`, branch-input dropout `dropout` (`[0, 1)`).
    pub fn new(r: usize, scale: f64, dropout: f64) -> Result<Self, CleftError> {
        Ok(Self {
            lora: LoraLayer::new(r, scale, dropout)?,
        })
    }

    /// Per-output-column L2 norm of `W + delta`, detached.
    ///
    /// # Shapes
    /// - `weight`, `delta`: `[in, out]`; output `[1, out]`.
    fn column_norm(weight: Tensor<2>, delta: Tensor<2>) -> Tensor<2> {
        (weight.detach() + delta).powi_scalar(2).sum_dim(0).sqrt()
    }

    /// `m / n` as a row.
    ///
    /// # Shapes
    /// - `norm`: `[1, out]`; output `[1, out]`.
    fn scale_row(params: &AdapterParams, norm: Tensor<2>) -> Tensor<2> {
        params.vector(MAGNITUDE).unsqueeze_dim::<2>(0) / norm
    }
}

impl LinearAdapter for DoraLayer {
    fn method(&self) -> &str {
        "dora"
    }

    /// LoRA's initialisation (`B = 0`), then `m = ‖W‖` per output column, so the adapted layer
    /// starts equal to the base layer. `m` is lazy: it reads `W` when first used, after `W` was
    /// initialised (in seeded module order) or loaded.
    fn init(
        &self,
        weight: &Param<Tensor<2>>,
        device: &Device,
    ) -> Result<AdapterParams, CleftError> {
        let params = self.lora.init_factors(weight, device);
        let [_, d_out] = weight.lazy_shape().dims();
        let weight = weight.clone();
        let magnitude = Param::uninitialized(
            ParamId::new(),
            move |device, require_grad| {
                let w = weight.val().to_device(device);
                // With B = 0 the direction is W itself.
                let norm = Self::column_norm(w.clone(), w.zeros_like());
                let m = norm.squeeze_dim::<1>(0).detach();
                if require_grad { m.require_grad() } else { m }
            },
            device.clone(),
            true,
            [d_out].into(),
        );
        Ok(params.with_vector(MAGNITUDE, magnitude))
    }

    /// `y = x·W + b + (g − 1) ⊙ x·W + g ⊙ s·(x·A)·B` with `g = m / ‖W + s·A·B‖` (PEFT's order of
    /// operations). With dropout, the branch and the `x·W` of the correction see the dropped
    /// input, as in PEFT's training path.
    fn forward(
        &self,
        x: Tensor<2>,
        base: &BaseLinear,
        params: &AdapterParams,
        context: &AdapterContext,
    ) -> Tensor<2> {
        let result = base.forward(x.clone());
        let branch_input = self.lora.branch_input(x, context);
        let base_result = if self.lora.uses_dropout() {
            branch_input.clone().matmul(base.weight.clone())
        } else {
            match &base.bias {
                Some(bias) => result.clone() - bias.clone().unsqueeze_dim::<2>(0),
                None => result.clone(),
            }
        };
        let norm = Self::column_norm(base.weight.clone(), self.lora.delta(params));
        let g = Self::scale_row(params, norm);
        let lora_result = self.lora.branch(branch_input, params);
        result + (g.clone() - 1.0) * base_result + g * lora_result * self.lora.scale
    }

    /// `W' = (W + s·A·B) ⊙ m / ‖W + s·A·B‖` (column-wise); the bias is unchanged. Saves the norm
    /// for [`unmerge`](LinearAdapter::unmerge).
    fn merge(&self, base: BaseLinear, params: &AdapterParams) -> Merged {
        let delta = self.lora.delta(params);
        let norm = Self::column_norm(base.weight.clone(), delta.clone());
        let g = Self::scale_row(params, norm.clone()).detach();
        Merged {
            base: BaseLinear {
                weight: (base.weight + delta) * g,
                bias: base.bias,
            },
            saved: Some(norm.squeeze_dim::<1>(0)),
        }
    }

    /// `W = W' / (m / n) − s·A·B` with the norm `n` saved at merge time.
    fn unmerge(
        &self,
        merged: BaseLinear,
        params: &AdapterParams,
        saved: Option<Tensor<1>>,
    ) -> BaseLinear {
        let norm = match saved {
            Some(norm) => norm.unsqueeze_dim::<2>(0),
            // `PeftLinear` always hands back what `merge` saved; without it, `g = 1` (n = m)
            // undoes the LoRA part only.
            None => params.vector(MAGNITUDE).detach().unsqueeze_dim::<2>(0),
        };
        let g = Self::scale_row(params, norm).detach();
        BaseLinear {
            weight: merged.weight / g - self.lora.delta(params),
            bias: merged.bias,
        }
    }

    fn uses_dropout(&self) -> bool {
        self.lora.uses_dropout()
    }

    /// LoRA's factors transposed (PEFT's `torch.nn.Linear` layout), the magnitude as is.
    fn stored_as(&self, name: &str, shape: &[usize]) -> StoredTensor {
        LoraLayer::stored_factor(name, shape)
    }
}

/// `[peft] type = "dora"`: HF PEFT `LoraConfig` names, `use_dora = true` implied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoraConfig {
    /// Rank `r`.
    pub r: usize,
    /// Scaling numerator: `lora_alpha / r` (`/ √r` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the branch input.
    pub lora_dropout: f64,
    /// Target modules (names or a regex, HF PEFT rules).
    pub target_modules: TargetModules,
    /// rsLoRA scaling `lora_alpha / √r`.
    pub use_rslora: bool,
    /// Further encoder modules trained in full and saved with the adapter.
    pub modules_to_save: Vec<String>,
}

impl Default for DoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 32.0,
            lora_dropout: 0.0,
            target_modules: TargetModules::Names(vec!["c_attn".into()]),
            use_rslora: false,
            modules_to_save: Vec::new(),
        }
    }
}

impl DoraConfig {
    /// The LoRA scale `s`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Reads an HF PEFT `adapter_config.json` of a DoRA adapter (`peft_type = "LORA"`,
    /// `use_dora = true`); refuses other adapters and features it would silently ignore.
    pub fn from_peft_json(value: &serde_json::Value) -> Result<Self, CleftError> {
        let peft_type: Option<String> = json_field(value, "peft_type")?;
        let use_dora: Option<bool> = json_field(value, "use_dora")?;
        if peft_type.as_deref() != Some("LORA") || use_dora != Some(true) {
            return Err(CleftError::Invalid(format!(
                "adapter_config.json: not a DoRA adapter (peft_type = {peft_type:?}, use_dora = \
                 {use_dora:?}; DoRA needs \"LORA\" and true)"
            )));
        }
        for key in ["rank_pattern", "alpha_pattern", "layers_to_transform"] {
            if value
                .get(key)
                .is_some_and(|v| !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty())))
            {
                return Err(CleftError::Invalid(format!(
                    "adapter_config.json: `{key}` is not supported by the DoRA plugin"
                )));
            }
        }
        let defaults = Self::default();
        Ok(Self {
            r: json_field(value, "r")?.unwrap_or(defaults.r),
            lora_alpha: json_field(value, "lora_alpha")?.unwrap_or(defaults.lora_alpha),
            lora_dropout: json_field(value, "lora_dropout")?.unwrap_or(0.0),
            target_modules: json_field(value, "target_modules")?.unwrap_or(defaults.target_modules),
            use_rslora: json_field(value, "use_rslora")?.unwrap_or(false),
            modules_to_save: json_field(value, "modules_to_save")?.unwrap_or_default(),
        })
    }
}

/// The DoRA tuner built from a [`DoraConfig`].
pub type DoraAdapter = Tuner<DoraConfig>;

impl LinearMethod for DoraConfig {
    fn name(&self) -> &'static str {
        "dora"
    }

    fn target_modules(&self) -> &TargetModules {
        &self.target_modules
    }

    fn modules_to_save(&self) -> &[String] {
        &self.modules_to_save
    }

    fn layer_params(&self) -> &'static [&'static str] {
        &[LORA_A, LORA_B, MAGNITUDE]
    }

    fn layer(&self, _module: &str) -> Result<Arc<dyn LinearAdapter>, CleftError> {
        Ok(Arc::new(DoraLayer::new(
            self.r,
            self.scale(),
            self.lora_dropout,
        )?))
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
            "bias": "none",
            "use_rslora": self.use_rslora,
            "modules_to_save": if self.modules_to_save.is_empty() { None } else { Some(&self.modules_to_save) },
            "init_lora_weights": true,
            "use_dora": true,
        })
    }
}

#[typetag::serde(name = "dora")]
impl PeftConfig for DoraConfig {
    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(Box::new(Tuner::new(self.clone())))
    }
}

cleft_core::export_plugin! {
    Peft, "dora", "DoRA: LoRA with a learned per-output magnitude (HF PEFT use_dora; r, lora_alpha, lora_dropout, target_modules, use_rslora, modules_to_save)", DoraConfig;
}
