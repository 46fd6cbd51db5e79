//! Adapter-only files in HF PEFT layout: `adapter_config.json` + `adapter_model.safetensors`,
//! PEFT key names without the adapter name (`base_model.model.h.0.attn.c_attn.lora_A.weight`).

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds (every bad
// byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use cleft_core::ErrorKind;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use cleft_core::peft::AdapterLoadReport;
use cleft_core::store::write_atomic;
use cleft_core::weights::{SafetensorsCheckpoint, TensorSource};
use cleft_core::{CleftError, Component, TextEncoder};
use safetensors::Dtype;

/// Config file name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// Key prefix PEFT gives tuners that wrap the base model (LoRA, IA3).
pub const MODEL_PREFIX: &str = "base_model.model.";

/// A host tensor: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// The transpose of a 2-D tensor (specs mark only 2-D parameters as transposed, and the
    /// file's shapes are checked against the specs before this runs; other ranks are kept).
    fn transposed(&self) -> Self {
        let &[rows, cols] = self.shape.as_slice() else {
            return self.clone();
        };
        // Column c of the row-major data: elements c, c + cols, c + 2·cols, …
        let mut data = Vec::with_capacity(self.data.len());
        for c in 0..cols {
            data.extend(self.data.iter().skip(c).step_by(cols).take(rows));
        }
        Self {
            shape: vec![cols, rows],
            data,
        }
    }
}

/// How one adapter parameter is stored in the file.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Parameter path relative to the encoder.
    pub path: String,
    /// PEFT key.
    pub key: String,
    /// The file holds the transpose of the (2-D) parameter.
    pub transpose: bool,
    /// Shape in the file.
    pub file_shape: Vec<usize>,
}

impl TensorSpec {
    fn to_file(&self, value: HostTensor) -> HostTensor {
        let value = if self.transpose {
            value.transposed()
        } else {
            value
        };
        HostTensor {
            shape: self.file_shape.clone(),
            data: value.data,
        }
    }

    fn to_param(&self, value: HostTensor, param_shape: &[usize]) -> HostTensor {
        if self.transpose {
            let stored = HostTensor {
                shape: param_shape.iter().rev().copied().collect(),
                data: value.data,
            };
            stored.transposed()
        } else {
            HostTensor {
                shape: param_shape.to_vec(),
                data: value.data,
            }
        }
    }
}

#[derive(Default)]
struct Reader<'a> {
    wanted: Option<&'a HashMap<String, usize>>,
    path: Vec<String>,
    values: HashMap<String, HostTensor>,
    errors: Vec<String>,
}

impl ModuleVisitor for Reader<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if !self.wanted.is_some_and(|wanted| wanted.contains_key(&path)) {
            return;
        }
        let value = param.val();
        let shape = value.dims().to_vec();
        match value.into_data().convert::<f32>().try_into_vec::<f32>() {
            Ok(data) => {
                self.values.insert(path, HostTensor { shape, data });
            }
            Err(error) => self.errors.push(format!("{path}: {error:?}")),
        }
    }
}

/// Reads the current values of the parameters at `paths`.
pub fn read_params(
    encoder: &Component<dyn TextEncoder>,
    paths: &[String],
) -> Result<HashMap<String, HostTensor>, CleftError> {
    let wanted: HashMap<String, usize> = paths
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| (p, i))
        .collect();
    let mut reader = Reader {
        wanted: Some(&wanted),
        ..Reader::default()
    };
    encoder.visit(&mut reader);
    if !reader.errors.is_empty() {
        return Err(CleftError::Invalid(format!(
            "reading adapter parameters: {}",
            reader.errors.join("; ")
        )));
    }
    Ok(reader.values)
}

struct Writer {
    values: HashMap<String, HostTensor>,
    path: Vec<String>,
    errors: Vec<String>,
}

