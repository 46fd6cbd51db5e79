//! The one training loop: resume, interrupt, step, all-reduce, clip, optimise, log, checkpoint.
//!
//! Both stages and every launcher use it: a stage supplies its step ([`StageStep`]: one
//! optimiser step's loss and gradients, tensors only) and its plan ([`LoopPlan`]); a data-parallel
//! replica passes its [`Replication`]. Nothing is read back inside a step but what the
//! collective needs (the interrupt flag travels with the gradients); step scalars are read back
//! once per `log_every` steps and at each checkpoint.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use cleft_core::error::{CleftError, Result};

use crate::checkpoint::{
    checkpoints_dir, list_checkpoints, load_checkpoint, save_checkpoint, step_dir_name,
};
use crate::metrics::StepMetrics;
use crate::optim::{ScaleGrads, gradient_squares};
use crate::options::{TrainEnd, TrainOptions};
use crate::replication::Replication;
use crate::schedule::{Schedule, learning_rate};
use crate::state::TrainState;
use crate::step_log::{PendingStep, StepLog, progress_bar};

/// One optimiser step's worth of work, still on the device.
pub(crate) struct StepOutput {
    /// The step's loss, `[1]`, detached.
    pub(crate) loss: Tensor<1>,
    /// Gradients of this replica's share of the loss (summed over replicas by the driver).
    pub(crate) grads: GradientsParams,
    /// The objective's metrics, `[1]` each.
    pub(crate) metrics: Vec<(String, Tensor<1>)>,
    /// Time spent waiting for the loader.
    pub(crate) data_wait: Duration,
    /// Whether `loss` and `metrics` are already the whole group's (a gathered objective);
    /// otherwise they are this replica's and the driver averages them over replicas.
    pub(crate) global: bool,
}

/// A stage's step, run by [`run`].
pub(crate) trait StageStep<M> {
    /// Loss and gradients of optimiser step `step` (the loader position goes into `state`).
    fn step(
        &mut self,
        model: &mut M,
        step: usize,
        state: &mut TrainState,
        replication: Option<&mut Replication<'_>>,
    ) -> Result<StepOutput>;

