//! [`PeftLinear`]: a linear layer into which any [`LinearAdapter`] method can be injected.

use std::sync::Arc;

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module::linear;

use super::layer::{AdapterContext, AdapterParams, AdapterTensor, BaseLinear, LinearAdapter};
use crate::error::CleftError;

/// The method and parameters injected into one [`PeftLinear`].
#[derive(Debug, Clone)]
struct Injected {
    method: Arc<dyn LinearAdapter>,
    params: AdapterParams,
    /// `Some` while folded into `weight`/`bias`, holding what unmerge needs.
    merged: Option<Option<Tensor<1>>>,
}

/// A linear layer `y = x·W + b` (burn layout, `W: [in, out]`, which is also GPT-2's Conv1D layout)
/// with an optional adapter method ([`LinearAdapter`]: LoRA, IA3, a plugin's DoRA, …).
///
/// Parameter paths: `weight`, `bias`, then the method's own names (`lora_A.weight`,
/// `lora_B.weight`, `ia3_l`, `lora_magnitude_vector`, …), HF PEFT's names without the adapter
/// name. The base `weight` keeps its plain path, so base checkpoints load unchanged whether or not
/// an adapter is injected.
#[derive(Debug, Clone)]
pub struct PeftLinear {
    /// Base weight `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// Base bias `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    injected: Option<Injected>,
    /// Seed of this step's dropout mask (set by the trainer, see
    /// [`set_dropout_seeds`](super::set_dropout_seeds)).
    pub dropout_seed: Option<u64>,
}

impl PeftLinear {
    /// Wraps a burn [`Linear`] (no adapter yet).
    pub fn from_linear(layer: Linear) -> Self {
        Self {
            weight: layer.weight,
            bias: layer.bias,
            injected: None,
            dropout_seed: None,
        }
    }

    /// Input features.
    pub fn d_in(&self) -> usize {
        self.weight.lazy_shape()[0]
    }

    /// Output features.
    pub fn d_out(&self) -> usize {
        self.weight.lazy_shape()[1]
    }

    fn base(&self) -> BaseLinear {
        BaseLinear {
            weight: self.weight.val(),
            bias: self.bias.as_ref().map(Param::val),
        }
    }

    /// Applies the layer with its adapter (unless merged).
    ///
    /// # Shapes
    /// - `x`: `[..., in]`; output `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let bias = self.bias.as_ref().map(Param::val);
        let Some(injected) = self.injected.as_ref().filter(|i| i.merged.is_none()) else {
            return linear(x, self.weight.val(), bias);
        };
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let context = AdapterContext {
            dropout_seed: self.dropout_seed,
        };
        let base = BaseLinear {
            weight: self.weight.val(),
            bias,
        };
        let y = injected
            .method
            .forward(x.reshape([rows, d_in]), &base, &injected.params, &context);
        let mut out = dims;
        out[D - 1] = self.d_out();
        y.reshape(out)
    }

    /// Injects `method`, creating its parameters (PEFT's initialisation). Errors when the layer
    /// already carries an adapter.
    pub fn inject(
        &mut self,
        method: Arc<dyn LinearAdapter>,
        device: &Device,
    ) -> Result<(), CleftError> {
        if let Some(existing) = &self.injected {
            return Err(CleftError::Invalid(format!(
                "cannot inject `{}`: the layer already carries `{}`",
                method.method(),
                existing.method.method()
            )));
        }
        let params = method.init(&self.weight, device)?;
        self.injected = Some(Injected {
            method,
            params,
            merged: None,
        });
        Ok(())
    }

    /// The injected method, if any.
    pub fn adapter(&self) -> Option<&dyn LinearAdapter> {
        self.injected.as_ref().map(|i| i.method.as_ref())
    }

    /// The injected method's parameters, if any.
    pub fn adapter_params(&self) -> Option<&AdapterParams> {
        self.injected.as_ref().map(|i| &i.params)
    }

    /// Whether the adapter is currently folded into `weight`/`bias`.
    pub fn is_merged(&self) -> bool {
        self.injected.as_ref().is_some_and(|i| i.merged.is_some())
    }

    fn set_base(&mut self, base: BaseLinear) {
        let weight = base.weight.detach();
        self.weight = self.weight.clone().map(|_| weight).set_require_grad(false);
        if let (Some(param), Some(bias)) = (self.bias.take(), base.bias) {
            self.bias = Some(param.map(|_| bias.detach()));
        }
    }

    /// Folds the adapter into `weight`/`bias` (outputs unchanged up to rounding); no-op without an
    /// adapter or when already merged.
    pub fn merge(&mut self) {
        let Some(injected) = self.injected.as_ref().filter(|i| i.merged.is_none()) else {
            return;
        };
        let merged = injected.method.merge(self.base(), &injected.params);
        self.set_base(merged.base);
        if let Some(injected) = self.injected.as_mut() {
            injected.merged = Some(merged.saved);
        }
    }

    /// Undoes [`merge`](Self::merge); no-op when not merged.
    pub fn unmerge(&mut self) {
        let Some(injected) = self.injected.as_ref() else {
            return;
        };
        let Some(saved) = injected.merged.clone() else {
            return;
        };
        let base = injected
            .method
            .unmerge(self.base(), &injected.params, saved);
        self.set_base(base);
        if let Some(injected) = self.injected.as_mut() {
            injected.merged = None;
        }
    }

    /// Merges and removes the adapter, leaving a plain linear layer.
    pub fn merge_and_unload(&mut self) {
        self.merge();
        self.injected = None;
        self.dropout_seed = None;
    }
}

