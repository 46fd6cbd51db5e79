//! LLaMA-family decoder (HF `LlamaModel` layout) as a CLEFT text encoder.
//!
//! Reference: Touvron et al. 2023; HF `transformers/models/llama/modeling_llama.py`. Module
//! names mirror HF keys: `embed_tokens`, `layers.N.{input_layernorm, self_attn.{q_proj, k_proj,
//! v_proj, o_proj}, post_attention_layernorm, mlp.{gate_proj, up_proj, down_proj}}`, `norm`.
//! RMSNorm, rotary position embeddings in HF's `rotate_half` convention (θ from the config),
//! grouped-query attention (each key/value head serves `heads / kv_heads` query heads), SiLU-gated
//! MLP. The LM head is not needed (tied or not): the encoder outputs final hidden states.

use std::sync::Arc;

use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Bool, Int, TensorData};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::{TextEncoder, TextTokenizer};

use crate::LlamaArchitecture;

/// Grouped-query self-attention.
#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// `[E, H·hd]`.
    pub q_proj: Linear,
    /// `[E, KV·hd]`.
    pub k_proj: Linear,
    /// `[E, KV·hd]`.
    pub v_proj: Linear,
    /// `[H·hd, E]`.
    pub o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// Rotary tables for one sequence length.
#[derive(Debug, Clone)]
pub struct Rotary {
    /// `[1, 1, L, hd]`.
    cos: Tensor<4>,
    /// `[1, 1, L, hd]`.
    sin: Tensor<4>,
}

