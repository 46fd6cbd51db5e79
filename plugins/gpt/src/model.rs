//! GPT-2 (HF `GPT2Model` layout) as a CLEFT text encoder.
//!
//! Reference: Radford et al. 2019; HF `transformers/models/gpt2/modeling_gpt2.py`. The module
//! tree mirrors HF key names (`wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn`, `h.N.attn.c_proj`,
//! `h.N.ln_2`, `h.N.mlp.c_fc`, `h.N.mlp.c_proj`, `ln_f`). GPT-2's `Conv1D` stores weights
//! `[in, out]`, which is burn's `Linear` layout, so no transpose is needed on load.
//! BioMedLM additionally divides attention scores by `layer_idx + 1`
//! (`scale_attn_by_inverse_layer_idx`).

use std::sync::Arc;

use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, softmax};
use burn::tensor::{Bool, Int};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::{TextEncoder, TextTokenizer};

use crate::Gpt2Config;

/// Multi-head causal self-attention with a fused QKV projection.
#[derive(Module, Debug)]
pub struct Gpt2Attention {
    /// Fused query/key/value projection, `[E, 3E]`.
    pub c_attn: Linear,
    /// Output projection, `[E, E]`.
    pub c_proj: Linear,
    heads: usize,
    /// Extra divisor of the scores (`layer_idx + 1` with inverse-layer scaling, else 1).
    score_divisor: f64,
}

impl Gpt2Attention {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, L]` (true = not attended); output `[B, L, E]`.
    pub fn forward(&self, x: Tensor<3>, masked: Tensor<4, Bool>) -> Tensor<3> {
        let [batch, len, embed] = x.dims();
        let head_dim = embed / self.heads;
        let split = |t: Tensor<3>| t.reshape([batch, len, self.heads, head_dim]).swap_dims(1, 2);
        let qkv = self.c_attn.forward(x).chunk(3, 2);
        let [q, k, v] = [0, 1, 2].map(|i| split(qkv[i].clone()));
        let scale = 1.0 / ((head_dim as f64).sqrt() * self.score_divisor);
        let scores = q.matmul(k.swap_dims(2, 3)) * scale;
        let weights = softmax(scores.mask_fill(masked, f32::MIN), 3);
        let context = weights.matmul(v).swap_dims(1, 2).reshape([batch, len, embed]);
        self.c_proj.forward(context)
    }
}

/// The feed-forward block: `c_fc` → `gelu_new` (tanh approximation) → `c_proj`.
#[derive(Module, Debug)]
pub struct Gpt2Mlp {
    /// `[E, 4E]`.
    pub c_fc: Linear,
    /// `[4E, E]`.
    pub c_proj: Linear,
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct Gpt2Block {
    /// Norm before attention.
    pub ln_1: LayerNorm,
    /// Self-attention.
    pub attn: Gpt2Attention,
    /// Norm before the MLP.
    pub ln_2: LayerNorm,
    /// Feed-forward.
    pub mlp: Gpt2Mlp,
}

impl Gpt2Block {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, L]`; output `[B, L, E]`.
    pub fn forward(&self, x: Tensor<3>, masked: Tensor<4, Bool>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x), masked);
        let hidden = gelu_approximate(self.mlp.c_fc.forward(self.ln_2.forward(x.clone())));
        x + self.mlp.c_proj.forward(hidden)
    }
}

/// GPT-2 text encoder: token + position embeddings, blocks, final norm, pooling.
#[derive(Module, Debug)]
pub struct Gpt2Model {
    /// Token embeddings `[V, E]`.
    pub wte: Embedding,
    /// Position embeddings `[P, E]`.
    pub wpe: Embedding,
    /// Transformer blocks.
    pub h: Vec<Gpt2Block>,
    /// Final norm.
    pub ln_f: LayerNorm,
    #[module(skip)]
    tokenizer: Arc<dyn TextTokenizer>,
    #[module(skip)]
    pooling: TextPooling,
    #[module(skip)]
    max_len: usize,
}

impl Gpt2Model {
    /// Builds a randomly initialised model (GPT-2 init: N(0, 0.02) weights) with `tokenizer`.
    pub fn init(config: &Gpt2Config, tokenizer: Arc<dyn TextTokenizer>, device: &Device) -> Self {
        let e = config.n_embd;
        let normal = burn::nn::Initializer::Normal { mean: 0.0, std: 0.02 };
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out).with_initializer(normal.clone()).init(device)
        };
        let norm = || LayerNormConfig::new(e).with_epsilon(config.layer_norm_epsilon).init(device);
        let block = |layer: usize| Gpt2Block {
            ln_1: norm(),
            attn: Gpt2Attention {
                c_attn: linear(e, 3 * e),
                c_proj: linear(e, e),
                heads: config.n_head,
                score_divisor: if config.scale_attn_by_inverse_layer_idx { (layer + 1) as f64 } else { 1.0 },
            },
            ln_2: norm(),
            mlp: Gpt2Mlp { c_fc: linear(e, config.n_inner()), c_proj: linear(config.n_inner(), e) },
        };
        let embedding = |n| EmbeddingConfig::new(n, e).with_initializer(normal.clone()).init(device);
        Self {
            wte: embedding(tokenizer.vocab_size().max(config.vocab_size)),
            wpe: embedding(config.n_positions),
            h: (0..config.n_layer).map(block).collect(),
            ln_f: norm(),
            tokenizer,
            pooling: config.pooling,
            max_len: config.max_len,
        }
    }

    /// Final hidden states (after `ln_f`).
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]`; `mask`: `[B, L]` (1 = real); output `[B, L, E]`.
    pub fn hidden_states(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        let [batch, len, _] = embeddings.dims();
        let device = embeddings.device();
        let positions = Tensor::<1, Int>::arange(0..len as i64, &device).reshape([1, len]);
        let mut x = embeddings + self.wpe.forward(positions);
        let causal: Tensor<4, Bool> = generate_autoregressive_mask(batch, len, &device).unsqueeze_dim(1);
        let padding = mask.equal_elem(0).reshape([batch, 1, 1, len]).expand([batch, 1, len, len]);
        let masked = causal.bool_or(padding);
        for block in &self.h {
            x = block.forward(x, masked.clone());
        }
        self.ln_f.forward(x)
    }
}

impl TextEncoder for Gpt2Model {
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
        pool_tokens(self.hidden_states(embeddings, mask.clone()), mask, self.pooling)
    }

    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.wte.forward(ids)
    }

    fn dim(&self) -> usize {
        self.ln_f.gamma.dims()[0]
    }

    fn embed_dim(&self) -> usize {
        self.wte.weight.dims()[1]
    }

    fn num_layers(&self) -> usize {
        self.h.len()
    }

    fn tokenizer(&self) -> Arc<dyn TextTokenizer> {
        self.tokenizer.clone()
    }

    fn max_len(&self) -> usize {
        self.max_len
    }
}