const CONTAINER: &str = "Struct:PeftLinear";
const NESTED: &str = "Struct:AdapterParams";

fn enter_path(name: &str, mut enter: impl FnMut(&str, &str)) {
    for (i, segment) in name.split('.').enumerate() {
        enter(segment, if i == 0 { CONTAINER } else { NESTED });
    }
}

fn exit_path(name: &str, mut exit: impl FnMut(&str, &str)) {
    let segments: Vec<&str> = name.split('.').collect();
    for (i, segment) in segments.iter().enumerate().rev() {
        exit(segment, if i == 0 { CONTAINER } else { NESTED });
    }
}

impl PeftLinear {
    /// Applies `f` to every adapter parameter (used by the Module impl).
    fn map_adapter(mut self, mut f: impl FnMut(&str, AdapterTensor) -> AdapterTensor) -> Self {
        if let Some(injected) = self.injected.as_mut() {
            let entries = std::mem::take(&mut injected.params.entries);
            injected.params.entries = entries
                .into_iter()
                .map(|(name, tensor)| {
                    let tensor = f(&name, tensor);
                    (name, tensor)
                })
                .collect();
        }
        self
    }
}

fn map_tensor(
    tensor: AdapterTensor,
    vector: impl FnOnce(Param<Tensor<1>>) -> Param<Tensor<1>>,
    matrix: impl FnOnce(Param<Tensor<2>>) -> Param<Tensor<2>>,
) -> AdapterTensor {
    match tensor {
        AdapterTensor::Vector(p) => AdapterTensor::Vector(vector(p)),
        AdapterTensor::Matrix(p) => AdapterTensor::Matrix(matrix(p)),
    }
}

