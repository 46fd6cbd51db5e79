//! The `[vision] type = "hf-vit"` section: HF `ViTModel` sizes, the `vit-b16` preset, pooling,
//! and loading HF `ViTModel` checkpoint directories (`config.json` + `model.safetensors`).

use cleft_core::ErrorKind;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use cleft_core::contract::{ImageInput, Keyed, refuse_overridden};
use cleft_core::registry::VisionEncoderConfig;
use cleft_core::weights::{
    LoadReport, WeightMapping, load_weights, open_checkpoint, parse_hf_config,
};
use cleft_core::{CleftError, Component, VisionEncoder};
use serde::{Deserialize, Serialize};

use crate::embeddings::check_geometry;
use crate::hf_vit::HfVitModel;

/// How `hf-vit` pools its tokens into one image feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HfVitPooling {
    /// The CLS token after the final layernorm (`last_hidden_state[:, 0]`; the BERT baseline's).
    Cls,
    /// HF `pooler_output`: `tanh(pooler.dense(CLS))`.
    Pooler,
    /// Mean of all tokens (CLS included) after the final layernorm.
    Mean,
}

/// Architecture fields of a HF `ViTConfig` (`config.json` names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HfVitArchitecture {
    /// Must be `vit`.
    pub model_type: String,
    /// Hidden size `D`.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP hidden size `I`.
    pub intermediate_size: usize,
    /// Activation; only `gelu` (erf) is supported.
    pub hidden_act: String,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Native image side (position grid = image_size / patch_size).
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Q/K/V biases.
    pub qkv_bias: bool,
    /// Pooler width `P` (`None` = `D`).
    pub pooler_output_size: Option<usize>,
    /// Pooler activation; only `tanh` is supported.
    pub pooler_act: String,
}

impl Default for HfVitArchitecture {
    fn default() -> Self {
        Self {
            model_type: "vit".into(),
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-12,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            qkv_bias: true,
            pooler_output_size: None,
            pooler_act: "tanh".into(),
        }
    }
}

impl HfVitArchitecture {
    /// Pooler width `P`.
    pub fn pooler_size(&self) -> usize {
        self.pooler_output_size.unwrap_or(self.hidden_size)
    }

    /// Checks that this implementation computes the architecture exactly.
    pub fn validate(&self) -> Result<(), CleftError> {
        let invalid = |message: String| Err(CleftError::Invalid(message));
        if self.model_type != "vit" || self.hidden_act != "gelu" || self.pooler_act != "tanh" {
            return invalid(format!(
                "unsupported ViT variant (model_type {:?}, hidden_act {:?}, pooler_act {:?}); \
                 supported: model_type \"vit\", hidden_act \"gelu\", pooler_act \"tanh\"",
                self.model_type, self.hidden_act, self.pooler_act
            ));
        }
        check_geometry(
            self.hidden_size,
            self.num_attention_heads,
            self.image_size,
            self.patch_size,
        )
    }
}

/// The `[vision] type = "hf-vit"` section (HF `ViTConfig` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HfVitConfig {
    /// Named preset (`vit-b16`: 224 px, patch 16, D 768, 12 layers, 12 heads, MLP 3072) that
    /// fixes the size fields; setting one next to it is an error naming both keys.
    pub preset: Option<String>,
    /// Native (and expected input) image side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Hidden size `D`.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP hidden size.
    pub intermediate_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Q/K/V biases.
    pub qkv_bias: bool,
    /// Pooling mode.
    pub pooling: HfVitPooling,
    /// Build the pooler (`pooler.dense`); default: only when `pooling = "pooler"`, so unused
    /// parameters are neither counted nor trained. `false` with `pooling = "pooler"` is an error.
    pub add_pooling_layer: Option<bool>,
    /// HF `ViTModel` directory (`config.json` + `model.safetensors`); its `config.json` sets the
    /// architecture, so a preset or size field next to it is an error naming both keys.
    pub weights: Option<PathBuf>,
    /// Keep random values for parameters missing from `weights` instead of failing.
    pub allow_missing: bool,
    /// Input image side when it differs from the native `image_size`; position embeddings are
    /// resized to it.
    pub input_size: Option<usize>,
}

impl Default for HfVitConfig {
    fn default() -> Self {
        Self {
            preset: None,
            image_size: 32,
            patch_size: 8,
            num_channels: 1,
            hidden_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 256,
            layer_norm_eps: 1e-12,
            qkv_bias: true,
            pooling: HfVitPooling::Cls,
            add_pooling_layer: None,
            weights: None,
            allow_missing: false,
            input_size: None,
        }
    }
}

/// The architecture fields that a `preset` or a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 9] = [
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "layer_norm_eps",
    "qkv_bias",
];

impl HfVitConfig {
    /// Refuses size fields next to `preset` or `weights` (they would be ignored), naming both.
    pub fn check_explicit(&self) -> Result<(), CleftError> {
        refuse_overridden(
            self,
            "vision",
            self.weights.is_some(),
            self.preset.is_some(),
            &SIZE_FIELDS,
        )
    }

