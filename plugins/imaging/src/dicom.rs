//! DICOM decoding: [`read_dicom_frame`] yields frame 0's stored samples and the attributes the
//! grey conversion needs ([`DicomFrame::to_grey`], in `dicom_grey.rs`).

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds (every bad
// byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::path::{Path, PathBuf};

use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTable, OpenFileOptions};
use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelDecoder, PixelRepresentation,
    PlanarConfiguration,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::error::ImagingError;

/// How DICOM pixel values become grey (a `dicom` TOML table inside `[data.image]`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DicomOptions {
    /// Apply the file's first VOI window (WindowCenter / WindowWidth, VOILUTFunction) instead of
    /// min-max scaling the modality values; files without a window are min-max scaled anyway.
    pub voi_window: bool,
}

/// The VOI LUT function of a window (DICOM PS3.3 C.11.2.1.2–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiFunction {
    /// `LINEAR` (the default).
    Linear,
    /// `LINEAR_EXACT`.
    LinearExact,
    /// `SIGMOID`.
    Sigmoid,
}

/// A VOI window on modality values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiWindow {
    /// WindowCenter.
    pub center: f64,
    /// WindowWidth.
    pub width: f64,
    /// VOILUTFunction.
    pub function: VoiFunction,
}

/// Frame 0 of a DICOM image as stored, with the attributes that give it meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomFrame {
    /// Rows (the image height).
    pub rows: usize,
    /// Columns (the image width).
    pub columns: usize,
    /// SamplesPerPixel: 1 (monochrome) or 3 (colour).
    pub samples_per_pixel: usize,
    /// BitsAllocated: 8 or 16.
    pub bits_allocated: u16,
    /// BitsStored.
    pub bits_stored: u16,
    /// PhotometricInterpretation after decoding (compressed colour is decoded to `RGB`).
    pub photometric_interpretation: String,
    /// The transfer syntax UID of the file.
    pub transfer_syntax: String,
    /// NumberOfFrames (only frame 0 is decoded).
    pub number_of_frames: u32,
    /// Stored sample values of frame 0, shape `[rows, columns, samples_per_pixel]` row-major,
    /// already masked to BitsStored and sign-extended when PixelRepresentation is signed.
    pub stored: Vec<i32>,
    /// RescaleSlope (1 when absent).
    pub rescale_slope: f64,
    /// RescaleIntercept (0 when absent).
    pub rescale_intercept: f64,
    /// The first VOI window, when the file has one.
    pub window: Option<VoiWindow>,
}

