//! The stage-1 training loop: checkpointed, resumable bit-for-bit, stopping cleanly on faults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::run_files::write_run_files;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::checkpoint::{
    checkpoints_dir, list_checkpoints, load_checkpoint, save_checkpoint, save_safetensors,
    step_dir_name, write_atomic,
};
use crate::experiment::Experiment;
use crate::loader::{Loader, LoaderOptions, Shard};
use crate::metrics::StepMetrics;
use crate::micro_batch::accumulate_gradients;
use crate::plots::plot_history;
use crate::replication::Replication;
use crate::schedule::learning_rate;
use crate::state::TrainState;
pub(crate) use crate::step_log::{PendingStep, StepLog, progress_bar};
use cleft_core::config::{ExperimentConfig, TrainConfig};
use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::registry::Split;

/// How a training run starts, reports progress and can be stopped.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Continue from the newest checkpoint in the run directory instead of starting afresh.
    pub resume: bool,
    /// When set (e.g. by a Ctrl-C handler), the run checkpoints and returns
    /// [`TrainEnd::Interrupted`] before its next step.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl TrainOptions {
    /// Whether an interrupt was requested (checkpoint and stop before the next step).
    pub fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainEnd {
    /// Every configured step ran; final weights are in `model.safetensors`.
    Completed,
    /// Stopped on request after checkpointing; resume with [`TrainOptions::resume`].
    Interrupted {
        /// The checkpoint written on the way out.
        checkpoint: PathBuf,
    },
}

/// Result of [`train_contrastive`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained model (training device, autodiff enabled).
    pub model: ClipModel,
    /// Per-step metrics of the whole run (including steps before a resume).
    pub history: Vec<StepMetrics>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Completed or interrupted.
    pub end: TrainEnd,
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
    let mut collector = NoDecayCollector {
        path: Vec::new(),
        ids: Vec::new(),
    };
    model.visit(&mut collector);
    adamw(config.weight_decay).init().with_group(
        ParamGroup::from_ids(collector.ids),
        adamw(0.0).build(),
        None,
    )
}

/// Sum of squared gradient entries, accumulated on the device.
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// Multiplies every gradient by a device scalar `[1]`.
pub(crate) struct ScaleGrads<'a> {
    /// The gradients, scaled in place.
    pub(crate) grads: &'a mut GradientsParams,
    /// The factor, `[1]`.
    pub(crate) factor: Tensor<1>,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let factor = self.factor.clone().reshape([1; D]);
            self.grads.register(param.id, grad * factor);
        }
    }
}

/// Sum of the squared gradients of `model`'s parameters, `[1]`, on the device (no read-back).
pub fn gradient_squares<M: Module>(
    model: &M,
    grads: &GradientsParams,
    device: &Device,
) -> Tensor<1> {
    let mut visitor = GradSquares { grads, total: None };
    model.visit(&mut visitor);
    visitor
        .total
        .map(Tensor::inner)
        .unwrap_or_else(|| Tensor::zeros([1], &device.clone().inner()))
}

/// Global L2 norm of the gradients of `model`'s parameters, read back to the host.
pub fn gradient_norm<M: Module>(model: &M, grads: &GradientsParams, device: &Device) -> f64 {
    gradient_squares(model, grads, device)
        .into_scalar::<f64>()
        .sqrt()
}

/// Trains `config` on `device` (stage 1): builds an [`Experiment`] and trains it.
///
/// Writes into the run directory: the resolved `config.toml`, per-step `metrics.jsonl` and
/// `metrics.csv`, resumable checkpoints every `train.checkpoint_every` steps and at the end
/// (`checkpoints/step-N/`, newest `train.keep_checkpoints` kept), the final `model.safetensors`,
/// the PEFT adapter alone in HF PEFT layout (`adapter/`), and `loss.png` / `lr.png`. With
/// [`TrainOptions::resume`] the run continues from its newest checkpoint and produces exactly the
/// losses an uninterrupted run would (on the same machine and build).
///
/// A non-finite loss or gradient norm stops training with an error naming the step; checkpoints
/// already written stay valid.
pub fn train_contrastive(
    config: &ExperimentConfig,
    device: &Device,
    options: &TrainOptions,
) -> Result<TrainOutcome> {
    let mut experiment = Experiment::build(config, device)?;
    let (history, end) = experiment.train(options)?;
    Ok(TrainOutcome {
        model: experiment.into_model(),
        history,
        run_dir: config.output.dir.clone(),
        end,
    })
}

