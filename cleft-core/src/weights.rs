//! Loading pretrained checkpoints (Hugging Face layout) into burn modules by parameter path.
//!
//! - [`TensorSource`]: named host tensors (`f32`, PyTorch layout). [`SafetensorsCheckpoint`]
//!   reads a HF directory (`model.safetensors`, or a sharded `model.safetensors.index.json`) or a
//!   single `.safetensors` file through burn-store (memory-mapped, each tensor read when asked
//!   for); [`PytorchCheckpoint`] reads `pytorch_model.bin` (single or sharded) and `.pt` /
//!   `.pth` files without executing their pickle; [`open_checkpoint`] picks the one a directory
//!   holds; other formats (GGUF) implement the trait in their plugin.
//! - [`load_weights`] walks a module with burn's `ModuleMapper`, derives each parameter's
//!   checkpoint key from its path (burn `LayerNorm`/`RmsNorm` `gamma`/`beta` → HF
//!   `weight`/`bias`, optional segment renames), transposes HF `Linear` weights (`[out, in]`) into
//!   burn's `[in, out]` when asked (GPT-2 `Conv1D` is already `[in, out]`), and returns a
//!   [`LoadReport`] naming missing, unexpected and shape-mismatched tensors. Missing tensors are
//!   an error unless [`WeightMapping::allow_missing`] is set; a shape mismatch is always one.
//! - [`summarize_checkpoint`]: parameter count and dtypes of a checkpoint (for `cleft inspect`).

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds (every bad
// byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::collections::{BTreeSet, HashMap};

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::error::Result;

mod hf_config;
mod open;
mod pytorch;
mod source;
pub use hf_config::{parse_hf_config, read_hf_config};
pub use open::{CheckpointSummary, open_checkpoint, summarize_checkpoint};
pub use pytorch::PytorchCheckpoint;
use source::checkpoint_error;
pub use source::{HostTensor, SafetensorsCheckpoint, TensorSource};

/// How module parameter paths map to checkpoint tensor names.
#[derive(Debug, Clone, Default)]
pub struct WeightMapping {
    /// Transpose the `weight` of burn `Linear` modules (HF `nn.Linear` stores `[out, in]`).
    /// Leave off for GPT-2 `Conv1D` checkpoints, which are already `[in, out]`.
    pub transpose_linear: bool,
    /// Path-segment renames, module side → checkpoint side (e.g. `self_` → `self`, a Rust keyword).
    pub segment_renames: Vec<(String, String)>,
    /// Checkpoint name prefixes stripped when the unprefixed name is absent (`bert.`, `model.`).
    pub prefixes: Vec<String>,
    /// Checkpoint tensors that are expected to be unused (buffers, tied heads): a name matches
    /// when it equals an entry or ends with `.entry`. They are not reported as unexpected.
    pub ignored: Vec<String>,
    /// Keep the initial value of parameters absent from the checkpoint instead of failing.
    pub allow_missing: bool,
}

/// What a load found, by checkpoint tensor name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters with no tensor in the checkpoint (their checkpoint names).
    pub missing: Vec<String>,
    /// Checkpoint tensors no parameter used (minus [`WeightMapping::ignored`]).
    pub unexpected: Vec<String>,
    /// `name: module [..] vs checkpoint [..]` for tensors whose shape does not fit.
    pub mismatched: Vec<String>,
    /// Number of parameters loaded.
    pub loaded: usize,
}

impl LoadReport {
    fn summary(&self) -> String {
        format!(
            "missing tensors: [{}]; shape mismatches: [{}]; unexpected tensors: [{}]",
            self.missing.join(", "),
            self.mismatched.join("; "),
            self.unexpected.join(", ")
        )
    }
}

struct Loader<'a> {
    source: &'a dyn TensorSource,
    mapping: &'a WeightMapping,
    names: HashMap<String, String>,
    path: Vec<String>,
    containers: Vec<String>,
    used: BTreeSet<String>,
    report: LoadReport,
    errors: Vec<String>,
}

