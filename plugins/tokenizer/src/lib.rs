//! Tokenisation for cleft's causal text encoders (GPT-2, the LLaMA family, Gemma 3).
//!
//! [`HfTokenizer`] wraps a Hugging Face `tokenizers::Tokenizer` (from a `tokenizer.json`, from
//! GGUF metadata, or the built-in radiology word vocabulary) and implements cleft-core's
//! [`TextTokenizer`](cleft_core::TextTokenizer): CLEFT-style right-padded batches with at least
//! one pad/EOS after each text. The text encoder plugins share it instead of depending on each
//! other.

mod hf_tokenizer;

pub use hf_tokenizer::{BUILTIN_EOS, BUILTIN_UNK, HfTokenizer};
