//! The `[text] type = "gemma3"` section and loading Gemma 3 / MedGemma HF directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::contract::{Keyed, TextInput, refuse_explicit};
use cleft_core::registry::TextEncoderConfig;
use cleft_core::text::TextPooling;
use cleft_core::weights::{
    LoadReport, TensorSource, WeightMapping, load_weights, open_checkpoint, read_hf_config,
};
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer};
use cleft_tokenizer::HfTokenizer;
use serde::{Deserialize, Serialize};

use crate::gemma3::{Gemma3Architecture, Gemma3Model};
use crate::load::{GgufSource, LoadOptions};

/// The `[text] type = "gemma3"` section: Gemma 3's text decoder (Gemma 3 1B / 270M, and the
/// language model of Gemma 3 4B+ and MedGemma), from a HF directory or randomly initialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gemma3Config {
    /// A HF directory (`config.json` + safetensors or `pytorch_model.bin`) or a llama.cpp GGUF
    /// file; it sets the architecture, so a size field next to it is an error naming both keys.
    pub weights: Option<PathBuf>,
    /// Keep random values for parameters missing from `weights` instead of failing.
    pub allow_missing: bool,
    /// `tokenizer.json`; default: `weights/tokenizer.json`, or the built-in word vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// Pad/EOS token of `tokenizer.json` (Gemma: `<eos>`).
    pub pad_token: String,
    /// Token every text starts with when the tokenizer comes from a `tokenizer.json` (Gemma:
    /// `<bos>`, as its tokenizer adds it); `""` for none. A GGUF file says so itself.
    pub bos_token: String,
    /// Vocabulary size (at least the tokenizer's).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Per-head size.
    pub head_dim: usize,
    /// Attention scale `query_pre_attn_scalar^(-1/2)`.
    pub query_pre_attn_scalar: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Window of the local layers.
    pub sliding_window: usize,
    /// Every `sliding_window_pattern`-th layer is global.
    pub sliding_window_pattern: usize,
    /// RoPE θ of the global layers.
    pub rope_theta: f64,
    /// RoPE θ of the local layers.
    pub rope_local_base_freq: f64,
    /// RoPE scaling of the global layers as HF writes it (e.g. `{ rope_type = "linear",
    /// factor = 8.0 }` for Gemma 3 4B and MedGemma 4B).
    pub rope_scaling: Option<serde_json::Value>,
    /// Text pooling (`first_pad` is CLEFT's).
    pub pooling: TextPooling,
    /// Maximum number of real tokens per text.
    pub max_len: usize,
}

impl Default for Gemma3Config {
    fn default() -> Self {
        Self {
            weights: None,
            allow_missing: false,
            tokenizer: None,
            pad_token: "<eos>".into(),
            bos_token: "<bos>".into(),
            vocab_size: 0,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            query_pre_attn_scalar: 16.0,
            rms_norm_eps: 1e-6,
            sliding_window: 512,
            sliding_window_pattern: 6,
            rope_theta: 1_000_000.0,
            rope_local_base_freq: 10_000.0,
            rope_scaling: None,
            pooling: TextPooling::FirstPad,
            max_len: 64,
        }
    }
}

impl Gemma3Config {
    /// The architecture of a randomly initialised model.
    pub fn architecture(&self) -> Gemma3Architecture {
        Gemma3Architecture {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            head_dim: self.head_dim,
            query_pre_attn_scalar: self.query_pre_attn_scalar,
            rms_norm_eps: self.rms_norm_eps,
            sliding_window: self.sliding_window,
            sliding_window_pattern: Some(self.sliding_window_pattern),
            rope_theta: self.rope_theta,
            rope_local_base_freq: self.rope_local_base_freq,
            rope_scaling: self.rope_scaling.clone(),
            ..Gemma3Architecture::default()
        }
    }
}

/// The architecture fields that a `weights` checkpoint fixes.
const SIZE_FIELDS: [&str; 14] = [
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "query_pre_attn_scalar",
    "rms_norm_eps",
    "sliding_window",
    "sliding_window_pattern",
    "rope_theta",
    "rope_local_base_freq",
    "rope_scaling",
];

