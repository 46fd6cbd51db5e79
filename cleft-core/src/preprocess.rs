//! [`ImagePreprocessor`]: how one image becomes the model input `[C, S, S]` outside training,
//! declared by the data set component ([`DatasetConfig::preprocessor`]) so that inference reads
//! images exactly as evaluation did, and [`DecodedImage`], pixels an application decoded itself.
//!
//! [`DatasetConfig::preprocessor`]: crate::registry::DatasetConfig::preprocessor

use std::fmt;
use std::path::Path;

use crate::error::{CleftError, Result};

/// Pixel samples of a [`DecodedImage`], row-major, `width · height` pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// 8-bit grey, one sample per pixel.
    Grey8(Vec<u8>),
    /// 16-bit grey, one sample per pixel (0..=65535 is black..white).
    Grey16(Vec<u16>),
    /// 8-bit RGB, three interleaved samples per pixel.
    Rgb8(Vec<u8>),
    /// Grey intensities already in 0..=255 (e.g. a DICOM frame after the application's own
    /// rescale and windowing), one per pixel.
    Grey(Vec<f32>),
}

impl Pixels {
    /// Samples per pixel: 3 for [`Pixels::Rgb8`], else 1.
    pub fn samples_per_pixel(&self) -> usize {
        match self {
            Pixels::Rgb8(_) => 3,
            Pixels::Grey8(_) | Pixels::Grey16(_) | Pixels::Grey(_) => 1,
        }
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        match self {
            Pixels::Grey8(v) | Pixels::Rgb8(v) => v.len(),
            Pixels::Grey16(v) => v.len(),
            Pixels::Grey(v) => v.len(),
        }
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An image the application decoded itself: `height` rows of `width` pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// The samples, `height · width · samples_per_pixel` of them.
    pub pixels: Pixels,
}

impl DecodedImage {
    /// Refuses an empty image or a sample count that does not match `width × height`.
    pub fn check(&self) -> Result<()> {
        let expected = self
            .width
            .saturating_mul(self.height)
            .saturating_mul(self.pixels.samples_per_pixel());
        if self.width == 0 || self.height == 0 || self.pixels.len() != expected {
            return Err(CleftError::Invalid(format!(
                "decoded image of {}x{} with {} samples per pixel holds {} samples, expected {expected}",
                self.width,
                self.height,
                self.pixels.samples_per_pixel(),
                self.pixels.len()
            )));
        }
        Ok(())
    }
}

/// Turns one image into the model input `[C, S, S]` (row-major f32, normalised as training
/// normalised it), without augmentation: what a data set reads at evaluation time.
///
/// Implemented by the data set plugins with `cleft-imaging` (PNG, JPEG and DICOM decoding,
/// resizing, Otsu crop); the same image given as a file, as its bytes or as its decoded pixels
/// gives bit-identical output.
pub trait ImagePreprocessor: fmt::Debug + Send + Sync {
    /// `[C, S, S]` of every output.
    fn output_shape(&self) -> [usize; 3];

    /// An encoded image (PNG, JPEG or DICOM, told apart by content) to `[C, S, S]`; `name`
    /// names it in errors (its file, or a label such as `image 3`).
    fn prepare_encoded(&self, bytes: &[u8], name: &str) -> Result<Vec<f32>>;

    /// Decoded pixels to `[C, S, S]`; `name` names the image in errors.
    fn prepare_decoded(&self, image: &DecodedImage, name: &str) -> Result<Vec<f32>>;

    /// An image file to `[C, S, S]`; errors name the file. The default reads the file and
    /// calls [`prepare_encoded`](Self::prepare_encoded).
    fn prepare_file(&self, path: &Path) -> Result<Vec<f32>> {
        let bytes = std::fs::read(path).map_err(|e| CleftError::io(path, e))?;
        self.prepare_encoded(&bytes, &path.display().to_string())
    }
}
