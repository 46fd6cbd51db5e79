//! In-process replicas on several CUDA GPUs of one machine: device tensors (the gradient buckets
//! and the embedding gradients of the gathered loss) are summed on the GPUs by burn's NCCL
//! all-reduce (`burn::tensor::distributed::all_reduce`, which cubecl-cuda runs as
//! `ncclAllReduce` on a communicator of the group's devices); host buffers (gathered embeddings,
//! broadcast weights, barriers) go through a [`LocalGroup`], since the replicas share one
//! process's memory.
//!
//! burn's `DistributedContext` is not used: it starts a gradient-sync server that autodiff feeds
//! parameter by parameter during the backward pass, registered in process-wide state keyed by
//! backend type (two groups in one process would share it). The trainer instead sums flattened
//! buckets after the backward pass, through the same NCCL operation that server calls.
//!
//! Failure: NCCL cannot wake a rank blocked in a collective call when a peer fails, so every
//! device all-reduce starts with a host barrier of the [`LocalGroup`], which fails with the
//! failing rank's error; ranks enter NCCL only when all of them have arrived.

use burn::prelude::*;
use burn::tensor::distributed::{ReduceOperation, all_reduce};

use cleft_core::error::{CleftError, Result};

use crate::collective::Collective;
use crate::local::LocalCollective;

/// One rank of a group of CUDA replicas (see the [module docs](self)).
///
/// ```no_run
/// # #[cfg(feature = "cuda")] {
/// use cleft_collectives::LocalGroup;
/// use cleft_collectives::nccl::NcclCollective;
/// use burn::prelude::Device;
/// let devices = vec![Device::cuda(0), Device::cuda(1)];
/// let ranks: Vec<NcclCollective> = LocalGroup::new(2)
///     .ranks()
///     .into_iter()
///     .map(|rank| NcclCollective::new(rank, devices.clone()).unwrap())
///     .collect();
/// # }
/// ```
#[derive(Debug)]
pub struct NcclCollective {
    host: LocalCollective,
    /// Rank `r`'s GPU is `devices[r]` (without autodiff).
    devices: Vec<Device>,
}

impl NcclCollective {
    /// Rank `host.rank()` of a group whose rank `r` drives the CUDA device `devices[r]`.
    ///
    /// # Errors
    /// A device count other than the group's size, or a build without the `cuda` feature.
    pub fn new(host: LocalCollective, devices: Vec<Device>) -> Result<Self> {
        if !cfg!(feature = "cuda") {
            return Err(CleftError::Device(
                "NCCL collectives need CUDA devices: build with the `cuda` cargo feature".into(),
            ));
        }
        if devices.len() != host.world_size() {
            return Err(CleftError::Device(format!(
                "an NCCL group of {} ranks was given {} devices",
                host.world_size(),
                devices.len()
            )));
        }
        let devices = devices.into_iter().map(Device::inner).collect();
        Ok(Self { host, devices })
    }
}

impl Collective for NcclCollective {
    fn rank(&self) -> usize {
        self.host.rank()
    }

    fn world_size(&self) -> usize {
        self.host.world_size()
    }

    /// Sums on the GPUs; every rank gets the same values (NCCL's all-reduce leaves one result on
    /// all ranks).
    fn all_reduce_sum_tensor(&mut self, tensor: Tensor<1>) -> Result<Tensor<1>> {
        let own = &self.devices[self.rank()];
        if tensor.device() != *own {
            return Err(CleftError::Device(format!(
                "NCCL rank {} drives {own:?} but was given a tensor on {:?}",
                self.rank(),
                tensor.device()
            )));
        }
        self.host.barrier()?;
        Ok(all_reduce(tensor, ReduceOperation::Sum, self.devices.clone()).resolve())
    }

    fn all_reduce_sum(&mut self, buffer: &mut [f32]) -> Result<()> {
        self.host.all_reduce_sum(buffer)
    }

    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        self.host.all_gather(local)
    }

    fn broadcast(&mut self, buffer: &mut [f32], root: usize) -> Result<()> {
        self.host.broadcast(buffer, root)
    }

    fn barrier(&mut self) -> Result<()> {
        self.host.barrier()
    }

    fn abort(&mut self, error: &str) {
        self.host.abort(error)
    }

    fn finish(&mut self) {
        self.host.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalGroup;

    /// Without the `cuda` feature the group is refused by name (no runtime panic in burn's
    /// dispatch at the first gradient all-reduce).
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_build_without_cuda_refuses_an_nccl_group() {
        let rank = LocalGroup::new(1).ranks().pop().unwrap();
        let error = NcclCollective::new(rank, vec![Device::default()]).unwrap_err();
        assert!(
            error.to_string().contains("`cuda` cargo feature"),
            "{error}"
        );
    }
}
