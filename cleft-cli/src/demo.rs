//! `cleft demo`: the tiny default configuration, trained and evaluated end to end.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use cleft_core::device::parse_device;
use cleft_core::registry::Split;
use cleft_core::store::write_atomic;
use cleft_core::{ExperimentConfig, Registry};
use cleft_train::eval::ZeroShotReport;
use cleft_train::{Experiment, Stage, TrainOptions};

/// The demo configuration, embedded so the demo needs no files.
pub const DEMO_CONFIG: &str = include_str!("../../configs/tiny/cleft.toml");

pub fn run(registry: &Registry, device: &str, steps: Option<usize>, output: PathBuf) -> Result<()> {
    let started = Instant::now();
    let mut config =
        ExperimentConfig::parse(DEMO_CONFIG, "configs/tiny/cleft.toml (embedded)", registry)?;
    config.output.dir = output;
    if let Some(steps) = steps {
        config.train.steps = steps;
    }
    let device = parse_device(device)?;
    eprintln!(
        "cleft demo: training the tiny CLEFT configuration for {} steps on synthetic chest radiographs ({device:?})",
        config.train.steps
    );
    let mut experiment = Experiment::build(&config, &device)?;
    let history = experiment
        .train(
            Stage::Contrastive,
            &TrainOptions {
                progress: true,
                ..Default::default()
            },
        )?
        .history;
    let first = history.first().map(|m| m.loss).unwrap_or(f64::NAN);
    let last = history.last().map(|m| m.loss).unwrap_or(f64::NAN);
    eprintln!("training loss {first:.3} -> {last:.3}");
    let (steps, batch) = (history.len() as f64, config.train.batch_size as f64);
    let step_time: f64 = history.iter().map(|m| batch / m.samples_per_sec).sum();
    let waited: f64 = history.iter().map(|m| m.data_wait_s).sum();
    eprintln!(
        "{:.1} steps/s; the trainer waited for data {:.2}% of the step time",
        steps / step_time,
        100.0 * waited / step_time
    );
    let report = evaluate(&experiment, Split::Test)?;
    print_report(&report);
    println!(
        "run directory: {}  ({:.0} s)",
        config.output.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Zero-shot evaluation of the experiment's model on `split`; writes `zero_shot.json` into the
/// run directory.
pub fn evaluate(experiment: &Experiment, split: Split) -> Result<ZeroShotReport> {
    let report = experiment.evaluate(split)?;
    let path = experiment.config().output.dir.join("zero_shot.json");
    let json = serde_json::to_string_pretty(&report)?;
    write_atomic(&path, json.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(report)
}

pub fn print_report(report: &ZeroShotReport) {
    println!(
        "zero-shot accuracy: {:.1}% on {} held-out images ({} classes; chance {:.1}%), macro AUC {:.3}",
        100.0 * report.accuracy,
        report.images,
        report.classes.len(),
        100.0 * report.chance,
        report.macro_auc
    );
}
