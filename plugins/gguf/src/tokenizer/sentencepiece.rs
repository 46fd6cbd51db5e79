//! `llama` (sentencepiece) vocabularies as transformers builds them from GGUF metadata:
//! LLaMA-2 / Mistral (`LlamaTokenizer`), Phi-3, and Gemma (`GemmaTokenizer`).

use super::{TokenizerData, merges, pipeline_error, vocabulary};
use crate::error::{GgufError, Result};

/// How transformers builds a `llama` (sentencepiece) vocabulary, picked by architecture
/// (`GGUF_SENTENCEPIECE_BUILDERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sentencepiece {
    /// `sentencepiece_tokenizer`: a `LlamaTokenizer` (LLaMA-2, Mistral, ...).
    Llama,
    /// `gemma_tokenizer`: a `GemmaTokenizer` over respelled space runs, merges ordered by position.
    Gemma,
    /// `phi3_tokenizer`: the `LlamaTokenizer` with a prepend/replace normalizer instead of
    /// `Metaspace`.
    Phi3,
}

/// Architectures whose transformers tokenizer class is `GemmaTokenizer`, which adds `<mask>` as a
/// special token of its own.
pub(super) const GEMMA_ARCHITECTURES: &[&str] = &["gemma", "gemma2", "gemma3"];

/// Python's `str.isspace`: Unicode `White_Space` plus the separators U+001C..U+001F.
fn python_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The merges of a sentencepiece vocabulary: the file's, or (as transformers' `get_merges`)
/// derived from the vocabulary, sorted by `scores`.
fn sentencepiece_merges(
    data: &TokenizerData,
    tokens: &[String],
    scores: &[f64],
) -> Result<Vec<(String, String)>> {
    if !data.merges.is_empty() {
        return data.merge_pairs();
    }
    if let Some(at) = scores.iter().position(|s| s.is_nan()) {
        return Err(GgufError::Malformed(format!(
            "tokenizer.ggml.scores: the score of token {at} is NaN, which gives no merge order"
        )));
    }
    Ok(merges::derive_merges(tokens, scores))
}

/// The file's scores as the sort key of derived merges (`tokenizer.ggml.scores`, one per token).
fn file_scores(data: &TokenizerData) -> Result<Vec<f64>> {
    if !data.merges.is_empty() {
        return Ok(Vec::new());
    }
    let scores = data
        .scores
        .as_ref()
        .ok_or_else(|| GgufError::MissingKey("tokenizer.ggml.scores".into()))?;
    if scores.len() != data.tokens.len() {
        return Err(GgufError::Malformed(format!(
            "tokenizer.ggml.scores has {} values for {} tokens",
            scores.len(),
            data.tokens.len()
        )));
    }
    Ok(scores.iter().map(|&s| f64::from(s)).collect())
}

/// A sentencepiece vocabulary as transformers builds it: `LlamaTokenizer`'s backend (`Metaspace`
/// with a prefix space on the first piece, BPE with byte fallback, no unknown token), Phi-3's
/// variant, or `GemmaTokenizer`'s (space runs respelled, merges ordered by file position, spaces
/// replaced by `▁` in a normalizer, `<unk>` as unknown token).
pub(super) fn sentencepiece(
    data: &TokenizerData,
    flavour: Sentencepiece,
) -> Result<tokenizers::Tokenizer> {
    use tokenizers::decoders::DecoderWrapper;
    use tokenizers::decoders::byte_fallback::ByteFallback;
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::decoders::sequence::Sequence as DecoderSequence;
    use tokenizers::decoders::strip::Strip;
    use tokenizers::models::bpe::BPE;
    use tokenizers::normalizers::prepend::Prepend;
    use tokenizers::normalizers::replace::Replace;
    use tokenizers::normalizers::utils::Sequence as NormalizerSequence;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::{SplitDelimiterBehavior, Tokenizer};

    const SPACE: char = '\u{2581}';
    let (tokens, scores) = if flavour == Sentencepiece::Gemma {
        // A run of spaces is stored as spaces; `GemmaTokenizer` looks it up as `▁`s.
        let tokens: Vec<String> = data
            .tokens
            .iter()
            .map(|t| {
                if t.contains(' ') && t.chars().all(python_isspace) {
                    std::iter::repeat_n(SPACE, t.chars().count()).collect()
                } else {
                    t.clone()
                }
            })
            .collect();
        // Gemma's merges follow the file order, not its scores.
        let positions = (0..tokens.len()).map(|i| -(i as f64)).collect();
        (tokens, positions)
    } else {
        (data.tokens.clone(), file_scores(data)?)
    };
    let merges = sentencepiece_merges(data, &tokens, &scores)?;
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocabulary(&tokens)?, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if flavour == Sentencepiece::Gemma {
        bpe = bpe.unk_token("<unk>".into());
    }
    let mut tokenizer = Tokenizer::new(bpe.build()?);

    let space =
        || Replace::new(" ", SPACE.to_string()).map_err(|e| pipeline_error("normalizer", e));
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE.to_string(), " ")
            .map_err(|e| pipeline_error("decoder", e))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    match flavour {
        Sentencepiece::Llama => {
            tokenizer.with_pre_tokenizer(Some(Metaspace::new(SPACE, PrependScheme::First, false)));
        }
        Sentencepiece::Phi3 => {
            tokenizer.with_normalizer(Some(NormalizerSequence::new(vec![
                Prepend::new(SPACE.to_string()).into(),
                space()?.into(),
            ])));
        }
        Sentencepiece::Gemma => {
            tokenizer.with_normalizer(Some(space()?));
            let split = Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::MergedWithPrevious,
                false,
            )
            .map_err(|e| pipeline_error("pre-tokenizer", e))?;
            tokenizer.with_pre_tokenizer(Some(split));
        }
    }
    if flavour != Sentencepiece::Gemma {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}
