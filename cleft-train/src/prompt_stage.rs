//! Stage 2: learning the shared context prompt on top of a stage-1 model.
//!
//! The same driver and pipeline as stage 1: a [`Loader`] prepares batches on worker threads (for the
//! released recipe it also builds and tokenises each image's label caption), the class prompts
//! of the paper recipe are tokenised once, the step is tensors only, scalars are read back once
//! per `train.log_every` steps, and `--resume` continues from the newest `prompt/checkpoints/`
//! entry with exactly the losses of an uninterrupted run.

use std::path::PathBuf;
use std::sync::Arc;

use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::Int;
use burn::tensor::activation::log_softmax;

use crate::checkpoint::save_safetensors;
use crate::contrastive::{ContrastiveStep, PairEncoder};
use crate::driver::{self, Finished, LoopPlan, StageStep, StepOutput};
use crate::eval::zero_shot::{ZeroShotReport, zero_shot_with};
use crate::loader::{DeviceBatch, Loader, LoaderOptions, Shard};
use crate::metrics::StepMetrics;
use crate::options::TrainOptions;
use crate::plots::plot_history;
use crate::replication::Replication;
use crate::schedule::Schedule;
use crate::state::TrainState;
use cleft_core::config::{ExperimentConfig, PromptRecipe};
use cleft_core::data::{ImageTextDataset, ImageTextSample};
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::objective::{ContrastiveObjective, PairLabels};
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

/// What stage 2 produced on rank 0 (or a lone device) when it completed.
#[derive(Debug)]
pub struct PromptOutcome {
    /// `RUN_DIR/prompt`.
    pub run_dir: PathBuf,
    /// Zero-shot results on the test split with the learned prompts.
    pub report: ZeroShotReport,
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

/// The paper recipe's step: cross-entropy of single-finding images against the class prompts.
struct PaperStep {
    loader: Loader,
    class_tokens: (Tensor<2, Int>, Tensor<2, Int>),
    device: Device,
}

impl StageStep<PromptModel> for PaperStep {
    fn step(
        &mut self,
        model: &mut PromptModel,
        _step: usize,
        state: &mut TrainState,
        replication: Option<&mut Replication<'_>>,
    ) -> Result<StepOutput> {
        let (batch, data_wait) = self.loader.next_batch()?;
        (state.epoch, state.position) = (batch.epoch, batch.position);
        let batch = batch.to_device(&self.device);
        let loss = prompt_loss(model, batch, PromptRecipe::Paper, &self.class_tokens);
        let detached = loss.clone().inner();
        // A replica's gradients are its share of the mean over the replicas' shards.
        let scaled = match replication.map_or(1, |r| r.world_size()) {
            1 => loss,
            world => loss / world as f64,
        };
        let grads = GradientsParams::from_grads(scaled.backward(), &*model);
        Ok(StepOutput {
            loss: detached,
            grads,
            metrics: Vec::new(),
            data_wait,
            global: false,
        })
    }
}

impl PairEncoder for PromptModel {
    fn encode_pair(&self, batch: &DeviceBatch) -> (Tensor<2>, Tensor<2>) {
        (
            self.clip.encode_images(batch.images.clone()),
            self.encode_ids_with_context(batch.ids.clone(), batch.mask.clone()),
        )
    }

