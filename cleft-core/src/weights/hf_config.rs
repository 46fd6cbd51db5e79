//! HF `config.json` files of checkpoint directories.

use std::path::Path;

use super::source::checkpoint_error;
use crate::error::{CleftError, Result};

/// Reads a HF `config.json` from directory `dir`.
pub fn read_hf_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| CleftError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| checkpoint_error(&path, format!("invalid JSON: {e}")))
}

/// Deserialises a HF `config.json` in `dir` into `T` (unknown keys ignored), naming the file on
/// error.
pub fn parse_hf_config<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T> {
    let value = read_hf_config(dir)?;
    serde_json::from_value(value)
        .map_err(|e| checkpoint_error(&dir.join("config.json"), format!("unexpected config: {e}")))
}
