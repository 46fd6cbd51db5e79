//! Synthetic chest-radiograph-like images with findings drawn in and captions that name them
//! (`[data] type = "synthetic-cxr"`), so training and zero-shot evaluation need no download.
//!
//! Each image is a noisy grey thorax with two dark lung fields and a heart; each finding changes
//! the picture in its own way: cardiomegaly enlarges the heart, pleural effusion fills a lung
//! base, consolidation adds a dense blob, edema adds bilateral streaks, atelectasis a thin
//! horizontal band. Captions follow CLEFT's label-synthesised form ("this is a chest x ray of a
//! patient with …"). The test split holds single-finding images balanced over the five classes,
//! like CheXpert-5x200.

mod disk;
mod render;
mod reports;

pub use disk::{SynthTree, SynthTreeOptions, write_chexpert_tree};
pub use reports::report;

use cleft_core::CleftError;
use cleft_core::contract::{ImageShape, Keyed};
use cleft_core::data::{ImageTextDataset, ImageTextSample};
use cleft_core::preprocess::ImagePreprocessor;
use cleft_core::registry::{DatasetConfig, Split};
use cleft_imaging::{AugmentOptions, ImageOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The five findings, in label order (CheXpert-5x200's classes).
pub const FINDINGS: [&str; 5] = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
];

/// `[data] type = "synthetic-cxr"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticCxrConfig {
    /// Image side in pixels (square).
    pub image_size: usize,
    /// Channels handed to the model: 1 (grey) or 3 (the grey channel repeated, as upstream CLEFT
    /// feeds radiographs to 3-channel ImageNet encoders).
    pub channels: usize,
    /// Training samples.
    pub train_size: usize,
    /// Validation samples.
    pub valid_size: usize,
    /// Test samples (single finding, balanced over classes).
    pub test_size: usize,
    /// Most findings per training image (1 or 2).
    pub max_findings: usize,
    /// Standard deviation of the pixel noise (pixels in 0..1 before normalisation).
    pub noise: f32,
    /// Seed of the generator; splits use disjoint streams.
    pub seed: u64,
}

impl Default for SyntheticCxrConfig {
    fn default() -> Self {
        Self {
            image_size: 32,
            channels: 1,
            train_size: 4000,
            valid_size: 200,
            test_size: 500,
            max_findings: 2,
            noise: 0.05,
            seed: 7,
        }
    }
}

#[typetag::serde(name = "synthetic-cxr")]
impl DatasetConfig for SyntheticCxrConfig {
    fn image_shape(&self) -> Result<Option<ImageShape>, CleftError> {
        Ok(Some(ImageShape {
            channels: Keyed::new(self.channels, "data.channels"),
            size: Keyed::new(self.image_size, "data.image_size"),
        }))
    }

    /// Inference reads images as this generator makes them: grey values `v` in 0..1 normalised
    /// as `(v − 0.5) / 0.5`, `image_size` square, `channels` (no Otsu crop, `load_size =
    /// image_size`, no augmentation), so an `S × S` grey PNG holding `(x · 0.5 + 0.5) · 255`
    /// loads back to `x` (to 8-bit rounding).
    fn preprocessor(&self) -> Result<Option<Box<dyn ImagePreprocessor>>, CleftError> {
        let options = ImageOptions {
            image_size: self.image_size,
            load_size: self.image_size,
            channels: self.channels,
            otsu_crop: false,
            mean: 0.5,
            std: 0.5,
            augment: AugmentOptions {
                enabled: false,
                ..AugmentOptions::default()
            },
            ..ImageOptions::default()
        };
        options.validate("data")?;
        Ok(Some(Box::new(options)))
    }

    fn build(&self, split: Split) -> Result<Box<dyn ImageTextDataset>, CleftError> {
        if !matches!(self.channels, 1 | 3) {
            return Err(CleftError::Invalid(format!(
                "data.channels = {} must be 1 (grey) or 3 (grey repeated)",
                self.channels
            )));
        }
        if self.image_size < 16 {
            return Err(CleftError::Invalid(format!(
                "data.image_size = {} is too small; use at least 16",
                self.image_size
            )));
        }
        if !(1..=2).contains(&self.max_findings) {
            return Err(CleftError::Invalid(format!(
                "data.max_findings = {} must be 1 or 2",
                self.max_findings
            )));
        }
        let len = match split {
            Split::Train => self.train_size,
            Split::Valid => self.valid_size,
            Split::Test => self.test_size,
        };
        Ok(Box::new(SyntheticCxr {
            config: self.clone(),
            split,
            len,
        }))
    }
}

cleft_core::register_component!(
    Dataset,
    "synthetic-cxr",
    "synthetic chest-radiograph-like images with drawn findings and label-synthesised captions",
    SyntheticCxrConfig
);

/// One split of the synthetic data set.
#[derive(Debug, Clone)]
pub struct SyntheticCxr {
    config: SyntheticCxrConfig,
    split: Split,
    len: usize,
}

impl SyntheticCxr {
    /// One split of the generator (what `build` opens, as the concrete type).
    pub fn new(config: SyntheticCxrConfig, split: Split) -> Self {
        let len = match split {
            Split::Train => config.train_size,
            Split::Valid => config.valid_size,
            Split::Test => config.test_size,
        };
        Self { config, split, len }
    }

