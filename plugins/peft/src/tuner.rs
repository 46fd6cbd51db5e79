//! One tuner for every per-layer PEFT method: a method describes its layers ([`LinearMethod`]),
//! and [`Tuner`] does the model-level work once (target matching, injection into the encoder's
//! linear layers, freezing, merge, HF PEFT adapter files).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use cleft_core::peft::{AdapterLoadReport, LinearAdapter};
use cleft_core::{CleftError, Component, PeftAdapter, TextEncoder};

use crate::common::{
    check_modules_to_save, device_of, freeze_except, hooks, hooks_mut, in_modules_to_save,
    layer_specs,
};
use crate::files::{TensorSpec, load_specs, save_specs};
use crate::targets::{TargetModules, resolve_targets};

/// A PEFT method made of one [`LinearAdapter`] per target linear layer (LoRA, IA3, DoRA): the
/// settings of one configuration, as [`Tuner`] needs them.
///
/// A new method is a layer type implementing [`LinearAdapter`] plus this description of its
/// configuration; `Tuner<Method>` is then its [`PeftAdapter`].
pub trait LinearMethod: Clone + Send + Sync + fmt::Debug + 'static {
    /// The method's registered name, also the [`LinearAdapter::method`] of its layers (`"lora"`).
    fn name(&self) -> &'static str;

    /// The linear layers that get an adapter (HF PEFT `target_modules`).
    fn target_modules(&self) -> &TargetModules;

    /// Further encoder modules trained in full and saved with the adapter.
    fn modules_to_save(&self) -> &[String];

    /// Names of the parameters each layer adds, relative to the layer (`lora_A.weight`): they
    /// train, and adapter files store them as the layer's [`LinearAdapter::stored_as`] says.
    fn layer_params(&self) -> &'static [&'static str];

    /// The adapter injected into the target layer at `module` (a path relative to the encoder).
    fn layer(&self, module: &str) -> Result<Arc<dyn LinearAdapter>, CleftError>;

    /// Checks the resolved targets before anything is injected. Default: nothing to check.
    fn check_targets(&self, _targets: &[String]) -> Result<(), CleftError> {
        Ok(())
    }

    /// Whether the parameter at `path` trains although it is neither a layer's own nor in
    /// `modules_to_save` (LoRA's `bias` setting). Default: no.
    fn also_trainable(&self, _path: &str) -> bool {
        false
    }

    /// The `adapter_config.json` written beside the weights; `fan_in_fan_out` is the encoder's
    /// checkpoint layout.
    fn peft_json(&self, fan_in_fan_out: bool) -> serde_json::Value;
}

/// The [`PeftAdapter`] of any [`LinearMethod`]: resolves targets (an error names a pattern that
/// matches nothing), injects one layer adapter per target, freezes everything else, merges, and
/// saves/loads adapter-only files in HF PEFT layout.
#[derive(Debug, Clone)]
pub struct Tuner<M> {
    method: M,
}

impl<M: LinearMethod> Tuner<M> {
    /// A tuner for `method`'s configuration.
    pub fn new(method: M) -> Self {
        Self { method }
    }

    /// The method's configuration.
    pub fn config(&self) -> &M {
        &self.method
    }

    fn specs(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<TensorSpec>, CleftError> {
        let targets = self.targets(encoder)?;
        let layers = targets
            .iter()
            .map(|target| Ok((target.as_str(), self.method.layer(target)?)))
            .collect::<Result<BTreeMap<_, _>, CleftError>>()?;
        let names = self.method.layer_params();
        layer_specs(
            encoder,
            self.method.name(),
            &targets,
            &|path| self.is_trainable(path),
            &|module, name, shape| {
                let layer = layers.get(module).filter(|_| names.contains(&name))?;
                Some(layer.stored_as(name, shape))
            },
        )
    }
}

impl<M: LinearMethod> PeftAdapter for Tuner<M> {
    fn method(&self) -> &str {
        self.method.name()
    }

    fn targets(&self, encoder: &Component<dyn TextEncoder>) -> Result<Vec<String>, CleftError> {
        resolve_targets(
            self.method.target_modules(),
            &hooks(encoder, self.method.name())?.linear_paths(),
        )
    }

    fn apply(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        let targets = self.targets(&encoder)?;
        self.method.check_targets(&targets)?;
        check_modules_to_save(&encoder, self.method.modules_to_save())?;
        let device = device_of(&encoder)?;
        for (path, linear) in hooks_mut(&mut encoder, self.method.name())?.linear_layers_mut() {
            if targets.contains(&path) {
                linear.inject(self.method.layer(&path)?, &device)?;
            }
        }
        Ok(freeze_except(encoder, &|path| self.is_trainable(path)))
    }

    fn is_trainable(&self, path: &str) -> bool {
        let own = self.method.layer_params().iter().any(|name| {
            path.strip_suffix(name)
                .is_some_and(|module| module.ends_with('.'))
        });
        own || self.method.also_trainable(path)
            || in_modules_to_save(self.method.modules_to_save(), path)
    }

    fn merge(
        &self,
        mut encoder: Component<dyn TextEncoder>,
    ) -> Result<Component<dyn TextEncoder>, CleftError> {
        let name = self.method.name();
        for (_, layer) in hooks_mut(&mut encoder, name)?.linear_layers_mut() {
            if layer.adapter().is_some_and(|m| m.method() == name) {
                layer.merge_and_unload();
            }
        }
        Ok(encoder)
    }

    fn save(&self, encoder: &Component<dyn TextEncoder>, dir: &Path) -> Result<(), CleftError> {
        let fan_in_fan_out = hooks(encoder, self.method.name())?.fan_in_fan_out();
        save_specs(
            encoder,
            &self.specs(encoder)?,
            BTreeMap::new(),
            &self.method.peft_json(fan_in_fan_out),
            dir,
        )
    }

    fn load_weights(
        &self,
        encoder: Component<dyn TextEncoder>,
        dir: &Path,
    ) -> Result<(Component<dyn TextEncoder>, AdapterLoadReport), CleftError> {
        let specs = self.specs(&encoder)?;
        load_specs(encoder, &specs, dir)
    }
}
