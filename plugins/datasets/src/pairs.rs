//! Any paired image–text set (`[data] type = "image-text-csv"`): one CSV per split with a path
//! column, a text column and optional 0/1 label columns.

use std::path::PathBuf;
use std::sync::Arc;

use cleft_core::CleftError;
use cleft_core::registry::Split;
use cleft_imaging::ImageOptions;
use serde::{Deserialize, Serialize};

use crate::bad::{BadSamples, OnBadSample};
use crate::chexpert::clean_caption;
use crate::records::{Record, RecordSet};
use crate::table::{Table, cell};

/// `[data] type = "image-text-csv"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageTextCsvConfig {
    /// Training CSV.
    pub train_csv: PathBuf,
    /// Validation CSV (optional).
    pub valid_csv: Option<PathBuf>,
    /// Test CSV (optional; zero-shot needs label columns).
    pub test_csv: Option<PathBuf>,
    /// Folder the paths are relative to.
    pub image_root: PathBuf,
    /// Column of image paths.
    pub path_column: String,
    /// Column of texts.
    pub text_column: String,
    /// Label columns (0 / 1; empty counts 0), also the zero-shot class names.
    pub labels: Vec<String>,
    /// Most words per text.
    pub max_caption_words: usize,
    /// Image reading and preprocessing.
    pub image: ImageOptions,
    /// `fail` or `skip`.
    pub on_bad_sample: OnBadSample,
}

impl Default for ImageTextCsvConfig {
    fn default() -> Self {
        Self {
            train_csv: PathBuf::from("train.csv"),
            valid_csv: None,
            test_csv: None,
            image_root: PathBuf::from("."),
            path_column: "path".into(),
            text_column: "text".into(),
            labels: Vec::new(),
            max_caption_words: 64,
            image: ImageOptions::default(),
            on_bad_sample: OnBadSample::Fail,
        }
    }
}

impl ImageTextCsvConfig {
    /// Opens one split.
    pub fn open(&self, split: Split) -> Result<RecordSet, CleftError> {
        self.image.validate("data.image")?;
        let csv = match split {
            Split::Train => Some(&self.train_csv),
            Split::Valid => self.valid_csv.as_ref(),
            Split::Test => self.test_csv.as_ref(),
        }
        .ok_or_else(|| {
            CleftError::Invalid(format!(
                "data.{}_csv is not set: no {split:?} split",
                format!("{split:?}").to_lowercase()
            ))
        })?;
        let bad = Arc::new(BadSamples::default());
        let table = Table::read(csv, self.on_bad_sample, &bad)?;
        let path_col = table.column(&self.path_column)?;
        let text_col = table.column(&self.text_column)?;
        let label_cols = self
            .labels
            .iter()
            .map(|name| table.column(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut records = Vec::new();
        'rows: for (source, row) in table.rows() {
            let mut labels = Vec::with_capacity(label_cols.len());
            for (name, &col) in self.labels.iter().zip(&label_cols) {
                match cell(row, col) {
                    "" | "0" | "0.0" => labels.push(0.0),
                    "1" | "1.0" => labels.push(1.0),
                    other => {
                        bad.handle(
                            self.on_bad_sample,
                            &source,
                            &format!("column `{name}` = `{other}`; expected 0, 1 or empty"),
                        )?;
                        continue 'rows;
                    }
                }
            }
            let (path, text) = (cell(row, path_col), cell(row, text_col));
            if path.is_empty() || text.is_empty() {
                let column = if path.is_empty() {
                    &self.path_column
                } else {
                    &self.text_column
                };
                bad.handle(self.on_bad_sample, &source, &format!("empty `{column}`"))?;
                continue;
            }
            records.push(Record {
                image: self.image_root.join(path),
                caption: clean_caption(text, self.max_caption_words),
                labels,
                source,
            });
        }
        RecordSet::new(
            format!("image-text-csv-{split:?}").to_lowercase(),
            records,
            self.labels.clone(),
            self.image.clone(),
            split == Split::Train,
            self.on_bad_sample,
            bad,
        )
    }
}

file_dataset!(
    ImageTextCsvConfig,
    "image-text-csv",
    "any paired set: CSV with path, text and optional 0/1 label columns per split"
);
