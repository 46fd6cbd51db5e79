//! Classification metrics from scores `[N, K]` and integer targets, with the conventions of
//! scikit-learn's defaults so numbers compare with published tables.

use serde::Serialize;

/// Precision, recall, F1, AUC and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// Of the samples predicted as this class, the share that are (0 when none predicted).
    pub precision: f64,
    /// Of the samples of this class, the share predicted as it (0 when none).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// One-vs-rest ROC AUC of this class's score; `None` when the class is absent or alone.
    pub auc: Option<f64>,
    /// Samples of this class.
    pub support: usize,
}

/// Every metric of one classifier on one test set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    /// Scored samples.
    pub samples: usize,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Mean recall over the classes present in the targets (scikit-learn's
    /// `balanced_accuracy_score`); equals `accuracy` on a balanced test set.
    pub balanced_accuracy: f64,
    /// Mean one-vs-rest ROC AUC over the classes with a defined AUC.
    pub macro_auc: f64,
    /// Mean F1 over the classes present in the targets or the predictions (scikit-learn's
    /// `f1_score(average="macro")`).
    pub macro_f1: f64,
    /// Per-class table, in label order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Index of the largest score (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, k| if row[k] > row[best] { k } else { best })
}

/// Computes every metric of `scores` (`scores[n][k]`, higher = more likely) against `targets`
/// (`targets[n] < classes.len()`).
///
/// # Panics
/// When `scores` and `targets` differ in length or a row does not have `classes.len()` entries.
pub fn classification_metrics(
    scores: &[Vec<f32>],
    targets: &[usize],
    classes: &[String],
) -> ClassificationMetrics {
    let k = classes.len();
    assert_eq!(scores.len(), targets.len(), "one score row per target");
    assert!(scores.iter().all(|row| row.len() == k), "K scores per row");
    let mut confusion = vec![vec![0usize; k]; k];
    for (row, &target) in scores.iter().zip(targets) {
        confusion[target][argmax(row)] += 1;
    }
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let hits = confusion[c][c] as f64;
            let precision = ratio(hits, predicted as f64);
            let recall = ratio(hits, support as f64);
            let column: Vec<f32> = scores.iter().map(|row| row[c]).collect();
            let positive: Vec<bool> = targets.iter().map(|&t| t == c).collect();
            ClassMetrics {
                class: classes[c].clone(),
                precision,
                recall,
                f1: ratio(2.0 * precision * recall, precision + recall),
                auc: roc_auc(&column, &positive),
                support,
            }
        })
        .collect();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let present = |c: &&ClassMetrics| c.support > 0;
    let predicted = |c: usize| confusion.iter().any(|row| row[c] > 0);
    ClassificationMetrics {
        samples: targets.len(),
        accuracy: ratio(correct as f64, targets.len() as f64),
        balanced_accuracy: mean(per_class.iter().filter(present).map(|c| c.recall)),
        macro_auc: mean(per_class.iter().filter_map(|c| c.auc)),
        macro_f1: mean(
            (0..k)
                .filter(|&c| per_class[c].support > 0 || predicted(c))
                .map(|c| per_class[c].f1),
        ),
        per_class,
        confusion,
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    ratio(sum, count as f64)
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

/// ROC curve points `(false positive rate, true positive rate)` from `(0, 0)` to `(1, 1)`, one
/// per distinct score threshold (tied scores move both rates at once); `None` when one class is
/// absent.
pub fn roc_curve(scores: &[f32], positive: &[bool]) -> Option<Vec<(f64, f64)>> {
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    for (i, &index) in order.iter().enumerate() {
        if positive[index] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order
            .get(i + 1)
            .is_none_or(|&next| scores[next] != scores[index]);
        if last_of_tie {
            points.push((fp / n_neg, tp / n_pos));
        }
    }
    Some(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|c| format!("c{c}")).collect()
    }

    fn one_hot(predictions: &[usize], k: usize) -> Vec<Vec<f32>> {
        predictions
            .iter()
            .map(|&p| (0..k).map(|c| if c == p { 1.0 } else { 0.0 }).collect())
            .collect()
    }

    #[test]
    fn auc_of_perfect_inverted_and_tied_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
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

    #[test]
    fn hand_computed_three_class_example() {
        // targets 0 0 0 1 1 2, predictions 0 1 0 1 2 2:
        // confusion [[2,1,0],[0,1,1],[0,0,1]]
        // precision 2/2, 1/2, 1/2; recall 2/3, 1/2, 1/1;
        // F1 0.8, 0.5, 2/3; balanced accuracy (2/3 + 1/2 + 1) / 3 = 13/18.
        let targets = [0, 0, 0, 1, 1, 2];
        let metrics = classification_metrics(&one_hot(&[0, 1, 0, 1, 2, 2], 3), &targets, &names(3));
        assert_eq!(
            metrics.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
        assert!((metrics.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((metrics.balanced_accuracy - 13.0 / 18.0).abs() < 1e-12);
        let f1 = [0.8, 0.5, 2.0 / 3.0];
        for (class, expected) in metrics.per_class.iter().zip(f1) {
            assert!((class.f1 - expected).abs() < 1e-12, "{class:?}");
        }
        assert!((metrics.macro_f1 - f1.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        assert_eq!(
            metrics
                .per_class
                .iter()
                .map(|c| c.support)
                .collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        assert!((metrics.per_class[1].precision - 0.5).abs() < 1e-12);
        // Class 0's one-hot column: positives score 1, 0, 1; negatives 0, 0, 0 -> AUC
        // (3 wins + 3 ties / 2 ... ) = (2·3 + 1·3·0.5) / 9 = 7.5 / 9.
        assert!((metrics.per_class[0].auc.unwrap() - 7.5 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn balanced_accuracy_equals_accuracy_on_a_balanced_set() {
        let targets = [0, 0, 1, 1, 2, 2, 3, 3];
        let predictions = [0, 1, 1, 1, 3, 2, 0, 3];
        let metrics = classification_metrics(&one_hot(&predictions, 4), &targets, &names(4));
        assert!((metrics.accuracy - metrics.balanced_accuracy).abs() < 1e-12);
        assert!((metrics.accuracy - 5.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_follow_scikit_learn() {
        // Class 2 never occurs nor is predicted: excluded from balanced accuracy, macro F1 and
        // macro AUC; its row is zero.
        let targets = [0, 1, 1];
        let metrics = classification_metrics(&one_hot(&[0, 1, 0], 3), &targets, &names(3));
        assert_eq!(metrics.per_class[2].support, 0);
        assert_eq!(metrics.per_class[2].auc, None);
        assert!((metrics.balanced_accuracy - 0.75).abs() < 1e-12);
        // F1: class 0 p=1/2 r=1 -> 2/3; class 1 p=1 r=1/2 -> 2/3.
        assert!((metrics.macro_f1 - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn perfect_scores_give_ones_and_a_diagonal() {
        let targets = [2, 0, 1, 2];
        let metrics = classification_metrics(&one_hot(&targets, 3), &targets, &names(3));
        for value in [
            metrics.accuracy,
            metrics.balanced_accuracy,
            metrics.macro_auc,
            metrics.macro_f1,
        ] {
            assert!((value - 1.0).abs() < 1e-12);
        }
        assert_eq!(
            metrics.confusion,
            vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 0, 2]]
        );
    }

    #[test]
    fn roc_curve_runs_corner_to_corner_and_its_area_is_the_auc() {
        let scores = [0.3, 0.7, 0.5, 0.2, 0.5, 0.9];
        let positive = [false, true, true, false, true, false];
        let curve = roc_curve(&scores, &positive).unwrap();
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((area - roc_auc(&scores, &positive).unwrap()).abs() < 1e-12);
    }
}