impl Loader<'_> {
    /// Checkpoint key of the current parameter, and whether it is an HF Linear weight.
    fn key(&self) -> (String, bool) {
        let container = self.containers.last().map(String::as_str).unwrap_or("");
        let is_norm = container.ends_with(":LayerNorm") || container.ends_with(":RmsNorm");
        let last = self.path.len().saturating_sub(1);
        let segments: Vec<&str> = self
            .path
            .iter()
            .enumerate()
            .map(|(i, segment)| match segment.as_str() {
                "gamma" if i == last && is_norm => "weight",
                "beta" if i == last && is_norm => "bias",
                s => self
                    .mapping
                    .segment_renames
                    .iter()
                    .find(|(from, _)| from == s)
                    .map_or(s, |(_, to)| to.as_str()),
            })
            .collect();
        // `PeftLinear` (cleft_core::peft) keeps its base weight at `weight` in burn's `[in, out]`
        // layout, like `Linear`.
        let linear_weight = matches!(container, "Struct:Linear" | "Struct:PeftLinear")
            && segments.last() == Some(&"weight");
        (segments.join("."), linear_weight)
    }

    fn fetch(&mut self, expected: &[usize]) -> Option<HostTensor> {
        let (key, linear_weight) = self.key();
        let Some(name) = self.names.get(&key).cloned() else {
            self.report.missing.push(key);
            return None;
        };
        self.used.insert(name.clone());
        let transpose = linear_weight && self.mapping.transpose_linear;
        let mut stored_shape = self.source.shape(&name).unwrap_or_default();
        if transpose && stored_shape.len() == 2 {
            stored_shape.reverse();
        }
        if stored_shape != expected {
            self.report.mismatched.push(format!(
                "{name}: module {expected:?} vs checkpoint {stored_shape:?}"
            ));
            return None;
        }
        let tensor = match self.source.read(&name) {
            Ok(tensor) => tensor,
            Err(error) => {
                self.errors.push(error.to_string());
                return None;
            }
        };
        self.report.loaded += 1;
        if transpose {
            tensor.transposed()
        } else {
            Some(tensor)
        }
    }
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let expected = param.lazy_shape().to_vec();
        let Some(host) = self.fetch(&expected) else {
            return param;
        };
        let device = param.lazy_device();
        let id = param.id;
        let tensor = Tensor::<D>::from_data(TensorData::new(host.data, host.shape), &device);
        param.transform_for_load(tensor, id)
    }
}

/// Loads the tensors of `source` into `module` according to `mapping`.
///
/// Fails (naming the tensors) on shape mismatches, on read errors, and on missing tensors
/// unless `mapping.allow_missing`; unexpected tensors are only reported.
pub fn load_weights<M: Module>(
    module: M,
    source: &dyn TensorSource,
    mapping: &WeightMapping,
) -> Result<(M, LoadReport)> {
    let mut names = HashMap::new();
    for name in source.names() {
        let stripped = mapping
            .prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p.as_str()));
        if let Some(stripped) = stripped {
            names
                .entry(stripped.to_string())
                .or_insert_with(|| name.clone());
        }
        names.insert(name.clone(), name);
    }
    let mut loader = Loader {
        source,
        mapping,
        names,
        path: Vec::new(),
        containers: Vec::new(),
        used: BTreeSet::new(),
        report: LoadReport::default(),
        errors: Vec::new(),
    };
    let module = module.map(&mut loader);
    let ignored = |name: &str| {
        mapping
            .ignored
            .iter()
            .any(|i| name == i || name.ends_with(&format!(".{i}")))
    };
    loader.report.unexpected = source
        .names()
        .into_iter()
        .filter(|n| !loader.used.contains(n) && !ignored(n))
        .collect();
    let report = loader.report;
    let fatal =
        !report.mismatched.is_empty() || (!mapping.allow_missing && !report.missing.is_empty());
    if !loader.errors.is_empty() {
        return Err(checkpoint_error(source.origin(), loader.errors.join("; ")));
    }
    if fatal {
        return Err(checkpoint_error(source.origin(), report.summary()));
    }
    Ok((module, report))
}
