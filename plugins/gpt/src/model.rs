//! GPT-2 (HF `GPT2Model` layout) as a CLEFT text encoder.
//!
//! Reference: Radford et al. 2019; HF `transformers/models/gpt2/modeling_gpt2.py`. The module
//! tree mirrors HF key names (`wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn`, `h.N.attn.c_proj`,
//! `h.N.ln_2`, `h.N.mlp.c_fc`, `h.N.mlp.c_proj`, `ln_f`). GPT-2's `Conv1D` stores weights
//! `[in, out]`, which is burn's `Linear` layout, so no transpose is needed on load.
//! BioMedLM additionally divides attention scores by `layer_idx + 1`
//! (`scale_attn_by_inverse_layer_idx`).
//!
//! PEFT hooks (see [`cleft_core::peft::PeftHooks`]): every projection is a [`PeftLinear`] (LoRA on
//! the activation path, IA3), and an optional [`PromptEncoder`] adds prompt-tuning tokens before
//! the input embeddings or prefix keys/values inside every attention layer. As in HF PEFT with
//! `GPT2Model`, prefix tuning shifts the text's position ids by the prefix length and lets every
//! query attend to all prefix positions; prompt tuning gives the virtual tokens positions `0..n`.

use std::sync::Arc;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Bool, Int};
use cleft_core::attention::{attention, causal_mask, merge_heads, split_heads};
use cleft_core::peft::{
    PeftHooks, PeftLinear, PrefixGeometry, PromptEncoder, PromptKind, prepend_prompt,
};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::{CleftError, TextEncoder, TextTokenizer};
use cleft_kernels::layer_norm;

use crate::Gpt2Config;

/// Multi-head causal self-attention with a fused QKV projection.
#[derive(Module, Debug)]
pub struct Gpt2Attention {
    /// Fused query/key/value projection, `[E, 3E]`.
    pub c_attn: PeftLinear,
    /// Output projection, `[E, E]`.
    pub c_proj: PeftLinear,
    heads: usize,
    /// Extra divisor of the scores (`layer_idx + 1` with inverse-layer scaling, else 1).
    score_divisor: f64,
}

impl Gpt2Attention {
    /// Attention over the sequence, preceded by optional prefix keys/values.
    ///
    /// # Shapes
    /// - `x`: `[B, L, E]`; `prefix`: keys and values `[1, H, P, E/H]`;
    ///   `masked`: `[B, 1, L, P + L]` (true = not attended); output `[B, L, E]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        masked: Tensor<4, Bool>,
        prefix: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let [batch, _, embed] = x.dims();
        let head_dim = embed / self.heads;
        let qkv = self.c_attn.forward(x).chunk(3, 2);
        let [q, mut k, mut v] = [0, 1, 2].map(|i| split_heads(qkv[i].clone(), self.heads));
        if let Some((prefix_k, prefix_v)) = prefix {
            let [_, heads, n, dim] = prefix_k.dims();
            k = Tensor::cat(vec![prefix_k.clone().expand([batch, heads, n, dim]), k], 2);
            v = Tensor::cat(vec![prefix_v.clone().expand([batch, heads, n, dim]), v], 2);
        }
        let scale = 1.0 / ((head_dim as f64).sqrt() * self.score_divisor);
        let context = merge_heads(attention(q, k, v, Some(masked), scale));
        self.c_proj.forward(context)
    }
}

/// The feed-forward block: `c_fc` → `gelu_new` (tanh approximation) → `c_proj`.
#[derive(Module, Debug)]
pub struct Gpt2Mlp {
    /// `[E, 4E]`.
    pub c_fc: PeftLinear,
    /// `[4E, E]`.
    pub c_proj: PeftLinear,
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
    /// The norms' epsilon (burn's `LayerNorm` keeps its own private).
    #[module(skip)]
    pub layer_norm_epsilon: f64,
}

/// GPT-2's `gelu_new` (HF `NewGELUActivation`), `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`:
/// [`cleft_kernels::gelu_tanh`], computed as `x·σ(2u)` (the same function; one `exp`, and
/// one fused kernel on flex — the scalar `tanhf` / `expm1f` / `powf` calls of the textbook form
/// were ~22 % of a LoRA step there).
///
/// # Shapes
/// - `x`: any; output the same.
pub fn gelu_new<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    cleft_kernels::gelu_tanh(x)
}

