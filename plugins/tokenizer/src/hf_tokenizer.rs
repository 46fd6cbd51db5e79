//! Tokenisation with the `tokenizers` crate, producing CLEFT-style right-padded batches.

use cleft_core::ErrorKind;
use std::collections::HashMap;
use std::path::Path;

use cleft_core::{CleftError, TextTokenizer, TokenBatch};
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;

/// The built-in word list of radiology vocabulary (one or more words per line).
const WORDS: &str = include_str!("words.txt");

/// Pad/EOS token of the built-in vocabulary (id 0).
pub const BUILTIN_EOS: &str = "<|endoftext|>";
/// Unknown-word token of the built-in vocabulary (id 1).
pub const BUILTIN_UNK: &str = "<|unk|>";

/// A `tokenizers::Tokenizer` plus the pad/EOS id; encodes without the tokenizer's own special
/// tokens (optionally starting every text with a BOS id, as Gemma and LLaMA-2 expect), truncates
/// to `max_len` real tokens and right-pads with at least one EOS after the last real token.
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
    bos_id: Option<u32>,
}

impl HfTokenizer {
    /// Loads `tokenizer.json`; `pad_token` (GPT-2 style: the EOS token) must be in its vocabulary.
    pub fn from_file(path: &Path, pad_token: &str) -> Result<Self, CleftError> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| {
            CleftError::caused(
                ErrorKind::Data,
                format!("{}: cannot load tokenizer", path.display()),
                e,
            )
        })?;
        let pad_id = tokenizer.token_to_id(pad_token).ok_or_else(|| {
            CleftError::Data(format!(
                "{}: pad token `{pad_token}` is not in the vocabulary",
                path.display()
            ))
        })?;
        Ok(Self {
            tokenizer,
            pad_id,
            bos_id: None,
        })
    }

    /// Wraps an already built tokenizer (e.g. one made from GGUF metadata) with its pad/EOS id.
    pub fn from_tokenizer(tokenizer: Tokenizer, pad_id: u32) -> Self {
        Self {
            tokenizer,
            pad_id,
            bos_id: None,
        }
    }

    /// Starts every encoded text with `bos_id` (counted as a real token).
    pub fn with_bos_id(mut self, bos_id: u32) -> Self {
        self.bos_id = Some(bos_id);
        self
    }

    /// Starts every encoded text with the vocabulary's `token` (e.g. `<bos>`), which must exist.
    pub fn with_bos_token(self, token: &str) -> Result<Self, CleftError> {
        let id = self.tokenizer.token_to_id(token).ok_or_else(|| {
            CleftError::Data(format!("BOS token `{token}` is not in the vocabulary"))
        })?;
        Ok(self.with_bos_id(id))
    }

    /// Starts every text with the token the tokenizer's own post-processor puts first, if it
    /// puts exactly one special token before the text (LLaMA-2's `<s>`, Llama 3's
    /// `<|begin_of_text|>`, Gemma's `<bos>`), as transformers encodes by default; unchanged
    /// otherwise (GPT-2 and SmolLM2 add none). A tokenizer that cannot encode a probe text is
    /// an error naming it.
    pub fn with_post_processor_bos(self) -> Result<Self, CleftError> {
        let probe = "a";
        let encode = |special: bool| {
            self.tokenizer
                .encode(probe, special)
                .map(|e| (e.get_ids().to_vec(), e.get_special_tokens_mask().to_vec()))
                .map_err(|e| {
                    CleftError::caused(ErrorKind::Data, format!("cannot tokenise {probe:?}"), e)
                })
        };
        let ((with, special), (without, _)) = (encode(true)?, encode(false)?);
        match (with.split_first(), special.first()) {
            (Some((&first, rest)), Some(1)) if rest.starts_with(&without) => {
                Ok(self.with_bos_id(first))
            }
            _ => Ok(self),
        }
    }

    /// The BOS id every text starts with, if any.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The built-in lower-cased word-level radiology vocabulary (for tiny models and tests).
    pub fn builtin_words() -> Self {
        let mut vocab = HashMap::new();
        for token in [BUILTIN_EOS, BUILTIN_UNK]
            .into_iter()
            .chain(WORDS.split_whitespace())
        {
            let next = vocab.len() as u32;
            vocab.entry(token.to_string()).or_insert(next);
        }
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token(BUILTIN_UNK.to_string())
            .build()
            .expect("the built-in vocabulary contains its unknown token");
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_normalizer(Some(Lowercase));
        tokenizer.with_pre_tokenizer(Some(Whitespace {}));
        Self {
            tokenizer,
            pad_id: 0,
            bos_id: None,
        }
    }

    /// Token ids of one text: the BOS id if one is set, then the tokenizer's ids without its own
    /// special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, CleftError> {
        let encoding = self.tokenizer.encode(text, false).map_err(|e| {
            CleftError::caused(ErrorKind::Data, format!("cannot tokenise {text:?}"), e)
        })?;
        Ok(self
            .bos_id
            .into_iter()
            .chain(encoding.get_ids().iter().copied())
            .collect())
    }
}