    fn objective(&self) -> &dyn ContrastiveObjective {
        &*self.clip.objective
    }
}

/// Stage 2 on `clip` (a stage-1 model on the autodiff `device`), through the driver: the
/// `[prompt]` learner trained by the `[prompt_train]` recipe in `RUN_DIR/prompt` (checkpoints,
/// metrics). On replicas each reads its shard of every batch (the released recipe's objective
/// sees the global batch when `[objective] gather`).
pub(crate) fn train_stage2(
    clip: ClipModel,
    config: &ExperimentConfig,
    device: &Device,
    mut replication: Option<Replication<'_>>,
    options: &TrainOptions,
) -> Result<Finished<PromptModel>> {
    let settings = &config.prompt_train;
    config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    let (rank, world_size) = replication
        .as_ref()
        .map_or((0, 1), |r| (r.rank(), r.world_size()));
    if !settings.batch_size.is_multiple_of(world_size) {
        return Err(CleftError::Invalid(format!(
            "prompt_train.batch_size = {} cannot be split evenly over {world_size} replicas",
            settings.batch_size
        )));
    }
    let plan = LoopPlan {
        run_dir: config.output.dir.join("prompt"),
        schedule: Schedule::from(settings),
        checkpoint_every: settings.checkpoint_every,
        keep_checkpoints: config.train.keep_checkpoints,
        log_every: config.train.log_every,
        grad_clip_norm: None,
        samples_per_step: settings.batch_size as f64,
        label: "stage 2 ",
    };
    if rank == 0 {
        std::fs::create_dir_all(&plan.run_dir).map_err(|e| CleftError::io(&plan.run_dir, e))?;
    }
    let prompt = initial_prompt(config, &clip, device)?;
    let trainable = match settings.recipe {
        PromptRecipe::Paper => r"^prompt\..*",
        PromptRecipe::Released => {
            r"^(prompt|clip\.vision|clip\.vision_projection|clip\.objective)\..*"
        }
    };
    let group = ParamGroup::from_regex(trainable).expect("static regex");
    let model = PromptModel { clip, prompt }
        .set_require_grad(false)
        .set_require_grad_group(group, true);
    let start = driver::start(
        &plan,
        model,
        |_| sgd(settings),
        options.resume,
        replication.as_mut(),
    )?;

    let train_split = config.data.build(Split::Train)?;
    let class_names = lower_case(&train_split.label_names());
    let data = PromptData::new(train_split, settings.recipe, class_names.clone())?;
    if data.len() < settings.batch_size {
        return Err(CleftError::Data(format!(
            "stage 2: only {} training images qualify for the {:?} recipe, fewer than a batch of {}",
            data.len(),
            settings.recipe,
            settings.batch_size
        )));
    }
    let loader = Loader::new(
        Arc::new(data),
        start.model.clip.text.tokenizer(),
        LoaderOptions {
            batch_size: settings.batch_size,
            workers: config.train.workers,
            prefetch: config.train.prefetch,
            seed: config.train.seed,
            max_len: start.model.clip.text.max_len(),
            shard: Shard {
                rank,
                count: world_size,
            },
        },
        start.state,
    )?;
    match settings.recipe {
        PromptRecipe::Paper => {
            // Every image is scored against the same class prompts: tokenised once.
            let class_tokens = start.model.class_tokens(&class_names, device)?;
            let mut step = PaperStep {
                loader,
                class_tokens,
                device: device.clone(),
            };
            driver::run(&plan, start, &mut step, replication, options, device)
        }
        PromptRecipe::Released => {
            let mut step = ContrastiveStep {
                loader,
                dataset: None,
                micro_batches: 1,
                seed: config.train.seed,
                device: device.clone(),
            };
            driver::run(&plan, start, &mut step, replication, options, device)
        }
    }
}

/// After a completed stage 2 (rank 0): writes `prompt.safetensors` (the learned context), the
/// plots, and `zero_shot.json` (the test split scored with the learned prompts) into
/// `RUN_DIR/prompt`.
pub(crate) fn finish_stage2(
    model: &PromptModel,
    history: &[StepMetrics],
    config: &ExperimentConfig,
    device: &Device,
) -> Result<PromptOutcome> {
    let run_dir = config.output.dir.join("prompt");
    save_safetensors(&model.prompt, &run_dir.join("prompt.safetensors"))?;
    plot_history(history, &run_dir)?;
    let test = config.data.build(Split::Test)?;
    let class_names = lower_case(&test.label_names());
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
    Ok(PromptOutcome { run_dir, report })
}

fn lower_case(names: &[String]) -> Vec<String> {
    names.iter().map(|c| c.to_lowercase()).collect()
}

/// The prompt learner of `config` before training, built for `clip`; a random context is drawn
/// from `derive_seed(train.seed, "prompt.<path>")` (the same config and seed give the same
/// initial context, whatever else runs).
pub use cleft_core::inference::learned::seeded_prompt_learner as initial_prompt;

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
