//! Zero-shot classification: class prompts encoded once, images scored by scaled cosine.

use burn::prelude::*;
use serde::Serialize;

use cleft_core::data::{ImageTextDataset, collate};
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;

/// Zero-shot results in the spirit of CLIP_benchmark's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ZeroShotReport {
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Prompts used, one per class.
    pub prompts: Vec<String>,
    /// Number of images scored (those with exactly one positive label).
    pub images: usize,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Macro-averaged one-vs-rest ROC AUC.
    pub macro_auc: f64,
    /// Accuracy of a uniform random guess, `1 / classes`.
    pub chance: f64,
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
    let classes = dataset.label_names();
    let prompts: Vec<String> = classes
        .iter()
        .map(|name| template.replace("{}", &name.to_lowercase()))
        .collect();
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
    let classes = dataset.label_names();
    let scale = model.objective.logit_scale();

    let mut targets = Vec::new();
    let mut selected = Vec::new();
    for index in 0..dataset.len() {
        let labels = dataset.labels(index)?;
        let positives: Vec<usize> = (0..labels.len()).filter(|&k| labels[k] > 0.5).collect();
        if let [only] = positives[..] {
            targets.push(only);
            selected.push(index);
        }
    }
    if selected.is_empty() {
        return Err(CleftError::Data(
            "zero-shot: no image has exactly one positive label".into(),
        ));
    }

    let mut scores: Vec<Vec<f32>> = Vec::with_capacity(selected.len());
    for chunk in selected.chunks(batch_size.max(1)) {
        let batch = collate(dataset, chunk, device)?;
        let image = model.encode_images(batch.images);
        let logits = image.matmul(class_embeddings.clone().transpose()) * scale.clone().unsqueeze();
        let probabilities = burn::tensor::activation::softmax(logits, 1);
        let values = probabilities
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| {
                CleftError::Invalid(format!("zero-shot: cannot read scores back: {e:?}"))
            })?;
        scores.extend(values.chunks(classes.len()).map(<[f32]>::to_vec));
    }
    let correct = scores
        .iter()
        .zip(&targets)
        .filter(|(row, target)| argmax(row) == **target)
        .count();
    let aucs: Vec<f64> = (0..classes.len())
        .filter_map(|k| {
            let column: Vec<f32> = scores.iter().map(|row| row[k]).collect();
            let positive: Vec<bool> = targets.iter().map(|&t| t == k).collect();
            roc_auc(&column, &positive)
        })
        .collect();
    Ok(ZeroShotReport {
        chance: 1.0 / classes.len() as f64,
        accuracy: correct as f64 / targets.len() as f64,
        macro_auc: aucs.iter().sum::<f64>() / aucs.len().max(1) as f64,
        images: targets.len(),
        classes,
        prompts,
    })
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, k| if row[k] > row[best] { k } else { best })
}

/// ROC AUC (Mann–Whitney U, ties counted half); `None` when one class is absent.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        for &index in &order[start..=end] {
            ranks[index] = average_rank;
        }
        start = end + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

#[cfg(test)]
mod tests {
    use super::roc_auc;

    #[test]
    fn auc_of_perfect_inverted_and_tied_rankings() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            roc_auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn auc_matches_pair_counting() {
        // 3 positives, 2 negatives: pairs (p > n) = 5 of 6, one tie counted half.
        let scores = [0.3, 0.7, 0.5, 0.2, 0.5];
        let positive = [false, true, true, false, true];
        let pairs = [
            (0.7, 0.3),
            (0.7, 0.2),
            (0.5, 0.3),
            (0.5, 0.2),
            (0.5, 0.3),
            (0.5, 0.2),
        ];
        let expected = pairs.iter().filter(|(p, n)| p > n).count() as f64 / 6.0;
        assert!((roc_auc(&scores, &positive).unwrap() - expected).abs() < 1e-12);
    }
}
