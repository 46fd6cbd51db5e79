//! Resampling helpers on row-major `[height, width]` intensities in 0..=1.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};

/// A row-major `[height, width]` grey plane with intensities in 0..=1.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plane {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
}

impl Plane {
    /// Resized to `[height, width]` with `image`'s triangle (bilinear) filter, whose support
    /// widens with the downscale factor: an antialiased bilinear like PIL's / torchvision's.
    pub fn resized(&self, width: usize, height: usize) -> Plane {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let buffer: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_raw(self.width as u32, self.height as u32, self.pixels.clone())
                .expect("plane holds width * height pixels");
        let resized = imageops::resize(&buffer, width as u32, height as u32, FilterType::Triangle);
        Plane {
            width,
            height,
            pixels: resized.into_raw(),
        }
    }

    /// Zero-padded to `[side, side]`, the image centred (odd margins put the extra pixel after).
    pub fn padded_to_square(&self, side: usize) -> Plane {
        let (left, top) = ((side - self.width) / 2, (side - self.height) / 2);
        let mut pixels = vec![0.0; side * side];
        for (y, row) in self.pixels.chunks_exact(self.width).enumerate() {
            let start = (top + y) * side + left;
            pixels[start..start + self.width].copy_from_slice(row);
        }
        Plane {
            width: side,
            height: side,
            pixels,
        }
    }

    /// The `[x0, x1) × [y0, y1)` window.
    pub fn cropped(&self, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> Plane {
        let pixels = (y0..y1)
            .flat_map(|y| {
                self.pixels[y * self.width + x0..y * self.width + x1]
                    .iter()
                    .copied()
            })
            .collect();
        Plane {
            width: x1 - x0,
            height: y1 - y0,
            pixels,
        }
    }
}
