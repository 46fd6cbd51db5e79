//! What a plugin or application author needs most, in one import:
//!
//! ```
//! use cleft_core::prelude::*;
//! ```
//!
//! The five component traits and their configs, [`Component`] (a boxed component inside a burn
//! module), the [`Registry`] and its registration macros (`register_component!`, `export_plugin!`), [`ExperimentConfig`], the error type,
//! the composed [`ClipModel`] and the data types that cross component boundaries.

pub use crate::bridge::{Component, DynModule};
pub use crate::config::ExperimentConfig;
pub use crate::data::{ImageTextBatch, ImageTextDataset, ImageTextSample};
pub use crate::error::{CleftError, Result};
pub use crate::model::ClipModel;
pub use crate::objective::{ContrastiveObjective, LocalRows, ObjectiveOutput, PairLabels};
pub use crate::peft::PeftAdapter;
pub use crate::prompt::PromptLearner;
pub use crate::registry::{
    ComponentConfig, ComponentKind, DatasetConfig, ObjectiveConfig, PeftConfig,
    PromptLearnerConfig, Registry, Split, TextEncoderConfig, VisionEncoderConfig,
};
pub use crate::text::{TextEncoder, TextTokenizer, TokenBatch};
pub use crate::vision::{VisionEncoder, VisionOutput};
pub use crate::{export_plugin, register_component};
