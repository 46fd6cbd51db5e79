//! Evaluation: zero-shot classification ([`zero_shot`]), the linear probe on frozen image
//! features ([`probe`]), their [`metrics`], report and plots; [`evaluate_run`](crate::evaluate_run)
//! uses them to evaluate a finished run.

pub mod features;
pub mod metrics;
pub mod plots;
pub mod probe;
pub mod report;
pub mod zero_shot;

pub use metrics::{ClassMetrics, ClassificationMetrics, classification_metrics, roc_auc};
pub use report::EvalReport;
pub use zero_shot::{ZeroShotReport, zero_shot, zero_shot_with};
