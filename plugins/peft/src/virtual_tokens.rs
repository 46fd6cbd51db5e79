//! Prefix tuning (Li & Liang 2021) and prompt tuning (Lester et al. 2021): learned virtual tokens,
//! configured like HF PEFT's `PrefixTuningConfig` / `PromptTuningConfig`.
//!
//! Both save one tensor, `prompt_embeddings` (PEFT's key): `[n, E]` for prompt tuning and
//! `[n, 2·layers·E]` for prefix tuning — after the MLP when `prefix_projection` is on, so a
//! loaded prefix adapter is the projection-free (inference) form, as in PEFT.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cleft_core::peft::{AdapterLoadReport, PromptEncoder};
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{device_of, freeze_except, hooks, hooks_mut};
use crate::files::{
    HostTensor, TensorSpec, load_specs, read_adapter_tensors, read_params, save_specs,
};

const KEY: &str = "prompt_embeddings";
const TABLE: &str = "prompt_encoder.embedding.weight";

fn is_virtual_token_param(path: &str) -> bool {
    path.starts_with("prompt_encoder.")
}

fn merge_unsupported(method: &str) -> CleftError {
    CleftError::Invalid(format!(
        "peft.type = \"{method}\" adds virtual tokens; it cannot be merged into the weights"
    ))
}

/// `[peft] type = "prefix"` (HF PEFT `PrefixTuningConfig` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefixTuningConfig {
    /// Prefix length per layer (CLEFT: 20).
    pub num_virtual_tokens: usize,
    /// Reparameterise the prefix through an MLP (`Linear → tanh → Linear`).
    pub prefix_projection: bool,
    /// Hidden size of that MLP.
    pub encoder_hidden_size: usize,
}

impl Default for PrefixTuningConfig {
    fn default() -> Self {
        Self {
            num_virtual_tokens: 20,
            prefix_projection: false,
            encoder_hidden_size: 512,
        }
    }
}

/// The prefix-tuning tuner.
#[derive(Debug, Clone)]
pub struct PrefixTuningAdapter {
    config: PrefixTuningConfig,
}

impl PrefixTuningAdapter {
    /// A tuner for `config`.
    pub fn new(config: PrefixTuningConfig) -> Self {
        Self { config }
    }
}

impl PeftAdapter for PrefixTuningAdapter {
    fn method(&self) -> &str {
        "prefix"
    }

    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError> {
        hooks(encoder, "prefix").map(|_| Vec::new())
    }

    fn apply(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        if self.config.num_virtual_tokens == 0 {
            return Err(CleftError::Invalid(
                "peft.num_virtual_tokens must be at least 1".into(),
            ));
        }
        let device = device_of(&encoder)?;
        let hooks = hooks_mut(&mut encoder, "prefix")?;
        let geometry = hooks.prefix_geometry();
        let hidden = self
            .config
            .prefix_projection
            .then_some(self.config.encoder_hidden_size);
        let prefix = PromptEncoder::prefix(
            self.config.num_virtual_tokens,
            geometry.layers,
            geometry.embed_dim,
            hidden,
            &device,
        );
        hooks.set_prompt_encoder(Some(prefix))?;
        Ok(freeze_except(encoder, &|path| self.is_trainable(path)))
    }

    fn is_trainable(&self, path: &str) -> bool {
        is_virtual_token_param(path)
    }

    fn merge(
        &self,
        _: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        Err(merge_unsupported("prefix"))
    }

