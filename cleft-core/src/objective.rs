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

    /// This replica's share of the loss of a global batch split over replicas (open_clip's
    /// `local_loss` form): the terms of rows `offset..offset + rows` of the similarity matrix
    /// and of its transpose, averaged over those rows, so that the mean over the replicas of
    /// this loss is [`forward`](Self::forward) of the global batch, in value and in gradient.
    /// Each replica then computes a `[b, B]` block instead of the whole `[B, B]` matrix.
    ///
    /// The default returns [`forward`](Self::forward) of the whole global batch (every replica
    /// computes the whole matrix: correct for any objective, without the saving); the built-in
    /// objectives compute their block only.
    ///
    /// # Shapes
    /// - `rows.all_image`, `rows.all_text`: `[B, D]`; `rows.labels`: `[B, K]` each.
    /// - output: scalar loss `[1]`.
    fn forward_local(&self, rows: LocalRows) -> ObjectiveOutput {
        self.forward(rows.all_image, rows.all_text, rows.labels)
    }

    /// Multiplier applied to cosine similarities at inference (`exp(logit_scale)`), `[1]`.
    fn logit_scale(&self) -> Tensor<1>;
}

/// A replica's rows of a global batch, with every replica's embeddings (the negatives), for
/// [`ContrastiveObjective::forward_local`].
#[derive(Debug, Clone)]
pub struct LocalRows {
    /// Image embeddings of the global batch, every replica's rows in rank order, `[B, D]`.
    pub all_image: Tensor<2>,
    /// Text embeddings of the global batch, `[B, D]`; row `i` is the positive of image `i`.
    pub all_text: Tensor<2>,
    /// Finding labels of the global batch, `[B, K]` each.
    pub labels: Option<PairLabels>,
    /// First global row of this replica.
    pub offset: usize,
    /// Number of rows of this replica, `b` (`offset + rows <= B`).
    pub rows: usize,
}

impl LocalRows {
    /// The whole batch as one block (a single device): `offset = 0`, `rows = B`.
    ///
    /// # Shapes
    /// - `image`, `text`: `[B, D]`; `labels`: `[B, K]` each.
    pub fn whole(image: Tensor<2>, text: Tensor<2>, labels: Option<PairLabels>) -> Self {
        let rows = image.dims()[0];
        Self {
            all_image: image,
            all_text: text,
            labels,
            offset: 0,
            rows,
        }
    }

    /// The global rows of this block, `offset..offset + rows`.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.rows
    }

    /// This block's image embeddings, `[b, D]`.
    pub fn image(&self) -> Tensor<2> {
        self.all_image.clone().slice([self.range()])
    }

    /// This block's text embeddings, `[b, D]`.
    pub fn text(&self) -> Tensor<2> {
        self.all_text.clone().slice([self.range()])
    }
}

crate::component_trait!(ContrastiveObjective);
