//! One optimiser step's worth of micro-batches: the loss and gradients of a single device, or of
//! one data-parallel replica (its shard, or its block of the gathered loss).

use std::time::Duration;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

use cleft_core::config::ExperimentConfig;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::objective::{LocalRows, PairLabels};

use crate::loader::{Loader, Shard};
use crate::replication::Replication;
use crate::state::TrainState;
use crate::trainer::ScaleGrads;

/// One optimiser step's worth of micro-batches, still on the device.
pub(crate) struct MicroBatches {
    /// Mean loss over the micro-batches, `[1]`, detached.
    pub(crate) loss: Tensor<1>,
    /// Accumulated gradients of the mean loss.
    pub(crate) grads: GradientsParams,
    /// The objective's metrics of the last micro-batch, `[1]` each.
    pub(crate) metrics: Vec<(String, Tensor<1>)>,
    /// Time spent waiting for the loader.
    pub(crate) data_wait: Duration,
}

/// Runs `grad_accumulation` micro-batches from the loader: tensors in, tensors out, nothing read
/// back (but the embeddings a replica gathers, see [`Replication`]).
///
/// A replica's gradients are its share of the global batch's: summed over replicas (by the
/// caller) they are the gradients of the single-device loss.
pub(crate) fn accumulate_gradients(
    model: &ClipModel,
    loader: &mut Loader,
    state: &mut TrainState,
    config: &ExperimentConfig,
    device: &Device,
    mut replication: Option<&mut Replication<'_>>,
) -> Result<MicroBatches> {
    let micro_batches = config.train.grad_accumulation;
    let mut accumulator = GradientsAccumulator::new();
    let mut total: Option<Tensor<1>> = None;
    let mut metrics = Vec::new();
    let mut data_wait = Duration::ZERO;
    for _ in 0..micro_batches {
        let (batch, waited) = loader.next_batch()?;
        data_wait += waited;
        (state.epoch, state.position) = (batch.epoch, batch.position);
        let batch = batch.to_device(device);
        let (loss, output_metrics) = match replication.as_deref_mut() {
            Some(replication) if replication.gather => {
                gathered_micro_batch(model, batch, micro_batches, replication, &mut accumulator)?
            }
            _ => {
                // Alone, or replicas each with their own shard's loss: the mean over replicas.
                let world_size = replication.as_ref().map_or(1, |r| r.world_size());
                let output = model.forward(batch.images, batch.ids, batch.mask, Some(batch.labels));
                let loss = output.loss / (micro_batches * world_size) as f64;
                accumulator.accumulate(model, GradientsParams::from_grads(loss.backward(), model));
                // The logged loss is this replica's own (the shard's mean), not its 1/world share.
                let detached = match world_size {
                    1 => loss.inner(),
                    n => loss.inner() * n as f64,
                };
                (detached, output.metrics)
            }
        };
        total = Some(match total {
            Some(total) => total + loss,
            None => loss,
        });
        metrics = output_metrics;
    }
    Ok(MicroBatches {
        loss: total.expect("grad_accumulation is at least 1"),
        grads: accumulator.grads(),
        metrics,
        data_wait,
    })
}

/// One micro-batch of a replica whose objective sees the global batch, in open_clip's
/// `local_loss` form (see [`Replication`]): the replica's block of the objective on the gathered
/// embeddings as leaves, the blocks' embedding gradients, losses and metrics summed over
/// replicas in one all-reduce, then the replica's own rows of the mean gradient back through its
/// encoders. Returns the global loss (the mean of the blocks'), detached, and the objective's
/// metrics averaged over replicas.
fn gathered_micro_batch(
    model: &ClipModel,
    batch: crate::loader::DeviceBatch,
    micro_batches: usize,
    replication: &mut Replication<'_>,
    accumulator: &mut GradientsAccumulator<ClipModel>,
) -> Result<(Tensor<1>, Vec<(String, Tensor<1>)>)> {
    let image = model.encode_images(batch.images);
    let text = model.encode_token_ids(batch.ids, batch.mask);
    let local_rows = image.dims()[0];
    let world = replication.world_size();
    let all_image = replication
        .gather_rows(image.clone().inner())?
        .autodiff()
        .require_grad();
    let all_text = replication
        .gather_rows(text.clone().inner())?
        .autodiff()
        .require_grad();
    let all_labels = replication.gather_rows(batch.labels.inner())?.autodiff();
    let rows = Shard {
        rank: replication.rank(),
        count: world,
    }
    .rows(local_rows * world);
    let output = model.objective.forward_local(LocalRows {
        all_image: all_image.clone(),
        all_text: all_text.clone(),
        labels: Some(PairLabels {
            image: all_labels.clone(),
            text: all_labels,
        }),
        offset: rows.start,
        rows: local_rows,
    });
    let loss = output.loss / micro_batches as f64;
    let mut grads = loss.backward();
    let missing = || CleftError::Training("the objective does not use the embeddings".into());
    let image_grad = all_image.grad_remove(&mut grads).ok_or_else(missing)?;
    let text_grad = all_text.grad_remove(&mut grads).ok_or_else(missing)?;
    // The objective's own parameters (the logit scale): each block's gradient, 1/world of it,
    // summed with the other gradients after the step's micro-batches.
    let share = 1.0 / world as f64;
    let mut objective_grads = GradientsParams::from_grads(grads, model);
    model.visit(&mut ScaleGrads {
        grads: &mut objective_grads,
        factor: Tensor::<1>::from_floats([share as f32], &loss.device().inner()),
    });
    accumulator.accumulate(model, objective_grads);
    let [image_dims, text_dims] = [image_grad.dims(), text_grad.dims()];
    let mut parts = vec![
        image_grad.reshape([image_dims[0] * image_dims[1]]),
        text_grad.reshape([text_dims[0] * text_dims[1]]),
        loss.inner(),
    ];
    parts.extend(output.metrics.iter().map(|(_, value)| value.clone()));
    let mut means = replication
        .sum_tensors(parts)?
        .into_iter()
        .map(|sum| sum * share);
    let short = || CleftError::Training("the all-reduce returned fewer parts than sent".into());
    let mut next = || means.next().ok_or_else(short);
    let image_grad: Tensor<2> = next()?.reshape(image_dims);
    let text_grad: Tensor<2> = next()?.reshape(text_dims);
    let loss = next()?;
    let mut metrics = Vec::with_capacity(output.metrics.len());
    for (name, _) in output.metrics {
        metrics.push((name, next()?));
    }
    let surrogate =
        (image * image_grad.slice([rows.clone()])).sum() + (text * text_grad.slice([rows])).sum();
    accumulator.accumulate(
        model,
        GradientsParams::from_grads(surrogate.backward(), model),
    );
    Ok((loss, metrics))
}
