//! Vision Transformer image encoders for cleft (`type = "vit"` and `type = "hf-vit"`).
//!
//! A DINOv2-style ViT (CLEFT's image tower: `dinov2_vitb14_reg`) with optional register tokens,
//! LayerScale, LayerNorm eps 1e-6, position embeddings resized bicubically from the native grid,
//! and CLEFT's pooling (mean of all tokens before the final norm). Random initialisation with
//! configurable sizes and presets for the paper's sizes, or HF `Dinov2Model` /
//! `Dinov2WithRegistersModel` checkpoints (`weights = "dir"`).
//!
//! `hf-vit` ([`HfVitModel`]) is HF transformers' `ViTModel` (the BERT baseline's ViT-B/16, CLS
//! pooling), with HF `ViTModel` checkpoint loading ([`load_hf_vit`]).

pub mod embeddings;
mod hf_vit;
mod hf_vit_config;
pub mod interpolate;
pub mod load;
mod model;

use burn::prelude::*;
use cleft_core::contract::{ImageInput, Keyed, refuse_overridden};
use cleft_core::registry::VisionEncoderConfig;
use cleft_core::weights::parse_hf_config;
use cleft_core::{CleftError, Component, VisionEncoder};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use embeddings::{PatchEmbeddings, VitEmbeddings};
pub use hf_vit::{
    HfVitAttention, HfVitDense, HfVitEncoder, HfVitLayer, HfVitModel, HfVitPooler,
    HfVitSelfAttention,
};
pub use hf_vit_config::{
    HfVitArchitecture, HfVitConfig, HfVitPooling, hf_vit_mapping, load_hf_vit,
};
pub use interpolate::PosEmbedInterpolation;
pub use load::load_dinov2;
pub use model::Dinov2Model;

/// How the ViT pools its tokens into one image feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitPooling {
    /// Mean of all tokens (CLS, registers, patches) before the final norm (CLEFT's `--pool_feat`).
    PrenormMean,
    /// The CLS token after the final norm.
    Cls,
    /// Mean of all tokens after the final norm.
    Mean,
}

/// ViT hyper-parameters (HF `Dinov2Config` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VitConfig {
    /// Named preset (`vit-s14`, `vit-b14-reg`, `vit-b16`) that fixes the size fields; setting a
    /// size field next to it is an error naming both keys.
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
    /// MLP hidden size as a multiple of `D`.
    pub mlp_ratio: f64,
    /// Register tokens (0 = none).
    pub num_register_tokens: usize,
    /// Initial LayerScale value.
    pub layerscale_value: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Pooling mode.
    pub pooling: VitPooling,
    /// Position-grid resize convention (`bicubic` = HF, `bicubic_antialias` = torch.hub DINOv2).
    pub pos_embed_interpolation: PosEmbedInterpolation,
    /// HF `Dinov2Model` / `Dinov2WithRegistersModel` directory (`config.json` +
    /// `model.safetensors`); its `config.json` sets the architecture, so a preset or size field
    /// next to it is an error naming both keys.
    pub weights: Option<PathBuf>,
    /// Keep random values for parameters missing from `weights` instead of failing.
    pub allow_missing: bool,
    /// Input image side when it differs from the checkpoint's native size (CLEFT: 224 with a
    /// 518 checkpoint); position embeddings are resized to it.
    pub input_size: Option<usize>,
}

impl Default for VitConfig {
    fn default() -> Self {
        Self {
            preset: None,
            image_size: 32,
            patch_size: 8,
            num_channels: 1,
            hidden_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            mlp_ratio: 4.0,
            num_register_tokens: 0,
            layerscale_value: 1.0,
            layer_norm_eps: 1e-6,
            pooling: VitPooling::PrenormMean,
            pos_embed_interpolation: PosEmbedInterpolation::Bicubic,
            weights: None,
            allow_missing: false,
            input_size: None,
        }
    }
}

