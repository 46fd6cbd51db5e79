//! CheXpert (`[data] type = "chexpert"`): the CSV exactly as Stanford ships it, captions
//! synthesised from the labels as upstream CLEFT does (or a report column when the CSV has
//! one), and the CheXpert-5x200 zero-shot split drawn from it with a recorded seed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleft_core::CleftError;
use cleft_core::contract::{ImageShape, Keyed};
use cleft_core::data::{ImageTextDataset, RunFile};
use cleft_core::registry::{DatasetConfig, Split};
use cleft_imaging::ImageOptions;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::bad::{BadSamples, OnBadSample};
use crate::records::{Record, RecordSet};
use crate::table::{Table, cell};

/// The 14 finding columns in the order upstream CLEFT writes them into captions.
pub const CHEXPERT_FINDINGS: [&str; 14] = [
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
];

/// The 14 finding columns in the order of CheXpert's shipped CSV (after `Path, Sex, Age,
/// Frontal/Lateral, AP/PA`).
pub const CHEXPERT_CSV_FINDINGS: [&str; 14] = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
];

/// CheXpert-5x200's classes, in label order.
pub const FIVE_CLASSES: [&str; 5] = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
];

/// How an uncertain (−1) finding counts. Empty cells are never positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Uncertain {
    /// Not positive (upstream CLEFT, default).
    #[default]
    Negative,
    /// Positive ("U-Ones").
    Positive,
}

/// Where the CheXpert-5x200 test split comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FiveByTwoHundred {
    /// Images per class.
    pub per_class: usize,
    /// Seed of the draw (recorded with the selection in the run directory).
    pub seed: u64,
    /// Draw from this CSV (same format) instead of the training CSV; when drawn from the
    /// training CSV, the selection is excluded from pre-training.
    pub csv: Option<PathBuf>,
}

impl Default for FiveByTwoHundred {
    fn default() -> Self {
        Self {
            per_class: 200,
            seed: 42,
            csv: None,
        }
    }
}

/// `[data] type = "chexpert"`.
///
/// Paths are as given (relative ones to the working directory). The CSV's `Path` column is
/// relative to `image_root` (the folder that holds `CheXpert-v1.0-small/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChexpertConfig {
    /// `train.csv`.
    pub csv: PathBuf,
    /// `valid.csv` (the validation split); none: the validation split is empty-refused.
    pub valid_csv: Option<PathBuf>,
    /// Folder the `Path` column is relative to.
    pub image_root: PathBuf,
    /// Keep only `Frontal/Lateral = Frontal` images.
    pub frontal_only: bool,
    /// Keep only these `AP/PA` values (upstream: AP and PA); empty keeps all.
    pub views: Vec<String>,
    /// How −1 counts.
    pub uncertain: Uncertain,
    /// Finding columns that form the training labels (default: all 14 in caption order).
    pub labels: Vec<String>,
    /// Column holding a report text to use as the caption; none synthesises the caption from
    /// the labels as upstream does.
    pub report_column: Option<String>,
    /// Most words of a synthesised or read caption (upstream: 64 tokens).
    pub max_caption_words: usize,
    /// The CheXpert-5x200 test split.
    pub test: FiveByTwoHundred,
    /// Image reading and preprocessing.
    pub image: ImageOptions,
    /// A missing or unreadable image, or a malformed row: `fail` or `skip`.
    pub on_bad_sample: OnBadSample,
}

impl Default for ChexpertConfig {
    fn default() -> Self {
        Self {
            csv: PathBuf::from("CheXpert-v1.0-small/train.csv"),
            valid_csv: None,
            image_root: PathBuf::from("."),
            frontal_only: true,
            views: vec!["AP".into(), "PA".into()],
            uncertain: Uncertain::Negative,
            labels: CHEXPERT_FINDINGS.iter().map(|s| s.to_string()).collect(),
            report_column: None,
            max_caption_words: 64,
            test: FiveByTwoHundred::default(),
            image: ImageOptions::default(),
            on_bad_sample: OnBadSample::Fail,
        }
    }
}

