//! Every built-in cleft plugin, linked.
//!
//! Plugins register through `inventory`, whose entries live in the plugin crates' object files;
//! a crate that nothing references may be dropped by the linker and its components would silently
//! vanish. [`registry`] references one item of each built-in crate so all of them are linked.

use cleft_core::Registry;

/// The registry with every built-in plugin (vision `vit`, text `gpt2`, peft `lora`, objective
/// `clip`, data `synthetic-cxr`, `chexpert`, `rsna`, `embed`, `image-text-csv`, …).
pub fn registry() -> Registry {
    // Referencing an item of each crate keeps its `inventory` submissions in the binary.
    std::hint::black_box((
        cleft_vit::VitConfig::default as fn() -> _,
        cleft_gpt::Gpt2Config::default as fn() -> _,
        cleft_bert::BertConfig::default as fn() -> _,
        cleft_llama::LlamaConfig::default as fn() -> _,
        cleft_peft::LoraConfig::default as fn() -> _,
        cleft_objectives::ClipLossConfig::default as fn() -> _,
        cleft_objectives::MedClipLossConfig::default as fn() -> _,
        cleft_objectives::ConvirtLossConfig::default as fn() -> _,
        cleft_synthetic::SyntheticCxrConfig::default as fn() -> _,
        cleft_prompt::ContextPromptConfig::default as fn() -> _,
        cleft_datasets::ChexpertConfig::default as fn() -> _,
    ));
    Registry::builtin()
}