    fn save(&self, encoder: &Component<dyn TextEncoder>, dir: &Path) -> Result<(), CleftError> {
        let hooks = hooks(encoder, "prefix")?;
        let prefix = hooks
            .prompt_encoder()
            .ok_or_else(|| CleftError::Invalid("no prefix is installed in this encoder".into()))?;
        let geometry = hooks.prefix_geometry();
        let values = prefix.values();
        let shape = values.dims().to_vec();
        let data = values
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| CleftError::Invalid(format!("{e:?}")))?;
        let config = json!({
            "peft_type": "PREFIX_TUNING",
            "task_type": "FEATURE_EXTRACTION",
            "base_model_name_or_path": null,
            "inference_mode": true,
            "num_virtual_tokens": self.config.num_virtual_tokens,
            "prefix_projection": self.config.prefix_projection,
            "encoder_hidden_size": self.config.encoder_hidden_size,
            "num_layers": geometry.layers,
            "num_attention_heads": geometry.heads,
            "token_dim": geometry.embed_dim,
            "num_transformer_submodules": 1,
        });
        let extra = BTreeMap::from([(KEY.to_string(), HostTensor { shape, data })]);
        save_specs(encoder, &[], extra, &config, dir)
    }

    fn load_weights(
        &self,
        mut encoder: Component<dyn TextEncoder>,
        dir: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
        let mut file = read_adapter_tensors(dir)?;
        let value = file.remove(KEY).ok_or_else(|| CleftError::Adapter {
            path: dir.join(crate::files::WEIGHTS_FILE),
            message: format!("missing adapter tensors: [{KEY}]"),
        })?;
        let device = device_of(&encoder)?;
        let hooks = hooks_mut(&mut encoder, "prefix")?;
        let geometry = hooks.prefix_geometry();
        let expected = vec![
            self.config.num_virtual_tokens,
            2 * geometry.layers * geometry.embed_dim,
        ];
        if value.shape != expected {
            return Err(CleftError::Adapter {
                path: dir.join(crate::files::WEIGHTS_FILE),
                message: format!("{KEY}: file {:?}, expected {expected:?}", value.shape),
            });
        }
        // The file holds projected values: install the projection-free form, then load it.
        let n = self.config.num_virtual_tokens;
        hooks.set_prompt_encoder(Some(PromptEncoder::prefix(
            n,
            geometry.layers,
            geometry.embed_dim,
            None,
            &device,
        )))?;
        let encoder = freeze_except(encoder, &|path| self.is_trainable(path));
        let values = std::collections::HashMap::from([(TABLE.to_string(), value)]);
        let encoder = crate::files::write_params(encoder, values)?;
        Ok((
            encoder,
            AdapterLoadReport {
                unexpected: file.into_keys().collect(),
                loaded: 1,
            },
        ))
    }
}

/// How prompt-tuning tokens start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PromptTuningInit {
    /// N(0, 1), like `torch.nn.Embedding`.
    #[default]
    #[serde(rename = "random", alias = "RANDOM")]
    Random,
    /// The token embeddings of `prompt_tuning_init_text`, tiled/truncated to the length.
    #[serde(rename = "text", alias = "TEXT")]
    Text,
}

/// `[peft] type = "prompt_tuning"` (HF PEFT `PromptTuningConfig` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptTuningConfig {
    /// Number of virtual tokens (CLEFT stage 2: 30).
    pub num_virtual_tokens: usize,
    /// `random` or `text`.
    pub prompt_tuning_init: PromptTuningInit,
    /// Initial text for `text` init (CLEFT: "this is a chest x ray of a patient with ").
    pub prompt_tuning_init_text: Option<String>,
}

impl Default for PromptTuningConfig {
    fn default() -> Self {
        Self {
            num_virtual_tokens: 30,
            prompt_tuning_init: PromptTuningInit::Random,
            prompt_tuning_init_text: None,
        }
    }
}

/// The prompt-tuning tuner.
#[derive(Debug, Clone)]
pub struct PromptTuningAdapter {
    config: PromptTuningConfig,
}

impl PromptTuningAdapter {
    /// A tuner for `config`.
    pub fn new(config: PromptTuningConfig) -> Self {
        Self { config }
    }

    /// Embeddings of the init text's tokens, tiled and truncated to `n` rows (PEFT's rule).
    ///
    /// # Shapes
    /// - output `[n, E]`.
    fn text_init(
        &self,
        encoder: &Component<dyn TextEncoder>,
        device: &Device,
    ) -> Result<Tensor<2>, CleftError> {
        let text = self.config.prompt_tuning_init_text.clone().ok_or_else(|| {
            CleftError::Invalid(
                "peft.prompt_tuning_init = \"text\" needs peft.prompt_tuning_init_text".into(),
            )
        })?;
        let batch = encoder
            .tokenizer()
            .encode_batch(std::slice::from_ref(&text), encoder.max_len())?;
        let ids: Vec<i64> = batch
            .ids
            .iter()
            .zip(&batch.mask)
            .filter(|(_, m)| **m == 1)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Err(CleftError::Invalid(format!(
                "peft.prompt_tuning_init_text `{text}` has no tokens"
            )));
        }
        let n = self.config.num_virtual_tokens;
        let tiled: Vec<i64> = ids.iter().cycle().take(n).copied().collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(tiled, [1, n]), device);
        let embed = encoder.embed_dim();
        Ok(encoder.embed_tokens(ids).reshape([n, embed]).detach())
    }

    fn spec(&self, encoder: &Component<dyn TextEncoder>) -> TensorSpec {
        let n = self.config.num_virtual_tokens;
        TensorSpec {
            path: TABLE.into(),
            key: KEY.into(),
            transpose: false,
            file_shape: vec![n, encoder.embed_dim()],
        }
    }
}

