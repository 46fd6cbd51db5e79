//! Report texts for the on-disk synthetic benchmark: findings and impression in varied
//! phrasings, with negated absent findings, never the zero-shot prompt's wording.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// Ways a report states each finding (index as in [`crate::FINDINGS`]).
const POSITIVE: [&[&str]; 5] = [
    &[
        "linear atelectasis in the lung base",
        "linear opacity consistent with atelectasis",
        "mild atelectasis is seen",
    ],
    &[
        "the cardiac silhouette is enlarged",
        "cardiomegaly is present",
        "the heart is enlarged",
    ],
    &[
        "focal airspace consolidation",
        "a focal opacity consistent with consolidation",
        "consolidation in the lower lobe",
    ],
    &[
        "bilateral interstitial markings consistent with pulmonary edema",
        "vascular congestion and edema",
        "pulmonary edema is noted",
    ],
    &[
        "blunting of the costophrenic angle consistent with pleural effusion",
        "a small pleural effusion",
        "moderate pleural effusion",
    ],
];

/// Ways a report says each finding is absent.
const NEGATIVE: [&[&str]; 5] = [
    &["no atelectasis", "no evidence of atelectasis"],
    &["heart size is normal", "no cardiomegaly"],
    &["no focal consolidation", "lungs are clear of consolidation"],
    &["no pulmonary edema", "no evidence of pulmonary edema"],
    &["no pleural effusion", "costophrenic angles are clear"],
];

/// Impression phrasings of each finding.
const IMPRESSION: [&[&str]; 5] = [
    &["atelectasis", "basilar atelectasis"],
    &["cardiomegaly", "enlarged heart"],
    &["consolidation with possible pneumonia", "consolidation"],
    &["pulmonary edema", "edema"],
    &["pleural effusion", "effusion"],
];

/// A report for an image with `findings` (indices into [`crate::FINDINGS`]), e.g.
/// "findings: the heart is enlarged. no pleural effusion. impression: cardiomegaly."
pub fn report(findings: &[usize], rng: &mut StdRng) -> String {
    let mut sentences: Vec<&str> = findings
        .iter()
        .map(|&k| *POSITIVE[k].choose(rng).unwrap_or(&POSITIVE[k][0]))
        .collect();
    for (k, phrasings) in NEGATIVE.iter().enumerate() {
        if !findings.contains(&k) && rng.random_bool(0.5) {
            sentences.push(phrasings.choose(rng).unwrap_or(&phrasings[0]));
        }
    }
    // Positive statements first in a random order, then negations as drawn.
    let positives = findings.len();
    for i in (1..positives).rev() {
        sentences.swap(i, rng.random_range(0..=i));
    }
    let impression: Vec<&str> = findings
        .iter()
        .map(|&k| *IMPRESSION[k].choose(rng).unwrap_or(&IMPRESSION[k][0]))
        .collect();
    format!(
        "findings: {}. impression: {}.",
        sentences.join(". "),
        impression.join(" and ")
    )
}
