//! Stage 2: learning the shared context prompt on top of a stage-1 model.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::bridge::Component;
use crate::config::{ExperimentConfig, PromptRecipe};
use crate::data::{ImageTextBatch, collate};
use crate::error::{CleftError, Result};
use crate::eval::{ZeroShotReport, zero_shot_with};
use crate::model::{ClipModel, l2_normalize, with_seeded_rng};
use crate::objective::PairLabels;
use crate::prompt::PromptLearner;
use crate::registry::Split;
use crate::train::checkpoint::{load_safetensors, save_checkpoint, save_safetensors};
use crate::train::metrics::{MetricsLog, StepMetrics};
use crate::train::plots::plot_history;
use crate::train::schedule::learning_rate;
use crate::train::state::{BatchOrder, TrainState};
use crate::train::trainer::gradient_norm;

/// A stage-1 model plus the prompt learner being trained.
#[derive(Module, Debug)]
pub struct PromptModel {
    /// The stage-1 model (text side frozen).
    pub clip: ClipModel,
    /// Learned context.
    pub prompt: Component<dyn PromptLearner>,
}

impl PromptModel {
    /// Projected, normalised embeddings of `texts` with the learned context prepended.
    ///
    /// # Shapes
    /// - output `[texts.len(), P]`.
    pub fn encode_with_context(
        &self,
        texts: &[String],
        max_len: usize,
        device: &Device,
    ) -> Result<Tensor<2>> {
        let text = &self.clip.text;
        let (ids, mask) = text
            .tokenizer()
            .encode_batch(texts, max_len)?
            .to_tensors(device);
        let (embeddings, mask) = self.prompt.combine(text.embed_tokens(ids), mask);
        Ok(l2_normalize(
            self.clip
                .text_projection
                .forward(text.forward_embeddings(embeddings, mask)),
        ))
    }
}

/// Result of [`train_prompt`].
#[derive(Debug)]
pub struct PromptOutcome {
    /// The trained model.
    pub model: PromptModel,
    /// Per-step metrics.
    pub history: Vec<StepMetrics>,
    /// `RUN_DIR/prompt`.
    pub run_dir: PathBuf,
    /// Zero-shot results on the test split with the learned prompts.
    pub report: ZeroShotReport,
}

