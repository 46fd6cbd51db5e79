//! RSNA Pneumonia Detection (`[data] type = "rsna"`): `stage_2_train_labels.csv`
//! (`patientId, x, y, width, height, Target`, one row per box, several per patient) with the
//! DICOM images `stage_2_train_images/{patientId}.dcm`; one sample per patient.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cleft_core::CleftError;
use cleft_core::registry::Split;
use cleft_imaging::ImageOptions;
use serde::{Deserialize, Serialize};

use crate::bad::{BadSamples, OnBadSample};
use crate::records::{Record, RecordSet};
use crate::split::SplitFractions;
use crate::table::{Table, cell};

/// The two classes, in label order (zero-shot class names).
pub const RSNA_CLASSES: [&str; 2] = ["No Findings", "Pneumonia"];

/// `[data] type = "rsna"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RsnaConfig {
    /// `stage_2_train_labels.csv`.
    pub csv: PathBuf,
    /// Folder of `{patientId}.dcm`.
    pub image_dir: PathBuf,
    /// Patient-level split (the data set ships unsplit).
    pub split: SplitFractions,
    /// Image reading and preprocessing.
    pub image: ImageOptions,
    /// `fail` or `skip`.
    pub on_bad_sample: OnBadSample,
}

impl Default for RsnaConfig {
    fn default() -> Self {
        Self {
            csv: PathBuf::from("rsna/stage_2_train_labels.csv"),
            image_dir: PathBuf::from("rsna/stage_2_train_images"),
            split: SplitFractions::default(),
            image: ImageOptions::default(),
            on_bad_sample: OnBadSample::Fail,
        }
    }
}

impl RsnaConfig {
    /// Opens one split (patients shuffled with `split.seed`).
    pub fn open(&self, split: Split) -> Result<RecordSet, CleftError> {
        self.image.validate("data.image")?;
        self.split.check("data.split")?;
        let bad = Arc::new(BadSamples::default());
        let table = Table::read(&self.csv, self.on_bad_sample, &bad)?;
        let id_col = table.column("patientId")?;
        let target_col = table.column("Target")?;
        // patientId -> (first source, pneumonia?)
        let mut patients: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for (source, row) in table.rows() {
            let id = cell(row, id_col);
            let target = match cell(row, target_col) {
                "0" => false,
                "1" => true,
                other => {
                    bad.handle(
                        self.on_bad_sample,
                        &source,
                        &format!("column `Target` = `{other}`; expected 0 or 1"),
                    )?;
                    continue;
                }
            };
            if id.is_empty() {
                bad.handle(self.on_bad_sample, &source, "empty `patientId`")?;
                continue;
            }
            let entry = patients.entry(id.to_string()).or_insert((source, false));
            entry.1 |= target;
        }
        let patients: Vec<_> = patients.into_iter().collect();
        let records = self
            .split
            .members(patients.len(), split)
            .into_iter()
            .map(|i| {
                let (id, (source, pneumonia)) = &patients[i];
                let k = usize::from(*pneumonia);
                let mut labels = vec![0.0; 2];
                labels[k] = 1.0;
                Record {
                    image: self.image_dir.join(format!("{id}.dcm")),
                    caption: format!(
                        "this is a chest x ray of a patient with {}",
                        RSNA_CLASSES[k].to_lowercase()
                    ),
                    labels,
                    source: source.clone(),
                }
            })
            .collect();
        RecordSet::new(
            format!("rsna-{split:?}").to_lowercase(),
            records,
            RSNA_CLASSES.iter().map(|s| s.to_string()).collect(),
            self.image.clone(),
            split == Split::Train,
            self.on_bad_sample,
            bad,
        )
    }
}

file_dataset!(
    RsnaConfig,
    "rsna",
    "RSNA pneumonia: stage_2_train_labels.csv + DICOM images, one sample per patient, seeded split"
);
