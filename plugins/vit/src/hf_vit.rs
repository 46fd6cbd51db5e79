//! HF transformers `ViTModel` (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"): the
//! ViT-B/16 image tower of the paper's BERT baseline.
//!
//! Reference: `transformers/models/vit/modeling_vit.py`. Module names mirror the keys HF
//! checkpoints are saved with: `embeddings.{cls_token,position_embeddings}`,
//! `embeddings.patch_embeddings.projection`, `encoder.layer.N.{layernorm_before,
//! attention.attention.{query,key,value},attention.output.dense,layernorm_after,
//! intermediate.dense,output.dense}`, `layernorm`, optional `pooler.dense`. Pre-norm blocks,
//! exact (erf) GELU, LayerNorm eps from the config (HF default 1e-12), no LayerScale, no
//! registers. Position embeddings are resized like HF's `interpolate_pos_encoding`
//! (bicubic, `align_corners=False`, explicit output size; see [`crate::interpolate`]).

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use cleft_core::attention::{attention, merge_heads, split_heads};
use cleft_core::{VisionEncoder, VisionOutput};
use cleft_kernels::gelu;

use crate::embeddings::{PatchEmbeddings, VitEmbeddings};
use crate::hf_vit_config::{HfVitArchitecture, HfVitPooling};
use crate::interpolate::PosEmbedInterpolation;

/// Query/key/value projections (HF `ViTSelfAttention`).
#[derive(Module, Debug)]
pub struct HfVitSelfAttention {
    /// `[D, D]`.
    pub query: Linear,
    /// `[D, D]`.
    pub key: Linear,
    /// `[D, D]`.
    pub value: Linear,
}

/// A dense layer under a named parent (`attention.output.dense`, `intermediate.dense`,
/// `output.dense`).
#[derive(Module, Debug)]
pub struct HfVitDense {
    /// The projection.
    pub dense: Linear,
}

/// Multi-head self-attention (HF `ViTAttention`).
#[derive(Module, Debug)]
pub struct HfVitAttention {
    /// Q/K/V.
    pub attention: HfVitSelfAttention,
    /// Output projection `[D, D]`.
    pub output: HfVitDense,
}

/// One pre-norm block (HF `ViTLayer`).
#[derive(Module, Debug)]
pub struct HfVitLayer {
    /// Norm before attention.
    pub layernorm_before: LayerNorm,
    /// Attention.
    pub attention: HfVitAttention,
    /// Norm before the MLP.
    pub layernorm_after: LayerNorm,
    /// MLP up-projection `[D, I]` (GELU follows).
    pub intermediate: HfVitDense,
    /// MLP down-projection `[I, D]`.
    pub output: HfVitDense,
}

/// The block stack (HF `ViTEncoder`).
#[derive(Module, Debug)]
pub struct HfVitEncoder {
    /// Blocks.
    pub layer: Vec<HfVitLayer>,
}

/// `tanh(dense(CLS))` (HF `ViTPooler`).
#[derive(Module, Debug)]
pub struct HfVitPooler {
    /// `[D, P]`.
    pub dense: Linear,
}

/// HF `ViTModel`.
#[derive(Module, Debug)]
pub struct HfVitModel {
    /// Embeddings (CLS, position table, patch projection; no mask or register tokens).
    pub embeddings: VitEmbeddings,
    /// Blocks.
    pub encoder: HfVitEncoder,
    /// Final norm.
    pub layernorm: LayerNorm,
    /// Optional pooler (HF `add_pooling_layer`).
    pub pooler: Option<HfVitPooler>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    patch_size: usize,
    #[module(skip)]
    input_size: usize,
    #[module(skip)]
    channels: usize,
    #[module(skip)]
    pooling: HfVitPooling,
}

impl HfVitAttention {
    /// Scaled dot-product attention over all tokens, `1/√head_dim` scaling, no mask.
    ///
    /// # Shapes
    /// - `x`: `[B, N, D]`; output `[B, N, D]`.
    pub fn forward(&self, x: Tensor<3>, heads: usize) -> Tensor<3> {
        let head_dim = x.dims()[2] / heads;
        let q = split_heads(self.attention.query.forward(x.clone()), heads);
        let k = split_heads(self.attention.key.forward(x.clone()), heads);
        let v = split_heads(self.attention.value.forward(x), heads);
        let context = attention(q, k, v, None, 1.0 / (head_dim as f64).sqrt());
        self.output.dense.forward(merge_heads(context))
    }
}

impl HfVitLayer {
    /// `x + attn(ln_before(x))`, then `x + W_out·gelu(W_in·ln_after(x))`.
    ///
    /// # Shapes
    /// - `x`: `[B, N, D]`; output `[B, N, D]`.
    pub fn forward(&self, x: Tensor<3>, heads: usize) -> Tensor<3> {
        let x = x.clone()
            + self
                .attention
                .forward(self.layernorm_before.forward(x), heads);
        let hidden = gelu(
            self.intermediate
                .dense
                .forward(self.layernorm_after.forward(x.clone())),
        );
        x + self.output.dense.forward(hidden)
    }
}

/// HF's `_init_weights`: Linear/Conv2d weights N(0, 0.02) and zero biases; CLS and position
/// table N(0, 0.02). Every parameter is lazy, so counting parameters allocates nothing.
fn linear(input: usize, output: usize, bias: bool, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(input, output)
        .with_bias(bias)
        .with_initializer(NORMAL)
        .init(device);
    if bias {
        linear.bias = Some(Initializer::Zeros.init([output], device));
    }
    linear
}

