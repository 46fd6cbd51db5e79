//! [`ImageOptions`] as the core [`ImagePreprocessor`]: the evaluation-time pipeline (never
//! augmented) on files, encoded bytes and decoded pixels, all through [`ImageOptions::prepare`]
//! so the three give bit-identical model input for the same image.

use std::path::Path;

use cleft_core::error::Result;
use cleft_core::preprocess::{DecodedImage, ImagePreprocessor, Pixels};
use image::{DynamicImage, ImageBuffer};

use crate::grey::GreyImage;
use crate::options::ImageOptions;
use crate::read::{decode_grey, raster_to_grey};

impl ImagePreprocessor for ImageOptions {
    fn output_shape(&self) -> [usize; 3] {
        [self.channels, self.image_size, self.image_size]
    }

    fn prepare_encoded(&self, bytes: &[u8], name: &str) -> Result<Vec<f32>> {
        let image = decode_grey(bytes, Path::new(name), &self.dicom)?;
        Ok(self.prepare(&image, None))
    }

    fn prepare_decoded(&self, image: &DecodedImage, name: &str) -> Result<Vec<f32>> {
        image.check()?;
        let grey = decoded_to_grey(image).ok_or_else(|| {
            cleft_core::CleftError::Invalid(format!(
                "{name}: {}x{} pixels do not form an image",
                image.width, image.height
            ))
        })?;
        Ok(self.prepare(&grey, None))
    }

    fn prepare_file(&self, path: &Path) -> Result<Vec<f32>> {
        Ok(self.load(path, None)?)
    }
}

/// Decoded samples to grey 0..=255 exactly as a decoded file's are (through the same
/// conversion); `None` when the sides do not fit a raster image.
fn decoded_to_grey(image: &DecodedImage) -> Option<GreyImage> {
    let (width, height) = (
        u32::try_from(image.width).ok()?,
        u32::try_from(image.height).ok()?,
    );
    let raster = match &image.pixels {
        Pixels::Grey(values) => {
            return Some(GreyImage {
                width: image.width,
                height: image.height,
                pixels: values.clone(),
            });
        }
        Pixels::Grey8(v) => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(width, height, v.clone())?)
        }
        Pixels::Grey16(v) => {
            DynamicImage::ImageLuma16(ImageBuffer::from_raw(width, height, v.clone())?)
        }
        Pixels::Rgb8(v) => {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(width, height, v.clone())?)
        }
    };
    Some(raster_to_grey(&raster))
}
