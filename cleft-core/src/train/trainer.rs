//! The stage-1 training loop.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::config::{ExperimentConfig, TrainConfig};
use crate::data::{ImageTextDataset, collate};
use crate::error::{CleftError, Result};
use crate::model::ClipModel;
use crate::registry::Split;
use crate::train::checkpoint::{save_safetensors, write_atomic};
use crate::train::schedule::learning_rate;

/// How a training run reports progress.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    /// 0-based optimiser step.
    pub step: usize,
    /// Loss of this step's batch.
    pub loss: f64,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Throughput of this step.
    pub samples_per_sec: f64,
    /// Objective-specific scalars (e.g. `logit_scale`).
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, f64>,
}

/// Result of [`train_contrastive`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained model (training device, autodiff enabled).
    pub model: ClipModel,
    /// Per-step metrics.
    pub history: Vec<StepMetrics>,
    /// The run directory.
    pub run_dir: PathBuf,
}

struct NoDecayCollector {
    path: Vec<String>,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for NoDecayCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The reference decays the (0-d) logit scale but no 1-D parameter (biases, norms).
        let is_logit_scale = self.path.last().is_some_and(|name| name == "logit_scale");
        if D == 1 && !is_logit_scale {
            self.ids.push(param.id);
        }
    }
}

/// AdamW as the reference configures it: decoupled weight decay on every parameter except 1-D
/// ones (biases, norm weights); the logit scale is decayed.
pub fn optimizer_for<M: Module>(model: &M, config: &TrainConfig) -> ModuleOptimizer {
    let adamw = |weight_decay: f64| {
        AdamWConfig::new()
            .with_beta_1(config.betas[0] as f32)
            .with_beta_2(config.betas[1] as f32)
            .with_epsilon(config.epsilon as f32)
            .with_weight_decay(weight_decay as f32)
    };
    let mut collector = NoDecayCollector { path: Vec::new(), ids: Vec::new() };
    model.visit(&mut collector);
    adamw(config.weight_decay).init().with_group(
        ParamGroup::from_ids(collector.ids),
        adamw(0.0).build(),
        None,
    )
}

/// Trains `config` on `device` (stage 1): writes the resolved config, per-step metrics
/// (`metrics.jsonl`) and the final weights (`model.safetensors`) into the run directory.
///
/// The base text encoder stays frozen when a PEFT adapter is configured; a non-finite loss
/// stops training with an error naming the step.
pub fn train_contrastive(
    config: &ExperimentConfig,
    device: &Device,
    options: &TrainOptions,
) -> Result<TrainOutcome> {
    let train = &config.train;
    let run_dir = config.output.dir.clone();
    std::fs::create_dir_all(&run_dir).map_err(|e| CleftError::io(&run_dir, e))?;
    write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;

    let device = device.clone().autodiff();
    let mut model = ClipModel::build_seeded(config, &device, train.seed)?;
    let dataset = config.data.build(Split::Train)?;
    if dataset.len() < train.batch_size {
        return Err(CleftError::Data(format!(
            "the training split has {} samples, fewer than one batch of {}",
            dataset.len(),
            train.batch_size
        )));
    }
    let mut optimizer = optimizer_for(&model, train);
    let mut batches = BatchOrder::new(dataset.len(), train.batch_size, train.seed);

    let metrics_path = run_dir.join("metrics.jsonl");
    let mut metrics_file =
        std::fs::File::create(&metrics_path).map_err(|e| CleftError::io(&metrics_path, e))?;
    let progress = progress_bar(train.steps, options.progress);
    let mut history = Vec::with_capacity(train.steps);

    for step in 0..train.steps {
        let started = Instant::now();
        let lr = learning_rate(train, step);
        let (loss, extra, next) = train_step(model, dataset.as_ref(), &mut batches, &mut optimizer, lr, config, &device)?;
        model = next;
        if !loss.is_finite() {
            return Err(CleftError::Training(format!(
                "step {step}: the loss is {loss}; stopping (learning rate {lr:e})"
            )));
        }
        let metrics = StepMetrics {
            step,
            loss,
            lr,
            samples_per_sec: train.batch_size as f64 / started.elapsed().as_secs_f64(),
            extra,
        };
        let line = serde_json::to_string(&metrics).expect("metrics serialise");
        writeln!(metrics_file, "{line}").map_err(|e| CleftError::io(&metrics_path, e))?;
        progress.set_message(format!(
            "loss {loss:.4}  lr {lr:.2e}  {:.1} samples/s",
            metrics.samples_per_sec
        ));
        progress.inc(1);
        history.push(metrics);
    }
    progress.finish();
    save_safetensors(&model, &run_dir.join("model.safetensors"))?;
    Ok(TrainOutcome { model, history, run_dir })
}

#[allow(clippy::type_complexity)]
fn train_step(
    model: ClipModel,
    dataset: &dyn ImageTextDataset,
    batches: &mut BatchOrder,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    config: &ExperimentConfig,
    device: &Device,
) -> Result<(f64, std::collections::BTreeMap<String, f64>, ClipModel)> {
    let indices = batches.next_batch();
    let batch = collate(dataset, &indices, device)?;
    let output =
        model.forward(batch.images, &batch.captions, Some(batch.labels), config.train.max_text_len)?;
    let loss = output.loss.clone().into_scalar::<f64>();
    let grads = GradientsParams::from_grads(output.loss.backward(), &model);
    let model = optimizer.step(lr, model, grads);
    Ok((loss, output.metrics.into_iter().collect(), model))
}

fn progress_bar(steps: usize, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}  ETA {eta}")
            .expect("static progress template"),
    );
    bar
}

/// Seeded epoch-wise shuffling; drops the last incomplete batch of each epoch.
struct BatchOrder {
    order: Vec<usize>,
    position: usize,
    batch_size: usize,
    rng: StdRng,
}

impl BatchOrder {
    fn new(len: usize, batch_size: usize, seed: u64) -> Self {
        let mut this = Self {
            order: (0..len).collect(),
            position: 0,
            batch_size,
            rng: StdRng::seed_from_u64(seed),
        };
        this.order.shuffle(&mut this.rng);
        this
    }

    fn next_batch(&mut self) -> Vec<usize> {
        if self.position + self.batch_size > self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.position = 0;
        }
        let batch = self.order[self.position..self.position + self.batch_size].to_vec();
        self.position += self.batch_size;
        batch
    }
}
