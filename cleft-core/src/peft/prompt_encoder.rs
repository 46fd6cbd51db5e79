//! [`PromptEncoder`]: learned virtual tokens for prompt tuning and prefix tuning.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::tanh;

/// What the virtual tokens of a [`PromptEncoder`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptKind {
    /// Prompt tuning: token embeddings prepended to the input embeddings.
    #[default]
    Prompt,
    /// Prefix tuning: per-layer key/value vectors prepended inside every attention layer.
    Prefix,
}

/// Prefix tuning's optional MLP reparameterisation: `Linear(E→H) → tanh → Linear(H→2·layers·E)`.
#[derive(Module, Debug)]
pub struct PrefixProjection {
    /// `[E, H]`.
    pub input: Linear,
    /// `[H, 2·layers·E]`.
    pub output: Linear,
}

/// Learned virtual tokens (HF PEFT's `prompt_encoder`), owned by the text encoder they adapt so
/// they travel with it through burn's optimizers and stores (path `prompt_encoder.embedding.weight`).
///
/// - Prompt tuning: `embedding` is `[n, E]`, prepended to the token embeddings.
/// - Prefix tuning without projection: `embedding` is `[n, 2·layers·E]`, split per layer into
///   keys (index `2l`) and values (`2l + 1`), PEFT's layout.
/// - Prefix tuning with projection: `embedding` is `[n, E]`, passed through [`PrefixProjection`].
#[derive(Module, Debug)]
pub struct PromptEncoder {
    /// Virtual-token table.
    pub embedding: Embedding,
    /// Optional prefix MLP.
    pub transform: Option<PrefixProjection>,
    /// Prompt or prefix.
    #[module(skip)]
    pub kind: PromptKind,
}

impl PromptEncoder {
    /// A prompt-tuning encoder of `n` tokens of width `embed_dim`, initialised N(0, 1) like
    /// `torch.nn.Embedding` (PEFT's `random` init).
    pub fn prompt(n: usize, embed_dim: usize, device: &Device) -> Self {
        let embedding = EmbeddingConfig::new(n, embed_dim).init(device);
        Self {
            embedding,
            transform: None,
            kind: PromptKind::Prompt,
        }
    }

    /// A prefix-tuning encoder of `n` tokens for `layers` layers of width `embed_dim`, with the
    /// MLP reparameterisation when `projection_hidden` is set.
    pub fn prefix(
        n: usize,
        layers: usize,
        embed_dim: usize,
        projection_hidden: Option<usize>,
        device: &Device,
    ) -> Self {
        let out = 2 * layers * embed_dim;
        let (width, transform) = match projection_hidden {
            None => (out, None),
            Some(hidden) => {
                let linear = |d_in: usize, d_out: usize| {
                    let bound = 1.0 / (d_in as f64).sqrt();
                    LinearConfig::new(d_in, d_out)
                        .with_initializer(Initializer::Uniform {
                            min: -bound,
                            max: bound,
                        })
                        .init(device)
                };
                let projection = PrefixProjection {
                    input: linear(embed_dim, hidden),
                    output: linear(hidden, out),
                };
                (embed_dim, Some(projection))
            }
        };
        let embedding = EmbeddingConfig::new(n, width).init(device);
        Self {
            embedding,
            transform,
            kind: PromptKind::Prefix,
        }
    }

    /// Number of virtual tokens.
    pub fn num_virtual_tokens(&self) -> usize {
        self.embedding.weight.lazy_shape()[0]
    }

    /// The virtual-token values after the optional projection (what PEFT saves as
    /// `prompt_embeddings`).
    ///
    /// # Shapes
    /// - output `[n, E]` (prompt) or `[n, 2·layers·E]` (prefix).
    pub fn values(&self) -> Tensor<2> {
        let table = self.embedding.weight.val();
        match &self.transform {
            None => table,
            Some(mlp) => mlp.output.forward(tanh(mlp.input.forward(table))),
        }
    }

    /// Per-layer prefix keys and values for one sequence.
    ///
    /// # Shapes
    /// - output: `layers` pairs of `[1, heads, n, head_dim]` (key, value).
    pub fn prefix_key_values(
        &self,
        layers: usize,
        heads: usize,
        head_dim: usize,
    ) -> Vec<(Tensor<4>, Tensor<4>)> {
        let n = self.num_virtual_tokens();
        let kv = self
            .values()
            .reshape([n, 2 * layers, heads, head_dim])
            .permute([1, 2, 0, 3]);
        (0..layers)
            .map(|layer| {
                let pick = |i: usize| kv.clone().narrow(0, i, 1).reshape([1, heads, n, head_dim]);
                (pick(2 * layer), pick(2 * layer + 1))
            })
            .collect()
    }
}

/// Prompt-tuning virtual tokens (if `prompt` is one) before the embeddings, counted as real.
///
/// # Shapes
/// - `embeddings`: `[B, L, E]`, `mask`: `[B, L]`; output `[B, P + L, E]`, `[B, P + L]`.
pub fn prepend_prompt(
    prompt: Option<&PromptEncoder>,
    embeddings: Tensor<3>,
    mask: Tensor<2, Int>,
) -> (Tensor<3>, Tensor<2, Int>) {
    let Some(prompt) = prompt.filter(|p| p.kind == PromptKind::Prompt) else {
        return (embeddings, mask);
    };
    let [batch, _, embed] = embeddings.dims();
    let n = prompt.num_virtual_tokens();
    let virtual_tokens = prompt
        .values()
        .unsqueeze_dim::<3>(0)
        .expand([batch, n, embed]);
    let ones = Tensor::<2, Int>::ones([batch, n], &mask.device());
    (
        Tensor::cat(vec![virtual_tokens, embeddings], 1),
        Tensor::cat(vec![ones, mask], 1),
    )
}
