//! Stage 2: learning the shared context prompt on top of a stage-1 model.
//!
//! The same pipeline as stage 1: a [`Loader`] prepares batches on worker threads (for the
//! released recipe it also builds and tokenises each image's label caption), the class prompts
//! of the paper recipe are tokenised once, the step is tensors only, scalars are read back once
//! per `train.log_every` steps, and `--resume` continues from the newest `prompt/checkpoints/`
//! entry with exactly the losses of an uninterrupted run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::Int;
use burn::tensor::activation::log_softmax;

use crate::checkpoint::{list_checkpoints, load_checkpoint, save_checkpoint, save_safetensors};
use crate::eval::{ZeroShotReport, zero_shot_with};
use crate::experiment::Experiment;
use crate::loader::{DeviceBatch, Loader, LoaderOptions, Shard};
use crate::metrics::StepMetrics;
use crate::plots::plot_history;
use crate::schedule::learning_rate;
use crate::state::TrainState;
use crate::trainer::{
    PendingStep, StepLog, TrainEnd, TrainOptions, gradient_squares, progress_bar,
};
use cleft_core::bridge::Component;
use cleft_core::config::{ExperimentConfig, PromptRecipe};
use cleft_core::data::{ImageTextDataset, ImageTextSample};
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::objective::PairLabels;
use cleft_core::prompt::PromptLearner;
use cleft_core::registry::Split;

pub use cleft_core::prompt_model::PromptModel;

/// The stage-2 view of a training split: the images the recipe can use (paper: exactly one
/// positive finding; released: at least one), each captioned with its positive finding names
/// joined by ", " (the released recipe's text; the loader tokenises it off the step).
#[derive(Debug)]
pub struct PromptData {
    inner: Box<dyn ImageTextDataset>,
    indices: Vec<usize>,
    class_names: Vec<String>,
}

impl PromptData {
    /// Selects the usable images of `inner` for `recipe`; `class_names` are lower-cased.
    pub fn new(
        inner: Box<dyn ImageTextDataset>,
        recipe: PromptRecipe,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let mut indices = Vec::new();
        for index in 0..inner.len() {
            let positives = inner.labels(index)?.iter().filter(|&&l| l > 0.5).count();
            let keep = match recipe {
                PromptRecipe::Paper => positives == 1,
                PromptRecipe::Released => positives >= 1,
            };
            if keep {
                indices.push(index);
            }
        }
        Ok(Self {
            inner,
            indices,
            class_names,
        })
    }

    fn caption(&self, labels: &[f32]) -> String {
        let positive: Vec<&str> = labels
            .iter()
            .zip(&self.class_names)
            .filter(|(v, _)| **v > 0.5)
            .map(|(_, n)| n.as_str())
            .collect();
        positive.join(", ")
    }

    fn inner_index(&self, index: usize) -> Result<usize> {
        self.indices.get(index).copied().ok_or_else(|| {
            CleftError::Data(format!(
                "stage 2: index {index} out of range for {} usable images",
                self.indices.len()
            ))
        })
    }
}

impl ImageTextDataset for PromptData {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<ImageTextSample> {
        let mut sample = self.inner.get(self.inner_index(index)?)?;
        sample.caption = self.caption(&sample.labels);
        Ok(sample)
    }
    fn get_for_training(&self, index: usize, seed: u64) -> Result<ImageTextSample> {
        let mut sample = self
            .inner
            .get_for_training(self.inner_index(index)?, seed)?;
        sample.caption = self.caption(&sample.labels);
        Ok(sample)
    }
    fn labels(&self, index: usize) -> Result<Vec<f32>> {
        self.inner.labels(self.inner_index(index)?)
    }
    fn image_shape(&self) -> [usize; 3] {
        self.inner.image_shape()
    }
    fn label_names(&self) -> Vec<String> {
        self.inner.label_names()
    }
}

/// Result of [`train_prompt`].
#[derive(Debug)]
pub struct PromptOutcome {
    /// The trained model.
    pub model: PromptModel,
    /// Per-step metrics (including steps before a resume).
    pub history: Vec<StepMetrics>,
    /// `RUN_DIR/prompt`.
    pub run_dir: PathBuf,
    /// Zero-shot results on the test split with the learned prompts (`None` when interrupted).
    pub report: Option<ZeroShotReport>,
    /// Completed or interrupted.
    pub end: TrainEnd,
}