/// Decodes frame 0 of a DICOM file (multi-frame files: the other frames are ignored).
///
/// Decodes every transfer syntax `dicom-pixeldata` can with the `native` and `openjp2`
/// features: implicit / explicit VR little endian, explicit VR big endian, deflated, RLE
/// lossless, JPEG baseline / extended / lossless, JPEG 2000 (lossless and lossy; HTJ2K is
/// registered with the same decoder but untested here). Others (JPEG-LS, JPEG XL, video, unknown
/// UIDs) are refused with [`ImagingError::UnsupportedTransferSyntax`] naming the UID and its name.
/// Unreadable or truncated files give [`ImagingError::Dicom`] naming the file and the failing
/// step.
pub fn read_dicom_frame(path: &Path) -> Result<DicomFrame, ImagingError> {
    let bytes = std::fs::read(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_dicom_frame(&bytes, path)
}

/// [`read_dicom_frame`] on a DICOM file already in memory (with or without its 128-byte
/// preamble); `path` is what errors name it by (its file, or a label such as `image 3`).
pub fn decode_dicom_frame(bytes: &[u8], path: &Path) -> Result<DicomFrame, ImagingError> {
    // Before dicom-object allocates what element headers declare (see `dicom_lengths`).
    crate::dicom_lengths::check_declared_lengths(bytes).map_err(|message| ImagingError::Dicom {
        path: path.to_path_buf(),
        stage: "parsing",
        message,
    })?;
    let object = OpenFileOptions::new()
        .read_preamble(preamble_of(bytes))
        .from_reader(bytes)
        .map_err(|error| match unsupported_transfer_syntax(bytes, path) {
            Some(unsupported) => unsupported,
            None => dicom_error(path, "parsing", error),
        })?;
    let transfer_syntax = object
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    check_transfer_syntax(path, &transfer_syntax)?;
    let decoded = object
        .decode_pixel_data_frame(0)
        .map_err(|error| dicom_error(path, "pixel data decoding", error))?;
    let stored = stored_samples(path, &decoded)?;
    let rescale = decoded
        .rescale()
        .map_err(|error| dicom_error(path, "reading RescaleSlope/RescaleIntercept", error))?
        .first()
        .copied();
    Ok(DicomFrame {
        rows: decoded.rows() as usize,
        columns: decoded.columns() as usize,
        samples_per_pixel: decoded.samples_per_pixel() as usize,
        bits_allocated: decoded.bits_allocated(),
        bits_stored: decoded.bits_stored(),
        photometric_interpretation: decoded.photometric_interpretation().to_string(),
        transfer_syntax,
        number_of_frames: object_frames(&object),
        stored,
        rescale_slope: rescale.map_or(1.0, |r| r.slope),
        rescale_intercept: rescale.map_or(0.0, |r| r.intercept),
        window: first_window(path, &decoded)?,
    })
}

/// The error with its chain of causes (the top-level messages of `dicom-object` are terse).
fn dicom_error(path: &Path, stage: &'static str, error: impl std::error::Error) -> ImagingError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_message = cause.to_string();
        if !message.contains(&cause_message) {
            message = format!("{message}: {cause_message}");
        }
        source = cause.source();
    }
    ImagingError::Dicom {
        path: path.to_path_buf(),
        stage,
        message,
    }
}

fn object_frames(object: &dicom_object::DefaultDicomObject) -> u32 {
    object
        .element_opt(dicom_dictionary_std::tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|element| element.to_int::<u32>().ok())
        .unwrap_or(1)
}

fn check_transfer_syntax(path: &Path, uid: &str) -> Result<(), ImagingError> {
    let unsupported = |name: &str| ImagingError::UnsupportedTransferSyntax {
        path: PathBuf::from(path),
        uid: uid.to_string(),
        name: name.to_string(),
    };
    match TransferSyntaxRegistry.get(uid) {
        None => Err(unsupported("unknown transfer syntax")),
        Some(ts) if !ts.can_decode_all() => Err(unsupported(ts.name())),
        Some(_) => Ok(()),
    }
}

/// Whether `bytes` start with the 128-byte preamble ("DICM" after it), as a file by path is
/// read.
fn preamble_of(bytes: &[u8]) -> ReadPreamble {
    if bytes.get(128..132) == Some(b"DICM".as_slice()) {
        ReadPreamble::Always
    } else {
        ReadPreamble::Never
    }
}

/// After a parse failure: the transfer syntax error when the meta group names one that cannot
/// be decoded (its data set cannot even be parsed then), else `None`.
fn unsupported_transfer_syntax(bytes: &[u8], path: &Path) -> Option<ImagingError> {
    let start = match preamble_of(bytes) {
        ReadPreamble::Always => 128,
        _ => 0,
    };
    let meta = FileMetaTable::from_reader(bytes.get(start..)?).ok()?;
    let uid = meta.transfer_syntax().trim_end_matches('\0');
    check_transfer_syntax(path, uid).err()
}

