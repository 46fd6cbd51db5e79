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
}

crate::component_trait!(PromptLearner);