/// Trains the `[prompt]` learner on the stage-1 model saved in the run directory
/// (`model.safetensors`), by the `[prompt_train]` recipe. Writes `prompt/` into the run
/// directory: checkpoints, metrics, plots, `prompt.safetensors` (the learned context) and
/// `zero_shot.json` (evaluated with the learned prompts).
pub fn train_prompt(
    config: &ExperimentConfig,
    device: &Device,
    progress: bool,
) -> Result<PromptOutcome> {
    let settings = &config.prompt_train;
    // Fail before loading anything when there is no prompt learner to train.
    config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    let stage1 = config.output.dir.join("model.safetensors");
    if !stage1.is_file() {
        return Err(CleftError::Training(format!(
            "{}: no stage-1 model; run `cleft train --config …` (stage contrastive) first",
            stage1.display()
        )));
    }
    let _lock = crate::train::lock::RunLock::acquire(&config.output.dir)?;
    let run_dir = config.output.dir.join("prompt");
    std::fs::create_dir_all(&run_dir).map_err(|e| CleftError::io(&run_dir, e))?;

    let device = device.clone().autodiff();
    let mut clip = ClipModel::build_seeded(config, &device, config.train.seed)?;
    load_safetensors(&mut clip, &stage1)?;
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

    let dataset = config.data.build(Split::Train)?;
    let classes = dataset.label_names();
    let class_names: Vec<String> = classes.iter().map(|c| c.to_lowercase()).collect();
    let mut usable = Vec::new();
    for index in 0..dataset.len() {
        let positives = dataset.labels(index)?.iter().filter(|&&l| l > 0.5).count();
        let keep = match settings.recipe {
            PromptRecipe::Paper => positives == 1,
            PromptRecipe::Released => positives >= 1,
        };
        if keep {
            usable.push(index);
        }
    }
    if usable.len() < settings.batch_size {
        return Err(CleftError::Data(format!(
            "stage 2: only {} training images qualify for the {:?} recipe, fewer than a batch of {}",
            usable.len(),
            settings.recipe,
            settings.batch_size
        )));
    }

    let mut optimizer = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: settings.momentum,
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: settings.weight_decay as f32,
        }))
        .init();
    let mut order = BatchOrder::new(usable.len(), config.train.seed);
    let mut state = TrainState {
        step: 0,
        epoch: 0,
        position: 0,
    };
    let (mut log, mut history) = MetricsLog::open(&run_dir, 0)?;
    let bar = if progress {
        indicatif::ProgressBar::new(settings.steps as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let max_len = config.train.max_text_len;

    while state.step < settings.steps {
        let started = Instant::now();
        let step = state.step;
        let lr = learning_rate(settings, step);
        let indices: Vec<usize> = order
            .next_batch(&mut state, settings.batch_size)
            .iter()
            .map(|&i| usable[i])
            .collect();
        let batch = collate(dataset.as_ref(), &indices, &device)?;
        let loss = with_seeded_rng(&device, config.train.seed.wrapping_add(step as u64), || {
            prompt_loss(
                &model,
                batch,
                settings.recipe,
                &class_names,
                max_len,
                &device,
            )
        })?;
        let loss_value = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let grad_norm = gradient_norm(&model, &grads);
        if !loss_value.is_finite() || !grad_norm.is_finite() {
            return Err(CleftError::Training(format!(
                "stage 2, step {step}: loss {loss_value}, gradient norm {grad_norm} — not finite"
            )));
        }
        model = optimizer.step(lr, model, grads);
        state.step += 1;
        let metrics = StepMetrics {
            step,
            loss: loss_value,
            lr,
            grad_norm,
            samples_per_sec: settings.batch_size as f64 / started.elapsed().as_secs_f64(),
            extra: Default::default(),
        };
        log.append(&metrics)?;
        bar.inc(1);
        history.push(metrics);
        if state.step % settings.checkpoint_every.max(1) == 0 || state.step == settings.steps {
            save_checkpoint(
                &run_dir,
                &state,
                &model,
                &optimizer,
                config.train.keep_checkpoints,
            )?;
        }
    }
    bar.finish_and_clear();
    save_safetensors(&model.prompt, &run_dir.join("prompt.safetensors"))?;
    plot_history(&history, &run_dir)?;

    let test = config.data.build(Split::Test)?;
    let valid = model.valid();
    let inner = device.clone().inner();
    let class_embeddings = valid.encode_with_context(&class_names, max_len, &inner)?;
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
    crate::train::checkpoint::write_atomic(&run_dir.join("zero_shot.json"), json.as_bytes())?;
    Ok(PromptOutcome {
        model,
        history,
        run_dir,
        report,
    })
}

/// The prompt learner of `config` before training, built for `clip` with the seeded RNG (the
/// same config and seed give the same initial context).
pub fn initial_prompt(
    config: &ExperimentConfig,
    clip: &ClipModel,
    device: &Device,
) -> Result<Component<dyn PromptLearner>> {
    let prompt_config = config.prompt.as_ref().ok_or_else(|| {
        CleftError::Config("stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into())
    })?;
    with_seeded_rng(device, config.train.seed ^ 0x5EED_C0DE, || {
        prompt_config.build(&clip.text, device)
    })
}

/// The stage-2 loss of one batch under `recipe` (class names lower-cased, in label order).
///
/// # Shapes
/// - `batch.images`: `[B, C, H, W]`, `batch.labels`: `[B, K]`; output `[1]`.
pub fn prompt_loss(
    model: &PromptModel,
    batch: ImageTextBatch,
    recipe: PromptRecipe,
    class_names: &[String],
    max_len: usize,
    device: &Device,
) -> Result<Tensor<1>> {
    let image = model.clip.encode_images(batch.images);
    Ok(match recipe {
        PromptRecipe::Paper => {
            let class_embeddings = model.encode_with_context(class_names, max_len, device)?;
            let logits = image.matmul(class_embeddings.transpose())
                * model.clip.objective.logit_scale().unsqueeze();
            let targets = batch.labels.argmax(1);
            log_softmax(logits, 1).gather(1, targets).mean().neg()
        }
        PromptRecipe::Released => {
            let captions = label_captions(&batch.labels, class_names)?;
            let text = model.encode_with_context(&captions, max_len, device)?;
            let labels = PairLabels {
                image: batch.labels.clone(),
                text: batch.labels,
            };
            model.clip.objective.forward(image, text, Some(labels)).loss
        }
    })
}

/// Lower-cased positive finding names of each row, joined by ", " (the released recipe's captions).
fn label_captions(labels: &Tensor<2>, names: &[String]) -> Result<Vec<String>> {
    let [_, classes] = labels.dims();
    let values = labels
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| CleftError::Invalid(format!("{e:?}")))?;
    Ok(values
        .chunks(classes)
        .map(|row| {
            let positive: Vec<&str> = row
                .iter()
                .zip(names)
                .filter(|(v, _)| **v > 0.5)
                .map(|(_, n)| n.as_str())
                .collect();
            positive.join(", ")
        })
        .collect())
}
