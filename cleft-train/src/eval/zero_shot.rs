//! Zero-shot classification: class prompts encoded once, images scored by scaled cosine.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::Serialize;

use cleft_core::config::EvalConfig;
use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::{ClipModel, l2_normalize};

use super::features::{encode_images, read_back, single_label};
use super::metrics::{ClassificationMetrics, classification_metrics};

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

/// `template` with `{}` replaced by each lower-cased class name; a template without `{}` is an
/// error (every class would get the same prompt).
pub fn class_prompts(template: &str, classes: &[String]) -> Result<Vec<String>> {
    if !template.contains("{}") {
        return Err(CleftError::Config(format!(
            "zero-shot template {template:?} has no `{{}}` for the class name"
        )));
    }
    Ok(classes
        .iter()
        .map(|name| template.replace("{}", &name.to_lowercase()))
        .collect())
}

/// Class embeddings `[K, P]` from several templates: each template's normalised class
/// embeddings averaged over the templates and re-normalised (CLIP's prompt ensembling; one
/// template gives its embeddings unchanged).
pub fn ensemble_class_embeddings(
    model: &ClipModel,
    classes: &[String],
    templates: &[String],
    device: &Device,
) -> Result<Tensor<2>> {
    if let [only] = templates {
        return model.encode_texts(&class_prompts(only, classes)?, device);
    }
    let mut sum: Option<Tensor<2>> = None;
    for template in templates {
        let embeddings = model.encode_texts(&class_prompts(template, classes)?, device)?;
        sum = Some(match sum {
            Some(sum) => sum + embeddings,
            None => embeddings,
        });
    }
    let sum =
        sum.ok_or_else(|| CleftError::Config("zero-shot needs at least one template".into()))?;
    Ok(l2_normalize(sum))
}

/// The class embeddings `[K, P]` and the prompts (the first template's) that `eval` asks for:
/// every template ensembled when `eval.ensemble`, else the first template alone.
pub fn configured_class_embeddings(
    model: &ClipModel,
    classes: &[String],
    eval: &EvalConfig,
    device: &Device,
) -> Result<(Tensor<2>, Vec<String>)> {
    let templates = eval.effective_templates();
    let used = if eval.ensemble {
        &templates[..]
    } else {
        &templates[..1.min(templates.len())]
    };
    let embeddings = ensemble_class_embeddings(model, classes, used, device)?;
    Ok((embeddings, class_prompts(&templates[0], classes)?))
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

/// Softmax over classes of `exp(logit_scale) · cosine` for image embeddings `[N, P]` (row-major,
/// normalised) against class embeddings `[K, P]`.
pub fn zero_shot_scores(
    model: &ClipModel,
    image_embeddings: &[f32],
    dim: usize,
    class_embeddings: Tensor<2>,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let classes = class_embeddings.dims()[0];
    let rows = image_embeddings.len() / dim.max(1);
    let images: Tensor<2> = Tensor::from_data(
        TensorData::new(image_embeddings.to_vec(), [rows, dim]),
        device,
    );
    let scale = model.objective.logit_scale();
    let logits = images.matmul(class_embeddings.transpose()) * scale.unsqueeze();
    let probabilities = burn::tensor::activation::softmax(logits, 1);
    Ok(read_back(probabilities)?
        .chunks(classes.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}
