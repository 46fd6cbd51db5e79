//! End-to-end tests across cleft crates live in `tests/`; this library holds shared helpers.

use cleft_core::model::ClipModel;
use cleft_core::{ExperimentConfig, Registry};

/// The tiny CPU configuration shipped in `configs/tiny/cleft.toml`.
pub const TINY_CONFIG: &str = include_str!("../../configs/tiny/cleft.toml");

/// The registry of every built-in plugin.
pub fn registry() -> Registry {
    cleft_builtins::registry()
}

/// Parses config text with the built-in registry.
pub fn parse(text: &str) -> cleft_core::Result<ExperimentConfig> {
    ExperimentConfig::parse(text, "test.toml", &registry())
}

/// The tiny configuration shrunk further for fast tests, writing into `run_dir`.
pub fn fast_config(run_dir: &std::path::Path, steps: usize) -> ExperimentConfig {
    fast_config_from(TINY_CONFIG, run_dir, steps)
}

/// Like [`fast_config`], from config text (e.g. the tiny config with edits).
pub fn fast_config_from(text: &str, run_dir: &std::path::Path, steps: usize) -> ExperimentConfig {
    let mut config = parse(text).expect("config parses");
    config.train.steps = steps;
    config.train.batch_size = 16;
    config.train.warmup_steps = 2;
    config.output.dir = run_dir.to_path_buf();
    config
}

/// Every float parameter of `model` by dotted path, in visit order, as `f32`.
pub fn params(model: &ClipModel) -> Vec<(String, Vec<f32>)> {
    cleft_testing::param_values(model)
}

/// A finished stage, owned (the [`cleft_train::Experiment`] that trained it is dropped, which
/// unlocks the run directory).
#[derive(Debug)]
pub struct Trained {
    /// The stage's per-step metrics.
    pub history: Vec<cleft_train::StepMetrics>,
    /// Completed or interrupted.
    pub end: cleft_train::TrainEnd,
    /// The stage-1 model after the stage.
    pub model: ClipModel,
    /// Stage 2's model, after [`train_stage2`].
    pub prompt: Option<cleft_train::PromptModel>,
    /// Stage 2's outcome (its directory and zero-shot report) when it completed.
    pub outcome: Option<cleft_train::PromptOutcome>,
}

/// Trains `stage` of `config` where `launcher` says, through
/// [`cleft_train::Experiment::train`]; stage 2 starts from the run directory's stage-1 weights.
pub fn train(
    config: &ExperimentConfig,
    launcher: cleft_train::Launcher,
    stage: cleft_train::Stage,
    options: &cleft_train::TrainOptions,
) -> cleft_core::Result<Trained> {
    let mut experiment = cleft_train::Experiment::build(config, launcher)?;
    if stage == cleft_train::Stage::Prompt {
        experiment.load_stage1()?;
    }
    let report = experiment.train(stage, options)?;
    let prompt = experiment.prompt_model().cloned();
    Ok(Trained {
        history: report.history,
        end: report.end,
        model: experiment.into_model(),
        prompt,
        outcome: report.prompt,
    })
}

/// Stage 1 of `config` on `device`.
pub fn train_stage1(
    config: &ExperimentConfig,
    device: &cleft_core::burn::prelude::Device,
    options: &cleft_train::TrainOptions,
) -> cleft_core::Result<Trained> {
    train(
        config,
        device.into(),
        cleft_train::Stage::Contrastive,
        options,
    )
}

/// Stage 2 of `config` on `device` from the run directory's stage-1 weights.
pub fn train_stage2(
    config: &ExperimentConfig,
    device: &cleft_core::burn::prelude::Device,
    options: &cleft_train::TrainOptions,
) -> cleft_core::Result<Trained> {
    train(config, device.into(), cleft_train::Stage::Prompt, options)
}

/// Stage 1 of `config` on in-process replicas, one per device; rank 0's view.
pub fn train_replicas(
    config: &ExperimentConfig,
    devices: &[cleft_core::burn::prelude::Device],
    options: &cleft_train::TrainOptions,
) -> cleft_core::Result<Trained> {
    let launcher = cleft_train::Launcher::replicas(devices.to_vec());
    train(config, launcher, cleft_train::Stage::Contrastive, options)
}
