//! [`ImagingError`]: every failure names the file.

use std::path::PathBuf;

/// A failure to read or decode an image file; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the image file: {source}", path.display())]
    Io {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// PNG / JPEG (or another raster format) decoding failed.
    #[error("{}: cannot decode the image: {message}", path.display())]
    Raster {
        /// The image file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// A DICOM file could not be parsed or its pixel data not decoded.
    #[error("{}: DICOM {stage} failed: {message}", path.display())]
    Dicom {
        /// The DICOM file.
        path: PathBuf,
        /// What was being done (`parsing`, `pixel data decoding`, …).
        stage: &'static str,
        /// What failed.
        message: String,
    },
    /// The DICOM transfer syntax has no decoder in this build.
    #[error(
        "{}: DICOM transfer syntax {uid} ({name}) is not supported: this build decodes \
         uncompressed, deflated, RLE, JPEG (baseline, extended, lossless) and JPEG 2000 pixel data",
        path.display()
    )]
    UnsupportedTransferSyntax {
        /// The DICOM file.
        path: PathBuf,
        /// The transfer syntax UID.
        uid: String,
        /// Its name, or `unknown transfer syntax`.
        name: String,
    },
    /// The DICOM image layout (photometric interpretation, bit depth, samples) is not handled.
    #[error("{}: unsupported DICOM image: {message}", path.display())]
    UnsupportedImage {
        /// The DICOM file.
        path: PathBuf,
        /// Which attribute has which value.
        message: String,
    },
}

impl From<ImagingError> for cleft_core::CleftError {
    fn from(error: ImagingError) -> Self {
        cleft_core::CleftError::Data(error.to_string())
    }
}
