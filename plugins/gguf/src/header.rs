//! Parsing of the GGUF header: magic, version, metadata key/values and tensor infos.

use std::io::Read;

use crate::error::{GgufError, Result};
use crate::reader::{DEFAULT_ALIGNMENT, GgufFile, Source, TensorInfo};
use crate::types::GgmlType;
use crate::value::{MetadataValue, ValueType};

/// A reader that counts bytes consumed and knows how many bytes the whole input has
/// (to reject absurd lengths before allocating).
struct Cursor<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Cursor<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                GgufError::Malformed(format!("unexpected end of file at byte {}", self.pos))
            } else {
                e.into()
            }
        })?;
        self.pos += N as u64;
        Ok(buf)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }
    /// A count of items each taking at least `min_item_bytes`; rejects counts the rest of the
    /// input cannot hold.
    fn count(&mut self, what: &str, min_item_bytes: u64) -> Result<u64> {
        let n = self.u64()?;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(GgufError::Malformed(format!(
                "{what} count {n} at byte {} exceeds the file size",
                self.pos - 8
            )));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.count("string length", 1)? as usize;
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.pos += n as u64;
        String::from_utf8(buf).map_err(|e| {
            GgufError::Malformed(format!("string before byte {} is not UTF-8: {e}", self.pos))
        })
    }
    fn value_type(&mut self) -> Result<ValueType> {
        let id = self.u32()?;
        ValueType::from_id(id).ok_or_else(|| {
            GgufError::Malformed(format!(
                "unknown metadata value type {id} at byte {}",
                self.pos - 4
            ))
        })
    }
    fn value(&mut self, ty: ValueType, depth: u32) -> Result<MetadataValue> {
        Ok(match ty {
            ValueType::U8 => MetadataValue::U8(u8::from_le_bytes(self.bytes()?)),
            ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(self.bytes()?)),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.bytes()?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.bytes()?)),
            ValueType::U32 => MetadataValue::U32(self.u32()?),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.bytes()?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.bytes()?)),
            ValueType::Bool => {
                let [b] = self.bytes()?;
                match b {
                    0 => MetadataValue::Bool(false),
                    1 => MetadataValue::Bool(true),
                    other => {
                        return Err(GgufError::Malformed(format!(
                            "bool value {other} at byte {}",
                            self.pos - 1
                        )));
                    }
                }
            }
            ValueType::String => MetadataValue::String(self.string()?),
            ValueType::U64 => MetadataValue::U64(self.u64()?),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.bytes()?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.bytes()?)),
            ValueType::Array => {
                if depth > 8 {
                    return Err(GgufError::Malformed(
                        "metadata arrays nested too deeply".into(),
                    ));
                }
                let item_type = self.value_type()?;
                let min_size = match item_type {
                    ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
                    ValueType::U16 | ValueType::I16 => 2,
                    ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
                    ValueType::String | ValueType::U64 | ValueType::I64 | ValueType::F64 => 8,
                    ValueType::Array => 12,
                };
                let n = self.count("array", min_size)?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(item_type, depth + 1)?);
                }
                MetadataValue::Array { item_type, items }
            }
        })
    }
}

pub(crate) struct Header {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
}

impl Header {
    pub(crate) fn finish(self, source: Source) -> GgufFile {
        let metadata_index = self
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let tensor_index = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        GgufFile {
            version: self.version,
            metadata: self.metadata,
            metadata_index,
            tensors: self.tensors,
            tensor_index,
            alignment: self.alignment,
            data_offset: self.data_offset,
            source,
        }
    }
}

pub(crate) fn parse_header<R: Read>(reader: R, len: u64) -> Result<Header> {
    let mut r = Cursor {
        inner: reader,
        pos: 0,
        len,
    };
    let magic: [u8; 4] = r
        .bytes()
        .map_err(|_| GgufError::Malformed("file shorter than the GGUF magic".into()))?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic(magic));
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    // Each tensor info takes at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes,
    // each metadata entry at least 8 (key len) + 4 (type) + 1 bytes.
    let n_tensors = r.count("tensor", 24)?;
    let n_kv = r.count("metadata entry", 13)?;

    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.value_type()?;
        let value = r.value(ty, 0)?;
        if !seen.insert(key.clone()) {
            return Err(GgufError::Malformed(format!(
                "duplicate metadata key `{key}`"
            )));
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            _ => {
                return Err(GgufError::Malformed(format!(
                    "general.alignment must be a power-of-two integer, found {v:?}"
                )));
            }
        },
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = std::collections::HashSet::new();
    for _ in 0..n_tensors {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > 8 {
            return Err(GgufError::Malformed(format!(
                "tensor `{name}` has {n_dims} dims (max 8)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let ggml_type = GgmlType::from_id(r.u32()?);
        let offset = r.u64()?;
        if !names.insert(name.clone()) {
            return Err(GgufError::Malformed(format!(
                "duplicate tensor name `{name}`"
            )));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }

    let data_offset = r.pos.div_ceil(alignment) * alignment;
    for t in &tensors {
        // Every shape's element count must fit in u64, whatever its type (found by fuzzing: an
        // unknown type skipped this and `n_elements` overflowed later).
        if t.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err(GgufError::Malformed(format!(
                "tensor `{}`: dims {:?} hold more than 2^64 elements",
                t.name, t.dims
            )));
        }
        if t.ggml_type.block_layout().is_none() {
            // Unknown type (newer ggml): its size is unknown, so it cannot be validated or read,
            // but the rest of the file stays usable.
            continue;
        }
        let n_bytes = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| t.ggml_type.bytes_for(n))
            .ok_or_else(|| {
                GgufError::Malformed(format!(
                    "tensor `{}`: dims {:?} are not a whole number of {} blocks (or the type is unknown)",
                    t.name, t.dims, t.ggml_type
                ))
            })?;
        if t.offset % alignment != 0 {
            return Err(GgufError::Malformed(format!(
                "tensor `{}`: offset {} is not aligned to {alignment}",
                t.name, t.offset
            )));
        }
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(n_bytes));
        if end.is_none_or(|e| e > len) {
            return Err(GgufError::Malformed(format!(
                "tensor `{}`: data (offset {}, {n_bytes} bytes) runs past the end of the file ({len} bytes)",
                t.name, t.offset
            )));
        }
    }

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}
