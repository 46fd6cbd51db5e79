//! Gemma 3 text decoder (HF `Gemma3TextModel`: Gemma 3, and the language model of MedGemma) as a
//! CLEFT text encoder.
//!
//! Reference: Gemma Team 2025; HF `transformers/models/gemma3/modeling_gemma3.py`. What differs
//! from LLaMA: token embeddings multiplied by `√E` (as a float32 scalar); Gemma's RMSNorm,
//! `x · rsqrt(mean(x²) + ε) · (1 + w)`; RMSNorm on each query and key head before RoPE
//! (`q_norm`, `k_norm`); attention scaled by `query_pre_attn_scalar^(-1/2)`; a norm after the
//! attention and after the MLP as well as before each (`input_layernorm`,
//! `post_attention_layernorm`, `pre_feedforward_layernorm`, `post_feedforward_layernorm`);
//! GeGLU, `down(gelu_tanh(gate(x)) · up(x))`; and two kinds of layers, local ones
//! (`sliding_attention`: their own RoPE base, attention within `sliding_window`, exact while
//! every sequence fits the window, which the contracts check) and global ones (`full_attention`:
//! RoPE θ with optional `linear` scaling). Module names mirror HF keys.
//!
//! PEFT hooks as for LLaMA: seven [`PeftLinear`] projections per layer, prompt tuning before the
//! (scaled) input embeddings, prefix keys/values per layer used as given.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LinearConfig};
use burn::prelude::*;
use burn::tensor::Bool;
use cleft_core::attention::{attention, causal_mask, merge_heads};
use cleft_core::peft::{
    PeftHooks, PeftLinear, PrefixGeometry, PromptEncoder, PromptKind, prepend_prompt,
};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::{CleftError, TextEncoder, TextTokenizer};
use cleft_kernels::gelu_tanh;

pub use crate::gemma3_arch::Gemma3Architecture;
use crate::model::{
    DecoderProjections, check_prompt_encoder, decoder_linear_layers_mut, decoder_linear_paths,
    decoder_prefix_geometry, repeat_kv, with_prefix,
};
use crate::{Rope, Rotary};

/// Gemma's RMSNorm: `x · rsqrt(mean(x²) + ε) · (1 + w)` over the last dimension (HF
/// `Gemma3RMSNorm`; `w` starts at zero).
#[derive(Module, Debug)]
pub struct GemmaRmsNorm {
    /// `w`, `[D]`.
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    eps: f64,
}

impl GemmaRmsNorm {
    /// A norm over `dim` features with `w = 0`.
    pub fn new(dim: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::zeros([dim], device)),
            eps,
        }
    }

    /// # Shapes
    /// - `x`: `[…, D]`; output the same.
    pub fn forward<const N: usize>(&self, x: Tensor<N>) -> Tensor<N> {
        let dims = x.dims();
        let d = dims[N - 1];
        let mean_square = x.clone().powi_scalar(2).mean_dim(N - 1);
        let normed = x * mean_square.add_scalar(self.eps).sqrt().recip();
        let mut shape = [1; N];
        shape[N - 1] = d;
        normed * self.weight.val().add_scalar(1.0).reshape(shape)
    }
}

/// Attention with query/key norms and Gemma's scale.
#[derive(Module, Debug)]
pub struct Gemma3Attention {
    /// `[E, H·hd]`.
    pub q_proj: PeftLinear,
    /// `[E, KV·hd]`.
    pub k_proj: PeftLinear,
    /// `[E, KV·hd]`.
    pub v_proj: PeftLinear,
    /// `[H·hd, E]`.
    pub o_proj: PeftLinear,
    /// Norm of each query head, `[hd]`.
    pub q_norm: GemmaRmsNorm,
    /// Norm of each key head, `[hd]`.
    pub k_norm: GemmaRmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Gemma3Attention {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, P + L]` (true = not attended); `prefix`: keys and
    ///   values `[1, KV, P, hd]`; output `[B, L, E]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        masked: Tensor<4, Bool>,
        rotary: &Rotary,
        prefix: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (heads, kv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let split = |t: Tensor<3>, n: usize| t.reshape([batch, len, n, hd]).swap_dims(1, 2);
        let q = rotary.apply(
            self.q_norm
                .forward(split(self.q_proj.forward(x.clone()), heads)),
        );
        let k = rotary.apply(
            self.k_norm
                .forward(split(self.k_proj.forward(x.clone()), kv)),
        );
        let v = split(self.v_proj.forward(x), kv);
        let (k, v) = with_prefix(k, v, prefix);
        let context = attention(
            q,
            repeat_kv(k, heads),
            repeat_kv(v, heads),
            Some(masked),
            self.scale,
        );
        self.o_proj.forward(merge_heads(context))
    }
}

