//! The token embeddings both ViTs share (HF `ViTEmbeddings` / `Dinov2Embeddings`): patch
//! projection, CLS token, optional register tokens, and a position table resized to the input's
//! patch grid. Field names are the HF checkpoint keys under `embeddings.`.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use cleft_core::CleftError;

use crate::interpolate::{PosEmbedInterpolation, resize_grid};

/// Patch projection: a `patch × patch` convolution with stride `patch`.
#[derive(Module, Debug)]
pub struct PatchEmbeddings {
    /// `[D, C, p, p]` convolution.
    pub projection: Conv2d,
}

/// CLS token, optional mask and register tokens, position table and patch projection.
#[derive(Module, Debug)]
pub struct VitEmbeddings {
    /// `[1, 1, D]`.
    pub cls_token: Param<Tensor<3>>,
    /// `[1, D]`, used only by masked-image pre-training; DINOv2 checkpoints carry it (kept for
    /// parity), HF `ViTModel` ones do not.
    pub mask_token: Option<Param<Tensor<2>>>,
    /// `[1, R, D]` register tokens (`None` without registers).
    pub register_tokens: Option<Param<Tensor<3>>>,
    /// `[1, 1 + G·G, D]` for the native grid `G = image_size / patch_size`.
    pub position_embeddings: Param<Tensor<3>>,
    /// Patch projection.
    pub patch_embeddings: PatchEmbeddings,
}

impl VitEmbeddings {
    /// Position table for a `rows × cols` patch grid: the stored table when it is the native
    /// grid, else its patch part resized with `interpolation` (see [`crate::interpolate`]).
    ///
    /// # Shapes
    /// - output `[1, 1 + rows·cols, D]`.
    pub fn position_table(
        &self,
        rows: usize,
        cols: usize,
        interpolation: PosEmbedInterpolation,
    ) -> Tensor<3> {
        let table = self.position_embeddings.val();
        let [_, tokens, dim] = table.dims();
        let grid = ((tokens - 1) as f64).sqrt().round() as usize;
        if rows == grid && cols == grid {
            return table;
        }
        let cls = table.clone().slice([0..1, 0..1]);
        let patches = table
            .slice([0..1, 1..tokens])
            .reshape([grid, grid, dim])
            .permute([2, 0, 1]);
        let resized = resize_grid(patches, rows, cols, interpolation);
        let patches = resized.permute([1, 2, 0]).reshape([1, rows * cols, dim]);
        Tensor::cat(vec![cls, patches], 1)
    }

    /// The input tokens of the first block: CLS, then the registers (if any), then one token
    /// per patch; CLS and patches carry their position embeddings, registers none.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`; output `[B, 1 + R + (H/p)(W/p), D]`.
    pub fn forward(
        &self,
        images: Tensor<4>,
        patch_size: usize,
        interpolation: PosEmbedInterpolation,
    ) -> Tensor<3> {
        let [batch, _, height, width] = images.dims();
        let (rows, cols) = (height / patch_size, width / patch_size);
        let patches = self.patch_embeddings.projection.forward(images);
        let dim = patches.dims()[1];
        let patches = patches.reshape([batch, dim, rows * cols]).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([batch, 1, dim]);
        let x = Tensor::cat(vec![cls, patches], 1) + self.position_table(rows, cols, interpolation);
        match &self.register_tokens {
            None => x,
            Some(registers) => {
                let registers = registers.val();
                let count = registers.dims()[1];
                let tokens = x.dims()[1];
                Tensor::cat(
                    vec![
                        x.clone().slice([0..batch, 0..1]),
                        registers.expand([batch, count, dim]),
                        x.slice([0..batch, 1..tokens]),
                    ],
                    1,
                )
            }
        }
    }
}

/// Checks the sizes both ViTs need: `hidden_size` divisible by `num_attention_heads`, and
/// `image_size` a multiple of `patch_size`. Errors name the `vision.` keys.
pub fn check_geometry(
    hidden_size: usize,
    num_attention_heads: usize,
    image_size: usize,
    patch_size: usize,
) -> Result<(), CleftError> {
    if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
        return Err(CleftError::Invalid(format!(
            "vision.hidden_size = {hidden_size} is not divisible by vision.num_attention_heads = \
             {num_attention_heads}"
        )));
    }
    if patch_size == 0 || !image_size.is_multiple_of(patch_size) {
        return Err(CleftError::Invalid(format!(
            "vision.image_size = {image_size} is not a multiple of vision.patch_size = {patch_size}"
        )));
    }
    Ok(())
}
