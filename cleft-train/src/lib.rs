//! # cleft-train
//!
//! Training and evaluation on top of `cleft-core` (in the spirit of open_clip vs
//! open_clip_train): one [`Experiment`] built once from a config and a [`Launcher`] (one device,
//! in-process replicas, or a rank of an MPI group) trains either [`Stage`] through one training
//! loop (resume, interrupt, logging, checkpoints), with the data [`loader`] (worker threads,
//! prefetch, deterministic order), resumable [`checkpoint`]s, per-step [`metrics`] and
//! [`plots`], the one-process-per-run [`lock`], and zero-shot [`eval`]uation. An
//! application that only embeds or classifies depends on `cleft-core` alone
//! (`cleft_core::inference::Predictor`, re-exported here as [`Predictor`]).

pub mod checkpoint;
mod contrastive;
mod driver;
pub mod eval;
mod evaluate;
pub mod experiment;
pub mod launch;
pub mod loader;
pub mod lock;
pub mod metrics;
pub mod optim;
pub mod options;
pub mod plots;
pub mod prompt_stage;
pub mod replication;
pub mod run_files;
pub mod schedule;
pub mod state;
mod step_log;

pub use checkpoint::latest_checkpoint;
/// Inference moved to `cleft_core::inference`; re-exported so existing paths keep working.
pub use cleft_core::inference;
pub use cleft_core::inference::{Predictor, PromptChoice};
pub use eval::EvalReport;
pub use evaluate::{
    EvalOptions, PromptSource, evaluate_run, learned_class_embeddings, learned_prompt_path,
    load_learned_prompt, sha256_hex,
};
pub use experiment::{Experiment, TrainReport};
pub use launch::Launcher;
pub use lock::RunLock;
pub use metrics::StepMetrics;
pub use optim::{gradient_norm, gradient_squares, optimizer_for};
pub use options::{Stage, TrainEnd, TrainOptions};
pub use prompt_stage::{PromptModel, PromptOutcome, initial_prompt, prompt_loss};
pub use state::TrainState;
