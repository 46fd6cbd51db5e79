//! LLaMA-family decoder (HF `LlamaModel` layout) as a CLEFT text encoder.
//!
//! Reference: Touvron et al. 2023; HF `transformers/models/llama/modeling_llama.py`. Module
//! names mirror HF keys: `embed_tokens`, `layers.N.{input_layernorm, self_attn.{q_proj, k_proj,
//! v_proj, o_proj}, post_attention_layernorm, mlp.{gate_proj, up_proj, down_proj}}`, `norm`.
//! RMSNorm, rotary position embeddings in HF's `rotate_half` convention (θ from the config),
//! grouped-query attention (each key/value head serves `heads / kv_heads` query heads), SiLU-gated
//! MLP. The LM head is not needed (tied or not): the encoder outputs final hidden states.
//!
//! PEFT hooks (see [`cleft_core::peft::PeftHooks`]): the seven projections are [`PeftLinear`]
//! layers (`fan_in_fan_out = false`, HF `nn.Linear`), and an optional [`PromptEncoder`] adds
//! prompt-tuning tokens before the input embeddings (positions `0..P`, the text after them) or
//! prefix keys/values inside every attention layer. As HF PEFT does on LLaMA, prefix tuning uses
//! the key/value heads (`token_dim = KV·hd`): the prefix keys are used as given (transformers
//! caches keys after RoPE, so no rotation is applied to them), every query may attend to all of
//! them, and the text's RoPE positions start at `P` (transformers derives them from the cache
//! length).

use std::sync::Arc;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::{Bool, Int, TensorData};
use cleft_core::attention::{attention, causal_mask, merge_heads};
use cleft_core::peft::{
    PeftHooks, PeftLinear, PrefixGeometry, PromptEncoder, PromptKind, prepend_prompt,
};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::{CleftError, TextEncoder, TextTokenizer};

use crate::{LlamaArchitecture, Rope};

/// Grouped-query self-attention.
#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// `[E, H·hd]`.
    pub q_proj: PeftLinear,
    /// `[E, KV·hd]`.
    pub k_proj: PeftLinear,
    /// `[E, KV·hd]`.
    pub v_proj: PeftLinear,
    /// `[H·hd, E]`.
    pub o_proj: PeftLinear,
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
    /// RoPE for positions `0..len`: `inv_freq` from [`Rope::inv_freq`] (HF's default
    /// `θ^(−2i/hd)` or its scaled form, f32 as PyTorch), angles `p·inv_freq`, duplicated to `hd`
    /// (`cat(freqs, freqs)`).
    ///
    /// # Shapes
    /// - tables `[1, 1, len, head_dim]`.
    pub fn new(len: usize, head_dim: usize, rope: &Rope, device: &Device) -> Self {
        Self::with_offset(0, len, head_dim, rope, device)
    }

    /// As [`new`](Self::new) for positions `start..start + len` (text after a prefix of `start`
    /// cached positions).
    ///
    /// # Shapes
    /// - tables `[1, 1, len, head_dim]`.
    pub fn with_offset(
        start: usize,
        len: usize,
        head_dim: usize,
        rope: &Rope,
        device: &Device,
    ) -> Self {
        let half = head_dim / 2;
        let inv_freq = rope.inv_freq(head_dim);
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for position in start..start + len {
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
    /// Attention over the sequence, preceded by optional prefix keys/values (already rotated, as
    /// cached keys are in transformers).
    ///
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
        let q = rotary.apply(split(self.q_proj.forward(x.clone()), heads));
        let k = rotary.apply(split(self.k_proj.forward(x.clone()), kv));
        let v = split(self.v_proj.forward(x), kv);
        let (k, v) = with_prefix(k, v, prefix);
        let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
        let context = attention(q, k, v, Some(masked), 1.0 / (hd as f64).sqrt());
        self.o_proj.forward(merge_heads(context))
    }
}

/// Grouped-query attention: each of the `KV` key/value heads repeated for the `heads / KV` query
/// heads it serves.
///
/// # Shapes
/// - `t`: `[B, KV, L, hd]`; output `[B, heads, L, hd]`.
pub(crate) fn repeat_kv(t: Tensor<4>, heads: usize) -> Tensor<4> {
    let [batch, kv, len, hd] = t.dims();
    t.unsqueeze_dim::<5>(2)
        .expand([batch, kv, heads / kv, len, hd])
        .reshape([batch, heads, len, hd])
}

