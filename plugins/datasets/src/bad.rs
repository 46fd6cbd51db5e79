//! What happens to a sample that cannot be read: `on_bad_sample = "fail"` or `"skip"`.

use std::sync::Mutex;

use cleft_core::CleftError;
use cleft_core::data::RunFile;
use serde::{Deserialize, Serialize};

/// Policy for a missing file, an unreadable image or a malformed CSV row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadSample {
    /// Stop with an error naming the file and row (default).
    #[default]
    Fail,
    /// Leave the sample out, count it and list it in the run directory (`skipped.tsv`).
    Skip,
}

/// The samples left out so far, each with where it came from and why.
#[derive(Debug, Default)]
pub struct BadSamples {
    skipped: Mutex<Vec<(String, String)>>,
}

impl BadSamples {
    /// Under `Fail` the error `source: message`; under `Skip` records it and returns `Ok`.
    pub fn handle(
        &self,
        policy: OnBadSample,
        source: &str,
        message: &str,
    ) -> Result<(), CleftError> {
        match policy {
            OnBadSample::Fail => Err(CleftError::Data(format!(
                "{source}: {message} (set `on_bad_sample = \"skip\"` in [data] to leave such samples out)"
            ))),
            OnBadSample::Skip => {
                let mut skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
                if !skipped.iter().any(|(s, _)| s == source) {
                    skipped.push((source.to_string(), message.to_string()));
                }
                Ok(())
            }
        }
    }

    /// `skipped.tsv` (source, reason), or nothing when none was skipped.
    pub fn run_file(&self, dataset: &str) -> Option<RunFile> {
        let skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        if skipped.is_empty() {
            return None;
        }
        let mut contents = String::from("source\treason\n");
        for (source, reason) in skipped.iter() {
            contents.push_str(&format!(
                "{source}\t{}\n",
                reason.replace(['\t', '\n'], " ")
            ));
        }
        Some(RunFile {
            name: format!("skipped-{dataset}.tsv"),
            contents,
        })
    }
}
