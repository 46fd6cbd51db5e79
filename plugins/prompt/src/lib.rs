//! Learned context prompts (`[prompt] type = "context"`): CLEFT's stage 2.
//!
//! `N` shared context vectors (default 30) are prepended, at the embedding level, to the token
//! embeddings of each class name; the frozen text encoder encodes the result. Initialised from
//! the embeddings of a text ("this is a chest x ray of a patient with ", tiled or truncated to
//! `N`) or randomly (N(0, 0.02)), as in the reference code (PEFT prompt tuning).

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use cleft_core::registry::PromptLearnerConfig;
use cleft_core::{CleftError, Component, PromptLearner, TextEncoder};
use serde::{Deserialize, Serialize};

/// How the context vectors start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextInit {
    /// Token embeddings of `init_text`, tiled or truncated to the context length.
    Text,
    /// N(0, 0.02).
    Random,
}

/// `[prompt] type = "context"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextPromptConfig {
    /// Number of learned context tokens `N` (CLEFT: 30).
    pub num_tokens: usize,
    /// Initialisation.
    pub init: ContextInit,
    /// Text whose token embeddings initialise the context (`init = "text"`).
    pub init_text: String,
}

impl Default for ContextPromptConfig {
    fn default() -> Self {
        Self {
            num_tokens: 30,
            init: ContextInit::Text,
            init_text: "this is a chest x ray of a patient with ".into(),
        }
    }
}

/// Shared learned context vectors.
#[derive(Module, Debug)]
pub struct ContextPromptLearner {
    /// Context embeddings, `[N, E]`.
    pub context: Param<Tensor<2>>,
}

impl ContextPromptLearner {
    /// Builds the learner for `text` (its tokenizer and embedding table give the text init).
    pub fn init(
        config: &ContextPromptConfig,
        text: &dyn TextEncoder,
        device: &Device,
    ) -> Result<Self, CleftError> {
        if config.num_tokens == 0 {
            return Err(CleftError::Invalid(
                "prompt.num_tokens must be at least 1".into(),
            ));
        }
        let embed = text.embed_dim();
        let context = match config.init {
            // Lazy: drawn on first access, from the seed the caller derives for this path.
            ContextInit::Random => {
                return Ok(Self {
                    context: burn::nn::Initializer::Normal {
                        mean: 0.0,
                        std: 0.02,
                    }
                    .init([config.num_tokens, embed], device),
                });
            }
            ContextInit::Text => {
                // The words' own embeddings: a BOS / [CLS] the tokenizer puts first is skipped.
                let tokenizer = text.tokenizer();
                let leading = tokenizer.leading_special_tokens();
                let batch = tokenizer.encode_batch(
                    std::slice::from_ref(&config.init_text),
                    config.num_tokens + leading,
                )?;
                let real: Vec<i64> = batch
                    .ids
                    .iter()
                    .zip(&batch.mask)
                    .filter(|(_, m)| **m == 1)
                    .map(|(id, _)| *id)
                    .skip(leading)
                    .collect();
                if real.is_empty() {
                    return Err(CleftError::Invalid(format!(
                        "prompt.init_text {:?} has no tokens",
                        config.init_text
                    )));
                }
                let tiled: Vec<i64> = real
                    .iter()
                    .copied()
                    .cycle()
                    .take(config.num_tokens)
                    .collect();
                let ids = Tensor::<2, Int>::from_data(
                    TensorData::new(tiled, [1, config.num_tokens]),
                    device,
                );
                text.embed_tokens(ids)
                    .reshape([config.num_tokens, embed])
                    .detach()
            }
        };
        Ok(Self {
            context: Param::from_tensor(context),
        })
    }
}

impl PromptLearner for ContextPromptLearner {
    fn num_context_tokens(&self) -> usize {
        self.context.dims()[0]
    }

    fn combine(
        &self,
        class_embeddings: Tensor<3>,
        class_mask: Tensor<2, Int>,
    ) -> (Tensor<3>, Tensor<2, Int>) {
        let [classes, _, embed] = class_embeddings.dims();
        let tokens = self.num_context_tokens();
        let context = self
            .context
            .val()
            .unsqueeze::<3>()
            .expand([classes, tokens, embed]);
        let ones = Tensor::<2, Int>::ones([classes, tokens], &class_mask.device());
        (
            Tensor::cat(vec![context, class_embeddings], 1),
            Tensor::cat(vec![ones, class_mask], 1),
        )
    }
}

#[typetag::serde(name = "context")]
impl PromptLearnerConfig for ContextPromptConfig {
    fn context_tokens(&self) -> Option<cleft_core::contract::Keyed<usize>> {
        Some(cleft_core::contract::Keyed::new(
            self.num_tokens,
            "prompt.num_tokens",
        ))
    }

