//! # cleft-collectives
//!
//! Communication between data-parallel training replicas, apart from the model code:
//!
//! - [`Collective`]: what the trainer needs between replicas (sum, gather, broadcast, barrier,
//!   abort), over host `f32` buffers, with a device-tensor sum that a GPU group overrides;
//! - [`LocalGroup`]: in-process replicas, one thread each;
//! - [`nccl::NcclCollective`]: in-process replicas on several CUDA GPUs (burn's NCCL
//!   all-reduce; feature `cuda`), chosen per device by [`Interconnect`];
//! - `mpi::MpiCollective` (feature `mpi`): one process per rank under `mpirun`, on one machine or
//!   many.

mod collective;
mod interconnect;
mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod nccl;

pub use collective::{Collective, host_f32, unfinished_reason};
pub use interconnect::Interconnect;
pub use local::{LocalCollective, LocalGroup};
