//! Parameter-efficient fine-tuning adapters for cleft (`[peft] type = "lora"`).

mod lora;
mod targets;

pub use lora::{LoraAdapter, LoraConfig};
pub use targets::{TargetModules, module_paths, resolve_targets};
