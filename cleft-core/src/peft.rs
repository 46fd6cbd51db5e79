//! The [`PeftAdapter`] trait: parameter-efficient fine-tuning applied to an encoder.

use std::fmt;

use crate::bridge::Component;
use crate::error::CleftError;
use crate::text::TextEncoder;

/// A parameter-efficient fine-tuning method (LoRA, IA3, prefix tuning, …).
///
/// An adapter is a *tuner*: it rewrites an encoder so that the base weights are frozen and only
/// the adapter's own parameters (living inside the returned encoder) are trainable.
pub trait PeftAdapter: Send + Sync + fmt::Debug {
    /// The method's registered name (`"lora"`, …).
    fn method(&self) -> &str;

    /// Module paths inside `encoder` (relative to it) that this adapter targets.
    ///
    /// Errors when a target pattern matches no module, naming the pattern and listing the closest
    /// module paths.
    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError>;

    /// Injects the adapter: base weights frozen, adapter parameters trainable.
    fn apply(
        &self,
        encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError>;

    /// Folds the adapter into the base weights (inference-only encoder, same outputs).
    fn merge(&self, encoder: Component<dyn TextEncoder>) -> Component<dyn TextEncoder>;
}