/// Prefix keys and values (already rotated, as transformers caches them) before the sequence's.
///
/// # Shapes
/// - `k`, `v`: `[B, KV, L, hd]`; `prefix`: `[1, KV, P, hd]` each; output `[B, KV, P + L, hd]`.
pub(crate) fn with_prefix(
    k: Tensor<4>,
    v: Tensor<4>,
    prefix: Option<&(Tensor<4>, Tensor<4>)>,
) -> (Tensor<4>, Tensor<4>) {
    let Some((prefix_k, prefix_v)) = prefix else {
        return (k, v);
    };
    let [batch, kv, _, hd] = k.dims();
    let n = prefix_k.dims()[2];
    (
        Tensor::cat(vec![prefix_k.clone().expand([batch, kv, n, hd]), k], 2),
        Tensor::cat(vec![prefix_v.clone().expand([batch, kv, n, hd]), v], 2),
    )
}

/// Checks that `encoder`'s virtual tokens fit a decoder: prompt tuning at the embedding width,
/// prefix tuning at `2 · layers · KV·hd` (HF PEFT's `token_dim` with key/value heads).
pub(crate) fn check_prompt_encoder(
    encoder: &PromptEncoder,
    embed_dim: usize,
    geometry: &PrefixGeometry,
    family: &str,
) -> Result<(), CleftError> {
    let (width, expected) = match (encoder.kind, &encoder.transform) {
        (PromptKind::Prompt, _) => (encoder.embedding.weight.lazy_shape()[1], embed_dim),
        (PromptKind::Prefix, None) => (
            encoder.embedding.weight.lazy_shape()[1],
            2 * geometry.layers * geometry.embed_dim,
        ),
        (PromptKind::Prefix, Some(mlp)) => (
            mlp.output.weight.lazy_shape()[1],
            2 * geometry.layers * geometry.embed_dim,
        ),
    };
    if width != expected {
        return Err(CleftError::Invalid(format!(
            "{:?} virtual tokens of width {width} do not fit this {family} encoder (expected {expected})",
            encoder.kind
        )));
    }
    Ok(())
}

/// SiLU-gated feed-forward: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// `[E, I]`.
    pub gate_proj: PeftLinear,
    /// `[E, I]`.
    pub up_proj: PeftLinear,
    /// `[I, E]`.
    pub down_proj: PeftLinear,
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
    /// - `x`: `[B, L, E]`; `masked`: `[B, 1, L, P + L]`; `prefix`: keys and values
    ///   `[1, KV, P, hd]`; output `[B, L, E]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        masked: Tensor<4, Bool>,
        rotary: &Rotary,
        prefix: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), masked, rotary, prefix);
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
    /// PEFT virtual tokens (prompt or prefix tuning), if installed.
    pub prompt_encoder: Option<PromptEncoder>,
    #[module(skip)]
    rope: Rope,
    #[module(skip)]
    tokenizer: Arc<dyn TextTokenizer>,
    #[module(skip)]
    pooling: TextPooling,
    #[module(skip)]
    max_len: usize,
}

