//! Loading LLaMA weights from a HF directory or a GGUF file.

use cleft_core::ErrorKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::*;
use cleft_core::text::TextPooling;
use cleft_core::weights::{
    HostTensor, LoadReport, TensorSource, WeightMapping, load_weights, open_checkpoint,
    parse_hf_config,
};
use cleft_core::{CleftError, TextTokenizer};
use cleft_gguf::GgufFile;
use cleft_tokenizer::HfTokenizer;

use crate::{Gemma3Architecture, LlamaArchitecture, LlamaModel};

/// Settings of a loaded model that the checkpoint does not define.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Text pooling.
    pub pooling: TextPooling,
    /// Maximum number of real tokens per text.
    pub max_len: usize,
    /// Keep random values for missing tensors instead of failing.
    pub allow_missing: bool,
    /// Pad/EOS token for a directory's `tokenizer.json` (GGUF files name their EOS id).
    pub pad_token: String,
}

/// HF keys: `nn.Linear` weights transposed, an optional `model.` prefix stripped, the LM head
/// (tied or not) and RoPE buffers ignored.
pub fn llama_mapping(allow_missing: bool) -> WeightMapping {
    WeightMapping {
        transpose_linear: true,
        prefixes: vec!["model.".into()],
        ignored: vec!["lm_head.weight".into(), "rotary_emb.inv_freq".into()],
        allow_missing,
        ..WeightMapping::default()
    }
}

