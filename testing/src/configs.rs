//! The tiny configuration made quick for tests that start real `cleft` processes.

use std::path::Path;

/// `configs/tiny/cleft.toml` as text.
pub const TINY_CONFIG: &str = include_str!("../../configs/tiny/cleft.toml");

/// How [`quick_tiny`] shrinks the tiny configuration.
#[derive(Debug, Clone, Copy)]
pub struct Quick<'a> {
    /// Optimiser steps.
    pub steps: usize,
    /// Training images (the test split keeps 50).
    pub train_size: usize,
    /// Lines added to `[train]` after `steps` (e.g. `checkpoint_every = 3`).
    pub train_extra: &'a str,
}

/// `text` (the tiny config, or an edit of it that keeps its `[train]`, `[data]` and `[output]`
/// lines) with `quick.steps` steps of 16 samples, 2 warm-up steps, `quick.train_size` training
/// and 50 test images, `quick.train_extra` in `[train]`, and the run directory `run_dir`.
///
/// # Panics
/// When `text` lacks one of the lines it rewrites (the tiny config changed).
pub fn quick_tiny(text: &str, quick: Quick<'_>, run_dir: &Path) -> String {
    let steps = match quick.train_extra {
        "" => format!("steps = {}", quick.steps),
        extra => format!("steps = {}\n{extra}", quick.steps),
    };
    let edits = [
        ("steps = 300", steps),
        ("batch_size = 32", "batch_size = 16".into()),
        ("warmup_steps = 30", "warmup_steps = 2".into()),
        (
            "train_size = 4000",
            format!("train_size = {}", quick.train_size),
        ),
        ("test_size = 500", "test_size = 50".into()),
        (
            "dir = \"runs/tiny-cleft\"",
            format!("dir = {:?}", run_dir.display().to_string()),
        ),
    ];
    edits.iter().fold(text.to_string(), |text, (from, to)| {
        assert!(
            text.contains(from),
            "the tiny config no longer has `{from}`"
        );
        text.replace(from, to.as_str())
    })
}
