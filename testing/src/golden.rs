//! Golden fixtures (`fixtures/golden/`, written by the Python scripts in `tools/`) and the
//! precision each one states for itself (`noise.json`, written by `tools/golden_noise.py`).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cleft_core::weights::{HostTensor, SafetensorsCheckpoint, TensorSource};

use crate::tolerance::{Comparison, Tolerance};

/// `fixtures/golden/`.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden")
}

/// One golden tensor's own precision (`noise.json → tensors[key]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Max |float32 reference − float64 reference| over the tensor (the larger of the true
    /// float64 run and transformers' plain `.double()` run).
    pub f32_vs_f64: f64,
    /// Max |reference|.
    pub max_abs: f64,
}

fn noise_json() -> Result<serde_json::Value, String> {
    let path = golden_dir().join("noise.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (made by tools/golden_noise.py)", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn number(entry: &serde_json::Value, field: &str, key: &str) -> Result<f64, String> {
    entry[field]
        .as_f64()
        .ok_or_else(|| format!("noise.json: {key} has no number `{field}`"))
}

/// The recorded precision of golden tensor `key` (`"<file stem>/<tensor>"`).
pub fn noise(key: &str) -> Result<Noise, String> {
    let json = noise_json()?;
    let entry = json["tensors"]
        .get(key)
        .ok_or_else(|| format!("noise.json has no tensors.{key}: run tools/golden_noise.py"))?;
    // `f32_vs_f64_model_double` (where recorded) is the same noise measured against a plain
    // `.double()` run that keeps transformers' internal float32 casts: the larger of the two is
    // the reference's spread.
    let model_double = entry["f32_vs_f64_model_double"].as_f64().unwrap_or(0.0);
    Ok(Noise {
        f32_vs_f64: number(entry, "f32_vs_f64", key)?.max(model_double),
        max_abs: number(entry, "max_abs", key)?,
    })
}

/// The reference implementation's own merged-vs-unmerged distance (`noise.json → merge[key]`,
/// e.g. `"smollm2/lora"`): the spread of merging a PEFT adapter into float32 weights.
pub fn merge_noise(key: &str) -> Result<f64, String> {
    let json = noise_json()?;
    let entry = json["merge"]
        .get(key)
        .ok_or_else(|| format!("noise.json has no merge.{key}: run tools/golden_noise.py"))?;
    number(entry, "merged_vs_unmerged", key)
}

/// Values of a float tensor as `f32`, row-major.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("a float tensor reads back as f32")
}

/// A golden safetensors file, `fixtures/golden/<stem>.safetensors`.
#[derive(Debug)]
pub struct Golden {
    stem: String,
    file: SafetensorsCheckpoint,
}

impl Golden {
    /// Opens `fixtures/golden/<stem>.safetensors`.
    pub fn open(stem: &str) -> Self {
        let path = golden_dir().join(format!("{stem}.safetensors"));
        let file = SafetensorsCheckpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
        Self {
            stem: stem.to_string(),
            file,
        }
    }

    /// Float tensor `name`.
    pub fn tensor(&self, name: &str) -> HostTensor {
        self.file
            .read(name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.stem))
    }

    /// Integer tensor `name` (ids, masks, u8 images) on the host: shape and values.
    pub fn int_values(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        self.file
            .read_i64(name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.stem))
    }

    /// Integer tensor `name` (ids, masks) on `device`.
    pub fn ints<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D, Int> {
        let (shape, data) = self
            .file
            .read_i64(name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.stem));
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    /// Float tensor `name` on `device`.
    pub fn float<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let t = self.tensor(name);
        Tensor::from_data(TensorData::new(t.data, t.shape), device)
    }

    /// The rule for tensor `name`: [`Tolerance::golden`] of `"<stem>/<name>"`.
    pub fn tolerance(&self, name: &str) -> Tolerance {
        Tolerance::golden(&format!("{}/{name}", self.stem))
    }

    /// Checks `actual` against tensor `name` (shape first) with [`Golden::tolerance`].
    pub fn check<const D: usize>(&self, name: &str, actual: Tensor<D>) -> Comparison {
        self.check_with(name, actual, &self.tolerance(name))
    }

    /// Checks a text encoder's outputs against `last_hidden_state` and `cleft_pooled`, and against
    /// their float64 runs (`*_f64ref`) with the same rule: the float32 reference's own spread is
    /// the floor, and a float32 implementation can come as close to the float64 run as its
    /// float32 twin does.
    pub fn check_hidden_and_pooled(&self, hidden: Tensor<3>, pooled: Tensor<2>) {
        self.check("last_hidden_state", hidden.clone());
        self.check("cleft_pooled", pooled.clone());
        self.check_with(
            "last_hidden_state_f64ref",
            hidden,
            &self.tolerance("last_hidden_state"),
        );
        self.check_with(
            "cleft_pooled_f64ref",
            pooled,
            &self.tolerance("cleft_pooled"),
        );
    }

    /// Checks `actual` against tensor `name` (shape first) with an explicit rule.
    pub fn check_with<const D: usize>(
        &self,
        name: &str,
        actual: Tensor<D>,
        tolerance: &Tolerance,
    ) -> Comparison {
        let expected = self.tensor(name);
        assert_eq!(
            actual.dims()[..],
            expected.shape[..],
            "{}/{name}: shape differs from the golden's",
            self.stem
        );
        tolerance.check(
            &format!("{}/{name}", self.stem),
            &values(actual),
            &expected.data,
        )
    }
}
