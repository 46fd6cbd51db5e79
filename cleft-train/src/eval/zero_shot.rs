//! Zero-shot classification: class prompts encoded once, images scored by scaled cosine.

use burn::prelude::*;
use serde::Serialize;

use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;

use super::features::{encode_images, single_label};
use super::metrics::{ClassificationMetrics, classification_metrics};

// The pure model computations live in cleft-core (shared with inference).
pub use cleft_core::inference::zero_shot::{
    class_prompts, configured_class_embeddings, ensemble_class_embeddings, zero_shot_scores,
};

/// Zero-shot results in the spirit of CLIP_benchmark's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ZeroShotReport {
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Prompts used, one per class (with several ensembled templates: the first template's,
    /// the others listed in the evaluation report).
    pub prompts: Vec<String>,
    /// Number of images scored (those with exactly one positive label).
    pub images: usize,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Macro-averaged one-vs-rest ROC AUC.
    pub macro_auc: f64,
    /// Accuracy of a uniform random guess, `1 / classes`.
    pub chance: f64,
    /// Every metric: balanced accuracy, macro F1, per-class table, confusion matrix.
    pub metrics: ClassificationMetrics,
    /// Softmax scores `[images][classes]` (for ROC curves; not serialised).
    #[serde(skip)]
    pub scores: Vec<Vec<f32>>,
    /// True class of each scored image (not serialised).
    #[serde(skip)]
    pub targets: Vec<usize>,
}

impl ZeroShotReport {
    /// The report of softmax `scores` against `targets`.
    pub fn from_scores(
        classes: Vec<String>,
        prompts: Vec<String>,
        scores: Vec<Vec<f32>>,
        targets: Vec<usize>,
    ) -> Self {
        let metrics = classification_metrics(&scores, &targets, &classes);
        Self {
            chance: 1.0 / classes.len().max(1) as f64,
            accuracy: metrics.accuracy,
            macro_auc: metrics.macro_auc,
            images: targets.len(),
            classes,
            prompts,
            metrics,
            scores,
            targets,
        }
    }
}

/// Scores every single-label image of `dataset` against one prompt per class.
///
/// `template` contains `{}`, replaced by the lower-cased class name; prompts are tokenised with
/// the text encoder's tokenizer and `max_len`. Images whose labels do not have exactly one
/// positive are skipped (as in CheXpert-5x200); none left is an error.
pub fn zero_shot(
    model: &ClipModel,
    dataset: &dyn ImageTextDataset,
    template: &str,
    batch_size: usize,
    device: &Device,
) -> Result<ZeroShotReport> {
    let prompts = class_prompts(template, &dataset.label_names())?;
    let class_embeddings = model.encode_texts(&prompts, device)?;
    zero_shot_with(
        model,
        dataset,
        class_embeddings,
        prompts,
        batch_size,
        device,
    )
}

/// Zero-shot scoring against precomputed class embeddings `[K, P]` (e.g. from learned prompts);
/// `prompts` describes them in the report.
pub fn zero_shot_with(
    model: &ClipModel,
    dataset: &dyn ImageTextDataset,
    class_embeddings: Tensor<2>,
    prompts: Vec<String>,
    batch_size: usize,
    device: &Device,
) -> Result<ZeroShotReport> {
    let selection = single_label(dataset)?;
    if selection.indices.is_empty() {
        return Err(CleftError::Data(
            "zero-shot: no image has exactly one positive label".into(),
        ));
    }
    let features = encode_images(model, dataset, &selection.indices, batch_size, device)?;
    let scores = zero_shot_scores(
        model,
        &features.projected,
        features.projected_dim,
        class_embeddings,
        device,
    )?;
    Ok(ZeroShotReport::from_scores(
        dataset.label_names(),
        prompts,
        scores,
        selection.targets,
    ))
}
