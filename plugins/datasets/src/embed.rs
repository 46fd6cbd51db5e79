//! EMBED mammography (`[data] type = "embed"`): the metadata table (one row per DICOM image)
//! joined with the clinical table (one row per exam finding) on accession and side, giving
//! BI-RADS (7 classes) or breast density (4 classes) per 2-D image.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleft_core::CleftError;
use cleft_core::registry::Split;
use cleft_imaging::ImageOptions;
use serde::{Deserialize, Serialize};

use crate::bad::{BadSamples, OnBadSample};
use crate::records::{Record, RecordSet};
use crate::split::SplitFractions;
use crate::table::{Table, cell};

/// BI-RADS assessment letters of the `asses` column, in label order 0..6.
pub const BIRADS_LETTERS: [&str; 7] = ["A", "N", "B", "P", "S", "M", "K"];

/// BI-RADS class names (zero-shot class names), label order.
pub const BIRADS_CLASSES: [&str; 7] = [
    "birads score 0: additional imaging needed",
    "birads score 1: negative",
    "birads score 2: benign finding",
    "birads score 3: probably benign finding",
    "birads score 4: suspicious abnormality",
    "birads score 5: highly suggestive of malignancy",
    "birads score 6: known biopsy-proven malignancy",
];

/// Density class names for `tissueden` 1..4, label order.
pub const DENSITY_CLASSES: [&str; 4] = [
    "breast tissue density 1: almost entirely fat",
    "breast tissue density 2: scattered fibroglandular densities",
    "breast tissue density 3: heterogeneously dense",
    "breast tissue density 4: extremely dense",
];

/// Which label EMBED provides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedTask {
    /// BI-RADS assessment, 7 classes.
    #[default]
    Birads,
    /// Breast density, 4 classes.
    Density,
}

/// `[data] type = "embed"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// `EMBED_OpenData_metadata.csv` (columns `empi_anon`, `acc_anon`, `anon_dicom_path`,
    /// `ImageLateralityFinal`, `FinalImageType`).
    pub metadata_csv: PathBuf,
    /// `EMBED_OpenData_clinical.csv` (columns `acc_anon`, `side`, `asses`, `tissueden`).
    pub clinical_csv: PathBuf,
    /// Folder the DICOM paths are relative to (after `strip_prefix`).
    pub image_root: PathBuf,
    /// Prefix removed from `anon_dicom_path` (the absolute paths EMBED ships).
    pub strip_prefix: String,
    /// BI-RADS or density.
    pub task: EmbedTask,
    /// Patient-level split.
    pub split: SplitFractions,
    /// Image reading and preprocessing.
    pub image: ImageOptions,
    /// `fail` or `skip`.
    pub on_bad_sample: OnBadSample,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            metadata_csv: PathBuf::from("embed/EMBED_OpenData_metadata.csv"),
            clinical_csv: PathBuf::from("embed/EMBED_OpenData_clinical.csv"),
            image_root: PathBuf::from("embed"),
            strip_prefix: String::new(),
            task: EmbedTask::Birads,
            split: SplitFractions::default(),
            image: ImageOptions::default(),
            on_bad_sample: OnBadSample::Fail,
        }
    }
}

