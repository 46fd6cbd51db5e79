//! The [`PromptLearner`] component trait: learned context tokens for class prompts.

use burn::prelude::*;
use burn::tensor::Int;

use crate::bridge::DynModule;

/// Learnable context embeddings that are combined with class-name token embeddings
/// (CoOp-style), producing the inputs a [`TextEncoder`](crate::TextEncoder) encodes.
pub trait PromptLearner: DynModule {
    /// Number of learned context tokens `N`.
    fn num_context_tokens(&self) -> usize;

    /// Combines the learned context with class-name token embeddings.
    ///
    /// # Shapes
    /// - `class_embeddings`: `[K, L, E]` token embeddings of the class names (right-padded).
    /// - `class_mask`: `[K, L]` (1 = real token).
    /// - output: embeddings `[K, N + L, E]` and mask `[K, N + L]`.
    fn combine(
        &self,
        class_embeddings: Tensor<3>,
        class_mask: Tensor<2, Int>,
    ) -> (Tensor<3>, Tensor<2, Int>);

    /// [`combine`](Self::combine) after the `leading` special tokens every text starts with (BOS,
    /// `[CLS]`; [`TextTokenizer::leading_special_tokens`](crate::TextTokenizer)): they stay first,
    /// as CoOp keeps SOS before its context, so first-token pooling and a model's BOS see what
    /// they were trained on.
    ///
    /// # Shapes
    /// - `class_embeddings`: `[K, L, E]`, `class_mask`: `[K, L]` with `L ≥ leading`; output
    ///   embeddings `[K, N + L, E]` and mask `[K, N + L]`, the context at positions
    ///   `leading..leading + N`.
    fn combine_after(
        &self,
        class_embeddings: Tensor<3>,
        class_mask: Tensor<2, Int>,
        leading: usize,
    ) -> (Tensor<3>, Tensor<2, Int>) {
        if leading == 0 {
            return self.combine(class_embeddings, class_mask);
        }
        let [classes, len, embed] = class_embeddings.dims();
        let lead = leading.min(len);
        let head = class_embeddings
            .clone()
            .slice([0..classes, 0..lead, 0..embed]);
        let head_mask = class_mask.clone().slice([0..classes, 0..lead]);
        let (rest, rest_mask) = self.combine(
            class_embeddings.slice([0..classes, lead..len, 0..embed]),
            class_mask.slice([0..classes, lead..len]),
        );
        (
            Tensor::cat(vec![head, rest], 1),
            Tensor::cat(vec![head_mask, rest_mask], 1),
        )
    }
}

crate::component_trait!(PromptLearner);
