//! Per-step metrics: JSON lines and CSV in the run directory.

use cleft_core::ErrorKind;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cleft_core::error::{CleftError, Result};

/// One training step's metrics (a line of `metrics.jsonl` and a row of `metrics.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 0-based optimiser step.
    pub step: usize,
    /// Loss of this step's batch (mean over accumulated micro-batches).
    pub loss: f64,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Throughput of this step.
    pub samples_per_sec: f64,
    /// Seconds this step waited for the data loader (its share of the step time is
    /// `data_wait_s · samples_per_sec / batch`).
    #[serde(default)]
    pub data_wait_s: f64,
    /// Objective-specific scalars (e.g. `logit_scale`, `i2t_acc`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, f64>,
}

/// Appends metrics to `metrics.jsonl` and `metrics.csv`.
pub struct MetricsLog {
    jsonl_path: PathBuf,
    jsonl: std::fs::File,
    csv_path: PathBuf,
    csv: std::fs::File,
    csv_header: bool,
}

const CSV_FIXED: [&str; 6] = [
    "step",
    "loss",
    "lr",
    "grad_norm",
    "samples_per_sec",
    "data_wait_s",
];

impl MetricsLog {
    /// Opens the logs in `run_dir`, keeping only the entries of steps before `first_step` (a
    /// resumed run drops what a killed run logged after its last checkpoint). Returns the kept
    /// entries.
    pub fn open(run_dir: &Path, first_step: usize) -> Result<(Self, Vec<StepMetrics>)> {
        let jsonl_path = run_dir.join("metrics.jsonl");
        let kept: Vec<StepMetrics> = match first_step {
            0 => Vec::new(),
            _ => read_metrics(&jsonl_path)?
                .into_iter()
                .filter(|m| m.step < first_step)
                .collect(),
        };
        let csv_path = run_dir.join("metrics.csv");
        let mut log = Self {
            jsonl: create(&jsonl_path)?,
            jsonl_path,
            csv: create(&csv_path)?,
            csv_path,
            csv_header: false,
        };
        for metrics in &kept {
            log.append(metrics)?;
        }
        Ok((log, kept))
    }

    /// Appends one step.
    pub fn append(&mut self, metrics: &StepMetrics) -> Result<()> {
        let line = serde_json::to_string(metrics).expect("metrics serialise");
        writeln!(self.jsonl, "{line}").map_err(|e| CleftError::io(&self.jsonl_path, e))?;
        let mut csv = String::new();
        if !self.csv_header {
            let header: Vec<&str> = CSV_FIXED
                .iter()
                .copied()
                .chain(metrics.extra.keys().map(String::as_str))
                .collect();
            csv += &(header.join(",") + "\n");
            self.csv_header = true;
        }
        let fixed = [
            metrics.step as f64,
            metrics.loss,
            metrics.lr,
            metrics.grad_norm,
            metrics.samples_per_sec,
            metrics.data_wait_s,
        ];
        let values: Vec<String> = fixed
            .iter()
            .chain(metrics.extra.values())
            .map(|v| v.to_string())
            .collect();
        csv += &(values.join(",") + "\n");
        self.csv
            .write_all(csv.as_bytes())
            .map_err(|e| CleftError::io(&self.csv_path, e))
    }
}

fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| CleftError::io(path, e))
}

/// Reads `metrics.jsonl`; a malformed line is an error naming the file and line (a torn last line
/// from a killed process is dropped, since it was never complete).
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CleftError::io(path, e)),
    };
    let complete = if text.ends_with('\n') {
        &text[..]
    } else {
        &text[..text.rfind('\n').map_or(0, |i| i + 1)]
    };
    complete
        .lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| {
                CleftError::caused(
                    ErrorKind::Data,
                    format!("{}:{}: malformed metrics line", path.display(), index + 1),
                    e,
                )
            })
        })
        .collect()
}