/// Frame 0's samples as signed integers, masked to BitsStored (the bits below HighBit).
fn stored_samples(path: &Path, decoded: &DecodedPixelData<'_>) -> Result<Vec<i32>, ImagingError> {
    let unsupported = |message: String| ImagingError::UnsupportedImage {
        path: path.to_path_buf(),
        message,
    };
    let bits_allocated = decoded.bits_allocated();
    let bits_stored = decoded.bits_stored();
    let high_bit = decoded.high_bit();
    if bits_allocated != 8 && bits_allocated != 16 {
        return Err(unsupported(format!(
            "BitsAllocated = {bits_allocated} (8 or 16 are read)"
        )));
    }
    if bits_stored == 0
        || bits_stored > bits_allocated
        || high_bit + 1 < bits_stored
        || high_bit >= bits_allocated
    {
        return Err(unsupported(format!(
            "BitsStored = {bits_stored} and HighBit = {high_bit} do not fit BitsAllocated = \
             {bits_allocated}"
        )));
    }
    let samples = decoded.samples_per_pixel();
    let photometric = decoded.photometric_interpretation();
    let colour = matches!(
        photometric,
        PhotometricInterpretation::Rgb | PhotometricInterpretation::YbrFull
    );
    if !(samples == 1 && photometric.is_monochrome() || samples == 3 && colour) {
        return Err(unsupported(format!(
            "PhotometricInterpretation = {} with SamplesPerPixel = {samples} (MONOCHROME1, \
             MONOCHROME2, RGB and YBR_FULL are read)",
            decoded.photometric_interpretation()
        )));
    }
    if decoded.rows() == 0 || decoded.columns() == 0 {
        return Err(unsupported("Rows or Columns is 0".to_string()));
    }
    let bytes = decoded
        .frame_data(0)
        .map_err(|error| dicom_error(path, "reading frame 0", error))?;
    let raw: Vec<u32> = match bits_allocated {
        8 => bytes.iter().map(|&b| u32::from(b)).collect(),
        _ => bytes
            .as_chunks::<2>()
            .0
            .iter()
            .map(|pair| u32::from(u16::from_ne_bytes(*pair)))
            .collect(),
    };
    let shift = u32::from(high_bit + 1 - bits_stored);
    let mask = (1u32 << bits_stored) - 1;
    let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
    let values = raw.into_iter().map(|v| {
        let v = (v >> shift) & mask;
        if signed && v >> (bits_stored - 1) == 1 {
            v as i32 - (1i32 << bits_stored)
        } else {
            v as i32
        }
    });
    let values: Vec<i32> = values.collect();
    let declared = (decoded.rows() as usize)
        .saturating_mul(decoded.columns() as usize)
        .saturating_mul(samples as usize);
    if values.len() != declared {
        return Err(dicom_error(
            path,
            "reading frame 0",
            std::io::Error::other(format!(
                "frame 0 holds {} samples but Rows × Columns × SamplesPerPixel = {} × {} × \
                 {samples} = {declared}",
                values.len(),
                decoded.rows(),
                decoded.columns()
            )),
        ));
    }
    if samples == 3 && decoded.planar_configuration() == PlanarConfiguration::PixelFirst {
        Ok(interleave_planes(&values))
    } else {
        Ok(values)
    }
}

/// `[3, pixels]` colour planes to `[pixels, 3]` interleaved samples.
fn interleave_planes(planar: &[i32]) -> Vec<i32> {
    let pixels = planar.len() / 3;
    let (red, rest) = planar.split_at(pixels);
    let (green, blue) = rest.split_at(pixels);
    red.iter()
        .zip(green)
        .zip(blue)
        .flat_map(|((&r, &g), &b)| [r, g, b])
        .collect()
}

fn first_window(
    path: &Path,
    decoded: &DecodedPixelData<'_>,
) -> Result<Option<VoiWindow>, ImagingError> {
    let window = decoded
        .window()
        .map_err(|error| dicom_error(path, "reading WindowCenter/WindowWidth", error))?
        .and_then(|windows| windows.first().copied());
    let function = decoded
        .voi_lut_function()
        .map_err(|error| dicom_error(path, "reading VOILUTFunction", error))?
        .and_then(|functions| functions.first().copied());
    Ok(window.map(|window| VoiWindow {
        center: window.center,
        width: window.width,
        function: match function {
            Some(dicom_pixeldata::VoiLutFunction::LinearExact) => VoiFunction::LinearExact,
            Some(dicom_pixeldata::VoiLutFunction::Sigmoid) => VoiFunction::Sigmoid,
            _ => VoiFunction::Linear,
        },
    }))
}
