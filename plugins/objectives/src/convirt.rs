//! ConVIRT's loss (Zhang et al., 2020): a λ-weighted sum of the image→text and text→image
//! InfoNCE terms at a fixed temperature τ.
//!
//! `sim = cos(img, txt) / τ`; loss `= λ·CE(sim, arange) + (1−λ)·CE(simᵀ, arange)`.

use burn::module::{Module, Param};
use burn::prelude::*;
use cleft_core::{CleftError, ContrastiveObjective, LocalRows, ObjectiveOutput, PairLabels};
use serde::{Deserialize, Serialize};

use crate::common::{block_logits, diagonal_accuracy, diagonal_cross_entropy};
use crate::registration::register_objective;

/// `[objective] type = "convirt"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvirtLossConfig {
    /// Weight λ of the image→text term (ConVIRT: 0.75).
    pub lambda: f64,
    /// Temperature τ (ConVIRT: 0.1).
    pub temperature: f64,
    /// Data-parallel training: whether every replica's embeddings are negatives of the loss
    /// (the global batch, open_clip's gathered loss); unset = on when there are several replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gather: Option<bool>,
}

impl Default for ConvirtLossConfig {
    fn default() -> Self {
        Self {
            lambda: 0.75,
            temperature: 0.1,
            gather: None,
        }
    }
}

/// The ConVIRT objective (nothing learnable).
#[derive(Module, Debug)]
pub struct ConvirtLoss {
    /// `1/τ`, `[1]`, frozen (a parameter only so that it follows the model across devices).
    pub inverse_temperature: Param<Tensor<1>>,
    #[module(skip)]
    lambda: f64,
}

impl ConvirtLoss {
    /// Builds the objective on `device`; λ must lie in `[0, 1]` and τ be positive.
    pub fn init(config: &ConvirtLossConfig, device: &Device) -> Result<Self, CleftError> {
        if !(0.0..=1.0).contains(&config.lambda) || config.temperature <= 0.0 {
            return Err(CleftError::Invalid(format!(
                "objective.lambda = {} must lie in [0, 1] and objective.temperature = {} be positive",
                config.lambda, config.temperature
            )));
        }
        let inverse_temperature = Tensor::from_floats([(1.0 / config.temperature) as f32], device);
        Ok(Self {
            inverse_temperature: Param::from_tensor(inverse_temperature).set_require_grad(false),
            lambda: config.lambda,
        })
    }
}

impl ContrastiveObjective for ConvirtLoss {
    fn forward(
        &self,
        image: Tensor<2>,
        text: Tensor<2>,
        labels: Option<PairLabels>,
    ) -> ObjectiveOutput {
        self.forward_local(LocalRows::whole(image, text, labels))
    }

    fn forward_local(&self, rows: LocalRows) -> ObjectiveOutput {
        let (image_logits, text_logits) = block_logits(&rows, self.inverse_temperature.val());
        let image_to_text = diagonal_cross_entropy(image_logits.clone(), rows.offset);
        let text_to_image = diagonal_cross_entropy(text_logits, rows.offset);
        let loss = image_to_text * self.lambda + text_to_image * (1.0 - self.lambda);
        ObjectiveOutput {
            loss,
            metrics: vec![(
                "i2t_acc".into(),
                diagonal_accuracy(image_logits, rows.offset),
            )],
        }
    }

    fn logit_scale(&self) -> Tensor<1> {
        self.inverse_temperature.val()
    }
}

register_objective!(
    "convirt",
    "ConVIRT: lambda-weighted image->text / text->image InfoNCE at fixed temperature",
    ConvirtLossConfig,
    |config, device| ConvirtLoss::init(config, device)?
);