fn gguf_error(path: &Path, error: impl std::fmt::Display) -> CleftError {
    CleftError::Weights {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// The HF name of a llama.cpp tensor name of a LLaMA (`blk.3.attn_q.weight` →
/// `layers.3.self_attn.q_proj.weight`).
pub fn hf_name(gguf_name: &str) -> String {
    hf_name_for("llama", gguf_name)
}

/// The HF name of a llama.cpp tensor name for `architecture` (`llama` or `gemma3`: the names
/// differ where Gemma has more norms, and `ffn_norm` is LLaMA's `post_attention_layernorm` but
/// Gemma's `pre_feedforward_layernorm`).
pub fn hf_name_for(architecture: &str, gguf_name: &str) -> String {
    match gguf_name {
        "token_embd.weight" => return "embed_tokens.weight".into(),
        "output_norm.weight" => return "norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let gemma = architecture == "gemma3";
    let parts: Vec<&str> = gguf_name.splitn(4, '.').collect();
    if let ["blk", layer, module, suffix] = parts[..] {
        let hf = match module {
            "attn_norm" => "input_layernorm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_norm" if gemma => "pre_feedforward_layernorm",
            "ffn_norm" => "post_attention_layernorm",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            "attn_q_norm" if gemma => "self_attn.q_norm",
            "attn_k_norm" if gemma => "self_attn.k_norm",
            "post_attention_norm" if gemma => "post_attention_layernorm",
            "post_ffw_norm" if gemma => "post_feedforward_layernorm",
            _ => return gguf_name.into(),
        };
        return format!("layers.{layer}.{hf}.{suffix}");
    }
    gguf_name.into()
}

/// A GGUF file seen under HF tensor names, dequantised to `f32` in transformers' layout.
pub struct GgufSource {
    path: PathBuf,
    file: GgufFile,
    names: BTreeMap<String, String>,
    /// llama.cpp stores Gemma's norm weights as `1 + w`; transformers subtracts the 1 again.
    norms_offset: bool,
}

impl GgufSource {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, CleftError> {
        let file = GgufFile::open(path).map_err(|e| gguf_error(path, e))?;
        let architecture = file
            .architecture()
            .map_err(|e| gguf_error(path, e))?
            .to_string();
        let names = file
            .tensors()
            .iter()
            .map(|t| (hf_name_for(&architecture, t.name()), t.name().to_string()))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            names,
            norms_offset: architecture == "gemma3",
        })
    }

    /// The parsed GGUF file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The architecture described by the `llama.*` or `qwen2.*` metadata.
    pub fn architecture(&self) -> Result<LlamaArchitecture, CleftError> {
        let hp = self
            .file
            .hyper_params()
            .map_err(|e| gguf_error(&self.path, e))?;
        // llama.cpp writes LLaMA, Mistral and SmolLM2 as `llama` (Q/K rows permuted, undone on
        // read) and Qwen2 / Qwen2.5 as `qwen2` (not permuted; q/k/v biases).
        if !matches!(hp.architecture.as_str(), "llama" | "qwen2") {
            return Err(gguf_error(
                &self.path,
                format!(
                    "general.architecture {:?} is not one this decoder reads from GGUF \
                     (llama, qwen2; gemma3 is `[text] type = \"gemma3\"`)",
                    hp.architecture
                ),
            ));
        }
        let rope_scaling = self.rope_scaling(&hp.architecture)?;
        let vocab = self
            .shape("embed_tokens.weight")
            .and_then(|s| s.first().copied());
        let hidden = hp.embedding_length as usize;
        let heads = hp.head_count as usize;
        Ok(LlamaArchitecture {
            vocab_size: vocab.or(hp.vocab_size.map(|v| v as usize)).unwrap_or(0),
            hidden_size: hidden,
            intermediate_size: hp.feed_forward_length.unwrap_or(0) as usize,
            num_hidden_layers: hp.block_count as usize,
            num_attention_heads: heads,
            num_key_value_heads: hp.head_count_kv as usize,
            head_dim: hp
                .rope_dimension_count
                .map(|d| d as usize)
                .filter(|&d| d != hidden / heads.max(1)),
            rms_norm_eps: hp.rms_norm_eps.unwrap_or(1e-5),
            rope_theta: hp.rope_freq_base.unwrap_or(10000.0),
            rope_scaling,
            model_type: hp.architecture.clone(),
            ..LlamaArchitecture::default()
        })
    }

    /// `{arch}.rope.scaling.type` / `.factor` as HF's `rope_scaling`: `none` and `linear` are
    /// read; other types, and per-frequency factors (`rope_freqs.weight`, which llama.cpp writes
    /// for Llama 3.1+), are refused naming the key.
    fn rope_scaling(&self, arch: &str) -> Result<Option<serde_json::Value>, CleftError> {
        if self.names.contains_key("rope_freqs.weight") {
            return Err(gguf_error(
                &self.path,
                "tensor rope_freqs.weight (per-frequency RoPE factors, as llama.cpp writes \
                 Llama 3.1+ models) is not supported yet; load the HF directory instead, whose \
                 rope_scaling `llama3` is",
            ));
        }
        let type_key = format!("{arch}.rope.scaling.type");
        if self.file.get(&type_key).is_none() {
            return Ok(None);
        }
        let kind = self
            .file
            .get_str(&type_key)
            .map_err(|e| gguf_error(&self.path, e))?;
        match kind {
            "none" => Ok(None),
            "linear" => {
                let factor_key = format!("{arch}.rope.scaling.factor");
                let factor = self
                    .file
                    .get_f64(&factor_key)
                    .map_err(|e| gguf_error(&self.path, e))?;
                Ok(Some(
                    serde_json::json!({"rope_type": "linear", "factor": factor}),
                ))
            }
            other => Err(gguf_error(
                &self.path,
                format!("{type_key} = {other:?} is not supported (none, linear)"),
            )),
        }
    }

    /// The tokenizer from the GGUF metadata (byte-level BPE or SentencePiece, built as
    /// transformers builds it from the same file), padding with its EOS token and starting every
    /// text with BOS when the file asks for it (`tokenizer.ggml.add_bos_token`; when absent, yes
    /// for a SentencePiece vocabulary, as llama.cpp and transformers do, no otherwise).
    pub fn tokenizer(&self) -> Result<HfTokenizer, CleftError> {
        let data = self
            .file
            .tokenizer_data()
            .map_err(|e| gguf_error(&self.path, e))?;
        let tokenizer =
            cleft_gguf::build_tokenizer(&data).map_err(|e| gguf_error(&self.path, e))?;
        let eos = data
            .eos_token_id
            .ok_or_else(|| gguf_error(&self.path, "no tokenizer.ggml.eos_token_id"))?;
        let tokenizer = HfTokenizer::from_tokenizer(tokenizer, eos);
        Ok(match data.bos_id_to_add() {
            Some(bos) => tokenizer.with_bos_id(bos),
            None => tokenizer,
        })
    }

    /// The Gemma 3 architecture described by the `gemma3.*` metadata, as transformers reads it:
    /// the fields the file has, Gemma3TextConfig's defaults for the rest (`query_pre_attn_scalar`
    /// 256, `rope_local_base_freq` 10⁴, every 6th layer global). `gemma3.rope.scaling.type`
    /// `linear` (Gemma 3 4B and larger) is applied to the global layers as llama.cpp does.
    pub fn gemma3_architecture(&self) -> Result<Gemma3Architecture, CleftError> {
        let hp = self
            .file
            .hyper_params()
            .map_err(|e| gguf_error(&self.path, e))?;
        if hp.architecture != "gemma3" {
            return Err(gguf_error(
                &self.path,
                format!("architecture {:?} is not gemma3", hp.architecture),
            ));
        }
        let u64_key = |key: &str| self.file.get(key).and_then(|v| v.as_u64());
        let vocab = self
            .shape("embed_tokens.weight")
            .and_then(|s| s.first().copied());
        let defaults = Gemma3Architecture::default();
        Ok(Gemma3Architecture {
            vocab_size: vocab.or(hp.vocab_size.map(|v| v as usize)).unwrap_or(0),
            hidden_size: hp.embedding_length as usize,
            intermediate_size: hp.feed_forward_length.unwrap_or(0) as usize,
            num_hidden_layers: hp.block_count as usize,
            num_attention_heads: hp.head_count as usize,
            num_key_value_heads: hp.head_count_kv as usize,
            head_dim: u64_key("gemma3.attention.key_length")
                .map_or(defaults.head_dim, |v| v as usize),
            rms_norm_eps: hp.rms_norm_eps.unwrap_or(defaults.rms_norm_eps),
            sliding_window: u64_key("gemma3.attention.sliding_window")
                .map_or(defaults.sliding_window, |v| v as usize),
            rope_theta: hp.rope_freq_base.unwrap_or(defaults.rope_theta),
            rope_scaling: self.rope_scaling("gemma3")?,
            ..defaults
        })
    }
}

impl TensorSource for GgufSource {
    fn origin(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.names
            .get(name)
            .and_then(|n| self.file.tensor(n))
            .map(|t| t.shape())
    }

    fn read(&self, name: &str) -> Result<HostTensor, CleftError> {
        let gguf_name = self.names.get(name).map_or(name, String::as_str);
        let mut tensor = self
            .file
            .read_f32_hf(gguf_name)
            .map_err(|e| gguf_error(&self.path, e))?;
        if self.norms_offset && gguf_name.contains("norm.weight") {
            tensor.data.iter_mut().for_each(|w| *w -= 1.0);
        }
        Ok(HostTensor {
            shape: tensor.shape,
            data: tensor.data,
        })
    }
}

/// Loads LLaMA weights from a `.gguf` file or a HF directory. `tokenizer`, when given, is used and
/// the checkpoint's own is not even built (so a vocabulary this crate cannot read does not stop a
/// model whose tokenizer the user supplies); otherwise a GGUF file's own tokenizer or the
/// directory's `tokenizer.json` (padding with `options.pad_token`) is used.
pub fn load_llama(
    path: &Path,
    tokenizer: Option<Arc<dyn TextTokenizer>>,
    options: &LoadOptions,
    device: &Device,
) -> Result<(LlamaModel, LoadReport), CleftError> {
    let (arch, source, default_tokenizer): (
        _,
        Box<dyn TensorSource>,
        Option<Arc<dyn TextTokenizer>>,
    ) = if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        let source = GgufSource::open(path)?;
        let own: Option<Arc<dyn TextTokenizer>> = match tokenizer {
            Some(_) => None,
            None => Some(Arc::new(source.tokenizer()?)),
        };
        (source.architecture()?, Box::new(source), own)
    } else {
        let arch: LlamaArchitecture = parse_hf_config(path)?;
        let file = path.join("tokenizer.json");
        let own: Option<Arc<dyn TextTokenizer>> = match (&tokenizer, file.is_file()) {
            (None, true) => Some(Arc::new(
                HfTokenizer::from_file(&file, &options.pad_token)?.with_post_processor_bos()?,
            )),
            _ => None,
        };
        (arch, open_checkpoint(path)?, own)
    };
    arch.validate()
        .map_err(|e| CleftError::caused(ErrorKind::Weights, path.display().to_string(), e))?;
    if let Some(window) = arch.attention_window()
        && options.max_len + 1 > window
    {
        return Err(CleftError::Invalid(format!(
            "{}: {} attends within a sliding window of {window} positions (config.json \
             sliding_window); text.max_len = {} plus the pooled pad position exceeds it, where \
             this encoder would not be exact",
            path.display(),
            arch.model_type,
            options.max_len
        )));
    }
    let tokenizer = tokenizer.or(default_tokenizer).ok_or_else(|| {
        CleftError::Invalid(format!(
            "{}: no tokenizer.json; set text.tokenizer",
            path.display()
        ))
    })?;
    if tokenizer.vocab_size() > arch.vocab_size {
        return Err(CleftError::Invalid(format!(
            "{}: the tokenizer has {} tokens but the checkpoint vocabulary only {}",
            path.display(),
            tokenizer.vocab_size(),
            arch.vocab_size
        )));
    }
    let model = LlamaModel::init(&arch, tokenizer, options.pooling, options.max_len, device)?;
    load_weights(
        model,
        source.as_ref(),
        &llama_mapping(options.allow_missing),
    )
}