    /// Files the run directory keeps next to each checkpoint (rank 0 writes them).
    fn keep_files(&self, _run_dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// What the loop runs: where, how long, how often it logs and checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct LoopPlan {
    /// The stage's run directory (metrics, checkpoints).
    pub(crate) run_dir: PathBuf,
    /// The learning-rate schedule (its `steps` is the run's length).
    pub(crate) schedule: Schedule,
    /// Checkpoint every this many steps (and at the end).
    pub(crate) checkpoint_every: usize,
    /// Checkpoints kept.
    pub(crate) keep_checkpoints: usize,
    /// Read step scalars back and log them every this many steps.
    pub(crate) log_every: usize,
    /// Clip the global gradient norm to this.
    pub(crate) grad_clip_norm: Option<f64>,
    /// Samples per optimiser step over all replicas and micro-batches.
    pub(crate) samples_per_step: f64,
    /// Prefix of the progress message (e.g. "stage 2 ").
    pub(crate) label: &'static str,
}

/// Where a stage starts: fresh, or from the newest checkpoint of its run directory.
pub(crate) struct Start<M> {
    pub(crate) model: M,
    pub(crate) optimizer: ModuleOptimizer,
    pub(crate) state: TrainState,
    pub(crate) last_checkpoint: Option<PathBuf>,
}

/// How the loop ended.
pub(crate) struct Finished<M> {
    pub(crate) model: M,
    /// Per-step metrics of the whole run (rank 0; empty on the other replicas).
    pub(crate) history: Vec<StepMetrics>,
    pub(crate) end: TrainEnd,
}

/// Starts afresh (replicas take rank 0's trainable weights) or, with `resume`, from the newest
/// checkpoint in `plan.run_dir`, which must have trained on as many replicas.
pub(crate) fn start<M: Module>(
    plan: &LoopPlan,
    mut model: M,
    make_optimizer: impl FnOnce(&M) -> ModuleOptimizer,
    resume: bool,
    replication: Option<&mut Replication<'_>>,
) -> Result<Start<M>> {
    let world_size = replication.as_ref().map_or(1, |r| r.world_size());
    let resume_from = match resume {
        true => list_checkpoints(&plan.run_dir)?.pop().map(|(_, dir)| dir),
        false => None,
    };
    let (optimizer, state) = match &resume_from {
        Some(dir) => load_checkpoint(dir, &mut model, make_optimizer)?,
        None => (make_optimizer(&model), TrainState::fresh(world_size)),
    };
    if state.world_size != world_size {
        let place = resume_from.as_deref().unwrap_or(&plan.run_dir);
        return Err(CleftError::Training(format!(
            "{}: the run trained on {} replica(s); resume it with the same number (now \
             {world_size})",
            place.display(),
            state.world_size
        )));
    }
    if let (Some(replication), None) = (replication, &resume_from) {
        model = replication.broadcast_trainable(model)?;
    }
    Ok(Start {
        model,
        optimizer,
        state,
        last_checkpoint: resume_from,
    })
}

/// Runs `stage` from `start` to `plan.schedule.steps`, or until `options` asks to stop
/// (checkpointing first). Rank 0 (or a lone device) logs and checkpoints; replicas stop
/// together, the interrupt flag travelling with a step's gradients.
pub(crate) fn run<M: Module, S: StageStep<M>>(
    plan: &LoopPlan,
    start: Start<M>,
    stage: &mut S,
    mut replication: Option<Replication<'_>>,
    options: &TrainOptions,
    device: &Device,
) -> Result<Finished<M>> {
    let Start {
        mut model,
        mut optimizer,
        mut state,
        mut last_checkpoint,
    } = start;
    let leader = replication.as_ref().is_none_or(|r| r.rank() == 0);
    let steps = plan.schedule.steps;
    let progress = progress_bar(steps, state.step, options.progress && leader);
    let (label, samples) = (plan.label, plan.samples_per_step);
    let mut log = match leader {
        true => Some(StepLog::open(
            &plan.run_dir,
            state.step,
            move |m: &StepMetrics| {
                format!(
                    "{label}loss {:.4}  lr {:.2e}  {:.1} samples/s  data wait {:.0}%",
                    m.loss,
                    m.lr,
                    m.samples_per_sec,
                    100.0 * m.data_wait_s * m.samples_per_sec / samples
                )
            },
        )?),
        false => None,
    };
    let mut stop = false;
    while state.step < steps {
        if replication.is_none() {
            stop = options.interrupted();
        }
        if stop {
            let mut checkpoint = checkpoints_dir(&plan.run_dir).join(step_dir_name(state.step));
            if let Some(log) = log.as_mut() {
                log.flush(&last_checkpoint, &progress)?;
                checkpoint = save_checkpoint(
                    &plan.run_dir,
                    &state,
                    &model,
                    &optimizer,
                    plan.keep_checkpoints,
                )?;
                stage.keep_files(&plan.run_dir)?;
            }
            progress
                .abandon_with_message(format!("interrupted; checkpoint {}", checkpoint.display()));
            return Ok(Finished {
                model,
                history: log.map(|log| log.history).unwrap_or_default(),
                end: TrainEnd::Interrupted { checkpoint },
            });
        }
        let started = Instant::now();
        let step = state.step;
        let lr = learning_rate(plan.schedule, step);
        let output = stage.step(&mut model, step, &mut state, replication.as_mut())?;
        let StepOutput {
            mut loss,
            mut grads,
            mut metrics,
            data_wait,
            global,
        } = output;
        if let Some(replication) = replication.as_mut() {
            // The interrupt flag, and a replica's own loss and metrics (their means over
            // replicas are logged), travel with the gradients.
            let flag = f32::from(u8::from(options.interrupted()));
            let mut extra = vec![Tensor::<1>::from_floats([flag], &loss.device())];
            if !global {
                extra.push(loss.clone());
                extra.extend(metrics.iter().map(|(_, value)| value.clone()));
            }
            let summed =
                replication.all_reduce_gradients(&model, &mut grads, Tensor::cat(extra, 0))?;
            stop = summed.clone().slice([0..1]).into_scalar::<f32>() > 0.0;
            if !global {
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
        let grad_squares = gradient_squares(&model, &grads, device);
        if let Some(max_norm) = plan.grad_clip_norm {
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
            data_wait: data_wait.as_secs_f64(),
            samples,
        });
        let checkpoint_now = state.step % plan.checkpoint_every.max(1) == 0 || state.step == steps;
        if checkpoint_now || state.step % plan.log_every.max(1) == 0 {
            log.flush(&last_checkpoint, &progress)?;
        }
        if checkpoint_now {
            stage.keep_files(&plan.run_dir)?;
            last_checkpoint = Some(save_checkpoint(
                &plan.run_dir,
                &state,
                &model,
                &optimizer,
                plan.keep_checkpoints,
            )?);
        }
    }
    progress.finish();
    Ok(Finished {
        model,
        history: log.map(|log| log.history).unwrap_or_default(),
        end: TrainEnd::Completed,
    })
}
