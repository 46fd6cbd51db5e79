//! Test support for cleft-rs, used by the test suites only (not part of the public API).
//!
//! - [`Tolerance`]: the single float comparison rule of the suite, derived from a stated noise
//!   model (`FACTOR · max(atol + rtol · max|ref|, spread)`); see [`tolerance`].
//! - [`Golden`]: golden fixtures and their recorded float32-vs-float64 spreads.
//! - [`require_asset`]: the real weights and data fetched by `tools/fetch-assets.sh`.
//! - [`quick_tiny`]: the tiny configuration shrunk for tests that start `cleft` processes.
//! - [`param_values`]: every float parameter of a module with its path and values.

pub mod assets;
pub mod configs;
pub mod golden;
pub mod params;
pub mod tolerance;

pub use assets::{assets_dir, require_asset};
pub use configs::{Quick, TINY_CONFIG, quick_tiny};
pub use golden::{Golden, Noise, golden_dir, merge_noise, noise, values};
pub use params::param_values;
pub use tolerance::{Comparison, Tolerance};
