//! Parsing the GGUF header, metadata and tensor infos, and reading tensor data.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::dequant::dequantize;
use crate::error::{GgufError, Result};
use crate::header::parse_header;
use crate::types::GgmlType;
use crate::value::MetadataValue;

/// The default alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Description of one tensor stored in a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub(crate) name: String,
    pub(crate) dims: Vec<u64>,
    pub(crate) ggml_type: GgmlType,
    pub(crate) offset: u64,
}

impl TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions as GGUF/ggml store them: innermost (contiguous) dimension first.
    ///
    /// A PyTorch `Linear` weight of shape `[out, in]` is stored as `[in, out]`.
    pub fn ggml_dims(&self) -> &[u64] {
        &self.dims
    }

    /// The shape in PyTorch/NumPy (row-major, outermost first) order: [`Self::ggml_dims`]
    /// reversed. Dequantised data is laid out row-major in this shape.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// The ggml element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Byte offset of the tensor's data relative to the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements (product of the dims; 1 for a 0-dim tensor).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Number of bytes the tensor's data occupies, `None` for an unknown type or a shape
    /// that is not a whole number of blocks.
    pub fn n_bytes(&self) -> Option<u64> {
        self.ggml_type.bytes_for(self.n_elements())
    }
}

/// A tensor dequantised to `f32`, row-major in PyTorch order.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    /// Shape, outermost first (PyTorch order).
    pub shape: Vec<usize>,
    /// Row-major elements; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

/// The common hyper-parameters of a decoder model, from the `{arch}.*` metadata keys.
#[derive(Debug, Clone, PartialEq)]
pub struct HyperParams {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `{arch}.block_count`: number of transformer layers.
    pub block_count: u64,
    /// `{arch}.context_length`: trained context length.
    pub context_length: u64,
    /// `{arch}.embedding_length`: hidden size.
    pub embedding_length: u64,
    /// `{arch}.feed_forward_length`: MLP intermediate size, if present.
    pub feed_forward_length: Option<u64>,
    /// `{arch}.attention.head_count`: number of query heads.
    pub head_count: u64,
    /// `{arch}.attention.head_count_kv`: number of key/value heads (defaults to `head_count`).
    pub head_count_kv: u64,
    /// `{arch}.rope.freq_base`, if present.
    pub rope_freq_base: Option<f64>,
    /// `{arch}.rope.dimension_count`, if present.
    pub rope_dimension_count: Option<u64>,
    /// `{arch}.attention.layer_norm_rms_epsilon`, if present.
    pub rms_norm_eps: Option<f64>,
    /// `{arch}.vocab_size`, if present.
    pub vocab_size: Option<u64>,
}

pub(crate) enum Source {
    File { path: PathBuf, file: Mutex<File> },
    Bytes(Vec<u8>),
}