/// Upstream's caption: "this is a chest x ray of a patient with " and every positive finding in
/// [`CHEXPERT_FINDINGS`] order, lower-cased, non-ASCII dropped, at most `max_words` words.
pub fn synthesise_caption(positives: &[&str], max_words: usize) -> String {
    let text = format!(
        "this is a chest x ray of a patient with {}",
        positives.join(", ")
    );
    clean_caption(&text, max_words)
}

/// Lower-cases, drops non-ASCII characters and keeps at most `max_words` words.
pub fn clean_caption(text: &str, max_words: usize) -> String {
    let ascii: String = text
        .chars()
        .filter(char::is_ascii)
        .collect::<String>()
        .to_lowercase();
    ascii
        .split_whitespace()
        .take(max_words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One CheXpert row, parsed.
struct Row {
    path: String,
    source: String,
    frontal: bool,
    view: String,
    /// Value of each of [`CHEXPERT_FINDINGS`] under the uncertainty policy.
    positive: Vec<bool>,
    report: Option<String>,
}

impl ChexpertConfig {
    fn check(&self) -> Result<(), CleftError> {
        self.image.validate("data.image")?;
        for label in &self.labels {
            if !CHEXPERT_FINDINGS.contains(&label.as_str()) {
                return Err(CleftError::Invalid(format!(
                    "data.labels: `{label}` is not a CheXpert finding column ({})",
                    CHEXPERT_FINDINGS.join(", ")
                )));
            }
        }
        if self.labels.is_empty() {
            return Err(CleftError::Invalid("data.labels is empty".into()));
        }
        if self.test.per_class == 0 {
            return Err(CleftError::Invalid(
                "data.test.per_class must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn read_rows(&self, csv: &Path, bad: &BadSamples) -> Result<Vec<Row>, CleftError> {
        let table = Table::read(csv, self.on_bad_sample, bad)?;
        let path_col = table.column("Path")?;
        let frontal_col = table.column("Frontal/Lateral")?;
        let view_col = table.column("AP/PA")?;
        let finding_cols = CHEXPERT_FINDINGS
            .iter()
            .map(|name| table.column(name))
            .collect::<Result<Vec<_>, _>>()?;
        let report_col = self
            .report_column
            .as_deref()
            .map(|name| table.column(name))
            .transpose()?;
        let mut rows = Vec::new();
        'rows: for (source, row) in table.rows() {
            let mut positive = Vec::with_capacity(finding_cols.len());
            for (name, &col) in CHEXPERT_FINDINGS.iter().zip(&finding_cols) {
                let value = cell(row, col);
                let parsed = match value {
                    "" => Some(false),
                    _ => match value.parse::<f32>() {
                        Ok(1.0) => Some(true),
                        Ok(0.0) => Some(false),
                        Ok(-1.0) => Some(self.uncertain == Uncertain::Positive),
                        _ => None,
                    },
                };
                match parsed {
                    Some(p) => positive.push(p),
                    None => {
                        bad.handle(
                            self.on_bad_sample,
                            &source,
                            &format!("column `{name}` = `{value}`; expected 1, 0, -1 or empty"),
                        )?;
                        continue 'rows;
                    }
                }
            }
            let path = cell(row, path_col).to_string();
            if path.is_empty() {
                bad.handle(self.on_bad_sample, &source, "empty `Path`")?;
                continue;
            }
            rows.push(Row {
                path,
                frontal: cell(row, frontal_col).eq_ignore_ascii_case("frontal"),
                view: cell(row, view_col).to_string(),
                positive,
                report: report_col.map(|c| cell(row, c).to_string()),
                source,
            });
        }
        Ok(rows)
    }

    fn kept(&self, row: &Row) -> bool {
        (!self.frontal_only || row.frontal)
            && (self.views.is_empty() || self.views.iter().any(|v| v == &row.view))
    }

    fn record(&self, row: &Row, label_names: &[&str]) -> Record {
        let labels = label_names
            .iter()
            .map(|name| {
                let k = CHEXPERT_FINDINGS
                    .iter()
                    .position(|f| f == name)
                    .unwrap_or(0);
                if row.positive[k] { 1.0 } else { 0.0 }
            })
            .collect();
        let caption = match &row.report {
            Some(report) => clean_caption(report, self.max_caption_words),
            None => {
                let positives: Vec<&str> = CHEXPERT_FINDINGS
                    .iter()
                    .zip(&row.positive)
                    .filter(|(_, p)| **p)
                    .map(|(name, _)| *name)
                    .collect();
                synthesise_caption(&positives, self.max_caption_words)
            }
        };
        Record {
            image: self.image_root.join(&row.path),
            caption,
            labels,
            source: row.source.clone(),
        }
    }

    /// The 5x200 selection from `rows`: frontal images with exactly one of the five classes
    /// positive, `per_class` per class, each class's candidates shuffled with the seed.
    fn select_five(&self, rows: &[Row], csv: &Path) -> Result<Vec<usize>, CleftError> {
        let five: Vec<usize> = FIVE_CLASSES
            .iter()
            .map(|c| CHEXPERT_FINDINGS.iter().position(|f| f == c).unwrap_or(0))
            .collect();
        let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); FIVE_CLASSES.len()];
        for (index, row) in rows.iter().enumerate() {
            if !row.frontal {
                continue;
            }
            let positives: Vec<usize> =
                (0..five.len()).filter(|&k| row.positive[five[k]]).collect();
            if let [only] = positives[..] {
                per_class[only].push(index);
            }
        }
        let mut rng = StdRng::seed_from_u64(self.test.seed);
        let mut selected = Vec::new();
        for (k, candidates) in per_class.iter_mut().enumerate() {
            if candidates.len() < self.test.per_class {
                return Err(CleftError::Data(format!(
                    "{}: only {} frontal images with {} as the only one of the five classes; \
                     CheXpert-5x200 needs {} (lower data.test.per_class)",
                    csv.display(),
                    candidates.len(),
                    FIVE_CLASSES[k],
                    self.test.per_class
                )));
            }
            candidates.shuffle(&mut rng);
            selected.extend_from_slice(&candidates[..self.test.per_class]);
        }
        Ok(selected)
    }

    fn selection_file(&self, rows: &[Row], selected: &[usize], csv: &Path) -> RunFile {
        let mut contents = format!(
            "# CheXpert-5x200 drawn from {} with seed {}, {} per class\nPath,class\n",
            csv.display(),
            self.test.seed,
            self.test.per_class
        );
        for (i, &index) in selected.iter().enumerate() {
            contents.push_str(&format!(
                "{},{}\n",
                rows[index].path,
                FIVE_CLASSES[i / self.test.per_class]
            ));
        }
        RunFile {
            name: "chexpert-5x200.csv".into(),
            contents,
        }
    }

    /// A training or validation split: the kept views of `rows`, labelled with `labels`.
    fn labelled_split<'r>(
        &self,
        name: &str,
        rows: impl Iterator<Item = &'r Row>,
        augment: bool,
        bad: Arc<BadSamples>,
    ) -> Result<RecordSet, CleftError> {
        let names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        let records = rows
            .filter(|row| self.kept(row))
            .map(|row| self.record(row, &names))
            .collect();
        RecordSet::new(
            name,
            records,
            self.labels.clone(),
            self.image.clone(),
            augment,
            self.on_bad_sample,
            bad,
        )
    }

    /// Opens `split`: Train (train CSV, kept views, minus the 5x200 selection when it is drawn
    /// from the same CSV), Valid (`valid_csv`), Test (the 5x200 selection, 5 labels).
    pub fn open(&self, split: Split) -> Result<RecordSet, CleftError> {
        self.check()?;
        let bad = Arc::new(BadSamples::default());
        let test_csv = self.test.csv.clone().unwrap_or_else(|| self.csv.clone());
        match split {
            Split::Train => {
                let rows = self.read_rows(&self.csv, &bad)?;
                let mut excluded = HashSet::new();
                if self.test.csv.is_none() {
                    for index in self.select_five(&rows, &self.csv)? {
                        excluded.insert(rows[index].path.clone());
                    }
                }
                let kept = rows.iter().filter(|row| !excluded.contains(&row.path));
                self.labelled_split("chexpert-train", kept, true, bad)
            }
            Split::Valid => {
                let csv = self.valid_csv.as_ref().ok_or_else(|| {
                    CleftError::Invalid("data.valid_csv is not set: no validation split".into())
                })?;
                let rows = self.read_rows(csv, &bad)?;
                self.labelled_split("chexpert-valid", rows.iter(), false, bad)
            }
            Split::Test => {
                let rows = self.read_rows(&test_csv, &bad)?;
                let selected = self.select_five(&rows, &test_csv)?;
                let records = selected
                    .iter()
                    .map(|&index| self.record(&rows[index], &FIVE_CLASSES))
                    .collect();
                let file = self.selection_file(&rows, &selected, &test_csv);
                Ok(RecordSet::new(
                    "chexpert-5x200",
                    records,
                    FIVE_CLASSES.iter().map(|s| s.to_string()).collect(),
                    self.image.clone(),
                    false,
                    self.on_bad_sample,
                    bad,
                )?
                .with_run_file(file))
            }
        }
    }
}

/// The data set's image shape from the image options, keyed for contract messages.
pub(crate) fn image_shape_of(image: &ImageOptions) -> ImageShape {
    ImageShape {
        channels: Keyed::new(image.channels, "data.image.channels"),
        size: Keyed::new(image.image_size, "data.image.image_size"),
    }
}

/// Inference reads images as evaluation does: the `[data.image]` pipeline, never augmented.
pub(crate) fn preprocessor_of(
    image: &ImageOptions,
) -> Result<Box<dyn cleft_core::preprocess::ImagePreprocessor>, CleftError> {
    image.validate("data.image")?;
    let mut options = image.clone();
    options.augment.enabled = false;
    Ok(Box::new(options))
}

file_dataset!(
    ChexpertConfig,
    "chexpert",
    "CheXpert CSV + images; label-synthesised captions; CheXpert-5x200 as the test split"
);

/// `[data] type = "chexpert-5x200"`: only the zero-shot split, for evaluating on CheXpert
/// without pre-training on it (the test split; training and validation are refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chexpert5x200Config {
    /// The CSV to draw from.
    pub csv: PathBuf,
    /// Folder the `Path` column is relative to.
    pub image_root: PathBuf,
    /// Images per class.
    pub per_class: usize,
    /// Seed of the draw.
    pub seed: u64,
    /// How −1 counts.
    pub uncertain: Uncertain,
    /// Image reading and preprocessing.
    pub image: ImageOptions,
    /// `fail` or `skip`.
    pub on_bad_sample: OnBadSample,
}