const NORMAL: Initializer = Initializer::Normal {
    mean: 0.0,
    std: 0.02,
};

impl HfVitModel {
    /// Randomly initialised model (see [`HfVitArchitecture`]); `input_size` is the expected
    /// input side (position embeddings are resized when it differs from `image_size`).
    pub fn init(
        arch: &HfVitArchitecture,
        pooling: HfVitPooling,
        add_pooling_layer: bool,
        input_size: usize,
        device: &Device,
    ) -> Self {
        let d = arch.hidden_size;
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(arch.layer_norm_eps)
                .init(device)
        };
        let grid = arch.image_size / arch.patch_size;
        let layer = |_| HfVitLayer {
            layernorm_before: norm(),
            attention: HfVitAttention {
                attention: HfVitSelfAttention {
                    query: linear(d, d, arch.qkv_bias, device),
                    key: linear(d, d, arch.qkv_bias, device),
                    value: linear(d, d, arch.qkv_bias, device),
                },
                output: HfVitDense {
                    dense: linear(d, d, true, device),
                },
            },
            layernorm_after: norm(),
            intermediate: HfVitDense {
                dense: linear(d, arch.intermediate_size, true, device),
            },
            output: HfVitDense {
                dense: linear(arch.intermediate_size, d, true, device),
            },
        };
        let mut projection =
            Conv2dConfig::new([arch.num_channels, d], [arch.patch_size, arch.patch_size])
                .with_stride([arch.patch_size, arch.patch_size])
                .with_initializer(NORMAL)
                .init(device);
        projection.bias = Some(Initializer::Zeros.init([d], device));
        Self {
            embeddings: VitEmbeddings {
                cls_token: NORMAL.init([1, 1, d], device),
                mask_token: None,
                register_tokens: None,
                position_embeddings: NORMAL.init([1, 1 + grid * grid, d], device),
                patch_embeddings: PatchEmbeddings { projection },
            },
            encoder: HfVitEncoder {
                layer: (0..arch.num_hidden_layers).map(layer).collect(),
            },
            layernorm: norm(),
            pooler: add_pooling_layer.then(|| HfVitPooler {
                dense: linear(d, arch.pooler_size(), true, device),
            }),
            heads: arch.num_attention_heads,
            patch_size: arch.patch_size,
            input_size,
            channels: arch.num_channels,
            pooling,
        }
    }

    /// Position table for a `rows × cols` patch grid: the stored table when it is the native
    /// grid, else its patch part resized bicubically (HF `interpolate_pos_encoding`).
    ///
    /// # Shapes
    /// - output `[1, 1 + rows·cols, D]`.
    pub fn position_embeddings(&self, rows: usize, cols: usize) -> Tensor<3> {
        self.embeddings
            .position_table(rows, cols, PosEmbedInterpolation::Bicubic)
    }

    /// HF `last_hidden_state`: token states after the final layernorm, CLS first.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`; output `[B, 1 + (H/p)(W/p), D]`.
    pub fn last_hidden_state(&self, images: Tensor<4>) -> Tensor<3> {
        let x = self
            .embeddings
            .forward(images, self.patch_size, PosEmbedInterpolation::Bicubic);
        let x = self
            .encoder
            .layer
            .iter()
            .fold(x, |x, layer| layer.forward(x, self.heads));
        self.layernorm.forward(x)
    }

    /// HF `pooler_output`: `tanh(pooler.dense(last_hidden_state[:, 0]))`; `None` without a
    /// pooler.
    ///
    /// # Shapes
    /// - `last_hidden_state`: `[B, N, D]`; output `[B, P]`.
    pub fn pooler_output(&self, last_hidden_state: Tensor<3>) -> Option<Tensor<2>> {
        let pooler = self.pooler.as_ref()?;
        Some(pooler.dense.forward(cls_token(last_hidden_state)).tanh())
    }
}

/// # Shapes
/// - `tokens`: `[B, N, D]`; output `[B, D]`.
fn cls_token(tokens: Tensor<3>) -> Tensor<2> {
    let [batch, _, dim] = tokens.dims();
    tokens.slice([0..batch, 0..1]).reshape([batch, dim])
}

impl VisionEncoder for HfVitModel {
    /// # Shapes
    /// - `images`: `[B, C, H, W]` → pooled `[B, D]` (`[B, P]` for `pooler`), tokens
    ///   `[B, 1 + (H/p)(W/p), D]` (HF `last_hidden_state`).
    fn forward(&self, images: Tensor<4>) -> VisionOutput {
        let tokens = self.last_hidden_state(images);
        let [batch, _, dim] = tokens.dims();
        let pooled = match self.pooling {
            HfVitPooling::Cls => cls_token(tokens.clone()),
            HfVitPooling::Mean => tokens.clone().mean_dim(1).reshape([batch, dim]),
            // `HfVitConfig` builds a pooler whenever this pooling is chosen; the CLS state is
            // the only sensible value for a model assembled by hand without one.
            HfVitPooling::Pooler => self
                .pooler_output(tokens.clone())
                .unwrap_or_else(|| cls_token(tokens.clone())),
        };
        VisionOutput {
            pooled,
            tokens: Some(tokens),
        }
    }

    fn dim(&self) -> usize {
        match (&self.pooler, self.pooling) {
            (Some(pooler), HfVitPooling::Pooler) => pooler.dense.weight.lazy_shape()[1],
            _ => self.layernorm.gamma.lazy_shape()[0],
        }
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn image_size(&self) -> usize {
        self.input_size
    }
}
