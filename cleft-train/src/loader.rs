//! The training data loader: all host work (read, decode, augment, tokenise) on worker threads,
//! a bounded prefetch queue, and batches delivered in a fixed order.
//!
//! Batch `n` of a run is always the same samples with the same augmentation: the sample order is
//! the seeded epoch permutation of [`BatchOrder`] and a sample's augmentation seed is derived from
//! `(seed, epoch, position in the epoch)`; neither depends on the number of workers or on which
//! worker finishes first (results are reordered by sequence number). A loader started at a
//! checkpoint's `(epoch, position)` continues exactly where the interrupted run was.

use cleft_core::ErrorKind;
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use crate::state::{BatchOrder, TrainState};
use cleft_core::data::{ImageTextDataset, check_sample};
use cleft_core::error::{CleftError, Result};
use cleft_core::text::{TextTokenizer, TokenBatch};

/// One training batch on the host, ready to become tensors.
#[derive(Debug, Clone)]
pub struct HostBatch {
    /// Row-major pixels `[B, C, H, W]`.
    pub images: Vec<f32>,
    /// `[B, C, H, W]`.
    pub image_shape: [usize; 4],
    /// Captions tokenised with the text encoder's tokenizer, `[B, L]`.
    pub tokens: TokenBatch,
    /// Row-major multi-hot labels `[B, K]`.
    pub labels: Vec<f32>,
    /// `K`.
    pub classes: usize,
    /// The loader position after this batch (what a checkpoint taken after it stores).
    pub epoch: u64,
    /// See [`HostBatch::epoch`].
    pub position: usize,
}

/// A batch on the device.
#[derive(Debug, Clone)]
pub struct DeviceBatch {
    /// `[B, C, H, W]`.
    pub images: Tensor<4>,
    /// Token ids `[B, L]`.
    pub ids: Tensor<2, Int>,
    /// Attention mask `[B, L]` (1 = real token).
    pub mask: Tensor<2, Int>,
    /// Multi-hot labels `[B, K]`.
    pub labels: Tensor<2>,
}

impl HostBatch {
    /// Moves the batch to `device` (the only host→device transfer of a step).
    ///
    /// # Shapes
    /// - output: images `[B, C, H, W]`, ids and mask `[B, L]`, labels `[B, K]`.
    pub fn to_device(&self, device: &Device) -> DeviceBatch {
        let (ids, mask) = self.tokens.to_tensors(device);
        let batch = self.image_shape[0];
        DeviceBatch {
            images: Tensor::from_data(
                TensorData::new(self.images.clone(), self.image_shape),
                device,
            ),
            ids,
            mask,
            labels: Tensor::from_data(
                TensorData::new(self.labels.clone(), [batch, self.classes]),
                device,
            ),
        }
    }
}

/// How the loader runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Samples per batch.
    pub batch_size: usize,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches prepared ahead of the trainer (at least 1).
    pub prefetch: usize,
    /// Seed of the order and of every augmentation.
    pub seed: u64,
    /// Maximum real tokens per caption (the text encoder's `max_len`).
    pub max_len: usize,
    /// Which part of every batch this loader reads (data-parallel replicas).
    pub shard: Shard,
}

/// One replica's part of every batch: of a batch of `batch_size` samples, rank `r` of `count`
/// reads rows `r·b .. (r+1)·b` with `b = batch_size / count`. The order and every
/// augmentation are those of the whole batch, so `count` replicas together see exactly what one
/// loader of the whole batch gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica's rank, `0..count`.
    pub rank: usize,
    /// Number of replicas.
    pub count: usize,
}

impl Shard {
    /// The whole batch (one replica).
    pub const WHOLE: Shard = Shard { rank: 0, count: 1 };

    /// Rows of this shard in a batch of `batch_size` (a multiple of `count`).
    pub fn rows(&self, batch_size: usize) -> std::ops::Range<usize> {
        let per_replica = batch_size / self.count.max(1);
        self.rank * per_replica..(self.rank + 1) * per_replica
    }
}

