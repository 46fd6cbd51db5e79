//! Stage-1 contrastive training.

pub mod checkpoint;
pub mod loader;
pub mod lock;
pub mod metrics;
pub mod plots;
pub mod prompt_stage;
pub mod schedule;
pub mod state;
mod trainer;

pub use lock::RunLock;
pub use metrics::StepMetrics;
pub use prompt_stage::{PromptModel, PromptOutcome, initial_prompt, prompt_loss, train_prompt};
pub use state::TrainState;
pub use trainer::{
    TrainEnd, TrainOptions, TrainOutcome, gradient_norm, gradient_squares, latest_checkpoint,
    optimizer_for, train_contrastive,
};
