//! Tokenizer metadata (`tokenizer.ggml.*`) and, with the `tokenizers` feature, conversion to a
//! Hugging Face `tokenizers::Tokenizer`.

use crate::error::{GgufError, Result};
use crate::reader::GgufFile;
use crate::value::MetadataValue;

/// llama.cpp's token attribute (`tokenizer.ggml.token_type`, `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0: undefined.
    Undefined,
    /// 1: a normal token.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: a control (special) token such as `<|im_start|>`.
    Control,
    /// 4: a user-defined added token that is matched whole but is not special.
    UserDefined,
    /// 5: an unused slot.
    Unused,
    /// 6: a byte token (`<0x0A>`) of a sentencepiece vocabulary.
    Byte,
    /// Any other value.
    Other(i32),
}

impl TokenType {
    /// Maps the stored integer to a [`TokenType`].
    pub fn from_i32(v: i32) -> Self {
        match v {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            other => TokenType::Other(other),
        }
    }

    /// The stored integer.
    pub fn as_i32(self) -> i32 {
        match self {
            TokenType::Undefined => 0,
            TokenType::Normal => 1,
            TokenType::Unknown => 2,
            TokenType::Control => 3,
            TokenType::UserDefined => 4,
            TokenType::Unused => 5,
            TokenType::Byte => 6,
            TokenType::Other(v) => v,
        }
    }
}

/// The tokenizer described by a GGUF file's `tokenizer.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerData {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (sentencepiece), ...
    pub model: String,
    /// `tokenizer.ggml.pre`: llama.cpp's pre-tokenizer name (e.g. `smollm`), if present.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: the vocabulary; a token's id is its index.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`: BPE merges as stored, `"left right"`, best first (empty if absent).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (empty if absent).
    pub token_types: Vec<TokenType>,
    /// `tokenizer.ggml.scores`, one per token, if present.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unknown_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`, if present.
    pub chat_template: Option<String>,
}

impl TokenizerData {
    /// The merges split into `(left, right)` pairs.
    pub fn merge_pairs(&self) -> Result<Vec<(String, String)>> {
        self.merges
            .iter()
            .map(|m| {
                let mut it = m.split(' ');
                match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), None) => Ok((a.to_owned(), b.to_owned())),
                    _ => Err(GgufError::Malformed(format!(
                        "merge `{m}` is not two tokens separated by one space"
                    ))),
                }
            })
            .collect()
    }

    /// The token with id `id`, if any.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
}

fn string_array(gguf: &GgufFile, key: &str) -> Result<Vec<String>> {
    gguf.get_array(key)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| GgufError::WrongType {
                    key: key.to_owned(),
                    expected: "array of strings",
                    found: v.value_type(),
                })
        })
        .collect()
}

