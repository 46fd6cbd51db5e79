//! How a training run is started, reported and stopped: the stage, the options, and the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which of CLEFT's two stages to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Stage 1: contrastive training of the encoders (PEFT on the text tower), the whole
    /// `[train]` recipe.
    #[default]
    Contrastive,
    /// Stage 2: the learned context prompt on the stage-1 model (`[prompt]`, `[prompt_train]`).
    Prompt,
}

/// How a training run starts, reports progress and can be stopped.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Continue from the newest checkpoint in the run directory instead of starting afresh.
    pub resume: bool,
    /// When set (e.g. by a Ctrl-C handler), the run checkpoints and returns
    /// [`TrainEnd::Interrupted`] before its next step.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl TrainOptions {
    /// Whether an interrupt was requested (checkpoint and stop before the next step).
    pub fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainEnd {
    /// Every configured step ran; the stage's final weights are written.
    Completed,
    /// Stopped on request after checkpointing; resume with [`TrainOptions::resume`].
    Interrupted {
        /// The checkpoint written on the way out.
        checkpoint: PathBuf,
    },
}