/// Stage 1 on an experiment's model, in place; a replica of a data-parallel group reports its
/// failure to the other replicas.
pub(crate) fn train_stage1(
    experiment: &mut Experiment,
    options: &TrainOptions,
) -> Result<(Vec<StepMetrics>, TrainEnd)> {
    let Some(mut collective) = experiment.take_collective() else {
        return run_stage1(experiment, options, None);
    };
    let gather = experiment
        .config()
        .objective
        .gather()
        .unwrap_or(collective.world_size() > 1);
    let result = run_stage1(
        experiment,
        options,
        Some(Replication::new(collective.as_mut(), gather)),
    );
    match &result {
        Ok(_) => collective.finish(),
        Err(error) => collective.abort(&error.to_string()),
    }
    result
}

fn run_stage1(
    experiment: &mut Experiment,
    options: &TrainOptions,
    mut replication: Option<Replication<'_>>,
) -> Result<(Vec<StepMetrics>, TrainEnd)> {
    let config = experiment.config();
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
    // Rank 0 alone writes the run directory; every replica reads it to resume.
    let leader = rank == 0;
    let run_dir = config.output.dir.clone();
    if !options.resume && leader {
        write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;
    }
    let device = experiment.device().clone();
    let mut model = experiment.model().clone();
    let resume_from = if options.resume {
        list_checkpoints(&run_dir)?.pop().map(|(_, dir)| dir)
    } else {
        None
    };
    let (mut optimizer, mut state) = match &resume_from {
        Some(dir) => load_checkpoint(dir, &mut model, |model| optimizer_for(model, train))?,
        None => (optimizer_for(&model, train), TrainState::fresh(world_size)),
    };
    if state.world_size != world_size {
        return Err(CleftError::Training(format!(
            "{}: the run trained on {} replica(s); resume it with the same number (now {world_size})",
            resume_from.as_ref().map_or_else(
                || run_dir.display().to_string(),
                |d| d.display().to_string()
            ),
            state.world_size
        )));
    }
    if let (Some(replication), None) = (replication.as_mut(), &resume_from) {
        model = replication.broadcast_trainable(model)?;
    }
    let mut last_checkpoint = resume_from;

    let dataset: Arc<dyn ImageTextDataset> = Arc::from(experiment.dataset(Split::Train)?);
    let mut loader = Loader::new(
        dataset.clone(),
        model.text.tokenizer(),
        LoaderOptions {
            batch_size: train.batch_size,
            workers: train.workers,
            prefetch: train.prefetch,
            seed: train.seed,
            max_len: model.text.max_len(),
            shard: Shard {
                rank,
                count: world_size,
            },
        },
        state,
    )?;
    let progress = progress_bar(train.steps, state.step, options.progress && leader);
    let samples = (train.batch_size * train.grad_accumulation) as f64;
    let mut log = match leader {
        true => Some(StepLog::open(
            &run_dir,
            state.step,
            move |m: &StepMetrics| {
                format!(
                    "loss {:.4}  lr {:.2e}  {:.1} samples/s  data wait {:.0}%",
                    m.loss,
                    m.lr,
                    m.samples_per_sec,
                    100.0 * m.data_wait_s * m.samples_per_sec / samples
                )
            },
        )?),
        false => None,
    };
    // Replicas stop together: the interrupt flag travels with the gradients of a step and is
    // acted on before the next one.
    let mut stop = false;

    while state.step < train.steps {
        if replication.is_none() {
            stop = options.interrupted();
        }
        if stop {
            let mut checkpoint = checkpoints_dir(&run_dir).join(step_dir_name(state.step));
            if let Some(log) = log.as_mut() {
                log.flush(&last_checkpoint, &progress)?;
                checkpoint =
                    save_checkpoint(&run_dir, &state, &model, &optimizer, train.keep_checkpoints)?;
                write_run_files(dataset.as_ref(), &run_dir)?;
            }
            progress
                .abandon_with_message(format!("interrupted; checkpoint {}", checkpoint.display()));
            experiment.set_model(model);
            let history = log.map(|log| log.history).unwrap_or_default();
            return Ok((history, TrainEnd::Interrupted { checkpoint }));
        }
        let started = Instant::now();
        let step = state.step;
        let lr = learning_rate(train, step);
        cleft_core::peft::set_dropout_seeds(&mut model.text, train.seed, step);
        let micro = accumulate_gradients(
            &model,
            &mut loader,
            &mut state,
            config,
            &device,
            replication.as_mut(),
        )?;
        let mut grads = micro.grads;
        let mut metrics = micro.metrics;
        let mut loss = micro.loss;
        if let Some(replication) = replication.as_mut() {
            // The interrupt flag, and without gathering each replica's own loss and metrics
            // (their means over replicas are logged), travel with the gradients.
            let flag = f32::from(u8::from(options.interrupted()));
            let host = loss.device();
            let mut extra = vec![Tensor::<1>::from_floats([flag], &host)];
            if !replication.gather {
                extra.push(loss.clone());
                extra.extend(metrics.iter().map(|(_, value)| value.clone()));
            }
            let summed =
                replication.all_reduce_gradients(&model, &mut grads, Tensor::cat(extra, 0))?;
            stop = summed.clone().slice([0..1]).into_scalar::<f32>() > 0.0;
            if !replication.gather {
                let share = 1.0 / replication.world_size() as f64;
                loss = summed.clone().slice([1..2]) * share;
                for (index, (_, value)) in metrics.iter_mut().enumerate() {
                    *value = summed.clone().slice([index + 2..index + 3]) * share;
                }
            }
            let comm = replication.take_comm_time().as_secs_f64();
            metrics.push((
                "comm_s".into(),
                Tensor::from_floats([comm as f32], &device.clone().inner()),
            ));
        }
        let grad_squares = gradient_squares(&model, &grads, &device);
        if let Some(max_norm) = train.grad_clip_norm {
            // factor = min(1, max / norm), on the device: no read-back inside the step.
            let factor = (grad_squares
                .clone()
                .sqrt()
                .clamp_min(f64::MIN_POSITIVE)
                .recip()
                * max_norm)
                .clamp_max(1.0);
            model.visit(&mut ScaleGrads {
                grads: &mut grads,
                factor,
            });
        }
        model = optimizer.step(lr, model, grads);
        state.step += 1;
        progress.inc(1);
        let checkpoint_now =
            state.step % train.checkpoint_every.max(1) == 0 || state.step == train.steps;
        let Some(log) = log.as_mut() else {
            continue;
        };
        log.push(PendingStep {
            step,
            lr,
            loss,
            grad_squares,
            metrics,
            elapsed: started.elapsed().as_secs_f64(),
            data_wait: micro.data_wait.as_secs_f64(),
            samples: (train.batch_size * train.grad_accumulation) as f64,
        });
        if checkpoint_now || state.step % train.log_every.max(1) == 0 {
            log.flush(&last_checkpoint, &progress)?;
        }
        if checkpoint_now {
            write_run_files(dataset.as_ref(), &run_dir)?;
            last_checkpoint = Some(save_checkpoint(
                &run_dir,
                &state,
                &model,
                &optimizer,
                train.keep_checkpoints,
            )?);
        }
    }
    progress.finish();
    let Some(log) = log else {
        experiment.set_model(model);
        return Ok((Vec::new(), TrainEnd::Completed));
    };
    save_safetensors(&model, &run_dir.join("model.safetensors"))?;
    experiment.set_model(model);
    if experiment.adapter().is_some() {
        experiment.export_adapter(&run_dir.join("adapter"))?;
    }
    plot_history(&log.history, &run_dir)?;
    Ok((log.history, TrainEnd::Completed))
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

/// The newest checkpoint of a run directory, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(run_dir)?.pop().map(|(_, dir)| dir))
}
