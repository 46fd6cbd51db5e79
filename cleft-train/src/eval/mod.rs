//! Evaluation: zero-shot classification ([`zero_shot`]), the linear probe on frozen image
//! features ([`probe`]), their [`metrics`], and [`evaluate_run`], which evaluates a finished run
//! and writes its report (`eval.json`, `eval.md`, `roc.png`, `confusion.png`).

pub mod features;
pub mod metrics;
pub mod plots;
pub mod probe;
pub mod report;
mod run;
pub mod zero_shot;

pub use metrics::{ClassMetrics, ClassificationMetrics, classification_metrics, roc_auc};
pub use report::EvalReport;
pub use run::{
    EvalOptions, PromptSource, evaluate_run, learned_class_embeddings, learned_prompt_path,
    load_learned_prompt, sha256_hex,
};
pub use zero_shot::{ZeroShotReport, zero_shot, zero_shot_with};
