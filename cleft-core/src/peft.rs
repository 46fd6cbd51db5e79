//! The [`PeftAdapter`] trait (parameter-efficient fine-tuning applied to an encoder) and the
//! injection points encoders expose to adapters ([`PeftHooks`], [`PeftLinear`], [`PromptEncoder`]).
//!
//! Two levels, as in HF PEFT: a model-level *tuner* ([`PeftAdapter`], implemented by the
//! `cleft-peft` plugins) injects layer-level adapters into the hooks an encoder offers, marks only
//! adapter parameters trainable, merges, and saves/loads adapter-only files in HF PEFT layout.
//! The layer level is open: a method supplies its per-layer behaviour and parameters through
//! [`LinearAdapter`] (the built-in LoRA and IA3 are two implementations; `examples/plugin-dora`
//! adds DoRA from a shared library), and [`PeftLinear`] hosts any of them.

pub(crate) mod hooks;
mod layer;
mod linear;
mod prompt_encoder;

use std::fmt;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::bridge::Component;
use crate::error::CleftError;
use crate::text::TextEncoder;

pub use hooks::{PeftHooks, PrefixGeometry};
pub use layer::{
    AdapterContext, AdapterParams, AdapterTensor, BaseLinear, LinearAdapter, Merged, StoredTensor,
};
pub use linear::PeftLinear;
pub use prompt_encoder::{PrefixProjection, PromptEncoder, PromptKind, prepend_prompt};

/// Sets this step's LoRA dropout seeds: layer `path` draws its mask from
/// `derive_seed(seed, "step {step} / {path}")`, so dropout depends only on the run's seed and the
/// step (not on threads, nor on where a run resumed). Encoders without PEFT hooks are left as
/// they are.
pub fn set_dropout_seeds(encoder: &mut Component<dyn TextEncoder>, seed: u64, step: usize) {
    if let Some(hooks) = encoder.peft_hooks_mut() {
        for (path, layer) in hooks.linear_layers_mut() {
            if layer.adapter().is_some_and(|method| method.uses_dropout()) {
                let label = format!("step {step} / {path}");
                layer.dropout_seed = Some(crate::random::derive_seed(seed, &label));
            }
        }
    }
}

/// What loading an adapter file found besides the expected tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterLoadReport {
    /// Keys in the file that the adapter has no parameter for (ignored).
    pub unexpected: Vec<String>,
    /// Number of tensors loaded.
    pub loaded: usize,
}

/// A parameter-efficient fine-tuning method (LoRA, IA3, prefix tuning, prompt tuning).
///
/// An adapter is a *tuner*: it rewrites an encoder so that the base weights are frozen and only
/// the adapter's own parameters (living inside the returned encoder) are trainable. It is
/// object-safe; configs build it as `Box<dyn PeftAdapter>`.
pub trait PeftAdapter: Send + Sync + fmt::Debug {
    /// The method's registered name (`"lora"`, `"ia3"`, `"prefix"`, `"prompt_tuning"`).
    fn method(&self) -> &str;

    /// Module paths inside `encoder` (relative to it) that this adapter targets (empty for prefix
    /// and prompt tuning, which add virtual tokens instead).
    ///
    /// Errors when a target pattern matches no module, naming the pattern and listing the closest
    /// module paths, and when the encoder offers no PEFT hooks.
    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError>;

    /// Injects the adapter: base weights frozen, adapter parameters (and declared
    /// `modules_to_save`) trainable. Builds parameters lazily: nothing is allocated until used.
    fn apply(
        &self,
        encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError>;

    /// Whether the float parameter at `path` (relative to the encoder) is trainable once the
    /// adapter is applied. `apply` freezes exactly the parameters for which this is false.
    fn is_trainable(&self, path: &str) -> bool;

    /// Folds the adapter into the base weights and removes it (PEFT's `merge_and_unload`): a plain
    /// encoder with the same outputs. Errors for methods that cannot merge (prefix, prompt).
    fn merge(
        &self,
        encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError>;

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (HF PEFT layout, keys without
    /// the adapter name) into `dir`.
    fn save(&self, encoder: &Component<dyn TextEncoder>, dir: &Path) -> Result<(), CleftError>;

    /// Loads adapter weights from `dir/adapter_model.safetensors` into an encoder this adapter was
    /// applied to. Fails naming every missing key; unexpected keys are reported.
    fn load_weights(
        &self,
        encoder: Component<dyn TextEncoder>,
        dir: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError>;
}

/// One float parameter: its path, shape (read without initialising it) and whether it is
/// configured to train.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedParam {
    /// Dotted path (`h.0.attn.c_attn.weight`).
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
}

impl NamedParam {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Default)]
struct ParamLister {
    path: Vec<String>,
    params: Vec<NamedParam>,
}

impl ModuleVisitor for ParamLister {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params.push(NamedParam {
            path: self.path.join("."),
            shape: param.lazy_shape().to_vec(),
        });
    }
}

/// Every float parameter of `module` with its path and shape, in visit order. Does not
/// initialise lazy parameters, so it costs no tensor allocation.
pub fn named_params<M: Module>(module: &M) -> Vec<NamedParam> {
    let mut lister = ParamLister::default();
    module.visit(&mut lister);
    lister.params
}

struct RequireGradByPath<'a> {
    path: Vec<String>,
    trainable: &'a dyn Fn(&str) -> bool,
}

impl ModuleMapper for RequireGradByPath<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.set_require_grad((self.trainable)(&self.path.join(".")))
    }
}

/// Sets every float parameter of `module` trainable iff `trainable(path)`; lazy parameters stay
/// uninitialised.
pub fn set_trainable_by_path<M: Module>(module: M, trainable: &dyn Fn(&str) -> bool) -> M {
    module.map(&mut RequireGradByPath {
        path: Vec::new(),
        trainable,
    })
}
