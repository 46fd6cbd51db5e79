//! Small DICOM files written by the tests: bit depths, photometric interpretations, rescale,
//! VOI window, transfer syntaxes, colour, multi-frame, and the errors of broken files.

use std::path::{Path, PathBuf};

use cleft_imaging::{DicomOptions, ImagingError, read_dicom_frame, read_grey};
use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

/// Retired (the dictionary constant is deprecated) but still found in archives and decoded.
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// The attributes of a synthetic image; `pixels` holds `rows * columns * samples * frames`
/// stored values.
struct Synthetic {
    rows: u16,
    columns: u16,
    bits: u16,
    signed: bool,
    photometric: &'static str,
    samples: u16,
    frames: u32,
    pixels: Vec<i32>,
    rescale: Option<(&'static str, &'static str)>,
    window: Option<(&'static str, &'static str)>,
}

impl Synthetic {
    fn grey(bits: u16, photometric: &'static str, pixels: Vec<i32>) -> Self {
        Self {
            rows: 2,
            columns: (pixels.len() / 2) as u16,
            bits,
            signed: false,
            photometric,
            samples: 1,
            frames: 1,
            pixels,
            rescale: None,
            window: None,
        }
    }

    fn object(&self) -> InMemDicomObject {
        let mut object = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value: PrimitiveValue| {
            object.put(DataElement::new(tag, vr, value));
        };
        put(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE.into(),
        );
        put(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1".into(),
        );
        put(tags::ROWS, VR::US, PrimitiveValue::from(self.rows));
        put(tags::COLUMNS, VR::US, PrimitiveValue::from(self.columns));
        put(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(self.samples),
        );
        put(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            self.photometric.into(),
        );
        let allocated: u16 = if self.bits > 8 { 16 } else { 8 };
        put(
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(allocated),
        );
        put(tags::BITS_STORED, VR::US, PrimitiveValue::from(self.bits));
        put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(self.bits - 1));
        put(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(u16::from(self.signed)),
        );
        if self.samples == 3 {
            put(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(0u16),
            );
        }
        if self.frames > 1 {
            put(
                tags::NUMBER_OF_FRAMES,
                VR::IS,
                self.frames.to_string().into(),
            );
        }
        if let Some((slope, intercept)) = self.rescale {
            put(tags::RESCALE_SLOPE, VR::DS, slope.into());
            put(tags::RESCALE_INTERCEPT, VR::DS, intercept.into());
        }
        if let Some((center, width)) = self.window {
            put(tags::WINDOW_CENTER, VR::DS, center.into());
            put(tags::WINDOW_WIDTH, VR::DS, width.into());
        }
        let mask = (1i64 << allocated) - 1;
        let pixel_data = if allocated == 8 {
            let bytes: Vec<u8> = self
                .pixels
                .iter()
                .map(|&v| (i64::from(v) & mask) as u8)
                .collect();
            DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bytes))
        } else {
            let words: Vec<u16> = self
                .pixels
                .iter()
                .map(|&v| (i64::from(v) & mask) as u16)
                .collect();
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()))
        };
        object.put(pixel_data);
        object
    }

    /// Written as `name` in `dir` with the transfer syntax `uid`, transcoding the pixel data.
    fn write(&self, dir: &Path, name: &str, uid: &str) -> PathBuf {
        let mut file = self
            .object()
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
            .unwrap();
        if uid != uids::EXPLICIT_VR_LITTLE_ENDIAN {
            file.transcode(TransferSyntaxRegistry.get(uid).unwrap())
                .unwrap();
        }
        let path = dir.join(name);
        file.write_to_file(&path).unwrap();
        path
    }
}

fn grey(path: &Path, voi_window: bool) -> Vec<f32> {
    read_grey(path, &DicomOptions { voi_window })
        .unwrap_or_else(|e| panic!("{e}"))
        .pixels
}

fn assert_close(actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-3, "{actual:?} vs {expected:?}");
    }
}