/// The architecture fields that a `preset` or a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 10] = [
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "mlp_ratio",
    "num_register_tokens",
    "layerscale_value",
    "layer_norm_eps",
];

impl VitConfig {
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

    /// The configuration after applying `preset`, if any.
    pub fn resolved(&self) -> Result<Self, CleftError> {
        self.check_explicit()?;
        // DINOv2 checkpoints carry a 37×37 position grid (518 px); CLEFT feeds 224 px and resizes
        // it. ViT-B/16 is native at 224.
        let base = |hidden_size, heads, patch_size, registers| Self {
            preset: None,
            image_size: if patch_size == 14 { 518 } else { 224 },
            input_size: self.input_size.or((patch_size == 14).then_some(224)),
            weights: self.weights.clone(),
            allow_missing: self.allow_missing,
            patch_size,
            num_channels: 3,
            hidden_size,
            num_hidden_layers: 12,
            num_attention_heads: heads,
            num_register_tokens: registers,
            pooling: self.pooling,
            pos_embed_interpolation: self.pos_embed_interpolation,
            ..Self::default()
        };
        let resolved = match self.preset.as_deref() {
            None => self.clone(),
            Some("vit-s14") => base(384, 6, 14, 0),
            Some("vit-b14-reg") => base(768, 12, 14, 4),
            Some("vit-b16") => base(768, 12, 16, 0),
            Some(other) => {
                return Err(CleftError::Invalid(format!(
                    "vision.preset = `{other}` is unknown; presets: vit-s14, vit-b14-reg, vit-b16"
                )));
            }
        };
        resolved.validate()?;
        Ok(resolved)
    }

    fn validate(&self) -> Result<(), CleftError> {
        embeddings::check_geometry(
            self.hidden_size,
            self.num_attention_heads,
            self.image_size,
            self.patch_size,
        )
    }
}

#[typetag::serde(name = "vit")]
impl VisionEncoderConfig for VitConfig {
    fn input(&self) -> Result<Option<ImageInput>, CleftError> {
        self.check_explicit()?;
        let (channels, image_size, origin) = match (&self.weights, &self.preset) {
            (Some(dir), _) => {
                let hf: load::HfDinov2Config = parse_hf_config(dir)?;
                let origin = format!("vision.weights → {}/config.json ", dir.display());
                (hf.num_channels, hf.image_size, origin)
            }
            (None, preset) => {
                let resolved = self.resolved()?;
                let origin = match preset {
                    Some(preset) => format!("vision.preset = \"{preset}\" → "),
                    None => "vision.".into(),
                };
                (
                    resolved.num_channels,
                    resolved.input_size.unwrap_or(resolved.image_size),
                    origin,
                )
            }
        };
        let size = match self.input_size {
            Some(size) => Keyed::new(size, "vision.input_size"),
            None if self.preset.is_some() => Keyed::new(image_size, format!("{origin}input_size")),
            None => Keyed::new(image_size, format!("{origin}image_size")),
        };
        Ok(Some(ImageInput {
            channels: Keyed::new(channels, format!("{origin}num_channels")),
            size: Some(size),
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn VisionEncoder>, CleftError> {
        let model = match &self.weights {
            Some(dir) => {
                self.check_explicit()?;
                load_dinov2(dir, self, device)?.0
            }
            None => {
                let config = self.resolved()?;
                let model = Dinov2Model::init(&config, device);
                match config.input_size {
                    Some(size) if size == 0 || size % config.patch_size != 0 => {
                        return Err(CleftError::Invalid(format!(
                            "vision.input_size = {size} is not a positive multiple of vision.patch_size = {}",
                            config.patch_size
                        )));
                    }
                    Some(size) => model.with_input_size(size),
                    None => model,
                }
            }
        };
        Ok(Component::<dyn VisionEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Vision,
    "vit",
    "DINOv2-style ViT (registers, LayerScale, bicubic pos-embed resize), CLEFT pre-norm mean pooling",
    VitConfig,
    claims = ["dinov2"]
);
