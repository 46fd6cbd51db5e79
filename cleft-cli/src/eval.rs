//! `cleft eval --run DIR`: zero-shot and linear probe of a finished run.

use std::path::Path;

use anyhow::{Context, Result};
use cleft_core::device::open_device;
use cleft_core::{ExperimentConfig, Registry};
use cleft_train::{EvalOptions, EvalReport, PromptSource, evaluate_run};

/// Zero-shot prompt source on the command line.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prompt {
    /// The config's `[eval]` templates.
    Template,
    /// The stage-2 learned context (`RUN_DIR/prompt/prompt.safetensors`).
    Learned,
}

impl From<Prompt> for PromptSource {
    fn from(prompt: Prompt) -> Self {
        match prompt {
            Prompt::Template => PromptSource::Template,
            Prompt::Learned => PromptSource::Learned,
        }
    }
}

/// Evaluates `run_dir` on `device` (opened in the run's precision) and writes its report.
pub fn evaluate(
    registry: &Registry,
    run_dir: &Path,
    device: &str,
    options: &EvalOptions,
) -> Result<EvalReport> {
    let config_path = run_dir.join("config.toml");
    let config = ExperimentConfig::load(&config_path, registry)
        .with_context(|| format!("{} is not a run directory", run_dir.display()))?;
    let device = open_device(device, config.train.precision)?;
    evaluate_run(run_dir, registry, options, &device)
        .with_context(|| format!("evaluating {}", run_dir.display()))
}

/// `cleft eval`: evaluates, prints every metric as tables and the files written.
pub fn run(
    registry: &Registry,
    run_dir: &Path,
    device: &str,
    probe: bool,
    prompt: Prompt,
) -> Result<()> {
    let options = EvalOptions {
        probe,
        prompt: prompt.into(),
    };
    let report = evaluate(registry, run_dir, device, &options)?;
    println!("{}", report.to_markdown());
    for file in &report.files {
        println!("wrote {}", file.display());
    }
    Ok(())
}
