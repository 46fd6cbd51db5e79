//! [`read_grey`]: PNG / JPEG through `image`, DICOM through `dicom-object`.

use std::io::Read;
use std::path::Path;

use image::DynamicImage;

use crate::dicom::{DicomOptions, read_dicom_frame};
use crate::error::ImagingError;
use crate::grey::{GreyImage, luminance};

/// Reads PNG / JPEG (through `image`) or DICOM (detected by the "DICM" magic at byte 128 or a
/// `.dcm` / `.dicom` extension) as grey 0..=255, shape `[height, width]`.
///
/// Raster files: 8-bit grey is kept as is, 16-bit grey is scaled by `255 / 65535`, colour (with
/// or without alpha, which is ignored) becomes Rec. 601 luminance. DICOM: see
/// [`DicomFrame::to_grey`](crate::DicomFrame::to_grey).
pub fn read_grey(path: &Path, dicom: &DicomOptions) -> Result<GreyImage, ImagingError> {
    if is_dicom(path)? {
        return Ok(read_dicom_frame(path)?.to_grey(dicom));
    }
    let raster_error = |message: String| ImagingError::Raster {
        path: path.to_path_buf(),
        message,
    };
    let image = image::ImageReader::open(path)
        .map_err(|source| ImagingError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|error| raster_error(error.to_string()))?
        .decode()
        .map_err(|error| raster_error(error.to_string()))?;
    Ok(raster_to_grey(&image))
}

fn is_dicom(path: &Path) -> Result<bool, ImagingError> {
    let by_extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("dcm") || extension.eq_ignore_ascii_case("dicom")
        });
    if by_extension {
        return Ok(true);
    }
    let mut head = Vec::with_capacity(132);
    std::fs::File::open(path)
        .and_then(|file| file.take(132).read_to_end(&mut head))
        .map_err(|source| ImagingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head.len() == 132 && &head[128..] == b"DICM")
}

fn raster_to_grey(image: &DynamicImage) -> GreyImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels = match image {
        DynamicImage::ImageLuma8(grey) => grey.as_raw().iter().map(|&v| f32::from(v)).collect(),
        DynamicImage::ImageLuma16(grey) => grey
            .as_raw()
            .iter()
            .map(|&v| f32::from(v) * (255.0 / 65535.0))
            .collect(),
        _ => image
            .to_rgb32f()
            .pixels()
            .map(|p| (luminance(p[0], p[1], p[2]) * 255.0).clamp(0.0, 255.0))
            .collect(),
    };
    GreyImage {
        width,
        height,
        pixels,
    }
}
