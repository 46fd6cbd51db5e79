//! Seeded train / valid / test splits by group (patient), for data sets that ship unsplit.

use cleft_core::CleftError;
use cleft_core::registry::Split;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Fractions of the groups in each split, and the seed of the shuffle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitFractions {
    /// Share of groups for training.
    pub train: f64,
    /// Share for validation.
    pub valid: f64,
    /// Share for testing (the rest).
    pub test: f64,
    /// Seed of the shuffle.
    pub seed: u64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self {
            train: 0.7,
            valid: 0.15,
            test: 0.15,
            seed: 42,
        }
    }
}

impl SplitFractions {
    /// Refuses fractions that are negative or do not sum to 1, naming `section`.
    pub fn check(&self, section: &str) -> Result<(), CleftError> {
        let sum = self.train + self.valid + self.test;
        if [self.train, self.valid, self.test]
            .iter()
            .any(|f| !(0.0..=1.0).contains(f))
            || (sum - 1.0).abs() > 1e-9
        {
            return Err(CleftError::Invalid(format!(
                "{section}: train {} + valid {} + test {} must be fractions summing to 1",
                self.train, self.valid, self.test
            )));
        }
        Ok(())
    }

    /// The positions of `count` groups that fall in `split` (shuffled with the seed, then cut
    /// in order train | valid | test), ascending.
    pub fn members(&self, count: usize, split: Split) -> Vec<usize> {
        let mut order: Vec<usize> = (0..count).collect();
        order.shuffle(&mut StdRng::seed_from_u64(self.seed));
        let train_end = (self.train * count as f64).round() as usize;
        let valid_end = (((self.train + self.valid) * count as f64).round() as usize).min(count);
        let range = match split {
            Split::Train => 0..train_end.min(count),
            Split::Valid => train_end.min(count)..valid_end,
            Split::Test => valid_end..count,
        };
        let mut members = order[range].to_vec();
        members.sort_unstable();
        members
    }
}
