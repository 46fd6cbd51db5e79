//! Opening a checkpoint in whichever format it is stored, and summarising it (`cleft inspect`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::DType;

use super::hf_config::read_hf_config;
use super::pytorch::{self, PytorchCheckpoint};
use super::source::{SafetensorsCheckpoint, TensorSource, checkpoint_error};
use crate::error::Result;

/// Architecture, size and dtypes of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// `architectures[0]` of `config.json`, else its `model_type`, else `unknown`.
    pub architecture: String,
    /// Number of floating-point parameters (integer buffers such as `position_ids` excluded).
    pub parameters: u64,
    /// Number of tensors of each dtype (`F32: 105`).
    pub dtypes: BTreeMap<String, usize>,
    /// Number of tensors.
    pub tensors: usize,
}

/// The checkpoint at `path`, whichever format it is stored in: a directory's
/// `model.safetensors` (or its sharded index) first, as transformers prefers it, then
/// `pytorch_model.bin` (or its sharded index); a file by its extension (`.safetensors`; `.bin`,
/// `.pt`, `.pth`).
pub fn open_checkpoint(path: &Path) -> Result<Box<dyn TensorSource>> {
    if path.is_dir() {
        let has = |name: &str| path.join(name).is_file();
        if has("model.safetensors") || has("model.safetensors.index.json") {
            return Ok(Box::new(SafetensorsCheckpoint::open(path)?));
        }
        if has("pytorch_model.bin") || has("pytorch_model.bin.index.json") {
            return Ok(Box::new(PytorchCheckpoint::open(path)?));
        }
        return Err(checkpoint_error(
            path,
            "no weights in this directory: expected model.safetensors, \
             model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json",
        ));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("bin" | "pt" | "pth") => Ok(Box::new(PytorchCheckpoint::open(path)?)),
        _ => Ok(Box::new(SafetensorsCheckpoint::open(path)?)),
    }
}

/// Summarises the checkpoint at `path` (a directory, a `.safetensors` file or a PyTorch
/// `.bin` / `.pt` / `.pth` file; see [`open_checkpoint`]).
pub fn summarize_checkpoint(path: &Path) -> Result<CheckpointSummary> {
    let architecture = if path.is_dir() && path.join("config.json").is_file() {
        let config = read_hf_config(path)?;
        let first = config
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str());
        let model_type = config.get("model_type").and_then(|m| m.as_str());
        first.or(model_type).unwrap_or("unknown").to_string()
    } else {
        "unknown".to_string()
    };
    let mut summary = CheckpointSummary {
        architecture,
        parameters: 0,
        dtypes: BTreeMap::new(),
        tensors: 0,
    };
    let mut add = |dtype: String, elements: usize, float: bool| {
        *summary.dtypes.entry(dtype).or_default() += 1;
        summary.tensors += 1;
        if float {
            summary.parameters += elements as u64;
        }
    };
    let pytorch_dir = path.is_dir()
        && !path.join("model.safetensors").is_file()
        && !path.join("model.safetensors.index.json").is_file();
    let pytorch_file = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "bin" | "pt" | "pth"));
    if pytorch_dir || pytorch_file {
        let checkpoint = PytorchCheckpoint::open(path)?;
        for (_, dtype, elements) in checkpoint.summary() {
            add(format!("{dtype:?}"), elements, pytorch::is_float(dtype));
        }
    } else {
        let checkpoint = SafetensorsCheckpoint::open(path)?;
        for stored in checkpoint.tensors.values() {
            let float = matches!(
                stored.dtype,
                DType::F16 | DType::BF16 | DType::F32 | DType::F64
            );
            add(
                format!("{:?}", stored.dtype),
                stored.shape.num_elements(),
                float,
            );
        }
    }
    Ok(summary)
}
