//! The stage-2 learned context of a run: where it is saved, loading it onto a stage-1 model,
//! and the class embeddings it gives.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::bridge::Component;
use crate::config::ExperimentConfig;
use crate::error::{CleftError, Result};
use crate::model::ClipModel;
use crate::prompt::PromptLearner;
use crate::prompt_model::PromptModel;
use crate::store::load_safetensors;

/// Where stage 2 saves the learned context of the run in `run_dir`.
pub fn learned_prompt_path(run_dir: &Path) -> PathBuf {
    run_dir.join("prompt").join("prompt.safetensors")
}

/// The `[prompt]` learner of `config` built for `clip`'s text encoder, initialised with the
/// seed stage 2 derives from `train.seed` (so anything a saved context does not hold matches
/// training).
pub fn seeded_prompt_learner(
    config: &ExperimentConfig,
    clip: &ClipModel,
    device: &Device,
) -> Result<Component<dyn PromptLearner>> {
    let prompt_config = config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    let prompt = prompt_config.build(&clip.text, device)?;
    crate::random::initialize_seeded(
        &prompt,
        crate::random::derive_seed(config.train.seed, "prompt"),
    );
    Ok(prompt)
}

/// `model` with the stage-2 learned context of the run in `run_dir`
/// ([`learned_prompt_path`]); a run without one is an error that says how to make it.
pub fn load_learned_prompt(
    config: &ExperimentConfig,
    model: &ClipModel,
    run_dir: &Path,
    device: &Device,
) -> Result<PromptModel> {
    let path = learned_prompt_path(run_dir);
    if !path.is_file() {
        return Err(CleftError::Training(format!(
            "{}: no learned prompt; run `cleft train --stage prompt --resume {}` … first \
             (stage 2), or use template prompts",
            path.display(),
            run_dir.display()
        )));
    }
    load_prompt_file(config, model, &path, device)
}

/// `model` with the learned context saved in `path` (a `prompt.safetensors` of stage 2).
pub fn load_prompt_file(
    config: &ExperimentConfig,
    model: &ClipModel,
    path: &Path,
    device: &Device,
) -> Result<PromptModel> {
    let mut prompt = seeded_prompt_learner(config, model, device)?;
    load_safetensors(&mut prompt, path)?;
    Ok(PromptModel {
        clip: model.clone(),
        prompt,
    })
}

/// Class embeddings `[K, P]`: the learned context before each lower-cased class name, as
/// stage 2 trains and evaluates it.
pub fn learned_class_embeddings(
    prompt_model: &PromptModel,
    classes: &[String],
    device: &Device,
) -> Result<Tensor<2>> {
    let names: Vec<String> = classes.iter().map(|c| c.to_lowercase()).collect();
    prompt_model.encode_with_context(&names, device)
}
