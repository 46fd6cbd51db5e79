//! The image–text data API: data sets, samples and batching.

use std::fmt;

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::error::{CleftError, Result};

/// One image with its caption and finding labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTextSample {
    /// Pixels, row-major `[C, H, W]`, already normalised for the encoder.
    pub image: Vec<f32>,
    /// The report / caption text.
    pub caption: String,
    /// Multi-hot finding labels `[K]` in the order of [`ImageTextDataset::label_names`].
    pub labels: Vec<f32>,
}

/// A random-access image–text data set.
pub trait ImageTextDataset: Send + Sync + fmt::Debug {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether the data set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads sample `index` (`index < len()`); errors name the file or row.
    fn get(&self, index: usize) -> Result<ImageTextSample>;
    /// Sample `index` as training sees it: with its random augmentation drawn from `seed`
    /// (the loader derives it from the run's seed, the epoch and the position in the epoch, so it
    /// never depends on threads or timing). The default applies none.
    fn get_for_training(&self, index: usize, seed: u64) -> Result<ImageTextSample> {
        let _ = seed;
        self.get(index)
    }
    /// The multi-hot labels `[K]` of sample `index`. The default reads the whole sample; data
    /// sets whose labels are cheaper to read than their images (a CSV column, a generator's
    /// findings) should override it, since evaluation and stage 2 scan every label.
    fn labels(&self, index: usize) -> Result<Vec<f32>> {
        Ok(self.get(index)?.labels)
    }
    /// Shape `[C, H, W]` of every image.
    fn image_shape(&self) -> [usize; 3];
    /// Names of the finding labels (zero-shot class names), `K` entries.
    fn label_names(&self) -> Vec<String>;
    /// Files this data set asks to keep in the run directory: a drawn evaluation selection, the
    /// samples skipped under `on_bad_sample = "skip"` so far, … The default has none.
    fn run_files(&self) -> Vec<RunFile> {
        Vec::new()
    }
}

/// A text file a data set records in the run directory (see [`ImageTextDataset::run_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFile {
    /// File name inside the run directory (no directories).
    pub name: String,
    /// Its contents.
    pub contents: String,
}

/// A collated batch on a device.
#[derive(Debug, Clone)]
pub struct ImageTextBatch {
    /// Images `[B, C, H, W]`.
    pub images: Tensor<4>,
    /// Captions, `B` entries.
    pub captions: Vec<String>,
    /// Multi-hot labels `[B, K]`.
    pub labels: Tensor<2>,
}

/// Checks that sample `index` has an image of `shape` `[C, H, W]` and `classes` labels (what
/// its data set declares), naming the sample otherwise.
pub fn check_sample(
    sample: &ImageTextSample,
    index: usize,
    shape: [usize; 3],
    classes: usize,
) -> Result<()> {
    let [c, h, w] = shape;
    if sample.image.len() != c * h * w || sample.labels.len() != classes {
        return Err(CleftError::Data(format!(
            "sample {index}: image has {} values and {} labels, expected {} ({c}x{h}x{w}) and {classes}",
            sample.image.len(),
            sample.labels.len(),
            c * h * w
        )));
    }
    Ok(())
}

/// Reads `indices` from `dataset` and stacks them into one batch on `device`.
///
/// # Shapes
/// - output: images `[B, C, H, W]`, labels `[B, K]` with `B = indices.len()`.
pub fn collate(
    dataset: &dyn ImageTextDataset,
    indices: &[usize],
    device: &Device,
) -> Result<ImageTextBatch> {
    let [c, h, w] = dataset.image_shape();
    let classes = dataset.label_names().len();
    let mut pixels = Vec::with_capacity(indices.len() * c * h * w);
    let mut labels = Vec::with_capacity(indices.len() * classes);
    let mut captions = Vec::with_capacity(indices.len());
    for &index in indices {
        let sample = dataset.get(index)?;
        check_sample(&sample, index, [c, h, w], classes)?;
        pixels.extend_from_slice(&sample.image);
        labels.extend_from_slice(&sample.labels);
        captions.push(sample.caption);
    }
    let batch = indices.len();
    Ok(ImageTextBatch {
        images: Tensor::from_data(TensorData::new(pixels, [batch, c, h, w]), device),
        captions,
        labels: Tensor::from_data(TensorData::new(labels, [batch, classes]), device),
    })
}
