//! Contrastive objectives for cleft: `[objective] type = "clip" | "medclip" | "convirt"`.

mod clip;
mod common;
mod convirt;
mod medclip;
mod registration;

pub use clip::{ClipInfoNce, ClipLossConfig, Reduction};
pub use convirt::{ConvirtLoss, ConvirtLossConfig};
pub use medclip::{MedClipLoss, MedClipLossConfig};
