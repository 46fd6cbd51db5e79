//! The [`Collective`] interface a data-parallel trainer uses between its replicas.
//!
//! Buffers are host `f32` slices: the trainer stages device tensors through the host, so one
//! interface serves threads in one process ([`LocalGroup`](crate::LocalGroup)) and processes on
//! several machines (MPI, feature `mpi`). Every operation is collective: each rank of the group
//! must call the same operations in the same order with buffers of the same length; a rank that
//! fails calls [`Collective::abort`], and every other rank's pending or next operation returns an
//! error naming it.

use burn::prelude::*;
use burn::tensor::TensorData;

use cleft_core::error::{CleftError, Result};

/// The communication a data-parallel trainer needs between its replicas.
///
/// Results are identical on every rank (sums are taken in rank order), so replicas that apply
/// the same reduced gradients keep bit-identical weights.
pub trait Collective: Send + std::fmt::Debug {
    /// This replica's rank, `0..world_size()`.
    fn rank(&self) -> usize;

    /// Number of replicas in the group.
    fn world_size(&self) -> usize;

    /// Element-wise sum over every rank, in place.
    ///
    /// # Shapes
    /// - `buffer`: `[n]` on every rank (the same `n`); output in place, `[n]`.
    fn all_reduce_sum(&mut self, buffer: &mut [f32]) -> Result<()>;

    /// Element-wise sum of a device tensor over every rank, on the tensor's device.
    ///
    /// The default stages it through the host ([`Collective::all_reduce_sum`]: one read-back,
    /// one upload); a group of devices with their own interconnect (NCCL, see
    /// [`crate::nccl`]) sums it where it lies.
    ///
    /// # Shapes
    /// - `tensor`: `[n]` on every rank (the same `n`); output `[n]`.
    fn all_reduce_sum_tensor(&mut self, tensor: Tensor<1>) -> Result<Tensor<1>> {
        let device = tensor.device();
        let mut host = host_f32(tensor, "a tensor")?;
        self.all_reduce_sum(&mut host)?;
        let length = host.len();
        Ok(Tensor::from_data(TensorData::new(host, [length]), &device))
    }

    /// Every rank's `local`, concatenated in rank order.
    ///
    /// # Shapes
    /// - `local`: `[n]` on every rank (the same `n`); output `[world_size · n]`.
    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>>;

    /// Rank `root`'s `buffer` copied into every rank's.
    ///
    /// # Shapes
    /// - `buffer`: `[n]` on every rank (the same `n`).
    fn broadcast(&mut self, buffer: &mut [f32], root: usize) -> Result<()>;

    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<()>;

    /// Tells every other rank that this one failed with `error`: their pending and later
    /// operations return an error naming this rank and `error`.
    fn abort(&mut self, error: &str);

    /// Marks this rank's work as done after its last operation: dropping it later is not a
    /// failure for the others.
    fn finish(&mut self) {}
}

/// A tensor's values read back as host `f32` (staging for a host collective); `what` names it in
/// the error.
///
/// # Shapes
/// - `tensor`: `[n]`; output `n` values.
pub fn host_f32(tensor: Tensor<1>, what: &str) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| CleftError::Training(format!("cannot stage {what} on the host: {e:?}")))
}

/// Why a rank's handle is dropped before it finished (for [`Collective::abort`] in a `Drop`):
/// a panic unwinding through it, or an early return.
pub fn unfinished_reason() -> &'static str {
    if std::thread::panicking() {
        "panicked"
    } else {
        "stopped before the end of training"
    }
}
