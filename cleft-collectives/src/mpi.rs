//! [`MpiCollective`]: cleft's [`Collective`] over MPI, one process per replica, on one machine
//! or many (`mpirun -np N cleft train --config X --distributed mpi`). Buffers are the host `f32`
//! slices the trainer stages; every operation is the matching MPI collective on
//! `MPI_COMM_WORLD` (`MPI_Allreduce` with `MPI_SUM`, `MPI_Allgather`, `MPI_Bcast`,
//! `MPI_Barrier`). A rank that fails prints its rank and error and calls `MPI_Abort`, which
//! stops every rank of the job.
//!
//! Built with the system's MPI (Open MPI 4.1 or MPICH 4: Debian's `libopenmpi-dev`; the
//! bindings are generated with `libclang-dev`).

use cleft_core::error::{CleftError, Result};
use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};

use crate::collective::{Collective, unfinished_reason};

/// The error code a failing rank passes to `MPI_Abort`, and so `mpirun`'s exit status: set apart
/// from a process's plain error exit (1).
pub const ABORT_CODE: i32 = 3;

/// This process's rank of the MPI job (`MPI_COMM_WORLD`). MPI is initialised by
/// [`MpiCollective::init`] and finalised when the value is dropped.
pub struct MpiCollective {
    // Dropping the universe finalises MPI; it outlives every operation.
    _universe: Universe,
    rank: usize,
    world_size: usize,
    finished: bool,
}

impl std::fmt::Debug for MpiCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiCollective")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .finish()
    }
}

/// The world communicator (a handle, not a resource: made per operation, so that the collective
/// can move between threads; MPI is initialised with `MPI_THREAD_SERIALIZED`).
fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

impl MpiCollective {
    /// Initialises MPI (once per process) and joins the job started by `mpirun`.
    pub fn init() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| {
                CleftError::Training("MPI is already initialised in this process".into())
            })?;
        if threading < Threading::Serialized {
            return Err(CleftError::Training(format!(
                "the MPI library offers thread level {threading:?}; cleft needs Serialized \
                 (calls from one thread at a time, not always the main one)"
            )));
        }
        let world = universe.world();
        let (rank, world_size) = (world.rank(), world.size());
        Ok(Self {
            _universe: universe,
            rank: usize::try_from(rank).unwrap_or_default(),
            world_size: usize::try_from(world_size).unwrap_or(1),
            finished: false,
        })
    }

    /// The node-local rank that `mpirun` exported (Open MPI `OMPI_COMM_WORLD_LOCAL_RANK`,
    /// MPICH / Hydra `MPI_LOCALRANKID`): which GPU of its machine a rank takes.
    pub fn local_rank() -> Option<usize> {
        ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"]
            .iter()
            .find_map(|name| std::env::var(name).ok()?.parse().ok())
    }

    fn check_length(&self, what: &str, length: usize) -> Result<()> {
        // Every rank must pass the same length; MPI cannot tell, so compare first (one small
        // all-reduce of the min and max).
        let mut bounds = [length as f64, -(length as f64)];
        let mut reduced = [0.0f64; 2];
        world().all_reduce_into(&bounds[..], &mut reduced[..], SystemOperation::min());
        bounds.copy_from_slice(&reduced);
        if bounds[0] != -bounds[1] {
            return Err(CleftError::Training(format!(
                "{what}: the ranks pass between {} and {} values (rank {} passes {length}): the \
                 replicas run different models or configs",
                bounds[0], -bounds[1], self.rank
            )));
        }
        Ok(())
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&mut self, buffer: &mut [f32]) -> Result<()> {
        self.check_length("all-reduce", buffer.len())?;
        let mut sum = vec![0.0f32; buffer.len()];
        world().all_reduce_into(&buffer[..], &mut sum[..], SystemOperation::sum());
        buffer.copy_from_slice(&sum);
        Ok(())
    }

    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        self.check_length("all-gather", local.len())?;
        let mut all = vec![0.0f32; local.len() * self.world_size];
        world().all_gather_into(local, &mut all[..]);
        Ok(all)
    }

    fn broadcast(&mut self, buffer: &mut [f32], root: usize) -> Result<()> {
        if root >= self.world_size {
            return Err(CleftError::Invalid(format!(
                "broadcast from rank {root} in a job of {}",
                self.world_size
            )));
        }
        self.check_length("broadcast", buffer.len())?;
        let root = i32::try_from(root).unwrap_or_default();
        world().process_at_rank(root).broadcast_into(buffer);
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        world().barrier();
        Ok(())
    }

    /// Prints the rank and error, then `MPI_Abort`: every rank of the job stops (never returns).
    fn abort(&mut self, error: &str) {
        eprintln!(
            "cleft: rank {} of {} failed: {error}; stopping every rank",
            self.rank, self.world_size
        );
        world().abort(ABORT_CODE)
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for MpiCollective {
    fn drop(&mut self) {
        if !self.finished {
            self.abort(unfinished_reason());
        }
    }
}