impl Default for Chexpert5x200Config {
    fn default() -> Self {
        let base = ChexpertConfig::default();
        Self {
            csv: base.csv,
            image_root: base.image_root,
            per_class: 200,
            seed: 42,
            uncertain: base.uncertain,
            image: base.image,
            on_bad_sample: base.on_bad_sample,
        }
    }
}

#[typetag::serde(name = "chexpert-5x200")]
impl DatasetConfig for Chexpert5x200Config {
    fn build(&self, split: Split) -> Result<Box<dyn ImageTextDataset>, CleftError> {
        if split != Split::Test {
            return Err(CleftError::Invalid(format!(
                "data type `chexpert-5x200` is an evaluation set with only the test split \
                 ({split:?} asked); use type `chexpert` to train"
            )));
        }
        let full = ChexpertConfig {
            csv: self.csv.clone(),
            image_root: self.image_root.clone(),
            uncertain: self.uncertain,
            test: FiveByTwoHundred {
                per_class: self.per_class,
                seed: self.seed,
                csv: Some(self.csv.clone()),
            },
            image: self.image.clone(),
            on_bad_sample: self.on_bad_sample,
            ..ChexpertConfig::default()
        };
        Ok(Box::new(full.open(Split::Test)?))
    }

    fn image_shape(&self) -> Result<Option<ImageShape>, CleftError> {
        Ok(Some(image_shape_of(&self.image)))
    }

    fn preprocessor(
        &self,
    ) -> Result<Option<Box<dyn cleft_core::preprocess::ImagePreprocessor>>, CleftError> {
        Ok(Some(preprocessor_of(&self.image)?))
    }
}

cleft_core::register_component!(
    Dataset,
    "chexpert-5x200",
    "CheXpert-5x200 zero-shot split (5 classes x 200 frontal single-finding images, seeded)",
    Chexpert5x200Config
);
