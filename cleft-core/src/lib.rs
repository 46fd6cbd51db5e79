//! # cleft-core
//!
//! Core of cleft-rs, a Rust implementation of CLEFT (Du et al., MICCAI 2024: language-image
//! contrastive learning with a PEFT-adapted LLM text encoder and learned context prompts).
//!
//! - The five component traits: [`VisionEncoder`], [`TextEncoder`], [`PeftAdapter`],
//!   [`PromptLearner`], [`ContrastiveObjective`] — object-safe, placed in a trainable model as
//!   [`Component`]s (see [`bridge`]).
//! - The [`registry`] of components and the TOML [`config`] that selects them by name, with
//!   the cross-component [`contract`]s checked before anything is built.
//! - The composed [`model::ClipModel`] (tensors in, tensors out) and weight files ([`store`]);
//!   training, checkpoints and evaluation live in the `cleft-train` crate.
//! - [`inference`]: the [`Predictor`](inference::Predictor) an application embeds and
//!   classifies with (run directory or config + weights; image files, bytes or decoded pixels,
//!   preprocessed as the data set component declares through
//!   [`preprocess::ImagePreprocessor`]).
//! - Explicit [`device`] selection among the backends compiled in (`flex`, `tch`, `cuda`).
//! - [`prelude`]: what a plugin or application author imports first.
//!
//! Beside it: the fused flex kernels (`cleft-kernels`), the data-parallel collectives
//! (`cleft-collectives`) and the loader of shared-library plugins (`cleft-plugin-host`; a plugin
//! itself needs only [`plugin`] and [`export_plugin!`]). This crate has no `unsafe` code.

#![forbid(unsafe_code)]

pub mod attention;
pub mod bridge;
pub mod config;
pub mod contract;
pub mod data;
pub mod device;
pub mod error;
pub mod inference;
pub mod model;
pub mod objective;
pub mod params;
pub mod peft;
pub mod plugin;
pub mod prelude;
pub mod preprocess;
pub mod prompt;
pub mod prompt_model;
pub mod random;
pub mod registry;
pub mod store;
pub mod text;
pub mod vision;
pub mod weights;

pub use bridge::{Component, DynModule};
pub use config::ExperimentConfig;
pub use error::{CleftError, ErrorKind, Result};
pub use objective::{ContrastiveObjective, LocalRows, ObjectiveOutput, PairLabels};
pub use peft::PeftAdapter;
pub use prompt::PromptLearner;
pub use registry::Registry;
pub use text::{TextEncoder, TextTokenizer, TokenBatch};
pub use vision::{VisionEncoder, VisionOutput};

// Re-exported for the registration macros used by plugin crates.
pub use burn;
#[doc(hidden)]
pub use inventory;
