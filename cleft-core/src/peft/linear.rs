//! [`PeftLinear`]: a linear layer with PEFT injection points (LoRA on the activation path, IA3).
#![allow(non_snake_case)] // PEFT's parameter names: `lora_A`, `lora_B`.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear};
use burn::prelude::*;
use burn::tensor::module::linear;

use crate::error::CleftError;

/// Where an IA3 vector scales a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ia3Position {
    /// Scales the output features (attention targets): `l ⊙ (x·W + b)`.
    #[default]
    Output,
    /// Scales the input features (`feedforward_modules`): `(l ⊙ x)·W + b`.
    Input,
}

/// Non-parameter adapter state of a [`PeftLinear`].
#[derive(Debug, Clone, Default)]
pub struct PeftLinearState {
    /// LoRA scale `α/r` (or `α/√r` with rsLoRA).
    pub lora_scale: f64,
    /// Where the IA3 vector applies.
    pub ia3_position: Ia3Position,
    /// Whether the adapter is currently folded into `weight`/`bias`.
    pub merged: bool,
    /// Seed of this step's LoRA dropout mask (set by the trainer from `(seed, step, layer
    /// path)`); without it the mask comes from burn's unseeded RNG.
    pub dropout_seed: Option<u64>,
}

/// A linear layer `y = x·W + b` (burn layout, `W: [in, out]`, which is also GPT-2's Conv1D layout)
/// with optional PEFT adapters.
///
/// Parameter paths follow HF PEFT without the adapter name: `weight`, `bias`, `lora_A.weight`,
/// `lora_B.weight`, `ia3_l`. The base `weight` keeps its plain path, so base checkpoints load
/// unchanged whether or not an adapter is injected.
///
/// - LoRA (activation path): `y = x·W + b + s·B(A(dropout(x)))`; the base weight is not tracked,
///   so backward never forms a full-size weight gradient.
/// - IA3: `y = l ⊙ (x·W + b)` ([`Ia3Position::Output`]) or `y = (l ⊙ x)·W + b` ([`Ia3Position::Input`]).
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct PeftLinear {
    /// Base weight `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// Base bias `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// LoRA down-projection, weight `[in, r]` (PEFT stores its transpose `[r, in]`).
    pub lora_A: Option<Linear>,
    /// LoRA up-projection, weight `[r, out]` (PEFT stores `[out, r]`).
    pub lora_B: Option<Linear>,
    /// Dropout on the LoRA branch input.
    pub lora_dropout: Option<Dropout>,
    /// IA3 scaling vector, `[out]` or `[in]` by [`PeftLinearState::ia3_position`].
    pub ia3_l: Option<Param<Tensor<1>>>,
    /// Adapter settings.
    #[module(skip)]
    pub state: PeftLinearState,
}

fn broadcast_last<const D: usize>(v: Tensor<1>) -> Tensor<D> {
    let mut shape = [1usize; D];
    shape[D - 1] = v.dims()[0];
    v.reshape(shape)
}

