//! Cross-component contracts, checked from the configuration alone (no weights, no allocation):
//! what the data set produces must be what the vision encoder takes, and the longest text the
//! experiment feeds the text encoder (real tokens, the pooled pad position, PEFT virtual tokens,
//! stage-2 context tokens) must fit its positions. Every error names the keys on both sides.
//!
//! Components describe themselves through optional methods of their config traits
//! ([`VisionEncoderConfig::input`](crate::registry::VisionEncoderConfig::input),
//! [`TextEncoderConfig::input`](crate::registry::TextEncoderConfig::input),
//! [`DatasetConfig::image_shape`](crate::registry::DatasetConfig::image_shape), …); a component
//! that does not describe itself is not checked.

pub(crate) mod types;

use serde::Serialize;

use crate::config::ExperimentConfig;
use crate::error::{CleftError, Result};

pub use types::{ImageInput, ImageShape, Keyed, TextInput};

/// Checks every contract between the components of `config`.
pub fn check(config: &ExperimentConfig) -> Result<()> {
    if config.projection.dim == 0 {
        return Err(CleftError::Config(
            "projection.dim must be at least 1".into(),
        ));
    }
    check_images(config)?;
    check_text(config)
}

fn check_images(config: &ExperimentConfig) -> Result<()> {
    let (Some(input), Some(data)) = (config.vision.input()?, config.data.image_shape()?) else {
        return Ok(());
    };
    if input.channels.value != data.channels.value {
        let hint = if data.channels.value == 1 && input.channels.value == 3 {
            format!(
                "; set {} = 3 to repeat the grey channel as CLEFT does",
                data.channels.key
            )
        } else {
            String::new()
        };
        return Err(CleftError::Config(format!(
            "{} = {} but the data set's images have {} channel(s) ({} = {}){hint}",
            input.channels.key,
            input.channels.value,
            data.channels.value,
            data.channels.key,
            data.channels.value
        )));
    }
    if let Some(size) = input.size.filter(|size| size.value != data.size.value) {
        return Err(CleftError::Config(format!(
            "{} = {} px but the data set's images are {} px ({} = {})",
            size.key, size.value, data.size.value, data.size.key, data.size.value
        )));
    }
    Ok(())
}

fn check_text(config: &ExperimentConfig) -> Result<()> {
    let Some(input) = config.text.input()? else {
        return Ok(());
    };
    let Some(positions) = &input.positions else {
        return Ok(());
    };
    let mut parts = vec![format!("{} = {}", input.max_len.key, input.max_len.value)];
    let mut needed = input.max_len.value + input.trailing;
    if input.trailing > 0 {
        parts.push(format!("{} pooled pad position", input.trailing));
    }
    if let Some(peft) = config.peft.as_ref().and_then(|p| p.extra_positions()) {
        needed += peft.value;
        parts.push(format!("{} = {}", peft.key, peft.value));
    }
    if let Some(prompt) = config.prompt.as_ref().and_then(|p| p.context_tokens()) {
        needed += prompt.value;
        parts.push(format!("{} = {} (stage 2)", prompt.key, prompt.value));
    }
    if needed > positions.value {
        return Err(CleftError::Config(format!(
            "texts need {needed} positions ({}) but {} = {}",
            parts.join(" + "),
            positions.key,
            positions.value
        )));
    }
    Ok(())
}

/// The fields of `config` (among `fields`) whose values differ from `T::default()`: those the
/// user set. A preset or a checkpoint that defines the architecture makes them meaningless, so
/// callers refuse them by name instead of ignoring them silently.
pub fn explicit_fields<T: Serialize + Default>(config: &T, fields: &[&str]) -> Vec<String> {
    let (Ok(ours), Ok(default)) = (
        serde_json::to_value(config),
        serde_json::to_value(T::default()),
    ) else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|field| ours.get(**field) != default.get(**field))
        .map(|field| field.to_string())
        .collect()
}

/// Refuses a section's size `fields` next to a `weights` checkpoint or a `preset` (both fix the
/// architecture), and `weights` next to `preset`, naming the keys.
pub fn refuse_overridden<T: Serialize + Default>(
    config: &T,
    section: &str,
    has_weights: bool,
    has_preset: bool,
    fields: &[&str],
) -> Result<()> {
    let reason = match (has_weights, has_preset) {
        (true, true) => {
            return Err(CleftError::Config(format!(
                "{section}.weights fixes the architecture, so {section}.preset cannot be set too"
            )));
        }
        (true, false) => format!("{section}.weights"),
        (false, true) => format!("{section}.preset"),
        (false, false) => return Ok(()),
    };
    refuse_explicit(config, section, &reason, fields)
}

/// An error when `fields` of section `section` were set next to `reason_key` (a preset or a
/// checkpoint that already fixes them).
pub fn refuse_explicit<T: Serialize + Default>(
    config: &T,
    section: &str,
    reason_key: &str,
    fields: &[&str],
) -> Result<()> {
    let explicit = explicit_fields(config, fields);
    if explicit.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = explicit.iter().map(|f| format!("{section}.{f}")).collect();
    Err(CleftError::Config(format!(
        "{reason_key} fixes the architecture, so {} cannot be set too; remove {} or {reason_key}",
        keys.join(", "),
        if keys.len() == 1 { "it" } else { "them" }
    )))
}
