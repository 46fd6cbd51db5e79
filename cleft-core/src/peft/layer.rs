//! The open per-layer PEFT interface: a method (LoRA, IA3, DoRA, a plugin's own) supplies a
//! [`LinearAdapter`] and the parameters it made ([`AdapterParams`]); a [`PeftLinear`] holds them and
//! calls the method for its forward pass, merge and unmerge.
//!
//! [`PeftLinear`]: super::PeftLinear

use std::fmt;

use burn::module::Param;
use burn::nn::Dropout;
use burn::prelude::*;

use crate::error::CleftError;

/// One adapter parameter: a vector or a matrix.
#[derive(Debug, Clone)]
pub enum AdapterTensor {
    /// A 1-D parameter (IA3's `ia3_l`, DoRA's magnitude).
    Vector(Param<Tensor<1>>),
    /// A 2-D parameter (LoRA's factors).
    Matrix(Param<Tensor<2>>),
}

impl AdapterTensor {
    /// The parameter's shape (read without initialising it).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Self::Vector(p) => p.lazy_shape().to_vec(),
            Self::Matrix(p) => p.lazy_shape().to_vec(),
        }
    }
}

/// The named parameters an adapter method added to one layer, in a fixed order.
///
/// Names are the parameter paths relative to the layer and may be dotted: LoRA's `lora_A.weight`
/// sits at `h.0.attn.c_attn.lora_A.weight` in the encoder, exactly HF PEFT's name without the
/// adapter name, so optimizers, freezing, checkpoints and adapter files see stable paths.
#[derive(Debug, Clone, Default)]
pub struct AdapterParams {
    pub(crate) entries: Vec<(String, AdapterTensor)>,
}

impl AdapterParams {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vector parameter.
    ///
    /// # Shapes
    /// - `param`: `[n]`.
    pub fn with_vector(mut self, name: &str, param: Param<Tensor<1>>) -> Self {
        self.entries
            .push((name.to_string(), AdapterTensor::Vector(param)));
        self
    }

    /// Adds a matrix parameter.
    ///
    /// # Shapes
    /// - `param`: `[rows, cols]`.
    pub fn with_matrix(mut self, name: &str, param: Param<Tensor<2>>) -> Self {
        self.entries
            .push((name.to_string(), AdapterTensor::Matrix(param)));
        self
    }

    /// Names and shapes, in order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.entries
            .iter()
            .map(|(name, tensor)| (name.clone(), tensor.shape()))
            .collect()
    }

    /// Whether a parameter called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// The current value of vector `name` (tracked by autodiff when it requires grad).
    ///
    /// # Panics
    /// When the method asks for a parameter it did not create: the parameter set of a layer is
    /// fixed by [`LinearAdapter::init`] and loading only replaces values, so this is a bug in the
    /// method, never a consequence of user input.
    ///
    /// # Shapes
    /// - output `[n]`.
    pub fn vector(&self, name: &str) -> Tensor<1> {
        match self.entries.iter().find(|(n, _)| n == name) {
            Some((_, AdapterTensor::Vector(p))) => p.val(),
            _ => panic!("adapter method bug: no vector parameter `{name}` in {self:?}"),
        }
    }

    /// The current value of matrix `name` (see [`vector`](Self::vector) for the panic rule).
    ///
    /// # Shapes
    /// - output `[rows, cols]`.
    pub fn matrix(&self, name: &str) -> Tensor<2> {
        match self.entries.iter().find(|(n, _)| n == name) {
            Some((_, AdapterTensor::Matrix(p))) => p.val(),
            _ => panic!("adapter method bug: no matrix parameter `{name}` in {self:?}"),
        }
    }
}

/// A linear layer's base parameters, `y = x·W + b`, as plain tensors.
#[derive(Debug, Clone)]
pub struct BaseLinear {
    /// `W`, burn layout `[in, out]`.
    pub weight: Tensor<2>,
    /// `b`, `[out]`.
    pub bias: Option<Tensor<1>>,
}

impl BaseLinear {
    /// `x·W + b`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`; output `[rows, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        burn::tensor::module::linear(x, self.weight.clone(), self.bias.clone())
    }

    /// Input features.
    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output features.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// Per-call state a method may use in its forward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdapterContext {
    /// Seed of this step's dropout mask for this layer (set by the trainer from `(seed, step,
    /// layer path)`); without it, masks come from burn's unseeded RNG.
    pub dropout_seed: Option<u64>,
}

