//! Image features computed once per split and shared by zero-shot and the linear probe.

use burn::prelude::*;

use cleft_core::data::{ImageTextDataset, collate};
use cleft_core::error::{CleftError, Result};
use cleft_core::inference::read_back;
use cleft_core::model::{ClipModel, l2_normalize};

/// The images of a split with exactly one positive label (as in CheXpert-5x200: multi-finding
/// and finding-free images have no single class), and those labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleLabel {
    /// Data set indices.
    pub indices: Vec<usize>,
    /// The positive class of each.
    pub targets: Vec<usize>,
}

/// Selects the single-positive images of `dataset` (labels only; no image is read).
pub fn single_label(dataset: &dyn ImageTextDataset) -> Result<SingleLabel> {
    single_label_among(dataset, &dataset.label_names())
}

/// Selects the images of `dataset` with exactly one of `classes` positive, targets indexing
/// `classes`. Labels are matched by name, so a training split with more labels than the test
/// split (CheXpert's 14 findings against 5x200's five classes) gives the test split's classes;
/// a class the data set does not label is an error naming it.
pub fn single_label_among(
    dataset: &dyn ImageTextDataset,
    classes: &[String],
) -> Result<SingleLabel> {
    let names = dataset.label_names();
    let columns = classes
        .iter()
        .map(|class| {
            names.iter().position(|name| name == class).ok_or_else(|| {
                CleftError::Data(format!(
                    "evaluation: the data set has no label `{class}` (its labels: {})",
                    names.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut selection = SingleLabel {
        indices: Vec::new(),
        targets: Vec::new(),
    };
    for index in 0..dataset.len() {
        let labels = dataset.labels(index)?;
        let mut positives = (0..columns.len()).filter(|&k| labels[columns[k]] > 0.5);
        if let (Some(only), None) = (positives.next(), positives.next()) {
            selection.indices.push(index);
            selection.targets.push(only);
        }
    }
    Ok(selection)
}

/// Features of a set of images, row-major.
#[derive(Debug, Clone)]
pub struct ImageFeatures {
    /// The vision encoder's pooled output `[N, D]` (before the projection: what the linear
    /// probe reads, as upstream's `Linear(768, C)` does).
    pub pooled: Vec<f32>,
    /// `D`.
    pub pooled_dim: usize,
    /// Projected, L2-normalised embeddings `[N, P]` (what zero-shot scores).
    pub projected: Vec<f32>,
    /// `P`.
    pub projected_dim: usize,
}

impl ImageFeatures {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pooled.len() / self.pooled_dim.max(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pooled feature rows.
    pub fn pooled_rows(&self) -> Vec<Vec<f64>> {
        self.pooled
            .chunks(self.pooled_dim.max(1))
            .map(|row| row.iter().map(|&v| f64::from(v)).collect())
            .collect()
    }
}

/// Encodes `indices` of `dataset` in batches of `batch_size` (one vision forward per image).
pub fn encode_images(
    model: &ClipModel,
    dataset: &dyn ImageTextDataset,
    indices: &[usize],
    batch_size: usize,
    device: &Device,
) -> Result<ImageFeatures> {
    let mut features = ImageFeatures {
        pooled: Vec::new(),
        pooled_dim: model.vision.dim(),
        projected: Vec::new(),
        projected_dim: 0,
    };
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = collate(dataset, chunk, device)?;
        let pooled = model.vision.forward(batch.images).pooled;
        let projected = l2_normalize(model.vision_projection.forward(pooled.clone()));
        features.projected_dim = projected.dims()[1];
        features.pooled.extend(read_back(pooled)?);
        features.projected.extend(read_back(projected)?);
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cleft_core::data::ImageTextSample;

    /// Labels only: `names` and one multi-hot row per sample.
    #[derive(Debug)]
    struct Labels {
        names: Vec<String>,
        rows: Vec<Vec<f32>>,
    }

    impl ImageTextDataset for Labels {
        fn len(&self) -> usize {
            self.rows.len()
        }
        fn get(&self, index: usize) -> Result<ImageTextSample> {
            Ok(ImageTextSample {
                image: vec![0.0],
                caption: String::new(),
                labels: self.rows[index].clone(),
            })
        }
        fn image_shape(&self) -> [usize; 3] {
            [1, 1, 1]
        }
        fn label_names(&self) -> Vec<String> {
            self.names.clone()
        }
    }

    #[test]
    fn training_labels_are_matched_to_the_test_classes_by_name() {
        let train = Labels {
            names: ["Fracture", "Edema", "Cardiomegaly", "No Finding"]
                .map(String::from)
                .to_vec(),
            rows: vec![
                vec![1.0, 1.0, 0.0, 0.0], // Edema only among the classes (Fracture is not one)
                vec![0.0, 1.0, 1.0, 0.0], // two classes: left out
                vec![0.0, 0.0, 1.0, 0.0], // Cardiomegaly
                vec![0.0, 0.0, 0.0, 1.0], // none: left out
            ],
        };
        let classes = ["Cardiomegaly", "Edema"].map(String::from).to_vec();
        let selection = single_label_among(&train, &classes).unwrap();
        assert_eq!(selection.indices, [0, 2]);
        assert_eq!(selection.targets, [1, 0]);
        // Every label counts when the classes are the data set's own.
        assert_eq!(single_label(&train).unwrap().indices, [2, 3]);
        let missing = ["Atelectasis"].map(String::from).to_vec();
        let error = single_label_among(&train, &missing)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no label `Atelectasis`") && error.contains("Fracture"),
            "{error}"
        );
    }
}
