//! `cleft train --distributed mpi`: this process as one rank of an MPI job.

use anyhow::Result;
use cleft_core::ExperimentConfig;
use cleft_train::{Experiment, TrainEnd, TrainOptions};

/// Trains stage 1 as this process's rank of the MPI job started by `mpirun`: on GPU
/// `K + node-local rank` of a `cuda:K` / `tch-cuda:K` device, or on the CPU. Rank 0 gets its
/// experiment back (to evaluate and report); the other ranks get `None`.
#[cfg(feature = "mpi")]
pub(crate) fn train_rank<'a>(
    config: &'a ExperimentConfig,
    device: &str,
    options: &TrainOptions,
) -> Result<Option<(Experiment<'a>, TrainEnd)>> {
    use cleft_collectives::Collective;
    use cleft_collectives::mpi::MpiCollective;
    use cleft_core::device::{open_device, replica_device_name};

    let mut collective = MpiCollective::init()?;
    let rank = collective.rank();
    let local = MpiCollective::local_rank().unwrap_or(0);
    let device = match replica_device_name(device, local)
        .and_then(|name| open_device(&name, config.train.precision))
    {
        Ok(device) => device,
        Err(error) => {
            collective.abort(&error.to_string());
            return Err(error.into());
        }
    };
    let mut experiment = Experiment::build_replica(config, &device, Box::new(collective))?;
    let (_, end) = experiment.train(options)?;
    Ok((rank == 0).then_some((experiment, end)))
}

/// Without the `mpi` feature: an error saying how to get it.
#[cfg(not(feature = "mpi"))]
pub(crate) fn train_rank<'a>(
    _config: &'a ExperimentConfig,
    _device: &str,
    _options: &TrainOptions,
) -> Result<Option<(Experiment<'a>, TrainEnd)>> {
    anyhow::bail!(
        "this cleft was built without MPI: build it with `--features mpi` (needs the system's \
         MPI and libclang, e.g. Debian's libopenmpi-dev and libclang-dev)"
    )
}
