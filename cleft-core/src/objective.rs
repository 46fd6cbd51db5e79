//! The [`ContrastiveObjective`] component trait: the image–text training loss.

use burn::prelude::*;

use crate::bridge::DynModule;

/// Loss and scalar diagnostics of one objective evaluation, all on the device: the trainer
/// reads them back once per log interval, not per step.
#[derive(Debug, Clone)]
pub struct ObjectiveOutput {
    /// Scalar loss, `[1]`.
    pub loss: Tensor<1>,
    /// Named scalar metrics (e.g. `i2t_acc`, `logit_scale`), each `[1]`, detached from the graph.
    pub metrics: Vec<(String, Tensor<1>)>,
}

/// Finding labels of the images and of the texts in a batch (multi-hot, `[B, K]` each).
///
/// In paired training both are the batch's labels; MedCLIP-style decoupled training may pair
/// images with texts of other studies, so the two can differ.
#[derive(Debug, Clone)]
pub struct PairLabels {
    /// Labels of the images, `[B, K]`.
    pub image: Tensor<2>,
    /// Labels of the texts, `[B, K]`.
    pub text: Tensor<2>,
}

/// A contrastive image–text objective owning its learnable temperature (logit scale).
///
/// Negatives are the columns of the similarity matrix: pass embeddings gathered from other
/// devices as `text` (and `image`) to use them as extra negatives.
pub trait ContrastiveObjective: DynModule {
    /// Computes the loss.
    ///
    /// # Shapes
    /// - `image`, `text`: `[B, D]`, L2-normalised embeddings; row `i` of each is a positive pair.
    /// - `labels`: optional multi-hot finding labels of images and texts, `[B, K]` each
    ///   (objectives with soft targets need them; others ignore them).
    /// - output: scalar loss `[1]`.
    fn forward(
        &self,
        image: Tensor<2>,
        text: Tensor<2>,
        labels: Option<PairLabels>,
    ) -> ObjectiveOutput;

    /// Multiplier applied to cosine similarities at inference (`exp(logit_scale)`), `[1]`.
    fn logit_scale(&self) -> Tensor<1>;
}

crate::component_trait!(ContrastiveObjective);
