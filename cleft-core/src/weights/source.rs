//! Reading tensors from checkpoint files: the host tensor, the source trait every format
//! implements, safetensors (single or sharded) and the little-endian widening to `f32`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleStore, SafetensorsStore};
use burn::tensor::DType;
use safetensors::Dtype;

use crate::error::{CleftError, Result};

/// A tensor on the host: row-major `f32` values in PyTorch (checkpoint) layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// The transpose of a 2-D tensor (`None` for other ranks, or data not of the shape's size).
    ///
    /// # Shapes
    /// - `[R, C]` → `[C, R]`.
    pub fn transposed(&self) -> Option<Self> {
        let [rows, cols] = self.shape[..] else {
            return None;
        };
        if rows.checked_mul(cols) != Some(self.data.len()) {
            return None;
        }
        // Column c of the row-major data: elements c, c + cols, c + 2·cols, …
        let mut data = Vec::with_capacity(self.data.len());
        for c in 0..cols {
            data.extend(self.data.iter().skip(c).step_by(cols).take(rows));
        }
        Some(Self {
            shape: vec![cols, rows],
            data,
        })
    }
}

/// Named tensors of a checkpoint, readable one at a time as `f32`.
pub trait TensorSource {
    /// Where the tensors come from (a path), for messages.
    fn origin(&self) -> &Path;
    /// Every tensor name, sorted.
    fn names(&self) -> Vec<String>;
    /// The shape of tensor `name` (PyTorch order), if present.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Tensor `name` converted to `f32`.
    fn read(&self, name: &str) -> Result<HostTensor>;
}

/// A safetensors checkpoint: one file, a HF model directory, or a sharded directory.
///
/// Read through burn-store's [`SafetensorsStore`]: each file is memory-mapped and a tensor's
/// bytes are only read when [`TensorSource::read`] asks for it, so opening a multi-gigabyte
/// checkpoint costs its header, and loading it never holds a second copy of the file.
pub struct SafetensorsCheckpoint {
    origin: PathBuf,
    pub(crate) tensors: BTreeMap<String, PackTensor>,
}

impl std::fmt::Debug for SafetensorsCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsCheckpoint")
            .field("origin", &self.origin)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

pub(crate) fn checkpoint_error(path: &Path, message: impl Into<String>) -> CleftError {
    CleftError::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl SafetensorsCheckpoint {
    /// Opens `path`: a `.safetensors` file, or a directory holding `model.safetensors` or
    /// `model.safetensors.index.json` (sharded: its `weight_map` names the shard of each tensor).
    pub fn open(path: &Path) -> Result<Self> {
        let tensors = read_shards(path, "model.safetensors", |file| {
            let mut store = SafetensorsStore::from_file(file);
            let tensors = store.get_all_tensors().map_err(|e| {
                checkpoint_error(file, format!("not a readable safetensors file: {e}"))
            })?;
            Ok(tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect())
        })?;
        Ok(Self {
            origin: path.to_path_buf(),
            tensors,
        })
    }

    /// The dtype of tensor `name`.
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.tensors.get(name).and_then(|t| match t.dtype {
            DType::F64 => Some(Dtype::F64),
            DType::F32 => Some(Dtype::F32),
            DType::F16 => Some(Dtype::F16),
            DType::BF16 => Some(Dtype::BF16),
            DType::I64 => Some(Dtype::I64),
            DType::I32 => Some(Dtype::I32),
            DType::I16 => Some(Dtype::I16),
            DType::I8 => Some(Dtype::I8),
            DType::U64 => Some(Dtype::U64),
            DType::U32 => Some(Dtype::U32),
            DType::U16 => Some(Dtype::U16),
            DType::U8 => Some(Dtype::U8),
            DType::Bool(_) => Some(Dtype::BOOL),
            _ => None,
        })
    }

    /// The stored tensor and its bytes (read from the mapping now).
    fn stored(&self, name: &str) -> Result<(&PackTensor, burn::tensor::Bytes)> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| checkpoint_error(&self.origin, format!("no tensor named {name}")))?;
        let bytes = tensor
            .to_bytes()
            .map_err(|e| checkpoint_error(&self.origin, format!("{name}: cannot read: {e}")))?;
        let expected = tensor.shape.num_elements() * tensor.dtype.size();
        if bytes.len() != expected {
            return Err(checkpoint_error(
                &self.origin,
                format!(
                    "{name}: {} bytes stored for a {:?} {:?} tensor, expected {expected}",
                    bytes.len(),
                    tensor.dtype,
                    tensor.shape.to_vec()
                ),
            ));
        }
        Ok((tensor, bytes))
    }

    /// Tensor `name` as `i64` (integer dtypes only), with its shape.
    pub fn read_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let (stored, bytes) = self.stored(name)?;
        let values = match stored.dtype {
            DType::I64 => bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect(),
            DType::I32 => bytes
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap_or_default())))
                .collect(),
            DType::U8 => bytes.iter().map(|&b| i64::from(b)).collect(),
            other => {
                return Err(checkpoint_error(
                    &self.origin,
                    format!("{name} is {other:?}, not an integer tensor"),
                ));
            }
        };
        Ok((stored.shape.to_vec(), values))
    }
}

