//! The built-in per-layer methods: LoRA and IA3 as [`LinearAdapter`] implementations.
#![allow(non_snake_case)] // PEFT's parameter names: `lora_A`, `lora_B`.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::prelude::*;
use cleft_core::CleftError;
use cleft_core::peft::{
    AdapterContext, AdapterParams, BaseLinear, LinearAdapter, Merged, StoredTensor,
};

/// LoRA's down-projection, `[in, r]` here, `[r, in]` in PEFT files.
pub const LORA_A: &str = "lora_A.weight";
/// LoRA's up-projection, `[r, out]` here, `[out, r]` in PEFT files.
pub const LORA_B: &str = "lora_B.weight";
/// IA3's scaling vector.
pub const IA3_L: &str = "ia3_l";

/// LoRA on one layer, activation path: `y = x·W + b + s·(dropout(x)·A)·B`; the base weight is
/// not tracked, so backward never forms a full-size weight gradient.
#[derive(Debug, Clone)]
pub struct LoraLayer {
    /// Rank `r`.
    pub r: usize,
    /// Scale `s = α/r` (or `α/√r` with rsLoRA).
    pub scale: f64,
    dropout: Option<Dropout>,
}

impl LoraLayer {
    /// A LoRA method of rank `r`, scale `scale` and branch-input dropout `dropout` (`[0, 1)`).
    pub fn new(r: usize, scale: f64, dropout: f64) -> Result<Self, CleftError> {
        if r == 0 {
            return Err(CleftError::Invalid("peft.r must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(CleftError::Invalid(format!(
                "peft.lora_dropout = {dropout} must be in [0, 1)"
            )));
        }
        Ok(Self {
            r,
            scale,
            dropout: (dropout > 0.0).then(|| DropoutConfig::new(dropout).init()),
        })
    }

    /// PEFT's initialisation: `A` Kaiming-uniform (`a = √5`, i.e. `U(±1/√in)`), `B` zero, for a
    /// base weight of shape `[in, out]` (lazy; only its shape is read).
    pub fn init_factors(&self, weight: &Param<Tensor<2>>, device: &Device) -> AdapterParams {
        let [d_in, d_out] = weight.lazy_shape().dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Initializer::Uniform {
            min: -bound,
            max: bound,
        }
        .init([d_in, self.r], device);
        let b = Initializer::Zeros.init([self.r, d_out], device);
        AdapterParams::new()
            .with_matrix(LORA_A, a)
            .with_matrix(LORA_B, b)
    }

    /// The branch input: `dropout(x)` with the layer's seed.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`; output the same.
    pub fn branch_input(&self, x: Tensor<2>, context: &AdapterContext) -> Tensor<2> {
        match &self.dropout {
            Some(dropout) => context.dropout(dropout, x),
            None => x,
        }
    }

    /// The unscaled branch `(x·A)·B`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`; output `[rows, out]`.
    pub fn branch(&self, x: Tensor<2>, params: &AdapterParams) -> Tensor<2> {
        x.matmul(params.matrix(LORA_A))
            .matmul(params.matrix(LORA_B))
    }

    /// The weight delta `s·A·B`, detached.
    ///
    /// # Shapes
    /// - output `[in, out]`.
    pub fn delta(&self, params: &AdapterParams) -> Tensor<2> {
        params
            .matrix(LORA_A)
            .detach()
            .matmul(params.matrix(LORA_B).detach())
            * self.scale
    }

    /// PEFT stores both factors transposed (`torch.nn.Linear` layout).
    pub fn stored_factor(name: &str, shape: &[usize]) -> StoredTensor {
        let transpose = name == LORA_A || name == LORA_B;
        let mut file_shape = shape.to_vec();
        if transpose {
            file_shape.reverse();
        }
        StoredTensor {
            suffix: name.to_string(),
            transpose,
            file_shape,
        }
    }
}

impl LinearAdapter for LoraLayer {
    fn method(&self) -> &str {
        "lora"
    }

    fn init(
        &self,
        weight: &Param<Tensor<2>>,
        device: &Device,
    ) -> Result<AdapterParams, CleftError> {
        Ok(self.init_factors(weight, device))
    }