impl Rotary {
    /// HF default RoPE for positions `0..len`: `inv_freq[i] = θ^(−2i/hd)` (f32, as PyTorch),
    /// angles `p·inv_freq`, duplicated to `hd` (`cat(freqs, freqs)`).
    pub fn new(len: usize, head_dim: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for position in 0..len {
            for i in 0..head_dim {
                let angle = position as f32 * inv_freq[i % half];
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let table = |v| {
            Tensor::<2>::from_data(TensorData::new(v, [len, head_dim]), device)
                .reshape([1, 1, len, head_dim])
        };
        Self {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// # Shapes
    /// - `x`: `[B, heads, L, hd]`; output the same.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [batch, heads, len, dim] = x.dims();
        let half = dim / 2;
        let first = x.clone().slice([0..batch, 0..heads, 0..len, 0..half]);
        let second = x.clone().slice([0..batch, 0..heads, 0..len, half..dim]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

impl LlamaAttention {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, L]` (true = not attended); output `[B, L, E]`.
    pub fn forward(&self, x: Tensor<3>, masked: Tensor<4, Bool>, rotary: &Rotary) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (heads, kv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let split = |t: Tensor<3>, n: usize| t.reshape([batch, len, n, hd]).swap_dims(1, 2);
        let q = rotary.apply(split(self.q_proj.forward(x.clone()), heads));
        let repeat = |t: Tensor<4>| {
            t.unsqueeze_dim::<5>(2)
                .expand([batch, kv, heads / kv, len, hd])
                .reshape([batch, heads, len, hd])
        };
        let k = repeat(rotary.apply(split(self.k_proj.forward(x.clone()), kv)));
        let v = repeat(split(self.v_proj.forward(x), kv));
        let scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt();
        let weights = softmax(scores.mask_fill(masked, f32::MIN), 3);
        let context = weights
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, len, heads * hd]);
        self.o_proj.forward(context)
    }
}

/// SiLU-gated feed-forward: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// `[E, I]`.
    pub gate_proj: Linear,
    /// `[E, I]`.
    pub up_proj: Linear,
    /// `[I, E]`.
    pub down_proj: Linear,
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct LlamaDecoderLayer {
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm,
    /// Attention.
    pub self_attn: LlamaAttention,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// MLP.
    pub mlp: LlamaMlp,
}

impl LlamaDecoderLayer {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, L]`; output `[B, L, E]`.
    pub fn forward(&self, x: Tensor<3>, masked: Tensor<4, Bool>, rotary: &Rotary) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), masked, rotary);
        let h = self.post_attention_layernorm.forward(x.clone());
        x + self
            .mlp
            .down_proj
            .forward(silu(self.mlp.gate_proj.forward(h.clone())) * self.mlp.up_proj.forward(h))
    }
}

/// The LLaMA text encoder.
#[derive(Module, Debug)]
pub struct LlamaModel {
    /// Token embeddings `[V, E]`.
    pub embed_tokens: Embedding,
    /// Decoder layers.
    pub layers: Vec<LlamaDecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
    #[module(skip)]
    rope_theta: f64,
    #[module(skip)]
    tokenizer: Arc<dyn TextTokenizer>,
    #[module(skip)]
    pooling: TextPooling,
    #[module(skip)]
    max_len: usize,
}

impl LlamaModel {
    /// A randomly initialised model (N(0, 0.02) weights).
    pub fn init(
        arch: &LlamaArchitecture,
        tokenizer: Arc<dyn TextTokenizer>,
        pooling: TextPooling,
        max_len: usize,
        device: &Device,
    ) -> Self {
        let e = arch.hidden_size;
        let hd = arch.head_dim();
        let normal = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |i, o, bias| {
            LinearConfig::new(i, o)
                .with_bias(bias)
                .with_initializer(normal.clone())
                .init(device)
        };
        let norm = || {
            RmsNormConfig::new(e)
                .with_epsilon(arch.rms_norm_eps)
                .init(device)
        };
        let (heads, kv) = (arch.num_attention_heads, arch.num_key_value_heads);
        let layer = |_| LlamaDecoderLayer {
            input_layernorm: norm(),
            self_attn: LlamaAttention {
                q_proj: linear(e, heads * hd, arch.attention_bias),
                k_proj: linear(e, kv * hd, arch.attention_bias),
                v_proj: linear(e, kv * hd, arch.attention_bias),
                o_proj: linear(heads * hd, e, arch.attention_bias),
                heads,
                kv_heads: kv,
                head_dim: hd,
            },
            post_attention_layernorm: norm(),
            mlp: LlamaMlp {
                gate_proj: linear(e, arch.intermediate_size, arch.mlp_bias),
                up_proj: linear(e, arch.intermediate_size, arch.mlp_bias),
                down_proj: linear(arch.intermediate_size, e, arch.mlp_bias),
            },
        };
        let vocab = arch.vocab_size.max(tokenizer.vocab_size());
        Self {
            embed_tokens: EmbeddingConfig::new(vocab, e)
                .with_initializer(normal.clone())
                .init(device),
            layers: (0..arch.num_hidden_layers).map(layer).collect(),
            norm: norm(),
            rope_theta: arch.rope_theta,
            tokenizer,
            pooling,
            max_len,
        }
    }

    /// Final hidden states (after the last RMSNorm), positions `0..L`.
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]`; `mask`: `[B, L]` (1 = real); output `[B, L, E]`.
    pub fn hidden_states(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        let [batch, len, _] = embeddings.dims();
        let device = embeddings.device();
        let head_dim = self.layers.first().map_or(1, |l| l.self_attn.head_dim);
        let rotary = Rotary::new(len, head_dim, self.rope_theta, &device);
        let causal: Tensor<4, Bool> =
            generate_autoregressive_mask(batch, len, &device).unsqueeze_dim(1);
        let padding = mask
            .equal_elem(0)
            .reshape([batch, 1, 1, len])
            .expand([batch, 1, len, len]);
        let masked = causal.bool_or(padding);
        let x = self.layers.iter().fold(embeddings, |x, layer| {
            layer.forward(x, masked.clone(), &rotary)
        });
        self.norm.forward(x)
    }
}

impl TextEncoder for LlamaModel {
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
        pool_tokens(
            self.hidden_states(embeddings, mask.clone()),
            mask,
            self.pooling,
        )
    }

    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(ids)
    }

    fn dim(&self) -> usize {
        self.norm.gamma.dims()[0]
    }

    fn embed_dim(&self) -> usize {
        self.embed_tokens.weight.dims()[1]
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn tokenizer(&self) -> Arc<dyn TextTokenizer> {
        self.tokenizer.clone()
    }

    fn max_len(&self) -> usize {
        self.max_len
    }
}
