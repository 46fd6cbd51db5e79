//! `cleft train --distributed mpi`: this process as one rank of an MPI job.

use anyhow::Result;
use cleft_core::ExperimentConfig;
use cleft_train::Experiment;
#[cfg(feature = "mpi")]
use cleft_train::Launcher;

/// Builds this process's rank of the MPI job started by `mpirun`: on GPU `K + node-local rank`
/// of a `cuda:K` / `tch-cuda:K` device, or on the CPU; [`Experiment::train`] then trains either
/// stage on its shard of every batch.
#[cfg(feature = "mpi")]
pub(crate) fn rank_experiment<'a>(
    config: &'a ExperimentConfig,
    device: &str,
) -> Result<Experiment<'a>> {
    use cleft_collectives::Collective;
    use cleft_collectives::mpi::MpiCollective;
    use cleft_core::device::{open_device, replica_device_name};

    let mut collective = MpiCollective::init()?;
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
    let launcher = Launcher::Rank {
        device,
        collective: Box::new(collective),
    };
    Ok(Experiment::build(config, launcher)?)
}

/// Without the `mpi` feature: an error saying how to get it.
#[cfg(not(feature = "mpi"))]
pub(crate) fn rank_experiment<'a>(
    _config: &'a ExperimentConfig,
    _device: &str,
) -> Result<Experiment<'a>> {
    anyhow::bail!(
        "this cleft was built without MPI: build it with `--features mpi` (needs the system's \
         MPI and libclang, e.g. Debian's libopenmpi-dev and libclang-dev)"
    )
}