/// The files of the checkpoint at `path`: the file itself, or in a directory `single` or the
/// shards its index `<single>.index.json` names.
pub(crate) fn checkpoint_files(path: &Path, single: &str) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let index = format!("{single}.index.json");
    if path.join(single).is_file() {
        Ok(vec![path.join(single)])
    } else if path.join(&index).is_file() {
        shard_files(&path.join(index))
    } else {
        Err(checkpoint_error(
            path,
            format!("no {single} or {index} in this directory"),
        ))
    }
}

/// Every tensor of the checkpoint at `path` (see [`checkpoint_files`]), each file read by `read`;
/// a missing shard or a tensor in two shards is an error naming the file.
pub(crate) fn read_shards<T>(
    path: &Path,
    single: &str,
    read: impl Fn(&Path) -> Result<Vec<(String, T)>>,
) -> Result<BTreeMap<String, T>> {
    let mut tensors = BTreeMap::new();
    for file in checkpoint_files(path, single)? {
        if !file.is_file() {
            return Err(CleftError::io(
                &file,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        for (name, tensor) in read(&file)? {
            if tensors.contains_key(&name) {
                return Err(checkpoint_error(
                    &file,
                    format!("tensor {name} appears in two shards"),
                ));
            }
            tensors.insert(name, tensor);
        }
    }
    Ok(tensors)
}

pub(crate) fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| CleftError::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| checkpoint_error(index, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| checkpoint_error(index, "no `weight_map` object"))?;
    let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    let dir = index.parent().unwrap_or(Path::new("."));
    Ok(shards.into_iter().map(|shard| dir.join(shard)).collect())
}

impl TensorSource for SafetensorsCheckpoint {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape.to_vec())
    }

    fn read(&self, name: &str) -> Result<HostTensor> {
        let (stored, bytes) = self.stored(name)?;
        let kind = match stored.dtype {
            DType::F32 => StoredFloat::F32,
            DType::F16 => StoredFloat::F16,
            DType::BF16 => StoredFloat::BF16,
            DType::F64 => StoredFloat::F64,
            DType::U8 => StoredFloat::U8,
            other => {
                return Err(checkpoint_error(
                    &self.origin,
                    format!("{name}: dtype {other:?} is not a float type"),
                ));
            }
        };
        let data = widen_le(&bytes, kind);
        Ok(HostTensor {
            shape: stored.shape.to_vec(),
            data,
        })
    }
}

/// Element types a checkpoint's tensor is widened to `f32` from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredFloat {
    F32,
    F16,
    BF16,
    F64,
    /// Bytes (e.g. u8 image buffers in goldens), as their values.
    U8,
}

/// Little-endian `bytes` of `kind` as `f32` (f16 / bf16 exactly, f64 rounded).
pub(crate) fn widen_le(bytes: &[u8], kind: StoredFloat) -> Vec<f32> {
    match kind {
        StoredFloat::F32 => bytes
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| f32::from_le_bytes(*b))
            .collect(),
        StoredFloat::F16 => bytes
            .as_chunks::<2>()
            .0
            .iter()
            .map(|b| half::f16::from_le_bytes(*b).to_f32())
            .collect(),
        StoredFloat::BF16 => bytes
            .as_chunks::<2>()
            .0
            .iter()
            .map(|b| half::bf16::from_le_bytes(*b).to_f32())
            .collect(),
        StoredFloat::F64 => bytes
            .as_chunks::<8>()
            .0
            .iter()
            .map(|b| f64::from_le_bytes(*b) as f32)
            .collect(),
        StoredFloat::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
    }
}