    fn forward(
        &self,
        x: Tensor<2>,
        base: &BaseLinear,
        params: &AdapterParams,
        context: &AdapterContext,
    ) -> Tensor<2> {
        let y = base.forward(x.clone());
        y + self.branch(self.branch_input(x, context), params) * self.scale
    }

    fn merge(&self, base: BaseLinear, params: &AdapterParams) -> Merged {
        Merged {
            base: BaseLinear {
                weight: base.weight + self.delta(params),
                bias: base.bias,
            },
            saved: None,
        }
    }

    fn unmerge(
        &self,
        merged: BaseLinear,
        params: &AdapterParams,
        _: Option<Tensor<1>>,
    ) -> BaseLinear {
        BaseLinear {
            weight: merged.weight - self.delta(params),
            bias: merged.bias,
        }
    }

    fn uses_dropout(&self) -> bool {
        self.dropout.is_some()
    }

    fn stored_as(&self, name: &str, shape: &[usize]) -> StoredTensor {
        Self::stored_factor(name, shape)
    }
}

/// Where an IA3 vector scales a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ia3Position {
    /// Scales the output features (attention targets): `l ⊙ (x·W + b)`.
    #[default]
    Output,
    /// Scales the input features (`feedforward_modules`): `(l ⊙ x)·W + b`.
    Input,
}

/// IA3 on one layer: `y = l ⊙ (x·W + b)` ([`Ia3Position::Output`]) or `y = (l ⊙ x)·W + b`
/// ([`Ia3Position::Input`]).
#[derive(Debug, Clone, Copy)]
pub struct Ia3Layer {
    /// Where the vector applies.
    pub position: Ia3Position,
}

fn row(v: Tensor<1>) -> Tensor<2> {
    v.unsqueeze_dim(0)
}

impl LinearAdapter for Ia3Layer {
    fn method(&self) -> &str {
        "ia3"
    }

    /// A vector of ones, `[out]` or `[in]` by position.
    fn init(
        &self,
        weight: &Param<Tensor<2>>,
        device: &Device,
    ) -> Result<AdapterParams, CleftError> {
        let [d_in, d_out] = weight.lazy_shape().dims();
        let n = match self.position {
            Ia3Position::Output => d_out,
            Ia3Position::Input => d_in,
        };
        let l: Param<Tensor<1>> = Initializer::Ones.init([n], device);
        Ok(AdapterParams::new().with_vector(IA3_L, l))
    }

    fn forward(
        &self,
        x: Tensor<2>,
        base: &BaseLinear,
        params: &AdapterParams,
        _: &AdapterContext,
    ) -> Tensor<2> {
        let l = row(params.vector(IA3_L));
        match self.position {
            Ia3Position::Input => base.forward(x * l),
            Ia3Position::Output => base.forward(x) * l,
        }
    }

    fn merge(&self, base: BaseLinear, params: &AdapterParams) -> Merged {
        let l = params.vector(IA3_L).detach();
        let base = match self.position {
            Ia3Position::Output => BaseLinear {
                weight: base.weight * row(l.clone()),
                bias: base.bias.map(|b| b * l),
            },
            Ia3Position::Input => BaseLinear {
                weight: base.weight * l.unsqueeze_dim::<2>(1),
                bias: base.bias,
            },
        };
        Merged { base, saved: None }
    }

    /// Divides by `l + 1e-8`, as PEFT does (a zero entry cannot be undone exactly).
    fn unmerge(
        &self,
        merged: BaseLinear,
        params: &AdapterParams,
        _: Option<Tensor<1>>,
    ) -> BaseLinear {
        let l = params.vector(IA3_L).detach() + 1e-8;
        match self.position {
            Ia3Position::Output => BaseLinear {
                weight: merged.weight / row(l.clone()),
                bias: merged.bias.map(|b| b / l),
            },
            Ia3Position::Input => BaseLinear {
                weight: merged.weight / l.unsqueeze_dim::<2>(1),
                bias: merged.bias,
            },
        }
    }

    /// PEFT keeps `[out, 1]` for output scaling and `[1, in]` for feed-forward layers.
    fn stored_as(&self, name: &str, shape: &[usize]) -> StoredTensor {
        let n = shape.iter().product();
        StoredTensor {
            suffix: name.to_string(),
            transpose: false,
            file_shape: match self.position {
                Ia3Position::Output => vec![n, 1],
                Ia3Position::Input => vec![1, n],
            },
        }
    }
}