/// GeGLU feed-forward: `down(gelu_tanh(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct Gemma3Mlp {
    /// `[E, I]`.
    pub gate_proj: PeftLinear,
    /// `[E, I]`.
    pub up_proj: PeftLinear,
    /// `[I, E]`.
    pub down_proj: PeftLinear,
}

/// One decoder layer with norms before and after the attention and the MLP.
#[derive(Module, Debug)]
pub struct Gemma3DecoderLayer {
    /// Before attention.
    pub input_layernorm: GemmaRmsNorm,
    /// Attention.
    pub self_attn: Gemma3Attention,
    /// After attention, before the residual sum.
    pub post_attention_layernorm: GemmaRmsNorm,
    /// Before the MLP.
    pub pre_feedforward_layernorm: GemmaRmsNorm,
    /// MLP.
    pub mlp: Gemma3Mlp,
    /// After the MLP, before the residual sum.
    pub post_feedforward_layernorm: GemmaRmsNorm,
}

impl Gemma3DecoderLayer {
    /// # Shapes
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, P + L]`; output `[B, L, E]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        masked: Tensor<4, Bool>,
        rotary: &Rotary,
        prefix: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let attended = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            masked,
            rotary,
            prefix,
        );
        let x = x + self.post_attention_layernorm.forward(attended);
        let h = self.pre_feedforward_layernorm.forward(x.clone());
        let mlp = &self.mlp;
        let h = mlp
            .down_proj
            .forward(gelu_tanh(mlp.gate_proj.forward(h.clone())) * mlp.up_proj.forward(h));
        x + self.post_feedforward_layernorm.forward(h)
    }
}

/// The Gemma 3 text encoder.
#[derive(Module, Debug)]
pub struct Gemma3Model {
    /// Token embeddings `[V, E]` (multiplied by `√E` when looked up).
    pub embed_tokens: Embedding,
    /// Decoder layers.
    pub layers: Vec<Gemma3DecoderLayer>,
    /// Final norm.
    pub norm: GemmaRmsNorm,
    /// PEFT virtual tokens (prompt or prefix tuning), if installed.
    pub prompt_encoder: Option<PromptEncoder>,
    #[module(skip)]
    embed_scale: f32,
    #[module(skip)]
    global_rope: Rope,
    #[module(skip)]
    local_rope: Rope,
    #[module(skip)]
    local: Vec<bool>,
    #[module(skip)]
    tokenizer: Arc<dyn TextTokenizer>,
    #[module(skip)]
    pooling: TextPooling,
    #[module(skip)]
    max_len: usize,
}

impl Gemma3Model {
    /// A randomly initialised model (N(0, 0.02) weights, norms at `w = 0`). Fails when `arch`
    /// does not pass [`Gemma3Architecture::validate`].
    pub fn init(
        arch: &Gemma3Architecture,
        tokenizer: Arc<dyn TextTokenizer>,
        pooling: TextPooling,
        max_len: usize,
        device: &Device,
    ) -> Result<Self, CleftError> {
        arch.validate()?;
        let (global_rope, local_rope) = arch.ropes("config.json")?;
        let local = arch.local_layers()?;
        let (e, hd) = (arch.hidden_size, arch.head_dim);
        let normal = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |i, o| {
            PeftLinear::from_linear(
                LinearConfig::new(i, o)
                    .with_bias(arch.attention_bias)
                    .with_initializer(normal.clone())
                    .init(device),
            )
        };
        let dense = |i, o| {
            PeftLinear::from_linear(
                LinearConfig::new(i, o)
                    .with_bias(false)
                    .with_initializer(normal.clone())
                    .init(device),
            )
        };
        let norm = |d| GemmaRmsNorm::new(d, arch.rms_norm_eps, device);
        let (heads, kv) = (arch.num_attention_heads, arch.num_key_value_heads);
        let layer = |_| Gemma3DecoderLayer {
            input_layernorm: norm(e),
            self_attn: Gemma3Attention {
                q_proj: linear(e, heads * hd),
                k_proj: linear(e, kv * hd),
                v_proj: linear(e, kv * hd),
                o_proj: linear(heads * hd, e),
                q_norm: norm(hd),
                k_norm: norm(hd),
                heads,
                kv_heads: kv,
                head_dim: hd,
                scale: arch.query_pre_attn_scalar.powf(-0.5),
            },
            post_attention_layernorm: norm(e),
            pre_feedforward_layernorm: norm(e),
            mlp: Gemma3Mlp {
                gate_proj: dense(e, arch.intermediate_size),
                up_proj: dense(e, arch.intermediate_size),
                down_proj: dense(arch.intermediate_size, e),
            },
            post_feedforward_layernorm: norm(e),
        };
        let vocab = arch.vocab_size.max(tokenizer.vocab_size());
        Ok(Self {
            embed_tokens: EmbeddingConfig::new(vocab, e)
                .with_initializer(normal.clone())
                .init(device),
            layers: (0..arch.num_hidden_layers).map(layer).collect(),
            norm: norm(e),
            prompt_encoder: None,
            // transformers: torch.tensor(hidden_size ** 0.5), a float32 scalar.
            embed_scale: (e as f64).sqrt() as f32,
            global_rope,
            local_rope,
            local,
            tokenizer,
            pooling,
            max_len,
        })
    }

