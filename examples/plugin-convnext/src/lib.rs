//! A small ConvNeXt (Liu et al., 2022) as a cleft vision encoder, built as a shared library.
//!
//! `cargo build -p cleft-plugin-convnext` gives `libcleft_plugin_convnext.so`; select it with
//! `plugins = ["…/libcleft_plugin_convnext.so"]` in a config (or `cleft … --plugin PATH`) and
//! `[vision] type = "convnext"`.
//!
//! Architecture (ConvNeXt's, scaled down): a patchify stem (`k = s = patch_size` convolution +
//! channel LayerNorm), stages of blocks — depthwise 7×7 convolution, LayerNorm, pointwise MLP
//! (×4, GELU), layer scale, residual — joined by downsampling (LayerNorm + 2×2 stride-2
//! convolution), then global average pooling and a final LayerNorm.

// Links cleft-core and burn from the shared `libcleft_dylib.so` (see cleft-dylib).
use cleft_dylib as _;

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Gelu, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use cleft_core::contract::{ImageInput, Keyed};
use cleft_core::prelude::*;
use serde::{Deserialize, Serialize};

/// LayerNorm over the channels of a `[B, C, H, W]` map.
fn channel_norm(norm: &LayerNorm, x: Tensor<4>) -> Tensor<4> {
    norm.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

/// One ConvNeXt block: `x + γ ⊙ MLP(LN(dwconv(x)))`.
#[derive(Module, Debug)]
pub struct Block {
    /// Depthwise 7×7 convolution.
    pub dwconv: Conv2d,
    /// LayerNorm over channels (channels-last).
    pub norm: LayerNorm,
    /// Pointwise expansion `C → 4C`.
    pub pwconv1: Linear,
    /// Activation.
    pub act: Gelu,
    /// Pointwise projection `4C → C`.
    pub pwconv2: Linear,
    /// Layer scale `γ`, `[C]`.
    pub gamma: Param<Tensor<1>>,
}

impl Block {
    fn new(dim: usize, layer_scale: f64, device: &Device) -> Self {
        Self {
            dwconv: Conv2dConfig::new([dim, dim], [7, 7])
                .with_groups(dim)
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .init(device),
            norm: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            pwconv1: LinearConfig::new(dim, 4 * dim).init(device),
            act: Gelu::new(),
            pwconv2: LinearConfig::new(4 * dim, dim).init(device),
            gamma: Initializer::Constant { value: layer_scale }.init([dim], device),
        }
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]`; output the same.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.dwconv.forward(x.clone()).permute([0, 2, 3, 1]);
        let y = self
            .pwconv2
            .forward(self.act.forward(self.pwconv1.forward(self.norm.forward(y))));
        let dim = self.gamma.dims()[0];
        let y = y * self.gamma.val().reshape([1, 1, 1, dim]);
        x + y.permute([0, 3, 1, 2])
    }
}

/// Downsampling between stages: channel LayerNorm, then a 2×2 stride-2 convolution.
#[derive(Module, Debug)]
pub struct Downsample {
    /// LayerNorm over input channels.
    pub norm: LayerNorm,
    /// `C_in → C_out`, halves the side.
    pub conv: Conv2d,
}

/// One stage: optional downsampling, then blocks.
#[derive(Module, Debug)]
pub struct Stage {
    /// Downsampling from the previous stage (none for the first).
    pub downsample: Option<Downsample>,
    /// The stage's blocks.
    pub blocks: Vec<Block>,
}

/// The encoder: stem, stages, pooled LayerNorm.
#[derive(Module, Debug)]
pub struct ConvNext {
    /// Patchify stem `C → dims[0]`, kernel = stride = `patch_size`.
    pub stem: Conv2d,
    /// LayerNorm after the stem.
    pub stem_norm: LayerNorm,
    /// The stages.
    pub stages: Vec<Stage>,
    /// LayerNorm of the pooled features.
    pub norm: LayerNorm,
    #[module(skip)]
    channels: usize,
    #[module(skip)]
    image_size: usize,
}

impl VisionEncoder for ConvNext {
    /// # Shapes
    /// - `images`: `[B, C, S, S]`; pooled `[B, dims.last]`, no tokens.
    fn forward(&self, images: Tensor<4>) -> VisionOutput {
        let mut x = channel_norm(&self.stem_norm, self.stem.forward(images));
        for stage in &self.stages {
            if let Some(down) = &stage.downsample {
                x = down.conv.forward(channel_norm(&down.norm, x));
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
        }
        let [batch, dim, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, dim]);
        VisionOutput {
            pooled: self.norm.forward(pooled),
            tokens: None,
        }
    }

    fn dim(&self) -> usize {
        self.norm.gamma.dims()[0]
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn image_size(&self) -> usize {
        self.image_size
    }
}

/// `[vision] type = "convnext"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvNextConfig {
    /// Input channels.
    pub channels: usize,
    /// Input side in pixels: a multiple of `patch_size · 2^(stages − 1)`.
    pub image_size: usize,
    /// Stem kernel and stride.
    pub patch_size: usize,
    /// Channels per stage.
    pub dims: Vec<usize>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Initial layer scale `γ`.
    pub layer_scale_init: f64,
}

impl Default for ConvNextConfig {
    fn default() -> Self {
        Self {
            channels: 1,
            image_size: 32,
            patch_size: 4,
            dims: vec![32, 64],
            depths: vec![1, 1],
            layer_scale_init: 1e-6,
        }
    }
}

impl ConvNextConfig {
    fn check(&self) -> Result<(), CleftError> {
        let invalid = |message: String| Err(CleftError::Invalid(message));
        if self.dims.is_empty() || self.dims.len() != self.depths.len() {
            return invalid(format!(
                "vision.dims ({} stages) and vision.depths ({} stages) must be non-empty and \
                 equally long",
                self.dims.len(),
                self.depths.len()
            ));
        }
        if self.channels == 0 || self.dims.contains(&0) {
            return invalid("vision.channels and vision.dims must be positive".to_string());
        }
        let stride = self.patch_size * (1 << (self.dims.len() - 1));
        if self.patch_size == 0 || !self.image_size.is_multiple_of(stride) {
            return invalid(format!(
                "vision.image_size = {} must be a multiple of patch_size · 2^(stages − 1) = {stride}",
                self.image_size
            ));
        }
        Ok(())
    }
}

#[typetag::serde(name = "convnext")]
impl VisionEncoderConfig for ConvNextConfig {
    fn build(&self, device: &Device) -> Result<Component<dyn VisionEncoder>, CleftError> {
        self.check()?;
        let norm = |dim| LayerNormConfig::new(dim).with_epsilon(1e-6).init(device);
        let stages = self
            .dims
            .iter()
            .zip(&self.depths)
            .enumerate()
            .map(|(index, (&dim, &depth))| Stage {
                downsample: (index > 0).then(|| Downsample {
                    norm: norm(self.dims[index - 1]),
                    conv: Conv2dConfig::new([self.dims[index - 1], dim], [2, 2])
                        .with_stride([2, 2])
                        .init(device),
                }),
                blocks: (0..depth)
                    .map(|_| Block::new(dim, self.layer_scale_init, device))
                    .collect(),
            })
            .collect();
        let last = *self.dims.last().unwrap_or(&0);
        Ok(Component::<dyn VisionEncoder>::new(ConvNext {
            stem: Conv2dConfig::new([self.channels, self.dims[0]], [self.patch_size; 2])
                .with_stride([self.patch_size; 2])
                .init(device),
            stem_norm: norm(self.dims[0]),
            stages,
            norm: norm(last),
            channels: self.channels,
            image_size: self.image_size,
        }))
    }

    fn input(&self) -> Result<Option<ImageInput>, CleftError> {
        Ok(Some(ImageInput {
            channels: Keyed::new(self.channels, "vision.channels"),
            size: Some(Keyed::new(self.image_size, "vision.image_size")),
        }))
    }
}

cleft_core::export_plugin! {
    Vision, "convnext", "a small ConvNeXt (shared-library plugin example)", ConvNextConfig;
}