#[test]
fn sixteen_bit_monochrome2_is_min_max_scaled_and_monochrome1_is_its_inverse() {
    let dir = tempfile::tempdir().unwrap();
    let values = vec![95, 1095, 2095, 4095];
    let mono2 = Synthetic::grey(12, "MONOCHROME2", values.clone()).write(
        dir.path(),
        "m2.dcm",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let mono1 = Synthetic::grey(12, "MONOCHROME1", values).write(
        dir.path(),
        "m1.dcm",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let grey2 = grey(&mono2, false);
    assert_close(&grey2, &[0.0, 63.75, 127.5, 255.0]);
    let grey1 = grey(&mono1, false);
    let inverted: Vec<f32> = grey2.iter().map(|v| 255.0 - v).collect();
    assert_eq!(grey1, inverted);
}

#[test]
fn eight_bit_monochrome_is_min_max_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let path = Synthetic::grey(8, "MONOCHROME2", vec![10, 61, 112, 10, 214, 112]).write(
        dir.path(),
        "e.dcm",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let frame = read_dicom_frame(&path).unwrap();
    assert_eq!((frame.bits_allocated, frame.rows, frame.columns), (8, 2, 3));
    assert_eq!(frame.stored, vec![10, 61, 112, 10, 214, 112]);
    assert_close(&grey(&path, false), &[0.0, 63.75, 127.5, 0.0, 255.0, 127.5]);
}

#[test]
fn signed_samples_are_sign_extended_from_bits_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = Synthetic::grey(12, "MONOCHROME2", vec![-2048, -1, 0, 2047]);
    image.signed = true;
    let path = image.write(dir.path(), "s.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(
        read_dicom_frame(&path).unwrap().stored,
        vec![-2048, -1, 0, 2047]
    );
    assert_close(
        &grey(&path, false),
        &[0.0, 2047.0 / 4095.0 * 255.0, 2048.0 / 4095.0 * 255.0, 255.0],
    );
}

/// With a window the modality values (after rescale) matter: stored 0..300 with slope 2 and
/// intercept -100 are -100..500, and the LINEAR window 200 ± 100 (width 201) maps 100 → 0,
/// 300 → 255. Without the window, min-max hides a positive rescale; a negative slope inverts.
#[test]
fn rescale_and_voi_window_apply_to_modality_values() {
    let dir = tempfile::tempdir().unwrap();
    let stored = vec![0, 100, 150, 200, 250, 300];
    let mut image = Synthetic::grey(16, "MONOCHROME2", stored.clone());
    image.window = Some(("200", "201"));
    let plain = image.write(dir.path(), "plain.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);
    image.rescale = Some(("2", "-100"));
    let rescaled = image.write(dir.path(), "rescaled.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);

    let frame = read_dicom_frame(&rescaled).unwrap();
    assert_eq!(
        (frame.rescale_slope, frame.rescale_intercept),
        (2.0, -100.0)
    );
    let linear = |m: f32| (((m - 199.5) / 200.0 + 0.5) * 255.0).clamp(0.0, 255.0);
    let expect = |slope: f32, intercept: f32| -> Vec<f32> {
        stored
            .iter()
            .map(|&v| linear(v as f32 * slope + intercept))
            .collect()
    };
    assert_close(&grey(&plain, true), &expect(1.0, 0.0));
    assert_close(&grey(&rescaled, true), &expect(2.0, -100.0));
    assert_ne!(grey(&plain, true), grey(&rescaled, true));

    let min_max: Vec<f32> = stored.iter().map(|&v| v as f32 / 300.0 * 255.0).collect();
    assert_close(&grey(&plain, false), &min_max);
    assert_close(&grey(&rescaled, false), &min_max);
    image.rescale = Some(("-1", "0"));
    let negative = image.write(dir.path(), "negative.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let inverted: Vec<f32> = min_max.iter().map(|v| 255.0 - v).collect();
    assert_close(&grey(&negative, false), &inverted);
}

#[test]
fn uncompressed_and_deflated_transfer_syntaxes_decode_to_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let image = Synthetic::grey(
        16,
        "MONOCHROME2",
        (0..40).map(|i| i * 997 % 65536).collect(),
    );
    let syntaxes = [
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
        uids::IMPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_BIG_ENDIAN,
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    ];
    for (i, uid) in syntaxes.into_iter().enumerate() {
        let path = image.write(dir.path(), &format!("{i}.dcm"), uid);
        let frame = read_dicom_frame(&path).unwrap_or_else(|e| panic!("{uid}: {e}"));
        assert_eq!(frame.transfer_syntax, uid);
        assert_eq!(frame.stored, image.pixels, "{uid}");
    }
}

/// JPEG baseline (8-bit, lossy) written by dicom-pixeldata's encoder decodes close to the input.
#[test]
fn jpeg_baseline_decodes_close_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = Synthetic::grey(
        8,
        "MONOCHROME2",
        (0..256).map(|i| (i % 16) * 8 + (i / 16) * 4).collect(),
    );
    (image.rows, image.columns) = (16, 16);
    let path = image.write(dir.path(), "jpeg.dcm", uids::JPEG_BASELINE8_BIT);
    let frame = read_dicom_frame(&path).unwrap();
    assert_eq!(frame.transfer_syntax, uids::JPEG_BASELINE8_BIT);
    let error: f64 = frame
        .stored
        .iter()
        .zip(&image.pixels)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / 256.0;
    assert!(error < 4.0, "mean absolute error {error}");
}

#[test]
fn multi_frame_files_give_frame_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = Synthetic::grey(8, "MONOCHROME2", vec![0, 50, 100, 200, 9, 9, 9, 9]);
    (image.columns, image.frames) = (2, 2);
    let path = image.write(dir.path(), "frames.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let frame = read_dicom_frame(&path).unwrap();
    assert_eq!(frame.number_of_frames, 2);
    assert_eq!(frame.stored, vec![0, 50, 100, 200]);
    assert_close(&grey(&path, false), &[0.0, 63.75, 127.5, 255.0]);
}

#[test]
fn rgb_becomes_rec601_luminance() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = Synthetic::grey(
        8,
        "RGB",
        vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100],
    );
    (image.rows, image.columns, image.samples) = (2, 2, 3);
    let path = image.write(dir.path(), "rgb.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_close(
        &grey(&path, false),
        &[0.299 * 255.0, 0.587 * 255.0, 0.114 * 255.0, 100.0],
    );
}