/// Reads the decoder architecture of a HF directory (its `text_config` for multimodal
/// checkpoints).
pub fn gemma3_architecture(dir: &Path) -> Result<Gemma3Architecture, CleftError> {
    let file = dir.join("config.json");
    Gemma3Architecture::from_config_json(read_hf_config(dir)?, &file.display().to_string())
}

/// HF keys: `nn.Linear` weights transposed; the prefix of `Gemma3ForCausalLM` (`model.`) or of
/// the multimodal model (`model.language_model.`, `language_model.model.`) stripped; the LM head
/// ignored. A multimodal checkpoint's vision tower is reported as unused.
pub fn gemma3_mapping(allow_missing: bool) -> WeightMapping {
    WeightMapping {
        transpose_linear: true,
        prefixes: vec![
            "model.language_model.".into(),
            "language_model.model.".into(),
            "model.".into(),
        ],
        ignored: vec!["lm_head.weight".into()],
        allow_missing,
        ..WeightMapping::default()
    }
}

/// Loads Gemma 3 from a HF directory or a llama.cpp GGUF file (`general.architecture = gemma3`;
/// norms stored as `1 + w` and read back as `w`, as transformers does). `tokenizer`, when given,
/// is used and the checkpoint's own is not built; otherwise the directory's `tokenizer.json`
/// (padding with `options.pad_token`, every text starting with `bos_token`) or the GGUF's own
/// vocabulary.
pub fn load_gemma3(
    dir: &Path,
    tokenizer: Option<Arc<dyn TextTokenizer>>,
    options: &LoadOptions,
    device: &Device,
) -> Result<(Gemma3Model, LoadReport), CleftError> {
    load_gemma3_with_bos(dir, tokenizer, options, "<bos>", device)
}

/// [`load_gemma3`] with the BOS token a directory's `tokenizer.json` starts texts with (`""`:
/// none).
pub fn load_gemma3_with_bos(
    dir: &Path,
    tokenizer: Option<Arc<dyn TextTokenizer>>,
    options: &LoadOptions,
    bos_token: &str,
    device: &Device,
) -> Result<(Gemma3Model, LoadReport), CleftError> {
    let in_dir = |e: CleftError| CleftError::Invalid(format!("{}: {e}", dir.display()));
    if dir.is_file() && dir.extension().is_some_and(|e| e == "gguf") {
        let source = GgufSource::open(dir)?;
        let arch = source.gemma3_architecture()?;
        let tokenizer: Arc<dyn TextTokenizer> = match tokenizer {
            Some(tokenizer) => tokenizer,
            None => Arc::new(source.tokenizer()?),
        };
        return build_and_load(&arch, tokenizer, &source, options, dir, device);
    }
    let arch = gemma3_architecture(dir)?;
    arch.validate().map_err(in_dir)?;
    let tokenizer = match tokenizer {
        Some(tokenizer) => tokenizer,
        None => {
            let file = dir.join("tokenizer.json");
            if !file.is_file() {
                return Err(CleftError::Invalid(format!(
                    "{}: no tokenizer.json; set text.tokenizer",
                    dir.display()
                )));
            }
            Arc::new(with_bos(
                HfTokenizer::from_file(&file, &options.pad_token)?,
                bos_token,
            )?)
        }
    };
    let checkpoint = open_checkpoint(dir)?;
    build_and_load(&arch, tokenizer, checkpoint.as_ref(), options, dir, device)
}

/// `tokenizer` starting every text with `bos_token` (none when empty).
fn with_bos(tokenizer: HfTokenizer, bos_token: &str) -> Result<HfTokenizer, CleftError> {
    match bos_token {
        "" => Ok(tokenizer),
        token => tokenizer.with_bos_token(token),
    }
}