fn sgd(settings: &cleft_core::config::PromptTrainConfig) -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: settings.momentum,
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: settings.weight_decay as f32,
        }))
        .init()
}

/// Trains the `[prompt]` learner on the stage-1 model saved in the run directory
/// (`model.safetensors`), by the `[prompt_train]` recipe: builds an [`Experiment`], loads the
/// stage-1 weights into it and runs [`Experiment::train_prompt`]. Writes `prompt/` into the run
/// directory: checkpoints, metrics, plots, `prompt.safetensors` (the learned context) and
/// `zero_shot.json` (evaluated with the learned prompts). With [`TrainOptions::resume`] it
/// continues from the newest `prompt/checkpoints/` entry.
pub fn train_prompt(
    config: &ExperimentConfig,
    device: &Device,
    options: &TrainOptions,
) -> Result<PromptOutcome> {
    // Fail before building anything when there is no prompt learner to train.
    config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    let mut experiment = Experiment::build(config, device)?;
    experiment.load_stage1()?;
    experiment.train_prompt(options)
}

/// Stage 2 on `clip` (a stage-1 model on the autodiff `device`), without rebuilding it.
pub(crate) fn train_prompt_on(
    clip: ClipModel,
    config: &ExperimentConfig,
    device: &Device,
    options: &TrainOptions,
) -> Result<PromptOutcome> {
    let settings = &config.prompt_train;
    config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    let run_dir = config.output.dir.join("prompt");
    std::fs::create_dir_all(&run_dir).map_err(|e| CleftError::io(&run_dir, e))?;
    let device = device.clone();
    let prompt = initial_prompt(config, &clip, &device)?;
    let trainable = match settings.recipe {
        PromptRecipe::Paper => r"^prompt\..*",
        PromptRecipe::Released => {
            r"^(prompt|clip\.vision|clip\.vision_projection|clip\.objective)\..*"
        }
    };
    let group = ParamGroup::from_regex(trainable).expect("static regex");
    let mut model = PromptModel { clip, prompt }
        .set_require_grad(false)
        .set_require_grad_group(group, true);

    let resume_from = if options.resume {
        list_checkpoints(&run_dir)?.pop().map(|(_, dir)| dir)
    } else {
        None
    };
    let (mut optimizer, mut state) = match &resume_from {
        Some(dir) => load_checkpoint(dir, &mut model, |_| sgd(settings))?,
        None => (sgd(settings), TrainState::fresh(1)),
    };
    let mut last_checkpoint = resume_from;

    let train_split = config.data.build(Split::Train)?;
    let class_names: Vec<String> = train_split
        .label_names()
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    let data = PromptData::new(train_split, settings.recipe, class_names.clone())?;
    if data.len() < settings.batch_size {
        return Err(CleftError::Data(format!(
            "stage 2: only {} training images qualify for the {:?} recipe, fewer than a batch of {}",
            data.len(),
            settings.recipe,
            settings.batch_size
        )));
    }
    let mut loader = Loader::new(
        Arc::new(data),
        model.clip.text.tokenizer(),
        LoaderOptions {
            batch_size: settings.batch_size,
            workers: config.train.workers,
            prefetch: config.train.prefetch,
            seed: config.train.seed,
            max_len: model.clip.text.max_len(),
            shard: Shard::WHOLE,
        },
        state,
    )?;
    // The paper recipe scores every image against the same class prompts: tokenised once.
    let class_tokens = model.class_tokens(&class_names, &device)?;

    let progress = progress_bar(settings.steps, state.step, options.progress);
    let mut log = StepLog::open(&run_dir, state.step, |m: &StepMetrics| {
        format!("stage 2 loss {:.4}", m.loss)
    })?;

    while state.step < settings.steps {
        if options.interrupted() {
            log.flush(&last_checkpoint, &progress)?;
            let checkpoint = save_checkpoint(
                &run_dir,
                &state,
                &model,
                &optimizer,
                config.train.keep_checkpoints,
            )?;
            progress
                .abandon_with_message(format!("interrupted; checkpoint {}", checkpoint.display()));
            return Ok(PromptOutcome {
                model,
                history: log.history,
                run_dir,
                report: None,
                end: TrainEnd::Interrupted { checkpoint },
            });
        }
        let started = Instant::now();
        let step = state.step;
        let lr = learning_rate(settings, step);
        let (batch, waited) = loader.next_batch()?;
        (state.epoch, state.position) = (batch.epoch, batch.position);
        let batch = batch.to_device(&device);
        let loss = prompt_loss(&model, batch, settings.recipe, &class_tokens);
        let detached = loss.clone().inner();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let grad_squares = gradient_squares(&model, &grads, &device);
        model = optimizer.step(lr, model, grads);
        state.step += 1;
        progress.inc(1);
        log.push(PendingStep {
            step,
            lr,
            loss: detached,
            grad_squares,
            metrics: Vec::new(),
            elapsed: started.elapsed().as_secs_f64(),
            data_wait: waited.as_secs_f64(),
            samples: settings.batch_size as f64,
        });
        let checkpoint_now =
            state.step % settings.checkpoint_every.max(1) == 0 || state.step == settings.steps;
        if checkpoint_now || state.step % config.train.log_every.max(1) == 0 {
            log.flush(&last_checkpoint, &progress)?;
        }
        if checkpoint_now {
            last_checkpoint = Some(save_checkpoint(
                &run_dir,
                &state,
                &model,
                &optimizer,
                config.train.keep_checkpoints,
            )?);
        }
    }
    progress.finish_and_clear();
    save_safetensors(&model.prompt, &run_dir.join("prompt.safetensors"))?;
    plot_history(&log.history, &run_dir)?;

    let test = config.data.build(Split::Test)?;
    let valid = model.valid();
    let inner = device.clone().inner();
    let class_embeddings = valid.encode_with_context(&class_names, &inner)?;
    let prompts = class_names
        .iter()
        .map(|name| {
            format!(
                "<{} learned tokens> {name}",
                valid.prompt.num_context_tokens()
            )
        })
        .collect();
    let report = zero_shot_with(
        &valid.clip,
        test.as_ref(),
        class_embeddings,
        prompts,
        config.eval.batch_size,
        &inner,
    )?;
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    crate::checkpoint::write_atomic(&run_dir.join("zero_shot.json"), json.as_bytes())?;
    Ok(PromptOutcome {
        model,
        history: log.history,
        run_dir,
        report: Some(report),
        end: TrainEnd::Completed,
    })
}

