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
