//! The linear probe: multinomial logistic regression on frozen image features, trained on
//! stratified fractions of the training split and scored on the test split.
//!
//! The classifier is fitted in plain Rust `f64` by full-batch Adam for a fixed number of steps,
//! not on the device: the problem is small (features `[N, D]`, `D` ≤ a few thousand, `K`
//! classes), convex, and read back once anyway, so a host fit is fast in a release build,
//! independent of the backend and its precision (a bf16 run gets an f64 probe), and bitwise
//! reproducible. Features are standardised with the mean and standard deviation of the whole
//! training split's features (label-free statistics of the frozen encoder, so the weights' scale
//! means the same for every encoder; a 1 % subset's own statistics would blow up noise
//! dimensions), the weights start at
//! zero (the optimum is unique under the L2 penalty), and the loss is mean cross-entropy plus
//! `weight_decay / 2 · ‖W‖²` (bias not penalised).

use serde::Serialize;

use cleft_core::config::ProbeConfig;
use cleft_core::error::{CleftError, Result};

use super::metrics::{ClassificationMetrics, classification_metrics};

/// The four headline metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Summary {
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Balanced accuracy.
    pub balanced_accuracy: f64,
    /// Macro one-vs-rest AUC.
    pub macro_auc: f64,
    /// Macro F1.
    pub macro_f1: f64,
}

impl Summary {
    /// The headline metrics of `metrics`.
    pub fn of(metrics: &ClassificationMetrics) -> Self {
        Self {
            accuracy: metrics.accuracy,
            balanced_accuracy: metrics.balanced_accuracy,
            macro_auc: metrics.macro_auc,
            macro_f1: metrics.macro_f1,
        }
    }

    fn map(values: &[Self], f: impl Fn(&[f64]) -> f64) -> Self {
        let column = |get: fn(&Self) -> f64| f(&values.iter().map(get).collect::<Vec<_>>());
        Self {
            accuracy: column(|s| s.accuracy),
            balanced_accuracy: column(|s| s.balanced_accuracy),
            macro_auc: column(|s| s.macro_auc),
            macro_f1: column(|s| s.macro_f1),
        }
    }
}

/// One training fraction, fitted once per seed.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeFraction {
    /// Requested share of the single-label training images.
    pub fraction: f64,
    /// Seeds of the subset draws, in order.
    pub seeds: Vec<u64>,
    /// Training images drawn for each seed.
    pub train_samples: Vec<usize>,
    /// Mean over the seeds.
    pub mean: Summary,
    /// Sample standard deviation over the seeds (0 for one seed).
    pub std: Summary,
    /// Every metric of each seed's probe on the test split.
    pub runs: Vec<ClassificationMetrics>,
}

/// A fitted multinomial logistic regression on standardised features.
#[derive(Debug, Clone)]
pub struct LogisticRegression {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `[D][K]`.
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
}

impl LogisticRegression {
    /// Fits `features` (`[N][D]`) to `targets` (`< classes`) with `config`'s steps, learning
    /// rate and weight decay, after standardising with `standardiser`.
    pub fn fit(
        features: &[Vec<f64>],
        targets: &[usize],
        classes: usize,
        standardiser: &Standardiser,
        config: &ProbeConfig,
    ) -> Self {
        let dim = standardiser.mean.len();
        let model = Self {
            mean: standardiser.mean.clone(),
            scale: standardiser.scale.clone(),
            weights: vec![vec![0.0; classes]; dim],
            bias: vec![0.0; classes],
        };
        let mut model = model;
        let inputs: Vec<Vec<f64>> = features.iter().map(|row| model.standardise(row)).collect();
        let mut adam = Adam::new(dim * classes + classes, config.lr);
        for _ in 0..config.steps {
            let gradient = model.gradient(&inputs, targets, config.weight_decay);
            let mut parameters = model.flatten();
            adam.step(&mut parameters, &gradient);
            model.unflatten(&parameters);
        }
        model
    }