impl EmbedConfig {
    fn classes(&self) -> &'static [&'static str] {
        match self.task {
            EmbedTask::Birads => &BIRADS_CLASSES,
            EmbedTask::Density => &DENSITY_CLASSES,
        }
    }

    /// The class of a clinical row, `None` for values outside the task (e.g. `X`, density 5).
    fn class_of(&self, asses: &str, density: &str) -> Option<usize> {
        match self.task {
            EmbedTask::Birads => BIRADS_LETTERS.iter().position(|l| *l == asses),
            EmbedTask::Density => match density.parse::<f64>() {
                Ok(d) if d.fract() == 0.0 && (1.0..=4.0).contains(&d) => Some(d as usize - 1),
                _ => None,
            },
        }
    }

    fn image_path(&self, path: &str) -> PathBuf {
        let relative = path
            .strip_prefix(self.strip_prefix.as_str())
            .unwrap_or(path);
        self.image_root
            .join(Path::new(relative.trim_start_matches('/')))
    }

    /// Opens one split (patients shuffled with `split.seed`). Images with no clinical row of a
    /// known class on their accession and side are not part of the task (not an error); one
    /// with two different classes on its side is a bad sample.
    pub fn open(&self, split: Split) -> Result<RecordSet, CleftError> {
        self.image.validate("data.image")?;
        self.split.check("data.split")?;
        let bad = Arc::new(BadSamples::default());
        let clinical = Table::read(&self.clinical_csv, self.on_bad_sample, &bad)?;
        let acc_col = clinical.column("acc_anon")?;
        let side_col = clinical.column("side")?;
        let asses_col = clinical.column("asses")?;
        let density_col = clinical.column("tissueden")?;
        // (accession, side) -> classes found
        let mut classes: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (_, row) in clinical.rows() {
            if let Some(class) = self.class_of(cell(row, asses_col), cell(row, density_col)) {
                let key = (
                    cell(row, acc_col).to_string(),
                    cell(row, side_col).to_uppercase(),
                );
                let found = classes.entry(key).or_default();
                if !found.contains(&class) {
                    found.push(class);
                }
            }
        }
        let metadata = Table::read(&self.metadata_csv, self.on_bad_sample, &bad)?;
        let patient_col = metadata.column("empi_anon")?;
        let acc_col = metadata.column("acc_anon")?;
        let path_col = metadata.column("anon_dicom_path")?;
        let side_col = metadata.column("ImageLateralityFinal")?;
        let type_col = metadata.optional_column("FinalImageType");
        let names = self.classes();
        let mut by_patient: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for (source, row) in metadata.rows() {
            if type_col.is_some_and(|c| !cell(row, c).eq_ignore_ascii_case("2D")) {
                continue;
            }
            let acc = cell(row, acc_col).to_string();
            let side = cell(row, side_col).to_uppercase();
            // An exact-side finding wins over a bilateral ("B") one.
            let found = classes
                .get(&(acc.clone(), side))
                .or_else(|| classes.get(&(acc, "B".to_string())));
            let class = match found.map(Vec::as_slice) {
                None | Some([]) => continue,
                Some([only]) => *only,
                Some(several) => {
                    let listed: Vec<&str> = several.iter().map(|&k| names[k]).collect();
                    bad.handle(
                        self.on_bad_sample,
                        &source,
                        &format!(
                            "conflicting clinical labels for this image: {}",
                            listed.join(" / ")
                        ),
                    )?;
                    continue;
                }
            };
            let mut labels = vec![0.0; names.len()];
            labels[class] = 1.0;
            let caption = format!(
                "this is a breast 2d full-field digital mammogram of a patient with {}.",
                names[class]
            );
            by_patient
                .entry(cell(row, patient_col).to_string())
                .or_default()
                .push(Record {
                    image: self.image_path(cell(row, path_col)),
                    caption,
                    labels,
                    source,
                });
        }
        let patients: Vec<Vec<Record>> = by_patient.into_values().collect();
        let records = self
            .split
            .members(patients.len(), split)
            .into_iter()
            .flat_map(|i| patients[i].clone())
            .collect();
        RecordSet::new(
            format!("embed-{:?}-{split:?}", self.task).to_lowercase(),
            records,
            names.iter().map(|s| s.to_string()).collect(),
            self.image.clone(),
            split == Split::Train,
            self.on_bad_sample,
            bad,
        )
    }
}

file_dataset!(
    EmbedConfig,
    "embed",
    "EMBED mammography: metadata + clinical tables -> BI-RADS (7) or density (4) per 2-D image"
);
