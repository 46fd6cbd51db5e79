//! The composed CLIP-style model: vision and text encoders, projections, objective.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Int;

use crate::bridge::Component;
use crate::config::ExperimentConfig;
use crate::error::Result;
use crate::objective::{ContrastiveObjective, ObjectiveOutput, PairLabels};
use crate::text::TextEncoder;
use crate::vision::VisionEncoder;

/// Vision encoder → projection, text encoder (+ PEFT) → projection, and the objective.
///
/// Parameter paths: `vision.…`, `text.…`, `vision_projection.{weight,bias}`,
/// `text_projection.{weight,bias}`, `objective.…` (e.g. `objective.logit_scale`).
#[derive(Module, Debug)]
pub struct ClipModel {
    /// Image encoder.
    pub vision: Component<dyn VisionEncoder>,
    /// Text encoder, possibly with a PEFT adapter injected.
    pub text: Component<dyn TextEncoder>,
    /// `Linear(vision.dim() → projection.dim)`.
    pub vision_projection: Linear,
    /// `Linear(text.dim() → projection.dim)`.
    pub text_projection: Linear,
    /// The contrastive loss with its learnable logit scale.
    pub objective: Component<dyn ContrastiveObjective>,
}

/// Divides each row by its L2 norm.
///
/// # Shapes
/// - `x`: `[B, D]`; output `[B, D]`.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

impl ClipModel {
    /// Builds the model and initialises every parameter from `derive_seed(seed, path)`: the
    /// same config and seed give bit-identical weights, whatever else runs in the process.
    /// Pretrained weights loaded by a component are kept as loaded.
    pub fn build_seeded(config: &ExperimentConfig, device: &Device, seed: u64) -> Result<Self> {
        let model = Self::build(config, device)?;
        crate::random::initialize_seeded(&model, seed);
        Ok(model)
    }

    /// Builds every component from `config` on `device` (PEFT applied to the text encoder).
    pub fn build(config: &ExperimentConfig, device: &Device) -> Result<Self> {
        let adapter = config.peft.as_ref().map(|peft| peft.build()).transpose()?;
        Self::build_with_adapter(config, adapter.as_deref(), device)
    }

    /// Builds every component from `config` on `device`, tuning the text encoder with `adapter`
    /// (already built, e.g. kept by an experiment for export) instead of building it again.
    pub fn build_with_adapter(
        config: &ExperimentConfig,
        adapter: Option<&dyn crate::peft::PeftAdapter>,
        device: &Device,
    ) -> Result<Self> {
        let vision = config.vision.build(device)?;
        let mut text = config.text.build(device)?;
        if let Some(adapter) = adapter {
            text = adapter.apply(text)?;
        }
        let projection = |d_in| {
            LinearConfig::new(d_in, config.projection.dim)
                .with_bias(config.projection.bias)
                .init(device)
        };
        Ok(Self {
            vision_projection: projection(vision.dim()),
            text_projection: projection(text.dim()),
            vision,
            text,
            objective: config.objective.build(device)?,
        })
    }

    /// Projected, L2-normalised image embeddings.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`; output `[B, P]`.
    pub fn encode_images(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.vision.forward(images).pooled;
        l2_normalize(self.vision_projection.forward(features))
    }

    /// Projected, L2-normalised text embeddings from token ids.
    ///
    /// # Shapes
    /// - `ids`, `mask`: `[B, L]`; output `[B, P]`.
    pub fn encode_token_ids(&self, ids: Tensor<2, Int>, mask: Tensor<2, Int>) -> Tensor<2> {
        l2_normalize(self.text_projection.forward(self.text.forward(ids, mask)))
    }

    /// Tokenises (with the text encoder's tokenizer and its `max_len`) and encodes texts: for
    /// evaluation and inference, outside the training step.
    ///
    /// # Shapes
    /// - output `[texts.len(), P]`.
    pub fn encode_texts(&self, texts: &[String], device: &Device) -> Result<Tensor<2>> {
        let (ids, mask) = self
            .text
            .tokenizer()
            .encode_batch(texts, self.text.max_len())?
            .to_tensors(device);
        Ok(self.encode_token_ids(ids, mask))
    }

    /// Evaluates the objective on a batch of images and their tokenised captions: tensors in,
    /// tensors out (tokenising happens in the loader).
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`; `ids`, `mask`: `[B, L]`; `labels`: `[B, K]`.
    pub fn forward(
        &self,
        images: Tensor<4>,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
        labels: Option<Tensor<2>>,
    ) -> ObjectiveOutput {
        let image = self.encode_images(images);
        let text = self.encode_token_ids(ids, mask);
        let labels = labels.map(|labels| PairLabels {
            image: labels.clone(),
            text: labels,
        });
        self.objective.forward(image, text, labels)
    }
}
