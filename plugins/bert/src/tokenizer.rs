//! BERT tokenisation from a HF `tokenizer.json`: `[CLS] … [SEP]`, right padding with `[PAD]`.

use cleft_core::ErrorKind;
use std::path::Path;

use cleft_core::{CleftError, TextTokenizer, TokenBatch};
use tokenizers::Tokenizer;

/// A `tokenizers::Tokenizer` that adds the special tokens of its post-processor (`[CLS]`,
/// `[SEP]`), truncates to `max_len` keeping the final `[SEP]`, and right-pads with `pad_id`.
///
/// Padding and truncation built into the `tokenizer.json` (MiniLM pads to 128) are disabled, so
/// a batch is as long as its longest text.
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
}

impl BertTokenizer {
    /// Loads `tokenizer.json`; the pad id is `[PAD]`'s (or the file's padding id).
    pub fn from_file(path: &Path) -> Result<Self, CleftError> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
            CleftError::caused(
                ErrorKind::Data,
                format!("{}: cannot load tokenizer", path.display()),
                e,
            )
        })?;
        let configured = tokenizer.get_padding().map(|p| p.pad_id);
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .or(configured)
            .ok_or_else(|| {
                CleftError::Data(format!(
                    "{}: no [PAD] token and no padding id",
                    path.display()
                ))
            })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| CleftError::caused(ErrorKind::Data, path.display().to_string(), e))?;
        Ok(Self { tokenizer, pad_id })
    }

    /// Token ids of one text, with special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, CleftError> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| {
            CleftError::caused(ErrorKind::Data, format!("cannot tokenise {text:?}"), e)
        })?;
        Ok(encoding.get_ids().to_vec())
    }
}

impl TextTokenizer for BertTokenizer {
    fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<TokenBatch, CleftError> {
        let mut rows = Vec::with_capacity(texts.len());
        for text in texts {
            let mut ids = self.encode(text)?;
            if ids.len() > max_len && max_len > 0 {
                let last = ids[ids.len() - 1];
                ids.truncate(max_len);
                ids[max_len - 1] = last;
            }
            if ids.is_empty() {
                return Err(CleftError::Data(format!("text {text:?} has no tokens")));
            }
            rows.push(ids);
        }
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        Ok(TokenBatch::right_padded(&rows, len, self.pad_id))
    }

    fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// `[CLS]`, which BERT's post-processor puts first.
    fn leading_special_tokens(&self) -> usize {
        1
    }
}
