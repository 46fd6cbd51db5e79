//! The contrastive step (stage 1, and stage 2's released recipe): the objective over the whole
//! optimiser batch, however it is split into micro-batches and replicas.
//!
//! Gradient accumulation in open_clip's `accum_freq` form: each micro-batch is encoded once and
//! its embeddings cached, the objective is evaluated once over every micro-batch's embeddings as
//! leaves (so every sample sees the whole batch's negatives), then each micro-batch is encoded
//! again and its rows of the embedding gradient are back-propagated through the encoders
//! (`Σ e · ∂L/∂e`). The summed gradients are those of the objective over the whole batch; the
//! objective's own parameters (the logit scale) get their gradient once. With one micro-batch
//! the first encoding's graph is kept and nothing is encoded twice.
//!
//! On data-parallel replicas whose objective sees the global batch (`[objective] gather`), the
//! cached embeddings are gathered from every replica first and each replica evaluates its block
//! of the objective in open_clip's `local_loss` form (see [`Replication`]); without gathering,
//! each replica's objective sees its own rows and the driver averages.

use std::sync::Arc;
use std::time::Duration;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

use cleft_core::config::{ExperimentConfig, TrainConfig};
use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::objective::{ContrastiveObjective, LocalRows, PairLabels};

use crate::checkpoint::write_atomic;
use crate::driver::{self, Finished, LoopPlan, StageStep, StepOutput};
use crate::loader::{DeviceBatch, Loader, LoaderOptions, Shard};
use crate::optim::{ScaleGrads, optimizer_for};
use crate::options::TrainOptions;
use crate::replication::Replication;
use crate::run_files::write_run_files;
use crate::schedule::Schedule;
use crate::state::TrainState;

/// A model a contrastive step trains: images and texts into the objective's space.
pub(crate) trait PairEncoder: Module {
    /// Normalised image and text embeddings of a batch.
    ///
    /// # Shapes
    /// - output: `[B, P]` each.
    fn encode_pair(&self, batch: &DeviceBatch) -> (Tensor<2>, Tensor<2>);

    /// The objective.
    fn objective(&self) -> &dyn ContrastiveObjective;

    /// Draws the stochastic parts (PEFT dropout) of micro-batch `micro` of step `step`, the same
    /// for both encodings of that micro-batch.
    fn seed_micro_batch(&mut self, _seed: u64, _step: usize, _micro: usize, _micro_batches: usize) {
    }
}

impl PairEncoder for ClipModel {
    fn encode_pair(&self, batch: &DeviceBatch) -> (Tensor<2>, Tensor<2>) {
        (
            self.encode_images(batch.images.clone()),
            self.encode_token_ids(batch.ids.clone(), batch.mask.clone()),
        )
    }

    fn objective(&self) -> &dyn ContrastiveObjective {
        &*self.objective
    }

    fn seed_micro_batch(&mut self, seed: u64, step: usize, micro: usize, micro_batches: usize) {
        // One micro-batch: the step's seeds, as a run without accumulation draws them.
        let draw = step * micro_batches + micro;
        cleft_core::peft::set_dropout_seeds(&mut self.text, seed, draw);
    }
}

/// The contrastive step: `micro_batches` loader batches per optimiser step.
pub(crate) struct ContrastiveStep {
    pub(crate) loader: Loader,
    /// The data set (its run files are kept with every checkpoint), when it has any.
    pub(crate) dataset: Option<Arc<dyn ImageTextDataset>>,
    pub(crate) micro_batches: usize,
    pub(crate) seed: u64,
    pub(crate) device: Device,
}

/// One cached micro-batch: its batch, and its embeddings (with their graph when they are used
/// for the backward pass directly).
struct Cached {
    batch: DeviceBatch,
    image: Tensor<2>,
    text: Tensor<2>,
}

impl<M: PairEncoder> StageStep<M> for ContrastiveStep {
    fn step(
        &mut self,
        model: &mut M,
        step: usize,
        state: &mut TrainState,
        replication: Option<&mut Replication<'_>>,
    ) -> Result<StepOutput> {
        let micro_batches = self.micro_batches.max(1);
        let (cached, data_wait) = self.encode_micro_batches(model, step, state)?;
        let gather = replication.as_ref().is_some_and(|r| r.gather);
        let mut accumulator = GradientsAccumulator::new();
        let objective = objective_over_batch(&*model, &cached, replication, &mut accumulator)?;
        // Each micro-batch's rows of the embedding gradient, back through the encoders.
        let mut row = objective.offset;
        for (micro, part) in cached.into_iter().enumerate() {
            let rows = part.image.dims()[0];
            let (image, text) = match micro_batches {
                1 => (part.image, part.text),
                _ => {
                    model.seed_micro_batch(self.seed, step, micro, micro_batches);
                    model.encode_pair(&part.batch)
                }
            };
            let range = row..row + rows;
            row += rows;
            let surrogate = (image * objective.image_grad.clone().slice([range.clone()])).sum()
                + (text * objective.text_grad.clone().slice([range])).sum();
            accumulator.accumulate(
                &*model,
                GradientsParams::from_grads(surrogate.backward(), &*model),
            );
        }
        Ok(StepOutput {
            loss: objective.loss,
            grads: accumulator.grads(),
            metrics: objective.metrics,
            data_wait,
            global: gather,
        })
    }

