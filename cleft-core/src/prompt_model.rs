//! [`PromptModel`]: a stage-1 model with a (learned) context prompt, used by stage-2 training
//! and by inference with the learned prompt.

use burn::prelude::*;
use burn::tensor::Int;

use crate::bridge::Component;
use crate::error::Result;
use crate::model::{ClipModel, l2_normalize};
use crate::prompt::PromptLearner;

/// A stage-1 model plus the prompt learner being trained.
#[derive(Module, Debug)]
pub struct PromptModel {
    /// The stage-1 model (text side frozen).
    pub clip: ClipModel,
    /// Learned context.
    pub prompt: Component<dyn PromptLearner>,
}

impl PromptModel {
    /// Projected, normalised embeddings of tokenised texts with the learned context prepended.
    ///
    /// # Shapes
    /// - `ids`, `mask`: `[K, L]`; output `[K, P]`.
    pub fn encode_ids_with_context(&self, ids: Tensor<2, Int>, mask: Tensor<2, Int>) -> Tensor<2> {
        let text = &self.clip.text;
        let leading = text.tokenizer().leading_special_tokens();
        let (embeddings, mask) = self
            .prompt
            .combine_after(text.embed_tokens(ids), mask, leading);
        l2_normalize(
            self.clip
                .text_projection
                .forward(text.forward_embeddings(embeddings, mask)),
        )
    }

    /// Tokenises `texts` (the text encoder's tokenizer and `max_len`) and encodes them with the
    /// learned context: for evaluation, outside the training step.
    ///
    /// # Shapes
    /// - output `[texts.len(), P]`.
    pub fn encode_with_context(&self, texts: &[String], device: &Device) -> Result<Tensor<2>> {
        let (ids, mask) = self.class_tokens(texts, device)?;
        Ok(self.encode_ids_with_context(ids, mask))
    }

    /// `texts` tokenised once for repeated use (the paper recipe's class prompts).
    ///
    /// # Shapes
    /// - output: ids and mask `[texts.len(), L]`.
    pub fn class_tokens(
        &self,
        texts: &[String],
        device: &Device,
    ) -> Result<(Tensor<2, Int>, Tensor<2, Int>)> {
        let text = &self.clip.text;
        Ok(text
            .tokenizer()
            .encode_batch(texts, text.max_len())?
            .to_tensors(device))
    }
}