/// The augmentation seed of the sample at `position` of epoch `epoch`.
pub fn sample_seed(seed: u64, epoch: u64, position: usize) -> u64 {
    // SplitMix64 finaliser over the three inputs: well mixed, cheap, stable across versions.
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (position as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Job {
    sequence: u64,
    indices: Vec<usize>,
    epoch: u64,
    first_position: usize,
    position_after: usize,
}

type Outcome = (u64, Result<HostBatch>);

/// Batches from worker threads, in order.
pub struct Loader {
    results: Receiver<Outcome>,
    pending: BTreeMap<u64, Result<HostBatch>>,
    next: u64,
    /// Detached when the loader is dropped, never joined (a drop must not wait for an image
    /// decode): workers stop at their next send, the planner once every worker has dropped the
    /// job queue.
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("next", &self.next)
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Loader {
    /// Starts the loader at `start` (epoch and position of a fresh run or a checkpoint).
    pub fn new(
        dataset: Arc<dyn ImageTextDataset>,
        tokenizer: Arc<dyn TextTokenizer>,
        options: LoaderOptions,
        start: TrainState,
    ) -> Result<Self> {
        let Shard { rank, count } = options.shard;
        if count == 0 || rank >= count || !options.batch_size.is_multiple_of(count) {
            return Err(CleftError::Invalid(format!(
                "a batch of {} samples cannot be split into {count} equal shards (rank {rank})",
                options.batch_size
            )));
        }
        if options.batch_size == 0 || dataset.len() < options.batch_size {
            return Err(CleftError::Data(format!(
                "the training split has {} samples, fewer than one batch of {}",
                dataset.len(),
                options.batch_size
            )));
        }
        let (job_sender, jobs) = sync_channel::<Job>(options.prefetch.max(1));
        let (result_sender, results) = sync_channel::<Outcome>(options.prefetch.max(1) * 2 + 8);
        let mut threads = vec![spawn_planner(job_sender, dataset.len(), options, start)?];
        let jobs = Arc::new(Mutex::new(jobs));
        for worker in 0..options.workers.max(1) {
            let (jobs, results) = (jobs.clone(), result_sender.clone());
            let (dataset, tokenizer) = (dataset.clone(), tokenizer.clone());
            let thread = std::thread::Builder::new()
                .name(format!("cleft-loader-{worker}"))
                .spawn(move || {
                    work(
                        &jobs,
                        &results,
                        dataset.as_ref(),
                        tokenizer.as_ref(),
                        options,
                    )
                })
                .map_err(|e| {
                    CleftError::caused(ErrorKind::Training, "cannot start a loader thread", e)
                })?;
            threads.push(thread);
        }
        Ok(Self {
            results,
            pending: BTreeMap::new(),
            next: 0,
            threads,
        })
    }

    /// The next batch in order, and how long the caller waited for it.
    pub fn next_batch(&mut self) -> Result<(HostBatch, Duration)> {
        let started = Instant::now();
        loop {
            if let Some(outcome) = self.pending.remove(&self.next) {
                self.next += 1;
                return outcome.map(|batch| (batch, started.elapsed()));
            }
            let (sequence, outcome) = self.results.recv().map_err(|_| {
                CleftError::Training("the data loader's worker threads stopped".into())
            })?;
            self.pending.insert(sequence, outcome);
        }
    }
}

fn spawn_planner(
    jobs: SyncSender<Job>,
    len: usize,
    options: LoaderOptions,
    start: TrainState,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cleft-loader-plan".into())
        .spawn(move || {
            let mut order = BatchOrder::new(len, options.seed);
            let mut state = start;
            for sequence in 0.. {
                let batch = order.next_batch(&mut state, options.batch_size);
                let rows = options.shard.rows(options.batch_size);
                let job = Job {
                    sequence,
                    indices: batch[rows.clone()].to_vec(),
                    epoch: state.epoch,
                    first_position: state.position - options.batch_size + rows.start,
                    position_after: state.position,
                };
                if jobs.send(job).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| CleftError::caused(ErrorKind::Training, "cannot start the loader thread", e))
}

fn work(
    jobs: &Mutex<Receiver<Job>>,
    results: &SyncSender<Outcome>,
    dataset: &dyn ImageTextDataset,
    tokenizer: &dyn TextTokenizer,
    options: LoaderOptions,
) {
    loop {
        let job = {
            let Ok(queue) = jobs.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let sequence = job.sequence;
        let outcome = assemble(&job, dataset, tokenizer, options);
        if results.send((sequence, outcome)).is_err() {
            return;
        }
    }
}

/// Reads, augments and tokenises one batch of the loader.
fn assemble(
    job: &Job,
    dataset: &dyn ImageTextDataset,
    tokenizer: &dyn TextTokenizer,
    options: LoaderOptions,
) -> Result<HostBatch> {
    let seeds = (0..job.indices.len())
        .map(|offset| sample_seed(options.seed, job.epoch, job.first_position + offset));
    let mut batch = collate_host(
        dataset,
        &job.indices,
        Some(seeds),
        tokenizer,
        options.max_len,
    )?;
    (batch.epoch, batch.position) = (job.epoch, job.position_after);
    Ok(batch)
}

/// Reads `indices` (without augmentation) and tokenises their captions: the host side of one
/// batch, e.g. for evaluation or a fixed probe set.
pub fn read_batch(
    dataset: &dyn ImageTextDataset,
    indices: &[usize],
    tokenizer: &dyn TextTokenizer,
    max_len: usize,
) -> Result<HostBatch> {
    collate_host(
        dataset,
        indices,
        None::<std::iter::Empty<u64>>,
        tokenizer,
        max_len,
    )
}

fn collate_host(
    dataset: &dyn ImageTextDataset,
    indices: &[usize],
    seeds: Option<impl Iterator<Item = u64>>,
    tokenizer: &dyn TextTokenizer,
    max_len: usize,
) -> Result<HostBatch> {
    let [c, h, w] = dataset.image_shape();
    let classes = dataset.label_names().len();
    let batch = indices.len();
    let mut images = Vec::with_capacity(batch * c * h * w);
    let mut labels = Vec::with_capacity(batch * classes);
    let mut captions = Vec::with_capacity(batch);
    let mut seeds = seeds.map(|s| s.into_iter());
    for &index in indices {
        let sample = match seeds.as_mut().and_then(Iterator::next) {
            Some(seed) => dataset.get_for_training(index, seed)?,
            None => dataset.get(index)?,
        };
        check_sample(&sample, index, [c, h, w], classes)?;
        images.extend_from_slice(&sample.image);
        labels.extend_from_slice(&sample.labels);
        captions.push(sample.caption);
    }
    Ok(HostBatch {
        images,
        image_shape: [batch, c, h, w],
        tokens: tokenizer.encode_batch(&captions, max_len)?,
        labels,
        classes,
        epoch: 0,
        position: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cleft_core::data::ImageTextSample;

    /// Sample `i`: a 1×2×2 image holding `i` and the training seed's low bits, caption `"w{i}"`.
    #[derive(Debug)]
    struct Numbers(usize);

    impl ImageTextDataset for Numbers {
        fn len(&self) -> usize {
            self.0
        }
        fn get(&self, index: usize) -> Result<ImageTextSample> {
            self.get_for_training(index, 0)
        }
        fn get_for_training(&self, index: usize, seed: u64) -> Result<ImageTextSample> {
            let noise = (seed % 1000) as f32;
            Ok(ImageTextSample {
                image: vec![index as f32, noise, noise, 0.0],
                caption: format!("w{index}"),
                labels: vec![(index % 2) as f32],
            })
        }
        fn image_shape(&self) -> [usize; 3] {
            [1, 2, 2]
        }
        fn label_names(&self) -> Vec<String> {
            vec!["odd".into()]
        }
    }

    #[derive(Debug)]
    struct Chars;

    impl TextTokenizer for Chars {
        fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<TokenBatch> {
            let rows: Vec<Vec<u32>> = texts
                .iter()
                .map(|t| t.bytes().take(max_len).map(u32::from).collect())
                .collect();
            let len = rows.iter().map(Vec::len).max().unwrap_or(0) + 1;
            Ok(TokenBatch::right_padded(&rows, len, 0))
        }
        fn vocab_size(&self) -> usize {
            256
        }
    }

    fn batches(
        workers: usize,
        start: TrainState,
        n: usize,
    ) -> Vec<(Vec<f32>, Vec<i64>, u64, usize)> {
        shard_batches(workers, start, n, Shard::WHOLE)
    }

    fn shard_batches(
        workers: usize,
        start: TrainState,
        n: usize,
        shard: Shard,
    ) -> Vec<(Vec<f32>, Vec<i64>, u64, usize)> {
        let options = LoaderOptions {
            batch_size: 4,
            workers,
            prefetch: 3,
            seed: 9,
            max_len: 8,
            shard,
        };
        let mut loader =
            Loader::new(Arc::new(Numbers(10)), Arc::new(Chars), options, start).unwrap();
        (0..n)
            .map(|_| {
                let (b, _) = loader.next_batch().unwrap();
                (b.images, b.tokens.ids, b.epoch, b.position)
            })
            .collect()
    }

    const START: TrainState = TrainState {
        step: 0,
        epoch: 0,
        position: 0,
        world_size: 1,
    };

    #[test]
    fn order_and_augmentation_do_not_depend_on_the_number_of_workers() {
        let one = batches(1, START, 9);
        assert_eq!(one, batches(4, START, 9));
        // Two epochs of 10 samples in batches of 4: the last 2 of each epoch are dropped.
        assert_eq!((one[1].2, one[1].3), (0, 8));
        assert_eq!((one[2].2, one[2].3), (1, 4));
        // Captions were tokenised by the loader: "w" then the index digits.
        assert_eq!(one[0].1[0], i64::from(b'w'));
    }

    #[test]
    fn a_loader_started_at_a_checkpoint_continues_exactly() {
        let straight = batches(2, START, 7);
        let (_, _, epoch, position) = straight[2].clone();
        let resumed = batches(
            3,
            TrainState {
                step: 3,
                epoch,
                position,
                world_size: 1,
            },
            4,
        );
        assert_eq!(resumed[..], straight[3..]);
    }

    #[test]
    fn two_shards_together_read_the_whole_batch_with_its_augmentations() {
        let whole = batches(2, START, 5);
        let shards: Vec<_> = (0..2)
            .map(|rank| shard_batches(1, START, 5, Shard { rank, count: 2 }))
            .collect();
        for (step, batch) in whole.iter().enumerate() {
            let (first, second) = (&shards[0][step], &shards[1][step]);
            // Images (augmented by sample seed) of rank 0 then rank 1 are the batch's images.
            assert_eq!([first.0.clone(), second.0.clone()].concat(), batch.0);
            // Every replica knows the position of the whole batch (for checkpoints).
            assert_eq!((first.2, first.3), (batch.2, batch.3));
            assert_eq!((second.2, second.3), (batch.2, batch.3));
        }
    }

    #[test]
    fn a_batch_that_does_not_split_evenly_is_refused() {
        let options = LoaderOptions {
            batch_size: 5,
            workers: 1,
            prefetch: 1,
            seed: 0,
            max_len: 8,
            shard: Shard { rank: 0, count: 2 },
        };
        let error = Loader::new(Arc::new(Numbers(10)), Arc::new(Chars), options, START)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("5 samples") && error.contains("2 equal shards"),
            "{error}"
        );
    }

    #[test]
    fn the_same_sample_gets_another_augmentation_in_another_epoch() {
        assert_ne!(sample_seed(9, 0, 3), sample_seed(9, 1, 3));
        assert_ne!(sample_seed(9, 0, 3), sample_seed(9, 0, 4));
        assert_eq!(sample_seed(9, 2, 5), sample_seed(9, 2, 5));
    }

    #[test]
    fn a_data_set_smaller_than_a_batch_is_refused() {
        let options = LoaderOptions {
            batch_size: 16,
            workers: 1,
            prefetch: 1,
            seed: 0,
            max_len: 4,
            shard: Shard::WHOLE,
        };
        let error = Loader::new(Arc::new(Numbers(10)), Arc::new(Chars), options, START)
            .unwrap_err()
            .to_string();
        assert!(error.contains("fewer than one batch of 16"), "{error}");
    }
}
