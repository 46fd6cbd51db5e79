//! BERT (HF `BertModel` layout) as a cleft text encoder.
//!
//! Reference: Devlin et al. 2019; HF `transformers/models/bert/modeling_bert.py`. The module tree
//! mirrors HF keys: `embeddings.{word_embeddings,position_embeddings,token_type_embeddings,
//! LayerNorm}`, `encoder.layer.N.{attention.self.{query,key,value},attention.output.{dense,
//! LayerNorm},intermediate.dense,output.{dense,LayerNorm}}`, `pooler.dense`. Two names cannot be
//! Rust fields and are renamed on load: `self` (a keyword) is the field `self_`, `LayerNorm` is
//! `layer_norm` (see [`crate::load::bert_mapping`]).

use std::sync::Arc;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{Bool, Int};
use cleft_core::attention::{attention, merge_heads, split_heads};
use cleft_core::text::{TextPooling, pool_tokens};
use cleft_core::{TextEncoder, TextTokenizer};
use cleft_kernels::gelu;

use crate::{BertArchitecture, BertPooling};

/// Word, position and token-type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[V, H]`.
    pub word_embeddings: Embedding,
    /// `[P, H]`.
    pub position_embeddings: Embedding,
    /// `[T, H]` (type 0 is used for single texts).
    pub token_type_embeddings: Embedding,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm,
}

/// Query, key and value projections (HF `attention.self`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// `[H, H]`.
    pub query: Linear,
    /// `[H, H]`.
    pub key: Linear,
    /// `[H, H]`.
    pub value: Linear,
}

/// A projection, residual add and post-norm (HF `BertSelfOutput` / `BertOutput`).
#[derive(Module, Debug)]
pub struct BertResidualOutput {
    /// `[in, H]`.
    pub dense: Linear,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm,
}

impl BertResidualOutput {
    /// # Shapes
    /// - `hidden`: `[B, L, in]`; `residual`: `[B, L, H]`; output `[B, L, H]`.
    pub fn forward(&self, hidden: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm
            .forward(self.dense.forward(hidden) + residual)
    }
}

/// Self-attention and its output block.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// HF `attention.self`.
    pub self_: BertSelfAttention,
    /// HF `attention.output`.
    pub output: BertResidualOutput,
}

/// The MLP's first projection (HF `intermediate.dense`).
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// `[H, I]`.
    pub dense: Linear,
}

/// One post-norm transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Attention.
    pub attention: BertAttention,
    /// MLP up-projection (GELU, erf).
    pub intermediate: BertIntermediate,
    /// MLP down-projection, residual, norm.
    pub output: BertResidualOutput,
}

impl BertLayer {
    /// # Shapes
    /// - `x`: `[B, L, H]`; `masked`: `[B, 1, 1, L]` (true = padded key); output `[B, L, H]`.
    pub fn forward(&self, x: Tensor<3>, masked: Tensor<4, Bool>, heads: usize) -> Tensor<3> {
        let head_dim = x.dims()[2] / heads;
        let attn = &self.attention.self_;
        let q = split_heads(attn.query.forward(x.clone()), heads);
        let k = split_heads(attn.key.forward(x.clone()), heads);
        let v = split_heads(attn.value.forward(x.clone()), heads);
        let scale = 1.0 / (head_dim as f64).sqrt();
        let context = merge_heads(attention(q, k, v, Some(masked), scale));
        let attended = self.attention.output.forward(context, x);
        let inner = gelu(self.intermediate.dense.forward(attended.clone()));
        self.output.forward(inner, attended)
    }
}

/// The layer stack.
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// Layers.
    pub layer: Vec<BertLayer>,
}

/// `tanh(dense(h[CLS]))` (HF `BertPooler`).
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `[H, H]`.
    pub dense: Linear,
}

/// The BERT text encoder.
#[derive(Module, Debug)]
pub struct BertModel {
    /// Embeddings.
    pub embeddings: BertEmbeddings,
    /// Layers.
    pub encoder: BertEncoder,
    /// Optional pooler (HF `add_pooling_layer`).
    pub pooler: Option<BertPooler>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    tokenizer: Arc<dyn TextTokenizer>,
    #[module(skip)]
    pooling: BertPooling,
    #[module(skip)]
    max_len: usize,
}

