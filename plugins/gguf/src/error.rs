//! Error type of the crate.

use crate::types::GgmlType;
use crate::value::ValueType;

/// Everything that can go wrong while reading a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// An I/O error while opening or reading the file.
    #[error("I/O error reading GGUF data: {0}")]
    Io(#[from] std::io::Error),

    /// The file does not start with the `GGUF` magic.
    #[error("not a GGUF file: bad magic {0:02x?} (expected \"GGUF\")")]
    BadMagic([u8; 4]),

    /// The GGUF version is not one this reader understands (2 and 3 are).
    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    UnsupportedVersion(u32),

    /// The header or metadata is malformed or truncated.
    #[error("malformed GGUF file: {0}")]
    Malformed(String),

    /// A metadata key that was asked for is absent.
    #[error("metadata key `{0}` not found")]
    MissingKey(String),

    /// A metadata key exists but holds a value of an unexpected type.
    #[error("metadata key `{key}` has type {found:?}, expected {expected}")]
    WrongType {
        /// The metadata key.
        key: String,
        /// What the caller expected (human readable).
        expected: &'static str,
        /// The type actually stored.
        found: ValueType,
    },

    /// No tensor has the requested name.
    #[error("tensor `{0}` not found")]
    MissingTensor(String),

    /// The tensor's ggml type cannot be dequantised by this crate.
    #[error("tensor `{tensor}`: dequantisation of ggml type {ggml_type} is not supported")]
    UnsupportedType {
        /// Tensor name.
        tensor: String,
        /// Its ggml type.
        ggml_type: GgmlType,
    },

    /// The number of bytes does not match what the type and element count require.
    #[error("tensor `{tensor}`: expected {expected} bytes of {ggml_type} data, got {actual}")]
    SizeMismatch {
        /// Tensor name (or a description of the buffer).
        tensor: String,
        /// The ggml type of the data.
        ggml_type: GgmlType,
        /// Bytes required.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },

    /// A shape is incompatible with the requested operation.
    #[error("invalid shape: {0}")]
    InvalidShape(String),

    /// The tokenizer metadata describes a tokenizer this crate cannot build.
    #[error("unsupported tokenizer: {0}")]
    UnsupportedTokenizer(String),

    /// The `tokenizers` crate rejected the tokenizer built from metadata.
    #[cfg(feature = "tokenizers")]
    #[error("building tokenizer failed: {0}")]
    Tokenizer(#[from] tokenizers::Error),
}

/// Result alias with [`GgufError`].
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