/// An opened GGUF (v2 or v3) file: parsed header, metadata and tensor infos. Tensor data is read
/// on demand (from the file with positioned reads, or from an in-memory buffer).
pub struct GgufFile {
    pub(crate) version: u32,
    pub(crate) metadata: Vec<(String, MetadataValue)>,
    pub(crate) metadata_index: HashMap<String, usize>,
    pub(crate) tensors: Vec<TensorInfo>,
    pub(crate) tensor_index: HashMap<String, usize>,
    pub(crate) alignment: u64,
    pub(crate) data_offset: u64,
    pub(crate) source: Source,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("GgufFile");
        if let Source::File { path, .. } = &self.source {
            s.field("path", path);
        }
        s.field("version", &self.version)
            .field("metadata_len", &self.metadata.len())
            .field("tensor_count", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file. Only the header is read; tensor data is read on demand.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let header = parse_header(BufReader::with_capacity(1 << 20, &file), len)?;
        Ok(header.finish(Source::File {
            path: path.to_owned(),
            file: Mutex::new(file),
        }))
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let header = parse_header(&bytes[..], bytes.len() as u64)?;
        Ok(header.finish(Source::Bytes(bytes)))
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of every tensor's data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset of the tensor data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata entries in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// The metadata value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, value)| value)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// The non-negative integer stored under `key` (any integer type).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "non-negative integer",
            found: v.value_type(),
        })
    }

    /// The number stored under `key` (any float or integer type), as `f64`.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "number",
            found: v.value_type(),
        })
    }

    /// The string stored under `key`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "string",
            found: v.value_type(),
        })
    }

    /// The bool stored under `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "bool",
            found: v.value_type(),
        })
    }

    /// The array stored under `key`.
    pub fn get_array(&self, key: &str) -> Result<&[MetadataValue]> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "array",
            found: v.value_type(),
        })
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// The common `{arch}.*` hyper-parameters.
    pub fn hyper_params(&self) -> Result<HyperParams> {
        let arch = self.architecture()?.to_owned();
        let key = |k: &str| format!("{arch}.{k}");
        let opt_u64 = |k: &str| -> Result<Option<u64>> {
            let k = key(k);
            if self.get(&k).is_some() {
                self.get_u64(&k).map(Some)
            } else {
                Ok(None)
            }
        };
        let opt_f64 = |k: &str| -> Result<Option<f64>> {
            let k = key(k);
            if self.get(&k).is_some() {
                self.get_f64(&k).map(Some)
            } else {
                Ok(None)
            }
        };
        let head_count = self.get_u64(&key("attention.head_count"))?;
        Ok(HyperParams {
            block_count: self.get_u64(&key("block_count"))?,
            context_length: self.get_u64(&key("context_length"))?,
            embedding_length: self.get_u64(&key("embedding_length"))?,
            feed_forward_length: opt_u64("feed_forward_length")?,
            head_count,
            head_count_kv: opt_u64("attention.head_count_kv")?.unwrap_or(head_count),
            rope_freq_base: opt_f64("rope.freq_base")?,
            rope_dimension_count: opt_u64("rope.dimension_count")?,
            rms_norm_eps: opt_f64("attention.layer_norm_rms_epsilon")?,
            vocab_size: opt_u64("vocab_size")?,
            architecture: arch,
        })
    }

    /// All tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of the tensor called `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_owned()))
    }

    /// Total number of parameters: the sum of the element counts of all tensors.
    pub fn parameter_count(&self) -> u64 {
        // Saturating: each count fits in u64 (checked when parsing), their sum may not.
        self.tensors
            .iter()
            .map(TensorInfo::n_elements)
            .fold(0u64, u64::saturating_add)
    }

    /// The raw (possibly quantised) bytes of tensor `name`.
    ///
    /// Fails with [`GgufError::UnsupportedType`] for a ggml type unknown to this crate (whose size
    /// cannot be computed).
    pub fn tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let info = self.require_tensor(name)?;
        let n = info.n_bytes().ok_or_else(|| GgufError::UnsupportedType {
            tensor: name.to_owned(),
            ggml_type: info.ggml_type,
        })? as usize;
        let start = self.data_offset + info.offset;
        match &self.source {
            Source::Bytes(b) => usize::try_from(start)
                .ok()
                .and_then(|start| b.get(start..start.checked_add(n)?))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    GgufError::Malformed(format!(
                        "tensor `{name}`: data (offset {start}, {n} bytes) runs past the end of the \
                         {} bytes",
                        b.len()
                    ))
                }),
            Source::File { file, .. } => {
                let mut buf = vec![0u8; n];
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                f.seek(SeekFrom::Start(start))?;
                f.read_exact(&mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Tensor `name` dequantised to `f32`, row-major in PyTorch order (see [`TensorInfo::shape`]),
    /// exactly as stored (no layout changes such as [`crate::reverse_permute`]).
    pub fn read_f32(&self, name: &str) -> Result<F32Tensor> {
        let info = self.require_tensor(name)?;
        if !info.ggml_type.can_dequantize() {
            return Err(GgufError::UnsupportedType {
                tensor: name.to_owned(),
                ggml_type: info.ggml_type,
            });
        }
        let bytes = self.tensor_bytes(name)?;
        let data = dequantize(name, info.ggml_type, &bytes, info.n_elements() as usize)?;
        Ok(F32Tensor {
            shape: info.shape(),
            data,
        })
    }

    /// Tensor `name` dequantised to `f32` in the layout Hugging Face transformers' GGUF loader
    /// produces: for `general.architecture == "llama"`, `*.attn_q.*` rows are un-permuted with
    /// `head_count` heads and `*.attn_k.*` rows with `head_count_kv` heads (see
    /// [`crate::unpermute_llama_qk`]); every other tensor is returned as [`Self::read_f32`] does.
    /// Like transformers, nothing is un-permuted when either head count key is absent.
    pub fn read_f32_hf(&self, name: &str) -> Result<F32Tensor> {
        let mut t = self.read_f32(name)?;
        if self.architecture()? == "llama" {
            // transformers leaves Q/K untouched when either head count is missing from the
            // config it derives from the metadata; mirror that.
            let n_head = self
                .get("llama.attention.head_count")
                .and_then(MetadataValue::as_u64);
            let n_head_kv = self
                .get("llama.attention.head_count_kv")
                .and_then(MetadataValue::as_u64);
            if let (Some(n_head), Some(n_head_kv)) = (n_head, n_head_kv) {
                crate::permute::unpermute_llama_qk(
                    name,
                    &mut t,
                    n_head as usize,
                    n_head_kv as usize,
                )?;
            }
        }
        Ok(t)
    }
}
