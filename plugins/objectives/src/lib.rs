//! Contrastive objectives for cleft (`[objective] type = "clip"`).

mod clip;

pub use clip::{ClipInfoNce, ClipLossConfig, Reduction};