    fn standardise(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    fn probabilities(&self, input: &[f64]) -> Vec<f64> {
        let mut logits = self.bias.clone();
        for (value, weights) in input.iter().zip(&self.weights) {
            for (logit, w) in logits.iter_mut().zip(weights) {
                *logit += value * w;
            }
        }
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / total).collect()
    }

    /// Gradient of the mean cross-entropy plus the L2 penalty, flattened like `flatten`.
    fn gradient(&self, inputs: &[Vec<f64>], targets: &[usize], weight_decay: f64) -> Vec<f64> {
        let classes = self.bias.len();
        let n = inputs.len().max(1) as f64;
        let mut grad_w = vec![vec![0.0; classes]; self.weights.len()];
        let mut grad_b = vec![0.0; classes];
        for (input, &target) in inputs.iter().zip(targets) {
            let mut delta = self.probabilities(input);
            delta[target] -= 1.0;
            for (g, d) in grad_b.iter_mut().zip(&delta) {
                *g += d / n;
            }
            for (row, value) in grad_w.iter_mut().zip(input) {
                for (g, d) in row.iter_mut().zip(&delta) {
                    *g += value * d / n;
                }
            }
        }
        for (row, weights) in grad_w.iter_mut().zip(&self.weights) {
            for (g, w) in row.iter_mut().zip(weights) {
                *g += weight_decay * w;
            }
        }
        grad_w.into_iter().flatten().chain(grad_b).collect()
    }

    fn flatten(&self) -> Vec<f64> {
        self.weights
            .iter()
            .flatten()
            .chain(&self.bias)
            .copied()
            .collect()
    }

    fn unflatten(&mut self, parameters: &[f64]) {
        let classes = self.bias.len();
        for (row, chunk) in self.weights.iter_mut().zip(parameters.chunks(classes)) {
            row.copy_from_slice(chunk);
        }
        let offset = self.weights.len() * classes;
        self.bias.copy_from_slice(&parameters[offset..]);
    }

    /// Class probabilities `[N][K]` of `features`.
    pub fn predict(&self, features: &[Vec<f64>]) -> Vec<Vec<f32>> {
        features
            .iter()
            .map(|row| {
                self.probabilities(&self.standardise(row))
                    .into_iter()
                    .map(|p| p as f32)
                    .collect()
            })
            .collect()
    }
}

