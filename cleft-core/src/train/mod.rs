//! Stage-1 contrastive training.

pub mod checkpoint;
pub mod schedule;
mod trainer;

pub use trainer::{TrainOptions, TrainOutcome, StepMetrics, train_contrastive, optimizer_for};
