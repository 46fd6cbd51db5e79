//! A small reader for GGUF (v2/v3) model files, as written by llama.cpp.
//!
//! - [`GgufFile`] parses the header, all metadata (every value type, including nested arrays) and
//!   the tensor infos; the data section starts at the header end rounded up to
//!   `general.alignment` (default [`DEFAULT_ALIGNMENT`]). Tensor data is read on demand.
//! - [`dequantize`] turns F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the k-quants Q2_K,
//!   Q3_K, Q4_K, Q5_K, Q6_K into `f32`, bit-identical to ggml's reference `dequantize_row_*`;
//!   other types (Q8_1, Q8_K, the i-quants, TQ*, MXFP4, NVFP4, Q1_0) give
//!   [`GgufError::UnsupportedType`] naming the tensor and type.
//! - [`TensorInfo::ggml_dims`] is the stored (innermost-first) shape, [`TensorInfo::shape`] the
//!   PyTorch-order one.
//! - [`reverse_permute`] / [`GgufFile::read_f32_hf`] undo llama.cpp's Q/K row permutation exactly
//!   as Hugging Face transformers does.
//! - [`GgufFile::tokenizer_data`] extracts the tokenizer vocabulary and merges; with the
//!   `tokenizers` feature (default), [`build_tokenizer`] makes a `tokenizers::Tokenizer`
//!   equivalent to transformers' GGUF conversion: `gpt2` byte-level BPE (with the `llama-bpe` /
//!   `qwen2` split patterns) and `llama` SentencePiece vocabularies (LLaMA-2 / Mistral, Phi-3,
//!   Gemma; merges derived from the vocabulary when the file has none).
//!
//! ```no_run
//! let gguf = cleft_gguf::GgufFile::open("model.gguf")?;
//! let hp = gguf.hyper_params()?;
//! let q = gguf.read_f32_hf("blk.0.attn_q.weight")?; // PyTorch layout, un-permuted
//! assert_eq!(q.shape, vec![hp.embedding_length as usize; 2]);
//! # Ok::<(), cleft_gguf::GgufError>(())
//! ```

// Parsers of user files: no `unwrap`, `expect` or unchecked indexing on what a file holds
// (every bad byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod dequant;
mod error;
mod header;
mod kquants;
mod permute;
mod reader;
mod tokenizer;
mod types;
mod value;

pub use dequant::{QK, dequantize, dequantize_into};
pub use error::{GgufError, Result};
pub use kquants::QK_K;
pub use permute::{permute, reverse_permute, unpermute_llama_qk};
pub use reader::{DEFAULT_ALIGNMENT, F32Tensor, GgufFile, HyperParams, TensorInfo};
#[cfg(feature = "tokenizers")]
pub use tokenizer::build_tokenizer;
pub use tokenizer::{TokenType, TokenizerData};
pub use types::GgmlType;
pub use value::{MetadataValue, ValueType};

#[cfg(feature = "tokenizers")]
pub use tokenizers;