impl ModuleMapper for Writer {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let Some(value) = self.values.remove(&path) else {
            return param;
        };
        let expected = param.lazy_shape().to_vec();
        if expected != value.shape {
            self.errors.push(format!(
                "{path}: parameter {expected:?} vs file {:?}",
                value.shape
            ));
            return param;
        }
        let device = param.lazy_device();
        let id = param.id;
        let tensor = Tensor::<D>::from_data(TensorData::new(value.data, value.shape), &device);
        param.transform_for_load(tensor, id)
    }
}

/// Replaces the parameters at the keys of `values` (parameter paths, parameter shapes) in
/// `encoder`, keeping each parameter's id and trainability. Fails naming unknown paths and shape
/// mismatches.
pub fn write_params(
    encoder: Component<dyn TextEncoder>,
    values: HashMap<String, HostTensor>,
) -> Result<Component<dyn TextEncoder>, CleftError> {
    let mut writer = Writer {
        values,
        path: Vec::new(),
        errors: Vec::new(),
    };
    let encoder = encoder.map(&mut writer);
    writer.errors.extend(
        writer
            .values
            .keys()
            .map(|path| format!("{path}: no such parameter")),
    );
    if !writer.errors.is_empty() {
        return Err(CleftError::Invalid(format!(
            "loading adapter parameters: {}",
            writer.errors.join("; ")
        )));
    }
    Ok(encoder)
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` (atomically) into `dir`.
pub fn write_adapter(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<(), CleftError> {
    std::fs::create_dir_all(dir).map_err(|e| CleftError::io(dir, e))?;
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(key, t)| {
            (
                key.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(key, data, shape)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map_err(|e| CleftError::caused(ErrorKind::Adapter, key.to_string(), e));
            view.map(|view| (key.clone(), view))
        })
        .collect::<Result<_, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(WEIGHTS_FILE);
    let serialized =
        safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| CleftError::Adapter {
            path: weights.clone(),
            message: e.to_string(),
        })?;
    write_atomic(&weights, &serialized)?;
    let json =
        serde_json::to_string_pretty(config).map_err(|e| CleftError::Invalid(e.to_string()))?;
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Reads `dir/adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<serde_json::Value, CleftError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| CleftError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| CleftError::Adapter {
        path,
        message: e.to_string(),
    })
}

/// Reads every tensor of `dir/adapter_model.safetensors` as f32 (F32, F16, BF16, F64 accepted).
pub fn read_adapter_tensors(dir: &Path) -> Result<BTreeMap<String, HostTensor>, CleftError> {
    read_safetensors(&dir.join(WEIGHTS_FILE))
}

/// Reads every float tensor of a safetensors file as f32 (F32, F16, BF16, F64 accepted).
///
/// Through [`SafetensorsCheckpoint`]: the file is memory-mapped and its header checked against
/// its size before any tensor is converted, one at a time (the file is never read whole).
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, CleftError> {
    let checkpoint = SafetensorsCheckpoint::open(path)?;
    checkpoint
        .names()
        .into_iter()
        .map(|name| {
            let tensor = checkpoint.read(&name)?;
            Ok((
                name,
                HostTensor {
                    shape: tensor.shape,
                    data: tensor.data,
                },
            ))
        })
        .collect()
}

/// Saves the parameters described by `specs` (plus `extra` computed tensors) with `config`.
pub fn save_specs(
    encoder: &Component<dyn TextEncoder>,
    specs: &[TensorSpec],
    extra: BTreeMap<String, HostTensor>,
    config: &serde_json::Value,
    dir: &Path,
) -> Result<(), CleftError> {
    let paths: Vec<String> = specs.iter().map(|s| s.path.clone()).collect();
    let mut values = read_params(encoder, &paths)?;
    let mut tensors = extra;
    for spec in specs {
        let value = values.remove(&spec.path).ok_or_else(|| {
            CleftError::Invalid(format!("adapter parameter {} not found", spec.path))
        })?;
        tensors.insert(spec.key.clone(), spec.to_file(value));
    }
    write_adapter(dir, config, &tensors)
}