/// Per-dimension mean and standard deviation (1 where a dimension is constant).
#[derive(Debug, Clone)]
pub struct Standardiser {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Standardiser {
    /// The statistics of `features` (`[N][D]`).
    pub fn of(features: &[Vec<f64>]) -> Self {
        let dim = features.first().map_or(0, Vec::len);
        let n = features.len().max(1) as f64;
        let mean: Vec<f64> = (0..dim)
            .map(|d| features.iter().map(|row| row[d]).sum::<f64>() / n)
            .collect();
        let scale = (0..dim)
            .map(|d| {
                let variance = features
                    .iter()
                    .map(|row| (row[d] - mean[d]).powi(2))
                    .sum::<f64>()
                    / n;
                if variance > 1e-12 {
                    variance.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Self { mean, scale }
    }
}

/// Adam (Kingma & Ba) with the usual betas, over a flat parameter vector.
struct Adam {
    lr: f64,
    step: i32,
    first: Vec<f64>,
    second: Vec<f64>,
}

impl Adam {
    fn new(size: usize, lr: f64) -> Self {
        Self {
            lr,
            step: 0,
            first: vec![0.0; size],
            second: vec![0.0; size],
        }
    }

    fn step(&mut self, parameters: &mut [f64], gradient: &[f64]) {
        let (beta1, beta2, epsilon): (f64, f64, f64) = (0.9, 0.999, 1e-8);
        self.step += 1;
        let correction1 = 1.0 - beta1.powi(self.step);
        let correction2 = 1.0 - beta2.powi(self.step);
        for i in 0..parameters.len() {
            self.first[i] = beta1 * self.first[i] + (1.0 - beta1) * gradient[i];
            self.second[i] = beta2 * self.second[i] + (1.0 - beta2) * gradient[i] * gradient[i];
            let m = self.first[i] / correction1;
            let v = self.second[i] / correction2;
            parameters[i] -= self.lr * m / (v.sqrt() + epsilon);
        }
    }
}

/// SplitMix64: a fixed, documented generator, so a recorded seed draws the same subset in
/// every version of this crate and its dependencies.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Positions into `targets` of a stratified `fraction`: each class's members shuffled with
/// `seed` (Fisher–Yates over SplitMix64), then the first `max(1, round(fraction · n_c))` of every
/// present class taken, so every class keeps at least one sample. With one seed, smaller
/// fractions are subsets of larger ones. Returned in ascending order.
pub fn stratified_subset(
    targets: &[usize],
    classes: usize,
    fraction: f64,
    seed: u64,
) -> Vec<usize> {
    let mut state = seed;
    let mut chosen = Vec::new();
    for class in 0..classes {
        let mut members: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i] == class)
            .collect();
        for i in (1..members.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        if members.is_empty() {
            continue;
        }
        let take = ((fraction * members.len() as f64).round() as usize).clamp(1, members.len());
        chosen.extend_from_slice(&members[..take]);
    }
    chosen.sort_unstable();
    chosen
}

/// Fits and scores the probe for every fraction and seed of `config`.
pub fn linear_probe(
    train: (&[Vec<f64>], &[usize]),
    test: (&[Vec<f64>], &[usize]),
    classes: &[String],
    config: &ProbeConfig,
) -> Result<Vec<ProbeFraction>> {
    if let Some(bad) = config.fractions.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
        return Err(CleftError::Config(format!(
            "eval.probe.fractions: {bad} is not in (0, 1]"
        )));
    }
    if config.seeds.is_empty() || train.0.is_empty() || test.0.is_empty() {
        return Err(CleftError::Data(format!(
            "linear probe: needs seeds and single-label images ({} seeds, {} train, {} test)",
            config.seeds.len(),
            train.0.len(),
            test.0.len()
        )));
    }
    let standardiser = Standardiser::of(train.0);
    let mut results = Vec::new();
    for &fraction in &config.fractions {
        let mut runs = Vec::new();
        let mut train_samples = Vec::new();
        let mut fitted: Vec<(Vec<usize>, ClassificationMetrics)> = Vec::new();
        for &seed in &config.seeds {
            let subset = stratified_subset(train.1, classes.len(), fraction, seed);
            train_samples.push(subset.len());
            // The fit is deterministic: a subset drawn before (every seed's at 100 %) gives the
            // same probe.
            if let Some((_, metrics)) = fitted.iter().find(|(drawn, _)| *drawn == subset) {
                runs.push(metrics.clone());
                continue;
            }
            let features: Vec<Vec<f64>> = subset.iter().map(|&i| train.0[i].clone()).collect();
            let targets: Vec<usize> = subset.iter().map(|&i| train.1[i]).collect();
            let probe =
                LogisticRegression::fit(&features, &targets, classes.len(), &standardiser, config);
            let metrics = classification_metrics(&probe.predict(test.0), test.1, classes);
            runs.push(metrics.clone());
            fitted.push((subset, metrics));
        }
        let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
        results.push(ProbeFraction {
            fraction,
            seeds: config.seeds.clone(),
            train_samples,
            mean: Summary::map(&summaries, mean),
            std: Summary::map(&summaries, sample_std),
            runs,
        });
    }
    Ok(results)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn gaussian(rng: &mut StdRng) -> f64 {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// `n` samples of `classes` classes in `dim` dimensions; class `c`'s mean is `separation`
    /// along axis `c`, unit noise elsewhere.
    fn blobs(
        n: usize,
        classes: usize,
        dim: usize,
        separation: f64,
        seed: u64,
    ) -> (Vec<Vec<f64>>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let targets: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let features = targets
            .iter()
            .map(|&c| {
                (0..dim)
                    .map(|d| gaussian(&mut rng) + if d == c { separation } else { 0.0 })
                    .collect()
            })
            .collect();
        (features, targets)
    }

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|c| format!("c{c}")).collect()
    }