impl LlamaModel {
    /// A randomly initialised model (N(0, 0.02) weights). Fails when `arch`'s RoPE settings
    /// are not ones [`Rope`] computes.
    pub fn init(
        arch: &LlamaArchitecture,
        tokenizer: Arc<dyn TextTokenizer>,
        pooling: TextPooling,
        max_len: usize,
        device: &Device,
    ) -> Result<Self, CleftError> {
        let rope = arch.rope("config.json")?;
        let e = arch.hidden_size;
        let hd = arch.head_dim();
        let normal = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |i, o, bias| {
            PeftLinear::from_linear(
                LinearConfig::new(i, o)
                    .with_bias(bias)
                    .with_initializer(normal.clone())
                    .init(device),
            )
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
                q_proj: linear(e, heads * hd, arch.qkv_bias()),
                k_proj: linear(e, kv * hd, arch.qkv_bias()),
                v_proj: linear(e, kv * hd, arch.qkv_bias()),
                o_proj: linear(heads * hd, e, arch.o_bias()),
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
        Ok(Self {
            embed_tokens: EmbeddingConfig::new(vocab, e)
                .with_initializer(normal.clone())
                .init(device),
            layers: (0..arch.num_hidden_layers).map(layer).collect(),
            norm: norm(),
            prompt_encoder: None,
            rope,
            tokenizer,
            pooling,
            max_len,
        })
    }

    /// RoPE θ and scaling.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// Final hidden states (after the last RMSNorm). With prompt tuning the `P` virtual tokens
    /// come first (`[B, P + L, E]`, positions `0..P + L`); with prefix tuning the output covers
    /// the `L` text positions only (RoPE positions `P..P + L`); otherwise positions `0..L`.
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]`; `mask`: `[B, L]` (1 = real); output `[B, L, E]` or
    ///   `[B, P + L, E]` (prompt tuning).
    pub fn hidden_states(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<3> {
        self.hidden_states_and_mask(embeddings, mask).0
    }

    /// [`hidden_states`](Self::hidden_states) with the mask that covers them (prompt-tuning
    /// tokens count as real).
    ///
    /// # Shapes
    /// - output `([B, L′, E], [B, L′])` with `L′` = `L` or `P + L`.
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
        let head_dim = self.layers.first().map_or(1, |l| l.self_attn.head_dim);
        let rotary = Rotary::with_offset(n_prefix, len, head_dim, &self.rope, &device);
        let masked = causal_mask(&mask, n_prefix);
        let x = self
            .layers
            .iter()
            .enumerate()
            .fold(embeddings, |x, (i, layer)| {
                let prefix = prefix.as_ref().map(|kv| &kv[i]);
                layer.forward(x, masked.clone(), &rotary, prefix)
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

/// The seven projections of a LLaMA-layout decoder layer, by HF name.
pub(crate) const LINEAR_PATHS: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// A decoder layer with LLaMA's seven projections (LLaMA, Gemma 3): what the PEFT hooks of both
/// decoders are written against once.
pub(crate) trait DecoderProjections {
    /// The projections in [`LINEAR_PATHS`] order.
    fn projections_mut(&mut self) -> [&mut PeftLinear; 7];
    /// Key/value heads and per-head size.
    fn kv_geometry(&self) -> (usize, usize);
}

impl DecoderProjections for LlamaDecoderLayer {
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

/// `layers.N.<projection>` for every layer.
pub(crate) fn decoder_linear_paths(layers: usize) -> Vec<String> {
    (0..layers)
        .flat_map(|i| LINEAR_PATHS.map(|m| format!("layers.{i}.{m}")))
        .collect()
}

/// Every layer's projections under their paths.
pub(crate) fn decoder_linear_layers_mut<L: DecoderProjections>(
    layers: &mut [L],
) -> Vec<(String, &mut PeftLinear)> {
    layers
        .iter_mut()
        .enumerate()
        .flat_map(|(i, layer)| {
            LINEAR_PATHS
                .iter()
                .zip(layer.projections_mut())
                .map(move |(name, module)| (format!("layers.{i}.{name}"), module))
        })
        .collect()
}

/// Key/value heads, as HF PEFT for models with `num_key_value_heads`: `embed_dim` is PEFT's
/// `token_dim = KV·hd` (the width of one layer's prefix keys), not the hidden size.
pub(crate) fn decoder_prefix_geometry<L: DecoderProjections>(layers: &[L]) -> PrefixGeometry {
    let (heads, head_dim) = layers.first().map_or((1, 1), L::kv_geometry);
    PrefixGeometry {
        layers: layers.len(),
        heads,
        head_dim,
        embed_dim: heads * head_dim,
    }
}

impl PeftHooks for LlamaModel {
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
            check_prompt_encoder(encoder, self.embed_dim(), &self.prefix_geometry(), "LLaMA")?;
        }
        self.prompt_encoder = encoder;
        Ok(())
    }
}

impl TextEncoder for LlamaModel {
    /// Pools over every position the hidden states cover: with prompt tuning the virtual tokens
    /// count as real, so first-pad pooling picks the pad after the text.
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
        let (hidden, mask) = self.hidden_states_and_mask(embeddings, mask);
        pool_tokens(hidden, mask, self.pooling)
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

    fn peft_hooks(&self) -> Option<&dyn PeftHooks> {
        Some(self)
    }

    fn peft_hooks_mut(&mut self) -> Option<&mut dyn PeftHooks> {
        Some(self)
    }
}
