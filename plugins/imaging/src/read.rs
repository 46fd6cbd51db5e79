//! [`read_grey`]: PNG / JPEG through `image`, DICOM through `dicom-object`.

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds (every bad
// byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::io::{BufRead, Cursor, Read, Seek};
use std::path::Path;

use image::DynamicImage;

use crate::dicom::{DicomOptions, decode_dicom_frame, read_dicom_frame};
use crate::error::ImagingError;
use crate::grey::{GreyImage, luminance};

/// Largest width or height of a PNG / JPEG accepted (a 16-bit mammogram is ~4k × 3k).
pub const MAX_SIDE: u32 = 16_384;
/// Most bytes a PNG / JPEG decoder may allocate (one 16384² 16-bit grey image is 512 MiB).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

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
    let reader = image::ImageReader::open(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_raster(reader, path)
}

/// [`read_grey`] on an image file already in memory: DICOM when "DICM" follows a 128-byte
/// preamble, else PNG / JPEG as their content says. `path` is what errors name the bytes by
/// (their file, or a label such as `image 3`); it plays no part in the decoding, so the same
/// bytes read from a file give the same image.
pub fn decode_grey(
    bytes: &[u8],
    path: &Path,
    dicom: &DicomOptions,
) -> Result<GreyImage, ImagingError> {
    if has_dicom_magic(bytes) {
        return Ok(decode_dicom_frame(bytes, path)?.to_grey(dicom));
    }
    decode_raster(image::ImageReader::new(Cursor::new(bytes)), path)
}

fn decode_raster<R: BufRead + Seek>(
    reader: image::ImageReader<R>,
    path: &Path,
) -> Result<GreyImage, ImagingError> {
    let raster_error = |message: String| ImagingError::Raster {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = reader
        .with_guessed_format()
        .map_err(|error| raster_error(error.to_string()))?;
    // A few compressed bytes can declare a gigapixel image: refuse sides and buffers beyond
    // what a radiograph or mammogram needs before anything is allocated.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|error| raster_error(error.to_string()))?;
    Ok(raster_to_grey(&image))
}

fn has_dicom_magic(head: &[u8]) -> bool {
    head.len() >= 132 && head.get(128..132) == Some(b"DICM".as_slice())
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
    Ok(has_dicom_magic(&head))
}

pub(crate) fn raster_to_grey(image: &DynamicImage) -> GreyImage {
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
            .map(|p| {
                let [r, g, b] = p.0;
                (luminance(r, g, b) * 255.0).clamp(0.0, 255.0)
            })
            .collect(),
    };
    GreyImage {
        width,
        height,
        pixels,
    }
}
