//! [`LocalGroup`]: the in-process [`Collective`], one thread per replica.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use cleft_core::error::{CleftError, Result};

use crate::collective::{Collective, unfinished_reason};

/// An error from a collective operation, naming the rank that failed.
fn peer_failed(rank: usize, error: &str) -> CleftError {
    CleftError::Training(format!("replica rank {rank} failed: {error}"))
}

#[derive(Debug, Default)]
struct Round {
    /// Completed rounds.
    generation: u64,
    /// Contributions to the round in progress, by rank.
    deposits: Vec<Option<Vec<f32>>>,
    /// Every rank's contribution to the last completed round.
    completed: Arc<Vec<Vec<f32>>>,
    /// The first rank that failed or left, and why.
    failed: Option<(usize, String)>,
}

#[derive(Debug)]
struct Shared {
    world_size: usize,
    round: Mutex<Round>,
    turn: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Round> {
        // A rank that panicked while holding the lock left consistent data (every update is a
        // single assignment), so a poisoned lock is still usable.
        self.round
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// In-process replicas: one [`LocalCollective`] per rank, each moved to its own thread.
///
/// ```
/// use cleft_collectives::{Collective, LocalGroup};
/// let handles = LocalGroup::new(2).ranks();
/// let threads: Vec<_> = handles
///     .into_iter()
///     .map(|mut rank| {
///         std::thread::spawn(move || {
///             let mut value = [rank.rank() as f32 + 1.0];
///             rank.all_reduce_sum(&mut value).unwrap();
///             value[0]
///         })
///     })
///     .collect();
/// for thread in threads {
///     assert_eq!(thread.join().unwrap(), 3.0);
/// }
/// ```
#[derive(Debug)]
pub struct LocalGroup {
    shared: Arc<Shared>,
}

impl LocalGroup {
    /// A group of `world_size` replicas (at least 1).
    pub fn new(world_size: usize) -> Self {
        let world_size = world_size.max(1);
        Self {
            shared: Arc::new(Shared {
                world_size,
                round: Mutex::new(Round {
                    deposits: vec![None; world_size],
                    ..Round::default()
                }),
                turn: Condvar::new(),
            }),
        }
    }

    /// The first rank that failed (or was dropped before finishing), and its error.
    pub fn failure(&self) -> Option<(usize, String)> {
        self.shared.lock().failed.clone()
    }

    /// One handle per rank, in rank order.
    pub fn ranks(&self) -> Vec<LocalCollective> {
        (0..self.shared.world_size)
            .map(|rank| LocalCollective {
                rank,
                shared: self.shared.clone(),
                finished: false,
            })
            .collect()
    }
}

/// One rank of a [`LocalGroup`]. Dropping it before [`LocalCollective::finish`] (an error
/// return, a panic) counts as a failure of this rank for the others.
#[derive(Debug)]
pub struct LocalCollective {
    rank: usize,
    shared: Arc<Shared>,
    finished: bool,
}

impl LocalCollective {
    /// Deposits `data`, waits for every rank's, and returns all of them in rank order.
    fn exchange(&self, data: Vec<f32>) -> Result<Arc<Vec<Vec<f32>>>> {
        let shared = &self.shared;
        let mut round = shared.lock();
        if let Some((rank, error)) = &round.failed {
            return Err(peer_failed(*rank, error));
        }
        let generation = round.generation;
        round.deposits[self.rank] = Some(data);
        if round.deposits.iter().all(Option::is_some) {
            let all: Vec<Vec<f32>> = round.deposits.iter_mut().filter_map(Option::take).collect();
            round.completed = Arc::new(all);
            round.generation += 1;
            shared.turn.notify_all();
            return Ok(round.completed.clone());
        }
        loop {
            round = shared
                .turn
                .wait(round)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // A completed round wins over a failure reported after it: a rank may finish and
            // leave as soon as the last round it took part in is complete.
            if round.generation != generation {
                return Ok(round.completed.clone());
            }
            if let Some((rank, error)) = &round.failed {
                return Err(peer_failed(*rank, error));
            }
        }
    }

    fn same_lengths(&self, all: &[Vec<f32>], what: &str) -> Result<usize> {
        let length = all[self.rank].len();
        match all.iter().position(|other| other.len() != length) {
            None => Ok(length),
            Some(other) => Err(CleftError::Training(format!(
                "{what}: rank {} sent {length} values but rank {other} sent {} (the replicas \
                 run different models or configs)",
                self.rank,
                all[other].len()
            ))),
        }
    }
}

impl Collective for LocalCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world_size
    }

