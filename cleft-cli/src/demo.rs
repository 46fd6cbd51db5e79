//! `cleft demo`: the tiny default configuration, trained and evaluated end to end.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use cleft_core::burn::module::Module;
use cleft_core::burn::prelude::Device;
use cleft_core::device::parse_device;
use cleft_core::eval::{ZeroShotReport, zero_shot};
use cleft_core::model::ClipModel;
use cleft_core::registry::Split;
use cleft_core::train::checkpoint::write_atomic;
use cleft_core::train::{TrainOptions, train_contrastive};
use cleft_core::{ExperimentConfig, Registry};

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
    let outcome = train_contrastive(
        &config,
        &device,
        &TrainOptions {
            progress: true,
            ..Default::default()
        },
    )?;
    let first = outcome.history.first().map(|m| m.loss).unwrap_or(f64::NAN);
    let last = outcome.history.last().map(|m| m.loss).unwrap_or(f64::NAN);
    eprintln!("training loss {first:.3} -> {last:.3}");
    let report = evaluate(&config, &outcome.model, &device, Split::Test)?;
    print_report(&report);
    println!(
        "run directory: {}  ({:.0} s)",
        outcome.run_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Zero-shot evaluation of `model` on `split` of the config's data set; writes
/// `zero_shot.json` into the run directory.
pub fn evaluate(
    config: &ExperimentConfig,
    model: &ClipModel,
    device: &Device,
    split: Split,
) -> Result<ZeroShotReport> {
    let dataset = config.data.build(split)?;
    let model = model.valid();
    let report = zero_shot(
        &model,
        dataset.as_ref(),
        &config.eval.prompt_template,
        config.eval.batch_size,
        device,
    )?;
    let path = config.output.dir.join("zero_shot.json");
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
