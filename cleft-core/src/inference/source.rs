//! [`ImageSource`]: one image given to the [`Predictor`](super::Predictor), in whichever form
//! the application has it.

use std::path::Path;

use crate::error::{CleftError, Result};
use crate::preprocess::{DecodedImage, ImagePreprocessor};

/// One image for inference; a batch is a slice of them, possibly of mixed kinds.
#[derive(Debug, Clone, Copy)]
pub enum ImageSource<'a> {
    /// An image file: PNG, JPEG or DICOM (by content, or a `.dcm` / `.dicom` extension).
    File(&'a Path),
    /// An encoded image in memory: PNG, JPEG or DICOM, told apart by content.
    Encoded(&'a [u8]),
    /// Pixels the application decoded.
    Decoded(&'a DecodedImage),
    /// Model input `[C, S, S]`, row-major, already preprocessed and normalised (used as is).
    Prepared(&'a [f32]),
}

impl<'a> From<&'a Path> for ImageSource<'a> {
    fn from(path: &'a Path) -> Self {
        ImageSource::File(path)
    }
}

impl<'a> From<&'a DecodedImage> for ImageSource<'a> {
    fn from(image: &'a DecodedImage) -> Self {
        ImageSource::Decoded(image)
    }
}

impl ImageSource<'_> {
    /// The model input `[C, S, S]` of image `index` of a batch, read with `preprocessor` (which
    /// the data set of `dataset` declares, if any); `shape` is what the model takes.
    pub(super) fn prepare(
        &self,
        index: usize,
        preprocessor: Option<&dyn ImagePreprocessor>,
        dataset: &str,
        shape: [usize; 3],
    ) -> Result<Vec<f32>> {
        let at = |source: CleftError| CleftError::Image {
            index,
            source: Box::new(source),
        };
        let prepared = match (self, preprocessor) {
            (ImageSource::Prepared(values), _) => values.to_vec(),
            (_, None) => {
                return Err(at(CleftError::Config(format!(
                    "data set `{dataset}` declares no image preprocessing, so only prepared \
                     [C, S, S] inputs can be used with this run"
                ))));
            }
            (ImageSource::File(path), Some(p)) => p.prepare_file(path).map_err(at)?,
            (ImageSource::Encoded(bytes), Some(p)) => p
                .prepare_encoded(bytes, &format!("image {index}"))
                .map_err(at)?,
            (ImageSource::Decoded(image), Some(p)) => {
                image.check().map_err(at)?;
                p.prepare_decoded(image, &format!("image {index}"))
                    .map_err(at)?
            }
        };
        let [c, h, w] = shape;
        if prepared.len() != c * h * w {
            return Err(at(CleftError::Invalid(format!(
                "{} values; the model takes [{c}, {h}, {w}] = {}",
                prepared.len(),
                c * h * w
            ))));
        }
        Ok(prepared)
    }
}