fn expect_error(path: &Path, what: &str) -> ImagingError {
    let error = read_grey(path, &DicomOptions::default()).expect_err(what);
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{what}: `{message}` names no file"
    );
    error
}

#[test]
fn unsupported_transfer_syntaxes_are_refused_by_uid_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut object = Synthetic::grey(8, "MONOCHROME2", vec![0; 4]).object();
    let fragments = PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0u8; 16]]);
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::PixelSequence(fragments),
    ));
    let file = object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::JPEGLS_LOSSLESS))
        .unwrap();
    let path = dir.path().join("jpegls.dcm");
    file.write_to_file(&path).unwrap();
    let error = expect_error(&path, "JPEG-LS");
    assert!(
        matches!(error, ImagingError::UnsupportedTransferSyntax { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(uids::JPEGLS_LOSSLESS) && message.contains("JPEG-LS"),
        "{message}"
    );

    // an unregistered UID of the same length patched into the meta group
    let good = Synthetic::grey(8, "MONOCHROME2", vec![0; 4]).write(
        dir.path(),
        "good.dcm",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes
        .windows(20)
        .position(|w| w == b"1.2.840.10008.1.2.1\0")
        .unwrap();
    bytes[at..at + 20].copy_from_slice(b"1.2.3.4.5.6.7.8.9.10");
    let unknown = dir.path().join("unknown.dcm");
    std::fs::write(&unknown, bytes).unwrap();
    let message = expect_error(&unknown, "unknown transfer syntax").to_string();
    assert!(
        message.contains("1.2.3.4.5.6.7.8.9.10") && message.contains("unknown"),
        "{message}"
    );
}

#[test]
fn truncated_and_foreign_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = Synthetic::grey(16, "MONOCHROME2", (0..2000).collect()).write(
        dir.path(),
        "good.dcm",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    );
    let bytes = std::fs::read(&good).unwrap();
    for (name, length) in [
        ("cut_pixels.dcm", bytes.len() - 1000),
        ("cut_header.dcm", 200),
        ("cut_preamble", 100),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..length]).unwrap();
        let message = expect_error(&path, name).to_string();
        if name == "cut_pixels.dcm" {
            assert!(
                message.contains("(7FE0,0010)"),
                "names the pixel data: {message}"
            );
        }
    }
    let text = dir.path().join("notes.dcm");
    std::fs::write(&text, "not a DICOM file at all").unwrap();
    assert!(matches!(
        expect_error(&text, "text as .dcm"),
        ImagingError::Dicom { .. }
    ));
    let text_png = dir.path().join("notes.png");
    std::fs::write(&text_png, "not a PNG either").unwrap();
    assert!(matches!(
        expect_error(&text_png, "text as .png"),
        ImagingError::Raster { .. }
    ));
    let missing = dir.path().join("missing.dcm");
    let error = expect_error(&missing, "missing file");
    assert!(matches!(error, ImagingError::Io { .. }), "{error}");
    let cleft: cleft_core::CleftError = error.into();
    assert!(
        matches!(&cleft, cleft_core::CleftError::Data(m) if m.contains("missing.dcm")),
        "{cleft}"
    );
}
