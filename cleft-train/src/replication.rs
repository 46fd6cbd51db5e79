//! Data parallel on a [`Collective`]: gradients summed over replicas in flattened buckets,
//! embeddings gathered so that the loss sees the global batch, trainable weights broadcast from
//! rank 0. Device tensors are summed once per bucket, through the host or, on a device-native
//! group (NCCL), on the devices.
//!
//! The gathered loss, in open_clip's `local_loss` form: every replica gathers the global batch's
//! embeddings (`[B, P]`, `B` = replicas × local rows `b`) as leaves and evaluates only its block
//! of the objective, its `b` rows of the similarity matrix and of its transpose
//! ([`ContrastiveObjective::forward_local`](cleft_core::ContrastiveObjective::forward_local)).
//! The mean of the blocks' losses is the global loss; the blocks' gradients `∂L_r/∂E` are summed
//! over replicas in one all-reduce (with the losses and metrics), and a replica back-propagates
//! its own rows of the mean through its encoders (`Σ e_local · ∂L/∂e_local`). Summed over
//! replicas, the encoder gradients are those of the single-device loss of the global batch — what
//! open_clip's all-gather with gradient gives — with no custom autodiff operation.

use std::time::{Duration, Instant};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;

use cleft_collectives::{Collective, host_f32};
use cleft_core::error::{CleftError, Result};

/// Values per all-reduce call: large enough to amortise a call, small enough to bound the
/// host staging buffer (64 MiB).
pub const BUCKET_VALUES: usize = 16 << 20;

/// A data-parallel replica's view of the group, and the time spent communicating.
pub struct Replication<'a> {
    /// The group.
    pub collective: &'a mut dyn Collective,
    /// Whether the objective sees the global batch (`[objective] gather`).
    pub gather: bool,
    /// Time spent in collective operations and host staging since the last
    /// [`Replication::take_comm_time`].
    comm: Duration,
}

impl std::fmt::Debug for Replication<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("rank", &self.collective.rank())
            .field("world_size", &self.collective.world_size())
            .field("gather", &self.gather)
            .finish()
    }
}

impl<'a> Replication<'a> {
    /// A replica of `collective`'s group.
    pub fn new(collective: &'a mut dyn Collective, gather: bool) -> Self {
        Self {
            collective,
            gather,
            comm: Duration::ZERO,
        }
    }

    /// This replica's rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Number of replicas.
    pub fn world_size(&self) -> usize {
        self.collective.world_size()
    }

    /// Communication time since the last call.
    pub fn take_comm_time(&mut self) -> Duration {
        std::mem::take(&mut self.comm)
    }

    /// Every replica's rows, in rank order, detached, on `tensor`'s device.
    ///
    /// # Shapes
    /// - `local`: `[b, D]` (the same on every replica); output `[world_size · b, D]`.
    pub fn gather_rows(&mut self, local: Tensor<2>) -> Result<Tensor<2>> {
        let started = Instant::now();
        let [rows, dim] = local.dims();
        let device = local.device();
        let values = host_f32(local.reshape([rows * dim]), "embeddings")?;
        let all = self.collective.all_gather(&values)?;
        let world = self.world_size();
        let gathered = Tensor::from_data(TensorData::new(all, [world * rows, dim]), &device);
        self.comm += started.elapsed();
        Ok(gathered)
    }

    /// Sums device tensors over every replica with one all-reduce, in order.
    ///
    /// # Shapes
    /// - `parts`: `[n_i]` each, the same on every replica; outputs the same shapes.
    pub fn sum_tensors(&mut self, parts: Vec<Tensor<1>>) -> Result<Vec<Tensor<1>>> {
        let started = Instant::now();
        let lengths: Vec<usize> = parts.iter().map(|part| part.dims()[0]).collect();
        let sum = self
            .collective
            .all_reduce_sum_tensor(Tensor::cat(parts, 0))?;
        let mut offset = 0;
        let parts = lengths
            .into_iter()
            .map(|length| {
                offset += length;
                sum.clone().slice([offset - length..offset])
            })
            .collect();
        self.comm += started.elapsed();
        Ok(parts)
    }

