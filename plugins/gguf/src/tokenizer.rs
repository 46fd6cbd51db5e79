//! Tokenizer metadata (`tokenizer.ggml.*`) and, with the `tokenizers` feature, conversion to a
//! Hugging Face `tokenizers::Tokenizer`.

#[cfg(feature = "tokenizers")]
mod merges;
#[cfg(feature = "tokenizers")]
mod pre;
#[cfg(feature = "tokenizers")]
mod sentencepiece;
#[cfg(feature = "tokenizers")]
use pre::split_regex;
#[cfg(feature = "tokenizers")]
use sentencepiece::{GEMMA_ARCHITECTURES, Sentencepiece, sentencepiece};

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
    /// `general.architecture`, if present: transformers picks the sentencepiece flavour by it
    /// (Gemma, Phi-3 or plain LLaMA).
    pub architecture: Option<String>,
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

    /// Whether transformers puts the BOS token before a text it encodes with special tokens:
    /// `tokenizer.ggml.add_bos_token`, which defaults to true for a `llama` (sentencepiece)
    /// vocabulary and to false otherwise, and only if the file names a BOS token.
    pub fn adds_bos_token(&self) -> bool {
        self.bos_token_id.is_some() && self.add_bos_token.unwrap_or(self.model == "llama")
    }

    /// Whether transformers puts the EOS token after a text it encodes with special tokens:
    /// `tokenizer.ggml.add_eos_token` (default false), and only if the file names an EOS token.
    pub fn adds_eos_token(&self) -> bool {
        self.eos_token_id.is_some() && self.add_eos_token.unwrap_or(false)
    }

    /// The id transformers' `tokenizer(text)` puts first ([`Self::adds_bos_token`]), `None` when
    /// it adds no BOS. It is the id of the BOS token's spelling, i.e. its last occurrence in a
    /// vocabulary that repeats it. [`build_tokenizer`]'s post-processor adds the same id when
    /// asked to add special tokens (`encode(text, true)`).
    pub fn bos_id_to_add(&self) -> Option<u32> {
        self.special_id_to_add(self.bos_token_id, self.adds_bos_token())
    }

    /// The id transformers' `tokenizer(text)` puts last ([`Self::adds_eos_token`]), `None` when
    /// it adds no EOS.
    pub fn eos_id_to_add(&self) -> Option<u32> {
        self.special_id_to_add(self.eos_token_id, self.adds_eos_token())
    }

    fn special_id_to_add(&self, id: Option<u32>, added: bool) -> Option<u32> {
        let token = self.token(id?)?;
        if !added {
            return None;
        }
        let last = self.tokens.iter().rposition(|t| t == token)?;
        u32::try_from(last).ok()
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
            architecture: self
                .get("general.architecture")
                .and_then(MetadataValue::as_str)
                .map(str::to_owned),
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

/// The `tokenizer.ggml.model` values [`build_tokenizer`] accepts.
#[cfg(feature = "tokenizers")]
const SUPPORTED_MODELS: &[&str] = &["gpt2", "llama"];

/// The vocabulary map of `tokens` (a token's id is its index; a repeated spelling keeps its last
/// id, as a Python dict does).
#[cfg(feature = "tokenizers")]
fn vocabulary(tokens: &[String]) -> Result<tokenizers::models::bpe::Vocab> {
    tokens
        .iter()
        .enumerate()
        .map(|(id, t)| {
            u32::try_from(id)
                .map(|id| (t.clone(), id))
                .map_err(|_| GgufError::Malformed("more than 2^32 tokens".into()))
        })
        .collect()
}

/// A `tokenizers` error building one piece of the pipeline, naming the piece.
#[cfg(feature = "tokenizers")]
fn pipeline_error(what: &str, e: impl std::fmt::Display) -> GgufError {
    GgufError::UnsupportedTokenizer(format!("{what}: {e}"))
}

/// `byte_level_tokenizer`: `GPT2Tokenizer`'s backend over the file's vocabulary (respelled in
/// the byte alphabet where a token is not) and merges.
#[cfg(feature = "tokenizers")]
fn byte_level(data: &TokenizerData, spelling: &[char; 256]) -> Result<tokenizers::Tokenizer> {
    use tokenizers::Tokenizer;
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;

    let in_alphabet = |s: &str| s.chars().all(|c| spelling.contains(&c));
    let respelled: Vec<String> = data
        .tokens
        .iter()
        .map(|t| {
            if in_alphabet(t) {
                t.clone()
            } else {
                let spell = |b: u8| spelling.get(usize::from(b)).copied();
                t.bytes().filter_map(spell).collect()
            }
        })
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocabulary(&respelled)?, data.merge_pairs()?)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// Builds a `tokenizers::Tokenizer` that gives the same ids as the one Hugging Face transformers
/// (5.x) builds from the GGUF metadata (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`,
/// `integrations/gguf/gguf_tokenizer_mapping.py`).
///
/// The model (`tokenizer.ggml.model`):
///
/// - `gpt2`: byte-level BPE (`byte_level_tokenizer`, i.e. `GPT2Tokenizer`'s backend): BPE over the
///   file's tokens and merges, no dropout, no unknown token, empty continuing-subword prefix and
///   end-of-word suffix, `fuse_unk = false`, a token not spelled in the byte-level alphabet
///   respelled byte by byte; pre-tokenizer `ByteLevel(add_prefix_space = false, trim_offsets =
///   true, use_regex = true)`, decoder `ByteLevel`, no normalizer. `GPT2Tokenizer`'s own
///   `<|endoftext|>` is a special token (a new id after the vocabulary if the file has none);
/// - `llama`: sentencepiece BPE with byte fallback (`<0x00>`..`<0xFF>`), merges from the file or,
///   as transformers' `generate_merges`, derived from the vocabulary: sorted by
///   `tokenizer.ggml.scores`, except for Gemma (architecture `gemma`, `gemma2`, `gemma3`), whose
///   merges follow the file order and whose space-run tokens (stored as spaces) are respelled
///   `▁▁...`. Per architecture:
///   - Gemma (`GemmaTokenizer`): normalizer `Replace(" ", "▁")`, pre-tokenizer `Split(" ",
///     merged with previous)`, BPE unknown token `<unk>`, decoder `Replace("▁", " ")`,
///     `ByteFallback`, `Fuse`; `<bos> <eos> <unk> <pad> <mask>` are special tokens (added after
///     the vocabulary if absent);
///   - Phi-3: normalizer `Prepend("▁")`, `Replace(" ", "▁")`, no pre-tokenizer;
///   - any other (LLaMA, Mistral, ...: `LlamaTokenizer`): pre-tokenizer `Metaspace("▁",
///     prepend_scheme = first, split = false)`;
///
///   Phi-3 and the others decode with `Replace("▁", " ")`, `ByteFallback`, `Fuse`,
///   `Strip(" ", 1, 0)`, have no BPE unknown token, and `<s> </s> <unk>` are special tokens.
///
/// Then, for every model: `Control` tokens (for `gpt2`, only those spelled in the byte alphabet)
/// and the file's bos/eos/unk/pad tokens are special added tokens, `UserDefined` tokens present
/// in the vocabulary non-special added tokens (all `normalized = false`); `tokenizer.ggml.pre`
/// values transformers gives its own split regex (LLaMA-3's for `llama-bpe`, `llama3`, ...,
/// Qwen2's for `qwen2`, ...) replace the pre-tokenizer with `Split(regex, isolated)` and
/// `ByteLevel(add_prefix_space = false, use_regex = false)`; the post-processor is
/// `TemplateProcessing` adding BOS before and EOS after each sequence as
/// [`TokenizerData::adds_bos_token`] / [`TokenizerData::adds_eos_token`] say (the `llama` model
/// adds BOS unless the file says otherwise). `tokenizer.ggml.add_space_prefix` is ignored, as
/// transformers does.
///
/// Other models (`t5`, `gemma4`, ...) and the `pre` values whose regex is not implemented
/// (`tekken`, `qwen35`, `gpt-4o`, ...) give [`GgufError::UnsupportedTokenizer`] naming the key and
/// value and listing the supported ones.
#[cfg(feature = "tokenizers")]
pub fn build_tokenizer(data: &TokenizerData) -> Result<tokenizers::Tokenizer> {
    use tokenizers::AddedToken;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{SplitDelimiterBehavior, Tokenizer};

    let spelling = bytes_to_unicode();
    let architecture = data.architecture.as_deref().unwrap_or("");
    let gemma_class = GEMMA_ARCHITECTURES.contains(&architecture);
    // The tokenizer class transformers builds first brings special tokens of its own.
    let (mut tokenizer, own_specials): (Tokenizer, &[&str]) = match data.model.as_str() {
        "gpt2" => (byte_level(data, &spelling)?, &["<|endoftext|>"]),
        "llama" if gemma_class => (
            sentencepiece(data, Sentencepiece::Gemma)?,
            &["<bos>", "<eos>", "<unk>", "<pad>", "<mask>"],
        ),
        "llama" if architecture == "phi3" => (
            sentencepiece(data, Sentencepiece::Phi3)?,
            &["<s>", "</s>", "<unk>"],
        ),
        "llama" => (
            sentencepiece(data, Sentencepiece::Llama)?,
            &["<s>", "</s>", "<unk>"],
        ),
        other => {
            return Err(GgufError::UnsupportedTokenizer(format!(
                "tokenizer.ggml.model `{other}` is not supported (supported: {})",
                SUPPORTED_MODELS.join(", ")
            )));
        }
    };
    let split = split_regex(data.pre.as_deref())?;
    let special = |t: &str| AddedToken::from(t.to_owned(), true).normalized(false);
    let own: Vec<AddedToken> = own_specials.iter().map(|t| special(t)).collect();
    tokenizer.add_special_tokens(&own);

    // `add_gguf_special_tokens`: control tokens special, user-defined ones plain added tokens.
    let byte_level = data.model == "gpt2";
    let control: Vec<AddedToken> = data
        .tokens
        .iter()
        .zip(&data.token_types)
        .filter(|(t, ty)| {
            **ty == TokenType::Control && (!byte_level || t.chars().all(|c| spelling.contains(&c)))
        })
        .map(|(t, _)| special(t))
        .collect();
    if !control.is_empty() {
        tokenizer.add_special_tokens(&control);
    }
    let user: Vec<AddedToken> = data
        .tokens
        .iter()
        .zip(&data.token_types)
        .filter(|(t, ty)| **ty == TokenType::UserDefined && tokenizer.token_to_id(t).is_some())
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    if !user.is_empty() {
        tokenizer.add_tokens(&user);
    }

    // The file's named special tokens (and `GemmaTokenizer`'s `<mask>`).
    let name = |id: Option<u32>| -> Result<Option<&str>> {
        id.map(|id| {
            data.token(id).ok_or_else(|| {
                GgufError::Malformed(format!(
                    "special token id {id} is outside the vocabulary of {} tokens",
                    data.tokens.len()
                ))
            })
        })
        .transpose()
    };
    let bos = name(data.bos_token_id)?;
    let eos = name(data.eos_token_id)?;
    let mut named: Vec<&str> = [bos, eos, name(data.unknown_token_id)?]
        .into_iter()
        .chain([name(data.padding_token_id)?])
        .flatten()
        .collect();
    if gemma_class {
        named.push("<mask>");
    }
    let mut seen = std::collections::HashSet::new();
    let named: Vec<AddedToken> = named
        .into_iter()
        .filter(|t| seen.insert(*t))
        .map(special)
        .collect();
    tokenizer.add_special_tokens(&named);

    if let Some(regex) = split {
        let split = Split::new(
            SplitPattern::Regex(regex.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| pipeline_error("tokenizer.ggml.pre split regex", e))?;
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])));
    }

    // `update_post_processor`.
    let bos = bos.filter(|_| data.adds_bos_token());
    let eos = eos.filter(|_| data.adds_eos_token());
    let mut specials: Vec<(String, u32)> = Vec::new();
    for token in [bos, eos].into_iter().flatten() {
        let id = tokenizer.token_to_id(token).ok_or_else(|| {
            GgufError::UnsupportedTokenizer(format!("special token `{token}` has no id"))
        })?;
        specials.push((token.to_owned(), id));
    }
    let bos_at = |type_id: u8| bos.map(|t| format!("{t}:{type_id} ")).unwrap_or_default();
    let eos_at = |type_id: u8| eos.map(|t| format!(" {t}:{type_id}")).unwrap_or_default();
    let single = format!("{}$A:0{}", bos_at(0), eos_at(0));
    let pair = format!("{single} {}$B:1{}", bos_at(1), eos_at(1));
    let template = TemplateProcessing::builder()
        .try_single(single)
        .map_err(|e| pipeline_error("post-processor", e))?
        .try_pair(pair)
        .map_err(|e| pipeline_error("post-processor", e))?
        .special_tokens(specials)
        .build()
        .map_err(|e| pipeline_error("post-processor", e))?;
    tokenizer.with_post_processor(Some(template));
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
