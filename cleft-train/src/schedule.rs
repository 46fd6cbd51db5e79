//! The learning-rate schedule of the reference code: linear warm-up, then cosine decay.

use cleft_core::config::{PromptTrainConfig, TrainConfig};

/// The warm-up + cosine schedule's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Total optimiser steps (the cosine reaches `final_lr` here).
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at step 0.
    pub warmup_start_lr: f64,
    /// Warm-up length.
    pub warmup_steps: usize,
    /// Final learning rate.
    pub final_lr: f64,
}

impl From<&TrainConfig> for Schedule {
    fn from(c: &TrainConfig) -> Self {
        Self {
            steps: c.steps,
            lr: c.lr,
            warmup_start_lr: c.warmup_start_lr,
            warmup_steps: c.warmup_steps,
            final_lr: c.final_lr,
        }
    }
}

impl From<&PromptTrainConfig> for Schedule {
    fn from(c: &PromptTrainConfig) -> Self {
        Self {
            steps: c.steps,
            lr: c.lr,
            warmup_start_lr: c.final_lr,
            warmup_steps: c.warmup_steps,
            final_lr: c.final_lr,
        }
    }
}

/// Learning rate at optimiser step `step` (0-based).
///
/// Rises linearly from `warmup_start_lr` to `lr` over `warmup_steps`, then follows a half cosine
/// from `lr` down to `final_lr` at step `steps`.
pub fn learning_rate(config: impl Into<Schedule>, step: usize) -> f64 {
    let config = config.into();
    if step < config.warmup_steps {
        let progress = step as f64 / config.warmup_steps as f64;
        return config.warmup_start_lr + (config.lr - config.warmup_start_lr) * progress;
    }
    let decay_steps = config.steps.saturating_sub(config.warmup_steps).max(1);
    let progress = ((step - config.warmup_steps) as f64 / decay_steps as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    config.final_lr + (config.lr - config.final_lr) * cosine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TrainConfig {
        TrainConfig {
            steps: 100,
            warmup_steps: 10,
            lr: 1e-3,
            warmup_start_lr: 1e-5,
            final_lr: 1e-6,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn warmup_starts_at_start_lr_and_is_linear() {
        let c = config();
        assert_eq!(learning_rate(&c, 0), 1e-5);
        let mid = learning_rate(&c, 5);
        assert!((mid - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-15);
    }

    #[test]
    fn cosine_peaks_after_warmup_halves_midway_and_ends_at_final() {
        let c = config();
        assert!((learning_rate(&c, 10) - 1e-3).abs() < 1e-15);
        let midpoint = learning_rate(&c, 55);
        assert!((midpoint - (1e-6 + 0.5 * (1e-3 - 1e-6))).abs() < 1e-12);
        assert!((learning_rate(&c, 100) - 1e-6).abs() < 1e-15);
        assert!((learning_rate(&c, 1000) - 1e-6).abs() < 1e-15);
    }
}