impl Gpt2Block {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, P + L]`; `prefix`: `[1, H, P, E/H]` keys and
    ///   values; output `[B, L, E]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        masked: Tensor<4, Bool>,
        prefix: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let norm = |n: &LayerNorm, x: Tensor<3>| layer_norm(n, x, self.layer_norm_epsilon);
        let x = x.clone() + self.attn.forward(norm(&self.ln_1, x), masked, prefix);
        let hidden = gelu_new(self.mlp.c_fc.forward(norm(&self.ln_2, x.clone())));
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
    /// PEFT virtual tokens (prompt or prefix tuning), if installed.
    pub prompt_encoder: Option<PromptEncoder>,
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
        let normal = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |d_in, d_out| {
            PeftLinear::from_linear(
                LinearConfig::new(d_in, d_out)
                    .with_initializer(normal.clone())
                    .init(device),
            )
        };
        let norm = || {
            LayerNormConfig::new(e)
                .with_epsilon(config.layer_norm_epsilon)
                .init(device)
        };
        let block = |layer: usize| Gpt2Block {
            ln_1: norm(),
            attn: Gpt2Attention {
                c_attn: linear(e, 3 * e),
                c_proj: linear(e, e),
                heads: config.n_head,
                score_divisor: if config.scale_attn_by_inverse_layer_idx {
                    (layer + 1) as f64
                } else {
                    1.0
                },
            },
            ln_2: norm(),
            mlp: Gpt2Mlp {
                c_fc: linear(e, config.n_inner()),
                c_proj: linear(config.n_inner(), e),
            },
            layer_norm_epsilon: config.layer_norm_epsilon,
        };
        let embedding = |n| {
            EmbeddingConfig::new(n, e)
                .with_initializer(normal.clone())
                .init(device)
        };
        Self {
            wte: embedding(tokenizer.vocab_size().max(config.vocab_size)),
            wpe: embedding(config.n_positions),
            h: (0..config.n_layer).map(block).collect(),
            ln_f: norm(),
            prompt_encoder: None,
            tokenizer,
            pooling: config.pooling,
            max_len: config.max_len,
        }
    }

    /// Final hidden states (after `ln_f`). With prompt tuning the `P` virtual tokens come first
    /// (`[B, P + L, E]`); with prefix tuning the output covers the `L` text positions only.
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]`; `mask`: `[B, L]` (1 = real); output `[B, L, E]` or
    ///   `[B, P + L, E]` (prompt tuning).
    pub fn hidden_states(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        self.hidden_states_and_mask(embeddings, mask).0
    }

    /// Final hidden states with the attention mask they were computed under: with prompt tuning
    /// both include the `P` virtual tokens in front, so pooling by the mask finds the right
    /// position.
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]`; `mask`: `[B, L]`; output `[B, P + L, E]` and `[B, P + L]`
    ///   (`P = 0` without prompt tuning).
    pub fn hidden_states_and_mask(
        &self,
        embeddings: Tensor<3>,
        mask: Tensor<2, Int>,
    ) -> (Tensor<3>, Tensor<2, Int>) {
        let (embeddings, mask) = prepend_prompt(self.prompt_encoder.as_ref(), embeddings, mask);
        let [_, len, _] = embeddings.dims();
        let device = embeddings.device();
        let prefix = self.prefix_key_values();
        let n_prefix = prefix.as_ref().map_or(0, |kv| kv[0].0.dims()[2]);
        let start = n_prefix as i64;
        let positions =
            Tensor::<1, Int>::arange(start..start + len as i64, &device).reshape([1, len]);
        let mut x = embeddings + self.wpe.forward(positions);
        let masked = causal_mask(&mask, n_prefix);
        for (layer, block) in self.h.iter().enumerate() {
            x = block.forward(x, masked.clone(), prefix.as_ref().map(|kv| &kv[layer]));
        }
        (self.ln_f.forward(x), mask)
    }

    fn prefix_key_values(&self) -> Option<Vec<(Tensor<4>, Tensor<4>)>> {
        let prefix = self
            .prompt_encoder
            .as_ref()
            .filter(|p| p.kind == PromptKind::Prefix)?;
        let geometry = self.prefix_geometry();
        Some(prefix.prefix_key_values(geometry.layers, geometry.heads, geometry.head_dim))
    }
}

impl PeftHooks for Gpt2Model {
    fn linear_paths(&self) -> Vec<String> {
        (0..self.h.len())
            .flat_map(|i| {
                ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
                    .map(|m| format!("h.{i}.{m}"))
            })
            .collect()
    }

    fn linear_layers_mut(&mut self) -> Vec<(String, &mut PeftLinear)> {
        let mut layers = Vec::with_capacity(4 * self.h.len());
        for (i, block) in self.h.iter_mut().enumerate() {
            layers.push((format!("h.{i}.attn.c_attn"), &mut block.attn.c_attn));
            layers.push((format!("h.{i}.attn.c_proj"), &mut block.attn.c_proj));
            layers.push((format!("h.{i}.mlp.c_fc"), &mut block.mlp.c_fc));
            layers.push((format!("h.{i}.mlp.c_proj"), &mut block.mlp.c_proj));
        }
        layers
    }

    fn fan_in_fan_out(&self) -> bool {
        true
    }

    fn prefix_geometry(&self) -> PrefixGeometry {
        let embed_dim = self.embed_dim();
        let heads = self.h.first().map_or(1, |block| block.attn.heads);
        PrefixGeometry {
            layers: self.h.len(),
            heads,
            head_dim: embed_dim / heads,
            embed_dim,
        }
    }

    fn prompt_encoder(&self) -> Option<&PromptEncoder> {
        self.prompt_encoder.as_ref()
    }

    fn set_prompt_encoder(&mut self, encoder: Option<PromptEncoder>) -> Result<(), CleftError> {
        if let Some(encoder) = &encoder {
            let needed = encoder.num_virtual_tokens() + self.max_len + 1;
            let available = self.wpe.weight.lazy_shape()[0];
            if needed > available {
                return Err(CleftError::Invalid(format!(
                    "{} virtual tokens + text.max_len {} + 1 pad need {needed} positions; text.n_positions is {available}",
                    encoder.num_virtual_tokens(),
                    self.max_len
                )));
            }
        }
        self.prompt_encoder = encoder;
        Ok(())
    }
}

impl TextEncoder for Gpt2Model {
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
        let (hidden, mask) = self.hidden_states_and_mask(embeddings, mask);
        pool_tokens(hidden, mask, self.pooling)
    }

    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.wte.forward(ids)
    }

    fn dim(&self) -> usize {
        self.ln_f.gamma.lazy_shape()[0]
    }

    fn embed_dim(&self) -> usize {
        self.wte.weight.lazy_shape()[1]
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

    fn peft_hooks(&self) -> Option<&dyn PeftHooks> {
        Some(self)
    }

    fn peft_hooks_mut(&mut self) -> Option<&mut dyn PeftHooks> {
        Some(self)
    }
}
