//! A third-party vision encoder plugged into cleft: mean-pooled pixels through a small MLP.
//!
//! It shows the whole plugin recipe (module, trait impl, config, registration); `main.rs` trains
//! it with cleft's own trainer against the built-in GPT-2 + LoRA text tower.

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use cleft_core::prelude::*;
use serde::{Deserialize, Serialize};

/// Pools the image on a coarse grid, then applies a two-layer MLP.
#[derive(Module, Debug)]
pub struct GridPoolEncoder {
    hidden: Linear,
    activation: Relu,
    output: Linear,
    #[module(skip)]
    grid: usize,
    #[module(skip)]
    image_size: usize,
}

impl VisionEncoder for GridPoolEncoder {
    /// # Shapes
    /// - `images`: `[B, C, H, W]` with `H, W` multiples of `grid`; pooled `[B, D]`.
    fn forward(&self, images: Tensor<4>) -> VisionOutput {
        let [batch, channels, height, width] = images.dims();
        let (cell_h, cell_w) = (height / self.grid, width / self.grid);
        let cells = images
            .reshape([batch, channels, self.grid, cell_h, self.grid, cell_w])
            .mean_dim(5)
            .mean_dim(3)
            .reshape([batch, channels * self.grid * self.grid]);
        let pooled = self
            .output
            .forward(self.activation.forward(self.hidden.forward(cells)));
        VisionOutput {
            pooled,
            tokens: None,
        }
    }

    fn dim(&self) -> usize {
        self.output.weight.dims()[1]
    }

    fn channels(&self) -> usize {
        self.hidden.weight.dims()[0] / (self.grid * self.grid)
    }

    fn image_size(&self) -> usize {
        self.image_size
    }
}

/// `[vision] type = "grid-pool"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GridPoolConfig {
    /// Cells per side of the pooling grid.
    pub grid: usize,
    /// Input channels.
    pub channels: usize,
    /// Input side in pixels (a multiple of `grid`).
    pub image_size: usize,
    /// MLP hidden width.
    pub hidden: usize,
    /// Output feature size.
    pub dim: usize,
}

impl Default for GridPoolConfig {
    fn default() -> Self {
        Self {
            grid: 8,
            channels: 1,
            image_size: 32,
            hidden: 128,
            dim: 64,
        }
    }
}

#[typetag::serde(name = "grid-pool")]
impl VisionEncoderConfig for GridPoolConfig {
    fn build(&self, device: &Device) -> Result<Component<dyn VisionEncoder>, CleftError> {
        if self.grid == 0 || !self.image_size.is_multiple_of(self.grid) {
            return Err(CleftError::Invalid(format!(
                "vision.image_size = {} must be a multiple of vision.grid = {}",
                self.image_size, self.grid
            )));
        }
        let inputs = self.channels * self.grid * self.grid;
        Ok(Component::<dyn VisionEncoder>::new(GridPoolEncoder {
            hidden: LinearConfig::new(inputs, self.hidden).init(device),
            activation: Relu::new(),
            output: LinearConfig::new(self.hidden, self.dim).init(device),
            grid: self.grid,
            image_size: self.image_size,
        }))
    }
}

cleft_core::register_component!(
    Vision,
    "grid-pool",
    "example third-party encoder: grid mean-pooling + MLP",
    GridPoolConfig
);

/// The built-in plugins plus this crate's encoder.
pub fn registry() -> cleft_core::Registry {
    std::hint::black_box(GridPoolConfig::default as fn() -> GridPoolConfig);
    cleft_builtins::registry()
}