    /// The architecture this section describes (after `preset`), without `weights`.
    pub fn architecture(&self) -> Result<HfVitArchitecture, CleftError> {
        self.check_explicit()?;
        let arch = match self.preset.as_deref() {
            None => HfVitArchitecture {
                hidden_size: self.hidden_size,
                num_hidden_layers: self.num_hidden_layers,
                num_attention_heads: self.num_attention_heads,
                intermediate_size: self.intermediate_size,
                layer_norm_eps: self.layer_norm_eps,
                image_size: self.image_size,
                patch_size: self.patch_size,
                num_channels: self.num_channels,
                qkv_bias: self.qkv_bias,
                ..HfVitArchitecture::default()
            },
            Some("vit-b16") => HfVitArchitecture::default(),
            Some(other) => {
                return Err(CleftError::Invalid(format!(
                    "vision.preset = `{other}` is unknown; presets: vit-b16"
                )));
            }
        };
        arch.validate()?;
        Ok(arch)
    }

    /// Whether the model gets a pooler.
    fn pooler(&self) -> Result<bool, CleftError> {
        match (self.add_pooling_layer, self.pooling) {
            (Some(false), HfVitPooling::Pooler) => Err(CleftError::Invalid(
                "vision.pooling = \"pooler\" needs the pooler; remove vision.add_pooling_layer = false"
                    .into(),
            )),
            (Some(add), _) => Ok(add),
            (None, pooling) => Ok(pooling == HfVitPooling::Pooler),
        }
    }

    fn input_size(&self, arch: &HfVitArchitecture) -> Result<usize, CleftError> {
        let size = self.input_size.unwrap_or(arch.image_size);
        if size == 0 || !size.is_multiple_of(arch.patch_size) {
            return Err(CleftError::Invalid(format!(
                "vision.input_size = {size} is not a positive multiple of the patch size {}",
                arch.patch_size
            )));
        }
        Ok(size)
    }

    /// A randomly initialised model (HF initialisation: N(0, 0.02) weights, zero biases).
    pub fn init(&self, device: &Device) -> Result<HfVitModel, CleftError> {
        let arch = self.architecture()?;
        let input_size = self.input_size(&arch)?;
        Ok(HfVitModel::init(
            &arch,
            self.pooling,
            self.pooler()?,
            input_size,
            device,
        ))
    }
}

/// Parameter paths are HF keys already; `nn.Linear` weights are transposed; `vit.` prefixes
/// (`ViTForImageClassification` checkpoints) are stripped. Without a pooler, the checkpoint's
/// `pooler.dense.*` are expected to stay unused.
pub fn hf_vit_mapping(allow_missing: bool, has_pooler: bool) -> WeightMapping {
    let ignored = if has_pooler {
        Vec::new()
    } else {
        vec!["pooler.dense.weight".into(), "pooler.dense.bias".into()]
    };
    WeightMapping {
        transpose_linear: true,
        prefixes: vec!["vit.".into()],
        ignored,
        allow_missing,
        ..WeightMapping::default()
    }
}

/// Loads a HF `ViTModel` directory; pooling, pooler and input size come from `section`.
///
/// Fails naming every missing (unless `section.allow_missing`) or shape-mismatched tensor;
/// the report lists unexpected ones.
pub fn load_hf_vit(
    dir: &Path,
    section: &HfVitConfig,
    device: &Device,
) -> Result<(HfVitModel, LoadReport), CleftError> {
    let arch: HfVitArchitecture = parse_hf_config(dir)?;
    arch.validate().map_err(|e| {
        CleftError::caused(
            ErrorKind::Weights,
            dir.join("config.json").display().to_string(),
            e,
        )
    })?;
    let input_size = section.input_size(&arch)?;
    let has_pooler = section.pooler()?;
    let checkpoint = open_checkpoint(dir)?;
    let model = HfVitModel::init(&arch, section.pooling, has_pooler, input_size, device);
    load_weights(
        model,
        checkpoint.as_ref(),
        &hf_vit_mapping(section.allow_missing, has_pooler),
    )
}

#[typetag::serde(name = "hf-vit")]
impl VisionEncoderConfig for HfVitConfig {
    fn input(&self) -> Result<Option<ImageInput>, CleftError> {
        self.check_explicit()?;
        let (arch, origin) = match (&self.weights, &self.preset) {
            (Some(dir), _) => (
                parse_hf_config::<HfVitArchitecture>(dir)?,
                format!("vision.weights → {}/config.json ", dir.display()),
            ),
            (None, Some(preset)) => (
                self.architecture()?,
                format!("vision.preset = \"{preset}\" → "),
            ),
            (None, None) => (self.architecture()?, "vision.".into()),
        };
        let size = match self.input_size {
            Some(size) => Keyed::new(size, "vision.input_size"),
            None => Keyed::new(arch.image_size, format!("{origin}image_size")),
        };
        Ok(Some(ImageInput {
            channels: Keyed::new(arch.num_channels, format!("{origin}num_channels")),
            size: Some(size),
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn VisionEncoder>, CleftError> {
        let model = match &self.weights {
            Some(dir) => {
                self.check_explicit()?;
                load_hf_vit(dir, self, device)?.0
            }
            None => self.init(device)?,
        };
        Ok(Component::<dyn VisionEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Vision,
    "hf-vit",
    "HF ViTModel (ViT-B/16 preset `vit-b16`; CLS / pooler / mean pooling; bicubic pos-embed resize)",
    HfVitConfig,
    claims = ["vit"]
);