impl TextTokenizer for HfTokenizer {
    fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<TokenBatch, CleftError> {
        let rows: Vec<Vec<u32>> = texts
            .iter()
            .map(|text| {
                self.encode(text)
                    .map(|ids| ids[..ids.len().min(max_len)].to_vec())
            })
            .collect::<Result<_, _>>()?;
        let bos = usize::from(self.bos_id.is_some());
        if let Some(empty) = rows.iter().position(|row| row.len() <= bos) {
            return Err(CleftError::Data(format!(
                "text {empty} ({:?}) has no tokens",
                texts[empty]
            )));
        }
        // One extra position so every row has a pad/EOS after its last real token.
        let len = rows.iter().map(Vec::len).max().unwrap_or(0) + 1;
        Ok(TokenBatch::right_padded(&rows, len, self.pad_id))
    }

    /// The model's vocabulary, without added tokens appended past it (transformers appends e.g.
    /// `<|endoftext|>` to a LLaMA-3 GGUF vocabulary that lacks it; the checkpoint's embedding
    /// table does not have that row, and only the literal text could produce it).
    fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(false)
    }

    fn leading_special_tokens(&self) -> usize {
        usize::from(self.bos_id.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_vocabulary_knows_findings_and_pads_after_each_row() {
        let tokenizer = HfTokenizer::builtin_words();
        let texts = vec![
            "Pleural effusion".to_string(),
            "this is a chest x ray".to_string(),
        ];
        let batch = tokenizer.encode_batch(&texts, 64).unwrap();
        assert_eq!((batch.batch, batch.len), (2, 7));
        assert_eq!(&batch.mask[..7], &[1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(&batch.mask[7..], &[1, 1, 1, 1, 1, 1, 0]);
        assert!(
            batch.ids.iter().all(|&id| id != 1),
            "no unknown words: {:?}",
            batch.ids
        );
        assert_eq!(batch.ids[2], 0, "padding is the EOS id");
    }

    #[test]
    fn truncates_to_max_len_and_keeps_one_pad() {
        let tokenizer = HfTokenizer::builtin_words();
        let batch = tokenizer
            .encode_batch(&["a b c d e".to_string()], 3)
            .unwrap();
        assert_eq!(batch.len, 4);
        assert_eq!(batch.mask, vec![1, 1, 1, 0]);
    }

    #[test]
    fn unknown_words_map_to_unk_and_empty_text_is_an_error() {
        let tokenizer = HfTokenizer::builtin_words();
        let ids = tokenizer.encode("zebra").unwrap();
        assert_eq!(ids, vec![1]);
        assert!(tokenizer.encode_batch(&["".to_string()], 8).is_err());
    }
}

#[cfg(test)]
mod post_processor_tests {
    use super::*;
    use tokenizers::processors::template::TemplateProcessing;

    #[test]
    fn a_leading_special_token_of_the_post_processor_becomes_the_bos() {
        let mut plain = HfTokenizer::builtin_words();
        assert_eq!(
            plain.clone().with_post_processor_bos().unwrap().bos_id(),
            None
        );
        // `<|endoftext|> $A`, as LLaMA's `<s> $A`: id 0 first.
        let template = TemplateProcessing::builder()
            .try_single(format!("{BUILTIN_EOS} $A"))
            .unwrap()
            .special_tokens(vec![(BUILTIN_EOS, 0)])
            .build()
            .unwrap();
        plain.tokenizer.with_post_processor(Some(template));
        let tokenizer = plain.with_post_processor_bos().unwrap();
        assert_eq!(tokenizer.bos_id(), Some(0));
        assert_eq!(tokenizer.leading_special_tokens(), 1);
        let batch = tokenizer
            .encode_batch(&["pleural effusion".to_string()], 8)
            .unwrap();
        assert_eq!(batch.ids[0], 0);
        assert_eq!(batch.mask[..3], [1, 1, 1]);
    }
}
