//! [`ImageOptions::prepare`] and [`ImageOptions::load`]: decoded image → model input.

use std::path::Path;

use crate::augment::augment;
use crate::error::ImagingError;
use crate::grey::GreyImage;
use crate::options::ImageOptions;
use crate::otsu::{foreground_box, otsu_bin};
use crate::read::read_grey;
use crate::resize::Plane;

impl ImageOptions {
    /// The full pipeline on a decoded image, returning `[channels, image_size, image_size]`
    /// row-major:
    ///
    /// 1. the longest side is resized to `load_size` keeping the aspect ratio (triangle filter
    ///    widened by the downscale factor: antialiased bilinear, like PIL / torchvision);
    /// 2. zero-padded to `[load_size, load_size]`, the image centred;
    /// 3. with `otsu_crop`, cropped to the bounding box of the pixels above Otsu's threshold
    ///    (no crop when there are none);
    /// 4. resized to `[image_size, image_size]` (same filter; the aspect ratio is not kept);
    /// 5. when `augment_seed` is `Some` and `augment.enabled`, augmented with parameters drawn
    ///    from a `StdRng` seeded with it (see [`AugmentOptions`](crate::AugmentOptions));
    /// 6. `/ 255`, then `(x - mean) / std`, repeated to `channels`.
    ///
    /// # Panics
    /// When `image.pixels.len() != image.width * image.height`.
    pub fn prepare(&self, image: &GreyImage, augment_seed: Option<u64>) -> Vec<f32> {
        assert_eq!(
            image.pixels.len(),
            image.width * image.height,
            "GreyImage of {}x{} holds {} pixels",
            image.width,
            image.height,
            image.pixels.len()
        );
        let mut plane = self
            .crop_to_body(image)
            .resized(self.image_size, self.image_size);
        if let Some(seed) = augment_seed
            && self.augment.enabled
        {
            plane = augment(plane, &self.augment, seed);
        }
        let normalised: Vec<f32> = plane
            .pixels
            .iter()
            .map(|&v| (v - self.mean) / self.std)
            .collect();
        normalised.repeat(self.channels)
    }

    /// [`read_grey`] with `self.dicom`, then [`prepare`](Self::prepare): the model input
    /// `[channels, image_size, image_size]` of the file; errors name the file.
    pub fn load(&self, path: &Path, augment_seed: Option<u64>) -> Result<Vec<f32>, ImagingError> {
        let image = read_grey(path, &self.dicom)?;
        Ok(self.prepare(&image, augment_seed))
    }

    /// Steps 1–3 of [`prepare`](Self::prepare), intensities scaled to 0..=1.
    fn crop_to_body(&self, image: &GreyImage) -> Plane {
        if image.width == 0 || image.height == 0 {
            return Plane {
                width: 1,
                height: 1,
                pixels: vec![0.0],
            };
        }
        let plane = Plane {
            width: image.width,
            height: image.height,
            pixels: image
                .pixels
                .iter()
                .map(|&v| (v / 255.0).clamp(0.0, 1.0))
                .collect(),
        };
        let side = self.load_size.max(1);
        let longest = image.width.max(image.height) as f64;
        let fit = |length: usize| {
            ((length as f64 * side as f64 / longest).round() as usize).clamp(1, side)
        };
        let square = plane
            .resized(fit(image.width), fit(image.height))
            .padded_to_square(side);
        if !self.otsu_crop {
            return square;
        }
        let threshold = otsu_bin(&square.pixels, 255.0);
        match foreground_box(&square.pixels, square.width, 255.0, threshold) {
            Some(bounds) => square.cropped(bounds),
            None => square,
        }
    }
}