    fn all_reduce_sum(&mut self, buffer: &mut [f32]) -> Result<()> {
        let all = self.exchange(buffer.to_vec())?;
        self.same_lengths(&all, "all-reduce")?;
        buffer.fill(0.0);
        for contribution in all.iter() {
            for (sum, value) in buffer.iter_mut().zip(contribution) {
                *sum += value;
            }
        }
        Ok(())
    }

    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        let all = self.exchange(local.to_vec())?;
        self.same_lengths(&all, "all-gather")?;
        Ok(all.concat())
    }

    fn broadcast(&mut self, buffer: &mut [f32], root: usize) -> Result<()> {
        if root >= self.world_size() {
            return Err(CleftError::Invalid(format!(
                "broadcast from rank {root} in a group of {}",
                self.world_size()
            )));
        }
        let mine = if self.rank == root {
            buffer.to_vec()
        } else {
            Vec::new()
        };
        let all = self.exchange(mine)?;
        if all[root].len() != buffer.len() {
            return Err(CleftError::Training(format!(
                "broadcast: rank {root} sent {} values, rank {} expects {}",
                all[root].len(),
                self.rank,
                buffer.len()
            )));
        }
        buffer.copy_from_slice(&all[root]);
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        self.exchange(Vec::new()).map(drop)
    }

    fn abort(&mut self, error: &str) {
        let mut round = self.shared.lock();
        round.failed.get_or_insert((self.rank, error.to_string()));
        self.shared.turn.notify_all();
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for LocalCollective {
    fn drop(&mut self) {
        if !self.finished {
            self.abort(unfinished_reason());
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;

    fn run<T: Send + 'static>(
        world_size: usize,
        body: impl Fn(LocalCollective) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let body = Arc::new(body);
        let threads: Vec<_> = LocalGroup::new(world_size)
            .ranks()
            .into_iter()
            .map(|rank| {
                let body = body.clone();
                std::thread::spawn(move || body(rank))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("rank thread"))
            .collect()
    }

    #[test]
    fn every_operation_gives_every_rank_the_same_result() {
        let results = run(3, |mut c| {
            let r = c.rank() as f32;
            let mut sum = [r, 10.0 * r];
            c.all_reduce_sum(&mut sum).unwrap();
            let gathered = c.all_gather(&[r, r + 0.5]).unwrap();
            let mut root = if c.rank() == 2 { [7.0, 8.0] } else { [0.0; 2] };
            c.broadcast(&mut root, 2).unwrap();
            c.barrier().unwrap();
            c.finish();
            (sum, gathered, root)
        });
        for (sum, gathered, root) in results {
            assert_eq!(sum, [3.0, 30.0]);
            assert_eq!(gathered, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
            assert_eq!(root, [7.0, 8.0]);
        }
    }

    /// The host-staged default: every rank gets the sum, on its own device (flex: switched on
    /// by the `cleft-testing` dev-dependency).
    #[test]
    fn tensors_are_summed_through_the_host() {
        let results = run(2, |mut c| {
            let device = Device::flex();
            let r = c.rank() as f32;
            let sum = c
                .all_reduce_sum_tensor(Tensor::from_floats([r, 1.0, 2.0 * r], &device))
                .unwrap();
            c.finish();
            sum.into_data().try_to_vec::<f32>().unwrap()
        });
        for sum in results {
            assert_eq!(sum, [1.0, 2.0, 2.0]);
        }
    }

    #[test]
    fn a_failed_rank_stops_the_others_with_its_rank_and_error() {
        let results = run(3, |mut c| -> Result<()> {
            if c.rank() == 1 {
                c.abort("data/0007.png: not a PNG file");
                return Ok(());
            }
            // Many rounds: the failure must reach ranks waiting in any of them.
            for _ in 0..100 {
                c.barrier()?;
            }
            Ok(())
        });
        for (rank, result) in results.into_iter().enumerate() {
            if rank != 1 {
                let error = result.unwrap_err().to_string();
                assert!(
                    error.contains("rank 1") && error.contains("data/0007.png"),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn a_rank_dropped_without_finishing_counts_as_failed() {
        let results = run(2, |mut c| -> Result<()> {
            if c.rank() == 0 {
                return Ok(());
            }
            c.barrier()
        });
        let error = results[1].as_ref().unwrap_err().to_string();
        assert!(
            error.contains("rank 0") && error.contains("stopped"),
            "{error}"
        );
    }

    #[test]
    fn mismatched_lengths_are_named() {
        let results = run(2, |mut c| {
            let mut buffer = vec![1.0; 2 + c.rank()];
            c.all_reduce_sum(&mut buffer)
        });
        for result in results {
            let error = result.unwrap_err().to_string();
            assert!(
                error.contains("sent 2 values") || error.contains("sent 3 values"),
                "{error}"
            );
        }
    }
}
