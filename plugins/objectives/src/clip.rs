//! CLIP's symmetric InfoNCE loss with a learnable logit scale.
//!
//! CLEFT (reference code): `s = exp(logit_scale)·img·txtᵀ`, loss `CE(s, arange) + CE(sᵀ, arange)`
//! summed, logit scale initialised at `ln(1/0.07)` and not clamped. open_clip averages the two
//! terms and clamps the scale at 100.

use burn::module::{Module, Param};
use burn::prelude::*;
use cleft_core::{ContrastiveObjective, LocalRows, ObjectiveOutput, PairLabels};
use serde::{Deserialize, Serialize};

use crate::common::{block_logits, diagonal_accuracy, diagonal_cross_entropy};
use crate::registration::register_objective;

/// How the image→text and text→image terms are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// `CE(s) + CE(sᵀ)` (CLEFT).
    Sum,
    /// `(CE(s) + CE(sᵀ)) / 2` (open_clip).
    Mean,
}

/// `[objective] type = "clip"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipLossConfig {
    /// Term combination.
    pub reduction: Reduction,
    /// Initial logit scale (log of the inverse temperature).
    pub init_logit_scale: f64,
    /// Clamp the logit scale at this value (open_clip: ln 100); `None` = no clamp (CLEFT).
    pub max_logit_scale: Option<f64>,
    /// Whether the logit scale is trained.
    pub learnable: bool,
    /// Data-parallel training: whether every replica's embeddings are negatives of the loss
    /// (the global batch, open_clip's gathered loss); unset = on when there are several replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gather: Option<bool>,
}

impl Default for ClipLossConfig {
    fn default() -> Self {
        Self {
            reduction: Reduction::Sum,
            init_logit_scale: (1.0f64 / 0.07).ln(),
            max_logit_scale: None,
            learnable: true,
            gather: None,
        }
    }
}

/// The CLIP InfoNCE objective.
#[derive(Module, Debug)]
pub struct ClipInfoNce {
    /// Log inverse temperature, `[1]`.
    pub logit_scale: Param<Tensor<1>>,
    #[module(skip)]
    reduction: Reduction,
    #[module(skip)]
    max_logit_scale: Option<f64>,
}

impl ClipInfoNce {
    /// Builds the objective on `device`.
    pub fn init(config: &ClipLossConfig, device: &Device) -> Self {
        let scale = Param::from_tensor(Tensor::from_floats(
            [config.init_logit_scale as f32],
            device,
        ));
        Self {
            logit_scale: if config.learnable {
                scale
            } else {
                scale.set_require_grad(false)
            },
            reduction: config.reduction,
            max_logit_scale: config.max_logit_scale,
        }
    }

    fn clamped_scale(&self) -> Tensor<1> {
        let scale = self.logit_scale.val();
        match self.max_logit_scale {
            Some(max) => scale.clamp_max(max),
            None => scale,
        }
    }
}

impl ContrastiveObjective for ClipInfoNce {
    fn forward(
        &self,
        image: Tensor<2>,
        text: Tensor<2>,
        labels: Option<PairLabels>,
    ) -> ObjectiveOutput {
        self.forward_local(LocalRows::whole(image, text, labels))
    }

    fn forward_local(&self, rows: LocalRows) -> ObjectiveOutput {
        let scale = self.clamped_scale();
        let (image_logits, text_logits) = block_logits(&rows, scale.clone().exp());
        let image_to_text = diagonal_cross_entropy(image_logits.clone(), rows.offset);
        let text_to_image = diagonal_cross_entropy(text_logits, rows.offset);
        let loss = match self.reduction {
            Reduction::Sum => image_to_text + text_to_image,
            Reduction::Mean => (image_to_text + text_to_image) / 2.0,
        };
        let accuracy = diagonal_accuracy(image_logits, rows.offset);
        ObjectiveOutput {
            loss,
            metrics: vec![
                ("i2t_acc".into(), accuracy),
                ("logit_scale".into(), scale.detach()),
            ],
        }
    }

    fn logit_scale(&self) -> Tensor<1> {
        self.clamped_scale().exp()
    }
}

register_objective!(
    "clip",
    "CLIP symmetric InfoNCE, sum (CLEFT) or mean (open_clip), learnable logit scale",
    ClipLossConfig,
    |config, device| ClipInfoNce::init(config, device)
);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use cleft_testing::Tolerance;

    fn loss(reduction: Reduction, image: &[[f32; 2]], text: &[[f32; 2]], scale: f64) -> f64 {
        let device = Device::flex();
        let config = ClipLossConfig {
            reduction,
            init_logit_scale: scale,
            ..Default::default()
        };
        let objective = ClipInfoNce::init(&config, &device);
        let to_tensor = |rows: &[[f32; 2]]| {
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), 2]), &device)
        };
        objective
            .forward(to_tensor(image), to_tensor(text), None)
            .loss
            .into_scalar::<f64>()
    }

    /// Hand-computed: with unit vectors at 0° and 90° and scale exp(0) = 1, every row of the
    /// logits is `[1, 0]` or `[0, 1]` with the positive on the diagonal, so each CE term is
    /// `ln(1 + e^-1)`.
    #[test]
    fn orthogonal_pairs_match_the_closed_form() {
        let pairs = [[1.0, 0.0], [0.0, 1.0]];
        let term = (1.0 + (-1.0f64).exp()).ln();
        let close = |what: &str, actual: f64, expected: f64| {
            Tolerance::f32_ops().check(what, &[actual as f32], &[expected as f32]);
        };
        close("sum", loss(Reduction::Sum, &pairs, &pairs, 0.0), 2.0 * term);
        close("mean", loss(Reduction::Mean, &pairs, &pairs, 0.0), term);
    }

    /// Identical embeddings for every sample carry no signal: each CE is `ln B`.
    #[test]
    fn indistinguishable_pairs_give_log_batch() {
        let same = [[0.6, 0.8]; 4];
        let actual = loss(Reduction::Sum, &same, &same, 2.0) as f32;
        Tolerance::f32_ops().check("2 ln 4", &[actual], &[(2.0 * 4f64.ln()) as f32]);
    }
}
