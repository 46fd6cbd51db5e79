//! The data set every loader produces: image files with captions and labels, read and
//! preprocessed on demand (on the loader's worker threads).

use std::path::PathBuf;
use std::sync::Arc;

use cleft_core::CleftError;
use cleft_core::data::{ImageTextDataset, ImageTextSample, RunFile};
use cleft_imaging::ImageOptions;

use crate::bad::{BadSamples, OnBadSample};

/// One sample as a CSV row describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The image file.
    pub image: PathBuf,
    /// The caption (report text or one synthesised from the labels).
    pub caption: String,
    /// Multi-hot labels `[K]`.
    pub labels: Vec<f32>,
    /// Where it came from (`file:line`), for error messages.
    pub source: String,
}

/// A split of a file-backed data set.
#[derive(Debug)]
pub struct RecordSet {
    name: String,
    records: Vec<Record>,
    label_names: Vec<String>,
    image: ImageOptions,
    augment: bool,
    on_bad: OnBadSample,
    bad: Arc<BadSamples>,
    extra_files: Vec<RunFile>,
}

impl RecordSet {
    /// Checks that every record's image file exists (missing ones fail or are skipped by
    /// `on_bad`), then serves them. `augment`: whether training reads draw augmentations.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: impl Into<String>,
        records: Vec<Record>,
        label_names: Vec<String>,
        image: ImageOptions,
        augment: bool,
        on_bad: OnBadSample,
        bad: Arc<BadSamples>,
    ) -> Result<Self, CleftError> {
        let name = name.into();
        let mut kept = Vec::with_capacity(records.len());
        for record in records {
            if record.labels.len() != label_names.len() {
                return Err(CleftError::Data(format!(
                    "{}: {} labels, expected {}",
                    record.source,
                    record.labels.len(),
                    label_names.len()
                )));
            }
            if record.image.is_file() {
                kept.push(record);
            } else {
                bad.handle(
                    on_bad,
                    &record.source,
                    &format!("image file {} does not exist", record.image.display()),
                )?;
            }
        }
        if kept.is_empty() {
            return Err(CleftError::Data(format!("{name}: no samples left to read")));
        }
        Ok(Self {
            name,
            records: kept,
            label_names,
            image,
            augment,
            on_bad,
            bad,
            extra_files: Vec::new(),
        })
    }

    /// Adds a file to record in the run directory.
    pub fn with_run_file(mut self, file: RunFile) -> Self {
        self.extra_files.push(file);
        self
    }

    /// The records served.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    fn read(&self, index: usize, seed: Option<u64>) -> Result<ImageTextSample, CleftError> {
        let len = self.records.len();
        if index >= len {
            return Err(CleftError::Data(format!(
                "{}: index {index} out of range for {len} samples",
                self.name
            )));
        }
        // Under `skip`, an unreadable image is replaced by the next readable one, so batches
        // keep their size; the replacement depends only on the index (deterministic).
        for offset in 0..len {
            let record = &self.records[(index + offset) % len];
            match self.image.load(&record.image, seed) {
                Ok(image) => {
                    return Ok(ImageTextSample {
                        image,
                        caption: record.caption.clone(),
                        labels: record.labels.clone(),
                    });
                }
                Err(error) => {
                    self.bad
                        .handle(self.on_bad, &record.source, &error.to_string())?;
                }
            }
        }
        Err(CleftError::Data(format!(
            "{}: no readable image among its {len} samples",
            self.name
        )))
    }
}

impl ImageTextDataset for RecordSet {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn get(&self, index: usize) -> Result<ImageTextSample, CleftError> {
        self.read(index, None)
    }

    fn get_for_training(&self, index: usize, seed: u64) -> Result<ImageTextSample, CleftError> {
        self.read(index, self.augment.then_some(seed))
    }

    fn labels(&self, index: usize) -> Result<Vec<f32>, CleftError> {
        self.records
            .get(index)
            .map(|r| r.labels.clone())
            .ok_or_else(|| {
                CleftError::Data(format!(
                    "{}: index {index} out of range for {} samples",
                    self.name,
                    self.records.len()
                ))
            })
    }

    fn image_shape(&self) -> [usize; 3] {
        [
            self.image.channels,
            self.image.image_size,
            self.image.image_size,
        ]
    }

    fn label_names(&self) -> Vec<String> {
        self.label_names.clone()
    }

    fn run_files(&self) -> Vec<RunFile> {
        let mut files = self.extra_files.clone();
        files.extend(self.bad.run_file(&self.name));
        files
    }
}
