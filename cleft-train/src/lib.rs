//! # cleft-train
//!
//! Training and evaluation on top of `cleft-core` (in the spirit of open_clip vs
//! open_clip_train): the data [`loader`] (worker threads, prefetch, deterministic order), the
//! stage-1 contrastive trainer and stage-2 prompt learning ([`prompt_stage`]), resumable
//! [`checkpoint`]s, per-step [`metrics`] and [`plots`], the one-process-per-run [`lock`], and
//! zero-shot [`eval`]uation, all reached through one [`Experiment`] built once from a config. An
//! application that only embeds or classifies depends on `cleft-core` alone
//! (`cleft_core::inference::Predictor`, re-exported here as [`Predictor`]).

pub mod checkpoint;
pub mod eval;
pub mod experiment;
pub mod loader;
pub mod lock;
pub mod metrics;
mod micro_batch;
pub mod plots;
pub mod prompt_stage;
pub mod replicas;
pub mod replication;
pub mod run_files;
pub mod schedule;
pub mod state;
mod step_log;
mod trainer;

/// Inference moved to `cleft_core::inference`; re-exported so existing paths keep working.
pub use cleft_core::inference;
pub use cleft_core::inference::{Predictor, PromptChoice};
pub use eval::{EvalOptions, EvalReport, PromptSource, evaluate_run};
pub use experiment::Experiment;
pub use lock::RunLock;
pub use metrics::StepMetrics;
pub use prompt_stage::{PromptModel, PromptOutcome, initial_prompt, prompt_loss, train_prompt};
pub use replicas::{ReplicatedRun, train_replicas, train_replicas_with};
pub use state::TrainState;
pub use trainer::{
    TrainEnd, TrainOptions, TrainOutcome, gradient_norm, gradient_squares, latest_checkpoint,
    optimizer_for, train_contrastive,
};
