//! PyTorch checkpoints (`pytorch_model.bin`, `.pt`, `.pth`): what `torch.save(state_dict)` and
//! transformers' `save_pretrained(safe_serialization=False)` write, as many Hub models (BioMedLM
//! among them) still ship. Read through burn's `pytorch-reader`, which parses the pickle itself
//! and never executes it; tensor bytes are read when [`TensorSource::read`] asks for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pytorch_reader::{DType, PytorchReader, Tensor};

use super::source::{
    HostTensor, StoredFloat, TensorSource, checkpoint_error, read_shards, widen_le,
};
use crate::error::Result;

/// A PyTorch checkpoint: one file, a HF directory holding `pytorch_model.bin`, or a sharded
/// directory (`pytorch_model.bin.index.json`).
pub struct PytorchCheckpoint {
    origin: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

impl std::fmt::Debug for PytorchCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PytorchCheckpoint")
            .field("origin", &self.origin)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl PytorchCheckpoint {
    /// Opens `path`: a `.bin` / `.pt` / `.pth` file, or a directory holding `pytorch_model.bin`
    /// or `pytorch_model.bin.index.json` (its `weight_map` names the shard of each tensor).
    pub fn open(path: &Path) -> Result<Self> {
        let tensors = read_shards(path, "pytorch_model.bin", |file| {
            let reader = PytorchReader::new(file).map_err(|e| {
                checkpoint_error(file, format!("not a readable PyTorch checkpoint: {e}"))
            })?;
            Ok(reader.into_tensors().into_iter().collect())
        })?;
        Ok(Self {
            origin: path.to_path_buf(),
            tensors,
        })
    }

    /// The element type of tensor `name` as safetensors spells it (`F16`, `BF16`, `F32`, …).
    pub fn dtype_name(&self, name: &str) -> Option<String> {
        self.tensors.get(name).map(|t| format!("{:?}", t.dtype()))
    }

    /// Every tensor's name, element type and element count.
    pub(super) fn summary(&self) -> impl Iterator<Item = (&str, DType, usize)> {
        self.tensors
            .iter()
            .map(|(name, t)| (name.as_str(), t.dtype(), t.num_elements()))
    }
}

/// Whether `dtype` holds real numbers a model's parameters are made of.
pub(super) fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

impl TensorSource for PytorchCheckpoint {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape().to_vec())
    }

    fn read(&self, name: &str) -> Result<HostTensor> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| checkpoint_error(&self.origin, format!("no tensor named {name}")))?;
        let bytes = tensor
            .read()
            .map_err(|e| checkpoint_error(&self.origin, format!("{name}: cannot read: {e}")))?;
        if bytes.len() != tensor.byte_len() {
            return Err(checkpoint_error(
                &self.origin,
                format!(
                    "{name}: {} bytes read for a {:?} {:?} tensor, expected {}",
                    bytes.len(),
                    tensor.dtype(),
                    tensor.shape(),
                    tensor.byte_len()
                ),
            ));
        }
        // The reader returns native-endian bytes (and refuses big-endian files).
        if cfg!(target_endian = "big") {
            return Err(checkpoint_error(
                &self.origin,
                "PyTorch checkpoints are read on little-endian hosts only",
            ));
        }
        let kind = match tensor.dtype() {
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
            shape: tensor.shape().to_vec(),
            data,
        })
    }
}