    /// Sums `grads` over every replica (in place, bucketed), together with `extra` (summed
    /// too, returned): only the parameters that have gradients here — the trainable ones —
    /// travel.
    ///
    /// # Shapes
    /// - `extra`: `[e]`, the same on every replica, on the gradients' device; output `[e]`.
    pub fn all_reduce_gradients<M: Module>(
        &mut self,
        model: &M,
        grads: &mut GradientsParams,
        extra: Tensor<1>,
    ) -> Result<Tensor<1>> {
        // The whole call counts as communication (the buckets' own time included once).
        let (started, before) = (Instant::now(), self.comm);
        let mut taken = TakeGradients {
            grads,
            taken: Vec::new(),
        };
        model.visit(&mut taken);
        let taken = taken.taken;
        // Buckets of whole parameters: one all-reduce each (through the host, or on the
        // devices); `extra` rides in the last one (alone when there are no gradients).
        let mut buckets = Vec::new();
        let mut start = 0;
        while start < taken.len() {
            let (mut end, mut values) = (start, 0);
            while end < taken.len() && (end == start || values + taken[end].1 <= BUCKET_VALUES) {
                values += taken[end].1;
                end += 1;
            }
            buckets.push(start..end);
            start = end;
        }
        if buckets.is_empty() {
            buckets.push(0..0);
        }
        let mut parts: Vec<Vec<Tensor<1>>> = buckets
            .into_iter()
            .map(|bucket| taken[bucket].iter().map(|m| m.2.clone()).collect())
            .collect();
        if let Some(last) = parts.last_mut() {
            last.push(extra);
        }
        let mut reduced: Vec<Tensor<1>> = Vec::with_capacity(taken.len() + 1);
        for bucket in parts {
            reduced.extend(self.sum_tensors(bucket)?);
        }
        // The last value reduced is `extra`, the others the gradients in order.
        let extra = reduced
            .pop()
            .ok_or_else(|| CleftError::Training("no gradient bucket was reduced".into()))?;
        let mut put = PutGradients {
            grads,
            ids: taken.iter().map(|(id, _, _)| *id).collect(),
            reduced,
            next: 0,
        };
        model.visit(&mut put);
        self.comm = before + started.elapsed();
        Ok(extra)
    }

    /// Replaces every trainable parameter of `model` with rank 0's value (replicas start from the
    /// same weights whatever their machine's rounding of the seeded initialisation).
    pub fn broadcast_trainable<M: Module>(&mut self, model: M) -> Result<M> {
        let started = Instant::now();
        let mut collect = TrainableValues { values: Vec::new() };
        model.visit(&mut collect);
        let mut host: Vec<f32> = Vec::new();
        let mut lengths = Vec::with_capacity(collect.values.len());
        for value in collect.values {
            lengths.push(value.dims()[0]);
            host.extend(host_f32(value, "weights")?);
        }
        self.collective.broadcast(&mut host, 0)?;
        let mut replace = ReplaceTrainable {
            host,
            offset: 0,
            lengths: lengths.into_iter(),
        };
        let model = model.map(&mut replace);
        self.comm += started.elapsed();
        Ok(model)
    }
}

/// Removes every gradient of a model's parameters, flattened, in visit order.
struct TakeGradients<'g> {
    grads: &'g mut GradientsParams,
    taken: Vec<(ParamId, usize, Tensor<1>)>,
}

impl ModuleVisitor for TakeGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let len = grad.shape().num_elements();
            self.taken.push((param.id, len, grad.reshape([len])));
        }
    }
}

/// Registers the reduced gradients back, in the same visit order, with their parameters' shapes.
struct PutGradients<'g> {
    grads: &'g mut GradientsParams,
    ids: Vec<ParamId>,
    reduced: Vec<Tensor<1>>,
    next: usize,
}

impl ModuleVisitor for PutGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.ids.get(self.next) == Some(&param.id) {
            let flat = self.reduced[self.next].clone();
            let shape: [usize; D] = param.val().dims();
            self.grads.register::<D>(param.id, flat.reshape(shape));
            self.next += 1;
        }
    }
}

/// The values of every trainable parameter, flattened, in visit order.
struct TrainableValues {
    values: Vec<Tensor<1>>,
}

impl ModuleVisitor for TrainableValues {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            let value = param.val().inner();
            let len = value.shape().num_elements();
            self.values.push(value.reshape([len]));
        }
    }
}

/// Sets every trainable parameter from a flat host buffer, in visit order.
struct ReplaceTrainable<L> {
    host: Vec<f32>,
    offset: usize,
    lengths: L,
}

impl<L: Iterator<Item = usize>> ModuleMapper for ReplaceTrainable<L> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !param.val().is_require_grad() {
            return param;
        }
        let Some(len) = self.lengths.next() else {
            return param;
        };
        let values = self.host[self.offset..self.offset + len].to_vec();
        self.offset += len;
        param.map(|tensor| {
            let shape: [usize; D] = tensor.dims();
            let device = tensor.device();
            Tensor::<D>::from_data(TensorData::new(values, shape), &device).require_grad()
        })
    }
}
