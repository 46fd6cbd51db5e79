//! DINOv2-style Vision Transformer (HF `Dinov2Model` / `Dinov2WithRegistersModel` layout).
//!
//! Reference: Oquab et al. 2023 (DINOv2), Darcet et al. 2024 (registers); HF
//! `transformers/models/dinov2/modeling_dinov2.py`. Module names mirror HF keys:
//! `embeddings.{cls_token,mask_token,register_tokens,position_embeddings}`,
//! `embeddings.patch_embeddings.projection`, `encoder.layer.N.{norm1,attention.attention.{query,
//! key,value},attention.output.dense,layer_scale1.lambda1,norm2,mlp.{fc1,fc2},layer_scale2.lambda1}`,
//! `layernorm`.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use cleft_core::attention::{attention, merge_heads, split_heads};
use cleft_core::{VisionEncoder, VisionOutput};
use cleft_kernels::{gelu, layer_norm};

use crate::embeddings::{PatchEmbeddings, VitEmbeddings};
use crate::interpolate::PosEmbedInterpolation;
use crate::{VitConfig, VitPooling};

/// Query/key/value projections.
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// `[D, D]`.
    pub query: Linear,
    /// `[D, D]`.
    pub key: Linear,
    /// `[D, D]`.
    pub value: Linear,
}

/// Attention output projection.
#[derive(Module, Debug)]
pub struct SelfOutput {
    /// `[D, D]`.
    pub dense: Linear,
}

/// Multi-head self-attention.
#[derive(Module, Debug)]
pub struct Attention {
    /// Q/K/V.
    pub attention: SelfAttention,
    /// Output projection.
    pub output: SelfOutput,
}

/// Per-channel residual scaling.
#[derive(Module, Debug)]
pub struct LayerScale {
    /// `[D]`.
    pub lambda1: Param<Tensor<1>>,
}

/// Two-layer GELU MLP.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[D, hidden]`.
    pub fc1: Linear,
    /// `[hidden, D]`.
    pub fc2: Linear,
}

/// One pre-norm block with LayerScale.
#[derive(Module, Debug)]
pub struct Layer {
    /// Norm before attention.
    pub norm1: LayerNorm,
    /// Attention.
    pub attention: Attention,
    /// Scale of the attention branch.
    pub layer_scale1: LayerScale,
    /// Norm before the MLP.
    pub norm2: LayerNorm,
    /// MLP.
    pub mlp: Mlp,
    /// Scale of the MLP branch.
    pub layer_scale2: LayerScale,
    /// The norms' epsilon (burn's `LayerNorm` keeps its own private).
    #[module(skip)]
    pub layer_norm_eps: f64,
}

/// The block stack.
#[derive(Module, Debug)]
pub struct Encoder {
    /// Blocks.
    pub layer: Vec<Layer>,
}

/// The DINOv2 ViT.
#[derive(Module, Debug)]
pub struct Dinov2Model {
    /// Embeddings (with the mask token, and register tokens when configured).
    pub embeddings: VitEmbeddings,
    /// Blocks.
    pub encoder: Encoder,
    /// Final norm.
    pub layernorm: LayerNorm,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    patch_size: usize,
    #[module(skip)]
    image_size: usize,
    #[module(skip)]
    channels: usize,
    #[module(skip)]
    pooling: VitPooling,
    #[module(skip)]
    interpolation: PosEmbedInterpolation,
}

impl Layer {
    fn attention(&self, x: Tensor<3>, heads: usize) -> Tensor<3> {
        let head_dim = x.dims()[2] / heads;
        let attn = &self.attention.attention;
        let q = split_heads(attn.query.forward(x.clone()), heads);
        let k = split_heads(attn.key.forward(x.clone()), heads);
        let v = split_heads(attn.value.forward(x), heads);
        let context = attention(q, k, v, None, 1.0 / (head_dim as f64).sqrt());
        self.attention.output.dense.forward(merge_heads(context))
    }

    /// # Shapes
    /// - `x`: `[B, N, D]`; output `[B, N, D]`.
    pub fn forward(&self, x: Tensor<3>, heads: usize) -> Tensor<3> {
        let scale = |s: &LayerScale| s.lambda1.val().reshape([1, 1, -1]);
        let norm = |n: &LayerNorm, x: Tensor<3>| layer_norm(n, x, self.layer_norm_eps);
        let attended = self.attention(norm(&self.norm1, x.clone()), heads);
        let x = x + attended * scale(&self.layer_scale1);
        let hidden = self
            .mlp
            .fc2
            .forward(gelu(self.mlp.fc1.forward(norm(&self.norm2, x.clone()))));
        x + hidden * scale(&self.layer_scale2)
    }
}

