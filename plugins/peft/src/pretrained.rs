//! Loading an adapter directory written by HF PEFT (or by cleft) onto a base encoder.

use std::path::Path;

use cleft_core::peft::AdapterLoadReport;
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};

use crate::files::read_adapter_config;
use crate::{Ia3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit};

/// The cleft config equivalent to a PEFT `adapter_config.json` value.
pub fn config_from_peft_json(value: &serde_json::Value) -> Result<Box<dyn PeftConfig>, CleftError> {
    let usize_field = |key: &str, default: usize| {
        value
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .map_or(default, |v| v as usize)
    };
    let peft_type = value
        .get("peft_type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    Ok(match peft_type {
        "LORA" => Box::new(LoraConfig::from_peft_json(value)?),
        "IA3" => Box::new(Ia3Config::from_peft_json(value)?),
        "PREFIX_TUNING" => Box::new(PrefixTuningConfig {
            num_virtual_tokens: usize_field("num_virtual_tokens", 20),
            // Files hold the projected prefix; it loads in the projection-free form.
            prefix_projection: false,
            encoder_hidden_size: usize_field("encoder_hidden_size", 512),
        }),
        "PROMPT_TUNING" => Box::new(PromptTuningConfig {
            num_virtual_tokens: usize_field("num_virtual_tokens", 30),
            prompt_tuning_init: PromptTuningInit::Random,
            prompt_tuning_init_text: None,
        }),
        other => {
            return Err(CleftError::Invalid(format!(
                "adapter_config.json: peft_type `{other}` is not supported (LORA, IA3, PREFIX_TUNING, PROMPT_TUNING)"
            )));
        }
    })
}

/// What [`from_pretrained`] returns: the tuner, the adapted encoder and the load report.
pub type Pretrained = (
    Box<dyn PeftAdapter>,
    Component<dyn TextEncoder>,
    AdapterLoadReport,
);

/// Applies the adapter described in `dir/adapter_config.json` to `encoder` and loads its weights
/// (HF PEFT's `PeftModel.from_pretrained`). Missing tensors are an error; unexpected ones are
/// reported.
pub fn from_pretrained(
    encoder: Component<dyn TextEncoder>,
    dir: &Path,
) -> Result<Pretrained, CleftError> {
    let adapter = config_from_peft_json(&read_adapter_config(dir)?)?.build()?;
    let encoder = adapter.apply(encoder)?;
    let (encoder, report) = adapter.load_weights(encoder, dir)?;
    Ok((adapter, encoder, report))
}