    fn keep_files(&self, run_dir: &std::path::Path) -> Result<()> {
        match &self.dataset {
            Some(dataset) => write_run_files(dataset.as_ref(), run_dir),
            None => Ok(()),
        }
    }
}

impl ContrastiveStep {
    /// Loads and encodes the step's micro-batches; with one micro-batch the embeddings keep
    /// their graph, with several they are detached (each is encoded again for its gradients).
    fn encode_micro_batches<M: PairEncoder>(
        &mut self,
        model: &mut M,
        step: usize,
        state: &mut TrainState,
    ) -> Result<(Vec<Cached>, Duration)> {
        let micro_batches = self.micro_batches.max(1);
        let mut data_wait = Duration::ZERO;
        let mut cached = Vec::with_capacity(micro_batches);
        for micro in 0..micro_batches {
            let (batch, waited) = self.loader.next_batch()?;
            data_wait += waited;
            (state.epoch, state.position) = (batch.epoch, batch.position);
            let batch = batch.to_device(&self.device);
            model.seed_micro_batch(self.seed, step, micro, micro_batches);
            let (image, text) = model.encode_pair(&batch);
            let (image, text) = match micro_batches {
                1 => (image, text),
                // Detached: the graph is dropped here and rebuilt by the second encoding.
                _ => (image.detach(), text.detach()),
            };
            cached.push(Cached { batch, image, text });
        }
        Ok((cached, data_wait))
    }
}

/// The objective over a whole optimiser batch: its loss and metrics, and the gradient of the
/// loss with respect to every embedding row.
struct BatchObjective {
    /// `[1]`, detached: the group's when gathered, else this replica's.
    loss: Tensor<1>,
    metrics: Vec<(String, Tensor<1>)>,
    /// `[rows, P]` each: every row of the (gathered) batch.
    image_grad: Tensor<2>,
    text_grad: Tensor<2>,
    /// Where this replica's rows start in the gathered batch (0 alone).
    offset: usize,
}

/// Evaluates the objective once on the cached embeddings of every micro-batch (gathered over
/// replicas when `gather`) as leaves; the objective's own parameter gradients go into
/// `accumulator`, and a gathered replica's block gradients, loss and metrics are summed with the
/// other replicas' in one all-reduce.
fn objective_over_batch<M: PairEncoder>(
    model: &M,
    cached: &[Cached],
    mut replication: Option<&mut Replication<'_>>,
    accumulator: &mut GradientsAccumulator<M>,
) -> Result<BatchObjective> {
    let local_rows: usize = cached.iter().map(|c| c.image.dims()[0]).sum();
    let cat =
        |part: fn(&Cached) -> Tensor<2>| Tensor::cat(cached.iter().map(part).collect(), 0).inner();
    let local_image = cat(|c| c.image.clone());
    let local_text = cat(|c| c.text.clone());
    let local_labels = cat(|c| c.batch.labels.clone());

    let gather = replication.as_ref().is_some_and(|r| r.gather);
    let world = replication.as_ref().map_or(1, |r| r.world_size());
    let (all_image, all_text, all_labels, offset) = match replication.as_deref_mut() {
        Some(replication) if gather => (
            replication.gather_rows(local_image)?,
            replication.gather_rows(local_text)?,
            replication.gather_rows(local_labels)?,
            // Replicas' blocks are gathered in rank order.
            replication.rank() * local_rows,
        ),
        _ => (local_image, local_text, local_labels, 0),
    };
    let all_image = all_image.autodiff().require_grad();
    let all_text = all_text.autodiff().require_grad();
    let all_labels = all_labels.autodiff();
    let labels = Some(PairLabels {
        image: all_labels.clone(),
        text: all_labels,
    });
    let output = match gather {
        true => model.objective().forward_local(LocalRows {
            all_image: all_image.clone(),
            all_text: all_text.clone(),
            labels,
            offset,
            rows: local_rows,
        }),
        false => model
            .objective()
            .forward(all_image.clone(), all_text.clone(), labels),
    };
    // Gathered: this replica's block of the global loss (their mean is the loss). Not
    // gathered: the replica's own loss, whose gradients the driver sums, so 1/world of it.
    let share = 1.0 / world as f64;
    let scaled = match gather || world == 1 {
        true => output.loss.clone(),
        false => output.loss.clone() * share,
    };
    let mut grads = scaled.backward();
    let missing = || CleftError::Training("the objective does not use the embeddings".into());
    let image_grad = all_image.grad_remove(&mut grads).ok_or_else(missing)?;
    let text_grad = all_text.grad_remove(&mut grads).ok_or_else(missing)?;
    let mut objective_grads = GradientsParams::from_grads(grads, model);
    if gather && world > 1 {
        // Each block's gradient of the objective's own parameters is 1/world of theirs.
        model.visit(&mut ScaleGrads {
            grads: &mut objective_grads,
            factor: Tensor::<1>::from_floats([share as f32], &image_grad.device()),
        });
    }
    accumulator.accumulate(model, objective_grads);
    let mut batch = BatchObjective {
        loss: output.loss.inner(),
        metrics: output.metrics,
        image_grad,
        text_grad,
        offset,
    };
    if let Some(replication) = replication.filter(|_| gather) {
        sum_blocks(replication, &mut batch)?;
    }
    Ok(batch)
}

