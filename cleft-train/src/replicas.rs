//! In-process data-parallel training: one thread per replica, each with its own model on its own
//! device (several GPUs of one machine, or CPU replicas), gradients summed through a
//! [`LocalGroup`] (the host) or on the GPUs with NCCL ([`Interconnect`]). The global batch (`train.batch_size`) is split over the replicas; the
//! objective sees all of it (`[objective] gather`, on by default), so N replicas train what one
//! device with the whole batch would.

use burn::prelude::*;

use cleft_collectives::{Interconnect, LocalGroup};
use cleft_core::config::ExperimentConfig;
use cleft_core::error::{CleftError, Result};

use crate::experiment::Experiment;
use crate::metrics::StepMetrics;
use crate::trainer::{TrainEnd, TrainOptions};

/// Rank 0's view of a finished (or interrupted) data-parallel run.
#[derive(Debug)]
pub struct ReplicatedRun<'a> {
    /// Rank 0's experiment, its model trained (every replica holds the same weights).
    pub experiment: Experiment<'a>,
    /// Per-step metrics (rank 0 logs them; `comm_s` is its time in collective operations).
    pub history: Vec<StepMetrics>,
    /// Completed or interrupted.
    pub end: TrainEnd,
}

/// Trains `config` (stage 1) on one replica per device, in this process.
///
/// Rank `r` runs on `devices[r]`, reads rows `r·b .. (r+1)·b` of every global batch
/// (`b = train.batch_size / devices.len()`) and averages gradients with the others; rank 0 alone
/// writes the run directory (config, metrics, checkpoints, plots). A checkpoint resumes only with
/// the same number of replicas. When a replica fails, every replica stops and the error names
/// the rank that failed first and why. Gradients are summed through the host
/// ([`Interconnect::Host`]; see [`train_replicas_with`] for NCCL).
pub fn train_replicas<'a>(
    config: &'a ExperimentConfig,
    devices: &[Device],
    options: &TrainOptions,
) -> Result<ReplicatedRun<'a>> {
    train_replicas_with(config, devices, Interconnect::Host, options)
}

/// [`train_replicas`] with device tensors summed over `interconnect` (NCCL for burn's CUDA
/// devices, see [`Interconnect::for_device_name`]).
pub fn train_replicas_with<'a>(
    config: &'a ExperimentConfig,
    devices: &[Device],
    interconnect: Interconnect,
    options: &TrainOptions,
) -> Result<ReplicatedRun<'a>> {
    if devices.is_empty() {
        return Err(CleftError::Invalid(
            "data-parallel training needs at least one device".into(),
        ));
    }
    let group = LocalGroup::new(devices.len());
    let ranks = interconnect.ranks(&group, devices)?;
    let outcomes: Vec<std::thread::Result<Result<Option<ReplicatedRun<'a>>>>> =
        std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(devices.len());
            for (rank, device) in ranks.into_iter().zip(devices) {
                let index = rank.rank();
                let spawned = std::thread::Builder::new()
                    .name(format!("cleft-replica-{index}"))
                    .spawn_scoped(scope, move || {
                        let mut experiment = Experiment::build_replica(config, device, rank)?;
                        let (history, end) = experiment.train(options)?;
                        Ok((index == 0).then_some(ReplicatedRun {
                            experiment,
                            history,
                            end,
                        }))
                    });
                // A thread that cannot start drops its rank: the others stop at their first
                // collective operation.
                handles.push(spawned.map_err(|e| {
                    CleftError::Training(format!("cannot start replica {index}: {e}"))
                }));
            }
            handles
                .into_iter()
                .map(|handle| match handle {
                    Ok(handle) => handle.join(),
                    Err(error) => Ok(Err(error)),
                })
                .collect()
        });
    let mut leader = None;
    let mut panics = Vec::new();
    let mut errors = Vec::new();
    for (rank, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(Ok(run)) => leader = leader.or(run),
            Ok(Err(error)) => errors.push((rank, error)),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".into());
                panics.push((rank, message));
            }
        }
    }
    if errors.is_empty() && panics.is_empty() {
        return leader.ok_or_else(|| CleftError::Training("rank 0 returned no run".into()));
    }
    // The first failure the group saw is the cause; the other replicas' errors only echo it.
    let (rank, error) = match group.failure() {
        Some((rank, error)) => match panics.iter().find(|(r, _)| *r == rank) {
            Some((_, message)) => (rank, format!("panicked: {message}")),
            None => (rank, error),
        },
        None => match errors.into_iter().next() {
            Some((rank, error)) => (rank, error.to_string()),
            None => (panics[0].0, format!("panicked: {}", panics[0].1)),
        },
    };
    Err(CleftError::Training(format!(
        "data-parallel training stopped: replica rank {rank} of {} failed: {error}",
        devices.len()
    )))
}
