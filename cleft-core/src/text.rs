//! The [`TextEncoder`] component trait and the tokenizer interface it exposes.

use std::fmt;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use crate::bridge::DynModule;
use crate::error::CleftError;
use crate::peft::hooks::PeftHooks;

/// Token ids and attention mask for a batch of texts, right-padded.
///
/// `mask[b][t] = 1` for real tokens, `0` for padding. Tokenizers used with CLEFT pooling always
/// leave at least one padding (EOS) position after the last real token, so that position exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Row-major ids, `batch * len` entries.
    pub ids: Vec<i64>,
    /// Row-major mask, `batch * len` entries of 0/1.
    pub mask: Vec<i64>,
    /// Number of sequences `B`.
    pub batch: usize,
    /// Padded length `L`.
    pub len: usize,
}

impl TokenBatch {
    /// Right-pads token rows to `len` with `pad_id`; the mask marks the row's own tokens.
    ///
    /// # Shapes
    /// - output: `[rows.len(), len]` (`len` must be at least the longest row).
    pub fn right_padded(rows: &[Vec<u32>], len: usize, pad_id: u32) -> Self {
        let mut batch = Self {
            ids: Vec::new(),
            mask: Vec::new(),
            batch: rows.len(),
            len,
        };
        for row in rows {
            for position in 0..len {
                let real = row.get(position);
                batch.ids.push(i64::from(real.copied().unwrap_or(pad_id)));
                batch.mask.push(i64::from(real.is_some()));
            }
        }
        batch
    }

    /// Moves the batch to tensors on `device`.
    ///
    /// # Shapes
    /// - output: ids `[B, L]`, mask `[B, L]` (1 = real token).
    pub fn to_tensors(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let shape = [self.batch, self.len];
        let ids = Tensor::from_data(TensorData::new(self.ids.clone(), shape), device);
        let mask = Tensor::from_data(TensorData::new(self.mask.clone(), shape), device);
        (ids, mask)
    }
}

/// Turns texts into token ids. Implemented by text-encoder plugins (e.g. over the `tokenizers`
/// crate); not a module, so it holds no trainable state.
pub trait TextTokenizer: Send + Sync + fmt::Debug {
    /// Tokenises `texts` into one right-padded batch of at most `max_len` real tokens per row
    /// (plus the pad/EOS position used for pooling).
    fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<TokenBatch, CleftError>;
    /// Vocabulary size.
    fn vocab_size(&self) -> usize;
    /// Special tokens every encoded text starts with (a BOS id, BERT's `[CLS]`): a learned
    /// context is inserted after them. Default: none.
    fn leading_special_tokens(&self) -> usize {
        0
    }
}

/// How a text encoder turns token states into one feature per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPooling {
    /// CLEFT: the hidden state at the first pad/EOS position after the last real token.
    FirstPad,
    /// The hidden state of the last real token.
    LastToken,
    /// Mean over real tokens.
    Mean,
    /// The first token (BERT's `[CLS]`).
    Cls,
}

/// A text encoder: token ids + mask `[B, L]` (or input embeddings `[B, L, E]`) → pooled `[B, D]`.
///
/// Exposes its tokenizer and token-embedding table so prompt learners and PEFT adapters can work
/// at the embedding level.
pub trait TextEncoder: DynModule {
    /// Encodes input embeddings (token embeddings, possibly with learned prompt vectors inside).
    ///
    /// # Shapes
    /// - `embeddings`: `[B, L, E]` with `E = self.embed_dim()`.
    /// - `mask`: `[B, L]`, 1 for positions that may be attended to, 0 for padding.
    /// - output: `[B, D]` with `D = self.dim()`.
    fn forward_embeddings(&self, embeddings: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2>;

    /// Looks up token embeddings.
    ///
    /// # Shapes
    /// - `ids`: `[B, L]`; output: `[B, L, E]`.
    fn embed_tokens(&self, ids: Tensor<2, Int>) -> Tensor<3>;

    /// Encodes token ids.
    ///
    /// # Shapes
    /// - `ids`, `mask`: `[B, L]`; output: `[B, D]`.
    fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Int>) -> Tensor<2> {
        self.forward_embeddings(self.embed_tokens(ids), mask)
    }

    /// Output feature dimension `D`.
    fn dim(&self) -> usize;

    /// Token-embedding dimension `E`.
    fn embed_dim(&self) -> usize;

    /// Number of transformer layers (PEFT adapters that act per layer use it).
    fn num_layers(&self) -> usize;

    /// The tokenizer matching this encoder's vocabulary.
    fn tokenizer(&self) -> Arc<dyn TextTokenizer>;

    /// Maximum number of real tokens per text.
    fn max_len(&self) -> usize;

    /// The injection points this encoder offers to PEFT adapters; `None` (the default) makes
    /// every adapter fail with a clear error.
    fn peft_hooks(&self) -> Option<&dyn PeftHooks> {
        None
    }

    /// Mutable access to the PEFT injection points (see [`peft_hooks`](Self::peft_hooks)).
    fn peft_hooks_mut(&mut self) -> Option<&mut dyn PeftHooks> {
        None
    }
}

crate::component_trait!(TextEncoder);

/// Pools token states `[B, L, D]` into `[B, D]` according to `pooling` and the mask `[B, L]`.
///
/// `FirstPad` selects index `sum(mask[b])`, i.e. the first position after the last real token
/// (right padding); callers must guarantee `L > sum(mask[b])`.
///
/// # Shapes
/// - `states`: `[B, L, D]`; `mask`: `[B, L]` (1 = real); output `[B, D]`.
pub fn pool_tokens(states: Tensor<3>, mask: Tensor<2, Int>, pooling: TextPooling) -> Tensor<2> {
    let [batch, _len, dim] = states.dims();
    let gather_at = |index: Tensor<1, Int>| {
        let index = index.reshape([batch, 1, 1]).expand([batch, 1, dim]);
        states.clone().gather(1, index).reshape([batch, dim])
    };
    match pooling {
        TextPooling::FirstPad => gather_at(mask.sum_dim(1).reshape([batch])),
        TextPooling::LastToken => gather_at(mask.sum_dim(1).reshape([batch]) - 1),
        TextPooling::Cls => states.slice([0..batch, 0..1]).reshape([batch, dim]),
        TextPooling::Mean => {
            let weights = mask.float().unsqueeze_dim::<3>(2);
            let summed = (states * weights.clone()).sum_dim(1).reshape([batch, dim]);
            summed / weights.sum_dim(1).reshape([batch, 1]).clamp_min(1.0)
        }
    }
}