/// N(0, 0.02), initialised lazily (on first access) so that the caller decides the seed.
fn normal_param<const D: usize>(shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    burn::nn::Initializer::Normal {
        mean: 0.0,
        std: 0.02,
    }
    .init(shape, device)
}

impl Dinov2Model {
    /// Randomly initialised model (truncated-normal-like N(0, 0.02) weights, LayerScale at
    /// `config.layerscale_value`).
    pub fn init(config: &VitConfig, device: &Device) -> Self {
        let d = config.hidden_size;
        let normal = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |i, o| {
            LinearConfig::new(i, o)
                .with_initializer(normal.clone())
                .init(device)
        };
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let scale = || LayerScale {
            lambda1: Param::from_tensor(Tensor::full([d], config.layerscale_value, device)),
        };
        let hidden = (d as f64 * config.mlp_ratio) as usize;
        let grid = config.image_size / config.patch_size;
        let layer = |_| Layer {
            norm1: norm(),
            attention: Attention {
                attention: SelfAttention {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                },
                output: SelfOutput {
                    dense: linear(d, d),
                },
            },
            layer_scale1: scale(),
            norm2: norm(),
            mlp: Mlp {
                fc1: linear(d, hidden),
                fc2: linear(hidden, d),
            },
            layer_scale2: scale(),
            layer_norm_eps: config.layer_norm_eps,
        };
        Self {
            embeddings: VitEmbeddings {
                cls_token: normal_param([1, 1, d], device),
                mask_token: Some(Param::from_tensor(Tensor::zeros([1, d], device))),
                register_tokens: (config.num_register_tokens > 0)
                    .then(|| normal_param([1, config.num_register_tokens, d], device)),
                position_embeddings: normal_param([1, 1 + grid * grid, d], device),
                patch_embeddings: PatchEmbeddings {
                    projection: Conv2dConfig::new(
                        [config.num_channels, d],
                        [config.patch_size, config.patch_size],
                    )
                    .with_stride([config.patch_size, config.patch_size])
                    .init(device),
                },
            },
            encoder: Encoder {
                layer: (0..config.num_hidden_layers).map(layer).collect(),
            },
            layernorm: norm(),
            heads: config.num_attention_heads,
            patch_size: config.patch_size,
            image_size: config.image_size,
            channels: config.num_channels,
            pooling: config.pooling,
            interpolation: config.pos_embed_interpolation,
        }
    }

    /// The same model expecting `size × size` inputs (position embeddings are resized to them).
    pub fn with_input_size(mut self, size: usize) -> Self {
        self.image_size = size;
        self
    }

    /// Position embeddings resized (bicubic, see [`crate::interpolate`]) from the native grid to
    /// `rows × cols`.
    ///
    /// # Shapes
    /// - output `[1, 1 + rows·cols, D]`.
    pub fn position_embeddings(&self, rows: usize, cols: usize) -> Tensor<3> {
        self.embeddings
            .position_table(rows, cols, self.interpolation)
    }

    /// Token states of the final block, before the final norm.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`; output `[B, 1 + R + (H/p)(W/p), D]`.
    pub fn prenorm_tokens(&self, images: Tensor<4>) -> Tensor<3> {
        let x = self
            .embeddings
            .forward(images, self.patch_size, self.interpolation);
        self.encoder
            .layer
            .iter()
            .fold(x, |x, layer| layer.forward(x, self.heads))
    }
}

impl VisionEncoder for Dinov2Model {
    fn forward(&self, images: Tensor<4>) -> VisionOutput {
        let prenorm = self.prenorm_tokens(images);
        let [batch, tokens, dim] = prenorm.dims();
        let pooled = match self.pooling {
            VitPooling::PrenormMean => prenorm.clone().mean_dim(1).reshape([batch, dim]),
            VitPooling::Cls => self
                .layernorm
                .forward(prenorm.clone().slice([0..batch, 0..1]))
                .reshape([batch, dim]),
            VitPooling::Mean => self
                .layernorm
                .forward(prenorm.clone())
                .mean_dim(1)
                .reshape([batch, dim]),
        };
        debug_assert!(tokens > 0);
        VisionOutput {
            pooled,
            tokens: Some(self.layernorm.forward(prenorm)),
        }
    }

    fn dim(&self) -> usize {
        self.layernorm.gamma.dims()[0]
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn image_size(&self) -> usize {
        self.image_size
    }
}