impl PeftAdapter for PromptTuningAdapter {
    fn method(&self) -> &str {
        "prompt_tuning"
    }

    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError> {
        hooks(encoder, "prompt_tuning").map(|_| Vec::new())
    }

    fn apply(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        let n = self.config.num_virtual_tokens;
        if n == 0 {
            return Err(CleftError::Invalid(
                "peft.num_virtual_tokens must be at least 1".into(),
            ));
        }
        let device = device_of(&encoder)?;
        let init = match self.config.prompt_tuning_init {
            PromptTuningInit::Random => None,
            PromptTuningInit::Text => Some(self.text_init(&encoder, &device)?),
        };
        let embed = encoder.embed_dim();
        hooks_mut(&mut encoder, "prompt_tuning")?
            .set_prompt_encoder(Some(PromptEncoder::prompt(n, embed, &device)))?;
        let mut encoder = freeze_except(encoder, &|path| self.is_trainable(path));
        if let Some(init) = init {
            let data = init
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| CleftError::Invalid(format!("{e:?}")))?;
            let values = std::collections::HashMap::from([(
                TABLE.to_string(),
                HostTensor {
                    shape: vec![n, embed],
                    data,
                },
            )]);
            encoder = crate::files::write_params(encoder, values)?;
        }
        Ok(encoder)
    }

    fn is_trainable(&self, path: &str) -> bool {
        is_virtual_token_param(path)
    }

    fn merge(
        &self,
        _: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        Err(merge_unsupported("prompt_tuning"))
    }

    fn save(&self, encoder: &Component<dyn TextEncoder>, dir: &Path) -> Result<(), CleftError> {
        read_params(encoder, &[TABLE.to_string()])?
            .get(TABLE)
            .ok_or_else(|| {
                CleftError::Invalid("no prompt tokens are installed in this encoder".into())
            })?;
        let config = json!({
            "peft_type": "PROMPT_TUNING",
            "task_type": "FEATURE_EXTRACTION",
            "base_model_name_or_path": null,
            "inference_mode": true,
            "num_virtual_tokens": self.config.num_virtual_tokens,
            "prompt_tuning_init": match self.config.prompt_tuning_init { PromptTuningInit::Random => "RANDOM", PromptTuningInit::Text => "TEXT" },
            "prompt_tuning_init_text": self.config.prompt_tuning_init_text,
            "token_dim": encoder.embed_dim(),
            "num_transformer_submodules": 1,
        });
        save_specs(
            encoder,
            &[self.spec(encoder)],
            BTreeMap::new(),
            &config,
            dir,
        )
    }

    fn load_weights(
        &self,
        encoder: Component<dyn TextEncoder>,
        dir: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
        let spec = self.spec(&encoder);
        load_specs(encoder, &[spec], dir)
    }
}

#[typetag::serde(name = "prefix")]
impl PeftConfig for PrefixTuningConfig {
    fn extra_positions(&self) -> Option<cleft_core::contract::Keyed<usize>> {
        Some(cleft_core::contract::Keyed::new(
            self.num_virtual_tokens,
            "peft.num_virtual_tokens",
        ))
    }

    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(Box::new(PrefixTuningAdapter::new(self.clone())))
    }
}

#[typetag::serde(name = "prompt_tuning")]
impl PeftConfig for PromptTuningConfig {
    fn extra_positions(&self) -> Option<cleft_core::contract::Keyed<usize>> {
        Some(cleft_core::contract::Keyed::new(
            self.num_virtual_tokens,
            "peft.num_virtual_tokens",
        ))
    }

    fn build(&self) -> Result<Box<dyn PeftAdapter>, CleftError> {
        Ok(Box::new(PromptTuningAdapter::new(self.clone())))
    }
}

cleft_core::register_component!(
    Peft,
    "prefix",
    "prefix tuning: learned keys/values per layer (num_virtual_tokens, optional prefix_projection MLP)",
    PrefixTuningConfig
);

cleft_core::register_component!(
    Peft,
    "prompt_tuning",
    "prompt tuning: virtual token embeddings prepended to the input (random or text init)",
    PromptTuningConfig
);