    fn build(
        &self,
        text: &Component<dyn TextEncoder>,
        device: &Device,
    ) -> Result<Component<dyn PromptLearner>, CleftError> {
        Ok(Component::<dyn PromptLearner>::new(
            ContextPromptLearner::init(self, &**text, device)?,
        ))
    }
}

cleft_core::register_component!(
    Prompt,
    "context",
    "CoOp-style shared learned context tokens prepended to class names (CLEFT stage 2)",
    ContextPromptConfig
);

#[cfg(test)]
mod tests {
    use super::*;
    use cleft_core::registry::TextEncoderConfig;

    #[test]
    fn text_init_tiles_the_init_text_and_combine_prepends_it() {
        let device = Device::flex();
        let text = cleft_gpt::Gpt2Config::default().build(&device).unwrap();
        let config = ContextPromptConfig {
            num_tokens: 5,
            init: ContextInit::Text,
            init_text: "chest x ray".into(),
        };
        let learner = ContextPromptLearner::init(&config, &*text, &device).unwrap();
        let ids = text
            .tokenizer()
            .encode_batch(&["chest x ray".to_string()], 8)
            .unwrap();
        let (ids, _) = ids.to_tensors(&device);
        let words = text
            .embed_tokens(ids.slice([0..1, 0..3]))
            .reshape([3, text.embed_dim()]);
        let expected = Tensor::cat(vec![words.clone(), words.slice([0..2])], 0);
        assert_eq!(
            learner.context.val().into_data(),
            expected.into_data(),
            "c x r c x"
        );

        let class = text
            .tokenizer()
            .encode_batch(&["edema".to_string(), "pleural effusion".to_string()], 8)
            .unwrap();
        let (class_ids, class_mask) = class.to_tensors(&device);
        let (embeddings, mask) = learner.combine(text.embed_tokens(class_ids), class_mask);
        assert_eq!(embeddings.dims(), [2, 5 + 3, text.embed_dim()]);
        let mask: Vec<i64> = mask.into_data().convert::<i64>().try_to_vec().unwrap();
        assert_eq!(mask, [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]);
    }
}

#[cfg(test)]
mod leading_tests {
    use std::sync::Arc;

    use super::*;
    use cleft_gpt::{Gpt2Config, Gpt2Model};
    use cleft_tokenizer::HfTokenizer;

    /// A tiny GPT-2 whose tokenizer starts every text with BOS (id 0, the built-in EOS).
    fn bos_encoder(device: &Device) -> Gpt2Model {
        let tokenizer = Arc::new(HfTokenizer::builtin_words().with_bos_id(0));
        Gpt2Model::init(&Gpt2Config::default(), tokenizer, device)
    }

    #[test]
    fn context_goes_after_bos_and_text_init_skips_it() {
        let device = Device::flex();
        let text = bos_encoder(&device);
        let tokenizer = text.tokenizer();
        assert_eq!(tokenizer.leading_special_tokens(), 1);
        let config = ContextPromptConfig {
            num_tokens: 3,
            init: ContextInit::Text,
            init_text: "chest x ray".into(),
        };
        let learner = ContextPromptLearner::init(&config, &text, &device).unwrap();
        let (ids, _) = tokenizer
            .encode_batch(&["chest x ray".to_string()], 8)
            .unwrap()
            .to_tensors(&device);
        let ids_vec: Vec<i64> = ids
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(ids_vec[0], 0, "BOS first");
        let embedded = text.embed_tokens(ids).reshape([5, text.embed_dim()]);
        // The context is "chest x ray", not "<bos> chest x".
        assert_eq!(
            learner.context.val().into_data(),
            embedded.clone().slice([1..4]).into_data()
        );

        let (class_ids, class_mask) = tokenizer
            .encode_batch(&["edema".to_string()], 8)
            .unwrap()
            .to_tensors(&device);
        let class = text.embed_tokens(class_ids);
        let (combined, mask) = learner.combine_after(class.clone(), class_mask, 1);
        let e = text.embed_dim();
        assert_eq!(combined.dims(), [1, 3 + 3, e]);
        // <bos>, the three context vectors, then "edema" and its pad.
        assert_eq!(
            combined.clone().slice([0..1, 0..1]).into_data(),
            class.clone().slice([0..1, 0..1]).into_data()
        );
        assert_eq!(
            combined
                .clone()
                .slice([0..1, 1..4])
                .reshape([3, e])
                .into_data(),
            learner.context.val().into_data()
        );
        assert_eq!(
            combined.slice([0..1, 4..6]).into_data(),
            class.slice([0..1, 1..3]).into_data()
        );
        let mask: Vec<i64> = mask
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(mask, [1, 1, 1, 1, 1, 0]);
    }
}