/// Checks the window and the vocabulary, builds the model and loads `source` into it.
fn build_and_load(
    arch: &Gemma3Architecture,
    tokenizer: Arc<dyn TextTokenizer>,
    source: &dyn TensorSource,
    options: &LoadOptions,
    dir: &Path,
    device: &Device,
) -> Result<(Gemma3Model, LoadReport), CleftError> {
    let in_dir = |e: CleftError| CleftError::Invalid(format!("{}: {e}", dir.display()));
    arch.validate().map_err(in_dir)?;
    if let Some(window) = arch.attention_window().map_err(in_dir)?
        && options.max_len + 1 > window
    {
        return Err(CleftError::Invalid(format!(
            "{}: Gemma 3's local layers attend within a sliding window of {window} positions \
             (sliding_window); text.max_len = {} plus the pooled pad position exceeds it, where \
             this encoder would not be exact",
            dir.display(),
            options.max_len
        )));
    }
    if tokenizer.vocab_size() > arch.vocab_size {
        return Err(CleftError::Invalid(format!(
            "{}: the tokenizer has {} tokens but the checkpoint vocabulary only {}",
            dir.display(),
            tokenizer.vocab_size(),
            arch.vocab_size
        )));
    }
    let model = Gemma3Model::init(arch, tokenizer, options.pooling, options.max_len, device)
        .map_err(in_dir)?;
    load_weights(model, source, &gemma3_mapping(options.allow_missing))
}

#[typetag::serde(name = "gemma3")]
impl TextEncoderConfig for Gemma3Config {
    fn input(&self) -> Result<Option<TextInput>, CleftError> {
        if self.weights.is_some() {
            refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
        }
        // The local layers' window is the one bound on sequence length.
        let window = match &self.weights {
            Some(dir) if dir.is_dir() => gemma3_architecture(dir)?.attention_window()?.map(|w| {
                Keyed::new(
                    w,
                    format!(
                        "text.weights → {}/config.json sliding_window",
                        dir.display()
                    ),
                )
            }),
            Some(file) if file.is_file() && file.extension().is_some_and(|e| e == "gguf") => {
                GgufSource::open(file)?
                    .gemma3_architecture()?
                    .attention_window()?
                    .map(|w| {
                        Keyed::new(
                            w,
                            format!(
                                "text.weights → {} gemma3.attention.sliding_window",
                                file.display()
                            ),
                        )
                    })
            }
            Some(_) => None,
            None => self
                .architecture()
                .attention_window()?
                .map(|w| Keyed::new(w, "text.sliding_window")),
        };
        Ok(Some(TextInput {
            max_len: Keyed::new(self.max_len, "text.max_len"),
            positions: window,
            trailing: 1,
        }))
    }

    fn build(&self, device: &Device) -> Result<Component<dyn TextEncoder>, CleftError> {
        if self.weights.is_some() {
            refuse_explicit(self, "text", "text.weights", &SIZE_FIELDS)?;
        }
        let tokenizer: Option<Arc<dyn TextTokenizer>> = match &self.tokenizer {
            Some(path) => Some(Arc::new(with_bos(
                HfTokenizer::from_file(path, &self.pad_token)?,
                &self.bos_token,
            )?)),
            None => None,
        };
        let model = match &self.weights {
            Some(dir) => {
                let options = LoadOptions {
                    pooling: self.pooling,
                    max_len: self.max_len,
                    allow_missing: self.allow_missing,
                    pad_token: self.pad_token.clone(),
                };
                load_gemma3_with_bos(dir, tokenizer, &options, &self.bos_token, device)?.0
            }
            None => {
                let tokenizer = tokenizer.unwrap_or_else(|| Arc::new(HfTokenizer::builtin_words()));
                Gemma3Model::init(
                    &self.architecture(),
                    tokenizer,
                    self.pooling,
                    self.max_len,
                    device,
                )?
            }
        };
        Ok(Component::<dyn TextEncoder>::new(model))
    }
}

cleft_core::register_component!(
    Text,
    "gemma3",
    "Gemma 3 text decoder (Gemma 3, MedGemma: scaled embeddings, (1 + w) RMSNorm, q/k norms, sandwich norms, GeGLU, local/global layers; HF weights), CLEFT first-pad pooling",
    Gemma3Config,
    claims = ["gemma3_text", "gemma3", "gguf:gemma3"]
);
