//! Parameter values of a module, for tests that compare weights before and after training or
//! across runs (the value-reading twin of `cleft_core::peft::named_params`, which lists paths and
//! shapes without touching tensors).

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use crate::golden::values;

#[derive(Default)]
struct ParamValues {
    path: Vec<String>,
    values: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for ParamValues {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.values.push((self.path.join("."), values(param.val())));
    }
}

/// Every float parameter of `module` by dotted path, in visit order, its values as `f32`.
pub fn param_values<M: Module>(module: &M) -> Vec<(String, Vec<f32>)> {
    let mut visitor = ParamValues::default();
    module.visit(&mut visitor);
    visitor.values
}
