//! MedCLIP's semantic-matching loss (Wang et al., EMNLP 2022): soft targets from label overlap.
//!
//! `L = exp(s)·img·txtᵀ` with `s` clamped to `[0, ln 100]`; `S = labels_img·labels_txtᵀ`;
//! loss `= ½[CE_soft(L, softmax_row(S)) + CE_soft(Lᵀ, softmax_row(Sᵀ))]`
//! (MedCLIP `medclip/losses.py`, `ImageTextContrastiveLoss`). Images whose findings match a text
//! are no longer false negatives.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use cleft_core::{ContrastiveObjective, LocalRows, ObjectiveOutput, PairLabels};
use serde::{Deserialize, Serialize};

use crate::common::{block_logits, diagonal_accuracy, diagonal_cross_entropy, soft_cross_entropy};
use crate::registration::register_objective;

/// `[objective] type = "medclip"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MedClipLossConfig {
    /// Initial logit scale (MedCLIP: ln(1/0.07)).
    pub init_logit_scale: f64,
    /// Upper clamp of the logit scale (MedCLIP: ln 100); the lower clamp is 0.
    pub max_logit_scale: f64,
    /// Data-parallel training: whether every replica's embeddings are negatives of the loss
    /// (the global batch, open_clip's gathered loss); unset = on when there are several replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gather: Option<bool>,
}

impl Default for MedClipLossConfig {
    fn default() -> Self {
        Self {
            init_logit_scale: (1.0f64 / 0.07).ln(),
            max_logit_scale: 100f64.ln(),
            gather: None,
        }
    }
}

/// The MedCLIP soft-target objective.
#[derive(Module, Debug)]
pub struct MedClipLoss {
    /// Log inverse temperature, `[1]`.
    pub logit_scale: Param<Tensor<1>>,
    #[module(skip)]
    max_logit_scale: f64,
}

impl MedClipLoss {
    /// Builds the objective on `device`.
    pub fn init(config: &MedClipLossConfig, device: &Device) -> Self {
        Self {
            logit_scale: Param::from_tensor(Tensor::from_floats(
                [config.init_logit_scale as f32],
                device,
            )),
            max_logit_scale: config.max_logit_scale,
        }
    }

    fn scale(&self) -> Tensor<1> {
        self.logit_scale
            .val()
            .clamp(0.0, self.max_logit_scale)
            .exp()
    }
}

impl ContrastiveObjective for MedClipLoss {
    /// Without labels the targets fall back to the diagonal (plain symmetric InfoNCE, averaged).
    fn forward(
        &self,
        image: Tensor<2>,
        text: Tensor<2>,
        labels: Option<PairLabels>,
    ) -> ObjectiveOutput {
        self.forward_local(LocalRows::whole(image, text, labels))
    }

    /// The block's rows of `S` (and of `Sᵀ`) give the rows' soft targets: each row's softmax
    /// needs only that row.
    fn forward_local(&self, rows: LocalRows) -> ObjectiveOutput {
        let (image_logits, text_logits) = block_logits(&rows, self.scale());
        let loss = match &rows.labels {
            Some(labels) => {
                let range = rows.range();
                let image_targets = labels
                    .image
                    .clone()
                    .slice([range.clone()])
                    .matmul(labels.text.clone().transpose());
                let text_targets = labels
                    .text
                    .clone()
                    .slice([range])
                    .matmul(labels.image.clone().transpose());
                let image_loss =
                    soft_cross_entropy(image_logits.clone(), softmax(image_targets, 1));
                let text_loss = soft_cross_entropy(text_logits, softmax(text_targets, 1));
                (image_loss + text_loss) / 2.0
            }
            None => {
                (diagonal_cross_entropy(image_logits.clone(), rows.offset)
                    + diagonal_cross_entropy(text_logits, rows.offset))
                    / 2.0
            }
        };
        let accuracy = diagonal_accuracy(image_logits, rows.offset);
        let scale = self
            .logit_scale
            .val()
            .detach()
            .clamp(0.0, self.max_logit_scale);
        ObjectiveOutput {
            loss,
            metrics: vec![("i2t_acc".into(), accuracy), ("logit_scale".into(), scale)],
        }
    }

    fn logit_scale(&self) -> Tensor<1> {
        self.scale()
    }
}

register_objective!(
    "medclip",
    "MedCLIP semantic matching: soft targets from label overlap, clamped learnable logit scale",
    MedClipLossConfig,
    |config, device| MedClipLoss::init(config, device)
);
