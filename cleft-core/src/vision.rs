//! The [`VisionEncoder`] component trait.

use burn::prelude::*;

use crate::bridge::DynModule;

/// Output of a vision encoder.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// Pooled image feature, `[B, D]`.
    pub pooled: Tensor<2>,
    /// Token features (class/register/patch tokens), `[B, N, D]`, when the encoder has them.
    pub tokens: Option<Tensor<3>>,
}

/// An image encoder: images `[B, C, H, W]` → pooled features `[B, D]`.
///
/// Implement it on a `#[derive(Module)]` struct; wrap with
/// `Component::<dyn VisionEncoder>::new(encoder)` to place it in a trainable model.
pub trait VisionEncoder: DynModule {
    /// Encodes a batch of images.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`, normalised pixel values, `C = self.channels()`.
    /// - output: pooled `[B, D]` with `D = self.dim()`; tokens `[B, N, D]` if available.
    fn forward(&self, images: Tensor<4>) -> VisionOutput;

    /// Feature dimension `D` of the pooled output.
    fn dim(&self) -> usize;

    /// Number of input channels `C` the encoder expects.
    fn channels(&self) -> usize;

    /// Native input side length in pixels (square images).
    fn image_size(&self) -> usize;
}

crate::component_trait!(VisionEncoder);
