//! The optimiser of stage 1 (AdamW as the reference configures it) and gradient arithmetic on
//! the device: squared norm, scaling.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use cleft_core::config::TrainConfig;

struct NoDecayCollector {
    path: Vec<String>,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for NoDecayCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The reference decays the (0-d) logit scale but no 1-D parameter (biases, norms).
        let is_logit_scale = self.path.last().is_some_and(|name| name == "logit_scale");
        if D == 1 && !is_logit_scale {
            self.ids.push(param.id);
        }
    }
}

/// AdamW as the reference configures it: decoupled weight decay on every parameter except 1-D
/// ones (biases, norm weights); the logit scale is decayed.
pub fn optimizer_for<M: Module>(model: &M, config: &TrainConfig) -> ModuleOptimizer {
    let adamw = |weight_decay: f64| {
        AdamWConfig::new()
            .with_beta_1(config.betas[0] as f32)
            .with_beta_2(config.betas[1] as f32)
            .with_epsilon(config.epsilon as f32)
            .with_weight_decay(weight_decay as f32)
    };
    let mut collector = NoDecayCollector {
        path: Vec::new(),
        ids: Vec::new(),
    };
    model.visit(&mut collector);
    adamw(config.weight_decay).init().with_group(
        ParamGroup::from_ids(collector.ids),
        adamw(0.0).build(),
        None,
    )
}

/// Sum of squared gradient entries, accumulated on the device.
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// Multiplies every gradient by a device scalar `[1]`.
pub(crate) struct ScaleGrads<'a> {
    /// The gradients, scaled in place.
    pub(crate) grads: &'a mut GradientsParams,
    /// The factor, `[1]`.
    pub(crate) factor: Tensor<1>,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let factor = self.factor.clone().reshape([1; D]);
            self.grads.register(param.id, grad * factor);
        }
    }
}

/// Sum of the squared gradients of `model`'s parameters, `[1]`, on the device (no read-back).
pub fn gradient_squares<M: Module>(
    model: &M,
    grads: &GradientsParams,
    device: &Device,
) -> Tensor<1> {
    let mut visitor = GradSquares { grads, total: None };
    model.visit(&mut visitor);
    visitor
        .total
        .map(Tensor::inner)
        .unwrap_or_else(|| Tensor::zeros([1], &device.clone().inner()))
}

/// Global L2 norm of the gradients of `model`'s parameters, read back to the host.
pub fn gradient_norm<M: Module>(model: &M, grads: &GradientsParams, device: &Device) -> f64 {
    gradient_squares(model, grads, device)
        .into_scalar::<f64>()
        .sqrt()
}
