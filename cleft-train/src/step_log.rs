//! The per-step metrics of a training run: scalars kept on the device until a flush reads them
//! all back at once, the logs in the run directory, and the progress bar.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use cleft_core::error::{CleftError, Result};

use crate::metrics::{MetricsLog, StepMetrics};

/// A finished step whose scalars are still on the device.
pub(crate) struct PendingStep {
    pub(crate) step: usize,
    pub(crate) lr: f64,
    pub(crate) loss: Tensor<1>,
    pub(crate) grad_squares: Tensor<1>,
    pub(crate) metrics: Vec<(String, Tensor<1>)>,
    pub(crate) elapsed: f64,
    pub(crate) data_wait: f64,
    pub(crate) samples: f64,
}

/// Steps not yet read back; [`PendingSteps::read_back`] transfers all their scalars at once.
#[derive(Default)]
struct PendingSteps {
    steps: Vec<PendingStep>,
}

impl PendingSteps {
    fn push(&mut self, step: PendingStep) {
        self.steps.push(step);
    }

    /// One device→host transfer for every pending scalar; the first non-finite loss or gradient
    /// norm is an error naming its step (before any checkpoint could store its weights).
    fn read_back(&mut self, last_checkpoint: &Option<PathBuf>) -> Result<Vec<StepMetrics>> {
        let steps = std::mem::take(&mut self.steps);
        let Some(first) = steps.first() else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = first.metrics.iter().map(|(n, _)| n.clone()).collect();
        let per_step = 2 + names.len();
        let scalars: Vec<Tensor<1>> = steps
            .iter()
            .flat_map(|s| {
                [s.loss.clone(), s.grad_squares.clone()].into_iter().chain(
                    s.metrics
                        .iter()
                        .map(|(_, m)| m.clone().reshape([1]).inner()),
                )
            })
            .collect();
        let values: Vec<f64> = Tensor::cat(scalars, 0)
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .map_err(|e| {
                CleftError::Training(format!("cannot read the step scalars back: {e:?}"))
            })?;
        let mut out = Vec::with_capacity(steps.len());
        for (index, step) in steps.into_iter().enumerate() {
            let row = &values[index * per_step..(index + 1) * per_step];
            let (loss, grad_norm) = (row[0], row[1].sqrt());
            if !loss.is_finite() || !grad_norm.is_finite() {
                let last = last_checkpoint
                    .as_ref()
                    .map_or("none yet".to_string(), |dir| dir.display().to_string());
                return Err(CleftError::Training(format!(
                    "step {}: loss {loss}, gradient norm {grad_norm} — not finite; stopped                      (scalars are read every train.log_every steps and before each checkpoint,                      so no checkpoint holds weights from this step on; learning rate {:e});                      last good checkpoint: {last}",
                    step.step, step.lr
                )));
            }
            out.push(StepMetrics {
                step: step.step,
                loss,
                lr: step.lr,
                grad_norm,
                samples_per_sec: step.samples / step.elapsed,
                data_wait_s: step.data_wait,
                extra: names
                    .iter()
                    .cloned()
                    .zip(row[2..].iter().copied())
                    .collect(),
            });
        }
        Ok(out)
    }
}

/// The metrics of a run: steps waiting on the device, the logs in the run directory, and the
/// history read back so far.
pub(crate) struct StepLog {
    pending: PendingSteps,
    log: MetricsLog,
    pub(crate) history: Vec<StepMetrics>,
    describe: Box<dyn Fn(&StepMetrics) -> String>,
}

impl StepLog {
    /// Opens the logs of `run_dir` from `first_step` (see [`MetricsLog::open`]); `describe`
    /// writes the progress-bar message of a step.
    pub(crate) fn open(
        run_dir: &Path,
        first_step: usize,
        describe: impl Fn(&StepMetrics) -> String + 'static,
    ) -> Result<Self> {
        let (log, history) = MetricsLog::open(run_dir, first_step)?;
        Ok(Self {
            pending: PendingSteps::default(),
            log,
            history,
            describe: Box::new(describe),
        })
    }

    /// Keeps a finished step's device scalars for the next flush.
    pub(crate) fn push(&mut self, step: PendingStep) {
        self.pending.push(step);
    }

    /// Reads every pending step back (one transfer), logs it and shows the last on `progress`.
    pub(crate) fn flush(
        &mut self,
        last_checkpoint: &Option<PathBuf>,
        progress: &ProgressBar,
    ) -> Result<()> {
        for metrics in self.pending.read_back(last_checkpoint)? {
            self.log.append(&metrics)?;
            progress.set_message((self.describe)(&metrics));
            self.history.push(metrics);
        }
        Ok(())
    }
}

pub(crate) fn progress_bar(steps: usize, done: usize, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}  ETA {eta}")
            .expect("static progress template"),
    );
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}