impl AdapterContext {
    /// Applies `dropout` to `x` with this layer's seed when one is set.
    ///
    /// # Shapes
    /// - `x`: any; output the same.
    pub fn dropout<const D: usize>(&self, dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
        match self.dropout_seed {
            Some(seed) => crate::random::draw_seeded(&x.device(), seed, || dropout.forward(x)),
            None => dropout.forward(x),
        }
    }
}

/// How an adapter parameter is stored in an HF PEFT `adapter_model.safetensors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTensor {
    /// Key suffix after the layer's module path (`lora_A.weight`, `lora_magnitude_vector`).
    pub suffix: String,
    /// The file holds the transpose of the (2-D) parameter.
    pub transpose: bool,
    /// Shape in the file (same number of elements as the parameter).
    pub file_shape: Vec<usize>,
}

/// Result of [`LinearAdapter::merge`].
#[derive(Debug, Clone)]
pub struct Merged {
    /// The base parameters with the adapter folded in.
    pub base: BaseLinear,
    /// A per-feature vector the method needs to undo the merge exactly (DoRA's weight norm at
    /// merge time), handed back to [`LinearAdapter::unmerge`].
    ///
    /// # Shapes
    /// - `[out]` or `[in]`, as the method chooses.
    pub saved: Option<Tensor<1>>,
}

/// One PEFT method's behaviour on one linear layer: its parameters, forward pass, merge and
/// unmerge, and how its parameters are named in HF PEFT files.
///
/// The built-in LoRA and IA3 (`cleft-peft`) and shared-library methods such as
/// `examples/plugin-dora` implement it. A [`PeftLinear`](super::PeftLinear) keeps the method as
/// `Arc<dyn LinearAdapter>` beside the [`AdapterParams`] it made; the parameters live in the
/// encoder's module tree, the method object holds only settings (rank, scale, position, dropout).
///
/// Forward passes see rows: `x` is the layer input flattened to `[rows, in]`.
pub trait LinearAdapter: Send + Sync + fmt::Debug {
    /// The method's name (`"lora"`, `"ia3"`, `"dora"`).
    fn method(&self) -> &str;

    /// Creates this layer's parameters (PEFT's initialisation) for a layer whose base weight is
    /// `weight`.
    ///
    /// `weight` may still be lazy (burn initialises on first access, and cleft's seeded
    /// initialisation visits parameters in module order): read only its shape here, or read its
    /// value inside a lazy initialiser of your own parameter (`Param::uninitialized` with a clone
    /// of `weight`, which shares its lazy state), as DoRA's magnitude does. Reading it eagerly
    /// would draw it outside the seeded order.
    ///
    /// # Shapes
    /// - `weight`: `[in, out]`.
    fn init(&self, weight: &Param<Tensor<2>>, device: &Device)
    -> Result<AdapterParams, CleftError>;

    /// The adapted layer's output.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`; output `[rows, out]`.
    fn forward(
        &self,
        x: Tensor<2>,
        base: &BaseLinear,
        params: &AdapterParams,
        context: &AdapterContext,
    ) -> Tensor<2>;

    /// Folds the adapter into the base parameters (outputs unchanged up to rounding). Values
    /// are detached.
    fn merge(&self, base: BaseLinear, params: &AdapterParams) -> Merged;

    /// Undoes [`merge`](Self::merge), given what it saved.
    fn unmerge(
        &self,
        merged: BaseLinear,
        params: &AdapterParams,
        saved: Option<Tensor<1>>,
    ) -> BaseLinear;

    /// Whether forward draws a dropout mask (the trainer then seeds it per step and layer).
    fn uses_dropout(&self) -> bool {
        false
    }

    /// How parameter `name` (of shape `shape`) is stored in an HF PEFT adapter file. Default:
    /// same name, same shape.
    fn stored_as(&self, name: &str, shape: &[usize]) -> StoredTensor {
        StoredTensor {
            suffix: name.to_string(),
            transpose: false,
            file_shape: shape.to_vec(),
        }
    }
}