    fn rng(&self, index: usize) -> StdRng {
        let stream = match self.split {
            Split::Train => 1u64,
            Split::Valid => 2,
            Split::Test => 3,
        };
        StdRng::seed_from_u64(
            self.config.seed ^ (stream << 56) ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
    }

    /// The findings present in sample `index` (indices into [`FINDINGS`], ascending).
    pub fn findings(&self, index: usize) -> Vec<usize> {
        let mut rng = self.rng(index);
        if self.split == Split::Test {
            return vec![index % FINDINGS.len()];
        }
        let first = rng.random_range(0..FINDINGS.len());
        let mut findings = vec![first];
        if self.config.max_findings == 2 && rng.random_bool(0.3) {
            let second = (first + rng.random_range(1..FINDINGS.len())) % FINDINGS.len();
            findings.push(second);
        }
        findings.sort_unstable();
        findings
    }
}

/// CLEFT's label-synthesised caption for a set of findings.
pub fn caption(findings: &[usize]) -> String {
    let names: Vec<String> = findings
        .iter()
        .map(|&k| FINDINGS[k].to_lowercase())
        .collect();
    format!(
        "this is a chest x ray of a patient with {}",
        names.join(", ")
    )
}

impl ImageTextDataset for SyntheticCxr {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Result<ImageTextSample, CleftError> {
        let labels = self.labels(index)?;
        let findings = self.findings(index);
        let mut rng = self.rng(index);
        rng.random::<u64>(); // decorrelate from the findings draw
        let grey = render::render(
            &findings,
            self.config.image_size,
            self.config.noise,
            &mut rng,
        );
        let image = grey.repeat(self.config.channels);
        Ok(ImageTextSample {
            image,
            caption: caption(&findings),
            labels,
        })
    }

    /// The findings alone, without rendering the image.
    fn labels(&self, index: usize) -> Result<Vec<f32>, CleftError> {
        if index >= self.len {
            return Err(CleftError::Data(format!(
                "synthetic-cxr: index {index} out of range for a split of {}",
                self.len
            )));
        }
        let mut labels = vec![0.0; FINDINGS.len()];
        for k in self.findings(index) {
            labels[k] = 1.0;
        }
        Ok(labels)
    }

    fn image_shape(&self) -> [usize; 3] {
        [
            self.config.channels,
            self.config.image_size,
            self.config.image_size,
        ]
    }

    fn label_names(&self) -> Vec<String> {
        FINDINGS.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(split: Split) -> Box<dyn ImageTextDataset> {
        SyntheticCxrConfig::default().build(split).unwrap()
    }

    #[test]
    fn samples_are_deterministic_and_differ_between_indices() {
        let train = split(Split::Train);
        assert_eq!(train.get(3).unwrap(), train.get(3).unwrap());
        assert_ne!(train.get(3).unwrap().image, train.get(4).unwrap().image);
    }

    #[test]
    fn captions_name_exactly_the_labelled_findings() {
        let train = split(Split::Train);
        for index in 0..50 {
            let sample = train.get(index).unwrap();
            for (k, name) in FINDINGS.iter().enumerate() {
                let named = sample.caption.contains(&name.to_lowercase());
                assert_eq!(
                    named,
                    sample.labels[k] == 1.0,
                    "{}: {:?}",
                    sample.caption,
                    sample.labels
                );
            }
        }
    }

    #[test]
    fn test_split_is_single_label_and_balanced() {
        let test = split(Split::Test);
        let mut counts = [0; 5];
        for index in 0..test.len() {
            let labels = test.get(index).unwrap().labels;
            assert_eq!(labels.iter().sum::<f32>(), 1.0);
            counts[labels.iter().position(|&l| l == 1.0).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c == test.len() / 5), "{counts:?}");
    }

    #[test]
    fn labels_without_rendering_equal_the_samples_labels() {
        let train = split(Split::Train);
        for index in 0..20 {
            assert_eq!(
                train.labels(index).unwrap(),
                train.get(index).unwrap().labels
            );
        }
        assert!(train.labels(train.len()).is_err());
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        let test = split(Split::Test);
        assert!(
            test.get(test.len())
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
    }

    /// The findings are visible: the mean image of each class differs from every other class's
    /// mean image by more than the noise left after averaging.
    #[test]
    fn class_mean_images_are_distinguishable() {
        let test = split(Split::Test);
        let pixels = test.image_shape().iter().product::<usize>();
        let mut means = vec![vec![0.0f32; pixels]; 5];
        for index in 0..test.len() {
            let sample = test.get(index).unwrap();
            let class = sample.labels.iter().position(|&l| l == 1.0).unwrap();
            for (m, v) in means[class].iter_mut().zip(&sample.image) {
                *m += v / (test.len() / 5) as f32;
            }
        }
        for a in 0..5 {
            for b in a + 1..5 {
                let distance: f32 = means[a]
                    .iter()
                    .zip(&means[b])
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f32>()
                    .sqrt();
                assert!(distance > 1.0, "classes {a} and {b} look alike: {distance}");
            }
        }
    }
}
