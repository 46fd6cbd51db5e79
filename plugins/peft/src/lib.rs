//! Parameter-efficient fine-tuning adapters for cleft text encoders, compatible with HF PEFT:
//! `[peft] type = "lora" | "ia3" | "prefix" | "prompt_tuning"`.
//!
//! Each tuner injects layer-level adapters into the hooks an encoder offers
//! ([`cleft_core::peft::PeftHooks`]), freezes everything else (except `modules_to_save`), merges
//! where the method allows, and saves/loads adapter-only files in HF PEFT layout
//! (`adapter_config.json` + `adapter_model.safetensors`; see [`from_pretrained`]). The per-layer
//! methods (LoRA, IA3, and plugins such as DoRA) share one tuner, [`Tuner`]: a method is a
//! [`LinearAdapter`](cleft_core::peft::LinearAdapter) layer type plus a [`LinearMethod`]
//! description of its configuration.

pub mod common;
pub mod files;
mod ia3;
pub mod layers;
mod lora;
mod lora_reparameterized;
mod pretrained;
mod targets;
mod tuner;
mod virtual_tokens;

pub use common::{
    check_modules_to_save, device_of, freeze_except, hooks, hooks_mut, in_modules_to_save,
    json_field, layer_specs, module_matches,
};
pub use ia3::{Ia3Adapter, Ia3Config};
pub use layers::{Ia3Layer, Ia3Position, LoraLayer};
pub use lora::{LoraAdapter, LoraBias, LoraConfig, LoraImplementation};
pub use lora_reparameterized::ReparameterizedLora;
pub use pretrained::{Pretrained, config_from_peft_json, from_pretrained};
pub use targets::{TargetModules, closest, module_paths, resolve_targets};
pub use tuner::{LinearMethod, Tuner};
pub use virtual_tokens::{
    PrefixTuningAdapter, PrefixTuningConfig, PromptTuningAdapter, PromptTuningConfig,
    PromptTuningInit,
};