    fn config(fractions: Vec<f64>) -> ProbeConfig {
        ProbeConfig {
            fractions,
            seeds: vec![42, 43],
            steps: 200,
            lr: 0.05,
            weight_decay: 1e-4,
        }
    }

    #[test]
    fn separable_features_are_classified_perfectly() {
        let (train_x, train_y) = blobs(400, 4, 6, 12.0, 1);
        let (test_x, test_y) = blobs(200, 4, 6, 12.0, 2);
        let results = linear_probe(
            (&train_x, &train_y),
            (&test_x, &test_y),
            &names(4),
            &config(vec![0.01, 0.1, 1.0]),
        )
        .unwrap();
        assert_eq!(
            results[0].train_samples,
            vec![4, 4],
            "one sample per class at 1 %"
        );
        assert_eq!(results[2].train_samples, vec![400, 400]);
        // One sample per class is a noisy template, yet far above chance (0.25).
        assert!(results[0].mean.accuracy > 0.7, "{:?}", results[0].mean);
        for fraction in &results[1..] {
            assert!(
                fraction.mean.accuracy > 0.99,
                "{} {:?} {:?}",
                fraction.fraction,
                fraction.mean,
                fraction.runs[0].confusion
            );
            assert!(fraction.mean.macro_auc > 0.99, "{:?}", fraction.mean);
        }
    }

    #[test]
    fn random_labels_give_chance_accuracy() {
        let (train_x, _) = blobs(800, 4, 16, 0.0, 3);
        let (test_x, _) = blobs(800, 4, 16, 0.0, 4);
        let mut rng = StdRng::seed_from_u64(5);
        let mut labels = |n: usize| {
            (0..n)
                .map(|_| rng.random_range(0..4))
                .collect::<Vec<usize>>()
        };
        let (train_y, test_y) = (labels(800), labels(800));
        let results = linear_probe(
            (&train_x, &train_y),
            (&test_x, &test_y),
            &names(4),
            &config(vec![1.0]),
        )
        .unwrap();
        let accuracy = results[0].mean.accuracy;
        assert!((accuracy - 0.25).abs() < 0.06, "accuracy {accuracy}");
        assert!((results[0].mean.macro_auc - 0.5).abs() < 0.06);
    }

    #[test]
    fn subsets_are_stratified_seeded_and_nested() {
        let targets: Vec<usize> = (0..1000)
            .map(|i| if i < 990 { 0 } else { 1 + i % 2 })
            .collect();
        let small = stratified_subset(&targets, 3, 0.01, 42);
        let classes: Vec<usize> = small.iter().map(|&i| targets[i]).collect();
        assert!((0..3).all(|c| classes.contains(&c)), "{classes:?}");
        assert_eq!(small, stratified_subset(&targets, 3, 0.01, 42));
        assert_ne!(small, stratified_subset(&targets, 3, 0.01, 43));
        let large = stratified_subset(&targets, 3, 0.1, 42);
        assert!(small.iter().all(|i| large.contains(i)));
        assert_eq!(stratified_subset(&targets, 3, 1.0, 7).len(), 1000);
    }

    #[test]
    fn bad_fractions_are_refused() {
        let (x, y) = blobs(8, 2, 2, 1.0, 0);
        let error = linear_probe((&x, &y), (&x, &y), &names(2), &config(vec![1.5])).unwrap_err();
        assert!(error.to_string().contains("1.5"), "{error}");
    }
}