/// The replicas' block gradients, losses and metrics, averaged in one all-reduce.
fn sum_blocks(replication: &mut Replication<'_>, batch: &mut BatchObjective) -> Result<()> {
    let share = 1.0 / replication.world_size() as f64;
    let [image_dims, text_dims] = [batch.image_grad.dims(), batch.text_grad.dims()];
    let mut parts = vec![
        batch
            .image_grad
            .clone()
            .reshape([image_dims[0] * image_dims[1]]),
        batch
            .text_grad
            .clone()
            .reshape([text_dims[0] * text_dims[1]]),
        batch.loss.clone(),
    ];
    parts.extend(batch.metrics.iter().map(|(_, value)| value.clone()));
    let mut means = replication
        .sum_tensors(parts)?
        .into_iter()
        .map(|sum| sum * share);
    let short = || CleftError::Training("the all-reduce returned fewer parts than sent".into());
    let mut next = || means.next().ok_or_else(short);
    batch.image_grad = next()?.reshape(image_dims);
    batch.text_grad = next()?.reshape(text_dims);
    batch.loss = next()?;
    for (_, value) in batch.metrics.iter_mut() {
        *value = next()?;
    }
    Ok(())
}

/// Stage 1 on `model` (the training device's): the `[train]` recipe through the driver, from
/// `train.batch_size × train.grad_accumulation` samples per optimiser step. Rank 0 (or a lone
/// device) writes the run directory's `config.toml` on a fresh start, metrics and checkpoints.
pub(crate) fn train_stage1(
    model: ClipModel,
    config: &ExperimentConfig,
    dataset: Arc<dyn ImageTextDataset>,
    device: &Device,
    mut replication: Option<Replication<'_>>,
    options: &TrainOptions,
) -> Result<Finished<ClipModel>> {
    let train = &config.train;
    validate(train)?;
    let (rank, world_size) = replication
        .as_ref()
        .map_or((0, 1), |r| (r.rank(), r.world_size()));
    if !train.batch_size.is_multiple_of(world_size) {
        return Err(CleftError::Invalid(format!(
            "train.batch_size = {} (the global batch) cannot be split evenly over {world_size} \
             replicas",
            train.batch_size
        )));
    }
    let plan = LoopPlan {
        run_dir: config.output.dir.clone(),
        schedule: Schedule::from(train),
        checkpoint_every: train.checkpoint_every,
        keep_checkpoints: train.keep_checkpoints,
        log_every: train.log_every,
        grad_clip_norm: train.grad_clip_norm,
        samples_per_step: (train.batch_size * train.grad_accumulation) as f64,
        label: "",
    };
    if !options.resume && rank == 0 {
        write_atomic(
            &plan.run_dir.join("config.toml"),
            config.to_toml()?.as_bytes(),
        )?;
    }
    let start = driver::start(
        &plan,
        model,
        |model| optimizer_for(model, train),
        options.resume,
        replication.as_mut(),
    )?;
    let loader = Loader::new(
        dataset.clone(),
        start.model.text.tokenizer(),
        LoaderOptions {
            batch_size: train.batch_size,
            workers: train.workers,
            prefetch: train.prefetch,
            seed: train.seed,
            max_len: start.model.text.max_len(),
            shard: Shard {
                rank,
                count: world_size,
            },
        },
        start.state,
    )?;
    let mut step = ContrastiveStep {
        loader,
        dataset: (rank == 0).then_some(dataset),
        micro_batches: train.grad_accumulation,
        seed: train.seed,
        device: device.clone(),
    };
    driver::run(&plan, start, &mut step, replication, options, device)
}

fn validate(train: &TrainConfig) -> Result<()> {
    if train.batch_size == 0 || train.grad_accumulation == 0 {
        return Err(CleftError::Invalid(
            "train.batch_size and train.grad_accumulation must be at least 1".into(),
        ));
    }
    if train.grad_clip_norm.is_some_and(|max| max <= 0.0) {
        return Err(CleftError::Invalid(
            "train.grad_clip_norm must be positive".into(),
        ));
    }
    Ok(())
}