impl PeftLinear {
    /// Wraps a burn [`Linear`] (no adapter yet).
    pub fn from_linear(layer: Linear) -> Self {
        Self {
            weight: layer.weight,
            bias: layer.bias,
            lora_A: None,
            lora_B: None,
            lora_dropout: None,
            ia3_l: None,
            state: PeftLinearState::default(),
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

    /// Applies the layer with its (unmerged) adapters.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`; output `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let active_ia3 = self.ia3_l.as_ref().filter(|_| !self.state.merged);
        let x = match active_ia3 {
            Some(l) if self.state.ia3_position == Ia3Position::Input => {
                x * broadcast_last::<D>(l.val())
            }
            _ => x,
        };
        let mut y = linear(
            x.clone(),
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
        );
        if let Some(l) = active_ia3.filter(|_| self.state.ia3_position == Ia3Position::Output) {
            y = y * broadcast_last::<D>(l.val());
        }
        if let (Some(a), Some(b), false) = (&self.lora_A, &self.lora_B, self.state.merged) {
            let x = match (&self.lora_dropout, self.state.dropout_seed) {
                (Some(dropout), Some(seed)) => {
                    crate::random::draw_seeded(&x.device(), seed, || dropout.forward(x))
                }
                (Some(dropout), None) => dropout.forward(x),
                (None, _) => x,
            };
            y = y + b.forward(a.forward(x)) * self.state.lora_scale;
        }
        y
    }

    /// Adds LoRA factors of rank `r` with PEFT's initialisation: `A` Kaiming-uniform
    /// (`a = √5`, i.e. `U(±1/√in)`), `B` zero. `dropout > 0` adds dropout on the branch input.
    pub fn add_lora(
        &mut self,
        r: usize,
        scale: f64,
        dropout: f64,
        device: &Device,
    ) -> Result<(), CleftError> {
        if !(0.0..1.0).contains(&dropout) {
            return Err(CleftError::Invalid(format!(
                "peft.lora_dropout = {dropout} must be in [0, 1)"
            )));
        }
        let (d_in, d_out) = (self.d_in(), self.d_out());
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Initializer::Uniform {
            min: -bound,
            max: bound,
        }
        .init([d_in, r], device);
        let b = Initializer::Zeros.init([r, d_out], device);
        self.lora_A = Some(Linear {
            weight: a,
            bias: None,
        });
        self.lora_B = Some(Linear {
            weight: b,
            bias: None,
        });
        self.lora_dropout = (dropout > 0.0).then(|| DropoutConfig::new(dropout).init());
        self.state.lora_scale = scale;
        Ok(())
    }

    /// Adds an IA3 vector initialised to ones at `position`.
    pub fn add_ia3(&mut self, position: Ia3Position, device: &Device) {
        let n = match position {
            Ia3Position::Output => self.d_out(),
            Ia3Position::Input => self.d_in(),
        };
        self.ia3_l = Some(Initializer::Ones.init([n], device));
        self.state.ia3_position = position;
    }

    /// The LoRA weight delta `s·A·B` (`[in, out]`), detached from the graph.
    ///
    /// # Shapes
    /// - output `[in, out]`.
    pub fn lora_delta(&self) -> Option<Tensor<2>> {
        let (a, b) = (self.lora_A.as_ref()?, self.lora_B.as_ref()?);
        Some(a.weight.val().detach().matmul(b.weight.val().detach()) * self.state.lora_scale)
    }

    fn set_base(&mut self, weight: Tensor<2>, bias: Option<Tensor<1>>) {
        let weight = weight.detach();
        self.weight = self.weight.clone().map(|_| weight).set_require_grad(false);
        if let (Some(param), Some(bias)) = (self.bias.take(), bias) {
            self.bias = Some(param.map(|_| bias.detach()));
        }
    }

    /// Folds the adapters into `weight`/`bias` (outputs unchanged up to rounding); no-op when
    /// already merged.
    pub fn merge(&mut self) {
        if self.state.merged {
            return;
        }
        let mut weight = self.weight.val();
        let mut bias = self.bias.as_ref().map(Param::val);
        if let Some(delta) = self.lora_delta() {
            weight = weight + delta;
        }
        if let Some(l) = &self.ia3_l {
            let l = l.val().detach();
            match self.state.ia3_position {
                Ia3Position::Output => {
                    weight = weight * l.clone().unsqueeze_dim::<2>(0);
                    bias = bias.map(|b| b * l);
                }
                Ia3Position::Input => weight = weight * l.unsqueeze_dim::<2>(1),
            }
        }
        self.set_base(weight, bias);
        self.state.merged = true;
    }

    /// Undoes [`merge`](Self::merge) (IA3 divides by `l`, as PEFT does, so a zero entry cannot be
    /// undone exactly); no-op when not merged.
    pub fn unmerge(&mut self) {
        if !self.state.merged {
            return;
        }
        let mut weight = self.weight.val();
        let mut bias = self.bias.as_ref().map(Param::val);
        if let Some(l) = &self.ia3_l {
            let l = l.val().detach() + 1e-8;
            match self.state.ia3_position {
                Ia3Position::Output => {
                    weight = weight / l.clone().unsqueeze_dim::<2>(0);
                    bias = bias.map(|b| b / l);
                }
                Ia3Position::Input => weight = weight / l.unsqueeze_dim::<2>(1),
            }
        }
        if let Some(delta) = self.lora_delta() {
            weight = weight - delta;
        }
        self.set_base(weight, bias);
        self.state.merged = false;
    }

    /// Merges and removes every adapter, leaving a plain linear layer.
    pub fn merge_and_unload(&mut self) {
        self.merge();
        self.lora_A = None;
        self.lora_B = None;
        self.lora_dropout = None;
        self.ia3_l = None;
        self.state = PeftLinearState::default();
    }
}