/// The prompt learner of `config` before training, built for `clip`; a random context is drawn
/// from `derive_seed(train.seed, "prompt.<path>")` (the same config and seed give the same
/// initial context, whatever else runs).
pub fn initial_prompt(
    config: &ExperimentConfig,
    clip: &ClipModel,
    device: &Device,
) -> Result<Component<dyn PromptLearner>> {
    let prompt_config = config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    let prompt = prompt_config.build(&clip.text, device)?;
    cleft_core::random::initialize_seeded(
        &prompt,
        cleft_core::random::derive_seed(config.train.seed, "prompt"),
    );
    Ok(prompt)
}

/// The stage-2 loss of one batch under `recipe`: tensors in, tensors out.
///
/// - paper: cross-entropy of each single-finding image against the class prompts
///   (`class_tokens`, tokenised once);
/// - released: CLIP objective between the images and their label captions (`batch.ids`).
///
/// # Shapes
/// - `batch.images`: `[B, C, H, W]`, `batch.labels`: `[B, K]`, `batch.ids`/`mask`: `[B, L]`;
///   `class_tokens`: `[K, L']` each; output `[1]`.
pub fn prompt_loss(
    model: &PromptModel,
    batch: DeviceBatch,
    recipe: PromptRecipe,
    class_tokens: &(Tensor<2, Int>, Tensor<2, Int>),
) -> Tensor<1> {
    let image = model.clip.encode_images(batch.images);
    match recipe {
        PromptRecipe::Paper => {
            let (ids, mask) = class_tokens.clone();
            let class_embeddings = model.encode_ids_with_context(ids, mask);
            let logits = image.matmul(class_embeddings.transpose())
                * model.clip.objective.logit_scale().unsqueeze();
            let targets = batch.labels.argmax(1);
            log_softmax(logits, 1).gather(1, targets).mean().neg()
        }
        PromptRecipe::Released => {
            let text = model.encode_ids_with_context(batch.ids, batch.mask);
            let labels = PairLabels {
                image: batch.labels.clone(),
                text: batch.labels,
            };
            model.clip.objective.forward(image, text, Some(labels)).loss
        }
    }
}