    /// RoPE of the global and the local layers.
    pub fn ropes(&self) -> (&Rope, &Rope) {
        (&self.global_rope, &self.local_rope)
    }

    /// The factor token embeddings are multiplied by (`√E` as float32).
    pub fn embed_scale(&self) -> f32 {
        self.embed_scale
    }

    /// Final hidden states (after the last norm); as [`crate::LlamaModel::hidden_states`] for
    /// prompt and prefix tuning.
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]` (already scaled, as [`TextEncoder::embed_tokens`] gives them);
    ///   `mask`: `[B, L]`; output `[B, L, E]` or `[B, P + L, E]` (prompt tuning).
    pub fn hidden_states(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        self.hidden_states_and_mask(embeddings, mask).0
    }

    fn hidden_states_and_mask(
        &self,
        embeddings: Tensor<3>,
        mask: Tensor<2, Int>,
    ) -> (Tensor<3>, Tensor<2, Int>) {
        let (embeddings, mask) = prepend_prompt(self.prompt_encoder.as_ref(), embeddings, mask);
        let [_, len, _] = embeddings.dims();
        let device = embeddings.device();
        let prefix = self.prefix_key_values();
        let n_prefix = prefix.as_ref().map_or(0, |kv| kv[0].0.dims()[2]);
        let head_dim = self.layers.first().map_or(2, |l| l.self_attn.head_dim);
        let global = Rotary::with_offset(n_prefix, len, head_dim, &self.global_rope, &device);
        let local = Rotary::with_offset(n_prefix, len, head_dim, &self.local_rope, &device);
        // Local layers attend within the sliding window, which the contracts and the loader
        // keep at least as long as any sequence: the same mask as the global layers.
        let masked = causal_mask(&mask, n_prefix);
        let x = self
            .layers
            .iter()
            .enumerate()
            .fold(embeddings, |x, (i, layer)| {
                let rotary = if self.local.get(i).copied().unwrap_or(false) {
                    &local
                } else {
                    &global
                };
                let prefix = prefix.as_ref().map(|kv| &kv[i]);
                layer.forward(x, masked.clone(), rotary, prefix)
            });
        (self.norm.forward(x), mask)
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

impl DecoderProjections for Gemma3DecoderLayer {
    fn projections_mut(&mut self) -> [&mut PeftLinear; 7] {
        let (attn, mlp) = (&mut self.self_attn, &mut self.mlp);
        [
            &mut attn.q_proj,
            &mut attn.k_proj,
            &mut attn.v_proj,
            &mut attn.o_proj,
            &mut mlp.gate_proj,
            &mut mlp.up_proj,
            &mut mlp.down_proj,
        ]
    }

    fn kv_geometry(&self) -> (usize, usize) {
        (self.self_attn.kv_heads, self.self_attn.head_dim)
    }
}

impl PeftHooks for Gemma3Model {
    fn linear_paths(&self) -> Vec<String> {
        decoder_linear_paths(self.layers.len())
    }

    fn linear_layers_mut(&mut self) -> Vec<(String, &mut PeftLinear)> {
        decoder_linear_layers_mut(&mut self.layers)
    }

    fn fan_in_fan_out(&self) -> bool {
        false
    }

    fn prefix_geometry(&self) -> PrefixGeometry {
        decoder_prefix_geometry(&self.layers)
    }

    fn prompt_encoder(&self) -> Option<&PromptEncoder> {
        self.prompt_encoder.as_ref()
    }

    fn set_prompt_encoder(&mut self, encoder: Option<PromptEncoder>) -> Result<(), CleftError> {
        if let Some(encoder) = &encoder {
            check_prompt_encoder(
                encoder,
                self.embed_dim(),
                &self.prefix_geometry(),
                "Gemma 3",
            )?;
        }
        self.prompt_encoder = encoder;
        Ok(())
    }
}

impl TextEncoder for Gemma3Model {
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
        let (hidden, mask) = self.hidden_states_and_mask(embeddings, mask);
        pool_tokens(hidden, mask, self.pooling)
    }

    /// Looked-up embeddings times `√E` (HF `Gemma3TextScaledWordEmbedding`).
    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(ids).mul_scalar(self.embed_scale)
    }

    fn dim(&self) -> usize {
        self.norm.weight.dims()[0]
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

    fn peft_hooks(&self) -> Option<&dyn PeftHooks> {
        Some(self)
    }

    fn peft_hooks_mut(&mut self) -> Option<&mut dyn PeftHooks> {
        Some(self)
    }
}
