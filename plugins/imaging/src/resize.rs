//! Resampling helpers on row-major `[height, width]` intensities in 0..=1.

use image::imageops::FilterType;
use image::{DynamicImage, ImageBuffer, Luma};

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
    ///
    /// Goes through a 16-bit `DynamicImage` (quantisation step 1/65535) because its resize is
    /// compiled inside `image` at the dependencies' opt-level; a generic `imageops::resize` on
    /// f32 pixels would be instantiated in this crate: 5x slower in dev builds (RG1: 0.64 s
    /// against 0.13 s per `prepare`).
    pub fn resized(&self, width: usize, height: usize) -> Plane {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let quantised = self
            .pixels
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
            .collect();
        let buffer: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(self.width as u32, self.height as u32, quantised)
                .expect("plane holds width * height pixels");
        let resized = DynamicImage::ImageLuma16(buffer).resize_exact(
            width as u32,
            height as u32,
            FilterType::Triangle,
        );
        let pixels = resized
            .into_luma16()
            .into_raw()
            .into_iter()
            .map(|v| f32::from(v) / 65535.0)
            .collect();
        Plane {
            width,
            height,
            pixels,
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