impl BertModel {
    /// A randomly initialised model (N(0, 0.02) weights, as HF's `_init_weights`).
    pub fn init(
        arch: &BertArchitecture,
        tokenizer: Arc<dyn TextTokenizer>,
        pooling: BertPooling,
        max_len: usize,
        device: &Device,
    ) -> Self {
        let h = arch.hidden_size;
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
            LayerNormConfig::new(h)
                .with_epsilon(arch.layer_norm_eps)
                .init(device)
        };
        let embedding = |n| {
            EmbeddingConfig::new(n, h)
                .with_initializer(normal.clone())
                .init(device)
        };
        let layer = |_| BertLayer {
            attention: BertAttention {
                self_: BertSelfAttention {
                    query: linear(h, h),
                    key: linear(h, h),
                    value: linear(h, h),
                },
                output: BertResidualOutput {
                    dense: linear(h, h),
                    layer_norm: norm(),
                },
            },
            intermediate: BertIntermediate {
                dense: linear(h, arch.intermediate_size),
            },
            output: BertResidualOutput {
                dense: linear(arch.intermediate_size, h),
                layer_norm: norm(),
            },
        };
        Self {
            embeddings: BertEmbeddings {
                word_embeddings: embedding(arch.vocab_size.max(tokenizer.vocab_size())),
                position_embeddings: embedding(arch.max_position_embeddings),
                token_type_embeddings: embedding(arch.type_vocab_size),
                layer_norm: norm(),
            },
            encoder: BertEncoder {
                layer: (0..arch.num_hidden_layers).map(layer).collect(),
            },
            pooler: arch.add_pooling_layer.then(|| BertPooler {
                dense: linear(h, h),
            }),
            heads: arch.num_attention_heads,
            tokenizer,
            pooling,
            max_len,
        }
    }

    /// The embedding output and the output of every layer (HF `hidden_states`, `N + 1` entries).
    ///
    /// # Shapes
    /// - `words`: word embeddings `[B, L, H]`; `mask`: `[B, L]` (1 = real); each output `[B, L, H]`.
    pub fn hidden_states(&self, words: Tensor<3>, mask: Tensor<2, Int>) -> Vec<Tensor<3>> {
        let [batch, len, hidden] = words.dims();
        let device = words.device();
        let positions = Tensor::<1, Int>::arange(0..len as i64, &device).reshape([1, len]);
        let token_type = self
            .embeddings
            .token_type_embeddings
            .weight
            .val()
            .slice([0..1])
            .reshape([1, 1, hidden]);
        let x = words + self.embeddings.position_embeddings.forward(positions) + token_type;
        let mut states = vec![self.embeddings.layer_norm.forward(x)];
        let masked = mask.equal_elem(0).reshape([batch, 1, 1, len]);
        for layer in &self.encoder.layer {
            let next = layer.forward(states[states.len() - 1].clone(), masked.clone(), self.heads);
            states.push(next);
        }
        states
    }

    /// The pooled feature of `states` (from [`Self::hidden_states`]) under `pooling`.
    ///
    /// # Shapes
    /// - `states`: `N + 1` tensors `[B, L, H]`; `mask`: `[B, L]`; output `[B, H]`.
    pub fn pool(
        &self,
        states: &[Tensor<3>],
        mask: Tensor<2, Int>,
        pooling: BertPooling,
    ) -> Tensor<2> {
        let last = states[states.len() - 1].clone();
        let [batch, _, hidden] = last.dims();
        let medclip = || {
            let first = states.get(1).cloned().unwrap_or_else(|| last.clone());
            let second = states.get(2).cloned().unwrap_or_else(|| last.clone());
            (first + second + last.clone()) / 3.0
        };
        match pooling {
            BertPooling::Cls => pool_tokens(last, mask, TextPooling::Cls),
            BertPooling::Mean => pool_tokens(last, mask, TextPooling::Mean),
            BertPooling::Pooler => {
                let cls = pool_tokens(last.clone(), mask.clone(), TextPooling::Cls);
                match &self.pooler {
                    Some(pooler) => pooler.dense.forward(cls).tanh(),
                    None => cls,
                }
            }
            BertPooling::MedclipMean => pool_tokens(medclip(), mask, TextPooling::Mean),
            BertPooling::MedclipUnmaskedMean => medclip().mean_dim(1).reshape([batch, hidden]),
        }
    }

    /// The configured pooling.
    pub fn pooling(&self) -> BertPooling {
        self.pooling
    }
}

impl TextEncoder for BertModel {
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
        let states = self.hidden_states(embeddings, mask.clone());
        self.pool(&states, mask, self.pooling)
    }

    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embeddings.word_embeddings.forward(ids)
    }

    fn dim(&self) -> usize {
        self.embeddings.layer_norm.gamma.dims()[0]
    }

    fn embed_dim(&self) -> usize {
        self.dim()
    }

    fn num_layers(&self) -> usize {
        self.encoder.layer.len()
    }

    fn tokenizer(&self) -> Arc<dyn TextTokenizer> {
        self.tokenizer.clone()
    }

    fn max_len(&self) -> usize {
        self.max_len
    }
}
