//! Loading HF `Dinov2Model` / `Dinov2WithRegistersModel` checkpoint directories.

use std::path::Path;

use burn::prelude::*;
use cleft_core::CleftError;
use cleft_core::weights::{
    LoadReport, WeightMapping, load_weights, open_checkpoint, parse_hf_config,
};
use serde::Deserialize;

use crate::{Dinov2Model, VitConfig};

/// The fields of a HF `Dinov2Config` / `Dinov2WithRegistersConfig` this encoder uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HfDinov2Config {
    /// `dinov2` or `dinov2_with_registers`.
    pub model_type: String,
    /// Hidden size.
    pub hidden_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Heads.
    pub num_attention_heads: usize,
    /// MLP ratio.
    pub mlp_ratio: f64,
    /// Patch side.
    pub patch_size: usize,
    /// Native image side (position grid = image_size / patch_size).
    pub image_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Initial LayerScale value.
    pub layerscale_value: f64,
    /// Register tokens (`Dinov2WithRegistersModel`).
    pub num_register_tokens: usize,
    /// SwiGLU MLP (ViT-g); not supported.
    pub use_swiglu_ffn: bool,
    /// Q/K/V biases; only `true` is supported.
    pub qkv_bias: bool,
    /// Activation; only `gelu` (erf) is supported.
    pub hidden_act: String,
}

impl Default for HfDinov2Config {
    fn default() -> Self {
        Self {
            model_type: "dinov2".into(),
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            mlp_ratio: 4.0,
            patch_size: 14,
            image_size: 224,
            num_channels: 3,
            layer_norm_eps: 1e-6,
            layerscale_value: 1.0,
            num_register_tokens: 0,
            use_swiglu_ffn: false,
            qkv_bias: true,
            hidden_act: "gelu".into(),
        }
    }
}

/// Parameter paths are HF keys already; only `nn.Linear` weights are transposed.
pub fn dinov2_mapping(allow_missing: bool) -> WeightMapping {
    WeightMapping {
        transpose_linear: true,
        prefixes: vec!["dinov2.".into()],
        allow_missing,
        ..WeightMapping::default()
    }
}

/// Loads a HF DINOv2 directory; pooling, interpolation and input size come from `section`.
pub fn load_dinov2(
    dir: &Path,
    section: &VitConfig,
    device: &Device,
) -> Result<(Dinov2Model, LoadReport), CleftError> {
    let hf: HfDinov2Config = parse_hf_config(dir)?;
    if !matches!(hf.model_type.as_str(), "dinov2" | "dinov2_with_registers")
        || hf.use_swiglu_ffn
        || !hf.qkv_bias
        || hf.hidden_act != "gelu"
    {
        return Err(CleftError::Invalid(format!(
            "{}: unsupported DINOv2 variant (model_type {:?}, use_swiglu_ffn {}, qkv_bias {}, \
             hidden_act {:?}); supported: dinov2 / dinov2_with_registers, GELU MLP, Q/K/V biases",
            dir.display(),
            hf.model_type,
            hf.use_swiglu_ffn,
            hf.qkv_bias,
            hf.hidden_act
        )));
    }
    let config = VitConfig {
        preset: None,
        image_size: hf.image_size,
        patch_size: hf.patch_size,
        num_channels: hf.num_channels,
        hidden_size: hf.hidden_size,
        num_hidden_layers: hf.num_hidden_layers,
        num_attention_heads: hf.num_attention_heads,
        mlp_ratio: hf.mlp_ratio,
        num_register_tokens: hf.num_register_tokens,
        layerscale_value: hf.layerscale_value,
        layer_norm_eps: hf.layer_norm_eps,
        pooling: section.pooling,
        pos_embed_interpolation: section.pos_embed_interpolation,
        weights: None,
        allow_missing: false,
        input_size: None,
    };
    let input_size = section.input_size.unwrap_or(hf.image_size);
    if !input_size.is_multiple_of(hf.patch_size) {
        return Err(CleftError::Invalid(format!(
            "vision.input_size = {input_size} is not a multiple of the patch size {}",
            hf.patch_size
        )));
    }
    let checkpoint = open_checkpoint(dir)?;
    let model = Dinov2Model::init(&config, device);
    let (model, report) = load_weights(
        model,
        checkpoint.as_ref(),
        &dinov2_mapping(section.allow_missing),
    )?;
    Ok((model.with_input_size(input_size), report))
}