/// Loads the tensors described by `specs` from `dir` into `encoder`. Every spec's key must be in
/// the file with the spec's shape; keys no spec names are reported as unexpected.
pub fn load_specs(
    encoder: Component<dyn TextEncoder>,
    specs: &[TensorSpec],
    dir: &Path,
) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
    let mut file = strip_task_head_prefix(read_adapter_tensors(dir)?, specs);
    let shapes: HashMap<String, Vec<usize>> = cleft_core::peft::named_params(&encoder)
        .into_iter()
        .map(|p| (p.path, p.shape))
        .collect();
    let (mut missing, mut mismatched, mut values) = (Vec::new(), Vec::new(), HashMap::new());
    for spec in specs {
        let Some(value) = file.remove(&spec.key) else {
            missing.push(spec.key.clone());
            continue;
        };
        if value.shape != spec.file_shape {
            mismatched.push(format!(
                "{}: file {:?}, expected {:?}",
                spec.key, value.shape, spec.file_shape
            ));
            continue;
        }
        let shape = shapes.get(&spec.path).cloned().unwrap_or_default();
        values.insert(spec.path.clone(), spec.to_param(value, &shape));
    }
    if !missing.is_empty() || !mismatched.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!(
                "{} of {} adapter tensors missing ({}); keys in the file not matched: {}",
                missing.len(),
                specs.len(),
                first_few(&missing),
                first_few(&file.keys().cloned().collect::<Vec<_>>())
            ));
        }
        if !mismatched.is_empty() {
            parts.push(format!(
                "{} shape mismatches ({})",
                mismatched.len(),
                first_few(&mismatched)
            ));
        }
        return Err(CleftError::Adapter {
            path: dir.join(WEIGHTS_FILE),
            message: parts.join("; "),
        });
    }
    let report = AdapterLoadReport {
        unexpected: file.into_keys().collect(),
        loaded: values.len(),
    };
    Ok((write_params(encoder, values)?, report))
}

/// At most three items, then how many more: an error names a few keys, not a hundred.
fn first_few(items: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = items
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(", … {} more", items.len() - SHOWN));
    }
    if text.is_empty() {
        text.push_str("no tensors");
    }
    text
}

/// Renames `base_model.model.<head>.<path>` keys to `base_model.model.<path>` when the file was
/// saved by HF PEFT from a task-head model (`LlamaForCausalLM` wraps the encoder as `model.`,
/// `GPT2LMHeadModel` as `transformer.`, `BertForSequenceClassification` as `bert.`) and the
/// adapter is loaded onto the bare encoder, as transformers strips a head's `base_model_prefix`.
///
/// The head segment is not listed per architecture: it is the one first segment whose removal
/// turns file keys into the keys `specs` expect. Files in which any expected key is present as
/// is are left alone, so an encoder that really has such a submodule never loses it.
fn strip_task_head_prefix(
    file: BTreeMap<String, HostTensor>,
    specs: &[TensorSpec],
) -> BTreeMap<String, HostTensor> {
    let expected: std::collections::HashSet<&str> = specs.iter().map(|s| s.key.as_str()).collect();
    if expected.is_empty() || file.keys().any(|key| expected.contains(key.as_str())) {
        return file;
    }
    let stripped = |key: &str| -> Option<(String, String)> {
        let rest = key.strip_prefix(MODEL_PREFIX)?;
        let (head, path) = rest.split_once('.')?;
        Some((head.to_string(), format!("{MODEL_PREFIX}{path}")))
    };
    let mut matches: BTreeMap<String, usize> = BTreeMap::new();
    for key in file.keys() {
        if let Some((head, key)) = stripped(key)
            && expected.contains(key.as_str())
        {
            *matches.entry(head).or_default() += 1;
        }
    }
    let Some(head) = matches
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map(|(head, _)| head)
    else {
        return file;
    };
    file.into_iter()
        .map(|(key, value)| match stripped(&key) {
            Some((h, path)) if h == head => (path, value),
            _ => (key, value),
        })
        .collect()
}
