//! Experiment configuration: one TOML file with a section per component and for training.
//!
//! ```toml
//! [vision]
//! type = "vit"
//! depth = 2
//!
//! [text]
//! type = "gpt2"
//!
//! [objective]
//! type = "clip"
//! ```
//! Component sections are resolved through the [`Registry`](crate::registry::Registry). Errors name the file, line and the
//! dotted key path; an unknown `type` lists the registered names of that kind.

//!
//! The types are here; reading and checking a file is in `config/parse.rs`
//! ([`ExperimentConfig::load`], [`ExperimentConfig::parse`]).

mod parse;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::registry::{
    DatasetConfig, ObjectiveConfig, PeftConfig, PromptLearnerConfig, TextEncoderConfig,
    VisionEncoderConfig,
};

/// Projection heads from encoder features to the shared embedding space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionConfig {
    /// Shared embedding dimension (CLEFT: 512).
    pub dim: usize,
    /// Whether the linear projections have a bias (CLEFT's `nn.Linear`: yes).
    pub bias: bool,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            dim: 512,
            bias: true,
        }
    }
}

/// Floating-point precision of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// float32 everywhere.
    F32,
    /// bfloat16 weights and compute (the device's default float type; pure bf16, no float32
    /// master weights), where the backend supports it.
    Bf16,
}

/// Stage-1 training settings (CLEFT's recipe as defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed for initialisation, shuffling and dropout.
    pub seed: u64,
    /// Number of optimiser steps.
    pub steps: usize,
    /// Images (and captions) per step.
    pub batch_size: usize,
    /// Peak learning rate after warm-up.
    pub lr: f64,
    /// Learning rate at step 0; warm-up rises linearly from it to `lr`.
    pub warmup_start_lr: f64,
    /// Warm-up length in steps.
    pub warmup_steps: usize,
    /// Learning rate reached by the cosine decay at `steps`.
    pub final_lr: f64,
    /// AdamW decoupled weight decay (not applied to 1-D parameters).
    pub weight_decay: f64,
    /// AdamW betas.
    pub betas: [f64; 2],
    /// AdamW epsilon.
    pub epsilon: f64,
    /// Clip the global gradient norm to this value, if set.
    pub grad_clip_norm: Option<f64>,
    /// Micro-batches of `batch_size` per optimiser step, in open_clip's `accum_freq` form: the
    /// objective sees all `grad_accumulation × batch_size` samples at once (each micro-batch is
    /// encoded twice: once for the cached embeddings, once for its gradients).
    pub grad_accumulation: usize,
    /// Read the step scalars (loss, gradient norm, objective metrics) back to the host every
    /// this many steps, in one transfer, and log them; a checkpoint also reads them first.
    pub log_every: usize,
    /// Data-loader worker threads (read, decode, augment, tokenise).
    pub workers: usize,
    /// Batches the loader prepares ahead of the trainer.
    pub prefetch: usize,
    /// Write a resumable checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Number of newest checkpoints kept.
    pub keep_checkpoints: usize,
    /// Floating-point precision; open the device with
    /// [`open_device`](crate::device::open_device) using it.
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            steps: 40_000,
            batch_size: 72,
            lr: 4e-5,
            warmup_start_lr: 1e-8,
            warmup_steps: 4_000,
            final_lr: 1e-8,
            weight_decay: 0.1,
            betas: [0.9, 0.999],
            epsilon: 1e-8,
            grad_clip_norm: None,
            grad_accumulation: 1,
            log_every: 10,
            workers: 2,
            prefetch: 4,
            checkpoint_every: 1_000,
            keep_checkpoints: 2,
            precision: Precision::F32,
        }
    }
}

/// Which stage-2 recipe trains the context prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptRecipe {
    /// The paper: encoders frozen, zero-shot cross-entropy of each single-finding image against
    /// the class prompts.
    Paper,
    /// The released code: InfoNCE against per-image label captions (images without a positive
    /// finding dropped); the ViT, image projection and logit scale keep training.
    Released,
}

