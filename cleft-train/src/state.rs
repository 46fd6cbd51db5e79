//! Resumable training state: the step counter and the data-loader position.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Everything besides weights and optimizer moments that a resumed run needs to continue exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// The next optimiser step to run (0-based); equals the number of completed steps.
    pub step: usize,
    /// Data-loader epoch (each epoch is one seeded permutation of the training split).
    pub epoch: u64,
    /// Position inside the epoch's permutation.
    pub position: usize,
    /// Replicas the run trains on (data parallel); a run resumes only with the same number.
    /// Checkpoints from before data-parallel training have none: one.
    #[serde(default = "one_replica")]
    pub world_size: usize,
}

fn one_replica() -> usize {
    1
}

impl TrainState {
    /// The state of a fresh run on `world_size` replicas: step 0, epoch 0, position 0.
    pub fn fresh(world_size: usize) -> Self {
        Self {
            step: 0,
            epoch: 0,
            position: 0,
            world_size,
        }
    }
}

/// Seeded epoch-wise shuffling. The permutation of epoch `e` depends only on `(seed, e)`, so the
/// loader position is two integers and resuming needs no RNG state. Drops the last incomplete
/// batch of each epoch.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    len: usize,
    seed: u64,
    order: Vec<usize>,
    epoch: Option<u64>,
}

impl BatchOrder {
    /// A loader over `len` samples.
    pub fn new(len: usize, seed: u64) -> Self {
        Self {
            len,
            seed,
            order: Vec::new(),
            epoch: None,
        }
    }

    fn shuffle(&mut self, epoch: u64) {
        self.order = (0..self.len).collect();
        let mut rng = StdRng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.order.shuffle(&mut rng);
        self.epoch = Some(epoch);
    }

    /// The next `batch_size` sample indices, advancing `state`.
    pub fn next_batch(&mut self, state: &mut TrainState, batch_size: usize) -> Vec<usize> {
        if state.position + batch_size > self.len {
            state.epoch += 1;
            state.position = 0;
        }
        if self.epoch != Some(state.epoch) {
            self.shuffle(state.epoch);
        }
        let batch = self.order[state.position..state.position + batch_size].to_vec();
        state.position += batch_size;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_sample_once_and_resume_from_the_position() {
        let mut order = BatchOrder::new(10, 3);
        let mut state = TrainState::fresh(1);
        let mut seen: Vec<usize> = (0..3)
            .flat_map(|_| order.next_batch(&mut state, 3))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 9, "no sample twice within an epoch");
        assert!(seen.iter().all(|&i| i < 10));
        let continued = order.next_batch(&mut state.clone(), 3);
        let mut resumed = BatchOrder::new(10, 3);
        let from_scratch = {
            let mut fresh = BatchOrder::new(10, 3);
            let mut s = TrainState::fresh(1);
            for _ in 0..3 {
                fresh.next_batch(&mut s, 3);
            }
            fresh.next_batch(&mut s, 3)
        };
        assert_eq!(resumed.next_batch(&mut state, 3), continued);
        assert_eq!(continued, from_scratch);
        assert_eq!(state.epoch, 1);
    }
}
