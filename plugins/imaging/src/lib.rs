//! Medical image reading (PNG, JPEG, DICOM) and CLEFT's image pipeline.
//!
//! [`read_grey`] decodes a file into a [`GreyImage`] (row-major `[height, width]`, 0..=255);
//! [`ImageOptions::prepare`] turns it into the model input `[channels, image_size, image_size]`:
//! resize the longest side to `load_size`, zero-pad to a square, crop to the Otsu foreground,
//! resize to `image_size`, optionally augment (training reads), normalise. [`decode_grey`]
//! does what [`read_grey`] does on bytes in memory, and `ImageOptions` is the core
//! `ImagePreprocessor` that data sets declare for inference (files, bytes, decoded pixels).
//!
//! The pipeline follows upstream CLEFT's preprocessing: images are grey, scaled to 0–255,
//! MONOCHROME1 inverted, and cropped to the body by Otsu's threshold.

mod augment;
mod dicom;
mod dicom_grey;
mod dicom_lengths;
mod error;
mod grey;
mod options;
mod otsu;
mod pipeline;
mod preprocessor;
mod read;
mod resize;

pub use dicom::{
    DicomFrame, DicomOptions, VoiFunction, VoiWindow, decode_dicom_frame, read_dicom_frame,
};
pub use error::ImagingError;
pub use grey::GreyImage;
pub use options::{AugmentOptions, ImageOptions};
pub use otsu::otsu_threshold;
pub use read::{MAX_DECODED_BYTES, MAX_SIDE, decode_grey, read_grey};
