//! Explicit randomness: every random draw of cleft comes from a seed derived from
//! `(run seed, parameter path)` (initialisation) or `(run seed, step, layer path)` (dropout).
//!
//! burn 0.22 has no generator objects: its backends draw from one process-wide RNG that
//! `Device::seed` resets. cleft therefore makes each draw self-contained — reseed with the derived
//! seed, draw one tensor — inside a critical section that lasts for that single draw (never for
//! a forward/backward pass or a disk load). A value drawn this way depends only on its derived
//! seed, whatever other threads do: two trainings in one process give exactly what each gives
//! alone. (Code outside cleft that draws from burn's RNG without this lock at the very same
//! instant could still interleave with one draw; burn offers no way to exclude it.)

use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// Serialises single draws from burn's process-wide RNG (see the module docs).
static DRAW: Mutex<()> = Mutex::new(());

/// A seed derived from `seed` and a label (a parameter path, `"step 12 / text.h.0.attn"`, …):
/// FNV-1a over the label, mixed with the seed by the SplitMix64 finaliser. Stable across builds,
/// platforms and versions of this crate's dependencies.
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in label.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ hash.rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `draw` (one random tensor) with burn's RNG reset to `seed`, excluding every other cleft
/// draw for its duration.
pub fn draw_seeded<T>(device: &Device, seed: u64, draw: impl FnOnce() -> T) -> T {
    let _guard = DRAW.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    draw()
}

/// Initialises every lazily initialised parameter of `module` from `derive_seed(seed, path)`,
/// one parameter at a time (burn initialises on first access): the same seed gives the same
/// weights whatever the build order, the thread, or other models built concurrently.
pub fn initialize_seeded<M: Module>(module: &M, seed: u64) {
    module.visit(&mut SeededInit {
        seed,
        path: Vec::new(),
    });
}

struct SeededInit {
    seed: u64,
    path: Vec<String>,
}

impl ModuleVisitor for SeededInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.is_initialized() {
            return;
        }
        let seed = derive_seed(self.seed, &self.path.join("."));
        draw_seeded(&param.lazy_device(), seed, || {
            let _ = param.val();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_label_and_seed_and_are_stable() {
        assert_ne!(derive_seed(1, "a.weight"), derive_seed(1, "a.bias"));
        assert_ne!(derive_seed(1, "a.weight"), derive_seed(2, "a.weight"));
        assert_eq!(
            derive_seed(42, "vision.blocks.0"),
            derive_seed(42, "vision.blocks.0")
        );
    }
}