/// Stage-2 (prompt context learning) settings: SGD with momentum, warm-up then cosine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptTrainConfig {
    /// Recipe.
    pub recipe: PromptRecipe,
    /// Optimiser steps.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at step 0 and at the end of the cosine.
    pub final_lr: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
}

impl Default for PromptTrainConfig {
    fn default() -> Self {
        Self {
            recipe: PromptRecipe::Paper,
            steps: 8_000,
            batch_size: 72,
            lr: 1e-4,
            final_lr: 1e-5,
            warmup_steps: 100,
            momentum: 0.9,
            weight_decay: 1e-3,
            checkpoint_every: 1_000,
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Zero-shot prompt; `{}` is replaced by the lower-cased class name. Used when `templates`
    /// is empty (the form every config before templates used).
    pub prompt_template: String,
    /// Zero-shot prompt templates (each with `{}`); when non-empty they replace
    /// `prompt_template`.
    pub templates: Vec<String>,
    /// With several templates: average each class's normalised embeddings over the templates
    /// and re-normalise (CLIP's prompt ensembling); otherwise the first template is the
    /// reported one and every template is also scored on its own.
    pub ensemble: bool,
    /// Images per evaluation batch.
    pub batch_size: usize,
    /// `[eval.probe]`: the linear probe on frozen image features.
    pub probe: ProbeConfig,
}

impl EvalConfig {
    /// The zero-shot templates in effect: `templates`, or `prompt_template` alone.
    pub fn effective_templates(&self) -> Vec<String> {
        if self.templates.is_empty() {
            vec![self.prompt_template.clone()]
        } else {
            self.templates.clone()
        }
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            prompt_template: "this is a chest x ray of a patient with {}".into(),
            templates: Vec::new(),
            ensemble: true,
            batch_size: 64,
            probe: ProbeConfig::default(),
        }
    }
}

/// Linear-probe settings: multinomial logistic regression on frozen image features, trained on
/// fractions of the training split, each drawn with every seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Fractions of the (single-label) training split, each in `(0, 1]`.
    pub fractions: Vec<f64>,
    /// One stratified subset per fraction and seed; results are averaged over the seeds.
    pub seeds: Vec<u64>,
    /// Full-batch optimiser steps.
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 penalty `weight_decay / 2 · ‖W‖²` on the weights (not the bias).
    pub weight_decay: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            fractions: vec![0.01, 0.1, 1.0],
            seeds: vec![42, 43, 44],
            steps: 500,
            lr: 0.01,
            weight_decay: 1e-4,
        }
    }
}

/// Where run artefacts go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Run directory (created; existing files are overwritten atomically).
    pub dir: PathBuf,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/cleft"),
        }
    }
}

/// A complete experiment: components, data, training, evaluation and output.
#[derive(Debug, Serialize)]
pub struct ExperimentConfig {
    /// `plugins = ["…"]`: shared-library plugins the config needs (absolute once parsed; a
    /// relative path in the file is relative to the file's directory). They must be loaded into
    /// the registry before parsing (`cleft_plugin_host::PluginHost::load_config_plugins`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PathBuf>,
    /// `[vision]`: the image encoder.
    pub vision: Box<dyn VisionEncoderConfig>,
    /// `[text]`: the text encoder.
    pub text: Box<dyn TextEncoderConfig>,
    /// `[peft]`: parameter-efficient fine-tuning of the text encoder; `None` trains it fully.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peft: Option<Box<dyn PeftConfig>>,
    /// `[prompt]`: learned context prompts (stage 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Box<dyn PromptLearnerConfig>>,
    /// `[objective]`: the contrastive loss.
    pub objective: Box<dyn ObjectiveConfig>,
    /// `[projection]`: projection heads.
    pub projection: ProjectionConfig,
    /// `[data]`: the image–text data set.
    pub data: Box<dyn DatasetConfig>,
    /// `[train]`: optimisation settings.
    pub train: TrainConfig,
    /// `[prompt_train]`: stage-2 settings.
    pub prompt_train: PromptTrainConfig,
    /// `[eval]`: evaluation settings.
    pub eval: EvalConfig,
    /// `[output]`: run directory.
    pub output: OutputConfig,
}