impl Module for PeftLinear {
    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        visitor.enter_module("weight", CONTAINER);
        self.weight.visit(visitor);
        visitor.exit_module("weight", CONTAINER);
        if let Some(bias) = &self.bias {
            visitor.enter_module("bias", CONTAINER);
            bias.visit(visitor);
            visitor.exit_module("bias", CONTAINER);
        }
        if let Some(injected) = &self.injected {
            for (name, tensor) in &injected.params.entries {
                enter_path(name, |s, c| visitor.enter_module(s, c));
                match tensor {
                    AdapterTensor::Vector(p) => p.visit(visitor),
                    AdapterTensor::Matrix(p) => p.visit(visitor),
                }
                exit_path(name, |s, c| visitor.exit_module(s, c));
            }
        }
    }

    fn map<M: ModuleMapper>(mut self, mapper: &mut M) -> Self {
        mapper.enter_module("weight", CONTAINER);
        self.weight = Module::map(self.weight, mapper);
        mapper.exit_module("weight", CONTAINER);
        if let Some(bias) = self.bias.take() {
            mapper.enter_module("bias", CONTAINER);
            self.bias = Some(Module::map(bias, mapper));
            mapper.exit_module("bias", CONTAINER);
        }
        self.map_adapter(|name, tensor| {
            enter_path(name, |s, c| mapper.enter_module(s, c));
            let tensor = match tensor {
                AdapterTensor::Vector(p) => AdapterTensor::Vector(Module::map(p, mapper)),
                AdapterTensor::Matrix(p) => AdapterTensor::Matrix(Module::map(p, mapper)),
            };
            exit_path(name, |s, c| mapper.exit_module(s, c));
            tensor
        })
    }

    fn collect_devices(&self, devices: Devices) -> Devices {
        let mut devices = self.weight.collect_devices(devices);
        if let Some(bias) = &self.bias {
            devices = bias.collect_devices(devices);
        }
        if let Some(injected) = &self.injected {
            for (_, tensor) in &injected.params.entries {
                devices = match tensor {
                    AdapterTensor::Vector(p) => p.collect_devices(devices),
                    AdapterTensor::Matrix(p) => p.collect_devices(devices),
                };
            }
        }
        devices
    }

    fn to_device(mut self, device: &Device) -> Self {
        self.weight = self.weight.to_device(device);
        self.bias = self.bias.map(|b| b.to_device(device));
        if let Some(injected) = self.injected.as_mut() {
            injected.merged = injected
                .merged
                .take()
                .map(|saved| saved.map(|t| t.to_device(device)));
        }
        self.map_adapter(|_, t| map_tensor(t, |p| p.to_device(device), |p| p.to_device(device)))
    }

    fn fork(mut self, device: &Device) -> Self {
        self.weight = self.weight.fork(device);
        self.bias = self.bias.map(|b| b.fork(device));
        if let Some(injected) = self.injected.as_mut() {
            injected.merged = injected
                .merged
                .take()
                .map(|saved| saved.map(|t| t.to_device(device)));
        }
        self.map_adapter(|_, t| map_tensor(t, |p| p.fork(device), |p| p.fork(device)))
    }

    fn valid(&self) -> Self {
        let mut valid = self.clone();
        valid.weight = self.weight.valid();
        valid.bias = self.bias.as_ref().map(Module::valid);
        valid.map_adapter(|_, t| map_tensor(t, |p| p.valid(), |p| p.valid()))
    }

    fn train(mut self) -> Self {
        self.weight = self.weight.train();
        self.bias = self.bias.map(Module::train);
        self.map_adapter(|_, t| map_tensor(t, Module::train, Module::train))
    }

    fn materialize(mut self) -> Self {
        self.weight = self.weight.materialize();
        self.bias = self.bias.map(Module::materialize);
        self.map_adapter(|_, t| map_tensor(t, Module::materialize, Module::materialize))
    }
}

impl ModuleDisplayDefault for PeftLinear {
    fn content(&self, content: Content) -> Option<Content> {
        let method = self.adapter().map_or("none", |m| m.method());
        content
            .add_formatted(&format!(
                "PeftLinear {{ d_in: {}, d_out: {}, bias: {}, adapter: {method}, merged: {} }}",
                self.d_in(),
                self.d_out(),
                self.bias.is_some(),
                self.is_merged()
            ))
            .optional()
    }

    fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

impl ModuleDisplay for PeftLinear {}

impl std::fmt::Display for PeftLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&ModuleDisplay::format(self, Default::default()))
    }
}