impl GgufFile {
    /// Extracts the tokenizer metadata. Requires `tokenizer.ggml.model` and `tokenizer.ggml.tokens`.
    pub fn tokenizer_data(&self) -> Result<TokenizerData> {
        let opt_id = |k: &str| -> Result<Option<u32>> {
            match self.get(k) {
                None => Ok(None),
                Some(_) => u32::try_from(self.get_u64(k)?)
                    .map(Some)
                    .map_err(|_| GgufError::Malformed(format!("`{k}` does not fit in u32"))),
            }
        };
        let opt_bool = |k: &str| -> Result<Option<bool>> {
            if self.get(k).is_some() {
                self.get_bool(k).map(Some)
            } else {
                Ok(None)
            }
        };
        let tokens = string_array(self, "tokenizer.ggml.tokens")?;
        let merges = if self.get("tokenizer.ggml.merges").is_some() {
            string_array(self, "tokenizer.ggml.merges")?
        } else {
            Vec::new()
        };
        let token_types = match self.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(_) => self
                .get_array("tokenizer.ggml.token_type")?
                .iter()
                .map(|v| {
                    v.as_i64()
                        .and_then(|x| i32::try_from(x).ok())
                        .map(TokenType::from_i32)
                        .ok_or_else(|| GgufError::WrongType {
                            key: "tokenizer.ggml.token_type".into(),
                            expected: "array of integers",
                            found: v.value_type(),
                        })
                })
                .collect::<Result<_>>()?,
        };
        if !token_types.is_empty() && token_types.len() != tokens.len() {
            return Err(GgufError::Malformed(format!(
                "{} token types for {} tokens",
                token_types.len(),
                tokens.len()
            )));
        }
        let scores = match self.get("tokenizer.ggml.scores") {
            None => None,
            Some(_) => Some(
                self.get_array("tokenizer.ggml.scores")?
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .map(|x| x as f32)
                            .ok_or_else(|| GgufError::WrongType {
                                key: "tokenizer.ggml.scores".into(),
                                expected: "array of numbers",
                                found: v.value_type(),
                            })
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        let data = TokenizerData {
            model: self.get_str("tokenizer.ggml.model")?.to_owned(),
            pre: self
                .get("tokenizer.ggml.pre")
                .and_then(MetadataValue::as_str)
                .map(str::to_owned),
            tokens,
            merges,
            token_types,
            scores,
            bos_token_id: opt_id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: opt_id("tokenizer.ggml.eos_token_id")?,
            unknown_token_id: opt_id("tokenizer.ggml.unknown_token_id")?,
            padding_token_id: opt_id("tokenizer.ggml.padding_token_id")?,
            add_bos_token: opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos_token: opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: opt_bool("tokenizer.ggml.add_space_prefix")?,
            chat_template: self
                .get("tokenizer.chat_template")
                .and_then(MetadataValue::as_str)
                .map(str::to_owned),
        };
        for (what, id) in [
            ("bos", data.bos_token_id),
            ("eos", data.eos_token_id),
            ("unknown", data.unknown_token_id),
            ("padding", data.padding_token_id),
        ] {
            if let Some(id) = id
                && id as usize >= data.tokens.len()
            {
                return Err(GgufError::Malformed(format!(
                    "{what} token id {id} is outside the vocabulary of {}",
                    data.tokens.len()
                )));
            }
        }
        Ok(data)
    }

    /// Builds the Hugging Face tokenizer for this file (see [`build_tokenizer`]).
    #[cfg(feature = "tokenizers")]
    pub fn hf_tokenizer(&self) -> Result<tokenizers::Tokenizer> {
        build_tokenizer(&self.tokenizer_data()?)
    }
}

/// GPT-2's byte-to-unicode table: byte `b` is spelled `BYTE_TO_UNICODE[b]` in byte-level BPE.
#[cfg(feature = "tokenizers")]
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for (b, slot) in (0..=255u8).zip(table.iter_mut()) {
        let printable =
            (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        *slot = if printable {
            char::from(b)
        } else {
            n += 1;
            // 256..=323: always valid code points.
            char::from_u32(255 + n).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
    }
    table
}

/// `tokenizer.ggml.pre` values for which transformers replaces the byte-level regex with its own
/// split pattern (`GGUF_PRE_TOKENIZER_SPLITS`); those are not implemented here.
#[cfg(feature = "tokenizers")]
const CUSTOM_SPLIT_PRE_TOKENIZERS: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
    "tekken",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "megrez",
    "qwen35",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "minimax-m2",
];

/// Builds a `tokenizers::Tokenizer` equivalent to the one Hugging Face transformers (5.x) builds
/// from GGUF metadata for `tokenizer.ggml.model == "gpt2"` (`byte_level_tokenizer` in
/// `integrations/gguf/gguf_tokenizer_mapping.py`, i.e. a `GPT2Tokenizer`):
///
/// - model: BPE over the file's tokens and merges, no dropout, no unknown token, empty
///   continuing-subword prefix and end-of-word suffix, `fuse_unk = false`; a token not spelled
///   in the byte-level alphabet is respelled byte by byte (merges are used as stored);
/// - pre-tokenizer: `ByteLevel(add_prefix_space = false, trim_offsets = true, use_regex = true)`;
/// - decoder: `ByteLevel` (defaults); no normalizer;
/// - post-processor: `TemplateProcessing` `$A` / `$A $B:1` with no special tokens (the files'
///   `add_bos_token`/`add_eos_token` are ignored, as transformers' `GPT2Tokenizer` does when
///   they are false or absent; `true` is rejected as unsupported);
/// - added tokens: every `Control` token spelled in the byte alphabet, plus the bos/eos/unk/pad
///   tokens, as special tokens (`normalized = false`); every `UserDefined` token in the vocabulary
///   as a non-special added token.
///
/// Other tokenizer models, and `tokenizer.ggml.pre` values for which transformers installs its own
/// split regex (e.g. `llama-bpe`, `qwen2`), give [`GgufError::UnsupportedTokenizer`].
#[cfg(feature = "tokenizers")]
pub fn build_tokenizer(data: &TokenizerData) -> Result<tokenizers::Tokenizer> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::{BPE, Vocab};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, Tokenizer};

    if data.model != "gpt2" {
        return Err(GgufError::UnsupportedTokenizer(format!(
            "tokenizer.ggml.model `{}` (only `gpt2` byte-level BPE is supported)",
            data.model
        )));
    }
    if let Some(pre) = data.pre.as_deref()
        && CUSTOM_SPLIT_PRE_TOKENIZERS.contains(&pre)
    {
        return Err(GgufError::UnsupportedTokenizer(format!(
            "tokenizer.ggml.pre `{pre}` needs a custom split regex, which is not implemented"
        )));
    }
    if data.add_bos_token == Some(true) || data.add_eos_token == Some(true) {
        return Err(GgufError::UnsupportedTokenizer(
            "add_bos_token/add_eos_token = true is not supported for gpt2 tokenizers".into(),
        ));
    }

    let spelling = bytes_to_unicode();
    let in_alphabet = |s: &str| s.chars().all(|c| spelling.contains(&c));
    let respell = |s: &str| -> String {
        if in_alphabet(s) {
            s.to_owned()
        } else {
            let spell = |b: u8| spelling.get(usize::from(b)).copied();
            s.bytes().filter_map(spell).collect()
        }
    };
    // Later duplicates win, as in the Python dict comprehension.
    let vocab: Vocab = data
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (respell(t), id as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.clone(), data.merge_pairs()?)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let template = TemplateProcessing::builder()
        .try_single("$A")
        .map_err(|e| GgufError::UnsupportedTokenizer(e.to_string()))?
        .try_pair("$A $B:1")
        .map_err(|e| GgufError::UnsupportedTokenizer(e.to_string()))?
        .build()
        .map_err(|e| GgufError::UnsupportedTokenizer(e.to_string()))?;
    tokenizer.with_post_processor(Some(template));

    let mut special: Vec<String> = Vec::new();
    for id in [
        data.bos_token_id,
        data.eos_token_id,
        data.unknown_token_id,
        data.padding_token_id,
    ]
    .into_iter()
    .flatten()
    {
        let token = data.tokens.get(id as usize).ok_or_else(|| {
            GgufError::Malformed(format!(
                "special token id {id} is outside the vocabulary of {} tokens",
                data.tokens.len()
            ))
        })?;
        special.push(token.clone());
    }
    for (t, ty) in data.tokens.iter().zip(&data.token_types) {
        if *ty == TokenType::Control && in_alphabet(t) {
            special.push(t.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    let special: Vec<AddedToken> = special
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    tokenizer.add_special_tokens(&special);

    let user: Vec<AddedToken> = data
        .tokens
        .iter()
        .zip(&data.token_types)
        .filter(|(t, ty)| **ty == TokenType::UserDefined && vocab.contains_key(t.as_str()))
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    if !user.is_empty() {
        tokenizer.add_tokens(&user);
    }
    Ok(tokenizer)
}

#[cfg(all(test, feature = "tokenizers"))]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xA0], 'ł');
        assert_eq!(t[0xAD], 'Ń');
        assert_eq!(t[0x7F], 'ġ');
        let alphabet = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet();
        assert_eq!(alphabet.len(), 256);
        assert!(t.iter().all(|c| alphabet.contains(c)));
    }
}
